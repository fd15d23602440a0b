"""The fit loop's parts (jdl.train.loop, jdl.train.periodic, jdl.parallel.compile): periodic
actions, metric writers, the one place that adds batch['index'], the declared per-example
state, and no import-time side effects."""
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jdl.data import batch_indices
from jdl.parallel import DataParallel, gather
from jdl.train import create_state, fit, make_train_step, read_metrics
from jdl.train.periodic import PeriodicAction

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N, B = 24, 4


def linear_problem():
    """A least-squares step on a 3-vector (pure, cheap to compile) whose metrics expose the
    batch it saw: the sum of its global example indices."""
    tx = optax.sgd(0.1)
    rs = np.random.default_rng(0)
    data = {"x": rs.normal(size=(N, 3)).astype(np.float32),
            "y": rs.normal(size=N).astype(np.float32)}

    def grad_fn(params, model_state, batch, rng):
        def loss(w):
            return jnp.mean((batch["x"] @ w - batch["y"]) ** 2)
        value, g = jax.value_and_grad(loss)(params)
        index_sum = jnp.sum(batch["index"]).astype(jnp.float32)
        return g, model_state, {"loss": value, "index_sum": index_sum}
    step = make_train_step(grad_fn, tx)
    return step, create_state(jnp.zeros(3, jnp.float32), tx, jax.random.PRNGKey(0)), data


def test_periodic_action_cadence_against_brute_force():
    a = PeriodicAction(lambda s, st: None, every_steps=4, on_steps=(3, 9))
    assert [s for s in range(1, 21) if a.due(s)] == sorted({3, 9} | set(range(4, 21, 4)))
    for bad in (dict(), dict(every_steps=0), dict(every_secs=-1.0)):
        with pytest.raises(ValueError):
            PeriodicAction(lambda s, st: None, **bad)


def test_gather_adds_the_global_indices_once():
    data = {"x": np.arange(10.0) * 2}
    idx = np.array([7, 2, 5])
    batch = gather(data, idx)
    np.testing.assert_array_equal(batch["x"], data["x"][idx])
    np.testing.assert_array_equal(batch["index"], idx)
    assert np.asarray(batch["index"]).dtype == np.int32
    own = gather({**data, "index": np.arange(10) + 100}, idx)      # the data's own indices win
    np.testing.assert_array_equal(own["index"], idx + 100)
    assert "index" not in gather(data, idx, index_key=None)


def test_fit_hooks_writers_and_batch_indices(tmp_path):
    step, state, data = linear_problem()
    seen, records = [], []

    class Writer:
        def write(self, kind, step, metrics):
            records.append({"step": step, "kind": kind, **metrics})

    hook = PeriodicAction(lambda s, st: seen.append((s, int(st.step))), every_steps=5,
                          on_steps=(2,))
    r = fit(step, state, data, epochs=2, batch_size=B, log_every=3, progress=False,
            verbose=False, tensorboard=False, workdir=str(tmp_path), hooks=[hook],
            writers=[Writer()])
    steps = 2 * N // B
    assert seen == [(s, s) for s in range(1, steps + 1) if s == 2 or s % 5 == 0]
    assert records == read_metrics(str(tmp_path))        # the writer sees every record
    # batch['index'] is the epoch order's global indices (brute force)
    order = [batch_indices(N, B, 0, e) for e in range(2)]
    sums = np.concatenate([o.sum(axis=1) for o in order]).astype(float)
    for rec in r.history:
        e = rec["epoch"] - 1
        assert rec["train_index_sum"] == pytest.approx(sums[e * 6:(e + 1) * 6].mean())


def test_per_example_state_is_declared_not_guessed():
    chains = np.zeros((B, 5), np.float32)
    state = {"params": np.zeros((B, 5)),
             "model_state": {"chains": chains, "running": np.zeros((B, 5), np.float32)}}
    dp = DataParallel.create(1)
    spec = dp.state_shardings(state, B)
    assert spec["model_state"]["chains"].spec == jax.sharding.PartitionSpec("batch")
    for leaf in (spec["params"], spec["model_state"]["running"]):   # same shape, not declared
        assert leaf.spec == jax.sharding.PartitionSpec()
    declared = DataParallel.create(1, per_example=("running",)).state_shardings(state, B)
    assert declared["model_state"]["running"].spec == jax.sharding.PartitionSpec("batch")
    assert declared["model_state"]["chains"].spec == jax.sharding.PartitionSpec()
    with pytest.raises(ValueError, match=r"model_state\['chains'\] is declared per example"):
        dp.state_shardings(state, 2 * B)
    with pytest.raises(ValueError, match="collection of model_state keys"):
        DataParallel.create(1, per_example="chains")


def test_import_has_no_side_effects():
    code = ("import logging, sys, jdl.train\n"
            "assert not [m for m in sys.modules if m.startswith('orbax')], 'orbax imported'\n"
            "assert logging.getLogger('absl').level == logging.NOTSET\n"
            "import jdl.train.checkpoint\n"
            "assert 'orbax.checkpoint' not in sys.modules\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


def _run(tmp_path, name, **kw):
    step, state, data = linear_problem()
    wd = str(tmp_path / name)
    r = fit(step, state, data, epochs=2, batch_size=B, log_every=4, checkpoint_every=5,
            progress=False, verbose=False, tensorboard=False, workdir=wd, **kw)
    return r, read_metrics(wd), sorted(os.listdir(os.path.join(wd, "checkpoints", "last")))


def test_steps_per_call_is_bit_identical_to_one_step_per_call(tmp_path):
    one, log1, ck1 = _run(tmp_path, "one")
    for k in (4, 12):
        r, log, ck = _run(tmp_path, f"k{k}", steps_per_call=k)
        np.testing.assert_array_equal(np.asarray(r.state.params), np.asarray(one.state.params))
        assert r.history == one.history and log == log1 and ck == ck1
    # resumed: one epoch with k = 12, then continued with k = 4, ends where k = 1 ends
    step, state, data = linear_problem()
    wd = str(tmp_path / "resumed")
    kw = dict(batch_size=B, log_every=4, checkpoint_every=5, progress=False, verbose=False,
              tensorboard=False, workdir=wd)
    fit(step, state, data, epochs=1, steps_per_call=12, **kw)
    r = fit(step, state, data, epochs=2, resume=True, steps_per_call=4, **kw)
    np.testing.assert_array_equal(np.asarray(r.state.params), np.asarray(one.state.params))
    assert r.history == one.history and read_metrics(wd) == log1


def test_an_epoch_shorter_than_k_compiles_no_k_step_program(no_persistent_cache):
    """With N / B = 6 steps per epoch and k = 32, every call is one step: fit compiles the same
    programs as with k = 1 (no unused 32-step scan) and trains the same."""
    from jax import monitoring
    events = []
    monitoring.register_event_duration_secs_listener(
        lambda name, *a, **k: events.append(name) if "backend_compile" in name else None)
    runs = {}
    for k in (1, 1, 32):   # the first run also compiles the loop's own helpers: not counted
        step, state, data = linear_problem()      # a fresh step: nothing reused in-process
        start = len(events)
        r = fit(step, state, data, epochs=2, batch_size=B, steps_per_call=k,
                progress=False, verbose=False, tensorboard=False)
        runs[k] = (len(events) - start, np.asarray(r.state.params))
    assert runs[1][0] > 0 and runs[32][0] == runs[1][0]
    np.testing.assert_array_equal(runs[32][1], runs[1][1])


def test_nan_guard_names_the_same_step_with_several_steps_per_call():
    step, state, data = linear_problem()
    order = batch_indices(N, B, 0, 0)
    data["x"][order[3][1]] = np.nan                      # the 4th step's batch holds a NaN
    for k in (1, 4):
        with pytest.raises(FloatingPointError, match="at step 4 "):
            fit(step, state, data, epochs=1, batch_size=B, progress=False, verbose=False,
                steps_per_call=k)
