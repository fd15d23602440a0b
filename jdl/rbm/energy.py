"""Energy and free energy of a restricted Boltzmann machine (RBM).

An RBM is a pytree ``params = {'W': (n_visible, n_hidden), 'b': (n_visible,), 'c': (n_hidden,)}``
(``b`` the visible biases, the lecture's *a*; ``c`` the hidden biases, the lecture's *b*) defining

    p(v, h) = exp(-E(v, h)) / Z,        Z = sum_{v,h} exp(-E(v, h)),

with no connections inside a layer (Smolensky 1986; Hinton 2002). Two kinds of visible units:

Bernoulli-Bernoulli (binary v and h):

    E(v, h) = - v.b - h.c - v W h
    F(v)    = -log sum_h exp(-E(v, h)) = - v.b - sum_j softplus(c_j + (v W)_j)

Gaussian-Bernoulli (real v with unit variance, binary h; Hinton & Salakhutdinov 2006, Hinton's
"practical guide" 2010, section 13.2, with sigma_i = 1 -- standardise the data first):

    E(v, h) = ||v - b||^2 / 2 - h.c - v W h
    F(v)    = ||v - b||^2 / 2 - sum_j softplus(c_j + (v W)_j)

so that p(v) = exp(-F(v)) / Z. Every function takes one configuration (``v`` of shape
(n_visible,)) or any leading batch shape (..., n_visible) and returns one value per configuration.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from jdl.train.guards import DataError

VISIBLE_UNITS = ("bernoulli", "gaussian")


def check_visible(visible: str) -> str:
    """Validate the kind of visible units ('bernoulli' or 'gaussian')."""
    if visible not in VISIBLE_UNITS:
        raise ValueError(f"visible must be one of {VISIBLE_UNITS}, got {visible!r}")
    return visible


def check_bernoulli_data(v, name: str, binary: bool = False) -> None:
    """Refuse data that Bernoulli visible units cannot take: values outside [0, 1] (training
    and free energies accept probabilities, the "mean-field" data of Hinton's practical guide,
    section 3.2), or with ``binary`` anything but 0 and 1 (a likelihood p(v) of a Bernoulli RBM
    is defined on binary vectors only). The DataError names ``name``, how many values are
    wrong, their range and what to do. Values that are being traced (under jit) are not
    checked."""
    if isinstance(v, jax.core.Tracer):
        return
    a = np.asarray(v)
    bad = ~((a == 0) | (a == 1)) if binary else ~((a >= 0) & (a <= 1))
    count = int(np.sum(bad))
    if count:
        want = "binary values (0 or 1)" if binary else "values in [0, 1]"
        fix = ("binarise it (jdl.data.binarize)" if binary else
               "scale it to [0, 1] (e.g. pixels / 255) or binarise it (jdl.data.binarize)")
        raise DataError(f"{name}: Bernoulli visible units take {want}, got {count} of {a.size} "
                        f"values that are not, range [{np.nanmin(a):g}, {np.nanmax(a):g}]; {fix}, "
                        f"or use visible='gaussian' for standardised real-valued data")


def init_params(rng, n_visible: int, n_hidden: int, scale: float = 0.01, visible_bias=None,
                dtype=jnp.float32) -> dict:
    """Fresh RBM parameters: W ~ N(0, scale^2), hidden biases c = 0, visible biases b = 0 or
    ``visible_bias`` (Hinton 2010, section 8 recommends log(p_i / (1 - p_i)) with p_i the fraction
    of training vectors where unit i is on: see :func:`base_rate_bias`)."""
    if n_visible <= 0 or n_hidden <= 0:
        raise ValueError(f"need positive layer sizes, got n_visible={n_visible}, "
                         f"n_hidden={n_hidden}")
    W = scale * jax.random.normal(rng, (n_visible, n_hidden), dtype)
    if visible_bias is None:
        b = jnp.zeros((n_visible,), dtype)
    else:
        b = jnp.broadcast_to(jnp.asarray(visible_bias, dtype), (n_visible,))
    return {"W": W, "b": b, "c": jnp.zeros((n_hidden,), dtype)}


def base_rate_bias(v_data, pseudocount: float = 1.0):
    """Visible biases of the "base-rate" model: b_i = log(p_i / (1 - p_i)), p_i the (smoothed)
    fraction of the N training vectors with unit i on, p_i = (sum_n v_ni + pseudocount) /
    (N + 2 pseudocount). It is the maximum-likelihood RBM with W = 0 (Hinton 2010, section 8) and
    the base model of AIS (Salakhutdinov & Murray 2008, section 4.1)."""
    v_data = jnp.asarray(v_data)
    v_data = v_data.reshape(-1, v_data.shape[-1])
    p = (jnp.sum(v_data, axis=0) + pseudocount) / (v_data.shape[0] + 2 * pseudocount)
    return jnp.log(p) - jnp.log1p(-p)


def layer_sizes(params) -> tuple[int, int]:
    """(n_visible, n_hidden) of an RBM."""
    return params["W"].shape[-2], params["W"].shape[-1]


def along_last_axis(b, x):
    """The vector ``b`` shaped to broadcast along the last axis of ``x`` (leading axes of size
    1): the broadcast of x + b written out, as jnp requires under
    ``jax_numpy_rank_promotion='raise'`` (the test suite's setting)."""
    return jnp.reshape(b, (1,) * (jnp.ndim(x) - jnp.ndim(b)) + jnp.shape(b))


def hidden_input(params, v):
    """Total input to the hidden units, c + v W (shape (..., n_hidden))."""
    pre = v @ params["W"]
    return pre + along_last_axis(params["c"], pre)


def visible_input(params, h):
    """Top-down input to the visible units, b + W h (shape (..., n_visible))."""
    pre = h @ params["W"].T
    return pre + along_last_axis(params["b"], pre)


def energy(params, v, h, visible: str = "bernoulli"):
    """E(v, h): Bernoulli -v.b - h.c - v W h; Gaussian ||v - b||^2/2 - h.c - v W h."""
    check_visible(visible)
    interaction = jnp.sum((v @ params["W"]) * h, axis=-1)
    hidden_term = h @ params["c"]
    if visible == "gaussian":
        visible_term = 0.5 * jnp.sum(jnp.square(v - along_last_axis(params["b"], v)), axis=-1)
    else:
        visible_term = -(v @ params["b"])
    return visible_term - hidden_term - interaction


def free_energy(params, v, visible: str = "bernoulli"):
    """F(v) = -log sum_h exp(-E(v, h)), the hidden units summed out analytically:
    Bernoulli -v.b - sum_j softplus(c_j + (vW)_j); Gaussian ||v-b||^2/2 - sum_j softplus(...).
    Concrete (not traced) Bernoulli ``v`` must lie in [0, 1] (check_bernoulli_data)."""
    if visible == "bernoulli":
        check_bernoulli_data(v, "free_energy v")
    return free_energy_from_input(params, v, hidden_input(params, v), visible)


def free_energy_from_input(params, v, pre, visible: str = "bernoulli"):
    """F(v) given the hidden units' total input ``pre`` = c + vW (already computed, e.g. for
    p(h | v)), saving the matmul."""
    check_visible(visible)
    hidden_term = jnp.sum(jax.nn.softplus(pre), axis=-1)
    if visible == "gaussian":
        visible_term = 0.5 * jnp.sum(jnp.square(v - along_last_axis(params["b"], v)), axis=-1)
    else:
        visible_term = -(v @ params["b"])
    return visible_term - hidden_term


def hidden_free_energy(params, h, visible: str = "bernoulli"):
    """F(h) = -log sum_v exp(-E(v, h)) (for Gaussian visible units, -log of the integral over v),
    the visible units summed out: Bernoulli -h.c - sum_i softplus(b_i + (W h)_i); Gaussian
    -h.c - (||b + W h||^2 - ||b||^2)/2 - (n_visible/2) log(2 pi). Used to enumerate the hidden
    layer when computing the partition function."""
    check_visible(visible)
    a = visible_input(params, h)
    if visible == "gaussian":
        n_visible = params["W"].shape[-2]
        visible_term = (0.5 * (jnp.sum(jnp.square(a), axis=-1)
                               - jnp.sum(jnp.square(params["b"]), axis=-1))
                        + 0.5 * n_visible * math.log(2 * math.pi))
    else:
        visible_term = jnp.sum(jax.nn.softplus(a), axis=-1)
    return -(h @ params["c"]) - visible_term
