"""One experiment, several arms: the same recipe with a few settings changed, each arm one
:func:`jdl.runs.supervised.run` (jdl.train.fit) in its own folder ``<workdir>/<arm>/``.

An arm is a name and its overrides of the base config (``dataclasses.replace(cfg,
**overrides)``). An arm whose folder already holds a summary.json is read back, not retrained;
one interrupted (checkpoints but no summary) is resumed; so a comparison interrupted half-way
continues where it stopped when the command is given again with ``--resume``.

:func:`final_variables` reads an arm's trained variables back from its last checkpoint (the
model the summary's ``test`` scores when the run has no validation set: its final state).
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Callable


def arm_config(cfg, overrides: dict):
    """``cfg`` with ``overrides`` (field -> value), validated; an unknown field is refused."""
    names = {f.name for f in dataclasses.fields(cfg)}
    bad = sorted(set(overrides) - names)
    if bad:
        raise ValueError(f"arm overrides name unknown config fields {bad}")
    out = dataclasses.replace(cfg, **overrides)
    out.validate()
    return out


def run_arms(cfg, arms: dict, build_model: Callable, workdir: str, *, progress: bool = True,
             say: Callable = print) -> dict:
    """{arm: summary} of training ``build_model(arm's config)`` for each arm of ``arms``
    ({name: overrides}), in order, in ``workdir/<name>`` (see the module docstring)."""
    from jdl.runs import run_dir
    from jdl.runs.supervised import run
    out = {}
    for name, overrides in arms.items():
        sub = os.path.join(workdir, name)
        acfg = arm_config(cfg, overrides)
        if os.path.exists(os.path.join(sub, "summary.json")):
            with open(os.path.join(sub, "summary.json")) as f:
                out[name] = json.load(f)
            say(f"{name}: done already, read from {sub}")
            continue
        out[name] = run(acfg, build_model, sub, progress=progress, title=name,
                        resume=run_dir.holds_run(sub))
        say(f"{name}: test accuracy {out[name]['test_accuracy']:.4f} "
            f"({out[name]['wall_time_s']:.0f} s)")
    return out


def final_variables(workdir: str, model, example_x) -> dict:
    """{'params': ..., other collections} of the run in ``workdir`` at its last checkpoint
    (jdl.transfer.load_backbone), for ``model`` applied to inputs like ``example_x``."""
    from jdl.transfer import load_backbone
    return load_backbone(workdir, model, example_x)


def write_results(workdir: str, experiment: str, table_name: str, table: str, *,
                  test_model: str, resumed: bool, started: float, **fields) -> dict:
    """Write the comparison's markdown ``table`` to ``workdir/table_name`` (and print it) and
    its summary.json (jdl.runs.run_dir's schema, no single test model: ``test`` None; ``fields``
    added, ``wall_time_s`` since ``started``, a time.perf_counter() value); returns the
    summary."""
    import time
    from jdl.runs.run_dir import RunDir
    rd = RunDir(workdir)
    rd.write_text(table_name, table)
    print(table)
    return rd.write_summary({
        "experiment": experiment, "test": None, "test_model": test_model, "resumed": resumed,
        **fields, "wall_time_s": time.perf_counter() - started})
