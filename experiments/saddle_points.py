"""Saddle points along an MLP's training (the lecture: "saddle points dominate in high-Dim";
Dauphin et al. 2014): at checkpoints of the training, the loss Hessian's extreme eigenvalues and
its index (the fraction of negative eigenvalues) against the training loss.

    python experiments/saddle_points.py [--workdir runs/saddle_points] [--hidden 16] [--k 96]

The data are scikit-learn's 8x8 digits (1,437 training images, standardised), not Fashion-MNIST:
the Hessian studied is the one of the *full* training loss L(w) = mean cross-entropy over every
training example (minibatch Hessians would add sampling noise to the index), and on the digits
one Hessian-vector product over the whole set costs about as much as one gradient step on a
minibatch of Fashion-MNIST; the net (64-16-10, tanh, 1,210 parameters) is small enough for the
dense Hessian to be formed too, as a check on the matrix-free estimates. It is trained by
full-batch gradient descent with momentum (jdl.optim.sgd, lambda = 0.1, mu = 0.9), the very loss
whose Hessian is measured.

At each checkpoint (steps 0, 5, 20, 50, 100, 200, 500, 1000, 2000, 4000):
- lambda_min, lambda_max from k Lanczos steps on Hessian-vector products (jdl.analysis, no
  dense Hessian);
- the index by stochastic Lanczos quadrature (``--probes`` Rademacher probes, k steps each), the
  fraction of eigenvalues below -threshold with threshold = 0 and with threshold
  ``--rel-threshold`` * lambda_max (the Hessian's bulk of near-zero eigenvalues, Sagun et al.
  2017, splits almost evenly on either side of 0: the thresholded index counts clearly negative
  curvature only);
- the same from the dense Hessian's eigenvalues (``--dense``, default on), the exact reference;
- the training loss, accuracy and gradient norm ||grad L|| (the points are on the training
  path, not critical points: the gradient norm says how far they are from one).

Outputs in the workdir: summary.json (every checkpoint's figures), index_vs_loss.png (index
against training loss, Dauphin et al.'s figure 1 axes), spectrum.png (extreme eigenvalues and
index against step; the SLQ density at the first and last checkpoints).

Result (seed 0, default settings; 110 s of CPU, 42 min wall on the 2 cores shared with ~20
other processes -- the process got 4% of a core):

    step  train loss  lambda_min  lambda_max  index: dense  SLQ thr  dense thr
                                                        (thr: below -0.01 lambda_max)
       0   2.667      -2.12        3.65          0.505      0.141    0.135
       5   1.875      -0.944       3.75          0.365      0.104    0.101
      20   0.534      -0.164       2.08          0.272      0.047    0.048
      50   0.146      -0.0416      1.67          0.245      0.010    0.010
     100   0.068      -0.0185      1.38          0.217      0.002    0.002
     200   0.033      -0.0102      1.30          0.194      0        0
     500   0.011      -0.00172     0.708         0.180      0        0
    1000   0.0049     -0.00083     0.380         0.177      0        0
    2000   0.0023     -0.00044     0.200         0.175      0        0
    4000   0.0011     -0.00017     0.104         0.177      0        0

- Lanczos (96 steps, no dense Hessian) gives lambda_min and lambda_max equal to the dense
  Hessian's to 1e-6 relative (float32) at every checkpoint.
- The lecture's claim, by the numbers: the index falls with the loss. The exact index (dense
  eigenvalues < 0) falls from 0.505 at the start to 0.175 (Spearman rank correlation with the
  loss +0.96; flat within 0.002 over the last three checkpoints); the fraction of clearly negative
  curvature (below -1% of lambda_max) falls from 0.135 to 0 by step 200 (loss 0.033), and the
  most negative eigenvalue shrinks 12,000-fold (-2.12 to -1.7e-4) while lambda_max shrinks 35-fold.
  What remains at low loss is a bulk of tiny eigenvalues of either sign (the 17 exact zeros of
  the softmax's shift invariance included), i.e. nearly flat directions, not saddles.
- These are points of the training path, not critical points (||grad L|| falls from 1.1 to
  5e-4): the check is of the trend Dauphin et al. show for critical points, along the path.
- The SLQ index with the threshold resolves the exact one (within 0.006 everywhere); at
  threshold 0 it does not (0.07 to 0.71 against 0.18 to 0.51): a 96-node quadrature cannot place
  the step at 0 inside the bulk of near-zero eigenvalues, one Ritz value there carries the
  weight of all of them (see jdl.analysis.hessian).
"""
from __future__ import annotations

import dataclasses
import os
import time

import numpy as np

from jdl.runs import run_dir  # noqa: E402
from jdl.runs.command_line import option, script  # noqa: E402
from jdl.runs.supervised import ACTIVATIONS, answer_help, start  # noqa: E402


@dataclasses.dataclass
class SaddleConfig:
    hidden: int = option(16, "hidden units of the 64-H-10 MLP", low=1)
    activation: str = option("tanh", "the hidden layer's activation", choices=ACTIVATIONS)
    learning_rate: float = 0.1          # full-batch gradient descent's learning rate lambda
    momentum: float = 0.9               # momentum mu, in [0, 1)
    steps: int = option(4000, "training steps: the checkpoints 0, 5, 20, ..., 4000 up to this "
                        "one are measured", low=0)
    k: int = option(96, "Lanczos steps (of Hessian-vector products) per estimate", low=1)
    probes: int = option(8, "Rademacher probes of the SLQ index", low=1)
    rel_threshold: float = 1e-2         # index threshold, relative to lambda_max
    dense: bool = True                  # also the dense Hessian's eigenvalues (the reference)
    seed: int = 0                       # seed of the initialisation and the probes


if __name__ == "__main__":   # --help before importing JAX: it answers at once
    answer_help(SaddleConfig, "saddle_points", __doc__, checkpoints=False)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402
from jax.flatten_util import ravel_pytree  # noqa: E402

from jdl import analysis, optim  # noqa: E402
from jdl.data import digits, fit_normalizer  # noqa: E402
from jdl.losses import accuracy, cross_entropy  # noqa: E402
from jdl.nn import MLP  # noqa: E402

CHECKPOINTS = (0, 5, 20, 50, 100, 200, 500, 1000, 2000, 4000)


def load_data():
    tr = digits.load("train")
    norm = fit_normalizer(tr.images)
    return jnp.asarray(norm(tr.images)).reshape(len(tr.labels), -1), jnp.asarray(tr.labels)


def curvature(loss_fn, unravel, cfg: SaddleConfig):
    """measure(params, key) -> the curvature figures at one point: Lanczos extremes, SLQ index,
    and the dense reference (``unravel``: flat vector -> params, jax.flatten_util.ravel_pytree;
    each jitted function is compiled once, for every checkpoint)."""
    spectrum = jax.jit(lambda p, r: analysis.hessian_spectrum(loss_fn, p, r, cfg.k, cfg.probes))
    dense_hessian = jax.jit(jax.hessian(lambda f: loss_fn(unravel(f))))

    def measure(params, key) -> dict:
        spec = spectrum(params, key)
        lmax = float(spec.lambda_max)
        thr = cfg.rel_threshold * abs(lmax)
        out = {"lambda_min": float(spec.lambda_min), "lambda_max": lmax, "threshold": thr}
        for name, t in (("index", 0.0), ("index_thr", thr)):
            a, se = analysis.index(spec, t)
            out[name], out[name + "_se"] = float(a), float(se)
        out["slq_nodes"] = np.asarray(spec.nodes).tolist()
        out["slq_weights"] = np.asarray(spec.weights).tolist()
        if cfg.dense:
            H = dense_hessian(ravel_pytree(params)[0])
            lam = np.linalg.eigvalsh(np.asarray(H, np.float64))
            out.update(dense_lambda_min=float(lam[0]), dense_lambda_max=float(lam[-1]),
                       dense_index=float(np.mean(lam < 0)),
                       dense_index_thr=float(np.mean(lam < -thr)))
        return out
    return measure


def run(cfg: SaddleConfig, workdir: str) -> dict:
    t_start = time.perf_counter()
    os.makedirs(workdir, exist_ok=True)
    x, y = load_data()
    model = MLP(hidden=(cfg.hidden,), num_outputs=10, activation=cfg.activation)
    key = jax.random.PRNGKey(cfg.seed)
    params = model.init(key, x[:1])["params"]

    def loss_fn(p):
        return cross_entropy(model.apply({"params": p}, x), y)

    tx = optim.sgd(cfg.learning_rate, cfg.momentum)

    @jax.jit
    def train(params, opt_state, n):
        def body(_, carry):
            p, s = carry
            g = jax.grad(loss_fn)(p)
            u, s = tx.update(g, s, p)
            return optax.apply_updates(p, u), s
        return jax.lax.fori_loop(0, n, body, (params, opt_state))

    @jax.jit
    def stats(p):
        logits = model.apply({"params": p}, x)
        g = ravel_pytree(jax.grad(loss_fn)(p))[0]
        return cross_entropy(logits, y), accuracy(logits, y), jnp.linalg.norm(g)

    flat, unravel = ravel_pytree(params)
    measure = curvature(loss_fn, unravel, cfg)
    opt_state, step, rows = tx.init(params), 0, []
    n_params = int(flat.size)
    for target in [c for c in CHECKPOINTS if c <= cfg.steps]:
        if target > step:
            params, opt_state = train(params, opt_state, target - step)
            step = target
        t0 = time.perf_counter()
        loss, acc, gnorm = (float(v) for v in stats(params))
        row = {"step": step, "loss": loss, "accuracy": acc, "grad_norm": gnorm,
               **measure(params, jax.random.fold_in(key, step)),
               "measure_s": time.perf_counter() - t0}
        rows.append(row)
        print(f"step {step:5d} loss {loss:.4f} acc {acc:.3f} |g| {gnorm:.2e} "
              f"lambda [{row['lambda_min']:+.3e}, {row['lambda_max']:.3e}] "
              f"index {row['index']:.3f}+-{row['index_se']:.3f} "
              f"(thr {row['index_thr']:.3f})"
              + (f" dense {row['dense_index']:.3f} (thr {row['dense_index_thr']:.3f})"
                 if cfg.dense else ""), flush=True)
    losses = np.array([r["loss"] for r in rows])
    idx = np.array([r["index_thr"] for r in rows])
    summary = {"experiment": "saddle_points", "test": None,
               "test_model": "none: no test set; the figures are of the full training loss's "
                             "Hessian at the checkpoints of training (under checkpoints)",
               "resumed": False,
               "config": dataclasses.asdict(cfg), "n_params": n_params,
               "n_train": int(len(y)), "checkpoints": rows,
               # Spearman rank correlation between loss and (thresholded) index: +1 when the
               # index falls exactly as the loss falls
               "spearman_loss_index_thr": spearman(losses, idx),
               "spearman_loss_index": spearman(losses, np.array([r["index"] for r in rows])),
               **({"spearman_loss_dense_index": spearman(
                   losses, np.array([r["dense_index"] for r in rows]))} if cfg.dense else {}),
               "wall_time_s": time.perf_counter() - t_start}
    plot(rows, workdir, cfg)
    return run_dir.RunDir(workdir).write_summary(summary)


def spearman(a, b) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def plot(rows, workdir, cfg):
    from jdl.runs import plots

    loss = [r["loss"] for r in rows]
    fig = plots.figure(figsize=(5.5, 4))
    ax = fig.subplots()
    for key, style, label in (("index", "o-", "SLQ index (theta < 0)"),
                              ("index_thr", "s-", f"SLQ index (theta < -{cfg.rel_threshold:g} "
                                                   "lambda_max)")):
        ax.errorbar(loss, [r[key] for r in rows], yerr=[2 * r[key + "_se"] for r in rows],
                    fmt=style, ms=4, capsize=2, label=label)
    if cfg.dense:
        ax.plot(loss, [r["dense_index"] for r in rows], "k+", ms=9, label="dense (theta < 0)")
        ax.plot(loss, [r["dense_index_thr"] for r in rows], "kx", ms=7, label="dense (thr)")
    for r in rows:
        ax.annotate(str(r["step"]), (r["loss"], r["index_thr"]), fontsize=7,
                    xytext=(3, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("training loss (cross-entropy)")
    ax.set_ylabel("index (fraction of negative eigenvalues)")
    ax.set_title("index vs loss along training (labels: step)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    plots.save(fig, os.path.join(workdir, "index_vs_loss.png"), dpi=110)

    fig = plots.figure(figsize=(11, 4))
    axes = fig.subplots(1, 2)
    steps = [max(r["step"], 1) for r in rows]
    axes[0].plot(steps, [r["lambda_max"] for r in rows], "o-", label="lambda_max (Lanczos)")
    axes[0].plot(steps, [-r["lambda_min"] for r in rows], "s-", label="-lambda_min (Lanczos)")
    if cfg.dense:
        axes[0].plot(steps, [r["dense_lambda_max"] for r in rows], "k+", label="dense")
        axes[0].plot(steps, [-r["dense_lambda_min"] for r in rows], "k+")
    axes[0].set_xscale("log")
    axes[0].set_yscale("log")
    axes[0].set_xlabel("step (0 drawn at 1)")
    axes[0].set_title("extreme eigenvalues of the Hessian")
    axes[0].legend(fontsize=8)
    axes[0].grid(alpha=0.3)
    for r, c in ((rows[0], "C0"), (rows[-1], "C3")):
        nodes = np.ravel(r["slq_nodes"])
        w = np.ravel(r["slq_weights"]) / len(r["slq_nodes"])
        t = np.linspace(nodes.min(), nodes.max(), 600)
        sigma = 0.01 * (nodes.max() - nodes.min())
        dens = (w[None, :] * np.exp(-0.5 * ((t[:, None] - nodes[None, :]) / sigma) ** 2)
                / (sigma * np.sqrt(2 * np.pi))).sum(1)
        axes[1].semilogy(t, np.maximum(dens, 1e-6), c, label=f"step {r['step']}")
    axes[1].set_xlabel("eigenvalue")
    axes[1].set_ylabel("SLQ density (Gaussian-smoothed)")
    axes[1].set_title("spectral density of the Hessian")
    axes[1].legend(fontsize=8)
    axes[1].grid(alpha=0.3)
    plots.save(fig, os.path.join(workdir, "spectrum.png"), dpi=110)


@script("saddle_points", SaddleConfig)
def main(argv=None):
    cfg, ns = start(SaddleConfig, "saddle_points", argv, __doc__, checkpoints=False)
    workdir = ns.workdir
    s = run(cfg, workdir)
    print(f"Spearman(loss, index thr) = {s['spearman_loss_index_thr']:+.3f}, "
          f"(loss, index) = {s['spearman_loss_index']:+.3f} | wall "
          f"{s['wall_time_s']:.0f} s | outputs in {workdir}")
    return s


if __name__ == "__main__":
    main()
