"""How well an RBM models data: the partition function and the log-likelihood.

    log p(v) = -F(v) - log Z,        Z = sum_v exp(-F(v)) = sum_h exp(-F(h))

- :func:`log_partition`: exact log Z by enumerating the smaller layer (2^n states, n <= ~20),
  the other layer summed out analytically (``free_energy`` / ``hidden_free_energy``).
- :func:`ais_log_partition`: annealed importance sampling (Neal 2001) as Salakhutdinov & Murray
  2008 ("On the quantitative analysis of deep belief networks") use it for RBMs, for models too
  big to enumerate.
- :func:`pseudo_log_likelihood`: Besag's (1975) pseudo-likelihood sum_i log p(v_i | v_-i),
  estimated from one random unit per example as scikit-learn's ``BernoulliRBM.score_samples``
  does, and :func:`exact_pseudo_log_likelihood`, the full sum it estimates.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jdl.rbm.conditionals import bernoulli
from jdl.rbm.energy import (along_last_axis, check_bernoulli_data, check_visible, free_energy,
                             hidden_free_energy, hidden_input, layer_sizes, visible_input)


def _enumerate_logsumexp(term_fn, n: int, dtype, block_size: int):
    """log sum_{s in {0,1}^n} exp(term_fn(s)), in blocks of at most ``block_size`` states."""
    total = 2 ** n
    block = min(total, block_size)
    bits = jnp.arange(n, dtype=jnp.int32)

    def block_lse(start):
        idx = start + jnp.arange(block, dtype=jnp.int32)
        states = ((idx[:, None] >> bits[None, :]) & 1).astype(dtype)
        return jax.nn.logsumexp(term_fn(states))

    starts = jnp.arange(0, total, block, dtype=jnp.int32)
    return jax.nn.logsumexp(jax.lax.map(block_lse, starts))


def log_partition(params, visible: str = "bernoulli", max_units: int = 20,
                  block_size: int = 4096):
    """Exact log Z by enumeration of the smaller layer (the hidden one for Gaussian visible
    units, whose integral is done analytically):

        log Z = logsumexp_h -F(h) = logsumexp_v -F(v).

    Costs 2^n evaluations, n = min(n_visible, n_hidden); refuses n > ``max_units``."""
    check_visible(visible)
    n_visible, n_hidden = layer_sizes(params)
    dtype = params["W"].dtype
    if visible == "gaussian" or n_hidden <= n_visible:
        if n_hidden > max_units:
            raise ValueError(f"exact log Z enumerates 2^{n_hidden} hidden states; more than "
                             f"max_units={max_units}: use ais_log_partition")
        return _enumerate_logsumexp(lambda h: -hidden_free_energy(params, h, visible),
                                    n_hidden, dtype, block_size)
    if n_visible > max_units:
        raise ValueError(f"exact log Z enumerates 2^{n_visible} visible states; more than "
                         f"max_units={max_units}: use ais_log_partition")
    return _enumerate_logsumexp(lambda v: -free_energy(params, v), n_visible, dtype, block_size)


def log_likelihood(params, v, visible: str = "bernoulli", log_z=None):
    """log p(v) = -F(v) - log Z per configuration (exact ``log_partition`` unless ``log_z``
    is given, e.g. an AIS estimate)."""
    v = jnp.asarray(v, params["W"].dtype)
    if log_z is None:
        log_z = log_partition(params, visible)
    return -free_energy(params, v, visible) - log_z


# ---------------------------------------------------------------------------------------------
# Annealed importance sampling


class AISEstimate(NamedTuple):
    """Result of :func:`ais_log_partition`.

    log_z:        log Z_B estimate, log Z_A + log mean_m w_m (unbiased in Z, not in log Z);
    log_z_std:    standard error of log_z, std(w) / (sqrt(M) mean(w)) (delta method);
    log_z_lower:  log(Z^ - 3 sigma^), -inf when Z^ - 3 sigma^ <= 0 (Salakhutdinov & Murray
                  2008 report log Z^ together with log(Z^ -+ 3 sigma^));
    log_z_upper:  log(Z^ + 3 sigma^);
    log_weights:  the M = n_chains importance log-weights log w_m.
    """
    log_z: jax.Array
    log_z_std: jax.Array
    log_z_lower: jax.Array
    log_z_upper: jax.Array
    log_weights: jax.Array


def ais_schedule(n_betas: int = 1000, dtype=jnp.float32):
    """Inverse temperatures 0 = beta_0 < ... < beta_K = 1 spaced as in Salakhutdinov & Murray
    2008 (500 in [0, 0.5], 4000 in [0.5, 0.9], 10000 in [0.9, 1] of 14500), scaled to
    ``n_betas`` values in all."""
    if n_betas < 4:
        raise ValueError(f"n_betas must be at least 4, got {n_betas}")
    n1 = max(1, round((n_betas - 1) * 500 / 14500))
    n2 = max(1, round((n_betas - 1) * 4000 / 14500))
    n3 = max(1, n_betas - 1 - n1 - n2)
    return jnp.concatenate([jnp.linspace(0.0, 0.5, n1, endpoint=False, dtype=dtype),
                            jnp.linspace(0.5, 0.9, n2, endpoint=False, dtype=dtype),
                            jnp.linspace(0.9, 1.0, n3 + 1, dtype=dtype)])


def ais_log_partition(params, rng, n_chains: int = 100, n_betas: int = 1000,
                      visible: str = "bernoulli", base_visible_bias=None, betas=None
                      ) -> AISEstimate:
    """Estimate log Z of an RBM by annealed importance sampling (Neal 2001; Salakhutdinov &
    Murray 2008, section 4).

    The base model A has W = 0, c = 0 and visible biases b_A (``base_visible_bias``: zeros by
    default, or the "base-rate" biases of the data, :func:`jdl.rbm.base_rate_bias`, which S&M
    recommend; for Gaussian visible units b_A is a mean and defaults to b). The intermediate
    distributions interpolate the energies, p_k(v) ∝ p*_k(v) with

        log p*_beta(v) = (1 - beta) v.b_A + beta v.b + sum_j softplus(beta (c_j + (vW)_j))
                         (Gaussian: -(1-beta)||v - b_A||^2/2 - beta ||v - b||^2/2 + ...)

    and T_k is one block Gibbs step leaving p_k invariant: h ~ sigmoid(beta (c + vW)),
    v ~ sigmoid((1 - beta) b_A + beta (b + W h)) (Gaussian: N(., I)). Each of M chains starts
    with an exact sample v_0 of A and accumulates

        log w = sum_{k=1}^{K} log p*_k(v_{k-1}) - log p*_{k-1}(v_{k-1}),    v_k ~ T_k(v_{k-1}),

    so that Z_B / Z_A is estimated by mean_m w_m, with log Z_A = sum_i softplus(b_A,i)
    + n_hidden log 2 (Gaussian: (n_visible/2) log 2 pi + n_hidden log 2). The betas are
    ``betas`` if given, else :func:`ais_schedule` (``n_betas``). For a spread over independent
    runs, ``jax.vmap`` this function over keys.
    """
    check_visible(visible)
    n_visible, n_hidden = layer_sizes(params)
    dtype = params["W"].dtype
    b = params["b"]
    if base_visible_bias is None:
        b_a = b if visible == "gaussian" else jnp.zeros_like(b)
    else:
        b_a = jnp.broadcast_to(jnp.asarray(base_visible_bias, dtype), b.shape)
    betas = ais_schedule(n_betas, dtype) if betas is None else jnp.asarray(betas, dtype)

    def log_p_star(v, pre, beta):       # pre = c + vW, shared by both temperatures
        hidden = jnp.sum(jax.nn.softplus(beta * pre), axis=-1)
        if visible == "gaussian":
            off_a, off_b = v - along_last_axis(b_a, v), v - along_last_axis(b, v)
            vis = -0.5 * ((1 - beta) * jnp.sum(jnp.square(off_a), axis=-1)
                          + beta * jnp.sum(jnp.square(off_b), axis=-1))
        else:
            vis = (1 - beta) * (v @ b_a) + beta * (v @ b)
        return vis + hidden

    def sample_v(key, a):
        if visible == "gaussian":
            return a + jax.random.normal(key, a.shape, dtype)
        return bernoulli(key, jax.nn.sigmoid(a))

    k0, k_run = jax.random.split(rng)
    v = sample_v(k0, jnp.broadcast_to(b_a, (n_chains, n_visible)))

    def body(carry, xs):
        v, log_w = carry
        beta_prev, beta, key = xs
        pre = hidden_input(params, v)
        log_w = log_w + log_p_star(v, pre, beta) - log_p_star(v, pre, beta_prev)
        k_h, k_v = jax.random.split(key)          # T_k: one Gibbs step at temperature beta
        h = bernoulli(k_h, jax.nn.sigmoid(beta * pre))
        top_down = visible_input(params, h)
        v = sample_v(k_v, along_last_axis((1 - beta) * b_a, top_down) + beta * top_down)
        return (v, log_w), None

    keys = jax.random.split(k_run, betas.shape[0] - 1)
    (_, log_w), _ = jax.lax.scan(body, (v, jnp.zeros((n_chains,), dtype)),
                                 (betas[:-1], betas[1:], keys))

    if visible == "gaussian":
        log_z_a = 0.5 * n_visible * math.log(2 * math.pi) + n_hidden * math.log(2.0)
        log_z_a = jnp.asarray(log_z_a, dtype)
    else:
        log_z_a = jnp.sum(jax.nn.softplus(b_a)) + n_hidden * math.log(2.0)
    log_mean_w = jax.nn.logsumexp(log_w) - math.log(n_chains)
    r = jnp.exp(log_w - jnp.max(log_w))           # weights scaled so the largest is 1
    rel_std = jnp.std(r) / (math.sqrt(n_chains) * jnp.mean(r))
    log_z = log_z_a + log_mean_w
    lower = log_z + jnp.log(jnp.maximum(1 - 3 * rel_std, 0))   # -inf when Z^ - 3 sigma^ <= 0
    return AISEstimate(log_z=log_z, log_z_std=rel_std, log_z_lower=lower,
                       log_z_upper=log_z + jnp.log1p(3 * rel_std), log_weights=log_w)


# compiled once per process (per shapes and static arguments), not once per call
_jitted_ais = jax.jit(ais_log_partition, static_argnums=(2, 3, 4))
_summed_free_energy = jax.jit(lambda p, v, visible: jnp.sum(free_energy(p, v, visible)),
                              static_argnums=2)


def ais_log_likelihood(params, v, rng, n_runs: int = 1, n_chains: int = 100,
                       n_betas: int = 14500, visible: str = "bernoulli", base_visible_bias=None,
                       batch_size: int = 1000) -> dict:
    """Average test log-likelihood (1/N) sum_n log p(v_n) = -(1/N) sum_n F(v_n) - log Z, with
    log Z estimated by :func:`ais_log_partition` (Salakhutdinov & Murray 2008, who use
    M = 100 chains and 14,500 temperatures, the defaults here, and the data's base-rate biases
    for the base model: pass ``base_visible_bias=base_rate_bias(v_train)``).

    ``n_runs`` independent AIS runs (keys fold_in(rng, r)) give the spread of the estimate.
    Returns floats: ``log_likelihood`` (with the mean of the runs' log Z), ``mean_free_energy``,
    ``log_z`` (mean over runs), ``log_z_runs`` (list), ``log_z_spread`` (std over runs, 0 for
    one run), ``log_z_std`` (the first run's delta-method standard error) and
    ``log_z_lower`` / ``log_z_upper`` (its log(Z^ -+ 3 sigma^)). Since AIS is unbiased in Z,
    E[log Z^] <= log Z: a log Z too low by d nats makes the log-likelihood too high by d."""
    if n_runs < 1:
        raise ValueError(f"n_runs must be at least 1, got {n_runs}")
    if check_visible(visible) == "bernoulli":
        check_bernoulli_data(v, "ais_log_likelihood v", binary=True)
    x = jnp.asarray(v, params["W"].dtype).reshape(jnp.shape(v)[0], -1)
    total = sum(float(_summed_free_energy(params, x[i:i + batch_size], visible))
                for i in range(0, x.shape[0], batch_size))
    mean_f = total / x.shape[0]
    estimates = [_jitted_ais(params, jax.random.fold_in(rng, r), n_chains, n_betas, visible,
                             base_visible_bias) for r in range(n_runs)]
    runs = [float(e.log_z) for e in estimates]
    log_z = sum(runs) / n_runs
    spread = (sum((r - log_z) ** 2 for r in runs) / (n_runs - 1)) ** 0.5 if n_runs > 1 else 0.0
    return {"log_likelihood": -mean_f - log_z, "mean_free_energy": mean_f, "log_z": log_z,
            "log_z_runs": runs, "log_z_spread": spread,
            "log_z_std": float(estimates[0].log_z_std),
            "log_z_lower": float(estimates[0].log_z_lower),
            "log_z_upper": float(estimates[0].log_z_upper)}


# ---------------------------------------------------------------------------------------------
# Pseudo-likelihood


def pseudo_log_likelihood(params, v, rng=None, flip=None):
    """Stochastic pseudo-log-likelihood of binary ``v`` (Besag 1975), as scikit-learn's
    ``BernoulliRBM.score_samples``: flip one random unit i of each example (``flip`` gives the
    indices, else drawn uniformly with ``rng``), v~ = v with v_i -> 1 - v_i, and return

        n_visible * log sigmoid(F(v~) - F(v)) = n_visible * log p(v_i | v_-i),

    an unbiased estimate of sum_i log p(v_i | v_-i) (:func:`exact_pseudo_log_likelihood`).
    One value per example."""
    v = jnp.asarray(v, params["W"].dtype)
    n_visible = v.shape[-1]
    if flip is None:
        if rng is None:
            raise ValueError("pseudo_log_likelihood needs an rng key or the flip indices")
        flip = jax.random.randint(rng, v.shape[:-1], 0, n_visible)
    onehot = jax.nn.one_hot(flip, n_visible, dtype=v.dtype)
    v_flipped = v + onehot * (1 - 2 * v)
    return n_visible * jax.nn.log_sigmoid(free_energy(params, v_flipped) - free_energy(params, v))


def exact_pseudo_log_likelihood(params, v):
    """Besag's (1975) pseudo-log-likelihood sum_i log p(v_i | v_-i) of binary ``v``, every unit
    flipped in turn: sum_i log sigmoid(F(v with v_i flipped) - F(v)). Costs n_visible free
    energies per example (memory (..., n_visible, n_hidden))."""
    v = jnp.asarray(v, params["W"].dtype)
    s = 1 - 2 * v                                              # +1 turns a unit on, -1 off
    pre = hidden_input(params, v)
    pre = pre[..., None, :]
    pre_flipped = pre + s[..., :, None] * along_last_axis(params["W"], pre)
    f_flipped = (-(v @ params["b"])[..., None] - s * along_last_axis(params["b"], s)
                 - jnp.sum(jax.nn.softplus(pre_flipped), axis=-1))
    delta = f_flipped - free_energy(params, v)[..., None]
    return jnp.sum(jax.nn.log_sigmoid(delta), axis=-1)
