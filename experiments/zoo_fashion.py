"""The lecture's convnet zoo on Fashion-MNIST: each architecture in its small-input form
(jdl.nn: 28x28x1 inputs, 10 classes) trained briefly with the same recipe, in one table of
parameters, test accuracy and time per epoch.

    python experiments/zoo_fashion.py --workdir runs/zoo_fashion
    python experiments/zoo_fashion.py --archs lenet5,alexnet --max-train-examples 2000   # a few
    python experiments/zoo_fashion.py --dataset digits --archs lenet5 --epochs 1         # smoke

Recipe (every architecture alike, nothing tuned per model): Adam, learning rate 1e-3 with cosine
decay, batches of 64, ``epochs`` passes over ``max_train_examples`` training images (a seeded
random subset of the 60,000; pixels normalised by its mean and standard deviation), then the
10,000 test images; each model is one jdl.runs.supervised run in <workdir>/<arch>/ (config, metrics,
checkpoints, learning curves, first-layer filters). Time per epoch is the measured training time
(compilation excluded) scaled to a full epoch of the 60,000 training images:
60,000 / (training samples per second).

Writes summary.json (one row per architecture; ``--resume`` with the same settings keeps the rows
it holds, resumes an interrupted architecture and trains the others) and zoo_table.md (the README table).

Run here: ``python experiments/zoo_fashion.py --workdir runs/zoo_fashion`` (12.3 min in all,
2 epochs over 10,000 images = 312 updates each, on 2 cores shared with a ResNet training and
several agents, load average 20-50: the time column is a rough guide, not a benchmark; the
benchmarks/ command measures speed side by side):

    architecture    parameters   test accuracy   s/epoch here   (2 passes, 10,000 images, 312 updates)
    lenet5              61,706          0.8036           23
    keras_example      600,810          0.8351          118
    alexnet            552,890          0.7841          110
    vgg11              678,218          0.5777          124
    googlenet          354,850          0.8020          601
    resnet18           701,178          0.8378          231
    vgg16            1,021,882          0.2170          178
    zfnet            1,195,482          0.7992          123

312 updates are a short training: the networks with batch norm or few layers reach 0.78-0.84;
the plain VGGs (no batch norm, 8 and 13 convolutions) start slowly: VGG-16 is barely off chance
(the reason Simonyan & Zisserman trained the deep configurations from the shallow ones'
weights, and later versions added batch norm).
"""
from __future__ import annotations

import dataclasses
import os
import time
from functools import partial

from jdl.runs import run_dir  # noqa: E402
from jdl.runs.command_line import script  # noqa: E402
from jdl.runs.supervised import ExperimentConfig, start  # noqa: E402

# name -> what it is, cheapest first (the constructors: zoo())
WHAT = {
    "lenet5": "LeNet-5 (LeCun et al. 1998), ReLU + max-pool",
    "keras_example": "the lecture's Keras example",
    "alexnet": "AlexNet (Krizhevsky et al. 2012)",
    "vgg11": "VGG-11 (Simonyan & Zisserman 2015)",
    "googlenet": "GoogLeNet (Szegedy et al. 2015)",
    "resnet18": "ResNet-18 (He et al. 2016)",
    "vgg16": "VGG-16",
    "zfnet": "ZFNet (Zeiler & Fergus 2014)",
}
FULL_EPOCH = 60_000


def zoo() -> dict:
    """name -> constructor of the architecture's small-input form (imports jdl.nn, so JAX)."""
    from jdl import nn as jnn
    return {"lenet5": partial(jnn.LeNet5, activation="relu", pool="max"),
            "keras_example": jnn.KerasExample,
            **{k: jnn.SMALL_ZOO[k] for k in WHAT if k not in ("lenet5", "keras_example")}}


@dataclasses.dataclass
class Config(ExperimentConfig):
    archs: tuple[str, ...] = tuple(WHAT)    # architectures to train, in this order
    optimizer: str = "adam"                # the same recipe for every architecture
    batch_size: int = 64                    # examples per update
    learning_rate: float = 1e-3             # Adam's, cosine decay
    epochs: int = 2                         # brief training
    val_fraction: float = 0.0               # no validation: one pass, then the test set
    max_train_examples: int | None = 10_000  # the first images of the training split
    log_every: int = 20                     # steps between logged training metrics

    def validate(self) -> None:
        super().validate()
        bad = [a for a in self.archs if a not in WHAT]
        if bad:
            raise ValueError(f"archs must be among {tuple(WHAT)}, got {bad}")


def table_markdown(rows: list[dict]) -> str:
    lines = ["| architecture | parameters | test accuracy | s / epoch (60,000 images) |",
             "| --- | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| {r['arch']} ({r['what']}) | {r['num_params']:,} | "
                     f"{r['test_accuracy']:.4f} | {r['seconds_per_epoch']:.0f} |")
    return "\n".join(lines) + "\n"


@script("zoo_fashion", Config)
def main(argv=None) -> list[dict]:
    """The command line: each architecture one jdl.runs.supervised run in <workdir>/<arch>/; with
    --resume, the architectures in summary.json are kept, an interrupted one resumes."""
    from jdl.runs.supervised import run

    t_start = time.perf_counter()
    cfg, ns = start(Config, "zoo_fashion", argv, __doc__)
    workdir, rd = ns.workdir, ns.run_dir
    stored = rd.read_summary() if ns.resume else None
    done = {r["arch"]: r for r in stored["rows"]} if stored else {}
    builders, rows = zoo(), []
    for arch in cfg.archs:
        if arch in done:
            rows.append(done[arch])
            continue
        build, sub = builders[arch], os.path.join(workdir, arch)
        s = run(cfg, lambda _cfg, build=build: build(), sub, progress=not ns.no_progress,
                title=arch, resume=run_dir.holds_run(sub))
        rows.append({"arch": arch, "what": WHAT[arch], "num_params": s["num_params"],
                     "test_accuracy": s["test_accuracy"],
                     "seconds_per_epoch": FULL_EPOCH / s["samples_per_s"],
                     "train_time_s": s["train_time_s"], "compile_time_s": s["compile_time_s"],
                     "samples_per_s": s["samples_per_s"], "wall_time_s": s["wall_time_s"]})
        print(f"{arch}: {s['num_params']:,} params, test accuracy {s['test_accuracy']:.4f}, "
              f"{rows[-1]['seconds_per_epoch']:.0f} s per 60k-image epoch", flush=True)
        rd.write_summary({
            "experiment": "zoo_fashion", "test": None, "resumed": ns.resume,
            "test_model": "no single test model: each architecture's under rows (its run's "
                          "test model in <workdir>/<arch>/summary.json)",
            "config": dataclasses.asdict(cfg), "rows": rows,
            "wall_time_s": time.perf_counter() - t_start})
    rd.write_text("zoo_table.md", table_markdown(rows))
    print(table_markdown(rows))
    return rows


if __name__ == "__main__":
    main()
