"""Sparsity penalties on an autoencoder's code (the lecture's "sparse autoencoders").

KL sparsity (A. Ng, "Sparse autoencoder", CS294A lecture notes, 2011, section 2.3): with code
units h_j in (0, 1) (sigmoid), their average activation over the m examples of a batch

    rho_hat_j = (1/m) sum_k h_j(x_k)

is pushed towards a small target rho by

    P_KL = sum_j KL(rho || rho_hat_j)
         = sum_j [ rho log(rho / rho_hat_j) + (1 - rho) log((1 - rho) / (1 - rho_hat_j)) ],

which is 0 iff rho_hat_j = rho and whose derivative is
dP/d rho_hat_j = -rho / rho_hat_j + (1 - rho) / (1 - rho_hat_j) (Ng's back-propagated term).
Ng computes rho_hat over the whole training set; here it is the batch's average (the usual
stochastic-gradient form). rho_hat is clipped to [eps, 1 - eps] so the penalty stays finite.

L1 sparsity (Olshausen & Field 1996; Goodfellow, Bengio & Courville 2016, "Deep Learning",
section 14.2.1): the mean over examples of sum_j |h_j|, for codes of any range.
"""
from __future__ import annotations

import numbers

import jax.numpy as jnp

from jdl.losses import masked_mean


def mean_activation(h, mask=None):
    """rho_hat_j: the (masked) mean of each code unit over the examples; (N, k) -> (k,)."""
    h = jnp.asarray(h)
    h = jnp.reshape(h, (h.shape[0], -1))
    if mask is None:
        return jnp.mean(h, axis=0)
    m = jnp.asarray(mask).astype(h.dtype)[:, None]
    return jnp.sum(h * m, axis=0) / jnp.maximum(jnp.sum(m), 1.0)


def kl_divergence_bernoulli(rho, rho_hat, eps: float = 1e-6):
    """sum_j KL(Bernoulli(rho) || Bernoulli(rho_hat_j)), rho a scalar in (0, 1)."""
    rho_hat = jnp.clip(jnp.asarray(rho_hat), eps, 1.0 - eps)
    return jnp.sum(rho * jnp.log(rho / rho_hat)
                   + (1.0 - rho) * jnp.log((1.0 - rho) / (1.0 - rho_hat)))


def kl_sparsity(h, rho: float, mask=None, eps: float = 1e-6):
    """Ng's penalty sum_j KL(rho || rho_hat_j) for a batch of codes h in (0, 1), (N, k)."""
    if isinstance(rho, numbers.Real) and not 0.0 < rho < 1.0:
        raise ValueError(f"sparsity target rho must be in (0, 1), got {rho}")
    return kl_divergence_bernoulli(rho, mean_activation(h, mask), eps)


def l1_sparsity(h, mask=None):
    """Mean over examples of sum_j |h_j|."""
    h = jnp.asarray(h)
    return masked_mean(jnp.sum(jnp.abs(jnp.reshape(h, (h.shape[0], -1))), axis=-1), mask)
