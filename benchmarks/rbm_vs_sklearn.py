"""jdl's RBM against scikit-learn's BernoulliRBM, side by side, on binarised Fashion-MNIST.

Both train on float32 data (scikit-learn's fastest; its time on float64 data, numpy's
default, is printed too) with scikit-learn's algorithm and settings: 500 hidden units, PCD-1 (persistent
chains, one Gibbs step per update), plain SGD with learning rate 0.05 on batch means, batches of
100, W ~ N(0, 0.01^2), zero biases, the same number of epochs. Then the same AIS code
(``jdl.rbm.ais_log_likelihood``: 100 chains, 14,500 temperatures, base-rate base model, several
independent runs) estimates both models' average test log-likelihood.

    python benchmarks/rbm_vs_sklearn.py                 # 10 epochs each, ~6 min here
    python benchmarks/rbm_vs_sklearn.py --epochs 2 --ais-betas 1000 --ais-runs 1   # smoke

Prints a table and writes runs/bench_rbm_vs_sklearn/results.json. Time per epoch is training
time only (data already in memory; jdl's one-off compilation reported separately).
"""
from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from jdl import optim, rbm  # noqa: E402
from jdl.data import binarize, fashion_mnist  # noqa: E402


def sklearn_params(model) -> dict:
    """A fitted sklearn BernoulliRBM as a jdl RBM params pytree."""
    return {"W": jnp.asarray(model.components_.T, jnp.float32),
            "b": jnp.asarray(model.intercept_visible_, jnp.float32),
            "c": jnp.asarray(model.intercept_hidden_, jnp.float32)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--hidden", type=int, default=500)
    ap.add_argument("--learning-rate", type=float, default=0.05)
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ais-chains", type=int, default=100)
    ap.add_argument("--ais-betas", type=int, default=14500)
    ap.add_argument("--ais-runs", type=int, default=3,
                    help="independent AIS runs per model; 0 skips the log-likelihoods (timing "
                         "only: both trainings are deterministic given --seed)")
    ap.add_argument("--sklearn-float64-epochs", type=int, default=1,
                    help="also time scikit-learn on float64 data for this many epochs")
    ap.add_argument("--max-train-examples", type=int, default=None)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--out", default="runs/bench_rbm_vs_sklearn")
    args = ap.parse_args(argv)

    from sklearn.neural_network import BernoulliRBM

    x_train = binarize(fashion_mnist.load("train", data_dir=args.data_dir).images)
    x_test = binarize(fashion_mnist.load("test", data_dir=args.data_dir).images)
    if args.max_train_examples:
        x_train = x_train[:args.max_train_examples]
    n = x_train.shape[0] - x_train.shape[0] % args.batch_size   # whole batches in both
    x_train = x_train[:n]
    print(f"binarised Fashion-MNIST: {n} train, {x_test.shape[0]} test images; "
          f"{args.hidden} hidden, PCD-1, lr {args.learning_rate}, batch {args.batch_size}, "
          f"{args.epochs} epochs; jax {jax.__version__} on {jax.devices()[0].platform}")

    # scikit-learn
    sk = BernoulliRBM(n_components=args.hidden, learning_rate=args.learning_rate,
                      batch_size=args.batch_size, n_iter=args.epochs, random_state=args.seed)
    t0 = time.perf_counter()
    sk.fit(x_train)
    sk_time = time.perf_counter() - t0
    print(f"scikit-learn: {sk_time:.1f} s, {sk_time / args.epochs:.2f} s/epoch")
    sk64_epoch = None
    if args.sklearn_float64_epochs:   # what X / 255 or a bool array gives: numpy's default
        sk64 = BernoulliRBM(n_components=args.hidden, learning_rate=args.learning_rate,
                            batch_size=args.batch_size, n_iter=args.sklearn_float64_epochs,
                            random_state=args.seed)
        t0 = time.perf_counter()
        sk64.fit(x_train.astype(np.float64))
        sk64_epoch = (time.perf_counter() - t0) / args.sklearn_float64_epochs
        print(f"scikit-learn on float64 data: {sk64_epoch:.2f} s/epoch")

    # jdl: same algorithm (sgd without momentum = lr times the batch-mean CD gradient)
    key = jax.random.PRNGKey(args.seed)
    result = rbm.train_rbm(x_train, args.hidden, key, epochs=args.epochs,
                           batch_size=args.batch_size, tx=optim.sgd(args.learning_rate),
                           k=1, persistent=True, reconstruction=False, seed=args.seed)
    jdl_time = result.train_time
    print(f"jdl: {jdl_time:.1f} s, {jdl_time / args.epochs:.2f} s/epoch "
          f"(+ {result.compile_time:.1f} s compilation once)")

    # the same AIS code for both models
    base = rbm.base_rate_bias(jnp.asarray(x_train))
    ais_key = jax.random.PRNGKey(1000 + args.seed)
    rows = {}
    models = (("scikit-learn", sklearn_params(sk)), ("jdl", result.state.params))
    for name, params in models if args.ais_runs > 0 else ():
        t0 = time.perf_counter()
        ll = rbm.ais_log_likelihood(params, x_test, ais_key, n_runs=args.ais_runs,
                                    n_chains=args.ais_chains, n_betas=args.ais_betas,
                                    base_visible_bias=base)
        ll["ais_time_s"] = time.perf_counter() - t0
        rows[name] = ll
        print(f"{name}: AIS test log-likelihood {ll['log_likelihood']:.2f} nats "
              f"(log Z {ll['log_z']:.2f} +- {ll['log_z_spread']:.2f} over {args.ais_runs} runs; "
              f"{ll['ais_time_s']:.0f} s)")

    ratio = jdl_time / sk_time
    summary = {"settings": vars(args), "n_train": int(n),
               "sklearn_s_per_epoch": sk_time / args.epochs,
               "sklearn_float64_s_per_epoch": sk64_epoch,
               "jdl_s_per_epoch": jdl_time / args.epochs,
               "jdl_compile_s": result.compile_time, "time_ratio_jdl_over_sklearn": ratio,
               "ais": rows}
    print()
    print(f"{'':14s}{'s/epoch':>10s}{'test LL (AIS)':>16s}{'log Z spread':>14s}")
    for name, seconds in (("scikit-learn", sk_time), ("jdl", jdl_time)):
        ll = rows.get(name, {"log_likelihood": float("nan"), "log_z_spread": float("nan")})
        print(f"{name:14s}{seconds / args.epochs:10.2f}{ll['log_likelihood']:16.2f}"
              f"{ll['log_z_spread']:14.2f}")
    print(f"time ratio jdl / scikit-learn: {ratio:.3f} (1/{1 / ratio:.1f})")
    if sk64_epoch:
        print(f"time ratio jdl / scikit-learn on float64 data: "
              f"{jdl_time / args.epochs / sk64_epoch:.3f}")
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(summary, f, indent=2)
    return summary


if __name__ == "__main__":
    main()
