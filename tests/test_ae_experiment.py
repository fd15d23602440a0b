"""The autoencoder experiment's own pieces (experiments/ae_fashion.py): the acceptance checks and
the command line. No Fashion-MNIST, no training. (Its library helpers are tested in
tests/test_pca.py, tests/test_ae_metrics.py and tests/test_kmeans.py.)"""
from __future__ import annotations


import numpy as np
import pytest

import jax  # noqa: E402

from experiment_scripts import load  # noqa: E402
from jdl.runs.supervised import parse_args  # noqa: E402

exp = load("ae_fashion")


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


def test_acceptance_of_the_new_parts():
    s = {"plain_ae_mean_activation": 0.4, "sparse_ae_mean_activation": 0.06,
         "plain_ae_jacobian_frobenius_sq": 30.0, "contractive_ae_jacobian_frobenius_sq": 4.0,
         "dbn_dbn_init_test_error": 20.0, "dbn_random_init_test_error": 45.0,
         "clustering_pixels": {"dim": 784, "nmi": 0.51, "purity": 0.55},
         "clustering_PCA-30": {"dim": 30, "nmi": 0.52, "purity": 0.56},
         "clustering_deep AE": {"dim": 30, "nmi": 0.58, "purity": 0.60},
         "clustering_DBN (pretrained)": {"dim": 30, "nmi": 0.55, "purity": 0.58}}
    a = exp.acceptance(s)
    assert a["sparse_and_contractive"]["passed"] and a["dbn_init_vs_random"]["passed"]
    assert a["clustering_nmi"]["passed"] and a["clustering_nmi"]["nmi pixels"] == 0.51
    # one learnt code below PCA's NMI fails the clustering check; a worse DBN init fails its own
    worse = exp.acceptance({**s, "clustering_DBN (pretrained)": {"dim": 30, "nmi": 0.50,
                                                                  "purity": 0.5},
                            "dbn_dbn_init_test_error": 50.0,
                            "sparse_ae_mean_activation": 0.5})
    assert not worse["clustering_nmi"]["passed"] and not worse["dbn_init_vs_random"]["passed"]
    assert not worse["sparse_and_contractive"]["passed"]
    assert "clustering_nmi" not in exp.acceptance({"clustering_pixels": s["clustering_pixels"]})
