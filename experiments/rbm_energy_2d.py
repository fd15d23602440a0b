"""The lecture's 2-D picture of an RBM ("learnt energy function: minima created where data points
are"): a Gaussian-Bernoulli RBM trained on 2-D points from a mixture of Gaussian clusters, its
free-energy landscape F(v) as a contour plot with the data on it, and samples from the model
(Gibbs chains) on top.

    python experiments/rbm_energy_2d.py [--workdir runs/rbm_energy_2d] [--hidden 16]

Model (jdl.rbm, Gaussian visible units of unit variance, Hinton 2010 section 13.2):

    F(v) = ||v - b||^2 / 2 - sum_j softplus(c_j + (v W)_j),     p(v) = exp(-F(v)) / Z,

i.e. a mixture of 2^H unit-variance Gaussians centred at b + W h, one per hidden configuration
h. The data: ``clusters`` centres at radius ``radius`` around the origin (a regular polygon),
each cluster an isotropic Gaussian of standard deviation ``cluster_std`` (1 by default: the
model's own noise level; jdl's Gaussian units have sigma = 1, so the data are measured in units
of that noise rather than standardised as a whole). Training: CD-10 with ``jdl.rbm.train_rbm``,
SGD with momentum (lambda = 0.01, mu = 0.9), 200 epochs of batches of 100.

Measured and written to summary.json:
- F at each cluster centre, at the midpoints between neighbouring centres and at the origin,
  and (the lecture's claim) the gap mean F(midpoints) - mean F(centres) > 0;
- exact average log-likelihood of held-out points (log Z by enumerating the 2^H hidden
  configurations, jdl.rbm.log_likelihood) against the true mixture's;
- ``chains`` Gibbs chains from N(0, 4 I) run ``gibbs_steps`` steps: the fraction of samples
  within 2 standard deviations of a centre and the fraction per cluster (1/clusters each for a
  faithful model).
Plot: landscape.png (contours of F with the data and the samples).

Result (seed 0, default settings; 16 s of CPU, 8 min 24 s wall on the 2 cores shared with ~20 other
processes; the same figures on a second run): minima of F where the data are --

    F at the 5 centres     -22.01 -22.15 -22.40 -22.55 -22.34   (mean -22.29)
    F at the 5 midpoints   -19.74 -20.19 -20.23 -20.27 -20.06   (mean -20.10; +2.19 above)
    F at the origin        -17.52
    test log-likelihood    -4.507 nats per point (true mixture -4.445)
    Gibbs samples (1,000 chains, 1,000 steps): 78.5% within 2 std of a centre (data: 86.2%),
    118 / 152 / 173 / 180 / 162 per cluster.

exp(-2.19) = 0.11: the model's density between two clusters is a ninth of that at a centre. What
did not work: PCD-1 at lambda 0.01, 100 epochs collapsed (samples 757 of 766 in one cluster, F
not lowest at the centres, log-likelihood -13.2); PCD-1 at lambda 0.05, mu 0.5, 200 epochs put
the minima at the centres (+2.52) but sampled the clusters unevenly (17 / 31 / 11 / 119 / 578,
log-likelihood -5.63).
"""
from __future__ import annotations

import dataclasses
import os
import time

import numpy as np

from jdl.runs import run_dir  # noqa: E402
from jdl.runs.command_line import option, script  # noqa: E402
from jdl.runs.supervised import answer_help, start  # noqa: E402


@dataclasses.dataclass
class Energy2DConfig:
    clusters: int = option(5, "Gaussian clusters, centred on a regular polygon", low=1)
    radius: float = 5.0                 # distance of the cluster centres from the origin
    cluster_std: float = 1.0            # standard deviation of each cluster (the data's noise)
    n_train: int = option(2000, "training points", low=1)
    n_test: int = option(2000, "held-out points of the test log-likelihood", low=1)
    hidden: int = option(16, "hidden units (log Z enumerates their 2^H configurations)", low=1)
    learning_rate: float = 0.01         # SGD learning rate lambda
    momentum: float = 0.9               # SGD momentum mu, in [0, 1)
    batch_size: int = option(100, "points per update", low=1)
    epochs: int = option(200, "passes over the training points", low=0)
    k: int = option(10, "Gibbs steps per update (CD-k / PCD-k)", low=1)
    persistent: bool = False            # persistent chains (PCD-k, Tieleman 2008), else CD-k
    chains: int = option(1000, "Gibbs chains sampled from the trained model", low=1)
    gibbs_steps: int = option(1000, "Gibbs steps of each sampling chain", low=0)
    seed: int = 0                       # seed of the data, the initialisation and the chains


if __name__ == "__main__":   # --help before importing JAX: it answers at once
    answer_help(Energy2DConfig, "rbm_energy_2d", __doc__, checkpoints=False)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from jdl import optim, rbm  # noqa: E402


def centres(cfg: Energy2DConfig) -> np.ndarray:
    angle = 2 * np.pi * np.arange(cfg.clusters) / cfg.clusters + np.pi / 2
    return cfg.radius * np.stack([np.cos(angle), np.sin(angle)], axis=1)


def sample_mixture(rng: np.random.Generator, cfg: Energy2DConfig, n: int):
    labels = rng.integers(0, cfg.clusters, n)
    return (centres(cfg)[labels] + cfg.cluster_std * rng.normal(size=(n, 2))).astype(
        np.float32), labels


def mixture_log_density(x, cfg: Energy2DConfig):
    """log of the true density: (1/K) sum_k N(x; mu_k, s^2 I)."""
    d2 = ((x[:, None, :] - centres(cfg)[None]) ** 2).sum(-1) / cfg.cluster_std ** 2
    log_n = -0.5 * d2 - np.log(2 * np.pi * cfg.cluster_std ** 2)
    m = log_n.max(1, keepdims=True)
    return (m[:, 0] + np.log(np.exp(log_n - m).mean(1)))


def run(cfg: Energy2DConfig, workdir: str, progress: bool = False) -> dict:
    t_start = time.perf_counter()
    os.makedirs(workdir, exist_ok=True)
    rng = np.random.default_rng(cfg.seed)
    x_train, _ = sample_mixture(rng, cfg, cfg.n_train)
    x_test, _ = sample_mixture(rng, cfg, cfg.n_test)
    key = jax.random.PRNGKey(cfg.seed)
    res = rbm.train_rbm(x_train, cfg.hidden, key, epochs=cfg.epochs,
                        batch_size=cfg.batch_size,
                        tx=optim.sgd(cfg.learning_rate, cfg.momentum), k=cfg.k,
                        persistent=cfg.persistent, visible="gaussian", seed=cfg.seed,
                        progress=progress, init_scale=0.1)
    params = res.state.params
    F = jax.jit(lambda v: rbm.free_energy(params, v, "gaussian"))

    mu = centres(cfg)
    mids = 0.5 * (mu + np.roll(mu, -1, axis=0))
    f_centres, f_mids = np.asarray(F(jnp.asarray(mu))), np.asarray(F(jnp.asarray(mids)))
    f_origin = float(F(jnp.zeros((1, 2)))[0])
    log_z = rbm.log_partition(params, "gaussian")
    ll_model = float(jnp.mean(rbm.log_likelihood(params, x_test, "gaussian", log_z)))
    ll_true = float(np.mean(mixture_log_density(x_test, cfg)))

    v0 = 2.0 * jax.random.normal(jax.random.fold_in(key, 7), (cfg.chains, 2))
    samples = np.asarray(jax.jit(lambda v, r: rbm.gibbs_chain(
        params, v, r, cfg.gibbs_steps, "gaussian"))(v0, jax.random.fold_in(key, 8)))
    d = np.sqrt(((samples[:, None, :] - mu[None]) ** 2).sum(-1))
    nearest = d.argmin(1)
    near = d.min(1) < 2 * cfg.cluster_std
    # the same statistic for the data itself, the reference
    d_test = np.sqrt(((x_test[:, None, :] - mu[None]) ** 2).sum(-1))

    out = {"experiment": "rbm_energy_2d", "test": {"log_likelihood": ll_model},
           "test_model": f"final RBM (after {cfg.epochs} epochs); log-likelihood per held-out "
                         "point in nats, exact (log Z by enumeration)",
           "resumed": False, "config": dataclasses.asdict(cfg),
           "free_energy_centres": f_centres.tolist(), "free_energy_midpoints": f_mids.tolist(),
           "free_energy_origin": f_origin,
           "midpoint_minus_centre": float(f_mids.mean() - f_centres.mean()),
           "log_z": float(log_z), "test_log_likelihood": ll_model,
           "true_mixture_log_likelihood": ll_true,
           "samples_within_2std": float(near.mean()),
           "data_within_2std": float((d_test.min(1) < 2 * cfg.cluster_std).mean()),
           "samples_per_cluster": np.bincount(nearest[near], minlength=cfg.clusters).tolist(),
           "train_time_s": res.train_time + res.compile_time}
    plot(params, x_train, samples, mu, os.path.join(workdir, "landscape.png"), cfg)
    out["wall_time_s"] = time.perf_counter() - t_start
    return run_dir.RunDir(workdir).write_summary(out)


def plot(params, data, samples, mu, path, cfg):
    from jdl.runs import plots

    lim = cfg.radius + 3.5 * cfg.cluster_std
    g = np.linspace(-lim, lim, 241)
    X, Y = np.meshgrid(g, g)
    grid = jnp.asarray(np.stack([X.ravel(), Y.ravel()], 1), jnp.float32)
    Fg = np.asarray(rbm.free_energy(params, grid, "gaussian")).reshape(X.shape)
    fig = plots.figure(figsize=(12, 5.4))
    axes = fig.subplots(1, 2)
    for ax, pts, label, c in ((axes[0], data, "training data", "k"),
                              (axes[1], samples, "model samples (Gibbs)", "r")):
        # levels over the lower part of F only (the quadratic far field would take them all)
        levels = np.linspace(Fg.min(), np.percentile(Fg, 60), 25)
        cs = ax.contourf(X, Y, Fg, levels=levels, cmap="viridis", extend="max")
        ax.contour(X, Y, Fg, levels=levels, colors="w", linewidths=0.3, alpha=0.5)
        ax.scatter(pts[:, 0], pts[:, 1], s=2, c=c, alpha=0.4, label=label)
        ax.scatter(mu[:, 0], mu[:, 1], marker="x", c="w", s=60, label="cluster centres")
        ax.set_aspect("equal")
        ax.set_title(f"free energy F(v) with the {label}")
        ax.legend(loc="upper right", fontsize=8)
        fig.colorbar(cs, ax=ax, shrink=0.8)
    fig.suptitle(f"Gaussian-Bernoulli RBM, {cfg.hidden} hidden units, on {cfg.clusters} "
                 "clusters: minima where the data are")
    plots.save(fig, path, dpi=110)


@script("rbm_energy_2d", Energy2DConfig)
def main(argv=None):
    cfg, ns = start(Energy2DConfig, "rbm_energy_2d", argv, __doc__, checkpoints=False)
    workdir = ns.workdir
    out = run(cfg, workdir, progress=not ns.no_progress)
    print(f"F at centres {np.round(out['free_energy_centres'], 2).tolist()}, at midpoints "
          f"{np.round(out['free_energy_midpoints'], 2).tolist()}, origin "
          f"{out['free_energy_origin']:.2f}: midpoint - centre {out['midpoint_minus_centre']:+.2f}")
    print(f"test log-likelihood {out['test_log_likelihood']:.3f} (true mixture "
          f"{out['true_mixture_log_likelihood']:.3f}); samples within 2 std of a centre "
          f"{out['samples_within_2std']:.3f} (data {out['data_within_2std']:.3f}), per cluster "
          f"{out['samples_per_cluster']} | wall {out['wall_time_s']:.0f} s | {workdir}")
    return out


if __name__ == "__main__":
    main()
