"""Checkpoints with orbax-checkpoint: the last ``keep`` and the best one, written atomically.

Layout under ``directory``: ``last/<step>/`` (every N steps and each epoch end, the newest ``keep``
kept) and ``best/<step>/`` (the best validation score so far). Each holds the TrainState pytree
('state') and the loop's own bookkeeping as JSON ('loop': running sums, history, early-stopping
counters), which is what makes a resumed run end exactly where an uninterrupted one does.

Orbax writes into a temporary folder and renames it when complete, so a process killed in the
middle of a save leaves the earlier checkpoints intact. Any failure to restore (corrupt files,
a model whose shapes differ) is raised as :class:`CheckpointError` naming the path, the reason
and the other steps that can be restored instead.
"""
from __future__ import annotations

import logging
import os
from typing import Any

import orbax.checkpoint as ocp

from jdl.train.guards import tree_spec

logging.getLogger("absl").setLevel(logging.ERROR)


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be restored; the message says which, why, and what else is kept."""


def _manager(path: str, keep: int) -> ocp.CheckpointManager:
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
        args = ocp.args.Composite(state=ocp.args.StandardSave(state),
                                  loop=ocp.args.JsonSave(loop_state or {}))
        if step not in self._last.all_steps():
            self._last.save(step, args=args, force=True)
        if best and self._best is not None and step not in self._best.all_steps():
            self._best.save(step, args=args, force=True)

    # -- listing ----------------------------------------------------------------------------
    def steps(self) -> list[int]:
        self._last.reload()
        return sorted(self._last.all_steps())

    def latest_step(self) -> int | None:
        steps = self.steps()
        return steps[-1] if steps else None

    def best_step(self) -> int | None:
        if self._best is None:
            return None
        self._best.reload()
        steps = self._best.all_steps()
        return max(steps) if steps else None

    def path(self, step: int, which: str = "last") -> str:
        return os.path.join(self.directory, which, str(step))

    # -- restoring --------------------------------------------------------------------------
    def restore(self, step: int | None, template, which: str = "last") -> tuple[Any, dict]:
        """Restore step ``step`` (None: the newest) into the structure of ``template``.

        Arrays come back with the template's shardings (orbax restores onto them), whatever the
        devices that wrote the checkpoint: a template on one device restores a checkpoint
        written on 8, one placed by ``jdl.parallel.DataParallel.place_state`` restores a
        one-device checkpoint split across its devices (tests/test_parallel.py)."""
        mgr = self._last if which == "last" else self._best
        if mgr is None:
            raise CheckpointError("no best checkpoints are kept (keep_best=False)")
        mgr.reload()
        steps = sorted(mgr.all_steps())
        if step is None:
            if not steps:
                raise CheckpointError(f"no checkpoint in {os.path.join(self.directory, which)}")
            step = steps[-1]
        path = self.path(step, which)
        if step not in steps:
            raise CheckpointError(f"no checkpoint at step {step} in {os.path.dirname(path)}; "
                                  f"kept steps: {steps}")
        others = [s for s in steps if s != step]
        try:
            out = mgr.restore(step, args=ocp.args.Composite(
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

    def close(self) -> None:
        self._last.close()
        if self._best is not None:
            self._best.close()
