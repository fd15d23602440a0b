import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jdl.nn import MLP
from jdl.optim import sgd
from jdl.train import (CheckpointError, Checkpoints, DataError, NonFiniteError, backprop,
                       evaluate_fn, fit, init_state, make_eval_step, make_train_step, read_metrics)

from conftest import tree_max_abs_diff
from experiment_scripts import ENV, load

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def setup(train, model=None, tx=None, seed=0):
    model = model or MLP(hidden=(32,), dropout_rate=0.2)
    tx = tx or sgd(0.05, 0.9, l2=1e-4)
    state = init_state(model, tx, train["x"][:2], jax.random.PRNGKey(seed))
    return model, tx, state, make_train_step(backprop(model), tx), make_eval_step(evaluate_fn(model))


def test_train_step_equals_hand_written_flax_optax_step(digits_small):
    """One jdl step == a hand-written value_and_grad + optax update, dropout key included."""
    train, _ = digits_small
    model, tx, state, step, _ = setup(train)
    batch = {"x": jnp.asarray(train["x"][:32]), "y": jnp.asarray(train["y"][:32])}
    new, metrics = jax.jit(step)(state, batch)

    def loss(p):
        key = jax.random.fold_in(state.rng, 0)
        logits = model.apply({"params": p}, batch["x"], train=True, rngs={"dropout": key})
        return optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"]).mean()

    l, g = jax.value_and_grad(loss)(state.params)
    upd, _ = tx.update(g, tx.init(state.params), state.params)
    ref = optax.apply_updates(state.params, upd)
    assert tree_max_abs_diff(new.params, ref) < 1e-6
    np.testing.assert_allclose(metrics["loss"], l, rtol=1e-6)
    assert int(new.step) == 1 and int(new.bad_step) == -1


def test_same_seed_same_parameters(digits_small):
    train, val = digits_small
    results = []
    for _ in range(2):
        _, _, state, step, ev = setup(train)
        r = fit(step, state, train, epochs=2, batch_size=32, eval_step=ev, val_data=val,
                seed=5, progress=False)
        results.append(r)
    assert tree_max_abs_diff(results[0].state.params, results[1].state.params) == 0.0
    assert results[0].history == results[1].history
    _, _, state, step, ev = setup(train)
    other = fit(step, state, train, epochs=2, batch_size=32, seed=6, progress=False)
    assert tree_max_abs_diff(results[0].state.params, other.state.params) > 0


def test_fit_learns_and_writes_metrics(digits_small, tmp_path):
    train, val = digits_small
    _, _, state, step, ev = setup(train)
    r = fit(step, state, train, epochs=4, batch_size=32, eval_step=ev, val_data=val,
            workdir=str(tmp_path), log_every=5, progress=False, num_classes=10)
    assert r.history[-1]["val_accuracy"] > 0.85
    assert r.history[-1]["train_loss"] < r.history[0]["train_loss"]
    recs = read_metrics(str(tmp_path))
    assert [x["epoch"] for x in recs if x["kind"] == "epoch"] == [1, 2, 3, 4]
    assert [x["step"] for x in recs if x["kind"] == "train"] == list(range(5, 49, 5))
    assert any(f.startswith("events") for f in os.listdir(tmp_path / "tb"))
    ck = Checkpoints(tmp_path / "checkpoints")
    assert ck.steps() == [24, 36, 48] and ck.best_step() is not None


def test_nan_guard_names_the_step_and_keeps_last_good_checkpoint(digits_small, tmp_path):
    train, _ = digits_small
    x = train["x"].copy()
    from jdl.data import batch_indices
    order = batch_indices(len(x), 32, seed=0, epoch=0)
    bad_batch = 9  # the 10th update sees a NaN input
    x[order[bad_batch][3], 2, 2, 0] = np.nan
    _, _, state, step, _ = setup({"x": x, "y": train["y"]})
    with pytest.raises(NonFiniteError, match=rf"at step {bad_batch + 1}\b.*last good checkpoint is step 8"):
        fit(step, state, {"x": x, "y": train["y"]}, epochs=2, batch_size=32, seed=0,
            workdir=str(tmp_path), checkpoint_every=4, log_every=100, progress=False)
    ck = Checkpoints(tmp_path / "checkpoints")
    assert ck.steps() == [4, 8]
    restored, _ = ck.restore(None, state)
    assert int(restored.step) == 8
    assert all(np.all(np.isfinite(l)) for l in jax.tree.leaves(restored.params))


def test_labels_out_of_range_are_refused(digits_small):
    train, val = digits_small
    _, _, state, step, ev = setup(train)
    bad = {"x": train["x"], "y": train["y"].copy()}
    bad["y"][5] = 10
    with pytest.raises(DataError, match=r"train labels: labels must lie in \[0, 10\), got range \[0, 10\]"):
        fit(step, state, bad, epochs=1, batch_size=32, num_classes=10, progress=False)


def test_wrong_validation_shape_and_dtype_are_refused(digits_small):
    train, val = digits_small
    _, _, state, step, ev = setup(train)
    with pytest.raises(DataError, match=r"validation data\['x'\]: expected per-example shape \(8, 8, 1\), got \(8, 8\)"):
        fit(step, state, train, epochs=1, batch_size=32, eval_step=ev,
            val_data={"x": val["x"][..., 0], "y": val["y"]}, progress=False)
    with pytest.raises(DataError, match=r"expected dtype float32, got float64"):
        fit(step, state, train, epochs=1, batch_size=32, eval_step=ev,
            val_data={"x": val["x"].astype(np.float64), "y": val["y"]}, progress=False)
    with pytest.raises(DataError, match="must share their first"):
        fit(step, state, {"x": train["x"], "y": train["y"][:-1]}, epochs=1, batch_size=32, progress=False)


def test_experiment_input_checks():
    from jdl.train import check_inputs
    with pytest.raises(DataError, match=r"expected inputs of shape \(N, 28, 28, 1\), got \(4, 8, 8, 1\)"):
        check_inputs(np.zeros((4, 8, 8, 1), np.float32), (28, 28, 1))
    with pytest.raises(DataError, match="expected floating-point inputs"):
        check_inputs(np.zeros((4, 28, 28, 1), np.uint8), (28, 28, 1))


@pytest.mark.parametrize("kw, msg", [
    (dict(batch_size=0), "batch size must be a positive integer"),
    (dict(batch_size=1000), "larger than the data set"),
    (dict(epochs=0), "epochs must be a positive integer"),
    (dict(checkpoint_every=0), "checkpoint_every must be positive"),
    (dict(resume=True), "resume=True needs a workdir"),
])
def test_invalid_fit_arguments_are_refused(digits_small, kw, msg):
    train, _ = digits_small
    _, _, state, step, _ = setup(train)
    args = dict(epochs=1, batch_size=32, progress=False)
    args.update(kw)
    with pytest.raises(ValueError, match=msg):
        fit(step, state, train, **args)


@pytest.mark.parametrize("field, value, msg", [
    ("learning_rate", -0.1, "learning_rate must be > 0"),
    ("batch_size", 0, "batch_size must be a positive integer"),
    ("dropout_rate", 1.0, r"dropout_rate must be in \[0, 1\)"),
    ("momentum", 1.2, r"momentum must be in \[0, 1\)"),
    ("dataset", "cifar", "dataset must be one of"),
    ("l2", -1e-4, "l2 must be >= 0"),
])
def test_invalid_experiment_config_is_refused_at_startup(field, value, msg):
    Config = load("mlp_fashion").Config
    cfg = Config(**{field: value})
    with pytest.raises(ValueError, match=msg):
        cfg.validate()
    out = subprocess.run([sys.executable, "experiments/mlp_fashion.py", f"--{field.replace('_', '-')}",
                          str(value), "--workdir", os.devnull], cwd=ROOT, capture_output=True, text=True,
                         env=ENV)
    assert out.returncode != 0 and msg.replace("\\", "") in out.stderr


def test_corrupt_and_incompatible_checkpoints(digits_small, tmp_path):
    train, _ = digits_small
    _, _, state, step, _ = setup(train)
    fit(step, state, train, epochs=2, batch_size=32, seed=0, workdir=str(tmp_path),
        checkpoint_every=5, keep=3, progress=False)
    ck = Checkpoints(tmp_path / "checkpoints")
    steps = ck.steps()
    assert steps == [15, 20, 24]  # every 5 steps + epoch ends (12, 24), last 3 kept
    # corrupt the newest: remove its array data
    shutil.rmtree(os.path.join(ck.path(24), "state", "d"), ignore_errors=True)
    for sub in ("ocdbt.process_0",):
        shutil.rmtree(os.path.join(ck.path(24), "state", sub), ignore_errors=True)
    with pytest.raises(CheckpointError, match=r"checkpoint step 24 \(.*checkpoints/last/24\) is corrupt: state/.* is missing; other checkpoints kept: \[15, 20\]"):
        ck.restore(None, state)
    os.remove(os.path.join(ck.path(24), "checksums.json"))   # as an older jdl wrote it: orbax fails
    with pytest.raises(CheckpointError, match=r"checkpoints/last/24 is corrupt or unreadable.*Other checkpoints kept: \[15, 20\]"):
        ck.restore(None, state)
    good, loop = ck.restore(20, state)
    assert int(good.step) == 20 and loop["history"][0]["epoch"] == 1
    # incompatible: a different model's state
    _, _, other_state, _, _ = setup(train, model=MLP(hidden=(16,)))
    with pytest.raises(CheckpointError, match=r"incompatible with this model: 6 leaves differ, "
                                              r"e.g. .params\['Dense_0'\]\['bias'\]: \[\[32\], "
                                              r"\"float32\"\] stored, \[\[16\], \"float32\"\]"):
        ck.restore(20, other_state)   # refused from the run fingerprint, before orbax reads
    with pytest.raises(CheckpointError, match=r"no checkpoint at step 7.*kept steps: \[15, 20, 24\]"):
        ck.restore(7, state)


def test_early_stopping(digits_small):
    train, val = digits_small
    _, _, state, step, ev = setup(train, tx=sgd(1e-5, 0.0))  # too small to improve much
    r = fit(step, state, train, epochs=30, batch_size=32, eval_step=ev, val_data=val,
            monitor="val_loss", patience=1, progress=False)
    # with patience 1 the run stops at the first epoch whose val loss does not improve
    losses = [h["val_loss"] for h in r.history]
    assert r.stopped_early == (len(r.history) < 30)
    if r.stopped_early:
        assert losses[-1] >= min(losses[:-1])
        assert all(b < a for a, b in zip(losses[:-2], losses[1:-1]))


WORKER = textwrap.dedent("""
    import os, signal, sys, json, time
    import numpy as np, jax
    from jdl.data import digits, fit_normalizer
    from jdl.nn import MLP
    from jdl.optim import sgd, make_schedule
    from jdl.train import (TrainingInterrupted, backprop, evaluate_fn, fit, init_state,
                           make_eval_step, make_train_step)
    workdir, kill_at, resume = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
    pause = float(sys.argv[4]) if len(sys.argv) > 4 else 0.0   # seconds after each step
    tr = digits.load("train")
    norm = fit_normalizer(tr.images[:400])
    train = {{"x": norm(tr.images[:400]), "y": tr.labels[:400]}}
    val = {{"x": norm(tr.images[400:480]), "y": tr.labels[400:480]}}
    model = MLP(hidden=(32,), dropout_rate=0.3)
    tx = sgd(make_schedule("cosine", 0.05, total_steps=36), 0.9, l2=1e-4)
    state = init_state(model, tx, train["x"][:2], jax.random.PRNGKey(0))
    def on_step(s):
        if s == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        if pause:
            if s == 1:
                print("training", flush=True)
            time.sleep(pause)
    try:
        r = fit(make_train_step(backprop(model), tx), state, train, epochs=3, batch_size=32,
                eval_step=make_eval_step(evaluate_fn(model)), val_data=val, seed=1,
                workdir=workdir, checkpoint_every=7, log_every=5, resume=resume,
                on_step=on_step, progress=False)
    except TrainingInterrupted as e:   # what a command line does (jdl.runs.supervised)
        print(e, file=sys.stderr)
        sys.exit(e.exit_code)
    np.savez(os.path.join(workdir, "final.npz"),
             *[np.asarray(x) for x in jax.tree.leaves((r.state.params, r.state.opt_state))])
    json.dump(r.history, open(os.path.join(workdir, "history.json"), "w"))
""")


def worker_command(tmp_path, workdir, kill_at, resume, pause=None) -> list:
    """The command line of WORKER (written into tmp_path) training into ``workdir``."""
    script = tmp_path / "worker.py"
    if not script.exists():
        script.write_text(WORKER.format())
    return [sys.executable, str(script), str(workdir), str(kill_at), resume] + (
        [] if pause is None else [str(pause)])


WORKER_ENV = {**os.environ, "PYTHONPATH": ROOT}


def run_worker(tmp_path, workdir, kill_at, resume):
    return subprocess.run(worker_command(tmp_path, workdir, kill_at, resume), env=WORKER_ENV,
                          capture_output=True, text=True)


def assert_same_run(full, other):
    """Two WORKER runs ended with bit-identical parameters, optimiser state, history and
    metrics.jsonl."""
    a, b = np.load(full / "final.npz"), np.load(other / "final.npz")
    assert len(a.files) == len(b.files) > 0
    for k in a.files:
        np.testing.assert_array_equal(a[k], b[k])
    assert json.load(open(full / "history.json")) == json.load(open(other / "history.json"))
    assert read_metrics(str(full)) == read_metrics(str(other))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The workdir of one uninterrupted WORKER run, the reference of the kill/resume checks."""
    tmp = tmp_path_factory.mktemp("uninterrupted")
    assert run_worker(tmp, tmp / "full", -1, "0").returncode == 0
    return tmp / "full"


def test_resume_after_sigkill_matches_uninterrupted_run(tmp_path, uninterrupted):
    full, broken = uninterrupted, tmp_path / "broken"
    killed = run_worker(tmp_path, broken, 17, "0")
    assert killed.returncode == -signal.SIGKILL
    assert Checkpoints(broken / "checkpoints").latest_step() == 14  # died between checkpoints
    resumed = run_worker(tmp_path, broken, -1, "1")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert_same_run(full, broken)


def test_sigint_at_a_random_moment_then_resume_matches_uninterrupted_run(tmp_path,
                                                                        uninterrupted):
    """SIGINT sent from outside at a random moment of a run (30 ms per step): the step is
    finished, a checkpoint written, exit code 130 with one line on how to resume (no
    traceback); resuming ends bit-identical to an uninterrupted run."""
    full, cut = uninterrupted, tmp_path / "cut"
    delay = random.Random().uniform(0.0, 0.6)
    proc = subprocess.Popen(worker_command(tmp_path, cut, -1, "0", pause=0.03), env=WORKER_ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "training"
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, f"delay {delay:.3f} s: {err[-2000:]}"
    assert "Traceback" not in err, err[-2000:]
    lines = [l for l in err.splitlines() if "interrupted" in l]
    assert len(lines) == 1 and "resume=True" in lines[0], err[-2000:]
    step = int(re.search(r"after step (\d+)", lines[0]).group(1))
    assert 1 <= step < 36 and Checkpoints(cut / "checkpoints").latest_step() == step
    resumed = run_worker(tmp_path, cut, -1, "1")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert_same_run(full, cut)


def test_batch_norm_statistics_are_threaded_through_model_state(digits_small):
    class BNNet(nn.Module):
        @nn.compact
        def __call__(self, x, train=False):
            x = nn.Dense(16)(x.reshape(x.shape[0], -1))
            x = nn.BatchNorm(use_running_average=not train, momentum=0.5)(x)
            return nn.Dense(10)(nn.relu(x))

    train, val = digits_small
    model = BNNet()
    tx = sgd(0.05, 0.9, l2=1e-3)
    state = init_state(model, tx, train["x"][:2], jax.random.PRNGKey(0))
    assert "batch_stats" in state.model_state
    step = jax.jit(make_train_step(backprop(model), tx))
    batch = {"x": jnp.asarray(train["x"][:32]), "y": jnp.asarray(train["y"][:32])}
    new, _ = step(state, batch)
    h = np.asarray(batch["x"]).reshape(32, -1) @ np.asarray(state.params["Dense_0"]["kernel"]) \
        + np.asarray(state.params["Dense_0"]["bias"])
    np.testing.assert_allclose(new.model_state["batch_stats"]["BatchNorm_0"]["mean"],
                               0.5 * 0 + 0.5 * h.mean(0), rtol=1e-4, atol=1e-5)
    # weight decay never touches the BatchNorm scale/bias (1-D) -> with zero grads they'd stay
    r = fit(make_train_step(backprop(model), tx), state, train, epochs=2, batch_size=32,
            eval_step=make_eval_step(evaluate_fn(model)), val_data=val, progress=False)
    assert r.history[-1]["val_accuracy"] > 0.8


def test_quickstart_experiment_writes_its_outputs(tmp_path):
    out = subprocess.run([sys.executable, "experiments/quickstart.py", "--dataset", "digits",
                          "--epochs", "3", "--workdir", str(tmp_path), "--no-progress"],
                         cwd=ROOT, capture_output=True, text=True, env=ENV)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "quickstart: test accuracy" in out.stdout
    s = json.load(open(tmp_path / "summary.json"))
    assert s["test_accuracy"] > 0.85 and s["compile_time_s"] > 0 and s["samples_per_s"] > 0
    for f in ("config.json", "metrics.jsonl", "learning_curves.png", "filters.png"):
        assert (tmp_path / f).exists(), f
    cfg = json.load(open(tmp_path / "config.json"))
    assert cfg["epochs"] == 3 and cfg["resolved_dataset"] == "digits"


def test_step_with_batch_spec_names_expected_and_received(digits_small):
    from jdl.train.guards import spec_of
    train, _ = digits_small
    model, tx, state, _, _ = setup(train)
    step = jax.jit(make_train_step(backprop(model), tx, batch_spec=spec_of(train)))
    good = {"x": jnp.asarray(train["x"][:8]), "y": jnp.asarray(train["y"][:8])}
    step(state, good)
    with pytest.raises(DataError, match=r"batch\['x'\].*\(None, 8, 8, 1\)"):
        step(state, {"x": good["x"][:, :, :7], "y": good["y"]})
    with pytest.raises(DataError, match=r"batch\['y'\].*int32"):
        step(state, {"x": good["x"], "y": good["y"].astype(jnp.float32)})
    with pytest.raises(DataError, match=r"batch is missing 'y'"):
        step(state, {"x": good["x"]})


def test_fit_leaves_the_callers_state_usable(digits_small):
    train, _ = digits_small
    _, _, state, step, _ = setup(train)
    before = jax.tree.map(np.asarray, state.params)
    fit(step, state, train, epochs=1, batch_size=32, progress=False)
    assert tree_max_abs_diff(state.params, before) == 0.0  # not deleted by donation, not changed


def test_default_monitor_falls_back_to_what_the_run_reports(digits_small):
    """A model whose eval reports no accuracy (here: quadratic loss on one-hot targets via a
    custom eval) is monitored by val_loss without the caller naming it."""
    train, val = digits_small
    model, tx, state, step, _ = setup(train)
    from jdl.losses import quadratic_error

    def eval_step(s, batch):
        out = model.apply({"params": s.params}, batch["x"])
        return {"loss": quadratic_error(out, batch["y"], batch["mask"])}

    r = fit(step, state, train, epochs=2, batch_size=32, eval_step=eval_step, val_data=val,
            progress=False)
    assert "val_accuracy" not in r.history[0]
    assert r.best["val_loss"] == min(h["val_loss"] for h in r.history)


def test_experiment_run_starts_from_given_initial_params(tmp_path):
    # zero weights and an output bias favouring class 3 predict 3 everywhere; with a vanishing
    # learning rate the test accuracy is then the test set's share of class 3
    from jdl.data import digits as digits_data
    from jdl.runs.supervised import ExperimentConfig, run
    from jdl.nn import MLP
    cfg = ExperimentConfig(dataset="digits", epochs=1, learning_rate=1e-30, batch_size=64,
                           val_fraction=0.0, log_every=10)
    model = MLP(hidden=(16,), num_outputs=10)
    shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), np.zeros((1, 8, 8, 1)))["params"]
    zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
    zeros["Dense_1"]["bias"] = zeros["Dense_1"]["bias"].at[3].set(5.0)
    s = run(cfg, lambda c: model, str(tmp_path / "zeros"), progress=False, initial_params=zeros)
    labels = digits_data.load("test", seed=0).labels
    assert s["test_accuracy"] == pytest.approx(float(np.mean(labels == 3)), abs=1e-6)
    wrong = {"Dense_0": zeros["Dense_0"]}
    with pytest.raises(ValueError, match="initial_params do not match"):
        run(cfg, lambda c: model, str(tmp_path / "wrong"), progress=False, initial_params=wrong)
