"""Block Gibbs sampling in an RBM: the layers alternate, each sampled whole from its conditional,

    h_t ~ p(h | v_t),        v_{t+1} ~ p(v | h_t),

a Markov chain whose stationary distribution is the model's p(v, h) (Geman & Geman 1984;
Hinton 2002). The chain is a ``jax.lax.scan`` over split PRNG keys, so it compiles once for any
number of steps, runs under ``jax.jit`` (``n_steps`` static), and ``jax.vmap`` maps it over chains
(``v0`` and ``rng``) or over parameter sets (``params``) alike. ``v0`` may also carry a leading
batch dimension: a batch of chains sharing one key stream still draws independent numbers.

Input completion (the lecture: "set some v_i, then compute h, and generate compatible full
samples"): with a boolean ``mask`` over visible units, those units are held at ``clamped`` (by
default their values in ``v0``) after every step, so the chain samples p(v_free | v_clamped).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from jdl.rbm.conditionals import p_v_given_h, sample_h, sample_visible_from_mean


def _clamp(v, mask, clamped):
    return v if mask is None else jnp.where(mask, clamped, v)


def _step(params, v, rng, visible):
    """One v -> h -> v' step; returns v' and its conditional mean E[v' | h]."""
    k_h, k_v = jax.random.split(rng)
    h = sample_h(params, v, k_h)
    mean = p_v_given_h(params, h, visible)
    return sample_visible_from_mean(k_v, mean, visible), mean


def gibbs_step(params, v, rng, visible: str = "bernoulli", mask=None, clamped=None,
               return_mean: bool = False):
    """One block Gibbs step v -> h ~ p(h|v) -> v' ~ p(v|h); units where ``mask`` is true are
    held at ``clamped`` (default: their value in ``v``) before and after the step. With
    ``return_mean``, also return the conditional mean E[v' | h] (the "reconstruction"
    probabilities for binary units)."""
    v = jnp.asarray(v, params["W"].dtype)
    if mask is not None:
        clamped = v if clamped is None else jnp.asarray(clamped, v.dtype)
        v = _clamp(v, mask, clamped)
    v_new, mean = _step(params, v, rng, visible)
    v_new, mean = _clamp(v_new, mask, clamped), _clamp(mean, mask, clamped)
    return (v_new, mean) if return_mean else v_new


def _chain(params, v0, rng, n_steps, visible, mask, clamped, keep_samples):
    v0 = jnp.asarray(v0, params["W"].dtype)
    if mask is not None:
        clamped = v0 if clamped is None else jnp.asarray(clamped, v0.dtype)
        v0 = _clamp(v0, mask, clamped)

    def body(carry, key):
        v, mean = gibbs_step(params, carry[0], key, visible, mask, clamped, return_mean=True)
        return (v, mean), (v if keep_samples else None)

    (v, mean), samples = jax.lax.scan(body, (v0, v0), jax.random.split(rng, n_steps))
    return v, mean, samples


def gibbs_chain(params, v0, rng, n_steps: int, visible: str = "bernoulli", mask=None,
                clamped=None, return_mean: bool = False):
    """Run ``n_steps`` block Gibbs steps from ``v0``; return the last visible state v_n
    (and, with ``return_mean``, also its conditional mean E[v_n | h_{n-1}], which is v0 when
    n_steps = 0). ``mask``/``clamped`` clamp visible units (input completion)."""
    v, mean, _ = _chain(params, v0, rng, n_steps, visible, mask, clamped, keep_samples=False)
    return (v, mean) if return_mean else v


def gibbs_samples(params, v0, rng, n_steps: int, visible: str = "bernoulli", mask=None,
                  clamped=None):
    """Every visible state v_1 .. v_n of a Gibbs chain from ``v0``, stacked on a new leading
    axis (shape (n_steps,) + v0.shape); same keys, hence same states, as :func:`gibbs_chain`."""
    return _chain(params, v0, rng, n_steps, visible, mask, clamped, keep_samples=True)[2]
