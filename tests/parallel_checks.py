"""Data-parallel checks on 8 simulated CPU devices, run by tests/test_parallel.py in a
subprocess (the pytest process has one device):

    XLA_FLAGS=--xla_force_host_platform_device_count=8 JAX_PLATFORMS=cpu \
        python tests/parallel_checks.py a|b

Step checks: for each model family -- an MLP with dropout (flax's batch mask, the default, and
per-example keys), a batch-norm convnet, an RBM by CD-1, an LSTM by BPTT -- N = 3 train steps
on one device with the full batch, with parallel='pmap' and with parallel='sharded' over 8
devices: the max abs differences of params, model state and metrics from the one-device run.
Fit checks (part b): jdl.train.fit on 8 devices (PCD-1, chains split across devices),
resumption across device counts, checkpoints written on 8 devices restored on 1 and the
reverse. Prints one JSON object. Parts a and b (families split so that both take about as
long) run as two processes, side by side.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from jdl import optim, rbm
from jdl.nn import MLP, BNConvNet, SequenceModel
from jdl.parallel import DataParallel, compile_step, resolve_devices
from jdl.rnn import bptt
from jdl.train import (Checkpoints, backprop, create_state, fit, make_eval_step,
                       make_train_step)

D, B, STEPS = 8, 16, 3
MODES = ("pmap", "sharded")
# the two processes tests/test_parallel.py runs side by side, about equally long
PARTS = {"a": ("mlp_per_example_dropout", "bn_convnet", "rbm_cd1"),
         "b": ("mlp_dropout", "lstm_bptt")}                   # b: and the fit checks


def max_diff(a, b) -> float:
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(la) == len(lb), (len(la), len(lb))
    return max([float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64))))
                for x, y in zip(la, lb)] or [0.0])


def batches(data: dict, n: int = STEPS):
    return [{k: v[i * B:(i + 1) * B] for k, v in data.items()} for i in range(n)]


def numpy_state(model, x, tx, key):
    """A TrainState for ``model`` whose variables are drawn with numpy (shapes by
    jax.eval_shape): on XLA's CPU backend every jax.random draw site costs about a second of
    compilation, and the checks need any initial values, not flax's."""
    shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), x, train=False))
    rs = np.random.default_rng(3)

    def fill(path, leaf):
        name = jax.tree_util.keystr(path)
        if "batch_stats" in name or name.endswith("['scale']") or name.endswith("['bias']"):
            one = "var" in name or "scale" in name
            value = np.ones(leaf.shape) if one else np.zeros(leaf.shape)
        else:
            fan_in = int(np.prod(leaf.shape[:-1])) if len(leaf.shape) > 1 else 1
            value = rs.normal(size=leaf.shape) / np.sqrt(fan_in)
        return jnp.asarray(value, leaf.dtype)
    variables = dict(jax.tree_util.tree_map_with_path(fill, shapes))
    params = variables.pop("params")
    return create_state(params, tx, key, variables)


def families():
    rs = np.random.default_rng(0)
    key = jax.random.PRNGKey(0)
    tx = optim.sgd(0.1, 0.9)
    out = {}

    x = rs.normal(size=(STEPS * B, 12)).astype(np.float32)
    y = rs.integers(0, 4, STEPS * B).astype(np.int32)
    for name, per_example in (("mlp_dropout", False), ("mlp_per_example_dropout", True)):
        model = MLP(hidden=(32,), num_outputs=4, dropout_rate=0.3, per_example_dropout=per_example)
        out[name] = (make_train_step(backprop(model), tx), numpy_state(model, x[:2], tx, key),
                     batches({"x": x, "y": y}))

    img = rs.normal(size=(STEPS * B, 8, 8, 1)).astype(np.float32)
    model = BNConvNet(num_classes=4, features=(4, 8))
    out["bn_convnet"] = (make_train_step(backprop(model), tx),
                         numpy_state(model, img[:2], tx, key), batches({"x": img, "y": y}))

    v = (rs.random((STEPS * B, 12)) < 0.4).astype(np.float32)
    index = np.arange(STEPS * B, dtype=np.int32)
    params = {"W": jnp.asarray(rs.normal(size=(12, 8)) * 0.1, jnp.float32),
              "b": jnp.zeros(12, jnp.float32), "c": jnp.zeros(8, jnp.float32)}
    out["rbm_cd1"] = (make_train_step(rbm.contrastive_divergence(k=1), tx),
                      create_state(params, tx, key), batches({"x": v, "index": index}))

    seq = rs.normal(size=(STEPS * B, 5, 3)).astype(np.float32)
    target = np.cumsum(seq[..., :1], axis=1).astype(np.float32)
    model = SequenceModel("lstm", hidden=8, num_outputs=1)
    out["lstm_bptt"] = (make_train_step(bptt(model), tx), numpy_state(model, seq[:2], tx, key),
                        batches({"x": seq, "y": target}))
    return out


def step_checks(names) -> dict:
    res = {}
    for name, (step, state, bs) in families().items():
        if name not in names:
            continue
        one, m_one = state, []
        f = jax.jit(step)
        for b in bs:
            one, m = f(one, b)
            m_one.append(m)
        res[name] = {}
        for mode in MODES:
            g = compile_step(step, mode, devices=D)
            par, m_par = state, []
            for b in bs:
                par, m = g(par, b)
                m_par.append(m)
            res[name][mode] = {"params": max_diff(one.params, par.params),
                               "model_state": max_diff(one.model_state, par.model_state),
                               "metrics": max_diff(m_one, m_par),
                               "steps": int(par.step),
                               "params_sharding": str(jax.tree.leaves(par.params)[0].sharding.spec),
                               "num_devices": len(jax.tree.leaves(par.params)[0].devices())}
    return res


def pcd_problem():
    rs = np.random.default_rng(1)
    v = (rs.random((3 * B, 12)) < 0.4).astype(np.float32)
    tx = optim.sgd(0.1, 0.5)
    params = {"W": jnp.asarray(rs.normal(size=(12, 8)) * 0.1, jnp.float32),
              "b": jnp.zeros(12, jnp.float32), "c": jnp.zeros(8, jnp.float32)}
    chains = jnp.asarray(rs.random((B, 12)) < 0.5, jnp.float32)
    state = create_state(params, tx, jax.random.PRNGKey(1), {"chains": chains})

    def eval_fn(params, model_state, batch):  # masked mean free energy
        f = rbm.free_energy(params, batch["x"])
        return {"free_energy": jnp.sum(f * batch["mask"]) / jnp.sum(batch["mask"])}
    return (make_train_step(rbm.contrastive_divergence(k=1, persistent=True), tx), state,
            {"x": v}, dict(eval_step=make_eval_step(eval_fn), val_data={"x": v[:B + 3]}))


def fit_checks(tmp: str) -> dict:
    """PCD-1 (chains in model_state, batch['index'] added by fit) trained by fit for 2 epochs of
    3 steps with validation: on 1 device, writing checkpoints; on 8 'sharded', writing
    checkpoints; and from the 1-device checkpoint of step 3 resumed on 8 with 'pmap'. Then a
    checkpoint written on 8 devices restored on 1, and one written on 1 restored on 8."""
    step, state, data, ev = pcd_problem()
    kw = dict(batch_size=B, progress=False, log_every=1, tensorboard=False, epochs=2)
    wd8, wd1 = os.path.join(tmp, "eight"), os.path.join(tmp, "one")
    one = fit(step, state, data, devices=1, workdir=wd1, **ev, **kw)

    def compare(r, epochs=(0, 1)):
        chains = r.state.model_state["chains"]
        return {"params": max_diff(one.state.params, r.state.params),
                "model_state": max_diff(one.state.model_state, r.state.model_state),
                "history": max(abs(one.history[e][k] - r.history[e][k])
                               for e in epochs for k in r.history[e]),
                "num_devices": r.num_devices, "steps": int(r.state.step),
                "chain_shards": sorted({tuple(s.data.shape) for s in chains.addressable_shards}),
                "params_devices": len(r.state.params["W"].devices())}

    res = {"sharded": compare(fit(step, state, data, devices=D, parallel="sharded",
                                  workdir=wd8, **ev, **kw))}
    resumed = fit(step, state, data, devices=D, parallel="pmap", workdir=wd1, resume=True,
                  resume_step=3, **kw)
    res["pmap_resumed_from_one_device"] = compare(resumed, epochs=(1,))

    # a checkpoint written on 8 devices restored on 1
    ck = Checkpoints(os.path.join(wd8, "checkpoints"))
    restored, _ = ck.restore(6, jax.device_put(state, jax.devices()[0]))
    ck.close()
    res["restore_eight_on_one"] = {
        "diff": max_diff(restored, one.state),
        "devices": sorted({len(x.devices()) for x in jax.tree.leaves(restored)})}
    # one written on 1 device restored on 8 (the template in the 8-device layout) and on 1
    ck = Checkpoints(os.path.join(wd1, "checkpoints"))
    on_eight, _ = ck.restore(3, DataParallel.create(D).place_state(state, B))
    on_one, _ = ck.restore(3, jax.device_put(state, jax.devices()[0]))
    ck.close()
    chains = on_eight.model_state["chains"]
    res["restore_one_on_eight"] = {"diff": max_diff(on_eight, on_one),
                                   "chain_spec": str(chains.sharding.spec),
                                   "chain_devices": len(chains.devices()),
                                   "params_devices": len(on_eight.params["W"].devices())}

    # batch size not divisible by the devices: a clear error, or fewer devices when implicit
    try:
        fit(step, state, data, devices=D, epochs=1, batch_size=12)
        res["indivisible_error"] = None
    except ValueError as e:
        res["indivisible_error"] = str(e)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        res["implicit_devices"] = {"num_devices": len(resolve_devices(None, 12)),
                                   "warning": str(w[0].message) if w else None}
    return res


def main(part: str) -> None:
    assert jax.device_count() == D, f"need {D} devices, got {jax.devices()}"
    t0 = time.perf_counter()
    out = {"devices": jax.device_count(), "part": part, "steps": step_checks(PARTS[part])}
    if part == "b":
        with tempfile.TemporaryDirectory() as tmp:
            out["fit"] = fit_checks(tmp)
    out["seconds"] = time.perf_counter() - t0
    json.dump(out, sys.stdout)
    print()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "a")
