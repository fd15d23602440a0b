"""jdl.analysis.pca against scikit-learn's PCA, and jdl.analysis.codes.summed_squared_error
against its definition, on synthetic low-rank data."""
from __future__ import annotations

import numpy as np
import pytest

from jdl.analysis import fit_pca, summed_squared_error


def low_rank_data(n=400, d=30, rank=6, seed=0):
    """Rows near a rank-``rank`` affine subspace, with distinct principal variances."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.normal(size=(d, rank)))[0].T                # (rank, d)
    scales = np.linspace(3.0, 0.8, rank)
    return (rng.normal(size=(n, rank)) * scales) @ basis + rng.normal(size=d) \
        + 0.05 * rng.normal(size=(n, d))


def test_pca_reconstruction_error_equals_scikit_learn():
    from sklearn.decomposition import PCA
    x_train, x_test = low_rank_data(seed=0), low_rank_data(n=150, seed=0)[::-1] + 0.01
    pca = fit_pca(x_train)
    np.testing.assert_allclose(pca.components @ pca.components.T, np.eye(30), atol=1e-10)
    for n in (2, 5, 30):
        ref = PCA(n_components=n, svd_solver="full").fit(x_train)
        want = ref.inverse_transform(ref.transform(x_test))
        got = pca.reconstruct(x_test, n)
        np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-8)
        err = np.mean(np.sum((want - x_test) ** 2, axis=1))
        assert summed_squared_error(x_test, got) == pytest.approx(err, rel=1e-10)
        # codes: the same coordinates up to each axis's sign
        codes, ref_codes = pca.encode(x_test, n), ref.transform(x_test)
        signs = np.sign(np.sum(codes * ref_codes, axis=0))
        np.testing.assert_allclose(codes, ref_codes * signs, rtol=1e-7, atol=1e-8)
        np.testing.assert_allclose(pca.variances[:n], ref.explained_variance_, rtol=1e-10)
        assert pca.explained_variance_ratio(n) == pytest.approx(
            np.sum(ref.explained_variance_ratio_), rel=1e-10)
    # all components reconstruct exactly; the error falls with the number of components
    np.testing.assert_allclose(pca.reconstruct(x_test, 30), x_test, atol=1e-10)
    errors = [summed_squared_error(x_test, pca.reconstruct(x_test, n)) for n in range(31)]
    assert all(a >= b - 1e-12 for a, b in zip(errors, errors[1:]))
    with pytest.raises(ValueError, match="n_components"):
        pca.encode(x_test, 31)
    with pytest.raises(ValueError, match="fit_pca"):
        fit_pca(np.ones((1, 4)))


def test_summed_squared_error_flattens_each_example():
    imgs = np.random.default_rng(1).random((4, 3, 5)).astype(np.float32)
    assert summed_squared_error(imgs, np.zeros_like(imgs)) == pytest.approx(
        np.mean(np.sum(imgs.astype(np.float64) ** 2, axis=(1, 2))), rel=1e-12)
    assert summed_squared_error(imgs, imgs.reshape(4, 15)) == 0.0
    with pytest.raises(ValueError, match="reconstruction"):
        summed_squared_error(imgs, np.zeros((4, 14)))
