"""Several train steps per compiled call: fit's path (``GatheredSteps``, what ``fit(...,
steps_per_call=k)`` calls) at k = 1, 8, 32 against a hand-written ``lax.scan`` of the same
step over the same gathered batches, for the small-step families.

    python benchmarks/steps_per_call.py [--families mlp rbm autoencoder lenet5] [--steps 256]
        [--rounds 5]

Families (batch 128 of random 28x28 data, 10,000 examples; the step as fit builds it):
  mlp          MLP 784-256-256-10, backprop, SGD + momentum
  rbm          RBM 784-256, PCD-1 (jdl.rbm.rbm_train_setup), SGD + momentum
  autoencoder  Autoencoder 784-256-64, squared error, SGD + momentum
  lenet5       LeNet-5, backprop, SGD + momentum (a CPU convnet: per-step cost dominates)
Variants, each run for ``--steps`` steps per round, rounds alternating:
  jdl k=1      GatheredSteps called once per step (host index array per call)
  jdl k=K      GatheredSteps called with (K, B) index arrays: lax.scan over K steps
  scan k=32    jax.jit(lax.scan(step over d[idx_t])) written by hand, state donated
Prints steps/s (median over rounds) and the speed-up over jdl k=1 (median of per-round ratios).
"""
from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

N, B = 10_000, 128


def family(name: str):
    """(step, state, data) for one family."""
    from jdl import nn as jnn
    from jdl import rbm
    from jdl.ae import autoencoder_grad_fn
    from jdl.optim import sgd
    from jdl.train import backprop, init_state, make_train_step
    rng = np.random.default_rng(0)
    tx = sgd(0.01, 0.9)
    key = jax.random.PRNGKey(0)
    if name == "rbm":
        x = (rng.random((N, 784)) < 0.3).astype(np.float32)
        params = rbm.init_params(key, 784, 256)
        step, state = rbm.rbm_train_setup(params, key, tx, batch_size=B, persistent=True)
        return step, state, {"x": x}
    x = rng.random((N, 28, 28, 1)).astype(np.float32)
    y = rng.integers(0, 10, N).astype(np.int32)
    if name == "autoencoder":
        model = jnn.Autoencoder(encoder=(256,), code=64)
        x = x.reshape(N, 784)
        state = init_state(model, tx, x[:B], key)
        return make_train_step(autoencoder_grad_fn(model), tx), state, {"x": x}
    model = jnn.MLP(hidden=(256, 256)) if name == "mlp" else jnn.LeNet5(activation="relu",
                                                                        pool="max")
    state = init_state(model, tx, x[:B], key)
    return make_train_step(backprop(model), tx), state, {"x": x, "y": y}


def hand_scan(step):
    def steps(s, d, idx):
        return lax.scan(lambda s_, i: step(s_, jax.tree.map(lambda a: a[i], d)), s, idx)
    return jax.jit(steps, donate_argnums=0)


def main(argv=None):
    from jdl.parallel import DataParallel
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--families", nargs="+", default=["mlp", "rbm", "autoencoder", "lenet5"])
    ap.add_argument("--steps", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args(argv)
    order = np.random.default_rng(1).integers(0, N, (a.steps, B)).astype(np.int32)
    print(f"# jax {jax.__version__}, batch {B}, {a.steps} steps per round, {a.rounds} rounds")
    print("| family | variant | steps/s | speed-up over jdl k=1 |\n|---|---|---|---|")
    for name in a.families:
        step, state0, data = family(name)
        gs = DataParallel.create(1).compile_gathered(step, state0, data, B)
        d_dev = gs.data
        scan = hand_scan(step)
        copy = lambda: jax.tree.map(jnp.array, gs.state)  # noqa: E731  (donated each run)

        def jdl_k(k):
            def run():
                s = copy()
                jax.block_until_ready(s)
                t0 = time.perf_counter()
                for c in range(0, a.steps, k):
                    s, _ = gs(s, order[c] if k == 1 else order[c:c + k])
                jax.block_until_ready(s)
                return time.perf_counter() - t0
            return run

        def hand():
            s = copy()
            idx = [order[c:c + 32] for c in range(0, a.steps, 32)]   # host indices, as fit's
            jax.block_until_ready(s)
            t0 = time.perf_counter()
            for i in idx:
                s, _ = scan(s, d_dev, i)
            jax.block_until_ready(s)
            return time.perf_counter() - t0
        variants = {"jdl k=1": jdl_k(1), "jdl k=8": jdl_k(8), "jdl k=32": jdl_k(32),
                    "scan k=32 (by hand)": hand}
        for run in variants.values():   # compile
            run()
        secs = {v: [] for v in variants}
        for _ in range(a.rounds):
            for v, run in variants.items():
                secs[v].append(run())
        for v in variants:
            ratio = statistics.median(b / s for b, s in zip(secs["jdl k=1"], secs[v]))
            print(f"| {name} | {v} | {a.steps / statistics.median(secs[v]):.0f} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
