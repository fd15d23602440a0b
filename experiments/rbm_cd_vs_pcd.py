"""CD-1 against CD-10 and PCD-1 at equal epochs: the AIS test log-likelihood of RBMs trained on
binarised Fashion-MNIST with each learning rule and otherwise identical settings.

    python experiments/rbm_cd_vs_pcd.py                 # ~17 min here (cores shared)
    python experiments/rbm_cd_vs_pcd.py --epochs 1 --ais-betas 1000 --ais-runs 1   # smoke

Salakhutdinov & Murray 2008 (table 1, MNIST) found that CD-k with larger k gives higher test
log-likelihood (CD-1 -125.5, CD-3 -105.5, CD-25 -86.3 nats for 500 hidden units) and Tieleman
2008 that PCD beats CD-1 at equal computation; this script measures the ordering on
Fashion-MNIST with jdl's ``train_rbm`` and ``ais_log_likelihood``. Settings: 200 hidden units,
10 epochs, batches of 100, SGD with learning rate 0.05 (cosine decay) and momentum 0.5, same
initial weights and batch order for every rule; AIS with 100 chains, 14,500 temperatures and a
base-rate base model, 2 independent runs each. Writes runs/rbm_cd_vs_pcd/summary.json.

Result here (seed 0; about 17 min wall with other trainings on the cores): AIS test
log-likelihood CD-1 -220.35 nats (log Z spread 0.03), CD-10 -144.12 (0.32), PCD-1 -137.94
(0.15): PCD-1 and CD-10 both far above CD-1, as in the literature (BUILD_NOTES.md, "CD-1 vs
CD-10 vs PCD-1").
"""
from __future__ import annotations

import dataclasses
import os
import time
from typing import Optional

from jdl.runs import run_dir  # noqa: E402
from jdl.runs.command_line import script  # noqa: E402
from jdl.runs.supervised import answer_help, start  # noqa: E402

RULES = {"cd1": (1, False), "cd10": (10, False), "pcd1": (1, True)}


@dataclasses.dataclass
class CDComparisonConfig:
    data_dir: Optional[str] = None  # IDX folder (else $JDL_FASHION_MNIST_DIR, Debian's)
    rules: tuple[str, ...] = ("cd1", "cd10", "pcd1")  # rules compared: cd1 cd10 pcd1
    hidden: int = 200                    # hidden units
    epochs: int = 10                     # passes over the training set
    batch_size: int = 100                # examples per update
    learning_rate: float = 0.05          # learning rate
    momentum: float = 0.5                # momentum of the updates, in [0, 1)
    seed: int = 0                        # seed of the initialisation and the batches
    ais_chains: int = 100                # AIS: chains per run
    ais_betas: int = 14500               # AIS: intermediate temperatures per chain
    ais_runs: int = 2                    # AIS: independent runs (their spread of log Z is reported)
    max_train_examples: Optional[int] = None  # use only the first N training examples (smoke runs)
    devices: Optional[int] = None       # data parallelism: None all local devices, or the first N


if __name__ == "__main__":   # --help before importing JAX: it answers at once
    answer_help(CDComparisonConfig, "rbm_cd_vs_pcd", __doc__, checkpoints=False)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from jdl import optim, rbm  # noqa: E402
from jdl.data import fashion_mnist  # noqa: E402


def run(cfg: CDComparisonConfig, workdir: str, progress: bool = True) -> dict:
    unknown = [r for r in cfg.rules if r not in RULES]
    if unknown:
        raise ValueError(f"unknown rules {unknown}; known: {sorted(RULES)}")
    t_start = time.perf_counter()
    os.makedirs(workdir, exist_ok=True)
    x_train, x_test = fashion_mnist.load_binarized(cfg.data_dir, cfg.max_train_examples)
    base = rbm.base_rate_bias(jnp.asarray(x_train))
    steps = cfg.epochs * (len(x_train) // cfg.batch_size)
    key = jax.random.PRNGKey(cfg.seed)
    rows = {}
    for name in cfg.rules:
        k, persistent = RULES[name]
        tx = optim.sgd(optim.cosine(cfg.learning_rate, steps), cfg.momentum)
        res = rbm.train_rbm(x_train, cfg.hidden, key, epochs=cfg.epochs,
                            batch_size=cfg.batch_size, tx=tx, k=k, persistent=persistent,
                            seed=cfg.seed, progress=progress, devices=cfg.devices)
        ll = rbm.ais_log_likelihood(res.state.params, x_test, jax.random.PRNGKey(99),
                                    n_runs=cfg.ais_runs, n_chains=cfg.ais_chains,
                                    n_betas=cfg.ais_betas, base_visible_bias=base)
        rows[name] = {"k": k, "persistent": persistent,
                      "test_log_likelihood": ll["log_likelihood"],
                      "log_z_spread": ll["log_z_spread"], "log_z_runs": ll["log_z_runs"],
                      "train_s_per_epoch": res.train_time / cfg.epochs,
                      "final_reconstruction_error": res.history[-1]["train_loss"]}
        print(f"{name}: AIS test log-likelihood {ll['log_likelihood']:.2f} nats "
              f"(log Z spread {ll['log_z_spread']:.2f}), {res.train_time / cfg.epochs:.1f} "
              f"s/epoch")
    return run_dir.RunDir(workdir).write_summary({
        "experiment": "rbm_cd_vs_pcd", "test": None,
        "test_model": "the final RBM of each rule: see rules", "resumed": False,
        "wall_time_s": time.perf_counter() - t_start, "config": dataclasses.asdict(cfg),
        "rules": rows})


@script("rbm_cd_vs_pcd", CDComparisonConfig)
def main(argv=None):
    cfg, ns = start(CDComparisonConfig, "rbm_cd_vs_pcd", argv, __doc__, checkpoints=False)
    workdir = ns.workdir
    s = run(cfg, workdir, progress=not ns.no_progress)
    print(f"{'rule':8s}{'test LL (nats)':>16s}{'spread':>8s}{'s/epoch':>9s}")
    for name, r in s["rules"].items():
        print(f"{name:8s}{r['test_log_likelihood']:16.2f}{r['log_z_spread']:8.2f}"
              f"{r['train_s_per_epoch']:9.1f}")
    return s


if __name__ == "__main__":
    main()
