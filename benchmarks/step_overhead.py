"""Framework overhead: jdl's train step and fit loop against a hand-written flax + optax step.

    python benchmarks/step_overhead.py [--steps 200] [--repeats 5]

For each model (the MLP of mlp_fashion at batch 128, the lecture's Keras convnet at batch 32),
both sides compute the same thing: softmax cross-entropy, dropout, SGD + momentum from
jdl.optim (an optax chain), jit with donated buffers, batches gathered on device from the
same index order. Measured, interleaved, after compilation:
  step:  jit(make_train_step(backprop(model), tx)) vs a hand-written value_and_grad + optax step;
  loop:  jdl.train.fit's training throughput (samples/s, compile and eval excluded) vs a
         hand-written Python loop over the same batches.
Ratios are jdl throughput / hand-written throughput (>= 0.95 is the acceptance bar).
"""
from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jdl.data import batch_indices
from jdl.nn import MLP, KerasExample
from jdl.optim import sgd
from jdl.train import backprop, fit, init_state, make_train_step


def data(n=6400):
    rng = np.random.default_rng(0)
    return {"x": rng.standard_normal((n, 28, 28, 1)).astype(np.float32),
            "y": rng.integers(0, 10, n).astype(np.int32)}


def hand_written(model, tx):
    def step(params, opt_state, key, x, y):
        def loss(p):
            logits = model.apply({"params": p}, x, train=True, rngs={"dropout": key})
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
        l, g = jax.value_and_grad(loss)(params)
        upd, opt_state = tx.update(g, opt_state, params)
        return optax.apply_updates(params, upd), opt_state, l
    return step


def time_steps(run, steps):
    t = time.perf_counter()
    run(steps)
    return time.perf_counter() - t


def bench(name, model, bs, steps, repeats):
    d = data()
    dev = jax.device_put(d)
    tx = sgd(0.01, 0.9)
    order = batch_indices(len(d["x"]), bs, seed=0, epoch=0)
    nb = len(order)

    jdl_step = jax.jit(lambda s, dd, i: make_train_step(backprop(model), tx)(
        s, {k: v[i] for k, v in dd.items()}), donate_argnums=0)
    hw = hand_written(model, tx)
    hw_step = jax.jit(lambda p, o, k, dd, i: hw(p, o, k, dd["x"][i], dd["y"][i]), donate_argnums=(0, 1))

    state = init_state(model, tx, d["x"][:bs], jax.random.PRNGKey(0))
    box = {"s": state}
    p0 = jax.tree.map(jnp.copy, state.params)
    hbox = {"p": p0, "o": tx.init(p0), "k": jax.random.PRNGKey(1)}

    def run_jdl(n):
        s = box["s"]
        for t in range(n):
            s, m = jdl_step(s, dev, order[t % nb])
        jax.block_until_ready(s)
        box["s"] = s

    def run_hw(n):
        p, o, k = hbox["p"], hbox["o"], hbox["k"]
        for t in range(n):
            p, o, l = hw_step(p, o, jax.random.fold_in(k, t), dev, order[t % nb])
        jax.block_until_ready(p)
        hbox["p"], hbox["o"] = p, o

    run_jdl(3), run_hw(3)  # compile
    tj, th = [], []
    for _ in range(repeats):
        tj.append(time_steps(run_jdl, steps))
        th.append(time_steps(run_hw, steps))
    step_ratio = statistics.median(th) / statistics.median(tj)

    # loop level: jdl.fit vs a hand-written epoch loop over the same batches
    fj, fh = [], []
    for _ in range(repeats):
        st = init_state(model, tx, d["x"][:bs], jax.random.PRNGKey(0))
        r = fit(make_train_step(backprop(model), tx), st, d, epochs=1, batch_size=bs,
                progress=False, log_every=50)
        fj.append(r.samples_per_s)
        t = time.perf_counter()
        run_hw(nb)
        fh.append(nb * bs / (time.perf_counter() - t))
    loop_ratio = statistics.median(fj) / statistics.median(fh)
    print(f"{name:<14} batch {bs:4d} | step: jdl {bs * steps / statistics.median(tj):8.0f} vs "
          f"hand {bs * steps / statistics.median(th):8.0f} samples/s, ratio {step_ratio:.3f} | "
          f"loop: jdl fit {statistics.median(fj):8.0f} vs hand {statistics.median(fh):8.0f}, "
          f"ratio {loop_ratio:.3f}")
    return step_ratio, loop_ratio


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args()
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}; ratios = jdl / hand-written throughput")
    bench("mlp_fashion", MLP(hidden=(1024, 1024), dropout_rate=0.3), 128, a.steps, a.repeats)
    bench("keras_example", KerasExample(), 32, a.steps, a.repeats)


if __name__ == "__main__":
    main()
