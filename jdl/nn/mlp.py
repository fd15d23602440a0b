"""Multi-layer perceptron: O = W_L f(... f(W_1 x + b_1) ...) + b_L, dropout after each hidden layer."""
from __future__ import annotations

from typing import Any, Callable, Sequence

import flax.linen as nn
import jax.numpy as jnp

from jdl.nn.activations import get_activation
from jdl.nn.dropout import Dropout
from jdl.nn.initializers import DEFAULT_KERNEL_INIT
from jdl.nn.layers import NamedLayers
from jdl.nn.validate import check_rate


class MLP(NamedLayers, nn.Module):
    """Fully connected net. Inputs of any shape are flattened per example; returns logits.

    Attributes: hidden (sizes of the hidden layers), num_outputs, activation (a lecture name or a
    callable), dropout_rate (Srivastava et al. 2014; applied after each hidden layer in training),
    kernel_init (default lecun uniform, Var W = 1/fan_in), per_example_dropout (one dropout key
    per example, see jdl.nn.dropout; the default draws flax's batch mask, split-invariant too),
    output_layer (cut point, jdl.nn.layers: 'Dense_0' ... 'Dense_{L-1}' are the hidden layers
    after their activation (before dropout), 'Dense_{L}' the logits; see layer_names()).
    """
    hidden: Sequence[int] = (256,)
    num_outputs: int = 10
    activation: Any = "relu"
    dropout_rate: float = 0.0
    kernel_init: Callable = DEFAULT_KERNEL_INIT
    per_example_dropout: bool = False
    output_layer: str | None = None

    @nn.nowrap
    def layer_names(self) -> tuple[str, ...]:
        return tuple(f"Dense_{i}" for i in range(len(self.hidden) + 1))

    def __post_init__(self):
        check_rate("dropout_rate", self.dropout_rate)
        if self.num_outputs <= 0 or any(int(h) <= 0 for h in self.hidden):
            raise ValueError(f"layer sizes must be positive, got hidden={self.hidden}, "
                             f"num_outputs={self.num_outputs}")
        super().__post_init__()

    @nn.compact
    def __call__(self, x, train: bool = False):
        act = get_activation(self.activation)
        x = jnp.reshape(x, (x.shape[0], -1))
        for i, h in enumerate(self.hidden):
            x = act(nn.Dense(h, kernel_init=self.kernel_init)(x))
            if self.reached(f"Dense_{i}"):
                return x
            if self.dropout_rate > 0:
                x = Dropout(self.dropout_rate, per_example=self.per_example_dropout)(
                    x, deterministic=not train)
        return nn.Dense(self.num_outputs, kernel_init=self.kernel_init)(x)
