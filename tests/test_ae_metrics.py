"""Whole-data-set scores of autoencoders: the PSNR of clipped corruptions against the expected
squared error of their definition (jdl.ae.corruption), and jdl.analysis.code_scores (k-NN
accuracy, precision@k) against brute-force scikit-learn neighbours."""
from __future__ import annotations

import jax
import numpy as np
import pytest

from jdl import ae
from jdl.analysis import code_scores


@pytest.mark.parametrize("noise,level", [("mask", 0.3), ("salt_pepper", 0.2),
                                         ("gaussian", 0.1)])
def test_psnr_of_corrupted_images_matches_its_formula(noise, level):
    # PSNR = 10 log10(1 / MSE); for images x in [0, 1]: masking p gives E MSE = p mean(x^2),
    # salt-and-pepper p gives p mean((x^2 + (1 - x)^2) / 2), Gaussian sigma gives sigma^2
    # (x = 0.5 +- 0.05 here, so clipping to [0, 1] at 4.5 sigma changes nothing measurable).
    rng = np.random.default_rng(2)
    if noise == "gaussian":
        x = (0.5 + 0.05 * rng.uniform(-1, 1, (200, 784))).astype(np.float32)
    else:
        x = rng.random((200, 784)).astype(np.float32) ** 2          # many dark pixels
    corrupt = jax.jit(ae.corruption.clipped((noise, level)))
    noisy = np.asarray(corrupt(jax.random.PRNGKey(0), x))
    assert noisy.shape == x.shape and noisy.min() >= 0.0 and noisy.max() <= 1.0
    mse = np.mean((noisy.astype(np.float64) - x) ** 2)
    got = float(ae.psnr(x, noisy))
    assert got == pytest.approx(10 * np.log10(1.0 / mse), abs=1e-4)           # its definition
    expected = ae.corruption.expected_squared_error(x, (noise, level))
    # the MSE is a mean of N = x.size independent per-pixel errors: 5 standard errors
    per_pixel = (noisy.astype(np.float64) - x) ** 2
    assert abs(mse - expected) < 5 * per_pixel.std() / np.sqrt(per_pixel.size), (mse, expected)
    assert got == pytest.approx(10 * np.log10(1.0 / expected), abs=0.05)
    # the same key gives the same corruption, another key another one
    np.testing.assert_array_equal(noisy, np.asarray(corrupt(jax.random.PRNGKey(0), x)))
    assert np.mean(noisy != np.asarray(corrupt(jax.random.PRNGKey(1), x))) > 0.05
    with pytest.raises(ValueError):
        ae.corruption.clipped(("mask", 1.5))
    with pytest.raises(ValueError, match="expected_squared_error"):
        ae.corruption.expected_squared_error(x, None)


def test_code_scores_match_brute_force_scikit_learn():
    from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors
    rng = np.random.default_rng(3)
    centers = rng.normal(size=(10, 2)) * 2.0
    y_train, y_test = rng.integers(0, 10, 500), rng.integers(0, 10, 120)
    c_train = (centers[y_train] + rng.normal(size=(500, 2))).astype(np.float32)
    c_test = (centers[y_test] + rng.normal(size=(120, 2))).astype(np.float32)
    got = code_scores(c_train, y_train.astype(np.int32), c_test, y_test.astype(np.int32),
                          k=10, precision_k=7)
    knn = KNeighborsClassifier(n_neighbors=10, algorithm="brute").fit(c_train, y_train)
    assert got["knn_accuracy"] == pytest.approx(knn.score(c_test, y_test), abs=1e-6)
    idx = NearestNeighbors(n_neighbors=7, algorithm="brute").fit(c_train).kneighbors(
        c_test, return_distance=False)
    assert got["precision_at_7"] == pytest.approx(
        np.mean(y_train[idx] == y_test[:, None]), abs=1e-6)
    assert 0.3 < got["knn_accuracy"] < 1.0
