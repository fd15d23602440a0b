"""Smoke runs of the lecture-claim scripts (experiments/saddle_points.py, rbm_energy_2d.py,
canonical_form.py) at tiny settings, in-process into a tmp workdir: the summary.json schema
(jdl.runs.run_dir), the facts each figure rests on checked against what is recorded beside it, and
the refusal of a second run in the same workdir."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
from scipy import stats

from experiment_scripts import load  # noqa: E402
from jdl.runs import run_dir  # noqa: E402


def _run(main, argv, tmp_path, capsys):
    """main(argv) into tmp_path; its summary.json, after checking the common schema and that
    the same command again is refused in one line (exit 2) without touching the run."""
    argv = argv + ["--workdir", str(tmp_path), "--no-progress"]
    returned = main(argv)
    with open(tmp_path / "summary.json") as f:
        summary = json.load(f)
    assert summary["schema"] == run_dir.SUMMARY_SCHEMA
    for key in run_dir.SUMMARY_REQUIRED + ("test_accuracy", "test_loss"):
        assert key in summary, key
    assert summary["resumed"] is False and summary["wall_time_s"] > 0
    assert json.loads(json.dumps(returned)) == summary
    assert os.path.exists(tmp_path / "config.json")
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "already holds a run" in err and len(err.splitlines()) == 1, err
    with open(tmp_path / "summary.json") as f:
        assert json.load(f) == summary
    return summary


def test_saddle_points_lanczos_extremes_are_the_dense_hessians(tmp_path, capsys):
    main = load("saddle_points").main
    s = _run(main, ["--steps", "5", "--hidden", "4", "--k", "30", "--probes", "2"],
             tmp_path, capsys)
    assert s["experiment"] == "saddle_points" and s["test"] is None
    assert s["test_accuracy"] is None and s["test_loss"] is None
    rows = s["checkpoints"]
    assert [r["step"] for r in rows] == [0, 5]
    assert s["n_params"] == 64 * 4 + 4 + 4 * 10 + 10
    assert rows[1]["loss"] < rows[0]["loss"]           # 5 full-batch steps lower the loss
    for r in rows:   # 30 Lanczos steps on 310 parameters find the dense Hessian's extremes
        np.testing.assert_allclose(r["lambda_min"], r["dense_lambda_min"], rtol=1e-4)
        np.testing.assert_allclose(r["lambda_max"], r["dense_lambda_max"], rtol=1e-4)
        assert r["dense_lambda_min"] < 0 < r["dense_lambda_max"]
        assert r["threshold"] == pytest.approx(1e-2 * abs(r["lambda_max"]))
        assert 0 <= r["dense_index_thr"] <= r["dense_index"] <= 1
        assert 0 <= r["index_thr"] <= r["index"] <= 1
        # SLQ weights: a probability distribution over the nodes for each probe
        np.testing.assert_allclose(np.sum(r["slq_weights"], axis=-1), 1.0, rtol=1e-4)
    loss = [r["loss"] for r in rows]
    for key, idx in (("spearman_loss_index", "index"), ("spearman_loss_index_thr", "index_thr"),
                     ("spearman_loss_dense_index", "dense_index")):
        want = stats.spearmanr(loss, [r[idx] for r in rows]).statistic
        assert s[key] == pytest.approx(want), key
    for png in ("index_vs_loss.png", "spectrum.png"):
        assert os.path.getsize(tmp_path / png) > 0


def test_rbm_energy_2d_free_energy_lowest_at_the_centres(tmp_path, capsys):
    script = load("rbm_energy_2d")
    Energy2DConfig, centres, main, sample_mixture = (
        script.Energy2DConfig, script.centres, script.main, script.sample_mixture)
    argv = ["--hidden", "8", "--n-train", "1000", "--n-test", "200", "--epochs", "40",
            "--batch-size", "100", "--k", "5", "--learning-rate", "0.05", "--chains", "100",
            "--gibbs-steps", "50"]
    s = _run(main, argv, tmp_path, capsys)
    assert s["experiment"] == "rbm_energy_2d"
    assert s["test"] == {"log_likelihood": s["test_log_likelihood"]}
    f_c, f_m = np.array(s["free_energy_centres"]), np.array(s["free_energy_midpoints"])
    assert f_c.shape == f_m.shape == (5,)
    assert s["midpoint_minus_centre"] == pytest.approx(f_m.mean() - f_c.mean(), rel=1e-5)
    assert s["midpoint_minus_centre"] > 0 and f_c.mean() < s["free_energy_origin"]
    # the true mixture's log-likelihood of the same held-out points, by scipy
    cfg = Energy2DConfig(**s["config"])
    rng = np.random.default_rng(cfg.seed)
    sample_mixture(rng, cfg, cfg.n_train)
    x_test, _ = sample_mixture(rng, cfg, cfg.n_test)
    dens = np.mean([stats.multivariate_normal(mu, cfg.cluster_std ** 2).pdf(x_test)
                    for mu in centres(cfg)], axis=0)
    assert s["true_mixture_log_likelihood"] == pytest.approx(np.mean(np.log(dens)), rel=1e-5)
    # a model of 40 epochs is within a nat of the truth, and not above it by more than noise
    assert s["true_mixture_log_likelihood"] - 1.0 < s["test_log_likelihood"] \
        < s["true_mixture_log_likelihood"] + 0.2
    assert sum(s["samples_per_cluster"]) == round(s["samples_within_2std"] * cfg.chains)
    assert os.path.getsize(tmp_path / "landscape.png") > 0


def test_canonical_form_delayed_student_learns_the_teacher(tmp_path, capsys):
    script = load("canonical_form")
    CanonicalConfig, main, make_data = script.CanonicalConfig, script.main, script.make_data
    argv = ["--n-train", "200", "--n-test", "50", "--T", "10", "--epochs", "25",
            "--batch-size", "20", "--learning-rate", "0.03"]
    s = _run(main, argv, tmp_path, capsys)
    assert s["experiment"] == "canonical_form"
    students = s["students"]
    assert set(students) == {"delayed", "one_delay", "elman8"}
    assert s["test"] == {"mse": students["delayed"]["test_mse"]}
    _, test = make_data(CanonicalConfig(**s["config"]))
    assert s["zero_predictor_mse"] == pytest.approx(float(np.mean(test["y"] ** 2)), rel=1e-6)
    # n = 3, m = 2, q = 2, p = 1: A (2, 2, 3), B (2, 3, 3), b (3,)
    assert students["delayed"]["n_params"] == 12 + 18 + 3
    assert students["delayed"]["test_mse"] < 0.05 * s["zero_predictor_mse"]
    assert students["delayed"]["test_mse"] < students["one_delay"]["test_mse"]
    assert os.path.getsize(tmp_path / "curves.png") > 0
