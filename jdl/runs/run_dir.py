"""The run directory: what a workdir holds, whether a new command may use it, config.json and
summary.json.

A workdir *holds a run* when it (or a folder directly inside it, for scripts that train several
models) has a summary.json, a metrics.jsonl or a non-empty checkpoints/ folder. A command
given such a workdir either

- resumes it (``resume=True``, ``--resume``): the stored config.json is compared with the new
  config field by field; only the resumable fields may differ (jdl.runs.command_line.field_meta:
  RESUMABLE_ALWAYS and fields declared ``resumable``), any other difference is refused naming
  each field and both values;
- replaces it (``overwrite=True``, ``--overwrite``): the run's files are deleted when the new
  run is about to write its own;
- or is refused, before anything is written, in one line saying what to type.

``--resume`` on a workdir that holds no run is refused too (there is nothing to check the new
config against). :func:`check` never writes; :meth:`RunDir.begin` (called once the new run's
data and model are ready) deletes an overwritten run and writes config.json.

Every file of a run is written through :class:`RunDir`, which holds the main-process rule
(only process 0 of a multi-process run writes). summary.json has one schema for every script
(:meth:`RunDir.write_summary`); see SUMMARY_SCHEMA.
"""
from __future__ import annotations

import glob
import json
import os
import shutil
import time

RUN_FILES = ("summary.json", "metrics.jsonl")

SUMMARY_SCHEMA = "jdl.summary/1"
SUMMARY_REQUIRED = ("experiment", "test", "test_model", "resumed", "wall_time_s")


class RunDirError(ValueError):
    """A workdir that the command may not use as asked; the message says what to type."""


def _holds_run_here(folder: str) -> bool:
    if any(os.path.exists(os.path.join(folder, f)) for f in RUN_FILES):
        return True
    ck = os.path.join(folder, "checkpoints")
    return os.path.isdir(ck) and any(os.scandir(ck))


def holds_run(workdir: str) -> bool:
    """Whether ``workdir`` or a folder directly inside it holds a run's results."""
    if not os.path.isdir(workdir):
        return False
    if _holds_run_here(workdir):
        return True
    return any(e.is_dir() and _holds_run_here(e.path) for e in os.scandir(workdir))


def read_config(workdir: str) -> dict | None:
    """The stored config.json (None if absent); a data set stored as 'auto' by runs of earlier
    versions reads as the one it resolved to."""
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        stored = json.load(f)
    if stored.get("dataset") == "auto" and stored.get("resolved_dataset"):
        stored["dataset"] = stored["resolved_dataset"]
    return stored


def _jsonable(v):
    return json.loads(json.dumps(v))


def differences(stored: dict, new: dict, resumable) -> list:
    """[(field, stored value, new value)] of the fields of ``new`` that differ from ``stored``
    and may not change on resume (fields absent from ``stored`` are not compared)."""
    out = []
    for name, v in new.items():
        if name in stored and name not in resumable and _jsonable(v) != stored[name]:
            out.append((name, stored[name], _jsonable(v)))
    return out


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def check(workdir: str, config: dict, *, resume: bool = False, overwrite: bool = False,
          resumable=(), can_resume: bool = True) -> dict | None:
    """Whether a run with ``config`` (its fields as a dict) may use ``workdir`` as asked;
    writes nothing. Returns the stored config.json when resuming, else None; raises
    :class:`RunDirError` (one line: why and what to type) when refused. ``can_resume``: whether
    the command offers --resume (scripts that write no checkpoints do not)."""
    if resume and overwrite:
        raise RunDirError("--resume and --overwrite exclude each other: pick one")
    held = holds_run(workdir)
    if overwrite:
        return None
    if not resume:
        if held:
            cont = "add --resume to continue it, " if can_resume else ""
            raise RunDirError(
                f"{workdir} already holds a run{_describe(read_config(workdir))}: {cont}"
                f"--overwrite to replace it, or give another --workdir")
        return None
    if not held:
        raise RunDirError(f"--resume: {workdir} holds no run to resume (no checkpoints, metrics "
                          f"or summary); drop --resume to start one there")
    stored = read_config(workdir)
    if stored is None:
        raise RunDirError(f"--resume: {workdir} holds a run but no config.json to check the "
                          f"settings against; use --overwrite or another --workdir")
    diffs = differences(stored, config, resumable)
    if diffs:
        listed = "; ".join(f"{_flag(n)} {_show(old)} there, {_show(new)} now"
                           for n, old, new in diffs)
        may = ", ".join(_flag(n) for n in sorted(resumable) if n in config)
        raise RunDirError(f"--resume: {workdir} was run with other settings: {listed}. Only "
                          f"{may} may change on resume; use the stored values, another --workdir "
                          f"or --overwrite")
    return stored


def _show(v) -> str:
    if isinstance(v, list):
        return ",".join(map(str, v))
    return str(v)


def _describe(stored: dict | None) -> str:
    if not stored:
        return ""
    parts = [f"{k} {_show(stored[k])}" for k in ("dataset", "epochs") if k in stored]
    return f" ({', '.join(parts)})" if parts else ""


def remove_run(workdir: str) -> None:
    """Delete what runs write in ``workdir`` (config, summary, metrics, checkpoints, TensorBoard
    events (tb/), PNGs, and the folders inside it that hold runs); other files are kept."""
    for folder in [workdir] + [e.path for e in os.scandir(workdir) if e.is_dir()
                               and (_holds_run_here(e.path) or
                                    os.path.exists(os.path.join(e.path, "config.json")))]:
        if folder != workdir:
            shutil.rmtree(folder)
            continue
        for name in ("config.json",) + RUN_FILES:
            if os.path.exists(os.path.join(folder, name)):
                os.remove(os.path.join(folder, name))
        for sub in ("checkpoints", "tb"):
            if os.path.isdir(os.path.join(folder, sub)):
                shutil.rmtree(os.path.join(folder, sub))
        for path in glob.glob(os.path.join(folder, "events.out.tfevents.*")) + \
                glob.glob(os.path.join(folder, "*.png")):
            os.remove(path)


def write_json(path: str, obj) -> None:
    """Write ``obj`` as indented JSON, atomically (a temporary file renamed over ``path``)."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2)
    os.replace(tmp, path)


def summary_record(summary: dict) -> dict:
    """``summary`` checked against the common schema and completed: ``schema``,
    ``test_accuracy`` and ``test_loss`` (copies of test['accuracy'] and test['loss'])."""
    missing = [k for k in SUMMARY_REQUIRED if k not in summary]
    if missing:
        raise ValueError(f"summary lacks the keys {missing} of the {SUMMARY_SCHEMA} schema")
    test = summary["test"]
    if test is not None and not isinstance(test, dict):
        raise ValueError(f"summary['test'] must be a dict of metrics or None, got {test!r}")
    return {"schema": SUMMARY_SCHEMA, **summary,
            "test_accuracy": (test or {}).get("accuracy"), "test_loss": (test or {}).get("loss")}


class RunDir:
    """One run's folder: config.json, summary.json, figures and other result files, and the
    rule of who writes them.

    Multi-controller JAX runs the same program in every process; a run's files are written
    once, by the main process (``jax.process_index() == 0``), as flax's
    ``metric_writers.create_default_writer(logdir, just_logging=jax.process_index() > 0)``
    does: every writing method below checks it, so a script never does. The others return
    what the main process returns (the summary record) and write nothing. Checkpoints are not
    this object's: every process writes its shards into the shared folder (jdl.train).

    ``main`` fixes the rule by hand (tests, or a caller that knows); by default it is asked of
    JAX on the first write, after ``jax.distributed`` has been joined."""

    def __init__(self, path: str, main: bool | None = None):
        self.path = str(path)
        self._main = main

    def __repr__(self) -> str:
        return f"RunDir({self.path!r})"

    @property
    def main(self) -> bool:
        """Whether this process writes the run's files (process 0)."""
        if self._main is None:
            from jdl.parallel import distributed   # imports JAX: only once a run writes
            self._main = distributed.is_main_process()
        return self._main

    def file(self, name: str) -> str:
        """The path of ``name`` inside the run directory."""
        return os.path.join(self.path, name)

    def sub(self, name: str) -> "RunDir":
        """The run directory of a model trained inside this one (``path/name``), same rule."""
        return RunDir(self.file(name), self._main)

    def holds_run(self) -> bool:
        return holds_run(self.path)

    def read_config(self) -> dict | None:
        return read_config(self.path)

    def read_summary(self) -> dict | None:
        """The stored summary.json (None if absent)."""
        path = self.file("summary.json")
        if not os.path.exists(path):
            return None
        with open(path) as f:
            return json.load(f)

    def check(self, config: dict, **kw) -> dict | None:
        """:func:`check` of this folder (reads only, on every process)."""
        return check(self.path, config, **kw)

    def begin(self, config: dict, *, stored: dict | None = None, overwrite: bool = False,
              extra: dict | None = None) -> None:
        """Start writing: delete the run here when ``overwrite``, then write config.json =
        ``config`` + ``extra`` (model, resolved data set, ...). A resumed run (``stored``
        given) records the values it changed in config.json's ``resumes`` list."""
        if not self.main:
            return
        if overwrite and os.path.isdir(self.path):
            remove_run(self.path)
        record = {**_jsonable(config), **_jsonable(extra or {})}
        if stored is not None:
            changed = {k: [stored.get(k), v] for k, v in _jsonable(config).items()
                       if stored.get(k) != v}
            record["resumes"] = stored.get("resumes", []) + [
                {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "changed": changed}]
        self.write_json("config.json", record)

    def write_summary(self, summary: dict) -> dict:
        """summary.json in the common schema (:func:`summary_record`, checked on every
        process); returns the record."""
        record = summary_record(summary)
        self.write_json("summary.json", record)
        return record

    def write_json(self, name: str, obj) -> None:
        """``name`` = ``obj`` as indented JSON, atomically (main process)."""
        if self.main:
            os.makedirs(self.path, exist_ok=True)
            write_json(self.file(name), obj)

    def write_text(self, name: str, text: str) -> None:
        """``name`` = ``text`` (main process)."""
        if self.main:
            os.makedirs(self.path, exist_ok=True)
            with open(self.file(name), "w") as f:
                f.write(text)

    def plot(self, draw, name: str, *args, **kw) -> None:
        """``draw(*args, path=<this folder>/name, **kw)`` on the main process: a figure of
        jdl.runs.plots or a script's own."""
        if self.main:
            os.makedirs(self.path, exist_ok=True)
            draw(*args, path=self.file(name), **kw)

    def say(self, text: str) -> None:
        """Print one line of the run's report (main process; the others stay quiet)."""
        if self.main:
            print(text, flush=True)
