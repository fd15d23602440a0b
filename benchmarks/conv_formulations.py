"""The CPU convnet train step with each formulation of jdl's convolution, interleaved in one run.

    python benchmarks/conv_formulations.py [lenet5 convnet keras_example] [--steps 10] [--rounds 5]

Variants of ``jdl.nn.convolution.conv2d`` swapped in for the whole step (forward, both
gradients, pooling, optimiser; the models of benchmarks/sides.py, SGD + momentum + L2, batch
128, the Keras example 32):
  custom  jdl's conv2d: XLA's forward and dL/dx, dL/dk as kh*kw tap products (on CPU);
  xla     XLA's convolution and its own two gradients (what GPUs get);
  im2col  patches (conv_general_dilated_patches) times the reshaped kernel, autodiff gradients.
Prints each variant's median ms/step and the median of its per-round speed ratio to 'custom'.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from jax import lax  # noqa: E402

import jdl.nn.convolution as convolution  # noqa: E402
from benchmarks.sides import L2, LR, classifier_batches, jdl_model  # noqa: E402
from jdl.optim import sgd  # noqa: E402
from jdl.train import backprop, init_state, make_train_step  # noqa: E402

CUSTOM = convolution.conv2d


def xla(x, k, padding="SAME"):
    return convolution._conv(x, k, padding)


def im2col(x, k, padding="SAME"):
    kh, kw, cin, cout = k.shape
    p = lax.conv_general_dilated_patches(x, (kh, kw), (1, 1), padding,
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return p @ k.transpose(2, 0, 1, 3).reshape(cin * kh * kw, cout)   # patches: (c, kh, kw)


VARIANTS = {"custom": CUSTOM, "xla": xla, "im2col": im2col}
BATCH = {"lenet5": 128, "convnet": 128, "keras_example": 32}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="*", default=list(BATCH), choices=list(BATCH))
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args(argv)
    for name in a.models:
        model, tx = jdl_model(name, quick=False), sgd(LR, 0.9, l2=L2)
        x, y = classifier_batches(BATCH[name])[0]
        batch = {"x": jnp.asarray(x), "y": jnp.asarray(y)}
        runs = {}
        for v, fn in VARIANTS.items():   # Conv.__call__ looks conv2d up at trace time
            convolution.conv2d = fn
            try:
                state = init_state(model, tx, batch["x"], jax.random.PRNGKey(0))
                step = jax.jit(make_train_step(backprop(model), tx), donate_argnums=0)
                t0 = time.perf_counter()
                state = jax.block_until_ready(step(state, batch)[0])
                runs[v] = {"step": step, "state": state, "ms": [],
                           "compile_s": time.perf_counter() - t0}
            finally:
                convolution.conv2d = CUSTOM
        for _ in range(a.rounds):
            for r in runs.values():
                t0 = time.perf_counter()
                s = r["state"]
                for _ in range(a.steps):
                    s, _m = r["step"](s, batch)
                r["state"] = jax.block_until_ready(s)
                r["ms"].append(1e3 * (time.perf_counter() - t0) / a.steps)
        base = runs["custom"]["ms"]
        for v, r in runs.items():
            ratio = statistics.median(b / m for b, m in zip(base, r["ms"]))
            print(f"{name:14s} {v:7s} {statistics.median(r['ms']):8.1f} ms/step "
                  f"(speed vs custom x{ratio:.2f}; compile {r['compile_s']:.1f} s)", flush=True)


if __name__ == "__main__":
    main()
