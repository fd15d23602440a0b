"""The contractive penalty (Rifai, Vincent, Muller, Glorot & Bengio 2011, "Contractive
auto-encoders: explicit invariance during feature extraction", ICML):

    P_CAE(x) = ||J_f(x)||_F^2 = sum_{i,j} (d h_j(x) / d x_i)^2,

the squared Frobenius norm of the Jacobian of the encoder h = f(x) at each training point,
added to the reconstruction loss with a weight lambda (the lecture's "contractive
autoencoders"): the code is made locally insensitive to the input directions that the
reconstruction term does not need.

- :func:`jacobian_frobenius_sq` / :func:`contractive_penalty` compute it exactly for any
  encoder with JAX: the per-example Jacobian by forward mode (``jax.jacfwd``, d JVPs, cheaper
  when the input dimension d is at most the code size k) or reverse mode (``jax.jacrev``, k
  VJPs, cheaper for a bottleneck code), vectorised over the batch with ``jax.vmap``;
- :func:`sigmoid_contractive_penalty` is Rifai et al.'s closed form for a one-layer sigmoid
  encoder h = sigmoid(x W + c), for which d h_j / d x_i = h_j (1 - h_j) W_ij, so

      ||J_f(x)||_F^2 = sum_j (h_j (1 - h_j))^2 sum_i W_ij^2,

  O(d k) per example, where the exact Jacobian costs d (or k) passes through the encoder.

Penalties are averaged over the examples (masked mean when ``mask`` is given).
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from jdl.losses import masked_mean

MODES = ("auto", "fwd", "rev")


def _jacobian(f: Callable, xi, mode: str):
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if mode == "auto":
        n_out = int(jnp.size(jax.eval_shape(f, xi)))
        mode = "fwd" if jnp.size(xi) <= n_out else "rev"
    return (jax.jacfwd if mode == "fwd" else jax.jacrev)(f)(xi)


def jacobian_frobenius_sq(f: Callable, x, mode: str = "auto"):
    """||J_f(x_n)||_F^2 for each example x_n of ``x`` (shape (N, ...)), where ``f`` maps ONE
    example (shape x.shape[1:]) to its code (any shape). Returns shape (N,)."""
    return jax.vmap(lambda xi: jnp.sum(jnp.square(_jacobian(f, xi, mode))))(jnp.asarray(x))


def contractive_penalty(encode: Callable, x, mask=None, mode: str = "auto"):
    """Mean over the examples of ||J_f(x_n)||_F^2 for a batched encoder ``encode``: (N, ...)
    -> (N, k) that treats examples independently (e.g. ``lambda x: model.apply(variables, x,
    method='encode')``)."""
    x = jnp.asarray(x)
    per = jacobian_frobenius_sq(lambda xi: encode(xi[None])[0], x, mode)
    return masked_mean(per, mask)


def sigmoid_contractive_penalty(kernel, h, mask=None):
    """Closed form for h = sigmoid(x W + c): mean over examples of
    sum_j (h_j (1 - h_j))^2 sum_i W_ij^2, with ``kernel`` W of shape (d, k) and the codes
    ``h`` of shape (N, k)."""
    h = jnp.asarray(h)
    column_sq = jnp.sum(jnp.square(jnp.asarray(kernel, h.dtype)), axis=0)        # sum_i W_ij^2
    per = jnp.sum(jnp.square(h * (1.0 - h)) * column_sq, axis=-1)
    return masked_mean(per, mask)
