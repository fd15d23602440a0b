"""The sequence experiments' runner: a recurrent net on a sequence task, trained by BPTT,
truncated BPTT or RTRL through the one training loop (jdl.train.fit), evaluated on a test set.

An experiment script builds its data as dicts of arrays ({'x': (N, T, features) floats or
(N, T) integer tokens, 'y': per-frame or per-sequence targets}) and calls :func:`run_sequences`
with a :class:`SequenceConfig`; :func:`jdl.runs.supervised.parse_args` turns the config's fields into
command-line flags. Integer tokens (copy task, characters) are one-hot encoded inside the
compiled step (:func:`one_hot_inputs`), so the training set stays an int32 array.

Written under the workdir: config.json, metrics.jsonl, TensorBoard events, checkpoints/ (resume
with ``resume=True``), summary.json and learning_curves.png.
"""
from __future__ import annotations

import dataclasses
import math
import os
import time
from typing import Callable, ClassVar, Optional

from jdl.runs import run_dir
from jdl.runs.command_line import option
from jdl.runs.supervised import (IMAGE_FIELDS, ExperimentConfig, build_optimizer, prepare_run,
                            select_and_test)

RULES = ("bptt", "truncated", "truncated_online", "rtrl", "rtrl_online")
CELLS = ("lstm", "gru", "tanh", "irnn", "elman")   # jdl.nn.recurrent.SequenceModel


@dataclasses.dataclass
class SequenceConfig(ExperimentConfig):
    """A recurrent net trained on a sequence task (override any field with --name value).

    rule: 'bptt' (one update per batch, gradient through the whole sequence), 'truncated'
    (horizon frames per chunk, chunk gradients summed: one update per batch),
    'truncated_online' (one update per chunk), 'rtrl' (forward sensitivities, gradient equal
    to BPTT's), 'rtrl_online' (one update per frame).
    """
    cell: str = option("lstm", "the recurrent cell", choices=CELLS)
    hidden: int = option(128, "units of the recurrent layer", low=1)
    rule: str = option("bptt", "the training rule (see the class docstring)", choices=RULES)
    horizon: Optional[int] = option(None, "truncated BPTT's N_t (frames)", low=1)
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    schedule: str = "constant"
    clip_norm: Optional[float] = 1.0
    batch_size: int = 64
    target: Optional[float] = option(None, "report the first epoch whose validation loss is "
                                     "below this")

    UNUSED: ClassVar[tuple] = IMAGE_FIELDS   # the scripts make their own sequences

    def validate(self) -> None:
        super().validate()
        errs = []
        if self.rule.startswith("truncated") and (self.horizon is None or self.horizon < 1):
            errs.append(f"rule {self.rule!r} needs a positive horizon, got {self.horizon}")
        if errs:
            raise ValueError("invalid configuration: " + "; ".join(errs))


def one_hot_inputs(fn: Callable, vocab_size: int, x_key: str = "x", position: int = 2) -> Callable:
    """``fn`` with ``batch[x_key]`` (integer tokens (N, T)) replaced by its one-hot encoding
    (N, T, vocab_size) float32 before the call. ``batch`` is argument ``position`` of ``fn``:
    2 for grad_fn(params, model_state, batch, rng) and eval_fn(params, model_state, batch), 1
    for a train step(state, batch). A one-hot input times W_x is an embedding lookup, so a
    recurrent net on tokens needs no separate embedding layer."""
    import jax
    import jax.numpy as jnp

    def wrapped(*args):
        args = list(args)
        batch = dict(args[position])
        batch[x_key] = jax.nn.one_hot(batch[x_key], vocab_size, dtype=jnp.float32)
        args[position] = batch
        return fn(*args)
    return wrapped


def build_step(cfg: SequenceConfig, model, tx, loss: str, vocab_size: int | None = None):
    """The train step of ``cfg.rule`` for ``model`` with optimiser ``tx``."""
    from jdl.rnn import bptt, rtrl, rtrl_step, truncated_bptt, truncated_bptt_step
    from jdl.train import make_train_step
    if cfg.rule in ("bptt", "truncated", "rtrl"):
        grad_fn = {"bptt": lambda: bptt(model, loss),
                   "truncated": lambda: truncated_bptt(model, cfg.horizon, loss),
                   "rtrl": lambda: rtrl(model, loss)}[cfg.rule]()
        if vocab_size:
            grad_fn = one_hot_inputs(grad_fn, vocab_size)
        return make_train_step(grad_fn, tx)
    step = (truncated_bptt_step(model, tx, cfg.horizon, loss) if cfg.rule == "truncated_online"
            else rtrl_step(model, tx, loss))
    return one_hot_inputs(step, vocab_size, position=1) if vocab_size else step


def updates_per_batch(cfg: SequenceConfig, T: int, readout: str) -> int:
    """Optimiser updates per batch of sequences of T frames: 1, except for the online rules,
    one per chunk of ``horizon`` frames ('truncated_online') or one per frame with a loss
    ('rtrl_online': T for readout 'all', 1 for 'last'). Learning-rate schedules count updates,
    so their length in epochs is kept by counting these."""
    if cfg.rule == "truncated_online":
        return -(-T // cfg.horizon)
    if cfg.rule == "rtrl_online":
        return T if readout == "all" else 1
    return 1


def first_below(history: list, key: str, target: float | None):
    """The first epoch record whose ``key`` is below ``target`` (None if none or no target)."""
    if target is None:
        return None
    return next((r for r in history if r.get(key, math.inf) < target), None)


def run_sequences(cfg: SequenceConfig, train: dict, val: dict | None, test: dict, workdir: str,
                  *, num_outputs: int, readout: str, loss: str | None = None,
                  vocab_size: int | None = None, resume: bool = False, progress: bool = True,
                  title: str = "", extra: dict | None = None,
                  eval_metrics: Callable | None = None, extra_tests: dict | None = None,
                  overwrite: bool = False, stretch_schedule: bool = False) -> dict:
    """Train ``SequenceModel(cfg.cell, cfg.hidden, num_outputs, readout)`` on ``train`` by
    ``cfg.rule`` with ``loss`` (default ``cfg.loss``); validate each epoch on ``val``; evaluate
    on ``test``. Returns the summary (also written to workdir/summary.json, jdl.runs.run_dir's
    schema): ``test`` holds the test loss (and accuracy for integer targets) of the checkpoint
    with the best validation loss (of the final parameters without ``val``; those are in
    ``final_test`` either way, ``test_model`` says which), the sequences seen, the first epoch
    whose validation loss is below ``cfg.target`` and the sequences seen by then
    (``sequences_to_target``), timings. ``eval_metrics(outputs, targets, weights) -> dict``
    replaces jdl.rnn.sequence_metrics at evaluation (validation and test). ``extra_tests``
    ({name: data}) are evaluated with the same model as the test set (e.g. the same text cut
    into longer windows), into ``summary['extra_tests'][name]``. The workdir rules (resume,
    overwrite, refusal) are jdl.runs.run_dir's."""
    import jax
    import numpy as np
    from jdl.runs import plots
    from jdl.data.sequences import one_hot
    from jdl.nn.recurrent import SequenceModel
    from jdl.rnn import evaluate_fn
    from jdl.train import fit, init_state, make_eval_step, num_params

    cfg.validate()
    loss = loss or cfg.loss
    cfg, stored = prepare_run(cfg, workdir, resume=resume, overwrite=overwrite,
                              stretch_schedule=stretch_schedule)
    t0 = time.perf_counter()
    model = SequenceModel(cfg.cell, cfg.hidden, num_outputs, readout=readout)
    n = len(train["x"])
    spe = n // cfg.batch_size
    if spe == 0:
        raise ValueError(f"batch_size {cfg.batch_size} exceeds the {n} training sequences")
    tx = build_optimizer(cfg, spe * updates_per_batch(cfg, np.shape(train["x"])[1], readout))
    example = train["x"][: cfg.batch_size]
    if vocab_size:
        example = one_hot(example, vocab_size)
    state = init_state(model, tx, example, jax.random.PRNGKey(cfg.seed))
    step = build_step(cfg, model, tx, loss, vocab_size)
    eval_fn = evaluate_fn(model, loss, **({"metrics": eval_metrics} if eval_metrics else {}))
    if vocab_size:
        eval_fn = one_hot_inputs(eval_fn, vocab_size)
    eval_step = make_eval_step(eval_fn)

    rd = run_dir.RunDir(workdir)
    rd.begin(dataclasses.asdict(cfg), stored=stored, overwrite=overwrite,
             extra={"model": repr(model), "train_sequences": n, **(extra or {})})
    result = fit(step, state, train, epochs=cfg.epochs, batch_size=cfg.batch_size,
                 eval_step=eval_step, val_data=val, seed=cfg.seed, workdir=workdir,
                 checkpoint_every=cfg.checkpoint_every, keep=cfg.keep, patience=cfg.patience,
                 resume=resume, log_every=cfg.log_every, progress=progress,
                 eval_batch_size=cfg.eval_batch_size, monitor="val_loss" if val else "train_loss",
                 devices=cfg.devices, parallel=cfg.parallel)
    tested = select_and_test(result, workdir if val is not None else None, eval_step, test,
                             cfg.eval_batch_size, extra_tests)
    hit = first_below(result.history, "val_loss", cfg.target)
    summary = rd.write_summary({
        "experiment": title, "cell": cfg.cell, "hidden": cfg.hidden, "rule": cfg.rule,
        **tested, "best_epoch": result.best,
        "final_epoch": result.history[-1] if result.history else None,
        "sequences_seen": int(result.state.step) * cfg.batch_size,
        "target": cfg.target, "target_epoch": hit["epoch"] if hit else None,
        "sequences_to_target": hit["step"] * cfg.batch_size if hit else None,
        "num_params": num_params(result.state.params), "wall_time_s": time.perf_counter() - t0,
        "compile_time_s": result.compile_time, "train_time_s": result.train_time,
        "sequences_per_s": result.samples_per_s, "steps": int(result.state.step),
        "resumed": bool(resume), "history": result.history, **(extra or {}),
    })
    if result.history:
        rd.plot(plots.plot_learning_curves, "learning_curves.png", result.history, title=title)
    return summary


def run_models(cfg: SequenceConfig, cells, train: dict, val: dict | None, test: dict, root: str,
               *, resume: bool = False, progress: bool = True, name: str = "",
               report: Callable[[str, dict], str] | None = None, **kw) -> dict:
    """:func:`run_sequences` for each cell of ``cells`` in turn (workdir ``root/<cell>``, the
    same data and settings), a line per model from ``report(cell, summary)``, and
    ``root/summary.json`` holding every model's summary (histories left out) under ``runs``.
    With ``resume`` a model whose folder holds no run yet (the run was stopped before it)
    starts afresh; ``root`` itself is checked by the caller (:func:`jdl.runs.supervised.start`)."""
    results, rd = {}, run_dir.RunDir(root)
    t0 = time.perf_counter()
    for cell in cells:
        run_cfg = dataclasses.replace(cfg, cell=cell)
        workdir = os.path.join(root, cell)
        s = run_sequences(run_cfg, train, val, test, workdir,
                          resume=resume and run_dir.holds_run(workdir), progress=progress,
                          title=f"{name} {cell}", **kw)
        results[cell] = s
        line = report(cell, s) if report else f"test loss {s['test_loss']:.5f}"
        rd.say(f"[{name}] {cell}: {line}; {s['wall_time_s']:.0f} s")
    rd.write_summary({
        "experiment": name, "test": None, "test_model": "per model: see runs",
        "resumed": bool(resume), "wall_time_s": time.perf_counter() - t0,
        "runs": {c: {k: v for k, v in s.items() if k != "history"} for c, s in results.items()}})
    return results


def markdown_table(header, rows) -> str:
    """A markdown table: header names, then rows of values (numbers right-aligned)."""
    align = ["---" if i == 0 else "---:" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(str(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def cells_of(models: str) -> list:
    """'lstm, gru,tanh' -> ['lstm', 'gru', 'tanh']."""
    return [c.strip() for c in models.split(",") if c.strip()]
