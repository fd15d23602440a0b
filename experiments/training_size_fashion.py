"""Test accuracy against training-set size (the lecture: "importance of training set size":
convnets have many free parameters, "train them with a sufficiently large training-set"), for an
MLP and a convnet on Fashion-MNIST, on log axes.

    python experiments/training_size_fashion.py --workdir runs/training_size_fashion

Each model is trained on the first n images of one seeded permutation of the 60,000 (so the
smaller sets are nested in the larger ones), n in ``sizes``, then tested on the 10,000 test
images (final state; no validation set). Same recipe for every n: SGD (lambda 0.05, cosine
decay; mu 0.9), batches of 128, ``epochs`` (1) pass but at least ``min_steps`` (200) updates
(epochs(n) = max(epochs, ceil(min_steps / floor(n / 128))): 29 epochs for n = 1,000, 1 for
30,000 and 60,000), no regularisation, so that the small sets are trained long enough too:

- mlp: 784-256-256-10, ReLU (jdl.nn.MLP, 269,322 parameters);
- lenet5: LeNet-5 with ReLU and max-pooling (jdl.nn.LeNet5, 61,706 parameters).

Each (model, n) is one jdl.runs.supervised run (jdl.train.fit) in <workdir>/<model>_n<n>/. Writes
summary.json (rows), training_size_table.md and accuracy_vs_size.png (test accuracy and test
error against n, log axes).

Result (the command above, 2026-12-01, seed 0; 71 min wall on the 2 cores shared at load 30-50,
the first two MLP points 50 min of it; by the epochs formula before whole batches were counted:
26 / 13 / 6 / 3 / 1 / 1 epochs, 182-468 updates), test accuracy:

    n        1,000   2,000   5,000  10,000  30,000  60,000
    mlp     0.8061  0.8297  0.8441  0.8479  0.8531  0.8641
    lenet5  0.8065  0.8154  0.8422  0.8401  0.8472  0.8650

The lecture's claim, by the numbers: test accuracy rises with n, +5.8 (MLP) and +5.9 (LeNet-5)
points from 1,000 to 60,000 images, monotonically for the MLP; LeNet-5 dips 0.2 point at 10,000
(3 epochs, the same ~234 updates as 5,000 with 6). At this budget (one epoch for n >= 30,000)
the convnet does not yet beat the MLP; accuracy_vs_size.png shows both on log axes.
"""
from __future__ import annotations

import dataclasses
import math
import os
import time

from jdl.runs.command_line import option, script
from jdl.runs.supervised import ExperimentConfig, start

MODELS = ("mlp", "lenet5")


@dataclasses.dataclass
class Config(ExperimentConfig):
    models: tuple[str, ...] = option(MODELS, f"models, among {', '.join(MODELS)}")
    sizes: tuple[int, ...] = option((1_000, 2_000, 5_000, 10_000, 30_000, 60_000),
                                    "training-set sizes n", low=1)
    min_steps: int = option(200, "at least this many updates per run", low=1)
    model: str = option("mlp", "the model of a single run (set per run by the script)",
                        choices=MODELS)
    batch_size: int = 128
    epochs: int = 1
    learning_rate: float = 0.05
    momentum: float = 0.9
    schedule: str = "cosine"
    val_fraction: float = 0.0

    def validate(self) -> None:
        super().validate()
        bad = [m for m in self.models if m not in MODELS]
        if bad:
            raise ValueError(f"models must be among {MODELS}, got {bad}")

    def epochs_for(self, n: int) -> int:
        """max(epochs, ceil(min_steps / floor(n / batch_size))): fit drops the last partial
        batch of each epoch."""
        return max(self.epochs, math.ceil(self.min_steps / max(1, n // self.batch_size)))

    def arm_overrides(self) -> dict:
        """{'<model>_n<n>': config overrides}, model by model, smallest n first."""
        return {f"{m}_n{n}": dict(model=m, max_train_examples=n, epochs=self.epochs_for(n))
                for m in self.models for n in self.sizes}


def build_model(cfg: Config):
    from jdl.nn import MLP, LeNet5
    if cfg.model == "lenet5":
        return LeNet5(activation="relu", pool="max")
    return MLP(hidden=(256, 256), activation="relu", dropout_rate=0.0)


def plot(path: str, rows: list[dict]) -> None:
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for i, m in enumerate(dict.fromkeys(r["model"] for r in rows)):
        rs = [r for r in rows if r["model"] == m]
        n = [r["train_examples"] for r in rs]
        axes[0].plot(n, [r["test_accuracy"] for r in rs], "o-", color=f"C{i}", label=m)
        axes[1].plot(n, [1 - r["test_accuracy"] for r in rs], "o-", color=f"C{i}", label=m)
    axes[0].set_ylabel("test accuracy")
    axes[1].set_ylabel("test error (1 - accuracy)")
    axes[1].set_yscale("log")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("training-set size n")
        ax.grid(alpha=0.3, which="both")
        ax.legend()
    fig.suptitle("Fashion-MNIST: test accuracy against training-set size")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def table_markdown(rows: list[dict]) -> str:
    models = list(dict.fromkeys(r["model"] for r in rows))
    sizes = list(dict.fromkeys(r["train_examples"] for r in rows))
    acc = {(r["model"], r["train_examples"]): r["test_accuracy"] for r in rows}
    lines = ["| n | " + " | ".join(models) + " |", "| ---: |" + " ---: |" * len(models)]
    for n in sizes:
        lines.append(f"| {n:,} | " + " | ".join(
            f"{acc[m, n]:.4f}" if (m, n) in acc else "-" for m in models) + " |")
    return "\n".join(lines) + "\n"


@script("training_size_fashion", Config)
def main(argv=None) -> dict:
    from jdl.runs.comparison import run_arms, write_results
    t0 = time.perf_counter()
    cfg, ns = start(Config, "training_size_fashion", argv, __doc__)
    arms = cfg.arm_overrides()
    runs = run_arms(cfg, arms, build_model, ns.workdir, progress=not ns.no_progress)
    rows = [{"model": arms[a]["model"], "train_examples": arms[a]["max_train_examples"],
             "epochs": arms[a]["epochs"], "steps": s["steps"],
             "test_accuracy": s["test_accuracy"],
             "final_train_accuracy": s["final_epoch"]["train_accuracy"],
             "wall_time_s": s["wall_time_s"]} for a, s in runs.items()]
    plot(os.path.join(ns.workdir, "accuracy_vs_size.png"), rows)
    return write_results(
        ns.workdir, "training_size_fashion", "training_size_table.md", table_markdown(rows),
        test_model="one per (model, n): its final state (no validation set)",
        resumed=ns.resume, started=t0, config=dataclasses.asdict(cfg), rows=rows, runs=runs)


if __name__ == "__main__":
    main()
