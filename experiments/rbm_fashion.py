"""RBM on binarised Fashion-MNIST: filters, samples from long Gibbs chains, completion of
half-occluded test images, and the AIS test log-likelihood.

    python experiments/rbm_fashion.py                       # 14 min here (cores shared)
    python experiments/rbm_fashion.py --epochs 2 --ais-betas 1000 --ais-runs 1   # smoke

A 784-500 Bernoulli RBM trained by PCD-1 (Tieleman 2008) with momentum 0.5, L2 weight cost
1e-4 on W and a cosine-decayed learning rate 0.05 (Hinton 2010, "A practical guide to training
RBMs"), batches of 100, 20 epochs, on Fashion-MNIST binarised at intensity 0.5. Writes, under
runs/rbm_fashion: config.json, metrics.jsonl, checkpoints (``--resume`` continues a killed
run), summary.json and filters.png, samples.png, completions.png, learning_curves.png.

Result here (seed 0; 858 s wall while two other trainings shared the 2 cores): AIS test
log-likelihood -118.90 nats (3 AIS runs of 100 chains x 14,500 temperatures, log Z spread 0.87
nats), pseudo-log-likelihood -97.47; completion of the bottom half of 1,000 test images:
squared error 0.0795 per pixel against 0.1767 for the training pixel means (BUILD_NOTES.md,
"RBM on binarised Fashion-MNIST").
"""
from __future__ import annotations

import dataclasses
import os
import time
from typing import Optional

import numpy as np

from jdl.runs import run_dir  # noqa: E402
from jdl.runs.command_line import script  # noqa: E402
from jdl.runs.supervised import answer_help, start  # noqa: E402


@dataclasses.dataclass
class RBMFashionConfig:
    data_dir: Optional[str] = None  # IDX folder (else $JDL_FASHION_MNIST_DIR, Debian's)
    hidden: int = 500                    # hidden units
    k: int = 1                          # Gibbs steps per update
    persistent: bool = True             # PCD-k (else CD-k)
    epochs: int = 20                     # passes over the training set
    batch_size: int = 100                # examples per update
    learning_rate: float = 0.05          # learning rate
    momentum: float = 0.5                # momentum of the updates, in [0, 1)
    l2: float = 1e-4                    # weight cost on W
    schedule: str = "cosine"            # constant | cosine | ... (jdl.optim.make_schedule)
    seed: int = 0                        # seed of the initialisation and the batches
    sample_steps: int = 1000            # length of the Gibbs chains drawn for samples.png
    n_samples: int = 100                 # samples drawn for samples.png
    completion_steps: int = 500          # Gibbs steps of each image completion
    completion_images: int = 1000       # test images completed for the squared error
    ais_chains: int = 100                # AIS: chains per run
    ais_betas: int = 14500               # AIS: intermediate temperatures per chain
    ais_runs: int = 3                    # AIS: independent runs (their spread of log Z is reported)
    devices: Optional[int] = None       # data parallelism: None all local devices, or the first N
    max_train_examples: Optional[int] = None  # use only the first N training examples (smoke runs)


if __name__ == "__main__":   # --help before importing JAX: it answers at once
    answer_help(RBMFashionConfig, "rbm_fashion", __doc__, checkpoints=True)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from jdl import optim, rbm  # noqa: E402
from jdl.runs import plots  # noqa: E402
from jdl.data import fashion_mnist  # noqa: E402


def completion_mask(image_shape=(28, 28), observed_rows: int = 14):
    """1 on the observed (clamped) top rows, 0 on the occluded bottom rows; flattened."""
    mask = np.zeros(image_shape, np.float32)
    mask[:observed_rows] = 1
    return mask.reshape(-1)


def run(cfg: RBMFashionConfig, workdir: str, resume: bool = False, progress: bool = True):
    t_start = time.perf_counter()
    os.makedirs(workdir, exist_ok=True)
    x_train, x_test = fashion_mnist.load_binarized(cfg.data_dir, cfg.max_train_examples)
    steps = cfg.epochs * (len(x_train) // cfg.batch_size)
    lr = optim.make_schedule(cfg.schedule, cfg.learning_rate, total_steps=steps)
    tx = optim.sgd(lr, cfg.momentum, l2=cfg.l2)
    key = jax.random.PRNGKey(cfg.seed)
    result = rbm.train_rbm(x_train, cfg.hidden, key, epochs=cfg.epochs,
                           batch_size=cfg.batch_size, tx=tx, k=cfg.k,
                           persistent=cfg.persistent, seed=cfg.seed, workdir=workdir,
                           resume=resume, progress=progress, devices=cfg.devices)
    params = result.state.params
    plots.plot_learning_curves(result.history, os.path.join(workdir, "learning_curves.png"),
                               "RBM: reconstruction error")

    # hidden units' weights as images
    filters = rbm.inference.hidden_weight_images(params, (28, 28), 100)
    plots.plot_image_grid(filters, os.path.join(workdir, "filters.png"), vmin=None, vmax=None,
                          title="weights of 100 hidden units")

    # samples: independent long Gibbs chains from random states
    k_gen, k_comp, k_ais = jax.random.split(jax.random.fold_in(key, 2), 3)
    _, means = jax.jit(rbm.inference.generate, static_argnums=(2, 3, 5, 6))(
        params, k_gen, cfg.n_samples, cfg.sample_steps, None, "bernoulli", True)
    plots.plot_image_grid(np.asarray(means).reshape(-1, 28, 28),
                          os.path.join(workdir, "samples.png"),
                          title=f"E[v | h] after {cfg.sample_steps} Gibbs steps, "
                                f"{cfg.n_samples} independent chains")

    # completion of the bottom half of test images (top 14 rows clamped)
    mask = completion_mask()
    complete = jax.jit(rbm.inference.complete, static_argnums=(4,))
    v = x_test[:cfg.completion_images]
    filled = np.concatenate([np.asarray(complete(params, v[i:i + 250], mask,
                                                 jax.random.fold_in(k_comp, i),
                                                 cfg.completion_steps))
                             for i in range(0, len(v), 250)])
    free = mask == 0
    completion_se = float(np.mean(np.square(filled[:, free] - v[:, free])))
    pixel_mean = x_train.mean(axis=0)
    mean_se = float(np.mean(np.square(pixel_mean[free][None] - v[:, free])))
    shown = np.stack([v[:10], np.where(mask > 0, v[:10], 0.5), filled[:10]]).reshape(-1, 28, 28)
    plots.plot_image_grid(shown, os.path.join(workdir, "completions.png"),
                          row_labels=["test", "occluded", "completed"],
                          title="bottom half completed by clamped Gibbs sampling")

    # log-likelihood
    ll = rbm.ais_log_likelihood(params, x_test, k_ais, n_runs=cfg.ais_runs,
                                n_chains=cfg.ais_chains, n_betas=cfg.ais_betas,
                                base_visible_bias=rbm.base_rate_bias(jnp.asarray(x_train)))
    pll = float(jnp.mean(rbm.pseudo_log_likelihood(params, x_test, jax.random.PRNGKey(1))))
    summary = {"experiment": "rbm_fashion",
               "test": {"log_likelihood": ll["log_likelihood"], "pseudo_log_likelihood": pll},
               "test_model": "final RBM", "resumed": bool(resume),
               "test_log_likelihood_ais": ll["log_likelihood"], "ais": ll,
               "test_pseudo_log_likelihood": pll,
               "test_reconstruction_error": float(rbm.inference.reconstruction_error(params, x_test)),
               "completion_squared_error": completion_se,
               "pixel_mean_squared_error": mean_se,
               "train_s_per_epoch": result.train_time / max(1, len(result.history)),
               "compile_time_s": result.compile_time,
               "wall_time_s": time.perf_counter() - t_start}
    return run_dir.RunDir(workdir).write_summary(summary)


@script("rbm_fashion", RBMFashionConfig)
def main(argv=None):
    cfg, ns = start(RBMFashionConfig, "rbm_fashion", argv, __doc__)
    workdir = ns.workdir
    s = run(cfg, workdir, resume=ns.resume, progress=not ns.no_progress)
    print(f"rbm_fashion: AIS test log-likelihood {s['test_log_likelihood_ais']:.2f} nats "
          f"(log Z spread {s['ais']['log_z_spread']:.2f}) | pseudo-LL "
          f"{s['test_pseudo_log_likelihood']:.2f} | completion squared error "
          f"{s['completion_squared_error']:.4f} (pixel means {s['pixel_mean_squared_error']:.4f})"
          f" | {s['train_s_per_epoch']:.1f} s/epoch, wall {s['wall_time_s']:.0f} s | {workdir}")
    return s


if __name__ == "__main__":
    main()
