"""Dropout (Srivastava, Hinton, Krizhevsky, Sutskever & Salakhutdinov 2014) whose masks do not
depend on how a batch is split across devices.

In training each unit is kept with probability q = 1 - rate and the kept ones are scaled by 1/q
(inverted dropout), so the expected activation is unchanged and inference uses the plain net:

    y = m * x / q,   m ~ Bernoulli(q)   (train);      y = x   (inference).

``flax.linen.Dropout`` draws the mask of the whole batch from one key. Under ``jax.pmap`` every
device holds the same key and a shard of b = B / D examples, so each would draw the mask of a
b-example batch: data-parallel training would no longer equal one device on the full batch.
This module draws masks in one of two ways that are the same on 1 or D devices:

- ``per_example=False`` (default): the mask of the GLOBAL batch, m = Bernoulli(q, key, (B, ...))
  exactly as flax's Dropout draws it, of which device d keeps rows [d b, (d + 1) b). On one
  device it is bit-for-bit ``flax.linen.Dropout`` (same key, same draw), so results of existing
  runs are unchanged; under pmap each device draws the B-row mask (D times the random bits).
- ``per_example=True``: example n's mask comes from its own key fold_in(key, n), with n its
  position in the global batch (``jdl.parallel.axis.example_positions``) or the given ``index``
  (e.g. global example indices); each device draws only its own rows. A different mask
  stream from the default, so it is an option, not the default.

Under ``jax.jit`` over a sharded mesh (jdl.parallel's 'sharded' mode) the computation is global
and both ways are split-invariant by construction.
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from jdl.parallel.axis import BATCH_AXIS, axis_bound, example_positions, num_shards
from jdl.nn.validate import check_rate


class Dropout(nn.Module):
    """Inverted dropout, split-invariant under data parallelism (see the module docstring).

    Attributes: rate (probability of zeroing a unit), broadcast_dims (dims sharing one mask
    value, as in flax), deterministic, rng_collection ('dropout'), per_example (one key per
    example: fold_in(key, global position or index)), axis_name (the data-parallel axis).
    """
    rate: float
    broadcast_dims: Sequence[int] = ()
    deterministic: bool | None = None
    rng_collection: str = "dropout"
    per_example: bool = False
    axis_name: str | None = BATCH_AXIS

    def __post_init__(self):
        if self.rate != 1.0:  # flax allows rate 1 (all zeros); jdl's models refuse it earlier
            check_rate("rate", self.rate)
        super().__post_init__()

    @nn.compact
    def __call__(self, inputs, deterministic: bool | None = None, rng=None, index=None):
        """``index`` (per_example only): one integer per example, e.g. global example indices;
        default: positions in the global batch."""
        deterministic = nn.merge_param("deterministic", self.deterministic, deterministic)
        if self.rate == 0.0 or deterministic:
            return inputs
        if self.rate == 1.0:
            return jnp.zeros_like(inputs)
        keep = 1.0 - self.rate
        if rng is None:
            rng = self.make_rng(self.rng_collection)
        shape = list(inputs.shape)
        for dim in self.broadcast_dims:
            shape[dim] = 1
        n = inputs.shape[0]
        if self.per_example:
            if 0 in self.broadcast_dims:
                raise ValueError("per_example dropout cannot broadcast over the batch dim 0")
            pos = example_positions(n, self.axis_name) if index is None else jnp.asarray(index)
            keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(rng, pos)
            mask = jax.vmap(lambda k: jax.random.bernoulli(k, keep, shape[1:]))(keys)
        elif axis_bound(self.axis_name) and shape[0] != 1:
            d = num_shards(self.axis_name)
            full = jax.random.bernoulli(rng, keep, [d * n] + shape[1:])
            start = lax.axis_index(self.axis_name) * n
            mask = lax.dynamic_slice_in_dim(full, start, n, axis=0)
        else:
            mask = jax.random.bernoulli(rng, keep, shape)
        mask = jnp.broadcast_to(mask, inputs.shape)
        return lax.select(mask, inputs / keep, jnp.zeros_like(inputs))
