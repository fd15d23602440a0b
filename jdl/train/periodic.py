"""Periodic actions: what the training loop does every so many steps, out of the loop's body.

In the manner of CLU's ``periodic_actions.PeriodicAction`` (the flax examples' habit): an
action is a callback with a cadence -- ``every_steps`` (step % every_steps == 0), ``on_steps``
(a set of steps), ``every_secs`` (wall-clock seconds since it last ran) -- and the loop asks
each action after every step whether it is due. ``jdl.train.fit`` builds its own (logging
the train metrics every ``log_every`` steps, a checkpoint every ``checkpoint_every``) and runs
the user's ``hooks`` the same way, after its synchronisation point: when an action runs, the
steps so far have finished, their metrics are read and the NaN guard has been checked, so the
state an action sees is a good one.

A metric writer (``fit(..., writers=[...])``) is any object with ``write(kind, step,
metrics)`` (and optionally ``close()``), like ``jdl.train.MetricsLogger``: fit hands it every
record it logs -- kind 'train' (the mean over the last ``log_every`` steps) and 'epoch' (the
epoch's train and validation metrics) -- in the main process only.
"""
from __future__ import annotations

import time
from typing import Callable, Collection


class PeriodicAction:
    """``callback(step, state)`` run when :meth:`due`: at ``step % every_steps == 0``, at the
    steps in ``on_steps``, or ``every_secs`` seconds after it last ran (the clock starts at
    the first ``due`` call). At least one cadence is needed."""

    def __init__(self, callback: Callable, *, every_steps: int | None = None,
                 every_secs: float | None = None, on_steps: Collection[int] = ()):
        for name, value in (("every_steps", every_steps), ("every_secs", every_secs)):
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be positive or None, got {value}")
        if every_steps is None and every_secs is None and not on_steps:
            raise ValueError("a PeriodicAction needs every_steps, every_secs or on_steps")
        self.callback = callback
        self.every_steps, self.every_secs = every_steps, every_secs
        self.on_steps = frozenset(int(s) for s in on_steps)
        self._last_time: float | None = None

    def due(self, step: int) -> bool:
        if step in self.on_steps or (self.every_steps and step % self.every_steps == 0):
            return True
        if self.every_secs is None:
            return False
        now = time.monotonic()
        if self._last_time is None:
            self._last_time = now
        return now - self._last_time >= self.every_secs

    def next_due(self, step: int) -> int | None:
        """The first step after ``step`` at which the step cadences (every_steps, on_steps)
        are due, or None (every_secs is not predictable)."""
        later = [s for s in self.on_steps if s > step]
        if self.every_steps:
            later.append((step // self.every_steps + 1) * self.every_steps)
        return min(later) if later else None

    def __call__(self, step: int, state) -> None:
        self._last_time = time.monotonic()
        self.callback(step, state)


def as_action(hook) -> PeriodicAction:
    """A PeriodicAction as given; a bare callable becomes one run every step."""
    if isinstance(hook, PeriodicAction):
        return hook
    if not callable(hook):
        raise TypeError(f"hooks must be PeriodicActions or callables (step, state), got {hook!r}")
    return PeriodicAction(hook, every_steps=1)
