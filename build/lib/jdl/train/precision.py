"""Mixed-precision training for any gradient function (Micikevicius et al. 2018, 'Mixed precision
training', ICLR).

The optimiser keeps float32 *master weights*; each step computes in a low-precision dtype:

    params_c = cast(params, compute_dtype)          # float leaves only
    batch_c  = cast(batch, compute_dtype)           # float leaves only (labels stay integer)
    g_c      = grad_fn(params_c, model_state, batch_c, rng)
    grads    = cast(g_c, float32) / loss_scale      # back to the master weights' dtype

so ``tx.update`` and ``params + updates`` run in float32, and small updates are not rounded away
in a 8-bit mantissa. bfloat16 has float32's exponent range and needs no loss scaling. float16
does: gradients of small activations underflow, so the loss is multiplied by a constant S before
differentiation and the gradient divided by S after (static loss scaling). ``scale_loss(loss, S)``
does the first half without changing the loss value that is reported: its backward pass
multiplies the cotangent by S. ``mixed_precision(..., loss_scale=S)`` does the second half; it
must only be given a grad_fn whose gradients carry that factor. ``mixed_precision_backprop``
builds both halves together and computes the loss in float32 on upcast outputs (the paper's
advice: reductions in float32). A non-finite gradient (an S too large) is caught by the train
step's NaN guard; dynamic loss scaling is not implemented.

Model state (e.g. batch statistics) is passed as is and the new one is cast back to the dtypes it
came in, so a TrainState keeps its dtypes from step to step.

Memory: rematerialisation is a property of the model, not of the grad_fn (checkpointing a whole
loss saves nothing, since the backward pass recomputes the forward pass whole). Wrap the blocks:
``flax.linen.remat(Block)`` or ``jax.checkpoint(f, policy=...)``; jdl's ResNet has ``remat=True``.
A flax module's own ``dtype`` field (e.g. ``ResNet50(dtype=jnp.bfloat16)``) is the other route to
bfloat16 compute with float32 parameters, and keeps batch-norm statistics in float32.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from jdl.losses import get_loss
from jdl.train.backprop import backprop, classification_metrics


def _is_float(x) -> bool:
    return jnp.issubdtype(jnp.asarray(x).dtype, jnp.floating)


def cast_floating(tree, dtype):
    """Cast every floating leaf of ``tree`` to ``dtype``; other leaves unchanged."""
    return jax.tree.map(lambda x: x.astype(dtype) if _is_float(x) else x, tree)


def _cast_like(new, old):
    """Cast ``new``'s floating leaves to the dtypes of ``old``'s, when the structures match."""
    if jax.tree.structure(new) != jax.tree.structure(old):
        return new
    return jax.tree.map(lambda n, o: n.astype(o.dtype) if _is_float(n) and _is_float(o) else n,
                        new, old)


def scale_loss(loss="cross_entropy", scale: float = 1.0) -> Callable:
    """A loss with the same value as ``loss`` whose gradient is ``scale`` times larger.

    Static loss scaling for float16 training: differentiate this, then divide the gradients by
    ``scale`` (``mixed_precision(grad_fn, loss_scale=scale)``)."""
    loss_fn = get_loss(loss)

    @jax.custom_vjp
    def scaled(v):
        return v

    scaled.defvjp(lambda v: (v, None), lambda _, g: (g * jnp.asarray(scale, g.dtype),))

    def fn(outputs, targets, mask=None):
        return scaled(loss_fn(outputs, targets, mask))
    return fn


def mixed_precision(grad_fn: Callable, compute_dtype=jnp.bfloat16, loss_scale: float | None = None,
                    cast_batch: bool = True) -> Callable:
    """Wrap ``grad_fn(params, model_state, batch, rng)`` to compute in ``compute_dtype``.

    Floating params (and batch leaves, with ``cast_batch``) are cast to ``compute_dtype``; the
    gradients are cast to float32, divided by ``loss_scale`` if given (see :func:`scale_loss`),
    and returned in each master parameter's dtype; the metrics are returned in float32."""
    if loss_scale is not None and not loss_scale > 0:
        raise ValueError(f"loss_scale must be > 0, got {loss_scale}")

    def wrapped(params, model_state, batch, rng):
        p = cast_floating(params, compute_dtype)
        b = cast_floating(batch, compute_dtype) if cast_batch else batch
        grads, new_state, metrics = grad_fn(p, model_state, b, rng)
        grads = cast_floating(grads, jnp.float32)
        if loss_scale is not None:
            grads = jax.tree.map(lambda g: g / jnp.asarray(loss_scale, g.dtype), grads)
        grads = _cast_like(grads, params)
        return grads, _cast_like(new_state, model_state), cast_floating(metrics, jnp.float32)

    return wrapped


def mixed_precision_backprop(model, loss="cross_entropy", compute_dtype=jnp.bfloat16,
                             loss_scale: float | None = None,
                             metrics: Callable = classification_metrics, **kwargs) -> Callable:
    """``backprop(model, loss)`` in mixed precision: compute in ``compute_dtype``, the loss in
    float32 on upcast outputs, float32 gradients; ``loss_scale`` (for float16) applied to the
    loss and divided out of the gradients."""
    loss_fn = get_loss(loss)

    def f32_loss(outputs, targets, mask=None):
        return loss_fn(outputs.astype(jnp.float32), targets, mask)

    inner = scale_loss(f32_loss, loss_scale) if loss_scale is not None else f32_loss
    return mixed_precision(backprop(model, loss=inner, metrics=metrics, **kwargs), compute_dtype,
                           loss_scale=loss_scale)
