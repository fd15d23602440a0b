"""Input corruption for denoising autoencoders (Vincent, Larochelle, Bengio & Manzagol 2008,
"Extracting and composing robust features with denoising autoencoders", ICML; Vincent et al.
2010, "Stacked denoising autoencoders", JMLR 11).

A denoising autoencoder reconstructs the clean input x from a corrupted copy x~ ~ q(x~ | x):

    minimise  E_{x~ ~ q(x~|x)} ||g(f(x~)) - x||^2.

Corruption processes q, each a pure function of an explicit PRNG key (the same key gives the
same corruption; every element of a batch gets independent noise):

- :func:`masking_noise`   x~_i = x_i with probability 1 - p, 0 with probability p
                          (Vincent et al. 2008: a fraction p of the components "destroyed");
- :func:`gaussian_noise`  x~ = x + sigma * eps,  eps ~ N(0, I)  (isotropic additive noise);
- :func:`salt_and_pepper` x~_i = x_i with probability 1 - p, else lo or hi with equal
                          probability (Vincent et al. 2010, section 4.1).

:func:`corrupt` applies a specification ``None | ('mask', p) | ('gaussian', sigma) |
('salt_pepper', p) | callable(rng, x)``, the form ``jdl.ae.autoencoder_grad_fn`` takes;
:func:`clipped` keeps corrupted images in [0, 1]; :func:`expected_squared_error` is the
corruption's mean squared error per entry, E (x~_i - x_i)^2, from its definition.
"""
from __future__ import annotations

import numbers
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

KINDS = ("mask", "gaussian", "salt_pepper")


def _float(x):
    x = jnp.asarray(x)
    return x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.float32)


def masking_noise(rng, x, p: float):
    """Set each component of ``x`` to 0 independently with probability ``p`` (Vincent et al.
    2008). E[number zeroed] = p * x.size; x itself is not rescaled."""
    x = _float(x)
    keep = jax.random.uniform(rng, x.shape) >= p
    return jnp.where(keep, x, jnp.zeros((), x.dtype))


def gaussian_noise(rng, x, sigma: float):
    """x + sigma * eps, eps ~ N(0, I) (additive isotropic Gaussian corruption)."""
    x = _float(x)
    return x + sigma * jax.random.normal(rng, x.shape, x.dtype)


def salt_and_pepper(rng, x, p: float, lo: float = 0.0, hi: float = 1.0):
    """Replace each component with probability ``p`` by ``lo`` or ``hi`` (each with probability
    1/2); keep it otherwise (Vincent et al. 2010, section 4.1)."""
    x = _float(x)
    k_hit, k_val = jax.random.split(rng)
    hit = jax.random.uniform(k_hit, x.shape) < p
    salt = jax.random.bernoulli(k_val, 0.5, x.shape)
    value = jnp.where(salt, jnp.asarray(hi, x.dtype), jnp.asarray(lo, x.dtype))
    return jnp.where(hit, value, x)


def check_corruption(spec) -> None:
    """Refuse a malformed corruption specification at construction time."""
    if spec is None or callable(spec):
        return
    if not (isinstance(spec, (tuple, list)) and len(spec) == 2 and spec[0] in KINDS):
        raise ValueError(f"corruption must be None, a callable(rng, x) or one of "
                         f"('mask', p), ('gaussian', sigma), ('salt_pepper', p); got {spec!r}")
    kind, value = spec
    if not isinstance(value, numbers.Real):       # a traced or array value: not checked
        return
    if kind in ("mask", "salt_pepper") and not 0.0 <= value <= 1.0:
        raise ValueError(f"{kind} probability must be in [0, 1], got {value}")
    if kind == "gaussian" and not value >= 0.0:
        raise ValueError(f"gaussian sigma must be >= 0, got {value}")


def corrupt(rng, x, spec):
    """Apply the corruption ``spec`` (see the module docstring) to ``x`` with key ``rng``."""
    check_corruption(spec)
    if spec is None:
        return _float(x)
    if callable(spec):
        return spec(rng, x)
    kind, value = spec
    fn: Callable = {"mask": masking_noise, "gaussian": gaussian_noise,
                    "salt_pepper": salt_and_pepper}[kind]
    return fn(rng, x, value)


def clipped(spec, lo: float = 0.0, hi: float = 1.0) -> Callable:
    """callable(rng, x): the corruption ``spec`` followed by clipping to [lo, hi], so that
    corrupted images stay images (a no-op for masking and salt-and-pepper noise on data in
    [lo, hi]; it changes Gaussian noise near the bounds)."""
    check_corruption(spec)

    def fn(rng, x):
        return jnp.clip(corrupt(rng, x, spec), lo, hi)

    return fn


def expected_squared_error(x, spec) -> float:
    """E ||x~ - x||^2 / x.size, the mean squared error per entry of the (unclipped) corruption
    of ``x``, from the corruption's definition:

        ('mask', p):        p mean(x^2)                        (x_i -> 0 with probability p)
        ('salt_pepper', p): p mean((x^2 + (1 - x)^2) / 2)      (x_i -> 0 or 1, each p / 2)
        ('gaussian', s):    s^2.

    Salt-and-pepper uses the default bounds lo = 0, hi = 1. Host-side (float64)."""
    check_corruption(spec)
    if spec is None or callable(spec):
        raise ValueError(f"expected_squared_error needs a ('kind', level) corruption, got {spec!r}")
    kind, level = spec
    x = np.asarray(x, np.float64)
    if kind == "mask":
        return float(level) * float(np.mean(x * x))
    if kind == "salt_pepper":
        return float(level) * float(np.mean(0.5 * x * x + 0.5 * (1.0 - x) ** 2))
    return float(level) ** 2
