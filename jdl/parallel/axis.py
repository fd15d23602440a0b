"""The data-parallel batch axis, as seen from inside a model or a grad_fn.

Data-parallel training (jdl.parallel) splits a global batch of B examples into D contiguous
shards of b = B / D examples; in pmap mode (``jax.shard_map``) each device runs the model on
its shard with the named axis ``BATCH_AXIS`` ('batch') bound. Layers whose result depends on the whole batch
use these helpers so that one device on the full batch and D devices on its shards compute the
same numbers:

- batch normalisation computes mean and variance over the global batch (``sync_axis``, passed
  to ``flax.linen.BatchNorm(axis_name=...)``: synced batch norm, Ioffe & Szegedy 2015 over B);
- dropout draws the mask of example n from its position in the global batch
  (``example_positions``): on device d, local row i is global example d b + i.

Outside a pmap over 'batch' (one device, or ``jax.jit`` over a sharded mesh, whose computation
is global anyway) the axis is unbound and the helpers return the single-device answers, so a
model written with them behaves exactly as before on one device. The name 'batch' is reserved
for data parallelism over the leading (example) dimension: do not vmap with axis_name='batch'
over anything else. This module imports only jax, so that jdl.nn's layers can use it.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

BATCH_AXIS = "batch"


def axis_bound(axis_name: str | None) -> bool:
    """True when called (at trace time) inside a map over the named axis (``jax.shard_map``
    over a mesh with that axis, ``jax.pmap(..., axis_name=...)``); False outside, or when
    ``axis_name`` is None."""
    if axis_name is None:
        return False
    try:
        lax.axis_size(axis_name)
    except NameError:
        return False
    return True


def sync_axis(axis_name: str | None = BATCH_AXIS) -> str | None:
    """``axis_name`` if it is bound here, else None: the ``axis_name`` to give a BatchNorm so it
    averages its statistics over the devices under pmap and stays a plain BatchNorm elsewhere."""
    return axis_name if axis_bound(axis_name) else None


def num_shards(axis_name: str | None = BATCH_AXIS) -> int:
    """D, the size of the bound batch axis (1 when unbound)."""
    return lax.axis_size(axis_name) if axis_bound(axis_name) else 1


def example_positions(n_local: int, axis_name: str | None = BATCH_AXIS) -> jax.Array:
    """Positions in the global batch of this shard's ``n_local`` examples:
    d n_local + arange(n_local) on device d of the bound axis, arange(n_local) when unbound."""
    pos = jnp.arange(n_local, dtype=jnp.int32)
    if axis_bound(axis_name):
        pos = pos + lax.axis_index(axis_name).astype(jnp.int32) * n_local
    return pos
