"""Metrics sinks: one JSON object per line in ``metrics.jsonl`` and TensorBoard event files."""
from __future__ import annotations

import json
import math
import os


def _clean(v):
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return v


class MetricsLogger:
    """Append records {"step": .., "kind": "train"|"epoch"|..., metric: value} to
    ``workdir/metrics.jsonl`` and as scalars ``<kind>/<metric>`` to TensorBoard (``workdir/tb``).
    The TensorBoard event file is created at the first record, so a run that writes none (a
    finished run asked again) leaves no empty event file."""

    def __init__(self, workdir: str | None, tensorboard: bool = True):
        self.workdir = workdir
        self._tb = None
        self._file = None
        self._tensorboard = tensorboard
        if workdir is None:
            return
        os.makedirs(workdir, exist_ok=True)
        self.path = os.path.join(workdir, "metrics.jsonl")
        self._file = open(self.path, "a")

    def _writer(self):
        if self._tb is None and self._tensorboard and self._file is not None:
            from jdl.extras import require
            SummaryWriter = require("tensorboardX", "TensorBoard events").SummaryWriter
            self._tb = SummaryWriter(os.path.join(self.workdir, "tb"))
        return self._tb

    def truncate_after(self, step: int) -> None:
        """Drop records written after ``step`` (used when resuming from a checkpoint at ``step``)."""
        if self._file is None:
            return
        self._file.close()
        with open(self.path) as f:
            lines = f.readlines()
        keep = [line for line in lines if line.strip() and json.loads(line)["step"] <= step]
        if keep != lines:
            with open(self.path, "w") as f:
                f.writelines(keep)
        self._file = open(self.path, "a")

    def write(self, kind: str, step: int, metrics: dict) -> None:
        if self._file is None:
            return
        rec = {"step": int(step), "kind": kind, **{k: _clean(v) for k, v in metrics.items()}}
        self._file.write(json.dumps(rec) + "\n")
        self._file.flush()
        if self._writer() is not None:
            for k, v in metrics.items():
                if isinstance(v, (int, float)) and k != "epoch":
                    self._tb.add_scalar(f"{kind}/{k}", v, int(step))

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def read_metrics(workdir: str, kind: str | None = None) -> list[dict]:
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        recs = [json.loads(line) for line in f if line.strip()]
    return [r for r in recs if kind is None or r["kind"] == kind]
