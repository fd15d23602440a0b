"""Reconstruction losses of autoencoders. Each is summed over the components (pixels) of an
example and averaged over the examples (masked mean when ``mask`` is given, as jdl.losses).

- ``squared_error``: the lecture's  sum_k ||z_k - x_k||^2  per example,

      L_SE(x, z) = sum_i (z_i - x_i)^2,

  which is ``jdl.losses.quadratic_error`` (the same function under the autoencoders' name);

- :func:`binary_cross_entropy`: for binary data or data in [0, 1] with a sigmoid output
  z = sigmoid(a) (Bengio et al. 2007; Vincent et al. 2008, "reconstruction cross-entropy"),

      L_CE(x, a) = - sum_i [x_i log sigmoid(a_i) + (1 - x_i) log(1 - sigmoid(a_i))]
                 =   sum_i [softplus(a_i) - x_i a_i],

  computed from the logits a for stability (log sigmoid(a) = -softplus(-a) never overflows).
  It is -log p(x | z) of independent Bernoulli(z_i) pixels; for non-binary x its minimum
  (at z = x) is the entropy sum_i H(x_i), not 0.

The ``*_per_example`` forms return one value per example (shape (N,)).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from jdl.losses import masked_mean, quadratic_error, quadratic_error_per_example


def _flat(a):
    a = jnp.asarray(a)
    return jnp.reshape(a, (a.shape[0], -1))


# The squared reconstruction error sum_i (z_i - x_i)^2 is the lecture's quadratic error
# ||Y - D||^2 of jdl.losses: one function, named here as the autoencoder literature names it.
squared_error_per_example = quadratic_error_per_example
squared_error = quadratic_error


def binary_cross_entropy_per_example(logits, x):
    """sum_i [softplus(a_i) - x_i a_i] = -log prod_i Bernoulli(x_i; sigmoid(a_i)); (N,)."""
    a, x = _flat(logits), _flat(x)
    return jnp.sum(jax.nn.softplus(a) - x.astype(a.dtype) * a, axis=-1)


def binary_cross_entropy(logits, x, mask=None):
    """Mean over examples of the summed binary cross-entropy, from the output logits."""
    return masked_mean(binary_cross_entropy_per_example(logits, x), mask)


RECONSTRUCTION_LOSSES = {"squared": squared_error, "cross_entropy": binary_cross_entropy}


def check_loss(name: str) -> str:
    if name not in RECONSTRUCTION_LOSSES:
        raise ValueError(f"reconstruction loss must be one of {sorted(RECONSTRUCTION_LOSSES)}, "
                         f"got {name!r}")
    return name
