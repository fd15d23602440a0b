"""The lecture's neuron activation functions f in O_j = f(W_0j + sum_i W_ij e_i).

All are elementwise, pure and differentiable almost everywhere under ``jax.grad``:

- ``threshold(x)``  = H(x) = 1 if x > 0 else 0 (Heaviside; binary neuron, McCulloch & Pitts 1943)
- ``sign(x)``       = +1 if x > 0, -1 if x < 0, 0 at 0
- ``identity(x)``   = x (linear neuron)
- ``sigmoid(x)``    = 1 / (1 + exp(-x)) (logistic)
- ``tanh(x)``       = (e^x - e^-x) / (e^x + e^-x)
- ``lecun_tanh(x)`` = 1.7159 tanh(2x/3) (LeCun et al. 1998, 'Efficient BackProp', sec. 4.4)
- ``relu(x)``       = max(0, x) (Nair & Hinton 2010)
- ``saturation(x)`` = min(max(x, -1), 1) (saturating linear neuron)
- ``gaussian(x)``   = exp(-x^2) (radial-basis neuron)

The step functions have zero gradient wherever they are differentiable.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp


def threshold(x):
    return (x > 0).astype(jnp.result_type(x, jnp.float32))


def sign(x):
    return jnp.sign(x)


def identity(x):
    return x


def sigmoid(x):
    return jax.nn.sigmoid(x)


def tanh(x):
    return jnp.tanh(x)


def lecun_tanh(x):
    return 1.7159 * jnp.tanh(x * (2.0 / 3.0))


def relu(x):
    return jax.nn.relu(x)


def saturation(x):
    return jnp.clip(x, -1.0, 1.0)


def gaussian(x):
    return jnp.exp(-jnp.square(x))


ACTIVATIONS: dict[str, Callable] = {
    "threshold": threshold, "heaviside": threshold, "sign": sign, "identity": identity,
    "linear": identity, "sigmoid": sigmoid, "logistic": sigmoid, "tanh": tanh,
    "lecun_tanh": lecun_tanh, "relu": relu, "saturation": saturation, "gaussian": gaussian,
}


def get_activation(name_or_fn) -> Callable:
    """An activation by its lecture name (see ACTIVATIONS), or a callable passed through."""
    if callable(name_or_fn):
        return name_or_fn
    try:
        return ACTIVATIONS[name_or_fn]
    except KeyError:
        raise ValueError(f"unknown activation {name_or_fn!r}; known: {sorted(ACTIVATIONS)}") from None
