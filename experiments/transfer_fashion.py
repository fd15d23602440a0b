"""Transfer learning on Fashion-MNIST (the lecture: "using a CNN pre-trained on a large dataset,
possible to adapt it to another task, using only a SMALL training set"): pretrain a convnet on
classes 0-4 (T-shirt, trouser, pullover, dress, coat: 30,000 images), then learn classes 5-9
(sandal, shirt, sneaker, bag, ankle boot) from k labelled images per class, four ways
(jdl.runs.transfer): features + logistic regression, new head only, fine-tuned, and the
same network from scratch; seeds 0..S-1 draw the k labels per class.

    python experiments/transfer_fashion.py --workdir runs/transfer_fashion
    python experiments/transfer_fashion.py --dataset digits --pretrain-epochs 1 --steps 5 \\
        --seeds 1 --labels 5 --curve-labels 2,5 --val-per-class 5 --features 4,8   # smoke

Backbone: BNConvNet (conv 16/32/64 3x3 + batch norm + ReLU + max-pool 2, global average
pool, dense) pretrained by Adam (lr 2e-3, cosine) for 1 epoch, batches of 128, cut at 'pool'
(a 64-d feature vector). Transfer: a new Dense(5) head; ``steps`` = 150 Adam updates on
batches of 32 (cosine decay) for every arm and label count; head lr 1e-2, fine-tuned backbone
lr 1e-3 (its batch norm in inference mode: running averages of the source data), scratch lr
2e-3 for every layer (batch norm in training mode). Validation: 100 other training images
per class (fixed, disjoint from the labelled ones) choose the logistic regression's C and
are reported beside the test accuracy; the test set is the 5,000 test images of classes 5-9.

Writes under the workdir: pretrain/ (checkpoints of the source classifier), config.json,
records.jsonl (each finished run: ``--resume`` in the same workdir, e.g. with ``--pretrained
<workdir>/pretrain``, skips the runs it holds for the same settings), summary.json (per arm and
label count: per-seed and mean validation/test accuracy, seconds),
accuracy_vs_labels.png (test accuracy against labels per class, log x, fine-tuned vs scratch,
each seed a dot, the mean a line; head-only and features at the table's label count).

Run here (2 shared cores at load 20-28, nice 5: every time is 10-30x an idle machine's; the
work was cut to fit: 1 pretraining epoch, 150 updates per arm): pretraining 442 s (source test
accuracy 0.871 on classes 0-4), then 2-5 min per arm (mostly compilation); the 1000-label
runs went in a second process into the same workdir (records.jsonl), and a final re-run
with ``--pretrained`` wrote summary.json and the figure from the records:

    python experiments/transfer_fashion.py --workdir runs/transfer_fashion
    python experiments/transfer_fashion.py --workdir runs/transfer_fashion --resume \
        --pretrained runs/transfer_fashion/pretrain

Result, test accuracy on classes 5-9 (seeds 0, 1, 2 -> mean; validation mean in brackets):

    100 labels/class  features + log. reg.  0.8952 0.9012 0.8976 -> 0.8980 (0.889)
                      new head only         0.8324 0.8248 0.8310 -> 0.8294 (0.804)
                      fine-tuned            0.8992 0.8960 0.9010 -> 0.8987 (0.883)
                      from scratch          0.9228 0.9266 0.9194 -> 0.9229 (0.923)
    10 labels/class   fine-tuned 0.8730 0.8218 0.8790 -> 0.8579; scratch 0.8520 0.8326 0.8612
                      -> 0.8486
    1000 labels/class fine-tuned 0.9006 0.8960 0.9008 -> 0.8991; scratch 0.9220 0.9230 0.9294
                      -> 0.9248

The issue's bar (fine-tuned >= scratch + 5 points at 100 labels) is NOT met: fine-tuned is 2.4
points BELOW scratch. Transfer helps only at 10 labels per class (+0.9 points). With 150
updates the fine-tuned network stays near its starting features (it equals features +
logistic regression, and does not improve from 100 to 1000 labels), while the same BN convnet
from scratch reaches 0.92 on these five classes (sandal, shirt, sneaker, bag, ankle boot:
four of them unlike anything in classes 0-4). A probe before (conv 32/64/128, 3 pretraining
epochs, 400 updates, seed 0) gave fine-tuned 0.940 vs scratch 0.936: no 5-point gap either.
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
