"""Deep belief network 784-500-500-2000 on Fashion-MNIST (Hinton, Osindero & Teh 2006):
greedy layer-wise pretraining by CD-1 on all 60,000 training images (labels unused), then
supervised fine-tuning of the sigmoid MLP it initialises (Hinton & Salakhutdinov 2006); and a
small-label run: fine-tuning on 1,000 labelled images, against the same MLP from random init.

    python experiments/dbn_fashion.py                   # ~30 min here (cores shared)
    python experiments/dbn_fashion.py --pretrain-epochs 1 --finetune-epochs 1 \\
        --small-epochs 2 --small-seeds 1                                    # smoke

Pretraining: each RBM by CD-1, batches of 100, learning rate 0.05 with cosine decay, momentum
0.5, L2 weight cost 2e-4 on W, 10 epochs; inputs are pixel intensities in [0, 1] used as
probabilities, each layer trained on p(h | v) of the one below. Fine-tuning: cross-entropy, Adam
(learning rate 1e-3, cosine decay), batches of 100; full labels: 54,000 training / 6,000
validation images, 30 epochs; small labels: 1,000 random training images
(one draw per seed), 100 epochs, no validation, seeds 0, 1, 2; the random-init baseline is the
same MLP, optimiser and epochs with jdl's default initialisation (LeCun uniform).

Writes, under runs/dbn_fashion: pretrain/ (per-layer metrics and checkpoints; ``--resume``
continues), stack.npz, full/, full_random/, small_*/ (each a jdl.runs.supervised run), samples.png
(top-down samples), filters.png, summary.json (with the retrieval precision@10 of test images
among the training images, Euclidean distance on pixels and on the 2000-unit top-layer codes).

Result here (seed 0): fine-tuned DBN 0.8998 test accuracy; 1,000 labels, mean of seeds 0-2:
pretrained 0.8108 vs random init 0.7957 (+1.50 points); retrieval precision@10 with the
top-layer codes 0.7705 (pixels 0.8052). 5 min of pretraining plus 24 min of fine-tuning and
evaluation with other trainings on the cores (BUILD_NOTES.md, "RBMs and DBNs"). With each arm's
fine-tuning chosen on 6,000 held-out images (pretrained: Adam 1e-3, ``--finetune-dropout 0.5``;
random init: Adam 3e-3, dropout 0.5) the gain at 1,000 labels is +0.90 points (0.8184 vs
0.8094); with SGD (``--finetune-optimizer sgd --finetune-lr 0.1``) the random-init net stays
at chance (0.1000 vs 0.8093): BUILD_NOTES.md, "the DBN small-label gain, each arm tuned".
"""
from __future__ import annotations

import dataclasses
import os
import time
from typing import Optional

import numpy as np

from jdl.runs import run_dir  # noqa: E402
from jdl.runs.command_line import script  # noqa: E402
from jdl.runs.supervised import ExperimentConfig, answer_help, start  # noqa: E402
from jdl.runs.supervised import run as run_supervised  # noqa: E402


@dataclasses.dataclass
class DBNFashionConfig:
    data_dir: Optional[str] = None  # IDX folder (else $JDL_FASHION_MNIST_DIR, Debian's)
    layers: tuple[int, ...] = (500, 500, 2000)  # hidden layers (RBMs in pretraining)
    seed: int = 0                        # seed of the initialisation and the batches
    # greedy pretraining
    pretrain_epochs: int = 10            # epochs per RBM of the greedy pretraining
    pretrain_lr: float = 0.05            # learning rate of the pretraining
    pretrain_momentum: float = 0.5       # momentum of the pretraining
    pretrain_l2: float = 2e-4            # weight cost of the pretraining
    pretrain_batch_size: int = 100       # batch size of the pretraining
    k: int = 1                           # Gibbs steps per update (CD-k / PCD-k)
    # fine-tuning
    finetune_epochs: int = 30            # epochs of the fine-tuning
    finetune_dropout: float = 0.0       # on each hidden layer (Srivastava et al. 2014)
    finetune_optimizer: str = "adam"    # adam | sgd (with finetune_momentum)
    finetune_lr: float = 1e-3            # learning rate of the fine-tuning
    finetune_momentum: float = 0.9       # momentum of SGD fine-tuning
    batch_size: int = 100                # examples per update
    full_labels: bool = True            # fine-tune on the full labelled training set
    full_random_baseline: bool = False  # also train the full-label MLP from random init
    # small-label run
    small_labels: int = 1000             # labelled examples of the small-label runs
    small_epochs: int = 100              # epochs of the small-label runs
    small_seeds: int = 3                 # seeds (label draws) of the small-label runs
    max_train_examples: Optional[int] = None   # pretraining subset (smoke runs)
    devices: Optional[int] = None       # data parallelism: None all local devices, or the first N


if __name__ == "__main__":   # --help before importing JAX: it answers at once
    answer_help(DBNFashionConfig, "dbn_fashion", __doc__, checkpoints=True)

import jax  # noqa: E402
from jdl import optim, rbm  # noqa: E402
from jdl.runs import plots  # noqa: E402
from jdl.ae.code_space import precision_at_k  # noqa: E402
from jdl.data import fashion_mnist  # noqa: E402
from jdl.nn import MLP  # noqa: E402
from jdl.rbm import dbn  # noqa: E402


def pixels(split) -> np.ndarray:
    """Images as rows of intensities in [0, 1], float32."""
    return split.images.reshape(len(split.images), -1).astype(np.float32) / 255.0


def pretrain(cfg: DBNFashionConfig, x, workdir: str, resume: bool, progress: bool):
    steps = cfg.pretrain_epochs * (len(x) // cfg.pretrain_batch_size)
    tx = optim.sgd(optim.cosine(cfg.pretrain_lr, steps), cfg.pretrain_momentum,
                   l2=cfg.pretrain_l2)
    t0 = time.perf_counter()
    stack, histories = dbn.greedy_layerwise(
        x, cfg.layers, jax.random.PRNGKey(cfg.seed), epochs=cfg.pretrain_epochs,
        batch_size=cfg.pretrain_batch_size, tx_factory=tx, k=cfg.k, progress=progress,
        seed=cfg.seed, return_history=True, workdir=os.path.join(workdir, "pretrain"),
        resume=resume, devices=cfg.devices)
    seconds = time.perf_counter() - t0
    np.savez(os.path.join(workdir, "stack.npz"),
             **{f"{name}{i}": np.asarray(p[name]) for i, p in enumerate(stack)
                for name in ("W", "b", "c")})
    return stack, histories, seconds


def finetune_config(cfg: DBNFashionConfig, small: bool, seed: int) -> ExperimentConfig:
    return ExperimentConfig(
        dataset="fashion_mnist", data_dir=cfg.data_dir, normalize="none",
        val_fraction=0.0 if small else 0.1, batch_size=cfg.batch_size,
        epochs=cfg.small_epochs if small else cfg.finetune_epochs,
        optimizer=cfg.finetune_optimizer,
        learning_rate=cfg.finetune_lr, momentum=cfg.finetune_momentum, schedule="cosine",
        seed=seed, max_train_examples=cfg.small_labels if small else None, log_every=10,
        devices=cfg.devices)


def run(cfg: DBNFashionConfig, workdir: str, resume: bool = False, progress: bool = True):
    t_start = time.perf_counter()
    os.makedirs(workdir, exist_ok=True)
    train = fashion_mnist.load("train", data_dir=cfg.data_dir)
    test = fashion_mnist.load("test", data_dir=cfg.data_dir)
    n_train = cfg.max_train_examples or len(train.images)
    x_train, y_train = pixels(train)[:n_train], train.labels[:n_train]
    x_test = pixels(test)
    stack, histories, pretrain_s = pretrain(cfg, x_train, workdir, resume, progress)
    summary = {"pretrain_s": pretrain_s,
               "pretrain_reconstruction_error": [h[-1]["train_loss"] for h in histories]}

    plots.plot_image_grid(rbm.inference.hidden_weight_images(stack[0], (28, 28),
                                                        min(100, cfg.layers[0])),
                          os.path.join(workdir, "filters.png"), vmin=None, vmax=None,
                          title="first RBM: weights of its first hidden units")
    _, means = dbn.sample_down(stack, jax.random.PRNGKey(cfg.seed + 7), 100, 1000,
                               return_mean=True)
    plots.plot_image_grid(np.asarray(means).reshape(-1, 28, 28),
                          os.path.join(workdir, "samples.png"),
                          title="DBN samples: 1000 Gibbs steps in the top RBM, then top-down")

    # top-layer codes for retrieval: precision@10 of test queries against the training set
    up = jax.jit(dbn.propagate_up)
    for name, f in (("pixels", lambda x: x), ("dbn_top_codes", lambda x: up(stack, x))):
        summary[f"retrieval_precision_at_10_{name}"] = float(precision_at_k(
            f(x_train), y_train, 10, queries=f(x_test), query_labels=test.labels))

    def model_fn(_cfg):
        return MLP(hidden=tuple(cfg.layers), num_outputs=10, activation="sigmoid",
                   dropout_rate=cfg.finetune_dropout)

    def finetune(name, small, seed, pretrained):
        init = (dbn.to_mlp_params(stack, 10, jax.random.PRNGKey(1000 + seed))
                if pretrained else None)
        s = run_supervised(finetune_config(cfg, small, seed), model_fn,
                           os.path.join(workdir, name),
                           resume=resume and run_dir.holds_run(os.path.join(workdir, name)),
                           progress=progress,
                           title=name, initial_params=init)
        print(f"{name}: test accuracy {s['test_accuracy']:.4f}")
        return s["test_accuracy"]

    if cfg.full_labels:
        summary["full_pretrained"] = finetune("full", False, cfg.seed, True)
    if cfg.full_random_baseline:
        summary["full_random_init"] = finetune("full_random", False, cfg.seed, False)
    pre, rand = [], []
    for seed in range(cfg.small_seeds):
        pre.append(finetune(f"small_pretrained_seed{seed}", True, seed, True))
        rand.append(finetune(f"small_random_seed{seed}", True, seed, False))
    summary.update({"small_pretrained": pre, "small_random_init": rand,
                    "small_pretrained_mean": float(np.mean(pre)),
                    "small_random_init_mean": float(np.mean(rand)),
                    "small_gain_points": 100 * float(np.mean(pre) - np.mean(rand)),
                    "wall_time_s": time.perf_counter() - t_start})
    return run_dir.RunDir(workdir).write_summary({
        "experiment": "dbn_fashion",
        "test": ({"accuracy": summary["full_pretrained"]} if "full_pretrained" in summary
                 else None),
        "test_model": "fine-tuned DBN on all labels, best validation checkpoint (full/); the "
                      "small-label runs: small_*", "resumed": bool(resume), **summary})


@script("dbn_fashion", DBNFashionConfig)
def main(argv=None):
    cfg, ns = start(DBNFashionConfig, "dbn_fashion", argv, __doc__)
    workdir = ns.workdir
    s = run(cfg, workdir, resume=ns.resume, progress=not ns.no_progress)
    if "full_pretrained" in s:
        line = f"dbn_fashion: fine-tuned DBN {s['full_pretrained']:.4f}"
        if "full_random_init" in s:
            line += f" (same MLP from random init {s['full_random_init']:.4f})"
        print(line)
    print(f"retrieval precision@10: top-layer codes "
          f"{s['retrieval_precision_at_10_dbn_top_codes']:.4f}, pixels "
          f"{s['retrieval_precision_at_10_pixels']:.4f}")
    print(f"{cfg.small_labels} labels, mean of {cfg.small_seeds} seeds: pretrained "
          f"{s['small_pretrained_mean']:.4f} vs random init {s['small_random_init_mean']:.4f} "
          f"({s['small_gain_points']:+.2f} points) | wall {s['wall_time_s']:.0f} s | {workdir}")
    return s


if __name__ == "__main__":
    main()
