"""The lecture's regularised cost K = sum_m loss(Y_m, D_m) + beta * sum_ij |W_ij|^p ('weight decay').

``weight_decay(beta, p)`` is an optax transformation that adds the penalty's gradient to the
incoming gradient:  g <- g + beta * p * |W|^(p-1) * sign(W),  i.e.  g + 2 beta W  for p = 2 (L2)
and  g + beta sign(W)  for p = 1 (L1, Tibshirani 1996). Note the convention: optax's and PyTorch's
``weight_decay=wd`` adds wd * W, which is the p = 2 penalty with beta = wd / 2.

The penalty applies to weight matrices and convolution kernels only: ``mask`` defaults to
leaves with ndim >= 2, which keeps it off biases and normalisation scales (batch statistics are
not parameters, so they never see it). ``start_step`` switches it on after some steps (the
lecture: 'use L1 or L2 regularization (after some epochs)').
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax


def kernels_only(params) -> Any:
    """Mask: True for weight matrices / kernels (ndim >= 2), False for biases and scales."""
    return jax.tree.map(lambda x: jnp.ndim(x) >= 2, params)


class WeightDecayState(NamedTuple):
    count: jax.Array


def weight_decay(beta: float, p: int = 2, start_step: int = 0,
                 mask: Callable | Any | None = kernels_only) -> optax.GradientTransformation:
    """Add d/dW [beta * sum |W|^p] to the gradient (p in {1, 2}), from step ``start_step`` on."""
    if beta < 0:
        raise ValueError(f"weight decay beta must be >= 0, got {beta}")
    if p not in (1, 2):
        raise ValueError(f"weight decay p must be 1 (L1) or 2 (L2), got {p}")
    if start_step < 0:
        raise ValueError(f"start_step must be >= 0, got {start_step}")

    def init_fn(params):
        del params
        return WeightDecayState(count=jnp.zeros([], jnp.int32))

    def update_fn(updates, state, params):
        if params is None:
            raise ValueError("weight_decay needs params: call tx.update(grads, state, params)")
        on = (state.count >= start_step).astype(jnp.float32)

        def add(g, w):
            pen = 2.0 * w if p == 2 else jnp.sign(w)
            return g + (beta * on).astype(g.dtype) * pen.astype(g.dtype)

        updates = jax.tree.map(add, updates, params)
        return updates, WeightDecayState(count=optax.safe_increment(state.count))

    tx = optax.GradientTransformation(init_fn, update_fn)
    if mask is not None:
        tx = optax.masked(tx, mask)
    return tx
