"""Transfer learning on Fashion-MNIST (the lecture: "using a CNN pre-trained on a large dataset,
possible to adapt it to another task, using only a SMALL training set"): pretrain a convnet on
classes 0-4 (T-shirt, trouser, pullover, dress, coat: 30,000 images), then learn classes 5-9
(sandal, shirt, sneaker, bag, ankle boot) from k labelled images per class, four ways
(jdl.runs.transfer): features + logistic regression, new head only, fine-tuned, and the
same network from scratch; seeds 0..S-1 draw the k labels per class.

    python experiments/transfer_fashion.py --workdir runs/transfer_fashion
    python experiments/transfer_fashion.py --dataset digits --pretrain-epochs 1 --steps 5 \\
        --seeds 1 --labels 5 --curve-labels 2,5 --val-per-class 5 --num-filters 4   # smoke

Network (jdl.runs.transfer.source_model): a ResNet-14 (jdl.nn.ResNet, basic blocks,
'cifar' stem, stages of 2 blocks with 16/32/64 filters, global average pool 'pool', dense
head; 174k parameters), pretrained on the 30,000 source images by SGD (Nesterov momentum 0.9,
lr 0.1 cosine, L2 2.5e-4, batches of 128) for 8 epochs, with random crops (padding 2) and
flips; cut at 'pool' (a 64-d feature vector). Transfer: a new Dense(5) head; ``steps`` = 300
Adam updates on batches of 32 (cosine decay) for every arm and label count, the same crops
and flips; head lr 3e-3, fine-tuned backbone lr 1e-3 (its batch norm in training mode),
scratch lr 5e-3 for every layer. These learning rates were chosen on the validation images
of seed 0 (probes: fine-tuned 3e-4 / 1e-3 / 3e-3, scratch 2e-3 / 5e-3). Validation: 100
other training images per class (fixed, disjoint from the labelled ones) choose the logistic
regression's C and are reported beside the test accuracy; the test set is the 5,000 test
images of classes 5-9.

Writes under the workdir: pretrain/ (checkpoints of the source classifier), config.json,
records.jsonl (each finished run: ``--resume`` in the same workdir, e.g. with ``--pretrained
<workdir>/pretrain``, skips the runs it holds for the same settings), summary.json (per arm and
label count: per-seed and mean validation/test accuracy, seconds),
accuracy_vs_labels.png (test accuracy against labels per class, log x, fine-tuned vs scratch,
each seed a dot, the mean a line; head-only and features at the table's label count).

Run here (2 cores shared with a ResNet training and several agents, load average 20-50):
pretraining 999 s (source test accuracy 0.9414 on classes 0-4), then 24 min for the 24 arm
runs (45-90 s each):

    python experiments/transfer_fashion.py --workdir runs/transfer_fashion   # pretrains too
    python experiments/transfer_fashion.py --workdir runs/transfer_fashion_2 \
        --pretrained runs/transfer_fashion/pretrain        # re-use a pretraining

Result, test accuracy on classes 5-9 (seeds 0, 1, 2 -> mean; validation mean in brackets):

    100 labels/class  features + log. reg.  0.9150 0.9182 0.9188 -> 0.9173 (0.899)
                      new head only         0.7020 0.7092 0.6734 -> 0.6949 (0.701)
                      fine-tuned            0.9480 0.9454 0.9538 -> 0.9491 (0.951)
                      from scratch          0.9342 0.9348 0.9328 -> 0.9339 (0.932)
    10 labels/class   fine-tuned 0.8968 0.8906 0.9056 -> 0.8977; scratch 0.8308 0.8336 0.8532
                      -> 0.8392 (+5.9 points)
    1000 labels/class fine-tuned 0.9538 0.9564 0.9542 -> 0.9548; scratch 0.9372 0.9384 0.9376
                      -> 0.9377 (+1.7 points)

Transfer helps at every label count, most with the fewest labels (the lecture's point): +5.9
points at 10 labels per class, +1.5 at 100, +1.7 at 1000. The issue's bar (fine-tuned >=
scratch + 5 points at 100 labels) is NOT met: +1.5. The gap shrinks with the budget (seed 0,
600 updates: fine-tuned 0.949, scratch 0.943): a ResNet trained from scratch with crops and
flips learns these five classes (sandal, shirt, sneaker, bag, ankle boot: four of them unlike
anything in classes 0-4) well from 500 images. The new head alone on the frozen, pooled
features (Adam 3e-3, unstandardised inputs) stays far below logistic regression on the same
features (standardised, C chosen on validation): 300 updates are too few for it.

The ceiling of the comparison: the same network and pretraining recipe trained on all 30,000
training images of classes 5-9 (``--source-classes 5,6,7,8,9 --target-classes 0,1,2,3,4``: its
source classifier is that network; 973 s) reaches 0.9772 on their test images, so fine-tuning
could add at most +4.3 points over scratch's 0.9339 at 100 labels here (BUILD_NOTES.md).
"""
from __future__ import annotations

import dataclasses
import os
import time

from jdl.runs import run_dir  # noqa: E402
from jdl.runs.supervised import answer_help  # noqa: E402
from jdl.runs.transfer_config import ARMS, TransferConfig  # noqa: E402


@dataclasses.dataclass
class Config(TransferConfig):
    target_classes: tuple[int, ...] = (5, 6, 7, 8, 9)   # the new classes to learn
    labels: int = 100                       # labels per class of the four-arm table
    curve_labels: tuple[int, ...] = (10, 100, 1000)   # fine-tuned vs scratch curve
    val_per_class: int = 100                # validation images per class (fixed draw)
    arms: tuple[str, ...] = ARMS            # features, head, finetune, scratch

    def validate(self) -> None:
        super().validate()
        bad = [a for a in self.arms if a not in ARMS]
        if bad:
            raise ValueError(f"arms must be among {ARMS}, got {bad}")
        if self.labels <= 0 or any(k <= 0 for k in self.curve_labels) or self.val_per_class <= 0:
            raise ValueError("labels, curve_labels and val_per_class must be positive, got "
                             f"{self.labels}, {self.curve_labels}, {self.val_per_class}")


if __name__ == "__main__":   # --help before importing JAX: it answers at once
    answer_help(Config, "transfer_fashion", __doc__)

from jdl.data import class_subset, per_class_sample  # noqa: E402
from jdl.transfer import cut  # noqa: E402
from jdl.runs.transfer import (append_record, features_arm, load_records,  # noqa: E402
                                     normalized, plot_vs_labels, prepare, run_signature, score,
                                     script_main, summarize, train_arm)


def run(cfg: Config, workdir: str) -> dict:
    t_start = time.perf_counter()
    src = prepare(cfg, workdir)
    train, test, norm = src.train, src.test, src.norm
    xp, yp = class_subset(train.images, train.labels, cfg.target_classes)
    xt, yt = class_subset(test.images, test.labels, cfg.target_classes)
    if cfg.max_examples:
        xt, yt = xt[: cfg.max_examples], yt[: cfg.max_examples]
    xp, xt = normalized(norm, xp), normalized(norm, xt)
    val_idx = per_class_sample(yp, cfg.val_per_class, seed=10_000)
    val, tst = {"x": xp[val_idx], "y": yp[val_idx]}, {"x": xt, "y": yt}
    backbone, bvars = cut(src.model, src.state, cfg.cut_layer, src.x_source[:1])
    k_out = len(cfg.target_classes)

    results = {}   # (arm, k) -> list of per-seed records
    log = os.path.join(workdir, "records.jsonl")
    sig = run_signature(cfg, ("target_classes", "val_per_class"))
    done = load_records(log, sig)
    counts = sorted(set(cfg.curve_labels) | {cfg.labels})
    for k in counts:
        arms = cfg.arms if k == cfg.labels else [a for a in ("finetune", "scratch")
                                                 if a in cfg.arms]
        for seed in range(cfg.seeds):
            idx = per_class_sample(yp, k, seed=seed, exclude=val_idx)
            data = {"x": xp[idx], "y": yp[idx]}
            for arm in arms:
                if (arm, k, seed) in done:
                    results.setdefault((arm, k), []).append(done[arm, k, seed])
                    continue
                t0 = time.perf_counter()
                if arm == "features":
                    rec = features_arm(backbone, bvars, data, val, tst)
                else:
                    m, res = train_arm(arm, cfg, backbone, bvars, data, k_out, seed)
                    rec = {"val_accuracy": score(m, res.state, val)["accuracy"],
                           "test_accuracy": score(m, res.state, tst)["accuracy"]}
                rec["seconds"] = time.perf_counter() - t0
                append_record(log, sig, arm, k, seed, rec)
                results.setdefault((arm, k), []).append(rec)
                print(f"k={k} seed={seed} {arm}: val {rec['val_accuracy']:.4f} "
                      f"test {rec['test_accuracy']:.4f} ({rec['seconds']:.0f}s)", flush=True)

    table = summarize(results, ("test_accuracy", "val_accuracy", "seconds"))
    if "features" in table:
        feats = results["features", cfg.labels]
        table["features"][str(cfg.labels)]["C"] = [r.get("C") for r in feats]
    summary = {"experiment": "transfer_fashion", "resumed": bool(done), "test": None,
               "test_model": ("no single test model: each arm's test accuracy per label count "
                              "and seed under arms"),
               "source_classes": list(cfg.source_classes),
               "target_classes": list(cfg.target_classes),
               "source_test_accuracy": src.source_test_accuracy, "pretrain_s": src.pretrain_s,
               "labels_per_class": cfg.labels, "arms": table,
               "wall_time_s": time.perf_counter() - t_start}
    if "finetune" in table and "scratch" in table:
        summary["finetune_minus_scratch"] = (
            table["finetune"][str(cfg.labels)]["test_accuracy"]["mean"]
            - table["scratch"][str(cfg.labels)]["test_accuracy"]["mean"])
    summary = run_dir.RunDir(workdir).write_summary(summary)
    styles = {"finetune": ("C0", "o", "fine-tuned"), "scratch": ("C3", "s", "from scratch"),
              "head": ("C2", "^", "new head only"),
              "features": ("C1", "D", "features + log. reg.")}
    plot_vs_labels(table, "test_accuracy", styles, os.path.join(workdir, "accuracy_vs_labels.png"),
                   "labelled images per class (log scale)",
                   f"test accuracy, classes {cfg.target_classes}",
                   f"transfer from classes {cfg.source_classes}: mean of {cfg.seeds} seeds (dots)")
    return summary


def main(argv=None) -> dict:
    """The command line; errors are one line (script_main)."""
    return script_main(Config, run, "transfer_fashion", "test_accuracy", argv, __doc__)


if __name__ == "__main__":
    main()
