"""Compiling once: train_rbm's step reused within a process, the persistent cache for experiments."""
import os

import jax
import numpy as np
import pytest
from jax import monitoring

from jdl import optim, rbm
from jdl.parallel import compilation_cache as cc

_EVENTS = []
monitoring.register_event_duration_secs_listener(lambda name, *a, **k: _EVENTS.append(name))


def _compiles_during(fn):
    start = len(_EVENTS)
    out = fn()
    return out, sum("backend_compile" in e for e in _EVENTS[start:])


def test_train_rbm_second_call_does_not_recompile(no_persistent_cache):
    x = (np.random.default_rng(0).random((40, 12)) < 0.4).astype(np.float32)
    tx = optim.sgd(0.05)
    call = lambda tx: rbm.train_rbm(x, 5, jax.random.PRNGKey(0), epochs=1, batch_size=10,  # noqa: E731
                                    tx=tx, persistent=True, verbose=False)
    first, n_first = _compiles_during(lambda: call(tx))
    second, n_second = _compiles_during(lambda: call(tx))
    assert n_first > 0 and n_second == 0
    # the reused program gives the same training as the first call
    for a, b in zip(jax.tree.leaves(first.state.params), jax.tree.leaves(second.state.params)):
        np.testing.assert_array_equal(a, b)
    # another optimiser object is another step: compiled again
    _, n_other = _compiles_during(lambda: call(optim.sgd(0.05)))
    assert n_other > 0


def test_jit_once_and_memoize():
    made = []
    f = lambda v: v  # noqa: E731
    make = lambda fn: made.append(fn) or jax.jit(fn)  # noqa: E731
    assert cc.jit_once(f, "t", make) is cc.jit_once(f, "t", make) and len(made) == 1
    assert cc.jit_once(f, "other", make) is not cc.jit_once(f, "t", make)
    assert cc.memoize(dict, a=1) is cc.memoize(dict, a=1)
    assert cc.memoize(dict, a=[1]) is not cc.memoize(dict, a=[1])   # unhashable: fresh


def test_persistent_cache_writes_and_is_reused(tmp_path, no_persistent_cache):
    directory = cc.enable_compilation_cache(str(tmp_path), min_compile_time_s=0.0)
    fn = lambda v: jax.numpy.tanh(v) @ v.T + 3.25  # noqa: E731
    jax.jit(fn)(np.ones((7, 5), np.float32)).block_until_ready()
    assert os.listdir(directory)
    hits = len([e for e in _EVENTS if "cache_hits" in e])
    # a new jit of the same program: loaded from the directory, not compiled
    _, n = _compiles_during(
        lambda: jax.jit(fn)(np.ones((7, 5), np.float32)).block_until_ready())
    assert n == 0 or len([e for e in _EVENTS if "cache_hits" in e]) > hits


@pytest.mark.parametrize("flag, on", [([], True), (["--no-compilation-cache"], False)])
def test_experiment_flag(flag, on, tmp_path, monkeypatch, no_persistent_cache):
    from jdl.runs.supervised import ExperimentConfig, parse_args
    monkeypatch.setenv(cc.ENV_DIR, str(tmp_path / "xla"))
    _, ns = parse_args(ExperimentConfig, flag)
    assert ns.compilation_cache is on
    assert (jax.config.jax_compilation_cache_dir == str(tmp_path / "xla")) is on
