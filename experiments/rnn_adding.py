"""The adding problem (Hochreiter & Schmidhuber 1997, experiment 4) with T = 200: LSTM, GRU and
tanh RNN trained by BPTT on the same sequences, against the constant-prediction baseline 1/6.

    python experiments/rnn_adding.py                          # the three models, defaults
    python experiments/rnn_adding.py --models lstm --epochs 4 # one model, shorter

Each input is T frames of (value ~ U(0, 1), marker); two frames are marked, one in each half,
and the target is the sum of the two marked values, read from the last frame (jdl.data.
sequences.adding_problem). Predicting the mean 1 scores MSE 1/6 = 0.167; the task counts as
solved below 0.01. Models: SequenceModel(cell, hidden, 1, readout='last'), quadratic loss,
Adam (lr 1e-3, cosine decay over the run), gradient norm clipped at 1, batches of 64;
training sequences are a fixed draw of ``train_size`` (an epoch), validation and test
separate draws (other seeds). The
number of training sequences a model needed is the count seen at the end of the first epoch
whose validation MSE is below ``target`` (0.01); the test MSE is that of the checkpoint with
the best validation MSE.

Writes runs/rnn_adding/<cell>/ (metrics, checkpoints, learning curves) and
runs/rnn_adding/summary.json; prints a table.

Result here (defaults; 2 cores shared with 2-4 other jobs, 38 min wall for the three models):

| model | test MSE | sequences until val MSE < 0.01 | wall s |
| --- | ---: | ---: | ---: |
| lstm (hidden 64) | 0.00287 | 119,808 | 1217 |
| gru (hidden 64) | 0.00028 | 39,936 | 903 |
| tanh (hidden 64) | 0.06303 | not reached in 239,616 | 150 |
"""
from __future__ import annotations

import dataclasses

from jdl.data.sequences import ADDING_BASELINE_MSE, adding_problem  # noqa: E402
from jdl.runs.command_line import option, script  # noqa: E402
from jdl.runs.supervised import start  # noqa: E402
from jdl.runs.sequences import (SequenceConfig, cells_of, markdown_table,  # noqa: E402
                                     run_models)


@dataclasses.dataclass
class AddingConfig(SequenceConfig):
    models: str = "lstm,gru,tanh"      # comma-separated cells, trained one after the other
    T: int = option(200, "frames per sequence", low=2)
    hidden: int = 64
    train_size: int = option(20000, "training sequences (a fixed draw: one epoch)", low=1)
    val_size: int = option(1000, "validation sequences", low=1)
    test_size: int = option(2000, "test sequences", low=1)
    loss: str = option("quadratic", "training loss (the task's)", choices=("quadratic",))
    epochs: int = 12
    schedule: str = "cosine"
    target: float = 0.01
    log_every: int = 50


def data(cfg: AddingConfig):
    return (adding_problem(cfg.train_size, cfg.T, seed=cfg.seed),
            adding_problem(cfg.val_size, cfg.T, seed=cfg.seed + 1000),
            adding_problem(cfg.test_size, cfg.T, seed=cfg.seed + 2000))


@script("rnn_adding", AddingConfig)
def main(argv=None) -> dict:
    cfg, ns = start(AddingConfig, "rnn_adding", argv, __doc__)
    root = ns.workdir
    train, val, test = data(cfg)

    def report(cell, s):
        need = s["sequences_to_target"]
        reached = (f"after {need} sequences" if need else
                   f"not reached in {s['sequences_seen']} sequences")
        return (f"test MSE {s['test_loss']:.5f} (baseline {ADDING_BASELINE_MSE:.4f}); val MSE "
                f"below {cfg.target} {reached}")

    results = run_models(cfg, cells_of(cfg.models), train, val, test, root, resume=ns.resume,
                         progress=not ns.no_progress, name="rnn_adding", report=report,
                         num_outputs=1, readout="last", loss=cfg.loss,
                         extra={"T": cfg.T, "baseline_mse": ADDING_BASELINE_MSE})
    print(markdown_table(
        ["model", "hidden", "test MSE", "baseline", f"sequences to val MSE < {cfg.target}",
         "sequences seen", "wall s"],
        [[c, s["hidden"], f"{s['test_loss']:.5f}", f"{ADDING_BASELINE_MSE:.4f}",
          s["sequences_to_target"] or "not reached", s["sequences_seen"],
          f"{s['wall_time_s']:.0f}"] for c, s in results.items()]))
    return results


if __name__ == "__main__":
    main()
