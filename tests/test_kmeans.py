"""jdl.analysis.kmeans: Lloyd's fixed point checked by hand (every point at its nearest centre,
every centre the mean of its points), the inertia against scikit-learn's KMeans, and the
partition of well-separated blobs recovered exactly (NMI 1)."""
from __future__ import annotations

import jax
import numpy as np
import pytest

from jdl.analysis import kmeans, kmeans_plus_plus, normalized_mutual_info


def blobs(n_per=60, k=4, d=5, spread=0.3, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(k, d)) * 4.0
    y = np.repeat(np.arange(k), n_per)
    return (centers[y] + spread * rng.normal(size=(len(y), d))).astype(np.float32), y


def test_kmeans_is_a_lloyd_fixed_point_and_matches_scikit_learn():
    from sklearn.cluster import KMeans
    x = np.random.default_rng(1).normal(size=(300, 3)).astype(np.float32)
    r = kmeans(x, 5, jax.random.PRNGKey(0), n_init=8)
    c, a = np.asarray(r.centers, np.float64), np.asarray(r.assignments)
    d = ((x[:, None, :] - c[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(a, d.argmin(1))                       # assign step
    for j in range(5):                                                   # update step
        np.testing.assert_allclose(c[j], x[a == j].mean(0), atol=1e-5)
    assert float(r.inertia) == pytest.approx(d.min(1).sum(), rel=1e-5)
    ref = KMeans(5, n_init=8, random_state=0).fit(x)
    # both are local optima of the same objective from k-means++ seedings: within 2 %
    assert float(r.inertia) <= ref.inertia_ * 1.02
    assert 0 < int(r.iterations) < 300


def test_kmeans_recovers_separated_blobs_and_is_deterministic():
    x, y = blobs()
    r = kmeans(x, 4, jax.random.PRNGKey(3), n_init=4)
    assert float(normalized_mutual_info(y, np.asarray(r.assignments))) == pytest.approx(1.0)
    again = kmeans(x, 4, jax.random.PRNGKey(3), n_init=4)
    np.testing.assert_array_equal(np.asarray(r.assignments), np.asarray(again.assignments))
    # k-means++ draws k distinct data points as seeds
    seeds = np.asarray(kmeans_plus_plus(x, 4, jax.random.PRNGKey(5)))
    assert len({tuple(s) for s in seeds}) == 4
    assert all(np.any(np.all(x == s, axis=1)) for s in seeds)
    with pytest.raises(ValueError, match="k must be"):
        kmeans(x, 0, jax.random.PRNGKey(0))
