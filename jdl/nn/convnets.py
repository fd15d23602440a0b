"""Convolutional networks of the lecture, as Flax linen modules returning logits.

Images are NHWC. Every conv/dense kernel starts lecun-uniform (Var W = 1/fan_in), biases at 0.
Each model can be cut at a named layer (``output_layer``, ``layer_names()``; jdl.nn.layers): a
conv or dense name stops after that layer's nonlinearity, a 'pool'/'S' name after the pooling;
dropout that follows a layer is not applied to its cut output.
"""
from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn
import jax.numpy as jnp

from jdl.nn.activations import get_activation
from jdl.nn.convolution import Conv, avg_pool, max_pool
from jdl.nn.dropout import Dropout
from jdl.nn.initializers import DEFAULT_KERNEL_INIT
from jdl.nn.layers import NamedLayers
from jdl.nn.validate import check_rate
from jdl.parallel.axis import BATCH_AXIS, sync_axis


def _pool(kind: str):
    if kind == "max":
        return max_pool
    if kind == "avg":
        return avg_pool
    raise ValueError(f"pool must be 'max' or 'avg', got {kind!r}")


class LeNet5(NamedLayers, nn.Module):
    """LeNet-5 (LeCun, Bottou, Bengio & Haffner 1998, 'Gradient-based learning applied to
    document recognition', fig. 2).

    28x28 input zero-padded to 32x32 -> C1: 6 conv 5x5 -> S2: 2x2 subsampling -> C3: 16 conv 5x5
    -> S4: 2x2 subsampling -> C5: 120 conv 5x5 (a 400->120 full layer) -> F6: 84 -> 10 outputs.
    Departures from the paper, as in every modern reimplementation: C3 connects to all six S2 maps
    (the paper's sparse table gives 1,516 C3 weights, here 2,416), S2/S4 are plain average (or
    max) pooling without trainable coefficients, and the RBF output layer is a linear layer
    trained with cross-entropy. 61,706 parameters.
    """
    num_classes: int = 10
    activation: Any = "tanh"
    pool: str = "avg"
    kernel_init: Callable = DEFAULT_KERNEL_INIT
    output_layer: str | None = None

    @nn.nowrap
    def layer_names(self) -> tuple[str, ...]:
        return ("C1", "S2", "C3", "S4", "C5", "F6", "output")

    @nn.compact
    def __call__(self, x, train: bool = False):
        act = get_activation(self.activation)
        pool = _pool(self.pool)
        pad = (32 - x.shape[1]) // 2
        if pad > 0:
            x = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
        for conv, sub, f in (("C1", "S2", 6), ("C3", "S4", 16)):
            x = act(Conv(f, (5, 5), padding="VALID", kernel_init=self.kernel_init, name=conv)(x))
            if self.reached(conv):
                return x
            x = pool(x, (2, 2), strides=(2, 2))
            if self.reached(sub):
                return x
        x = act(Conv(120, (5, 5), padding="VALID", kernel_init=self.kernel_init, name="C5")(x))
        if self.reached("C5"):
            return x
        x = x.reshape((x.shape[0], -1))
        x = act(nn.Dense(84, kernel_init=self.kernel_init, name="F6")(x))
        if self.reached("F6"):
            return x
        return nn.Dense(self.num_classes, kernel_init=self.kernel_init, name="output")(x)


class FashionConvNet(NamedLayers, nn.Module):
    """The Fashion-MNIST benchmark convnet (the TensorFlow 'layers' tutorial model listed in
    zalandoresearch/fashion-mnist's benchmark, 0.916): conv 32 5x5 'same' + ReLU, max-pool 2,
    conv 64 5x5 'same' + ReLU, max-pool 2, dense 1024 + ReLU, dropout 0.4, dense 10.
    3,274,634 parameters for 28x28x1 inputs."""
    num_classes: int = 10
    dropout_rate: float = 0.4
    kernel_init: Callable = DEFAULT_KERNEL_INIT
    per_example_dropout: bool = False    # one dropout key per example (jdl.nn.dropout)
    output_layer: str | None = None

    @nn.nowrap
    def layer_names(self) -> tuple[str, ...]:
        return ("Conv_0", "pool1", "Conv_1", "pool2", "Dense_0", "Dense_1")

    def __post_init__(self):
        check_rate("dropout_rate", self.dropout_rate)
        super().__post_init__()

    @nn.compact
    def __call__(self, x, train: bool = False):
        for i, f in enumerate((32, 64)):
            x = nn.relu(Conv(f, (5, 5), padding="SAME", kernel_init=self.kernel_init)(x))
            if self.reached(f"Conv_{i}"):
                return x
            x = max_pool(x, (2, 2), strides=(2, 2))
            if self.reached(f"pool{i + 1}"):
                return x
        x = x.reshape((x.shape[0], -1))
        x = nn.relu(nn.Dense(1024, kernel_init=self.kernel_init)(x))
        if self.reached("Dense_0"):
            return x
        x = Dropout(self.dropout_rate, per_example=self.per_example_dropout)(
            x, deterministic=not train)
        return nn.Dense(self.num_classes, kernel_init=self.kernel_init)(x)


class KerasExample(NamedLayers, nn.Module):
    """The lecture's Keras example (slide 'Example of convNet code in Keras'): two conv 32 3x3
    'valid' + ReLU, max-pool 2, dropout 0.25, flatten, dense 128 lecun-uniform + sigmoid, dense 10
    lecun-uniform (+ softmax, folded into the loss). 600,810 parameters for 28x28x1 inputs."""
    num_classes: int = 10
    conv_depth: int = 32
    kernel_size: int = 3
    pool_size: int = 2
    drop_prob: float = 0.25
    hidden_size: int = 128
    kernel_init: Callable = DEFAULT_KERNEL_INIT
    per_example_dropout: bool = False    # one dropout key per example (jdl.nn.dropout)
    output_layer: str | None = None

    @nn.nowrap
    def layer_names(self) -> tuple[str, ...]:
        return ("Conv_0", "Conv_1", "pool", "Dense_0", "Dense_1")

    def __post_init__(self):
        check_rate("drop_prob", self.drop_prob)
        super().__post_init__()

    @nn.compact
    def __call__(self, x, train: bool = False):
        k, p = (self.kernel_size,) * 2, (self.pool_size,) * 2
        # Keras 3's Conv2D defaults to glorot_uniform; the lecture sets lecun_uniform on the
        # dense layers only. We follow that: glorot for the convs, lecun for the dense layers.
        conv_init = nn.initializers.glorot_uniform()
        for i in range(2):
            x = nn.relu(Conv(self.conv_depth, k, padding="VALID", kernel_init=conv_init)(x))
            if self.reached(f"Conv_{i}"):
                return x
        x = max_pool(x, p, strides=p)
        if self.reached("pool"):
            return x
        x = Dropout(self.drop_prob, per_example=self.per_example_dropout)(
            x, deterministic=not train)
        x = x.reshape((x.shape[0], -1))
        x = nn.sigmoid(nn.Dense(self.hidden_size, kernel_init=self.kernel_init)(x))
        if self.reached("Dense_0"):
            return x
        return nn.Dense(self.num_classes, kernel_init=self.kernel_init)(x)


class BNConvNet(NamedLayers, nn.Module):
    """A small convnet with batch normalisation (Ioffe & Szegedy 2015), for data-parallel tests
    and small experiments: for each entry f of ``features``, conv f 3x3 'same' (no bias) ->
    BatchNorm -> ReLU -> max-pool 2; then global average pooling and a dense layer to the logits.

    In training, BatchNorm normalises with the batch statistics mu = mean_n x_n,
    sigma^2 = mean_n x_n^2 - mu^2 (per channel, over examples and positions) and updates the
    running averages s <- momentum s + (1 - momentum) s_batch kept in the 'batch_stats'
    collection; inference uses the running averages. Under ``jax.pmap`` over ``axis_name`` the
    statistics are averaged over the devices (synced batch norm): mu and sigma^2 are those of
    the global batch, so D devices compute what one device computes on the full batch. Outside
    a pmap (one device, or jit over a sharded mesh) it is a plain BatchNorm.
    """
    num_classes: int = 10
    features: tuple = (16, 32)
    momentum: float = 0.9
    axis_name: str | None = BATCH_AXIS
    kernel_init: Callable = DEFAULT_KERNEL_INIT
    output_layer: str | None = None

    @nn.nowrap
    def layer_names(self) -> tuple[str, ...]:
        """'block{i}' (conv i, BN, ReLU, max-pool; params Conv_{i-1}, BatchNorm_{i-1}), 'pool'
        (global average), 'Dense_0' (logits)."""
        return tuple(f"block{i + 1}" for i in range(len(self.features))) + ("pool", "Dense_0")

    @nn.compact
    def __call__(self, x, train: bool = False):
        for i, f in enumerate(self.features):
            x = Conv(f, (3, 3), padding="SAME", use_bias=False, kernel_init=self.kernel_init)(x)
            x = nn.BatchNorm(use_running_average=not train, momentum=self.momentum,
                             axis_name=sync_axis(self.axis_name))(x)
            x = max_pool(nn.relu(x), (2, 2), strides=(2, 2))
            if self.reached(f"block{i + 1}"):
                return x
        x = jnp.mean(x, axis=(1, 2))
        if self.reached("pool"):
            return x
        return nn.Dense(self.num_classes, kernel_init=self.kernel_init)(x)
