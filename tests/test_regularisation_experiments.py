"""The config's momentum schedule mu(t) against a hand-stepped update, and smoke runs of the
optimisation and regularisation scripts (experiments/schedules_fashion.py,
regularization_fashion.py, training_size_fashion.py) on scikit-learn's digits at tiny sizes:
each table checked against the runs' stored parameters and records."""
from __future__ import annotations

import dataclasses
import json
import math
import os

import numpy as np
import pytest

from jdl.runs.supervised import ExperimentConfig, build_optimizer, load_data, optimizer_schedules

TINY = ["--dataset", "digits", "--batch-size", "32", "--eval-batch-size", "500",
        "--no-progress"]


def _summary(workdir) -> dict:
    with open(os.path.join(workdir, "summary.json")) as f:
        return json.load(f)


def test_config_increasing_momentum_is_the_hand_stepped_update():
    """momentum_schedule 'increasing': u(t) = -lambda(t) g(t) + mu(t) u(t-1) with the cosine
    lambda(t) = lambda0 (1 + cos(pi t / T)) / 2 and Sutskever et al.'s
    mu(t) = min(1 - 1 / (2 (floor(t / every) + 1)), mu_max), every = momentum_every_epochs *
    steps per epoch; a float momentum is the constant mu."""
    import optax
    spe, lam0, mu_max = 4, 0.1, 0.8
    cfg = ExperimentConfig(epochs=3, learning_rate=lam0, momentum=mu_max, schedule="cosine",
                           momentum_schedule="increasing", momentum_every_epochs=0.5)
    lam, mu = optimizer_schedules(cfg, spe)
    every, T = 2, 3 * spe

    def lam_of(t):
        return lam0 * (1 + math.cos(math.pi * min(t, T) / T)) / 2

    def mu_of(t):
        return min(1 - 1 / (2 * (t // every + 1)), mu_max)
    assert [round(float(mu(t)), 6) for t in range(9)] == [
        round(mu_of(t), 6) for t in range(9)] == [0.5, 0.5, 0.75, 0.75, 0.8, 0.8, 0.8, 0.8, 0.8]
    for increasing in (True, False):
        c = cfg if increasing else dataclasses.replace(cfg, momentum_schedule="constant")
        tx = build_optimizer(c, spe)
        w = np.array([0.5, -1.5, 2.0])
        params, u = {"w": w.astype(np.float32)}, np.zeros(3)
        state = tx.init(params)
        for t in range(T):
            g = w * np.array([1.0, 3.0, 0.5])             # gradient of a quadratic bowl
            upd, state = tx.update({"w": np.asarray(g, np.float32)}, state, params)
            params = optax.apply_updates(params, upd)
            u = -lam_of(t) * g + (mu_of(t) if increasing else mu_max) * u
            w = w + u
            np.testing.assert_allclose(params["w"], w, rtol=1e-5, atol=1e-6)


def test_config_momentum_schedule_refusals():
    with pytest.raises(ValueError, match="momentum_every_epochs"):
        ExperimentConfig(momentum_schedule="increasing", momentum_every_epochs=0.0).validate()
    with pytest.raises(ValueError, match="needs optimizer sgd"):
        ExperimentConfig(momentum_schedule="increasing", optimizer="adam").validate()


def test_schedules_smoke_rows_are_the_arms_runs(tmp_path):
    from experiments.schedules_fashion import main
    s = main(TINY + ["--arms", "fixed,cosine_increasing_mu", "--epochs", "2",
                     "--max-train-examples", "256", "--log-every", "2",
                     "--workdir", str(tmp_path)])
    assert json.loads(json.dumps(s)) == _summary(tmp_path)
    assert [r["arm"] for r in s["rows"]] == [
        "fixed", "cosine_increasing_mu"]
    for r in s["rows"]:
        run = _summary(tmp_path / r["arm"])
        assert r["test_accuracy"] == run["test_accuracy"] and r["steps"] == 2 * (256 // 32)
        with open(tmp_path / r["arm"] / "config.json") as f:
            stored = json.load(f)
        for k, v in r["overrides"].items():   # each arm ran with its own optimiser settings
            assert stored[k] == v
    assert os.path.exists(tmp_path / "learning_curves.png")


def test_regularization_smoke_table_is_the_stored_params(tmp_path):
    """The table's accuracy and sparsity are those of each arm's stored final parameters; a
    penalty switched on at the last epoch's end changes nothing (same weights to 1e-6), one
    switched on from the start shrinks the weights."""
    import jax
    from experiments.regularization_fashion import Config, build_model, main, weight_stats
    from jdl.runs.comparison import arm_config, final_variables
    argv = TINY + ["--hidden", "16", "--epochs", "2", "--max-train-examples", "320",
                   "--l1-betas", "0.01", "--l2-betas", "0.01", "--late-l1", "0.01",
                   "--late-epoch", "2", "--late-l2", "0", "--threshold", "0.01"]
    s = main(argv + ["--workdir", str(tmp_path)])
    rows = {r["arm"]: r for r in s["rows"]}
    assert list(rows) == ["none", "l1_0.01", "l2_0.01", "l1_0.01_from2"]
    cfg = Config(dataset="digits", hidden=(16,), max_train_examples=320, batch_size=32,
                 epochs=2, val_fraction=0.0)
    _, _, (xte, yte), _ = load_data(cfg)
    model, params = build_model(cfg), {}
    for arm, r in rows.items():
        params[arm] = final_variables(tmp_path / arm, model, xte[:1])["params"]
        logits = model.apply({"params": params[arm]}, xte)
        assert r["test_accuracy"] == pytest.approx(float(np.mean(np.argmax(logits, -1) == yte)),
                                                   abs=1e-6)
        assert r["sparsity"] == weight_stats(params[arm], 0.01)["sparsity"]
        assert r["steps"] == 2 * (320 // 32)
    for a, b in zip(jax.tree.leaves(params["none"]), jax.tree.leaves(params["l1_0.01_from2"])):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)   # on after the last update
    assert rows["l1_0.01"]["mean_abs_w"] < rows["none"]["mean_abs_w"]
    assert arm_config(cfg, {"l1": 0.01}).l1 == 0.01
    with pytest.raises(ValueError, match="unknown config fields"):
        arm_config(cfg, {"l3": 0.01})


def test_training_size_smoke_nested_subsets_and_update_budget(tmp_path):
    from experiments.training_size_fashion import Config, main
    s = main(TINY + ["--models", "mlp", "--sizes", "64,320", "--min-steps", "6",
                     "--workdir", str(tmp_path)])
    cfg = Config(batch_size=32, min_steps=6, epochs=1)
    assert [(r["train_examples"], r["epochs"]) for r in s["rows"]] == [(64, 3), (320, 1)]
    for r in s["rows"]:
        assert r["steps"] == cfg.epochs_for(r["train_examples"]) * (r["train_examples"] // 32)
        assert r["test_accuracy"] == _summary(tmp_path / f"mlp_n{r['train_examples']}")[
            "test_accuracy"]
    assert os.path.exists(tmp_path / "accuracy_vs_size.png")
    # the smaller training set is the first images of the larger one (before normalisation,
    # which each run fits on its own training set)
    def images(n):
        return load_data(dataclasses.replace(cfg, dataset="digits", normalize="none",
                                             max_train_examples=n))[0][0]
    np.testing.assert_array_equal(images(64), images(320)[:64])
