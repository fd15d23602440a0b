"""Pose regression by transfer (the lecture's PoseNet / DeepDrive point: a pretrained convnet
re-used for "precise localisation (position, bearing)", a target no classifier was trained
on), on the data we have: the in-plane rotation of Fashion-MNIST items.

Each image is turned by t ~ U(-45, 45) degrees (jdl.data.rotation: bilinear, about its centre)
and the network regresses t. The backbone is the classifier of classes 0-4 that
transfer_fashion pretrains (it only ever saw upright items: it never saw an angle), cut at
``cut_layer``; a new Dense(1) head predicts t / 45, trained with the quadratic loss. Arms
(jdl.runs.transfer): the transferred network fine-tuned, its new head only, and the same
network from scratch, each from ``labels`` rotated training images of all ten classes (seeds
draw the images and their angles); the error is the mean absolute error in degrees on the
10,000 test images, each rotated once (a fixed key). Predicting 0 everywhere scores 22.5.

    python experiments/pose_regression.py --workdir runs/pose_regression   # pretrains its own
    python experiments/pose_regression.py --dataset digits --pretrain-epochs 1 --steps 5 \\
        --seeds 1 --labels 20 --val-size 20 --num-filters 4   # smoke

Writes under the workdir: pretrain/ (the source classifier's checkpoints), config.json,
summary.json (per arm and label count: per-seed and mean test/validation error in degrees,
seconds), error_vs_labels.png and examples.png (rotated test items with true and predicted
angles).

The network is transfer_fashion's (a ResNet-14 pretrained on classes 0-4 with crops and flips;
here crops only, since a mirror image turns the other way), cut at its global average pool
('pool': 64 features; the cut was chosen on validation, seed 0, 500 labels: fine-tuned
4.96 / scratch 6.95 degrees at 'pool' against 9.65 / 10.63 with the last block's 7x7x64 maps
flattened); 300 Adam updates per arm (head 3e-3, fine-tuned backbone 1e-3 with batch norm in
training mode, scratch 5e-3).

Run here (2 cores shared with a ResNet training and several agents, load average 20-50),
the backbone loaded from transfer_fashion's pretraining (source test accuracy 0.9414), 18
min for the 18 arm runs:

    python experiments/pose_regression.py --workdir runs/pose_regression \
        --pretrained runs/transfer_fashion/pretrain

Result, test mean absolute error in degrees (seeds 0, 1, 2 -> mean; predicting 0 scores 22.4):

    100 labels   fine-tuned  8.00  8.48  7.44 ->  7.97   scratch  9.97 10.56  8.84 ->  9.79
                 head only  21.49 21.64 21.96 -> 21.70
    500 labels   fine-tuned  5.07  5.35  6.02 ->  5.48   scratch  7.01  7.14  6.82 ->  6.99
                 head only  20.68 21.46 22.10 -> 21.41

The transferred network's error is 0.81x scratch's at 100 labels and 0.78x at 500: transfer
helps at both, but the issue's bar (<= 0.7) is NOT met. The pooled features of a classifier
of upright items hold almost no linear trace of the angle (the head alone barely beats
predicting 0), yet fine-tuning them learns it faster than the same network from scratch.

LP-FT (``--arms finetune,lpft,head,scratch``: the head alone for ``--lp-steps`` updates, then
fine-tuned; Kumar et al. 2022) was tried on validation (seed 0; backbone: the same recipe
pretrained on classes 5-9, ``--source-classes 5,6,7,8,9 --pretrained <its pretrain/>``;
validation MAE in degrees): at 100 labels fine-tuned 9.73 (backbone lr 1e-3) / 8.56 (3e-3),
LP-FT 9.13 / 8.42, scratch 10.25 (lr 5e-3) / 9.08 (1e-2) / 10.74 (2.5e-3), 600 updates
fine-tuned 9.26 / scratch 9.28; at 500 labels fine-tuned 6.31, LP-FT 5.44, scratch 7.02
(all lr 3e-3 / 5e-3). Best against best: 0.93x at 100 labels, 0.77x at 500: LP-FT helps the
transferred network (by 0.1-0.9 degrees) but does not bring it to 0.7x scratch.
"""
from __future__ import annotations

import dataclasses
import os
import time

import numpy as np

from jdl.runs import run_dir  # noqa: E402
from jdl.runs.command_line import option  # noqa: E402
from jdl.runs.supervised import answer_help  # noqa: E402
from jdl.runs.transfer_config import TransferConfig  # noqa: E402

POSE_ARMS = ("finetune", "lpft", "head", "scratch")


@dataclasses.dataclass
class Config(TransferConfig):
    cut_layer: str = "pool"             # global average pool of the last stage (64 features)
    augment_flip: bool = option(False, "must stay off: a mirror image turns the other way")
    max_degrees: float = 45.0           # angles t ~ U(-max_degrees, max_degrees)
    labels: tuple[int, ...] = (100, 500)    # labelled rotated images (all classes together)
    val_size: int = 1000                # rotated validation images (fixed draw)
    arms: tuple[str, ...] = option(("finetune", "head", "scratch"),
                                   f"arms to run, among {POSE_ARMS} ('lpft': the head alone "
                                   "for lp_steps, then fine-tuned)")
    lp_steps: int = option(100, "head-only updates before the lpft arm fine-tunes", low=1)
    head_lr: float = 3e-3               # new head's Adam learning rate

    def validate(self) -> None:
        super().validate()
        bad = [a for a in self.arms if a not in POSE_ARMS]
        if bad:
            raise ValueError(f"arms must be among {POSE_ARMS}, got {bad}")
        if any(n <= 0 for n in self.labels) or self.val_size <= 0:
            raise ValueError(f"labels and val_size must be positive, got {self.labels}, "
                             f"{self.val_size}")
        if self.augment_flip:
            raise ValueError("augment_flip must be false for pose regression: mirroring an "
                             "image negates its rotation angle, the target")
        if not 0 < self.max_degrees <= 180:
            raise ValueError(f"max_degrees must be in (0, 180], got {self.max_degrees}")


if __name__ == "__main__":   # --help before importing JAX: it answers at once
    answer_help(Config, "pose_regression", __doc__)

import jax  # noqa: E402

from jdl.data.rotation import angle_metrics, rotated_items  # noqa: E402
from jdl.transfer import cut  # noqa: E402
from jdl.runs.transfer import (normalized, plot_vs_labels, prepare, score,  # noqa: E402
                                     script_main, summarize, train_arm)


def rotated(images, norm, key, max_degrees: float) -> dict:
    """{'x': normalised rotated images, 'y': angle / max_degrees, shape (N, 1)}; the raw pixels
    are rotated (0 = background outside the item), then normalised."""
    x, t = rotated_items(np.asarray(images, np.float32), key, max_degrees)
    return {"x": normalized(norm, np.asarray(x)), "y": np.asarray(t)[:, None] / max_degrees}


def run(cfg: Config, workdir: str) -> dict:
    t_start = time.perf_counter()
    src = prepare(cfg, workdir)
    train, test, norm = src.train, src.test, src.norm
    backbone, bvars = cut(src.model, src.state, cfg.cut_layer, src.x_source[:1])

    x_test = test.images[: cfg.max_examples] if cfg.max_examples else test.images
    tst = rotated(x_test, norm, jax.random.PRNGKey(2**20), cfg.max_degrees)
    perm = np.random.default_rng(10_000).permutation(len(train.images))
    val = rotated(train.images[perm[: cfg.val_size]], norm, jax.random.PRNGKey(2**20 + 1),
                  cfg.max_degrees)
    pool = perm[cfg.val_size:]
    metrics = angle_metrics(cfg.max_degrees)
    kw = dict(loss="quadratic", metrics=metrics)

    results, models = {}, {}
    for n in cfg.labels:
        for seed in range(cfg.seeds):
            idx = np.random.default_rng(seed).choice(pool, n, replace=False)
            data = rotated(train.images[idx], norm, jax.random.PRNGKey(seed), cfg.max_degrees)
            for arm in cfg.arms:
                t0 = time.perf_counter()
                m, res = train_arm(arm, cfg, backbone, bvars, data, 1, seed,
                                   lp_steps=cfg.lp_steps, **kw)
                rec = {"val_mae_degrees": score(m, res.state, val, **kw)["mae_degrees"],
                       "test_mae_degrees": score(m, res.state, tst, **kw)["mae_degrees"],
                       "seconds": time.perf_counter() - t0}
                results.setdefault((arm, n), []).append(rec)
                models[arm] = (m, res.state)
                print(f"n={n} seed={seed} {arm}: val {rec['val_mae_degrees']:.2f} deg, "
                      f"test {rec['test_mae_degrees']:.2f} deg ({rec['seconds']:.0f}s)",
                      flush=True)

    table = summarize(results, ("test_mae_degrees", "val_mae_degrees", "seconds"))
    ratios = {}
    if "finetune" in table and "scratch" in table:
        ratios = {str(n): table["finetune"][str(n)]["test_mae_degrees"]["mean"]
                  / table["scratch"][str(n)]["test_mae_degrees"]["mean"] for n in cfg.labels}
    summary = {"experiment": "pose_regression", "resumed": False, "test": None,
               "test_model": ("no single test model: each arm's test error per label count and "
                              "seed under arms"),
               "source_classes": list(cfg.source_classes),
               "source_test_accuracy": src.source_test_accuracy, "pretrain_s": src.pretrain_s,
               "max_degrees": cfg.max_degrees,
               "predict_zero_mae_degrees": float(np.mean(np.abs(tst["y"])) * cfg.max_degrees),
               "arms": table, "finetune_over_scratch_error": ratios,
               "wall_time_s": time.perf_counter() - t_start}
    summary = run_dir.RunDir(workdir).write_summary(summary)
    styles = {"finetune": ("C0", "o", "transferred, fine-tuned"),
              "lpft": ("C1", "D", "transferred, head first, then fine-tuned (LP-FT)"),
              "head": ("C2", "^", "transferred, new head only"),
              "scratch": ("C3", "s", "from scratch")}
    plot_vs_labels(table, "test_mae_degrees", styles, os.path.join(workdir, "error_vs_labels.png"),
                   "labelled rotated images (log scale)", "test mean absolute error (degrees)",
                   f"rotation angle in [-{cfg.max_degrees:g}, {cfg.max_degrees:g}] degrees: "
                   f"mean of {cfg.seeds} seeds")
    if "finetune" in models:
        plot_examples(*models["finetune"], tst, cfg, os.path.join(workdir, "examples.png"))
    return summary


def plot_examples(model, state, tst: dict, cfg: Config, path: str, count: int = 10) -> None:
    from jdl.runs import plots

    x = tst["x"][:count]
    pred = np.asarray(model.apply({"params": state.params, **state.model_state}, x,
                                  train=False))[:, 0] * cfg.max_degrees
    true = tst["y"][:count, 0] * cfg.max_degrees
    fig = plots.figure(figsize=(1.4 * count, 1.9))
    axes = fig.subplots(1, count)
    for ax, img, t, p in zip(np.atleast_1d(axes), x, true, pred):
        ax.imshow(img[..., 0], cmap="gray")
        ax.set_title(f"{t:+.0f} / {p:+.0f}", fontsize=8)
        ax.axis("off")
    fig.suptitle("true / predicted angle (degrees), fine-tuned", fontsize=9)
    plots.save(fig, path, dpi=100)


def main(argv=None) -> dict:
    return script_main(Config, run, "pose_regression", "test_mae_degrees", argv, __doc__)


if __name__ == "__main__":
    main()
