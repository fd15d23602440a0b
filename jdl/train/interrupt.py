"""Stopping a training run cleanly on SIGINT (Ctrl-C) or SIGTERM (a scheduler's notice).

While ``fit`` trains, ``StopSignals`` replaces the handlers of SIGINT and SIGTERM by one that
only records the signal; the loop checks the record after each step, finishes that step,
writes a checkpoint (with a workdir) and raises ``TrainingInterrupted``. A second SIGINT while
the checkpoint is written raises KeyboardInterrupt at once. The previous handlers are restored
when the block ends. Signal handlers can only be installed from the main thread; elsewhere
(and in runs of several processes, which would have to agree on the step) nothing is installed
and the signals keep their usual effect.

Exit codes follow the shell's convention 128 + signal number: 130 for SIGINT, 143 for SIGTERM.
A command line prints ``str(exc)`` and exits with ``exc.exit_code``.
"""
from __future__ import annotations

import signal
import threading

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingInterrupted(Exception):
    """Training stopped on a signal after finishing a step; the message says how to resume.

    Attributes: ``signum`` (the signal), ``step`` (updates applied, as saved), ``exit_code``
    (128 + signum: 130 for SIGINT, 143 for SIGTERM), ``checkpoint_dir`` (None without one)."""

    def __init__(self, signum: int, step: int, checkpoint_dir: str | None = None):
        self.signum, self.step, self.checkpoint_dir = int(signum), int(step), checkpoint_dir
        self.exit_code = 128 + self.signum
        name = signal.Signals(self.signum).name
        if checkpoint_dir is None:
            where = "nothing was saved (no workdir)"
        else:
            where = (f"checkpoint of step {self.step} saved in {checkpoint_dir}; to continue, "
                     f"run it again with resume=True (--resume)")
        super().__init__(f"training interrupted by {name} after step {self.step}: {where}")


class StopSignals:
    """Context manager: record SIGINT / SIGTERM in ``self.signum`` instead of acting on them.

    ``enabled=False`` (or outside the main thread) installs nothing; ``signum`` stays None."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.signum: int | None = None
        self._previous: dict = {}

    def _handler(self, signum, frame):
        if self.signum == signal.SIGINT and signum == signal.SIGINT:
            raise KeyboardInterrupt   # a second Ctrl-C: stop now, without the checkpoint
        self.signum = signum

    def __enter__(self) -> "StopSignals":
        if self.enabled:
            for s in STOP_SIGNALS:
                self._previous[s] = signal.signal(s, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous = {}
