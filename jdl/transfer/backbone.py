"""Backbones from jdl's own checkpoints: the trained variables of any jdl run, ready to cut.

Every jdl training run (``jdl.train.fit`` with a workdir, hence every experiment script) saves
its TrainState with orbax under ``<workdir>/checkpoints/{last,best}/<step>/``
(jdl.train.Checkpoints). ``load_backbone`` reads back only the model's variables from one of
them, ``{'params': state.params, **state.model_state}`` (e.g. 'batch_stats'), without the
optimiser state (whose structure depends on the optimiser the run used): orbax's partial
restore of the 'params' and 'model_state' sub-trees, onto the shapes and dtypes that ``model``
creates on ``example_x``. The checkpoint's shapes are checked against the model's first
(from orbax's metadata, before reading any array), and the first missing or mis-shaped path is
named in the error.

``model`` may be the trained network itself or that network already cut
(``model.clone(output_layer=...)``): then only the backbone's variables are read.
"""
from __future__ import annotations

import os

import jax
import orbax.checkpoint as ocp

from jdl.train.checkpoint import CheckpointError, Checkpoints
from jdl.transfer.cut import variable_shapes
from jdl.transfer.subtree import map_with_path, select


def checkpoint_directory(path: str | os.PathLike) -> str:
    """The checkpoints folder of a jdl run: ``path`` itself when it holds 'last/', else
    ``path/checkpoints`` (a run's workdir)."""
    path = os.path.abspath(os.fspath(path))
    for candidate in (path, os.path.join(path, "checkpoints")):
        if os.path.isdir(os.path.join(candidate, "last")):
            return candidate
    raise CheckpointError(f"{path} is neither a jdl workdir (with checkpoints/last/) nor a "
                          f"checkpoints folder (with last/)")


def load_backbone(path: str | os.PathLike, model, example_x, step: int | None = None,
                  which: str = "last") -> dict:
    """Variables ``{'params': ..., 'batch_stats': ..., ...}`` of ``model`` from the checkpoint
    at ``step`` (None: the newest; ``which='best'``: the best one kept) of the jdl run at
    ``path`` (its workdir or its checkpoints folder). See the module docstring."""
    if which not in ("last", "best"):
        raise ValueError(f"which must be 'last' or 'best', got {which!r}")
    ckpts = Checkpoints(checkpoint_directory(path), keep=2 ** 31 - 1)  # reads only: deletes nothing
    try:
        if step is None:
            step = ckpts.latest_step() if which == "last" else ckpts.best_step()
            if step is None:
                raise CheckpointError(f"no checkpoint in {os.path.join(ckpts.directory, which)}")
        where = os.path.join(ckpts.path(step, which), "state")
        if not os.path.isdir(where):
            raise CheckpointError(f"no checkpoint at step {step} in "
                                  f"{os.path.join(ckpts.directory, which)}; kept steps: "
                                  f"{ckpts.steps() if which == 'last' else [ckpts.best_step()]}")
    finally:
        ckpts.close()
    shapes = dict(variable_shapes(model, example_x))
    params = shapes.pop("params")
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    template = map_with_path(lambda _, s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=device),
                             {"params": params, "model_state": shapes})
    with ocp.PyTreeCheckpointer() as checkpointer:
        stored = checkpointer.metadata(where).item_metadata.tree
        select(template, stored, f"checkpoint {where}")
        restored = checkpointer.restore(where, args=ocp.args.PyTreeRestore(
            item=template, restore_args=ocp.checkpoint_utils.construct_restore_args(template),
            partial_restore=True))
    return {"params": restored["params"], **restored["model_state"]}
