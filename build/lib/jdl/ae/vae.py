"""Variational autoencoders (Kingma & Welling 2014, "Auto-encoding variational Bayes", ICLR;
Rezende, Mohamed & Wierstra 2014): the lecture's "stochastic autoencoders" made generative.

Model: p(z) = N(0, I), p(x | z) a decoder (Bernoulli logits or Gaussian mean); approximate
posterior q(z | x) = N(mu(x), diag sigma^2(x)), sigma^2 = exp(log_var). The evidence lower
bound on log p(x),

    ELBO(x) = E_{q(z|x)}[log p(x | z)] - KL(q(z | x) || p(z))  <=  log p(x),

(the gap is KL(q(z | x) || p(z | x)) >= 0) is maximised jointly over encoder and decoder. The
expectation is estimated with the reparameterisation z = mu + sigma * eps, eps ~ N(0, I), so
that its gradient passes through the sample; the KL term has the closed form (Kingma & Welling
2014, appendix B)

    KL(N(mu, diag sigma^2) || N(0, I)) = -1/2 sum_j (1 + log sigma_j^2 - mu_j^2 - sigma_j^2).

Log-likelihoods, summed over the D components of x:

    Bernoulli:  log p(x | z) = sum_i [x_i a_i - softplus(a_i)],        a = decoder logits,
    Gaussian:   log p(x | z) = -1/2 sum_i [log(2 pi s^2) + (x_i - m_i)^2 / s^2],  m = mean.

:func:`importance_weighted_bound` is the K-sample bound of Burda, Grosse & Salakhutdinov 2016
(ICLR), log (1/K) sum_k p(x, z_k) / q(z_k | x) <= log p(x), which tightens as K grows (K = 1
is an unbiased estimate of the ELBO) and serves as a test log-likelihood estimate.
:func:`generate` samples new data: z ~ N(0, I), x ~ p(x | z).
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from jdl.nn.autoencoders import LIKELIHOODS

_LOG_2PI = math.log(2.0 * math.pi)


def check_likelihood(likelihood: str) -> str:
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {likelihood!r}")
    return likelihood


def gaussian_kl(mu, log_var):
    """KL(N(mu, diag exp(log_var)) || N(0, I)), summed over the last axis."""
    return -0.5 * jnp.sum(1.0 + log_var - jnp.square(mu) - jnp.exp(log_var), axis=-1)


def reparameterize(rng, mu, log_var, n_samples: int | None = None):
    """z = mu + exp(log_var / 2) * eps, eps ~ N(0, I); shape mu.shape, or (n_samples,) +
    mu.shape with ``n_samples``."""
    shape = jnp.shape(mu) if n_samples is None else (int(n_samples),) + jnp.shape(mu)
    eps = jax.random.normal(rng, shape, jnp.result_type(mu))
    return mu + jnp.exp(0.5 * log_var) * eps


def gaussian_log_density(z, mu, log_var):
    """log N(z; mu, diag exp(log_var)), summed over the last axis."""
    return -0.5 * jnp.sum(_LOG_2PI + log_var + jnp.square(z - mu) * jnp.exp(-log_var), axis=-1)


def standard_normal_log_density(z):
    """log N(z; 0, I), summed over the last axis."""
    return -0.5 * jnp.sum(_LOG_2PI + jnp.square(z), axis=-1)


def bernoulli_log_likelihood(logits, x):
    """sum_i [x_i a_i - softplus(a_i)] over the last axis (x broadcast against the logits)."""
    return jnp.sum(x * logits - jax.nn.softplus(logits), axis=-1)


def gaussian_log_likelihood(mean, x, variance: float = 1.0):
    """-1/2 sum_i [log(2 pi s^2) + (x_i - m_i)^2 / s^2] over the last axis, s^2 = variance."""
    variance = jnp.asarray(variance, jnp.result_type(mean))
    return -0.5 * jnp.sum(_LOG_2PI + jnp.log(variance) + jnp.square(x - mean) / variance,
                          axis=-1)


def log_likelihood(output, x, likelihood: str = "bernoulli", output_variance: float = 1.0):
    """log p(x | z) from the decoder's output (logits or mean), over the last axis."""
    if check_likelihood(likelihood) == "bernoulli":
        return bernoulli_log_likelihood(output, x)
    return gaussian_log_likelihood(output, x, output_variance)


def decoder_mean(output, likelihood: str = "bernoulli"):
    """E[x | z]: sigmoid(logits) for Bernoulli, the mean itself for Gaussian."""
    return jax.nn.sigmoid(output) if check_likelihood(likelihood) == "bernoulli" else output


def elbo(x, output, mu, log_var, likelihood: str = "bernoulli", output_variance: float = 1.0,
         kl_weight: float = 1.0):
    """Per-example ELBO and its two terms: (elbo, expected log-likelihood, KL), each (N,).

    ``x`` (N, ...) is flattened to (N, D); ``output`` is the decoder's output for reparameterised
    codes, (N, D) or (S, N, D) for S samples per example (the expectation is their average);
    ``mu``, ``log_var`` (N, k). ``kl_weight`` beta gives E log p(x|z) - beta KL (beta-VAE,
    Higgins et al. 2017); beta = 1 is the ELBO."""
    x = jnp.asarray(x)
    x = jnp.reshape(x, (x.shape[0], -1)).astype(jnp.result_type(output))
    ll = log_likelihood(output, x, likelihood, output_variance)
    ll = jnp.reshape(ll, (-1, x.shape[0])).mean(axis=0)
    kl = gaussian_kl(mu, log_var)
    return ll - kl_weight * kl, ll, kl


def importance_weighted_bound(model, params, x, rng, n_samples: int):
    """Burda et al.'s bound log (1/K) sum_{k=1..K} p(x | z_k) p(z_k) / q(z_k | x), z_k ~ q(z|x),
    per example (N,), for a ``jdl.nn.VariationalAutoencoder`` and its params."""
    variables = {"params": params}
    x = jnp.asarray(x)
    mu, log_var = model.apply(variables, x, method="encode")
    z = reparameterize(rng, mu, log_var, n_samples)                   # (K, N, k)
    out = model.apply(variables, z, method="decode")                  # (K, N, D)
    flat = jnp.reshape(x, (x.shape[0], -1)).astype(out.dtype)
    log_w = (log_likelihood(out, flat, model.likelihood, model.output_variance)
             + standard_normal_log_density(z) - gaussian_log_density(z, mu, log_var))
    return jax.scipy.special.logsumexp(log_w, axis=0) - math.log(n_samples)


def generate(model, params, rng, n_samples: int, sample: bool = False):
    """New data from a ``VariationalAutoencoder``: z ~ N(0, I), then E[x | z] (sigmoid of the
    logits, or the Gaussian mean), or with ``sample`` a draw x ~ p(x | z). Shape (n, D)."""
    k_z, k_x = jax.random.split(rng)
    dtype = jax.tree.leaves(params)[0].dtype
    z = jax.random.normal(k_z, (int(n_samples), int(model.latent)), dtype)
    out = model.apply({"params": params}, z, method="decode")
    mean = decoder_mean(out, model.likelihood)
    if not sample:
        return mean
    if model.likelihood == "bernoulli":
        return jax.random.bernoulli(k_x, mean).astype(mean.dtype)
    return mean + math.sqrt(model.output_variance) * jax.random.normal(k_x, mean.shape,
                                                                        mean.dtype)
