"""The one training loop: epochs, validation, early stopping, progress bar, metrics, checkpoints,
exact resumption and the NaN guard. It knows only the step protocol, never a model family.

Determinism: the step's randomness is fold_in(state.rng, step) and epoch e's batch order is
default_rng([seed, e]).permutation(N), so the run is a function of (initial state, data, seed).
A checkpoint stores the TrainState and the loop's running sums, so a run killed at any point
and resumed from its newest checkpoint ends with the same parameters and the same metrics.
"""
from __future__ import annotations

import dataclasses
import math
import os
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from jdl.data.batching import batch_indices, check_batch_size, padded_batches
from jdl.parallel import DataParallel, check_mode, distributed, per_device_batch
from jdl.train.checkpoint import Checkpoints
from jdl.train.guards import check_dataset, check_labels, spec_of
from jdl.train.logger import MetricsLogger


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


def fit(train_step: Callable, state, train_data: dict, *, epochs: int, batch_size: int,
        eval_step: Callable | None = None, val_data: dict | None = None, seed: int = 0,
        workdir: str | None = None, checkpoint_every: int | None = None, keep: int = 3,
        monitor: str | None = None, mode: str | None = None, patience: int | None = None,
        resume: bool = False, resume_step: int | None = None, log_every: int = 50,
        progress: bool = True, num_classes: int | None = None, label_key: str = "y",
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
    the run reports), and ``resume=True`` continues from the newest checkpoint (or ``resume_step``).
    The ``state`` passed in is copied once, not donated: it stays usable after ``fit``.

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
    in every process.
    """
    t_start = time.perf_counter()
    if epochs is None or epochs <= 0:
        raise ValueError(f"epochs must be a positive integer, got {epochs}")
    if log_every <= 0:
        raise ValueError(f"log_every must be positive, got {log_every}")
    if checkpoint_every is not None and checkpoint_every <= 0:
        raise ValueError(f"checkpoint_every must be positive or None, got {checkpoint_every}")
    if patience is not None and patience <= 0:
        raise ValueError(f"patience must be positive or None, got {patience}")
    if resume and workdir is None:
        raise ValueError("resume=True needs a workdir holding the checkpoints")
    n = check_dataset(train_data, "train data")
    check_batch_size(batch_size, n)
    if val_data is not None:
        check_dataset(val_data, "validation data", expected=spec_of(train_data))
    if num_classes is not None:
        check_labels(train_data[label_key], num_classes, "train labels")
        if val_data is not None:
            check_labels(val_data[label_key], num_classes, "validation labels")
    if monitor is not None:
        mode = _monitor_mode(monitor, mode)
    spe = n // batch_size
    check_mode(parallel)
    multi = jax.process_count() > 1
    if multi:  # a mesh over every process's devices (jdl.parallel.distributed)
        if parallel != "sharded":
            raise ValueError(f"with several processes fit runs parallel='sharded' only, got "
                             f"{parallel!r}")
        dp = DataParallel(tuple(distributed.global_devices(devices)), parallel)
        per_device_batch(batch_size, dp.num_devices)
        main = distributed.is_main_process()
        progress = progress and main
    else:
        dp = DataParallel.create(devices, parallel, batch_size=batch_size)
        main = True
    if index_key is not None and index_key not in train_data:
        train_data = {**train_data, index_key: np.arange(n, dtype=np.int32)}

    # The step donates its state; train on a copy so the caller's arrays stay valid.
    state = jax.tree.map(jnp.copy, state)
    if multi:  # host data; the state as global arrays; each batch built from this process's rows
        data = {k: np.asarray(v) for k, v in train_data.items()}
        shardings = dp.state_shardings(state, batch_size)
        state = distributed.to_global(state, shardings)
        spmd = dp.spmd(train_step, state, batch_size)
        batch_sharding = dp.batch_sharding()
        step_fn = jax.jit(spmd, donate_argnums=0, in_shardings=(shardings, batch_sharding),
                          out_shardings=(shardings, dp.replicated()))
    elif dp.num_devices == 1:
        device = dp.devices[0]
        if device == jax.local_devices()[0]:
            data = jax.device_put(train_data)
        else:
            data, state = jax.device_put((train_data, state), device)
        step_fn = jax.jit(lambda s, d, i: train_step(s, _gather(d, i)), donate_argnums=0)
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
    eval_fn = None
    if eval_step is not None:
        eval_fn = jax.jit(lambda s, d, i, m: eval_step(s, {**_gather(d, i), "mask": m}))

    logger = MetricsLogger(workdir if main else None, tensorboard=tensorboard)
    ckpt = Checkpoints(os.path.join(workdir, "checkpoints"), keep=keep) if workdir else None
    loop = {"history": [], "epoch_sums": {}, "epoch_count": 0, "window_sums": {},
            "window_count": 0, "best": None, "bad_epochs": 0, "stopped_early": False}
    if ckpt is not None and not resume and ckpt.latest_step() is not None:
        logger.close()
        ckpt.close()
        raise ValueError(f"{workdir} already holds checkpoints (steps {ckpt.steps()}): pass "
                         f"resume=True (--resume) to continue that run, or use another workdir")
    if resume and ckpt is not None and (resume_step is not None or ckpt.latest_step() is not None):
        state, restored = ckpt.restore(resume_step, state)
        loop.update(restored)
    logger.truncate_after(int(state.step))  # drop records a killed run wrote after its checkpoint
    start = int(state.step)

    t0 = time.perf_counter()
    idx0 = np.zeros(batch_size, np.int64)
    if multi:
        lowered = step_fn.lower(state, distributed.batch_spec(batch_sharding, data, batch_size))
        global_step = lowered.compile()

        def compiled(s, d, i):
            return global_step(s, distributed.global_batch(batch_sharding, d, i))
    else:
        compiled = step_fn.lower(state, data, idx0).compile()
    compile_time = time.perf_counter() - t0

    def sync(pending):
        for m in jax.device_get(pending):
            _add(loop["window_sums"], m)
            _add(loop["epoch_sums"], m)
            loop["window_count"] += 1
            loop["epoch_count"] += 1
        pending.clear()
        bad = int(state.bad_step)
        if bad >= 0:
            last = ckpt.latest_step() if ckpt else None
            where = f"; the last good checkpoint is step {last} in {ckpt.directory}" if last is not None else ""
            raise NonFiniteError(f"non-finite loss or gradient at step {bad + 1} (update {bad} -> "
                                 f"{bad + 1}); training stopped{where}")

    train_time, steps_run = 0.0, 0
    gstep = start
    try:
        for epoch in range(start // spe, epochs):
            if loop["stopped_early"]:
                break
            order = batch_indices(n, batch_size, seed, epoch)
            first = gstep - epoch * spe
            bar = tqdm(total=spe, initial=first, desc=f"epoch {epoch + 1}/{epochs}",
                       disable=not progress, leave=False, dynamic_ncols=True)
            pending = []
            t_ep = time.perf_counter()
            for b in range(first, spe):
                state, metrics = compiled(state, data, order[b])
                pending.append(metrics)
                gstep += 1
                if on_step is not None:
                    on_step(gstep)
                at_ckpt = ckpt is not None and checkpoint_every and gstep % checkpoint_every == 0
                if gstep % log_every == 0 or b == spe - 1 or at_ckpt:
                    sync(pending)
                    bar.update(b + 1 - bar.n)
                    if gstep % log_every == 0:
                        rec = _mean(loop["window_sums"], loop["window_count"])
                        logger.write("train", gstep, rec)
                        bar.set_postfix({k: f"{v:.4f}" for k, v in rec.items()})
                        loop["window_sums"], loop["window_count"] = {}, 0
                    if at_ckpt and b != spe - 1:
                        ckpt.save(gstep, state, loop)
            jax.block_until_ready(state)
            train_time += time.perf_counter() - t_ep
            steps_run += spe - first
            bar.close()

            record = {"epoch": epoch + 1, "step": gstep,
                      **{f"train_{k}": v for k, v in _mean(loop["epoch_sums"], loop["epoch_count"]).items()}}
            loop["epoch_sums"], loop["epoch_count"] = {}, 0
            if eval_fn is not None and val_data is not None:
                val = evaluate(eval_step, distributed.to_local(state) if multi else state,
                               val_data, eval_batch_size, compiled=eval_fn)
                record.update({f"val_{k}": v for k, v in val.items()})
            if monitor is None:  # default: the first of these that the run reports
                monitor = next(m for m in ("val_accuracy", "val_loss", "train_accuracy", "train_loss")
                               if m in record)
                mode = _monitor_mode(monitor, mode)
            if monitor not in record:
                raise KeyError(f"monitored metric {monitor!r} not among {sorted(record)}")
            value = record[monitor]
            best = loop["best"]
            improved = math.isfinite(value) and (
                best is None or (value > best[monitor] if mode == "max" else value < best[monitor]))
            if improved:
                loop["best"], loop["bad_epochs"] = dict(record), 0
            else:
                loop["bad_epochs"] += 1
            loop["history"].append(record)
            logger.write("epoch", gstep, record)
            if progress and main:
                tqdm.write("epoch {:d}: ".format(epoch + 1) + ", ".join(
                    f"{k} {v:.4f}" for k, v in record.items() if k not in ("epoch", "step")))
            if patience is not None and loop["bad_epochs"] >= patience:
                loop["stopped_early"] = True
            if ckpt is not None:
                ckpt.save(gstep, state, loop, best=improved)
    finally:
        logger.close()
        if ckpt is not None:
            ckpt.close()
    if multi:
        state = distributed.to_local(state)
    wall = time.perf_counter() - t_start
    return FitResult(state=state, history=loop["history"], best=loop["best"],
                     stopped_early=loop["stopped_early"], compile_time=compile_time,
                     train_time=train_time, wall_time=wall,
                     samples_per_s=steps_run * batch_size / train_time if train_time else 0.0,
                     num_devices=dp.num_devices)
