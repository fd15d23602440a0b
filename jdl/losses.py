"""Losses. Each returns the (optionally masked) mean over the batch of a per-example loss.

- ``cross_entropy(logits, labels)``: -log softmax(logits)[label] (integer labels).
- ``quadratic_error(y, d)``: the lecture's loss(Y_m, D_m) = ||Y_m - D_m||^2, summed over outputs;
  integer class labels are one-hot encoded, so the lecture's classifier with linear outputs is
  ``quadratic_error(logits, labels)``; the autoencoders' squared reconstruction error
  (``jdl.ae.losses.squared_error``) is this same function.
- ``mean_absolute_error(y, d)``: sum_k |y_k - d_k|, for regression targets in their own unit.

``mask`` (shape (batch,), 0 or 1) drops padded examples: mean = sum(mask * l) / sum(mask).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


def masked_mean(per_example, mask=None):
    """Mean over the batch of a per-example quantity (shape (batch,)); with ``mask`` (0 or 1
    per example) sum(mask * l) / max(sum(mask), 1), so padded examples count for nothing and an
    all-padding batch gives 0. Every loss and metric of jdl (here, jdl.ae, jdl.rbm) uses it."""
    if mask is None:
        return jnp.mean(per_example)
    mask = mask.astype(per_example.dtype)
    return jnp.sum(per_example * mask) / jnp.maximum(jnp.sum(mask), 1.0)


_masked_mean = masked_mean  # the old private name, until jdl/ae/objective.py imports masked_mean


def cross_entropy(logits, labels, mask=None):
    per = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    return masked_mean(per, mask)


def quadratic_error_per_example(outputs, targets):
    """||y_n - d_n||^2 = sum_k (y_nk - d_nk)^2 for each example n (all axes after the first
    summed); shapes (N, ...) -> (N,). Integer ``targets`` with one axis fewer than ``outputs``
    are class labels, one-hot encoded; other targets are cast to the outputs' dtype."""
    targets = jnp.asarray(targets)
    if jnp.issubdtype(targets.dtype, jnp.integer) and targets.ndim == outputs.ndim - 1:
        targets = jax.nn.one_hot(targets, outputs.shape[-1], dtype=outputs.dtype)
    n = outputs.shape[0]
    diff = outputs.reshape(n, -1) - targets.astype(outputs.dtype).reshape(n, -1)
    return jnp.sum(jnp.square(diff), axis=-1)


def quadratic_error(outputs, targets, mask=None):
    """The lecture's loss(Y_m, D_m) = ||Y_m - D_m||^2, averaged over the (unmasked) examples
    (:func:`quadratic_error_per_example`); also the autoencoder's reconstruction error
    sum_i (z_i - x_i)^2 (``jdl.ae.losses.squared_error``)."""
    return masked_mean(quadratic_error_per_example(outputs, targets), mask)


def mean_absolute_error(outputs, targets, mask=None):
    """mean over examples of sum_k |outputs_k - targets_k| (for one output: the mean absolute
    error in the target's unit)."""
    per = jnp.sum(jnp.abs(outputs - targets).reshape(outputs.shape[0], -1), axis=-1)
    return masked_mean(per, mask)


def accuracy(logits, labels, mask=None):
    correct = (jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32)
    return masked_mean(correct, mask)


LOSSES = {"cross_entropy": cross_entropy, "quadratic": quadratic_error}


def get_loss(name_or_fn):
    if callable(name_or_fn):
        return name_or_fn
    try:
        return LOSSES[name_or_fn]
    except KeyError:
        raise ValueError(f"unknown loss {name_or_fn!r}; known: {sorted(LOSSES)}") from None
