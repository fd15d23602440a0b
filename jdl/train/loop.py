"""The one training loop: epochs, validation, early stopping, progress bar, metrics, checkpoints,
exact resumption and the NaN guard. It knows only the step protocol, never a model family.

    for epoch:                                    fit, in outline
        for each batch of the epoch's order:      steps = jdl.parallel's compiled step
            state, metrics = steps(state, idx)    (batch gathered inside the jit)
            actions that are due: sync (metrics read, NaN guard), then log / checkpoint / hooks
        evaluate, epoch record, best and early stopping, checkpoint

Determinism: the step's randomness is fold_in(state.rng, step) and epoch e's batch order is
default_rng([seed, e]).permutation(N), so the run is a function of (initial state, data, seed).
A checkpoint stores the TrainState and the loop's running sums, so a run killed at any point
and resumed from its newest checkpoint ends with the same parameters and the same metrics.

Data: batches are dicts ``{key: array[batch_size, ...]}`` taken from ``train_data`` (a dict of
arrays sharing their first dimension); the gather, the step and the optimiser update run in
one jit region with the state donated (the ``state`` passed in is copied once: it stays
usable). Before compiling, fit checks shapes, dtypes, and labels against ``num_classes`` or,
for a step made from ``backprop``, against the model's outputs (the grad_fn's ``check_data``).

Workdir: metrics go to ``metrics.jsonl`` and TensorBoard, checkpoints to
``workdir/checkpoints`` (every ``checkpoint_every`` steps and each epoch end; the last ``keep``
and the best by ``monitor``: by default the first of val_accuracy, val_loss, train_accuracy,
train_loss that the run reports). A workdir that holds checkpoints (jdl.train.rundir): the same
run (same state, data specs, batch_size, seed, epochs) is resumed from its newest checkpoint,
or returned as it is if it has finished; ``resume=True`` also continues it with more
``epochs``; anything else is refused with WorkdirError before any file is touched, unless
``overwrite=True`` (which deletes the earlier run's checkpoints, metrics.jsonl and events).
``resume_step`` picks the checkpoint; a checkpoint that fails its checksums is refused
(CheckpointError), or with ``skip_corrupt=True`` the newest intact one is used.
``resume=True`` on a workdir without checkpoints starts from step 0 (FitResult.resumed_from
is then None).

SIGINT / SIGTERM (jdl.train.interrupt): the current step is finished, a checkpoint written
(with a workdir) and ``TrainingInterrupted`` raised (``exit_code`` 130 / 143). Output: a
progress bar on stderr when ``progress`` and stderr is a terminal; one line per epoch on stdout
(the epoch's metrics) unless ``verbose=False``.

Several devices (jdl.parallel): ``devices`` None (all local devices), an int n (the first n)
or a list; ``parallel`` 'sharded' (jit over a Mesh with NamedSharding) or 'pmap' (pmap's
per-device program, via shard_map). ``batch_size`` is the GLOBAL batch, split into equal
shards, so it must be a multiple of the number of devices (when ``devices`` is None and it is
not, fewer devices are used, with a warning). On one device nothing changes. The global
example indices in ``batch[index_key]`` make per-example noise keyed by them
(jdl.rbm.contrastive_divergence) the same on 1 or D devices.

Several processes (``jax.process_count() > 1``, after ``jdl.parallel.distributed.initialize``;
'sharded' only): every process calls ``fit`` with the same arguments and its own copy of
``train_data``; the mesh spans the devices of all processes (``devices`` None: all of them,
an int n: the first n local devices of each), ``batch_size`` is the global batch over all of
them; the data set is placed on every device and each device gathers its rows of each batch
inside the jit. Every process saves and restores the checkpoints (``workdir`` must be a
directory that all processes share); only process 0 writes metrics.jsonl, TensorBoard events,
the user's writers, the progress bar and prints. Validation runs in every process on the full
``val_data``. The returned state holds process-local arrays (the full values, on this
process's first device), equal in every process. Signals are not caught (the processes would
have to agree on a step).
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import sys
import time
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
from jdl.data.batching import batch_indices, check_batch_size, padded_batches
from jdl.extras import progress_bar, write_line
from jdl.parallel import PER_EXAMPLE, DataParallel, GatheredSteps, distributed, gather
from jdl.train.guards import check_dataset, check_labels, spec_of
from jdl.train.interrupt import StopSignals, TrainingInterrupted
from jdl.train.logger import MetricsLogger
from jdl.train.periodic import PeriodicAction, as_action
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


def _mean(sums: dict, count: int) -> dict:
    return {k: v / count for k, v in sums.items()} if count else {}


def _add(sums: dict, metrics: dict) -> None:
    for k, v in metrics.items():
        sums[k] = sums.get(k, 0.0) + float(v)


def evaluate(eval_step: Callable, state, data: dict, batch_size: int = 500,
             compiled: Callable | None = None) -> dict:
    """Mean of eval_step's metrics over every example of ``data`` (padded, masked last batch)."""
    n = check_dataset(data, "eval data")
    fn = compiled or _eval_fn(eval_step)
    data = jax.device_put(data)
    sums, count = {}, 0
    for idx, mask in padded_batches(n, min(batch_size, n)):
        m = jax.device_get(fn(state, data, idx, mask))
        k = float(mask.sum())
        _add(sums, {name: v * k for name, v in m.items()})
        count += k
    return _mean(sums, count)


def _eval_fn(eval_step: Callable) -> Callable:
    return jax.jit(lambda s, d, i, m: eval_step(s, {**gather(d, i, None), "mask": m}))


def _monitor_mode(monitor: str, mode: str | None) -> str:
    if mode is None:
        mode = "min" if "loss" in monitor or "error" in monitor else "max"
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
    return mode


def _check_arguments(epochs, log_every, checkpoint_every, patience, resume, overwrite, workdir,
                     steps_per_call=1):
    if epochs is None or epochs <= 0:
        raise ValueError(f"epochs must be a positive integer, got {epochs}")
    if log_every <= 0:
        raise ValueError(f"log_every must be positive, got {log_every}")
    if checkpoint_every is not None and checkpoint_every <= 0:
        raise ValueError(f"checkpoint_every must be positive or None, got {checkpoint_every}")
    if not (isinstance(steps_per_call, int) and steps_per_call >= 1):
        raise ValueError(f"steps_per_call must be a positive integer, got {steps_per_call!r}")
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


def _new_loop_state(fingerprint: dict) -> dict:
    return {"history": [], "epoch_sums": {}, "epoch_count": 0, "window_sums": {},
            "window_count": 0, "best": None, "bad_epochs": 0, "stopped_early": False,
            "run": fingerprint}


def _per_step(pending: list):
    """The pending calls' metrics, read from the devices, one dict per step in order (a call
    of k > 1 steps returns them stacked)."""
    for k, m in jax.device_get(pending):
        if k == 1:
            yield m
        else:
            yield from ({name: v[i] for name, v in m.items()} for i in range(k))


def _drain(pending: list, loop: dict, state, ckpt) -> None:
    """Add the pending steps' metrics to the running sums; raise NonFiniteError if the NaN
    guard recorded a bad step (naming the newest checkpoint that matches its checksums)."""
    for m in _per_step(pending):
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
        write_line(text, file=sys.stdout)
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


@dataclasses.dataclass
class _Run:
    """What one fit call carries from step to step, and what its actions read and write."""
    state: object
    step: int
    loop: dict
    ckpt: object                # Checkpoints or None
    writers: list               # metric writers: MetricsLogger and the user's (main process)
    say: Callable
    monitor: str | None
    mode: str | None
    bar: object = None
    pending: list = dataclasses.field(default_factory=list)
    epoch_end: bool = False     # the step just run is the epoch's last

    def sync(self, done: int) -> None:
        """Read the pending metrics (and check the NaN guard); the bar shows ``done`` steps."""
        _drain(self.pending, self.loop, self.state, self.ckpt)
        self.bar.update(done - self.bar.n)

    def write(self, kind: str, metrics: dict) -> None:
        for w in self.writers:
            w.write(kind, self.step, metrics)

    def log_window(self, step: int, state) -> None:
        """The mean train metrics since the last log, to the writers and the progress bar."""
        rec = _mean(self.loop["window_sums"], self.loop["window_count"])
        self.write("train", rec)
        self.bar.set_postfix({k: f"{v:.4f}" for k, v in rec.items()})
        self.loop["window_sums"], self.loop["window_count"] = {}, 0

    def save(self, step: int, state) -> None:
        """A checkpoint inside an epoch (an epoch's last step saves after its validation)."""
        if self.ckpt is not None and not self.epoch_end:
            self.ckpt.save(step, state, self.loop)


def _actions(run: _Run, log_every: int, checkpoint_every, hooks) -> list:
    actions = [PeriodicAction(run.log_window, every_steps=log_every)]
    if run.ckpt is not None and checkpoint_every:
        actions.append(PeriodicAction(run.save, every_steps=checkpoint_every))
    return actions + [as_action(h) for h in hooks]


def _writers(workdir, main: bool, tensorboard: bool, writers, cleanup) -> list:
    """fit's MetricsLogger (metrics.jsonl, TensorBoard) and the user's writers, closed at the
    end; none outside the main process."""
    logger = MetricsLogger(workdir if main else None, tensorboard=tensorboard)
    cleanup.callback(logger.close)
    for w in writers:
        if main and hasattr(w, "close"):
            cleanup.callback(w.close)
    return [logger, *writers] if main else [logger]


# fit's steps per compiled call for short steps (MLPs, autoencoders, RBMs): k = 8-32 gave
# 1.02-1.26x the steps/s of k = 1, scanned CPU convnets 0.3x (benchmarks/steps_per_call.py,
# BUILD_NOTES.md 'steps per call'); the default of train_rbm, the greedy trainer and MLP runs
SHORT_STEPS_PER_CALL = 32


def _call_length(actions: list, step: int, most: int) -> int:
    """Steps in the next call: at most ``most``, ending at the next step an action is due."""
    due = [a.next_due(step) for a in actions]
    return min([most] + [s - step for s in due if s is not None])


def _train_epoch(run: _Run, steps: GatheredSteps, order, first: int, actions: list,
                 on_step, stop, interrupted, steps_per_call: int = 1) -> float:
    """Steps ``first`` .. the epoch's last of ``order``, in calls of ``steps_per_call`` steps,
    or of one step where fewer are left before an action is due or the epoch ends; the
    actions that are due run after a sync.
    Returns the seconds spent."""
    t0, spe, b = time.perf_counter(), len(order), first
    while b < spe:
        k = 1 if steps_per_call == 1 else _call_length(actions, run.step,
                                                         min(steps_per_call, spe - b))
        k = k if k == steps_per_call else 1   # the steps before an action or the epoch's end
        # run one per call: two executables (k and 1), not one more per remainder length
        run.state, metrics = steps(run.state, order[b] if k == 1 else order[b:b + k])
        run.pending.append((k, metrics))
        for s in range(run.step + 1, run.step + k + 1) if on_step is not None else ():
            on_step(s)
        run.step, b = run.step + k, b + k
        run.epoch_end = b == spe
        stopping = stop.signum is not None and not run.epoch_end  # epoch ends: see fit
        due = [a for a in actions if a.due(run.step)]
        if due or run.epoch_end or stopping:
            run.sync(b)
            for action in due:
                action(run.step, run.state)
            if stopping:
                run.save(run.step, run.state)
                raise interrupted()
        elif steps_per_call > 1:
            run.bar.update(b - run.bar.n)
    jax.block_until_ready(run.state)
    return time.perf_counter() - t0


def _end_epoch(run: _Run, epoch: int, evaluate_state: Callable | None, patience) -> None:
    """The epoch's record (train means, validation), best and early stopping, its checkpoint."""
    loop = run.loop
    record = {"epoch": epoch + 1, "step": run.step, **{
        f"train_{k}": v for k, v in _mean(loop["epoch_sums"], loop["epoch_count"]).items()}}
    loop["epoch_sums"], loop["epoch_count"] = {}, 0
    if evaluate_state is not None:
        record.update({f"val_{k}": v for k, v in evaluate_state(run.state).items()})
    improved, run.monitor, run.mode = _close_epoch(loop, record, run.monitor, run.mode, patience)
    run.write("epoch", record)
    run.say("epoch {:d}: ".format(epoch + 1) + ", ".join(
        f"{k} {v:.4f}" for k, v in record.items() if k not in ("epoch", "step")))
    if run.ckpt is not None:
        run.ckpt.save(run.step, run.state, loop, best=improved)


def _validation(dp: DataParallel, eval_step, val_data, batch_size: int) -> Callable | None:
    """state -> validation metrics (None without eval_step or val_data)."""
    if eval_step is None or val_data is None:
        return None
    fn = _eval_fn(eval_step)
    if dp.multiprocess:
        return lambda s: evaluate(eval_step, distributed.to_local(s), val_data, batch_size, fn)
    data = dp.replicate(val_data) if dp.num_devices > 1 else val_data
    return lambda s: evaluate(eval_step, s, data, batch_size, fn)


def _open_workdir(workdir, loop, cleanup, **kw) -> tuple:
    """(Checkpoints, the step to resume from) after deciding, reading only, whether this run
    may use ``workdir`` (jdl.train.rundir); (None, None) without one."""
    if workdir is None:
        return None, None
    ckpt, resume_from = prepare_workdir(workdir, loop["run"], **kw)
    cleanup.callback(ckpt.close)
    return ckpt, resume_from


def fit(train_step: Callable, state, train_data: dict, *, epochs: int, batch_size: int,
        eval_step: Callable | None = None, val_data: dict | None = None, seed: int = 0,
        workdir: str | None = None, checkpoint_every: int | None = None, keep: int = 3,
        monitor: str | None = None, mode: str | None = None, patience: int | None = None,
        resume: bool = False, resume_step: int | None = None, overwrite: bool = False,
        skip_corrupt: bool = False, log_every: int = 50, progress: bool = True,
        verbose: bool = True, num_classes: int | None = None, label_key: str = "y",
        on_step: Callable[[int], None] | None = None, eval_batch_size: int = 1000,
        tensorboard: bool = True, devices=None, parallel: str = "sharded",
        index_key: str | None = "index", per_example_state: Sequence[str] | None = None,
        hooks: Sequence = (), writers: Sequence = (), steps_per_call: int = 1) -> FitResult:
    """Train ``state`` with the pure ``train_step(state, batch) -> (state, metrics)``; see the
    module docstring for the data, checkpoints, resumption, signals, devices and processes.

    Each epoch runs its steps in a seeded order (compiled once by jdl.parallel, the batch
    gathered inside the jit, ``batch[index_key]`` its global example indices unless
    ``index_key`` is None or ``train_data`` has its own), then ``eval_step`` on ``val_data``
    (masked means), the epoch record, early stopping (``patience`` epochs without improvement
    of ``monitor``) and a checkpoint. Periodic actions (jdl.train.periodic) run after the
    steps at which they are due: the train metrics every ``log_every`` steps, a checkpoint
    every ``checkpoint_every``, and the user's ``hooks`` (PeriodicActions, or callables run
    every step, called with (step, state)); ``on_step(step)`` runs after every step without
    synchronising. Records go to ``workdir/metrics.jsonl``, TensorBoard and ``writers``
    (objects with ``write(kind, step, metrics)``). ``per_example_state``: the model_state keys
    split with the batch across devices (default ``train_step.per_example_state`` if the step
    declares it, else jdl.parallel.PER_EXAMPLE, PCD's 'chains'). ``steps_per_call`` k runs up
    to k steps in one compiled call (lax.scan over k gathered batches; the idea of Keras's
    steps_per_execution): the steps left before an action is due or the epoch ends run one per
    call (two executables in all), so metrics, checkpoints, resumption and the NaN guard are
    those of k = 1; the progress bar moves once per call.
    """
    t_start = time.perf_counter()
    _check_arguments(epochs, log_every, checkpoint_every, patience, resume, overwrite, workdir,
                     steps_per_call)
    mode = _monitor_mode(monitor, mode) if monitor is not None else mode
    n = _check_data(train_step, train_data, val_data, batch_size, num_classes, label_key)
    spe = n // batch_size
    loop = _new_loop_state(run_fingerprint(state, train_data, epochs=epochs,
                                           batch_size=batch_size, seed=seed))
    if per_example_state is None:
        per_example_state = getattr(train_step, "per_example_state", PER_EXAMPLE)
    with contextlib.ExitStack() as cleanup:
        ckpt, resume_from = _open_workdir(workdir, loop, cleanup, resume=resume, keep=keep,
                                          resume_step=resume_step, overwrite=overwrite,
                                          skip_corrupt=skip_corrupt)
        dp = DataParallel.create(devices, parallel, per_example=per_example_state,
                                 batch_size=batch_size)
        # The step donates its state; train on a copy so the caller's arrays stay valid.
        steps = dp.compile_gathered(train_step, jax.tree.map(jnp.copy, state), train_data,
                                    batch_size, index_key)
        main = distributed.is_main_process()
        say = lambda text: _say(text, verbose and main)
        state, resumed_from = _start(workdir, ckpt, resume_from, resume, steps.state, loop,
                                     skip_corrupt, say)
        run = _Run(state, int(state.step), loop, ckpt,
                   _writers(workdir, main, tensorboard, writers, cleanup), say, monitor, mode)
        run.writers[0].truncate_after(run.step)  # drop records a killed run wrote after its checkpoint
        t0 = time.perf_counter()
        # the calls of k steps ahead of time (one-step calls: when met); an epoch shorter
        # than k runs one step per call (_train_epoch), so its k-step program is not built
        steps.compile(state, steps_per_call if 1 < steps_per_call <= spe else 0)
        compile_time = time.perf_counter() - t0
        validation = _validation(dp, eval_step, val_data, eval_batch_size)
        actions = _actions(run, log_every, checkpoint_every, hooks)
        stop = cleanup.enter_context(StopSignals(enabled=not dp.multiprocess))
        interrupted = lambda: TrainingInterrupted(stop.signum, run.step, ckpt and ckpt.directory)
        train_time, steps_run = 0.0, 0
        for epoch in range(run.step // spe, epochs):
            if loop["stopped_early"]:
                break
            first = run.step - epoch * spe
            run.bar = _epoch_bar(spe, first, epoch, epochs, show=progress and main)
            train_time += _train_epoch(run, steps, batch_indices(n, batch_size, seed, epoch),
                                       first, actions, on_step, stop, interrupted, steps_per_call)
            steps_run += spe - first
            run.bar.close()
            _end_epoch(run, epoch, validation, patience)
            if stop.signum is not None:
                raise interrupted()
    return _result(run, dp, compile_time, train_time, steps_run * batch_size, t_start,
                   resumed_from)


def _epoch_bar(spe: int, first: int, epoch: int, epochs: int, show: bool):
    """The epoch's progress bar (steps first..spe), shown only on a terminal."""
    return progress_bar(total=spe, initial=first, desc=f"epoch {epoch + 1}/{epochs}",
                        disable=not (show and sys.stderr.isatty()), leave=False,
                        dynamic_ncols=True)


def _result(run, dp, compile_time: float, train_time: float, samples: int, t_start: float,
            resumed_from) -> FitResult:
    """fit's FitResult: the final state (process-local), history, timings."""
    loop = run.loop
    final = distributed.to_local(run.state) if dp.multiprocess else run.state
    return FitResult(state=final, history=loop["history"], best=loop["best"],
                     stopped_early=loop["stopped_early"], compile_time=compile_time,
                     train_time=train_time, wall_time=time.perf_counter() - t_start,
                     samples_per_s=samples / train_time if train_time else 0.0,
                     num_devices=dp.num_devices, resumed_from=resumed_from)
