"""A workdir that knows which run it holds: the run's fingerprint, and what ``fit`` does with a
workdir that already holds checkpoints.

The fingerprint of a run is what fixes its sequence of updates, as far as ``fit`` can see it:
the structure, shapes and dtypes of the TrainState ('state'), the per-example shapes and
dtypes of the training arrays ('data'), the number of examples, batch_size, seed, steps per
epoch and epochs. It is stored in every checkpoint's loop state (key 'run'). Data values,
the optimiser's hyper-parameters and the model's code are not in it (a command line compares
its own config for those).

With checkpoints already in the workdir (``prepare_workdir``, before any file is touched):

- the same fingerprint: the run is resumed (or, if finished, returned as it is), with or
  without ``resume=True``;
- ``resume=True``: resumed if the fingerprints differ only in fields allowed to change on
  resume (RESUMABLE: epochs, as long as the checkpoint's step is not beyond the new last step);
  any other difference is refused, naming each field with the stored and the new value;
- otherwise refused in one line that says what differs and what to pass (resume=True,
  overwrite=True or another workdir); ``overwrite=True`` deletes the earlier run's
  checkpoints, metrics.jsonl and TensorBoard events first.

Checkpoints written before fingerprints existed are resumed only with ``resume=True``, unchecked.
"""
from __future__ import annotations

import json
import os
import shutil

import jax

from jdl.train.checkpoint import Checkpoints, _sync
from jdl.train.guards import spec_of, tree_spec

RESUMABLE = ("epochs",)   # fingerprint fields that may change when a run is resumed


class WorkdirError(ValueError):
    """A workdir holds checkpoints of a run other than the one asked for."""


def run_fingerprint(state, data: dict, *, epochs: int, batch_size: int, seed: int) -> dict:
    """The run's fingerprint (JSON-ready; see the module docstring)."""
    n = len(next(iter(data.values())))
    fp = {"state": tree_spec(state),
          "data": {k: (s, str(d)) for k, (s, d) in spec_of(data).items()},
          "examples": n, "batch_size": batch_size, "seed": seed,
          "steps_per_epoch": n // batch_size, "epochs": epochs}
    return json.loads(json.dumps(fp))


def _short(value) -> str:
    text = json.dumps(value)
    return text if len(text) <= 80 else text[:77] + "..."


def fingerprint_diff(stored: dict, new: dict) -> dict:
    """{field: (stored, new)} for each differing field; for 'state' and 'data' the first
    differing leaf or key is named, e.g. "state.params['Dense_0']['kernel'] (and 3 more)"."""
    diff = {}
    for field in sorted(set(stored) | set(new)):
        a, b = stored.get(field), new.get(field)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):   # the first differing leaf, in order
            keys = [k for k in list(a) + [k for k in b if k not in a] if a.get(k) != b.get(k)]
            more = f" (and {len(keys) - 1} more)" if len(keys) > 1 else ""
            name = keys[0] if field == "state" else f"[{keys[0]!r}]"
            diff[f"{field}{name}{more}"] = (a.get(keys[0]), b.get(keys[0]))
        else:
            diff[field] = (a, b)
    return diff


def _describe(diff: dict) -> str:
    return "; ".join(f"{k}: {_short(a)} stored, {_short(b)} now" for k, (a, b) in diff.items())


def _remove_run(workdir: str) -> None:
    """Delete a run's checkpoints, metrics.jsonl and TensorBoard events (process 0)."""
    if jax.process_index() == 0:
        for name in ("checkpoints", "tb"):
            shutil.rmtree(os.path.join(workdir, name), ignore_errors=True)
        if os.path.exists(os.path.join(workdir, "metrics.jsonl")):
            os.remove(os.path.join(workdir, "metrics.jsonl"))
    _sync("jdl_overwrite")


def _resumable(stored: dict | None, fingerprint: dict, step: int, resume: bool) -> str | None:
    """Why the run at ``step`` with fingerprint ``stored`` cannot be resumed by this one
    (None: it can)."""
    if stored is None:
        return None if resume else "they carry no run fingerprint (an older jdl wrote them)"
    diff = fingerprint_diff(stored, fingerprint)
    fixed = {k: v for k, v in diff.items() if k not in RESUMABLE or not resume}
    if fixed:
        return "they are another run's: " + _describe(fixed)
    last = fingerprint["epochs"] * fingerprint["steps_per_epoch"]
    if step > last:
        return f"the checkpoint is at step {step}, beyond this run's last step {last}"
    return None


def prepare_workdir(workdir: str, fingerprint: dict, *, resume: bool, resume_step: int | None,
                    overwrite: bool, skip_corrupt: bool, keep: int) -> tuple[Checkpoints, int | None]:
    """Open ``workdir/checkpoints`` and decide (reading only) what this run does with it:
    returns (checkpoints, the step to resume from, or None to start fresh); raises WorkdirError
    (one line) for a run it must not continue, CheckpointError for a corrupt checkpoint."""
    if resume and overwrite:
        raise WorkdirError("resume=True and overwrite=True contradict each other: pass one")
    ckdir = os.path.join(workdir, "checkpoints")
    if overwrite:
        _remove_run(workdir)
    elif not os.path.isdir(os.path.join(ckdir, "last")) and resume_step is None:
        return Checkpoints(ckdir, keep=keep), None
    ckpt = Checkpoints(ckdir, keep=keep)
    steps = ckpt.steps()
    if not steps and resume_step is None:
        return ckpt, None
    try:
        step = resume_step
        if step is None:
            step = ckpt.latest_good_step() if skip_corrupt else steps[-1]
        stored = ckpt.restore_loop(step).get("run") if step is not None else None
        why = _resumable(stored, fingerprint, step, resume) if step is not None else None
    except Exception:
        ckpt.close()
        raise
    if step is None:   # skip_corrupt and no intact checkpoint: restore raises the one-line error
        return ckpt, steps[-1]
    if why is not None:
        ckpt.close()
        could = stored is None or set(fingerprint_diff(stored, fingerprint)) <= set(RESUMABLE)
        hint = "pass resume=True (--resume) to continue it, " if not resume and could else ""
        raise WorkdirError(f"{workdir} already holds checkpoints (steps {steps}) that this run "
                           f"cannot continue: {why}; {hint}pass overwrite=True (--overwrite) to replace it, or "
                           f"use another workdir")
    return ckpt, step
