"""Data parallelism (jdl.parallel): pmap and sharded jit on 8 simulated CPU devices equal one
device on the full batch, for every model family; fit and checkpoints across device counts.

The pytest process has one CPU device, so the 8-device checks run in two subprocesses
(tests/parallel_checks.py parts 'a' and 'b', side by side) with
XLA_FLAGS=--xla_force_host_platform_device_count=8; they print JSON that the tests below read.
"""
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from jdl.parallel import DataParallel, compile_step, per_device_batch, resolve_devices

HERE = os.path.dirname(os.path.abspath(__file__))
TOL = 1e-5
FAMILIES = ("mlp_dropout", "mlp_per_example_dropout", "bn_convnet", "rbm_cd1", "lstm_bptt")


@pytest.fixture(scope="module")
def eight_devices():
    path = os.pathsep.join([os.path.dirname(HERE), os.environ.get("PYTHONPATH", "")])
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=path,
               XLA_FLAGS="--xla_force_host_platform_device_count=8")
    script = os.path.join(HERE, "parallel_checks.py")
    procs = {part: subprocess.Popen([sys.executable, script, part], stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, env=env, text=True)
             for part in ("a", "b")}
    out = {"steps": {}}
    for part, p in procs.items():
        stdout, stderr = p.communicate(timeout=600)
        assert p.returncode == 0, f"parallel_checks.py {part} failed:\n{stderr[-4000:]}"
        res = json.loads(stdout.strip().splitlines()[-1])
        assert res["devices"] == 8
        out["steps"].update(res["steps"])
        out.update({k: v for k, v in res.items() if k == "fit"})
    return out


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("mode", ["pmap", "sharded"])
def test_data_parallel_steps_equal_one_device_on_the_full_batch(eight_devices, family, mode):
    r = eight_devices["steps"][family][mode]
    assert r["steps"] == 3
    assert r["num_devices"] == 8 and r["params_sharding"] == "P()"   # params replicated
    assert r["params"] <= TOL, r
    assert r["model_state"] <= TOL, r     # batch-norm statistics (synced), PCD chains
    assert r["metrics"] <= TOL, r


def test_fit_on_eight_devices_equals_one_device_and_splits_the_chains(eight_devices):
    f = eight_devices["fit"]
    for mode in ("sharded", "pmap_resumed_from_one_device"):
        r = f[mode]
        assert r["num_devices"] == 8 and r["steps"] == 6
        assert max(r["params"], r["model_state"], r["history"]) <= TOL, (mode, r)
        assert r["chain_shards"] == [[2, 12]]      # 16 PCD chains: 2 per device, not replicated
        assert r["params_devices"] == 8


def test_checkpoints_restore_across_device_counts(eight_devices):
    f = eight_devices["fit"]
    assert f["restore_eight_on_one"]["devices"] == [1]
    assert f["restore_eight_on_one"]["diff"] <= TOL
    r = f["restore_one_on_eight"]
    assert r["diff"] == 0.0
    assert r["chain_spec"] == "P('batch',)" and r["chain_devices"] == 8
    assert r["params_devices"] == 8


def test_batch_size_must_divide_by_the_devices(eight_devices):
    f = eight_devices["fit"]
    assert "not a multiple of the 8 devices" in f["indivisible_error"]
    assert f["implicit_devices"]["num_devices"] == 6          # largest divisor of 12 <= 8
    assert "training on 6 of them" in f["implicit_devices"]["warning"]


# --- one device (this process) -------------------------------------------------------------


def test_device_requests_are_checked():
    assert len(resolve_devices(None)) == jax.local_device_count()
    assert resolve_devices(1) == jax.local_devices()[:1]
    for bad in (0, jax.local_device_count() + 1):
        with pytest.raises(ValueError, match="local"):
            resolve_devices(bad)
    with pytest.raises(ValueError, match="multiple of 8"):
        per_device_batch(12, 8)
    with pytest.raises(ValueError, match="parallel mode"):
        compile_step(lambda s, b: (s, {}), mode="dp")


def test_pmap_refuses_a_step_that_does_not_average_its_gradients():
    dp = DataParallel.create(1, mode="pmap")
    with pytest.raises(ValueError, match="make_train_step"):
        dp.spmd(lambda state, batch: (state, {}), {"params": np.zeros(2)}, 4)


def test_jdl_dropout_is_flax_dropout_on_one_device():
    import flax.linen as nn
    import jax.numpy as jnp
    from jdl.nn import Dropout

    x = jnp.arange(1.0, 25.0).reshape(4, 6)
    key = jax.random.PRNGKey(3)

    @jax.jit
    def both(x):
        a = nn.Dropout(0.5).apply({}, x, deterministic=False, rngs={"dropout": key})
        b = Dropout(0.5).apply({}, x, deterministic=False, rngs={"dropout": key})
        c = Dropout(0.5, per_example=True).apply({}, x, deterministic=False, rngs={"dropout": key})
        return a, b, c
    a, b, c = both(x)
    np.testing.assert_array_equal(a, b)                       # bit for bit: results unchanged
    assert c.shape == x.shape and not np.array_equal(a, c)    # the per-example stream differs
    kept = np.asarray(c) != 0
    np.testing.assert_allclose(np.asarray(c)[kept], 2 * np.asarray(x)[kept])
