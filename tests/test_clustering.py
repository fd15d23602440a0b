"""jdl.analysis.clustering against scikit-learn's NMI and a brute-force purity."""
from collections import Counter

import jax
import numpy as np
import pytest
from sklearn.metrics import normalized_mutual_info_score

from jdl.analysis import contingency, normalized_mutual_info, purity


def brute_purity(labels, clusters):
    total = 0
    for k in set(clusters.tolist()):
        total += Counter(labels[clusters == k].tolist()).most_common(1)[0][1]
    return total / len(labels)


@pytest.mark.parametrize("n, n_c, n_k, seed", [(200, 10, 10, 0), (57, 3, 8, 1), (31, 6, 2, 2)])
def test_nmi_and_purity_against_sklearn_and_brute_force(n, n_c, n_k, seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_c, n)
    clusters = np.where(rng.random(n) < 0.6, labels % n_k, rng.integers(0, n_k, n))  # related
    np.testing.assert_allclose(normalized_mutual_info(labels, clusters),
                               normalized_mutual_info_score(labels, clusters), rtol=1e-5)
    np.testing.assert_allclose(purity(labels, clusters), brute_purity(labels, clusters),
                               rtol=1e-6)
    # static sizes: the same under jit
    f = jax.jit(lambda a, b: (normalized_mutual_info(a, b, n_c, n_k), purity(a, b, n_c, n_k)))
    nmi_j, pur_j = f(labels, clusters)
    np.testing.assert_allclose(nmi_j, normalized_mutual_info_score(labels, clusters), rtol=1e-5)
    np.testing.assert_allclose(pur_j, brute_purity(labels, clusters), rtol=1e-6)


def test_nmi_edge_cases_match_sklearn():
    a = np.array([3, 3, 7, 7, 9, 9])
    renamed = np.array([1, 1, 0, 0, 5, 5])           # same partition, other names
    np.testing.assert_allclose(normalized_mutual_info(a, renamed), 1.0, rtol=1e-6)
    assert float(purity(a, renamed)) == 1.0
    one = np.zeros(6, int)
    for x, y in ((one, one), (a, one), (one, a)):
        np.testing.assert_allclose(normalized_mutual_info(x, y),
                                   normalized_mutual_info_score(x, y), atol=1e-7)
    table = contingency(np.array([0, 1, 1]), np.array([2, 2, 0]))
    np.testing.assert_array_equal(table, [[0, 1], [1, 1]])


def test_shapes_are_checked():
    with pytest.raises(ValueError, match="one length"):
        purity(np.zeros(3, int), np.zeros(4, int))
