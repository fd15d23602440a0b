"""Conditional distributions of an RBM: the units of one layer are independent given the other
layer (the "restricted" in RBM), so

    p(h_j = 1 | v) = sigmoid(c_j + (v W)_j)
    p(v_i = 1 | h) = sigmoid(b_i + (W h)_i)              (Bernoulli visible units)
    p(v | h)       = N(v; b + W h, I)                    (Gaussian visible units, unit variance)

(Hinton 2002; Hinton 2010, "A practical guide to training restricted Boltzmann machines",
sections 2 and 13.2). ``p_v_given_h`` returns the mean of the visible units: the probabilities
for Bernoulli units, b + W h for Gaussian ones. Sampling takes an explicit PRNG key and draws
independent numbers for every element of a batch.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from jdl.rbm.energy import check_visible, hidden_input, visible_input


def bernoulli(rng, p):
    """Binary sample with P(1) = p, in p's floating dtype (so it can feed a matmul)."""
    return (jax.random.uniform(rng, jnp.shape(p), jnp.result_type(p)) < p).astype(
        jnp.result_type(p))


def p_h_given_v(params, v):
    """p(h_j = 1 | v) = sigmoid(c_j + (v W)_j), for either kind of visible unit."""
    return jax.nn.sigmoid(hidden_input(params, v))


def p_v_given_h(params, h, visible: str = "bernoulli"):
    """Mean of v given h: sigmoid(b + W h) for Bernoulli, b + W h for Gaussian visible units."""
    a = visible_input(params, h)
    return a if check_visible(visible) == "gaussian" else jax.nn.sigmoid(a)


def sample_visible_from_mean(rng, mean, visible: str = "bernoulli"):
    """Draw v from its conditional given its mean: Bernoulli(mean) or N(mean, I)."""
    if check_visible(visible) == "gaussian":
        return mean + jax.random.normal(rng, jnp.shape(mean), jnp.result_type(mean))
    return bernoulli(rng, mean)


def sample_h(params, v, rng):
    """h ~ p(h | v): independent Bernoulli(sigmoid(c + vW)) hidden units."""
    return bernoulli(rng, p_h_given_v(params, v))


def sample_v(params, h, rng, visible: str = "bernoulli"):
    """v ~ p(v | h): Bernoulli(sigmoid(b + W h)), or N(b + W h, I) for Gaussian visible units."""
    return sample_visible_from_mean(rng, p_v_given_h(params, h, visible), visible)
