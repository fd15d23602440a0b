"""The one training loop: epochs, validation, early stopping, progress bar, metrics, checkpoints,
exact resumption and the NaN guard. It knows only the step protocol, never a model family.

Determinism: the step's randomness is fold_in(state.rng, step) and epoch e's batch order is
default_rng([seed, e]).permutation(N), so the run is a function of (initial state, data, seed).
A checkpoint stores the TrainState and the loop's running sums, so a run killed at any point
and resumed from its newest checkpoint ends with the same parameters and the same metrics.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import sys
import time
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from jdl.data.batching import batch_indices, check_batch_size, padded_batches
from jdl.parallel import DataParallel, check_mode, distributed, per_device_batch
from jdl.train.compilation_cache import jit_once
from jdl.train.guards import check_dataset, check_labels, spec_of
from jdl.train.interrupt import StopSignals, TrainingInterrupted
from jdl.train.logger import MetricsLogger
from jdl.train.rundir import prepare_workdir, run_fingerprint


class NonFiniteError(FloatingPointError):
    """The loss or a gradient became NaN/Inf; the message names the step."""


@dataclasses.dataclass
class FitResult:
    state: object
    history: list            # one record per epoch
    best: dict | None        # the epoch record with the best monitored value
    stopped_early: bool
    compile_time: float      # seconds to trace and compile the train step
    train_time: float        # seconds in train steps (this process, compile excluded)
    wall_time: float         # seconds in fit (this process)
    samples_per_s: float
    num_devices: int = 1     # devices the steps ran on (jdl.parallel)
    resumed_from: int | None = None   # the checkpoint's step this run continued, or None


def _gather(data: dict, idx):
    return {k: v[idx] for k, v in data.items()}


def _mean(sums: dict, count: int) -> dict:
    return {k: v / count for k, v in sums.items()} if count else {}


def _add(sums: dict, metrics: dict) -> None:
    for k, v in metrics.items():
        sums[k] = sums.get(k, 0.0) + float(v)


def evaluate(eval_step: Callable, state, data: dict, batch_size: int = 500,
             compiled: Callable | None = None) -> dict:
    """Mean of eval_step's metrics over every example of ``data`` (padded, masked last batch)."""
    n = check_dataset(data, "eval data")
    fn = compiled or jax.jit(lambda s, d, i, m: eval_step(s, {**_gather(d, i), "mask": m}))
    data = jax.device_put(data)
    sums, count = {}, 0
    for idx, mask in padded_batches(n, min(batch_size, n)):
        m = jax.device_get(fn(state, data, idx, mask))
        k = float(mask.sum())
        _add(sums, {name: v * k for name, v in m.items()})
        count += k
    return _mean(sums, count)


def _monitor_mode(monitor: str, mode: str | None) -> str:
    if mode is None:
        mode = "min" if "loss" in monitor or "error" in monitor else "max"
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
    return mode


def _check_arguments(epochs, log_every, checkpoint_every, patience, resume, overwrite, workdir):
    if epochs is None or epochs <= 0:
        raise ValueError(f"epochs must be a positive integer, got {epochs}")
    if log_every <= 0:
        raise ValueError(f"log_every must be positive, got {log_every}")
    if checkpoint_every is not None and checkpoint_every <= 0:
        raise ValueError(f"checkpoint_every must be positive or None, got {checkpoint_every}")
    if patience is not None and patience <= 0:
        raise ValueError(f"patience must be positive or None, got {patience}")
    for name, flag in (("resume", resume), ("overwrite", overwrite)):
        if flag and workdir is None:
            raise ValueError(f"{name}=True needs a workdir holding the checkpoints")


def _check_data(train_step, train_data, val_data, batch_size, num_classes, label_key) -> int:
    """Shapes, dtypes and labels of the data (num_classes, or the checker that backprop attaches
    to its grad_fn and make_train_step carries: labels against the model's outputs, image
    dtypes); returns the number of training examples."""
    n = check_dataset(train_data, "train data")
    check_batch_size(batch_size, n)
    named = [("train", train_data)]
    if val_data is not None:
        check_dataset(val_data, "validation data", expected=spec_of(train_data))
        named.append(("validation", val_data))
    checker = getattr(train_step, "check_data", None)
    for name, data in named:
        if num_classes is not None:
            check_labels(data[label_key], num_classes, f"{name} labels")
        if checker is not None:
            checker(data, f"{name} data")
    return n


class _Placement(NamedTuple):
    """Where the run's data and state live and the jitted step that uses them."""
    dp: DataParallel
    multi: bool
    main: bool
    data: dict
    state: object
    step_fn: Callable
    val_data: dict | None
    batch_sharding: object


def _place(train_step, state, train_data, val_data, batch_size, devices, parallel) -> _Placement:
    check_mode(parallel)
    multi = jax.process_count() > 1
    batch_sharding = None
    if multi:  # host data; the state as global arrays; each batch built from this process's rows
        if parallel != "sharded":
            raise ValueError(f"with several processes fit runs parallel='sharded' only, got "
                             f"{parallel!r}")
        dp = DataParallel(tuple(distributed.global_devices(devices)), parallel)
        per_device_batch(batch_size, dp.num_devices)
        data = {k: np.asarray(v) for k, v in train_data.items()}
        shardings = dp.state_shardings(state, batch_size)
        state = distributed.to_global(state, shardings)
        batch_sharding = dp.batch_sharding()
        step_fn = jax.jit(dp.spmd(train_step, state, batch_size), donate_argnums=0,
                          in_shardings=(shardings, batch_sharding),
                          out_shardings=(shardings, dp.replicated()))
        return _Placement(dp, True, distributed.is_main_process(), data, state, step_fn,
                          val_data, batch_sharding)
    dp = DataParallel.create(devices, parallel, batch_size=batch_size)
    if dp.num_devices == 1:
        device = dp.devices[0]
        if device == jax.local_devices()[0]:
            data = jax.device_put(train_data)
        else:
            data, state = jax.device_put((train_data, state), device)
        step_fn = jit_once(train_step, "gathered", lambda f: jax.jit(   # compiled once per step
            lambda s, d, i: f(s, _gather(d, i)), donate_argnums=0))
    else:  # data replicated, state and batch in the data-parallel layout (jdl.parallel)
        data = dp.replicate(train_data)
        state = dp.place_state(state, batch_size)
        spmd = dp.spmd(train_step, state, batch_size)
        shardings = dp.state_shardings(state, batch_size)
        step_fn = jax.jit(lambda s, d, i: spmd(s, _gather(d, i)), donate_argnums=0,
                          in_shardings=(shardings, dp.replicated(), dp.batch_sharding()),
                          out_shardings=(shardings, dp.replicated()))
        if val_data is not None:
            val_data = dp.replicate(val_data)
    return _Placement(dp, False, True, data, state, step_fn, val_data, batch_sharding)


def _compile(pl: _Placement, state, batch_size: int) -> Callable:
    if pl.multi:
        lowered = pl.step_fn.lower(state, distributed.batch_spec(pl.batch_sharding, pl.data,
                                                                 batch_size))
        global_step = lowered.compile()

        def compiled(s, d, i):
            return global_step(s, distributed.global_batch(pl.batch_sharding, d, i))
        return compiled
    return pl.step_fn.lower(state, pl.data, np.zeros(batch_size, np.int64)).compile()


def _new_loop_state(fingerprint: dict) -> dict:
    return {"history": [], "epoch_sums": {}, "epoch_count": 0, "window_sums": {},
            "window_count": 0, "best": None, "bad_epochs": 0, "stopped_early": False,
            "run": fingerprint}


def _drain(pending: list, loop: dict, state, ckpt) -> None:
    """Add the pending steps' metrics to the running sums; raise NonFiniteError if the NaN
    guard recorded a bad step (naming the newest checkpoint that matches its checksums)."""
    for m in jax.device_get(pending):
        _add(loop["window_sums"], m)
        _add(loop["epoch_sums"], m)
        loop["window_count"] += 1
        loop["epoch_count"] += 1
    pending.clear()
    bad = int(state.bad_step)
    if bad >= 0:
        last = ckpt.latest_good_step() if ckpt else None
        where = f"; the last good checkpoint is step {last} in {ckpt.directory}" if last is not None else ""
        raise NonFiniteError(f"non-finite loss or gradient at step {bad + 1} (update {bad} -> "
                             f"{bad + 1}); training stopped{where}")


def _close_epoch(loop: dict, record: dict, monitor, mode, patience) -> tuple[bool, str, str]:
    """Append the epoch's record, track the best by ``monitor`` (default: the first of
    val_accuracy, val_loss, train_accuracy, train_loss that the run reports) and early
    stopping; returns (improved, monitor, mode)."""
    if monitor is None:
        monitor = next(m for m in ("val_accuracy", "val_loss", "train_accuracy", "train_loss")
                       if m in record)
        mode = _monitor_mode(monitor, mode)
    if monitor not in record:
        raise KeyError(f"monitored metric {monitor!r} not among {sorted(record)}")
    value, best = record[monitor], loop["best"]
    improved = math.isfinite(value) and (
        best is None or (value > best[monitor] if mode == "max" else value < best[monitor]))
    if improved:
        loop["best"], loop["bad_epochs"] = dict(record), 0
    else:
        loop["bad_epochs"] += 1
    loop["history"].append(record)
    if patience is not None and loop["bad_epochs"] >= patience:
        loop["stopped_early"] = True
    return improved, monitor, mode


def _say(text: str, enabled: bool) -> None:
    if enabled:
        tqdm.write(text, file=sys.stdout)
        sys.stdout.flush()


def _start(workdir, ckpt, resume_from, resume, state, loop, skip_corrupt, say) -> tuple:
    """Restore the checkpoint at ``resume_from`` (if any) into ``state`` and ``loop``; returns
    (state, the restored step or None)."""
    if resume_from is None:
        if resume:
            say(f"resume=True: {workdir} holds no checkpoint yet, starting from step 0")
        return state, None
    state, restored = ckpt.restore(resume_from, state, skip_corrupt=skip_corrupt)
    loop.update(restored, run=loop["run"])
    say(f"resuming the run in {workdir} from its checkpoint at step {int(state.step)}")
    return state, int(state.step)


def fit(train_step: Callable, state, train_data: dict, *, epochs: int, batch_size: int,
        eval_step: Callable | None = None, val_data: dict | None = None, seed: int = 0,
        workdir: str | None = None, checkpoint_every: int | None = None, keep: int = 3,
        monitor: str | None = None, mode: str | None = None, patience: int | None = None,
        resume: bool = False, resume_step: int | None = None, overwrite: bool = False,
        skip_corrupt: bool = False, log_every: int = 50, progress: bool = True,
        verbose: bool = True, num_classes: int | None = None, label_key: str = "y",
        on_step: Callable[[int], None] | None = None, eval_batch_size: int = 1000,
        tensorboard: bool = True, devices=None, parallel: str = "sharded",
        index_key: str | None = "index") -> FitResult:
    """Train ``state`` with the pure ``train_step(state, batch) -> (state, metrics)``.

    Batches are dicts ``{key: array[batch_size, ...]}`` taken from ``train_data`` (a dict of
    arrays sharing their first dimension) in a seeded order; the gather, the step and the
    optimiser update run in one jit region with the state donated. ``eval_step(state, batch)``
    computes masked validation metrics at each epoch end. With ``workdir``, metrics go to
    ``metrics.jsonl`` and TensorBoard, checkpoints to ``workdir/checkpoints`` (every
    ``checkpoint_every`` steps and each epoch end; the last ``keep`` and the best by
    ``monitor``: by default the first of val_accuracy, val_loss, train_accuracy, train_loss that
    the run reports). The ``state`` passed in is copied once, not donated: it stays usable.

    A workdir that holds checkpoints (jdl.train.rundir): the same run (same state, data specs,
    batch_size, seed, epochs) is resumed from its newest checkpoint, or returned as it is if it
    has finished; ``resume=True`` also continues it with more ``epochs``; anything else is
    refused with WorkdirError before any file is touched, unless ``overwrite=True`` (which
    deletes the earlier run's checkpoints, metrics.jsonl and events). ``resume_step`` picks the
    checkpoint; a checkpoint that fails its checksums is refused (CheckpointError), or with
    ``skip_corrupt=True`` the newest intact one is used. ``resume=True`` on a workdir without
    checkpoints starts from step 0 (FitResult.resumed_from is then None).

    SIGINT / SIGTERM (jdl.train.interrupt): the current step is finished, a checkpoint written
    (with a workdir) and ``TrainingInterrupted`` raised (``exit_code`` 130 / 143).

    Output: a progress bar on stderr when ``progress`` and stderr is a terminal; one line per
    epoch on stdout (the epoch's metrics) unless ``verbose=False``.

    Data checks before compiling: shapes, dtypes, and labels against ``num_classes`` or, for a
    step made from ``backprop``, against the model's outputs (the grad_fn's ``check_data``).

    Several devices (jdl.parallel): ``devices`` None (all local devices), an int n (the first
    n) or a list; ``parallel`` 'sharded' (jit over a Mesh with NamedSharding) or 'pmap'.
    ``batch_size`` is the GLOBAL batch, split into equal shards, so it must be a multiple of the
    number of devices (when ``devices`` is None and it is not, fewer devices are used, with a
    warning). On one device nothing changes. Each batch carries ``batch[index_key]``, the
    global indices of its examples (unless ``train_data`` has its own), so that per-example
    noise keyed by it (jdl.rbm.contrastive_divergence) is the same on 1 or D devices;
    ``index_key=None`` adds nothing.

    Several processes (``jax.process_count() > 1``, after ``jdl.parallel.distributed.initialize``;
    'sharded' only): every process calls ``fit`` with the same arguments and its own copy of
    ``train_data``; the mesh spans the devices of all processes (``devices`` None: all of them,
    an int n: the first n local devices of each), ``batch_size`` is the global batch over all
    of them, and each process gathers and sends to its devices only its own rows of each batch.
    Every process saves and restores the checkpoints (``workdir`` must be a directory that all
    processes share); only process 0 writes metrics.jsonl, TensorBoard events, the progress
    bar and prints. Validation runs in every process on the full ``val_data``. The returned
    state holds process-local arrays (the full values, on this process's first device), equal
    in every process. Signals are not caught (the processes would have to agree on a step).
    """
    t_start = time.perf_counter()
    _check_arguments(epochs, log_every, checkpoint_every, patience, resume, overwrite, workdir)
    if monitor is not None:
        mode = _monitor_mode(monitor, mode)
    n = _check_data(train_step, train_data, val_data, batch_size, num_classes, label_key)
    spe = n // batch_size
    loop = _new_loop_state(run_fingerprint(state, train_data, epochs=epochs,
                                           batch_size=batch_size, seed=seed))
    if index_key is not None and index_key not in train_data:
        train_data = {**train_data, index_key: np.arange(n, dtype=np.int32)}
    eval_fn = None
    if eval_step is not None:
        eval_fn = jax.jit(lambda s, d, i, m: eval_step(s, {**_gather(d, i), "mask": m}))
    with contextlib.ExitStack() as cleanup:
        ckpt, resume_from = None, None
        if workdir is not None:   # decides, reading only, whether this run may use the workdir
            ckpt, resume_from = prepare_workdir(
                workdir, loop["run"], resume=resume, resume_step=resume_step,
                overwrite=overwrite, skip_corrupt=skip_corrupt, keep=keep)
            cleanup.callback(ckpt.close)
        # The step donates its state; train on a copy so the caller's arrays stay valid.
        pl = _place(train_step, jax.tree.map(jnp.copy, state), train_data, val_data,
                    batch_size, devices, parallel)
        say = lambda text: _say(text, verbose and pl.main)
        state, resumed_from = _start(workdir, ckpt, resume_from, resume, pl.state, loop,
                                     skip_corrupt, say)
        logger = MetricsLogger(workdir if pl.main else None, tensorboard=tensorboard)
        cleanup.callback(logger.close)
        logger.truncate_after(int(state.step))  # drop records a killed run wrote after its checkpoint
        start = int(state.step)
        t0 = time.perf_counter()
        compiled = _compile(pl, state, batch_size)
        compile_time = time.perf_counter() - t0
        stop = cleanup.enter_context(StopSignals(enabled=not pl.multi))
        interrupted = lambda: TrainingInterrupted(stop.signum, gstep, ckpt and ckpt.directory)

        train_time, steps_run, gstep = 0.0, 0, start
        for epoch in range(start // spe, epochs):
            if loop["stopped_early"]:
                break
            order = batch_indices(n, batch_size, seed, epoch)
            first = gstep - epoch * spe
            bar = tqdm(total=spe, initial=first, desc=f"epoch {epoch + 1}/{epochs}",
                       disable=not (progress and pl.main and sys.stderr.isatty()), leave=False,
                       dynamic_ncols=True)
            pending = []
            t_ep = time.perf_counter()
            for b in range(first, spe):
                state, metrics = compiled(state, pl.data, order[b])
                pending.append(metrics)
                gstep += 1
                if on_step is not None:
                    on_step(gstep)
                at_ckpt = ckpt is not None and checkpoint_every and gstep % checkpoint_every == 0
                stopping = stop.signum is not None and b != spe - 1   # epoch ends: see below
                if gstep % log_every == 0 or b == spe - 1 or at_ckpt or stopping:
                    _drain(pending, loop, state, ckpt)
                    bar.update(b + 1 - bar.n)
                    if gstep % log_every == 0:
                        rec = _mean(loop["window_sums"], loop["window_count"])
                        logger.write("train", gstep, rec)
                        bar.set_postfix({k: f"{v:.4f}" for k, v in rec.items()})
                        loop["window_sums"], loop["window_count"] = {}, 0
                    if (at_ckpt or stopping) and ckpt is not None and b != spe - 1:
                        ckpt.save(gstep, state, loop)
                    if stopping:
                        raise interrupted()
            jax.block_until_ready(state)
            train_time += time.perf_counter() - t_ep
            steps_run += spe - first
            bar.close()

            record = {"epoch": epoch + 1, "step": gstep,
                      **{f"train_{k}": v for k, v in _mean(loop["epoch_sums"], loop["epoch_count"]).items()}}
            loop["epoch_sums"], loop["epoch_count"] = {}, 0
            if eval_fn is not None and pl.val_data is not None:
                val = evaluate(eval_step, distributed.to_local(state) if pl.multi else state,
                               pl.val_data, eval_batch_size, compiled=eval_fn)
                record.update({f"val_{k}": v for k, v in val.items()})
            improved, monitor, mode = _close_epoch(loop, record, monitor, mode, patience)
            logger.write("epoch", gstep, record)
            say("epoch {:d}: ".format(epoch + 1) + ", ".join(
                f"{k} {v:.4f}" for k, v in record.items() if k not in ("epoch", "step")))
            if ckpt is not None:
                ckpt.save(gstep, state, loop, best=improved)
            if stop.signum is not None:
                raise interrupted()
    if pl.multi:
        state = distributed.to_local(state)
    wall = time.perf_counter() - t_start
    return FitResult(state=state, history=loop["history"], best=loop["best"],
                     stopped_early=loop["stopped_early"], compile_time=compile_time,
                     train_time=train_time, wall_time=wall,
                     samples_per_s=steps_run * batch_size / train_time if train_time else 0.0,
                     num_devices=pl.dp.num_devices, resumed_from=resumed_from)
