"""The autoencoder experiment's own pieces (experiments/ae_fashion.py), on small synthetic data:
PCA against scikit-learn's, the corrupted images' PSNR against its expected-value formula,
the code-space scores against brute-force scikit-learn neighbours, the acceptance checks and
the command line. No Fashion-MNIST, no training."""
from __future__ import annotations


import numpy as np
import pytest

import jax  # noqa: E402

from experiment_scripts import load  # noqa: E402
from jdl.runs.supervised import parse_args  # noqa: E402

exp = load("ae_fashion")


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
    pca = exp.fit_pca(x_train)
    np.testing.assert_allclose(pca.components @ pca.components.T, np.eye(30), atol=1e-10)
    for n in (2, 5, 30):
        ref = PCA(n_components=n, svd_solver="full").fit(x_train)
        want = ref.inverse_transform(ref.transform(x_test))
        got = pca.reconstruct(x_test, n)
        np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-8)
        err = np.mean(np.sum((want - x_test) ** 2, axis=1))
        assert exp.summed_squared_error(x_test, got) == pytest.approx(err, rel=1e-10)
        # codes: the same coordinates up to each axis's sign
        codes, ref_codes = pca.encode(x_test, n), ref.transform(x_test)
        signs = np.sign(np.sum(codes * ref_codes, axis=0))
        np.testing.assert_allclose(codes, ref_codes * signs, rtol=1e-7, atol=1e-8)
        np.testing.assert_allclose(pca.variances[:n], ref.explained_variance_, rtol=1e-10)
    # all components reconstruct exactly; the error falls with the number of components
    np.testing.assert_allclose(pca.reconstruct(x_test, 30), x_test, atol=1e-10)
    errors = [exp.summed_squared_error(x_test, pca.reconstruct(x_test, n)) for n in range(31)]
    assert all(a >= b - 1e-12 for a, b in zip(errors, errors[1:]))
    # a float32 image batch (N, 28, 28)-like input is flattened per image
    imgs = np.random.default_rng(1).random((4, 3, 5)).astype(np.float32)
    assert exp.summed_squared_error(imgs, np.zeros_like(imgs)) == pytest.approx(
        np.mean(np.sum(imgs.astype(np.float64) ** 2, axis=(1, 2))), rel=1e-12)


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
    corrupt = jax.jit(exp.make_corruption(noise, level))
    noisy = np.asarray(corrupt(jax.random.PRNGKey(0), x))
    assert noisy.shape == x.shape and noisy.min() >= 0.0 and noisy.max() <= 1.0
    mse = np.mean((noisy.astype(np.float64) - x) ** 2)
    got = exp.psnr_db(x, noisy)
    assert got == pytest.approx(10 * np.log10(1.0 / mse), abs=1e-4)           # its definition
    expected = exp.expected_corrupted_mse(x, noise, level)
    # the MSE is a mean of N = x.size independent per-pixel errors: 5 standard errors
    per_pixel = (noisy.astype(np.float64) - x) ** 2
    assert abs(mse - expected) < 5 * per_pixel.std() / np.sqrt(per_pixel.size), (mse, expected)
    assert got == pytest.approx(10 * np.log10(1.0 / expected), abs=0.05)
    # the same key gives the same corruption, another key another one
    np.testing.assert_array_equal(noisy, np.asarray(corrupt(jax.random.PRNGKey(0), x)))
    assert np.mean(noisy != np.asarray(corrupt(jax.random.PRNGKey(1), x))) > 0.05
    with pytest.raises(ValueError):
        exp.make_corruption("mask", 1.5)


def test_code_scores_match_brute_force_scikit_learn():
    from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors
    rng = np.random.default_rng(3)
    centers = rng.normal(size=(10, 2)) * 2.0
    y_train, y_test = rng.integers(0, 10, 500), rng.integers(0, 10, 120)
    c_train = (centers[y_train] + rng.normal(size=(500, 2))).astype(np.float32)
    c_test = (centers[y_test] + rng.normal(size=(120, 2))).astype(np.float32)
    got = exp.code_scores(c_train, y_train.astype(np.int32), c_test, y_test.astype(np.int32),
                          k=10, precision_k=7)
    knn = KNeighborsClassifier(n_neighbors=10, algorithm="brute").fit(c_train, y_train)
    assert got["knn_accuracy"] == pytest.approx(knn.score(c_test, y_test), abs=1e-6)
    idx = NearestNeighbors(n_neighbors=7, algorithm="brute").fit(c_train).kneighbors(
        c_test, return_distance=False)
    assert got["precision_at_7"] == pytest.approx(
        np.mean(y_train[idx] == y_test[:, None]), abs=1e-6)
    assert 0.3 < got["knn_accuracy"] < 1.0


def test_acceptance_checks_and_helpers():
    s = {"pca30_test_error": 12.24, "deep_test_error": 9.0,
         "codes2d_ae_knn_accuracy": 0.70, "codes2d_pca2_knn_accuracy": 0.55,
         "denoise_psnr_denoising_ae": 18.0, "denoise_psnr_plain_ae": 14.0,
         "vae_test_elbo": -250.0, "greedy_finetuned_test_error": 9.5}
    a = exp.acceptance(s)
    assert all(c["passed"] for c in a.values()) and len(a) == 5
    assert a["deep_vs_pca30"]["ratio"] == pytest.approx(9.0 / 12.24)
    assert a["codes2d_knn"]["gain_points"] == pytest.approx(15.0)
    worse = exp.acceptance({**s, "deep_test_error": 9.2, "codes2d_ae_knn_accuracy": 0.64,
                            "denoise_psnr_denoising_ae": 14.0})
    assert not worse["deep_vs_pca30"]["passed"]                  # 9.2 > 0.75 * 12.24 = 9.18
    assert not worse["codes2d_knn"]["passed"] and not worse["denoising_psnr"]["passed"]
    assert exp.acceptance({**s, "codes2d_ae_knn_accuracy": 0.65})["codes2d_knn"]["passed"]
    assert set(exp.acceptance({"vae_test_elbo": -1.0})) == {"vae_elbo_reported"}
    assert not exp.acceptance({"vae_test_elbo": float("nan")})["vae_elbo_reported"]["passed"]
    np.testing.assert_array_equal(exp.first_of_each_class([3, 1, 1, 0, 2, 3], 4), [3, 1, 4, 0])
    # command line: comma-separated parts; unknown parts refused
    cfg, ns = parse_args(exp.AEFashionConfig, ["--parts", "deep,vae", "--deep-epochs", "2",
                                               "--max-train-examples", "3000", "--resume"])
    assert cfg.parts == ("deep", "vae") and cfg.deep_epochs == 2 and ns.resume
    assert cfg.max_train_examples == 3000
    cfg.validate()
    assert exp.AEFashionConfig().parts == exp.PARTS
    with pytest.raises(ValueError, match="parts"):
        exp.AEFashionConfig(parts=("deep", "rbm")).validate()
    with pytest.raises(ValueError, match="noise"):
        exp.AEFashionConfig(noise="blur").validate()
