"""Checkpoints with orbax-checkpoint: the last ``keep`` and the best one, written atomically.

Layout under ``directory``: ``last/<step>/`` (every N steps and each epoch end, the newest ``keep``
kept) and ``best/<step>/`` (the best validation score so far). Each holds the TrainState pytree
('state') and the loop's own bookkeeping as JSON ('loop': running sums, history, early-stopping
counters), which is what makes a resumed run end exactly where an uninterrupted one does.

Orbax writes into a temporary folder and renames it when complete, so a process killed in the
middle of a save leaves the earlier checkpoints intact. Any failure to restore (corrupt files,
a model whose shapes differ) is raised as :class:`CheckpointError` naming the path, the reason
and the other steps that can be restored instead.

Content checksums: after each save, ``<step>/checksums.json`` records the SHA-256 and size of
every file orbax wrote (the arrays' chunks, their metadata and the loop JSON). A restore
verifies them first, so a checkpoint with garbled bytes (same size) or a truncated file is
refused in one line before orbax reads it (a garbled chunk may otherwise restore silently as
other numbers); ``latest_good_step`` skips such checkpoints, and saving at a step that holds
one replaces it. Checkpoints written before checksums existed (no checksums.json) are not
verified.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
from typing import Any

import jax

from jdl.train.guards import tree_spec


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be restored; the message says which, why, and what else is kept."""


CHECKSUMS = "checksums.json"
_ITEMS = ("state", "loop")   # the sub-folders of a step that orbax writes and we checksum


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _item_files(step_dir: str) -> list[str]:
    """Paths (relative to ``step_dir``) of every file of the checkpoint's items, sorted."""
    out = []
    for item in _ITEMS:
        for root, _, files in os.walk(os.path.join(step_dir, item)):
            out += [os.path.relpath(os.path.join(root, f), step_dir) for f in files]
    return sorted(out)


def write_checksums(step_dir: str) -> None:
    """Record {file: [size, sha256]} of a finished checkpoint in ``step_dir/checksums.json``
    (written to a temporary name and renamed, so it is either complete or absent)."""
    sums = {f: [os.path.getsize(os.path.join(step_dir, f)), _sha256(os.path.join(step_dir, f))]
            for f in _item_files(step_dir)}
    tmp = os.path.join(step_dir, CHECKSUMS + ".tmp")
    with open(tmp, "w") as fh:
        json.dump(sums, fh)
    os.replace(tmp, os.path.join(step_dir, CHECKSUMS))


def verify_checksums(step_dir: str) -> str | None:
    """None if every file of the checkpoint matches checksums.json (or there is none: an older
    checkpoint), else the first problem in a few words."""
    path = os.path.join(step_dir, CHECKSUMS)
    if not os.path.exists(path):
        return None
    try:
        with open(path) as fh:
            sums = json.load(fh)
    except (OSError, ValueError):
        return f"its {CHECKSUMS} is unreadable"
    missing = sorted(set(sums) - set(_item_files(step_dir)))
    if missing:
        return f"{missing[0]} is missing"
    for f, (size, digest) in sums.items():
        full = os.path.join(step_dir, f)
        if os.path.getsize(full) != size:
            return f"{f} is truncated or extended ({os.path.getsize(full)} bytes, {size} written)"
        if _sha256(full) != digest:
            return f"{f} has other bytes than were written (SHA-256 mismatch)"
    return None


def _sync(name: str) -> None:
    """A barrier across processes (no-op in one process)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils
        multihost_utils.sync_global_devices(name)


@contextlib.contextmanager
def _orbax():
    """orbax.checkpoint, imported on first use (``import jdl.train`` does not load it), with
    absl's INFO lines (orbax logs every save) silenced for the call only."""
    import orbax.checkpoint as ocp
    log = logging.getLogger("absl")
    level = log.level
    log.setLevel(max(level, logging.ERROR))
    try:
        yield ocp
    finally:
        log.setLevel(level)


def _manager(path: str, keep: int):
    with _orbax() as ocp:
        opts = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                            enable_async_checkpointing=False,
                                            cleanup_tmp_directories=True)
        return ocp.CheckpointManager(path, options=opts)


class Checkpoints:
    """Save and restore (TrainState, loop state) pairs under ``directory``."""

    def __init__(self, directory: str | os.PathLike, keep: int = 3, keep_best: bool = True):
        if keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep}")
        self.directory = os.path.abspath(os.fspath(directory))
        self._last = _manager(os.path.join(self.directory, "last"), keep)
        self._best = _manager(os.path.join(self.directory, "best"), 1) if keep_best else None

    # -- saving ---------------------------------------------------------------------------
    def save(self, step: int, state, loop_state: dict | None = None, best: bool = False) -> None:
        """Save (state, loop_state) at ``step`` unless a good checkpoint is there already (a
        corrupt one is replaced); with ``best``, also as the best checkpoint."""
        with _orbax() as ocp:
            args = ocp.args.Composite(state=ocp.args.StandardSave(state),
                                      loop=ocp.args.JsonSave(loop_state or {}))
            self._save(self._last, "last", step, args)
            if best and self._best is not None:
                self._save(self._best, "best", step, args)

    def _save(self, mgr, which: str, step: int, args) -> None:
        path = self.path(step, which)
        if step in mgr.all_steps():
            if verify_checksums(path) is None:
                return
            if jax.process_index() == 0:
                shutil.rmtree(path)
            _sync(f"jdl_replace_corrupt_{which}_{step}")
            mgr.reload()
        mgr.save(step, args=args, force=True)
        if jax.process_index() == 0:
            write_checksums(path)
        _sync(f"jdl_checksums_{which}_{step}")

    # -- listing ----------------------------------------------------------------------------
    def _manager_of(self, which: str):
        mgr = self._last if which == "last" else self._best
        if mgr is None:
            raise CheckpointError("no best checkpoints are kept (keep_best=False)")
        mgr.reload()
        return mgr

    def steps(self, which: str = "last") -> list[int]:
        return sorted(self._manager_of(which).all_steps())

    def latest_step(self) -> int | None:
        steps = self.steps()
        return steps[-1] if steps else None

    def best_step(self) -> int | None:
        if self._best is None:
            return None
        steps = self.steps("best")
        return steps[-1] if steps else None

    def path(self, step: int, which: str = "last") -> str:
        return os.path.join(self.directory, which, str(step))

    def problem(self, step: int, which: str = "last") -> str | None:
        """None if the checkpoint at ``step`` matches its checksums, else what is wrong."""
        return verify_checksums(self.path(step, which))

    def latest_good_step(self, which: str = "last") -> int | None:
        """The newest step whose checkpoint matches its checksums (None if there is none)."""
        return next((s for s in reversed(self.steps(which)) if self.problem(s, which) is None),
                    None)

    # -- restoring --------------------------------------------------------------------------
    def _choose(self, step: int | None, which: str, skip_corrupt: bool) -> tuple[int, list]:
        """The step to restore and the other kept steps; refuses a missing or corrupt one."""
        steps = self.steps(which)
        if step is None and not steps:
            raise CheckpointError(f"no checkpoint in {os.path.join(self.directory, which)}")
        if step is None:
            good = self.latest_good_step(which) if skip_corrupt else None
            step = steps[-1] if good is None else good
        others = [s for s in steps if s != step]
        if step not in steps:
            raise CheckpointError(f"no checkpoint at step {step} in "
                                  f"{os.path.join(self.directory, which)}; kept steps: {steps}")
        problem = self.problem(step, which)
        if problem is not None:
            good = [s for s in others if self.problem(s, which) is None]
            hint = (f"resume from the newest good one with skip_corrupt=True (--skip-corrupt) "
                    f"or resume_step (--resume-step)" if good else "none is intact")
            raise CheckpointError(f"checkpoint step {step} ({self.path(step, which)}) is "
                                  f"corrupt: {problem}; other checkpoints kept: {others or 'none'}"
                                  f", intact: {good or 'none'}; {hint}")
        return step, others

    def restore(self, step: int | None, template, which: str = "last",
                skip_corrupt: bool = False) -> tuple[Any, dict]:
        """Restore step ``step`` (None: the newest; with ``skip_corrupt``, the newest that
        matches its checksums) into the structure of ``template``. A checkpoint whose files do
        not match their checksums is refused (CheckpointError, one line: the step, the reason,
        the other steps kept) before orbax reads it.

        Arrays come back with the template's shardings (orbax restores onto them), whatever the
        devices that wrote the checkpoint: a template on one device restores a checkpoint
        written on 8, one placed by ``jdl.parallel.DataParallel.place_state`` restores a
        one-device checkpoint split across its devices (tests/test_parallel.py)."""
        step, others = self._choose(step, which, skip_corrupt)
        path = self.path(step, which)
        self._check_template(step, which, template)
        try:
            with _orbax() as ocp:
                out = self._manager_of(which).restore(step, args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(template), loop=ocp.args.JsonRestore()))
        except Exception as e:  # orbax/tensorstore raise many types; one clear error for users
            reason = str(e).split("\n")[0][:500]
            kind = "corrupt or unreadable"
            if "shape" in reason or "structure" in reason or "do not match" in reason:
                kind = "incompatible with this model"
            raise CheckpointError(
                f"checkpoint {path} is {kind}: {reason}. Other checkpoints kept: {others or 'none'} "
                f"(restore one of them with resume_step / --resume-step).") from e
        state, loop = out["state"], out["loop"]
        want, got = tree_spec(template), tree_spec(state)
        if want != got:
            diff = {k: (want.get(k), got.get(k)) for k in set(want) | set(got) if want.get(k) != got.get(k)}
            raise CheckpointError(f"checkpoint {path} is incompatible with this model: "
                                  f"(expected, found) per leaf: {diff}")
        return state, dict(loop or {})

    def restore_loop(self, step: int, which: str = "last") -> dict:
        """Only the loop state (JSON) of a verified checkpoint: what fit reads to decide,
        before it touches any file, whether a workdir holds the run it is asked to do."""
        step, _ = self._choose(step, which, False)
        return self._read_loop(step, which)

    def _read_loop(self, step: int, which: str) -> dict:
        with _orbax() as ocp:
            out = self._manager_of(which).restore(step, args=ocp.args.Composite(
                loop=ocp.args.JsonRestore()))
        return dict(out["loop"] or {})

    def _check_template(self, step: int, which: str, template) -> None:
        """Compare the template with the state spec that fit stored in the loop state (its run
        fingerprint), so that another model's checkpoint is refused before orbax reads it."""
        stored = (self._read_loop(step, which).get("run") or {}).get("state")
        if stored is None:
            return
        want = json.loads(json.dumps(tree_spec(template)))
        bad = [k for k in list(want) + [k for k in stored if k not in want]
               if want.get(k) != stored.get(k)]
        if bad:
            raise CheckpointError(
                f"checkpoint {self.path(step, which)} is incompatible with this model: "
                f"{len(bad)} leaves differ, e.g. {bad[0]}: {json.dumps(stored.get(bad[0]))} stored, "
                f"{json.dumps(want.get(bad[0]))} in this model")

    def close(self) -> None:
        with _orbax():
            self._last.close()
            if self._best is not None:
                self._best.close()
