"""Losses. Each returns the (optionally masked) mean over the batch of a per-example loss.

- ``cross_entropy(logits, labels)``: -log softmax(logits)[label] (integer labels).
- ``quadratic_error(y, d)``: the lecture's loss(Y_m, D_m) = ||Y_m - D_m||^2, summed over outputs;
  integer targets are one-hot encoded, so the lecture's classifier with linear outputs is
  ``quadratic_error(logits, labels)``.
- ``mean_absolute_error(y, d)``: sum_k |y_k - d_k|, for regression targets in their own unit.

``mask`` (shape (batch,), 0 or 1) drops padded examples: mean = sum(mask * l) / sum(mask).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


def _masked_mean(per_example, mask):
    if mask is None:
        return jnp.mean(per_example)
    mask = mask.astype(per_example.dtype)
    return jnp.sum(per_example * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def cross_entropy(logits, labels, mask=None):
    per = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    return _masked_mean(per, mask)


def quadratic_error(outputs, targets, mask=None):
    if jnp.issubdtype(targets.dtype, jnp.integer):
        targets = jax.nn.one_hot(targets, outputs.shape[-1], dtype=outputs.dtype)
    per = jnp.sum(jnp.square(outputs - targets).reshape(outputs.shape[0], -1), axis=-1)
    return _masked_mean(per, mask)


def mean_absolute_error(outputs, targets, mask=None):
    """mean over examples of sum_k |outputs_k - targets_k| (for one output: the mean absolute
    error in the target's unit)."""
    per = jnp.sum(jnp.abs(outputs - targets).reshape(outputs.shape[0], -1), axis=-1)
    return _masked_mean(per, mask)


def accuracy(logits, labels, mask=None):
    correct = (jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32)
    return _masked_mean(correct, mask)


LOSSES = {"cross_entropy": cross_entropy, "quadratic": quadratic_error}


def get_loss(name_or_fn):
    if callable(name_or_fn):
        return name_or_fn
    try:
        return LOSSES[name_or_fn]
    except KeyError:
        raise ValueError(f"unknown loss {name_or_fn!r}; known: {sorted(LOSSES)}") from None
