"""The gradient function of data parallelism: every device's gradient averaged over devices.

With the global batch of B examples split into D shards S_d of b = B / D examples, and a
grad_fn that returns batch MEANS (every jdl loss does), the full-batch gradient is the mean of
the shard gradients:

    g = (1/B) sum_n grad l_n = (1/D) sum_d (1/b) sum_{n in S_d} grad l_n = pmean_d g_d,

the synchronous data-parallel SGD of Dean et al. 2012 and Goyal et al. 2017 (all-reduce instead
of a parameter server). ``data_parallel_grad_fn`` wraps any grad_fn so that, when it runs in
the per-device program of parallel='pmap' (``jax.shard_map`` over the batch axis), it returns

- grads: lax.pmean over the axis (the formula above), so every device applies the same update
  and the parameters stay replicated;
- metrics: lax.pmean of the floating metrics (means over equal shards = global means);
- model state: returned as computed on the device's shard; the compile path (jdl.parallel.
  compile, which knows the declared per-example state) keeps per-example leaves (PCD chains)
  local and pmean-s the floating replicated ones (running averages such as batch-norm
  statistics), so they stay equal across devices. Exact global statistics need the model to
  compute them over the global batch (synced batch norm, ``jdl.parallel.axis.sync_axis``).

Global example indices (``batch['index']``, for split-invariant noise) are added to every
batch in one place only, where fit gathers it (``jdl.parallel.compile.gather``).

Outside a map over the axis (one device; ``jax.jit`` over a sharded mesh, whose computation is
global and needs no collectives) the wrapper calls ``grad_fn`` unchanged, so wrapping costs
nothing and changes nothing there. ``jdl.train.make_train_step`` wraps every grad_fn with it.

Equal weighting of shards assumes every shard's mean has the same denominator: true for
per-example means; for losses normalised by a data-dependent count (e.g. frames under a time
mask of varying length) the pmap mean weights shards equally while one device would weight
frames equally. The sharded-jit mode is exact in both cases.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
from jax import lax

from jdl.parallel.axis import BATCH_AXIS, axis_bound


def _inexact(x) -> bool:
    return jnp.issubdtype(jnp.asarray(x).dtype, jnp.inexact)


def batch_size_of(batch) -> int:
    """The leading dimension shared by the batch's arrays."""
    sizes = {jnp.shape(x)[0] for x in jax.tree.leaves(batch) if jnp.ndim(x) >= 1}
    if len(sizes) != 1:
        raise ValueError(f"batch arrays must share their leading (example) dimension, got {sizes}")
    return sizes.pop()


def pmean_floats(tree, axis_name: str):
    """lax.pmean of the floating leaves of ``tree``; integer and key leaves unchanged."""
    return jax.tree.map(lambda x: lax.pmean(x, axis_name) if _inexact(x) else x, tree)


def data_parallel_grad_fn(grad_fn: Callable, axis_name: str = BATCH_AXIS) -> Callable:
    """Wrap ``grad_fn(params, model_state, batch, rng)`` for data parallelism over
    ``axis_name`` (see the module docstring). The result carries ``.data_parallel_axis``."""
    if getattr(grad_fn, "data_parallel_axis", None) == axis_name:
        return grad_fn  # already wrapped

    def wrapped(params, model_state, batch, rng):
        if not axis_bound(axis_name):
            return grad_fn(params, model_state, batch, rng)
        grads, new_state, metrics = grad_fn(params, model_state, batch, rng)
        grads = jax.tree.map(lambda g: lax.pmean(g, axis_name), grads)
        return grads, new_state, pmean_floats(metrics, axis_name)

    wrapped.data_parallel_axis = axis_name
    wrapped.__wrapped__ = grad_fn
    wrapped.__doc__ = grad_fn.__doc__
    return wrapped
