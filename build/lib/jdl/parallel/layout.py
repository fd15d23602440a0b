"""Where each leaf of a training state lives under data parallelism: replicated or split.

A TrainState holds two kinds of leaves:

- replicated: step, params, optimiser state, rng, and model state that summarises the data
  (batch-norm running averages, a running hidden activity): one copy per device, kept equal
  because every device applies the same averaged update;
- per example: model state with one row per example of the batch, such as the persistent
  chains of PCD (Tieleman 2008), shape (B, n_visible). These are SPLIT along the devices like
  the batch: device d holds rows [d b, (d + 1) b), the chains of its own examples, so PCD on D
  devices runs exactly the B chains of one device.

``leading_batch_dim`` decides which model-state leaves are per example: those with at least two
dimensions whose first one is the global batch size. One-dimensional statistics (e.g. a
batch-norm mean of C channels, even when C happens to equal B) stay replicated. Pass another
``per_example(leaf, batch_size) -> bool`` for other conventions.
"""
from __future__ import annotations

from typing import Callable

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jdl.parallel.axis import BATCH_AXIS

PerExample = Callable[[object, int], bool]


def leading_batch_dim(leaf, batch_size: int) -> bool:
    """The default rule: ndim >= 2 and shape[0] == batch_size."""
    shape = getattr(leaf, "shape", ())
    return len(shape) >= 2 and shape[0] == batch_size


def _key_name(k):
    for attr in ("name", "key"):
        if hasattr(k, attr):
            return getattr(k, attr)
    return None


def per_example_mask(state, batch_size: int, per_example: PerExample = leading_batch_dim):
    """A pytree of bools shaped like ``state``: True for the model-state leaves (under the
    field or key 'model_state') that ``per_example`` says carry one row per example."""
    def mark(path, leaf):
        return bool(path) and _key_name(path[0]) == "model_state" and bool(
            per_example(leaf, batch_size))
    return jax.tree_util.tree_map_with_path(mark, state)


def model_state_mask(model_state, batch_size: int, per_example: PerExample = leading_batch_dim):
    """The same for a bare model state (inside a grad_fn)."""
    return jax.tree.map(lambda leaf: bool(per_example(leaf, batch_size)), model_state)


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def split(mesh: Mesh, axis_name: str = BATCH_AXIS) -> NamedSharding:
    """Leading dimension split along ``axis_name``, the rest whole (a batch, PCD chains)."""
    return NamedSharding(mesh, P(axis_name))


def state_shardings(state, mesh: Mesh, batch_size: int, axis_name: str = BATCH_AXIS,
                    per_example: PerExample = leading_batch_dim):
    """NamedShardings for every leaf of ``state``: split for per-example leaves, else replicated."""
    rep, spl = replicated(mesh), split(mesh, axis_name)
    return jax.tree.map(lambda m: spl if m else rep,
                        per_example_mask(state, batch_size, per_example))
