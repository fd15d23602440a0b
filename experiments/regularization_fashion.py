"""L1 against L2 weight decay, from the start or "after some epochs" (the lecture: "use L1 or L2
regularization (after some epochs)"; K = sum_m loss + beta sum_ij |W_ij|^p), on an MLP on
Fashion-MNIST: weight sparsity and test accuracy, and the weights' histogram.

    python experiments/regularization_fashion.py --workdir runs/regularization_fashion

The MLP is 784-256-256-10, ReLU, no dropout (jdl.nn.MLP, 269,322 parameters), trained by SGD
(lambda 0.05, cosine decay; mu 0.9; batches of 128) for ``epochs`` (6) passes over
``max_train_examples`` (5,000) training images (a seeded random subset, no validation set: each
arm's test model is its final state; 234 updates). Each arm adds one penalty on the weight
matrices (biases are never penalised; jdl.optim.weight_decay), in this order: none; L1 (p = 1)
beta 1e-4; L2 (p = 2) beta 1e-3; L1 beta 3e-4 switched on at epoch ``late_epoch`` (3) only
(``penalty_start_epoch``); L1 beta 3e-4 from the start; L2 beta 3e-3. Each is one
jdl.runs.supervised run (jdl.train.fit) in <workdir>/<arm>/.

Sparsity is the fraction of the weight matrices' entries with |w| < ``threshold`` (1e-3; the
first layer's initial weights are uniform in +-0.062, so 1e-3 is 1.6% of that range), read from
each arm's stored final parameters (its last checkpoint, whose test accuracy the table shows).
"Matched accuracy": among the arms within ``match_tolerance`` (0.01) of the unregularised arm's
test accuracy, the sparsest L1 arm against the sparsest L2 arm.

Writes summary.json (rows, the matched comparison), regularization_table.md and
weight_histogram.png (the first layer's weights of the unregularised, the matched L2 and the
matched L1 arm: histograms of w and of log10 |w|).

Result (the command above, 2026-12-01; 24 min wall on the shared 2 cores, the first arm 20 min of
it at load 40-50, the others 19-123 s):

    arm              from epoch  test accuracy  sparsity |w| < 1e-3  first layer  mean |w|
    none                 0          0.8441          0.014              0.015       0.0381
    l1 1e-4              0          0.8413          0.069              0.076       0.0327
    l2 1e-3              0          0.8428          0.016              0.018       0.0340
    l1 3e-4 from 3       3          0.8433          0.057              0.064       0.0350
    l1 3e-4              0          0.8416          0.236              0.264       0.0231
    l2 3e-3              0          0.8415          0.020              0.023       0.0270

The lecture's claim, by the numbers: at matched accuracy (0.8416 vs 0.8415) L1 leaves 23.6% of
the weights below 1e-3, L2 2.0% (12x sparser); L2 shrinks all weights (mean |w| -29%) without
zeroing them. L1 switched on after 3 of 6 epochs keeps accuracy closest to none (-0.08 point)
with 4x the unregularised sparsity.
"""
from __future__ import annotations

import dataclasses
import os
import time

from jdl.runs.command_line import option, script
from jdl.runs.supervised import ExperimentConfig, start


@dataclasses.dataclass
class Config(ExperimentConfig):
    hidden: tuple[int, ...] = option((256, 256), "sizes of the hidden layers", low=1)
    l1_betas: tuple[float, ...] = option((1e-4, 3e-4), "beta of the L1 arms")
    l2_betas: tuple[float, ...] = option((1e-3, 3e-3), "beta of the L2 arms")
    late_l1: float = option(3e-4, "beta of the late L1 arm (0: no such arm)")
    late_l2: float = option(0.0, "beta of the late L2 arm (0: no such arm)")
    late_epoch: int = option(3, "the late arms' penalty_start_epoch", low=0)
    threshold: float = option(1e-3, "sparsity: fraction of weights with |w| below this")
    match_tolerance: float = option(0.01, "matched accuracy: within this of the "
                                    "unregularised arm's test accuracy")
    batch_size: int = 128
    epochs: int = 6
    learning_rate: float = 0.05
    momentum: float = 0.9
    schedule: str = "cosine"
    val_fraction: float = 0.0
    max_train_examples: int | None = 5_000

    def arm_overrides(self) -> dict:
        """{arm: config overrides}, the most telling first (a run cut short still compares
        them): none, the first L1 and L2 arms, the late arms (l1_<beta>_from<epoch>, ...),
        then the other betas (l1_<beta>, l2_<beta>)."""
        def arm(p, b, start=0):
            return {"l1": 0.0, "l2": 0.0, p: b, "penalty_start_epoch": start}
        l1 = {f"l1_{b:g}": arm("l1", b) for b in self.l1_betas}
        l2 = {f"l2_{b:g}": arm("l2", b) for b in self.l2_betas}
        late = {f"{p}_{b:g}_from{self.late_epoch}": arm(p, b, self.late_epoch)
                for p, b in (("l1", self.late_l1), ("l2", self.late_l2)) if b > 0}
        first = dict(list(l1.items())[:1] + list(l2.items())[:1])
        return {"none": arm("l1", 0.0), **first, **late, **l1, **l2}


def build_model(cfg: Config):
    from jdl.nn import MLP
    return MLP(hidden=cfg.hidden, activation="relu", dropout_rate=0.0)


def weight_stats(params, threshold: float) -> dict:
    """Sparsity (fraction |w| < threshold) and mean |w| over the weight matrices (ndim >= 2,
    the penalised leaves), overall and of the first layer."""
    import jax
    import numpy as np
    kernels = [np.asarray(k) for k in jax.tree.leaves(params) if np.ndim(k) >= 2]
    flat = np.concatenate([k.ravel() for k in kernels])
    first = kernels[0].ravel()
    return {"sparsity": float(np.mean(np.abs(flat) < threshold)),
            "sparsity_first_layer": float(np.mean(np.abs(first) < threshold)),
            "mean_abs_w": float(np.mean(np.abs(flat))), "num_weights": int(flat.size)}


def matched(rows: list[dict], tolerance: float) -> dict:
    """The sparsest L1 and L2 arms with test accuracy within ``tolerance`` of arm 'none'."""
    ref = next(r for r in rows if r["arm"] == "none")["test_accuracy"]
    out = {"reference_accuracy": ref, "tolerance": tolerance}
    for p in ("l1", "l2"):
        ok = [r for r in rows if r["arm"].startswith(p + "_")
              and abs(r["test_accuracy"] - ref) <= tolerance]
        out[p] = max(ok, key=lambda r: r["sparsity"])["arm"] if ok else None
    return out


def table_markdown(rows: list[dict], threshold: float) -> str:
    lines = [f"| arm | penalty from epoch | test accuracy | sparsity (|w| < {threshold:g}) | "
             "first layer | mean |w| |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| {r['arm']} | {r['penalty_start_epoch']} | {r['test_accuracy']:.4f} | "
                     f"{r['sparsity']:.3f} | {r['sparsity_first_layer']:.3f} | "
                     f"{r['mean_abs_w']:.4f} |")
    return "\n".join(lines) + "\n"


def plot_histograms(path: str, weights: dict, threshold: float) -> None:
    """Histograms of w (log counts) and of log10 |w| for {label: first-layer weights}."""
    import numpy as np
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    lim = max(np.abs(w).max() for w in weights.values())
    for i, (label, w) in enumerate(weights.items()):
        axes[0].hist(w, bins=np.linspace(-lim, lim, 121), histtype="step", color=f"C{i}",
                     label=label)
        axes[1].hist(np.log10(np.abs(w) + 1e-12), bins=np.linspace(-8, np.log10(lim), 121),
                     histtype="step", color=f"C{i}", label=label)
    axes[0].set_yscale("log")
    axes[0].set_xlabel("w")
    axes[1].axvline(np.log10(threshold), color="k", ls=":", label=f"|w| = {threshold:g}")
    axes[1].set_xlabel("log10 |w|")
    for ax in axes:
        ax.set_ylabel("count")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("first-layer weights (784 x hidden) of the MLP")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


@script("regularization_fashion", Config)
def main(argv=None) -> dict:
    import numpy as np
    from jdl.runs.comparison import final_variables, run_arms, write_results
    t0 = time.perf_counter()
    cfg, ns = start(Config, "regularization_fashion", argv, __doc__)
    arms = cfg.arm_overrides()
    summaries = run_arms(cfg, arms, build_model, ns.workdir, progress=not ns.no_progress)
    model, example = build_model(cfg), np.zeros((1, 28, 28, 1), np.float32)
    if summaries["none"]["dataset"] == "digits":
        example = np.zeros((1, 8, 8, 1), np.float32)
    rows, first = [], {}
    for arm, s in summaries.items():
        params = final_variables(os.path.join(ns.workdir, arm), model, example)["params"]
        first[arm] = np.asarray(params["Dense_0"]["kernel"]).ravel()
        rows.append({"arm": arm, **arms[arm],
                     "test_accuracy": s["test_accuracy"], "test_model": s["test_model"],
                     "steps": s["steps"], **weight_stats(params, cfg.threshold),
                     "wall_time_s": s["wall_time_s"]})
    match = matched(rows, cfg.match_tolerance)
    plot_histograms(os.path.join(ns.workdir, "weight_histogram.png"),
                    {a: first[a] for a in ("none", match["l2"], match["l1"]) if a}, cfg.threshold)
    print(f"matched accuracy (within {cfg.match_tolerance} of {match['reference_accuracy']:.4f}):"
          f" sparsest L1 {match['l1']}, sparsest L2 {match['l2']}")
    return write_results(
        ns.workdir, "regularization_fashion", "regularization_table.md",
        table_markdown(rows, cfg.threshold),
        test_model="one per arm: its final state (no validation set)", resumed=ns.resume,
        started=t0, config=dataclasses.asdict(cfg), rows=rows, matched=match, runs=summaries)


if __name__ == "__main__":
    main()
