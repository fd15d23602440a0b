"""Where each leaf of a training state lives under data parallelism: replicated or split.

A TrainState holds two kinds of leaves:

- replicated: step, params, optimiser state, rng, and model state that summarises the data
  (batch-norm running averages, a running hidden activity): one copy per device, kept equal
  because every device applies the same averaged update;
- per example: model state with one row per example of the batch, such as the persistent
  chains of PCD (Tieleman 2008), shape (B, n_visible). These are SPLIT along the devices like
  the batch: device d holds rows [d b, (d + 1) b), the chains of its own examples, so PCD on D
  devices runs exactly the B chains of one device.

Which model state is per example is DECLARED, never read from shapes: a spec is a collection of
top-level ``model_state`` keys, each naming a subtree whose every leaf has one row per example
(leading dimension B, checked, with an error naming the key). The default ``PER_EXAMPLE``,
('chains',), names the persistent chains of jdl.rbm's PCD; a model family with other
per-example state passes its own spec (``fit(..., per_example_state=...)``,
``DataParallel.create(..., per_example=...)``). Every other leaf is replicated, whatever its
shape (in the manner of big_vision's explicit sharding rules).
"""
from __future__ import annotations

from typing import Collection

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jdl.parallel.axis import BATCH_AXIS

PER_EXAMPLE: tuple[str, ...] = ("chains",)   # model_state keys split with the batch (PCD chains)


def _key_name(k):
    for attr in ("name", "key"):
        if hasattr(k, attr):
            return getattr(k, attr)
    return None


def check_spec(per_example) -> tuple[str, ...]:
    """The spec as a tuple of keys, or a ValueError saying what a spec is."""
    if isinstance(per_example, str) or not isinstance(per_example, Collection) or not all(
            isinstance(k, str) for k in per_example):
        raise ValueError(f"per_example_state must be a collection of model_state keys (e.g. "
                         f"('chains',)), got {per_example!r}")
    return tuple(per_example)


def per_example_mask(state, batch_size: int, per_example: Collection[str] = PER_EXAMPLE):
    """A pytree of bools shaped like ``state``: True for the leaves of ``state.model_state[k]``
    for k in ``per_example``; ValueError if such a leaf has no leading dimension ``batch_size``."""
    keys = check_spec(per_example)

    def mark(path, leaf):
        if len(path) < 2 or _key_name(path[0]) != "model_state" or _key_name(path[1]) not in keys:
            return False
        shape = tuple(getattr(leaf, "shape", ()))
        if not shape or shape[0] != batch_size:
            raise ValueError(
                f"model_state[{_key_name(path[1])!r}] is declared per example (one row per "
                f"example of the batch), so its leaves need the leading dimension {batch_size} "
                f"(the global batch); {jax.tree_util.keystr(path)} has shape {shape}")
        return True
    return jax.tree_util.tree_map_with_path(mark, state)


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def split(mesh: Mesh, axis_name: str = BATCH_AXIS) -> NamedSharding:
    """Leading dimension split along ``axis_name``, the rest whole (a batch, PCD chains)."""
    return NamedSharding(mesh, P(axis_name))


def state_shardings(state, mesh: Mesh, batch_size: int, axis_name: str = BATCH_AXIS,
                    per_example: Collection[str] = PER_EXAMPLE):
    """NamedShardings for every leaf of ``state``: split for per-example leaves, else replicated."""
    rep, spl = replicated(mesh), split(mesh, axis_name)
    return jax.tree.map(lambda m: spl if m else rep,
                        per_example_mask(state, batch_size, per_example))
