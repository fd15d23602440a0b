"""Brute-force helpers shared by the RBM and DBN tests: every binary state of a tiny RBM
enumerated in float64 numpy, random parameters, bars-and-stripes, and the total-variation
check of samples against an exact distribution."""
from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest


def fast_key(seed):
    """A PRNG key for the sampling-heavy tests. The library takes keys of any implementation;
    on XLA's CPU backend 'unsafe_rbg' programs compile about twice as fast as threefry ones
    (the default), which keeps these files quick. Its draws change under vmap, so the tests of
    batch-split and vmap invariance use threefry."""
    return jax.random.key(seed, impl="unsafe_rbg")


@pytest.fixture(autouse=True)
def strict_dtypes():
    with jax.numpy_dtype_promotion("strict"):
        yield


def all_states(n, dtype=np.float64):
    """All 2^n binary vectors, row s holding the bits of s (big-endian)."""
    return np.array(list(itertools.product([0, 1], repeat=n)), dtype)


def state_index(v):
    """Row of all_states(n) holding binary vector(s) v."""
    v = np.asarray(v).astype(np.int64)
    return v @ (2 ** np.arange(v.shape[-1])[::-1])


def random_params(seed, n_visible, n_hidden, scale=1.0, bias_scale=0.5, dtype=jnp.float32):
    rng = np.random.default_rng(seed)
    return {"W": jnp.asarray(scale * rng.normal(size=(n_visible, n_hidden)), dtype),
            "b": jnp.asarray(bias_scale * rng.normal(size=n_visible), dtype),
            "c": jnp.asarray(bias_scale * rng.normal(size=n_hidden), dtype)}


def joint_table(params):
    """(V, H, -E(v, h)) over every binary configuration, in float64 numpy."""
    W, b, c = (np.asarray(params[k], np.float64) for k in ("W", "b", "c"))
    V, H = all_states(W.shape[0]), all_states(W.shape[1])
    return V, H, (V @ b)[:, None] + (H @ c)[None, :] + V @ W @ H.T


def exact_p_v(params):
    """(V, p(v)) by brute force."""
    V, _, neg_e = joint_table(params)
    log_pv = np.logaddexp.reduce(neg_e, axis=1)
    return V, np.exp(log_pv - np.logaddexp.reduce(log_pv))


def bars_and_stripes(n=4):
    rows = [np.array(bits, np.float32) for bits in itertools.product([0, 1], repeat=n)]
    patterns = [np.tile(r[:, None], (1, n)).ravel() for r in rows]
    patterns += [np.tile(r[None, :], (n, 1)).ravel() for r in rows]
    return np.unique(np.stack(patterns), axis=0)          # 2^(n+1) - 2 distinct patterns


def tv_and_expected(samples, p):
    """Total variation between the empirical distribution of binary ``samples`` (N rows) and
    ``p``, and the TV that sampling noise alone gives with N exact samples:
    E|p^_s - p_s| ~ sqrt(2/pi) sqrt(p_s (1 - p_s) / N), so E[TV] ~ 0.5 sum_s of that."""
    n = samples.shape[0]
    counts = np.bincount(state_index(samples), minlength=len(p))
    tv = 0.5 * np.abs(counts / n - p).sum()
    return tv, 0.5 * np.sqrt(2 / np.pi) * np.sqrt(p * (1 - p) / n).sum()
