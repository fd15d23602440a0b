"""Autoencoders as Flax linen modules (model definitions only; objectives live in jdl.ae).

An autoencoder is an encoder f and a decoder g trained so that the reconstruction z = g(f(x))
of each input x is close to x: the lecture's "learn W and W' to minimise sum_k ||z_k - x_k||^2"
(Bourlard & Kamp 1988; Hinton & Salakhutdinov 2006; Bengio et al. 2007).

:class:`Autoencoder` -- a deterministic MLP autoencoder with sizes
d -> e_1 -> ... -> e_m -> code -> e_m -> ... -> e_1 -> d (the decoder mirrors the encoder):

    h_0 = x,   h_i = act(h_{i-1} W_i + c_i)  (i = 1..m),   code = code_act(h_m W_{m+1} + c_{m+1})
    decoder: g_0 = code,  g_l = act(g_{l-1} W'_l + b_l)  (l = 1..m),
             z = out_act(g_m W'_{m+1} + b_{m+1}).

With ``tied=True`` the decoder reuses the encoder's weights, W'_l = W_{m+2-l}^T (the lecture's
W' = W^T; Vincent et al. 2008), and has only its own biases b_l.

Parameters (``params`` pytree): ``encoder_0 .. encoder_{m}`` ({'kernel', 'bias'}, encoder_m the
code layer), ``decoder_0 .. decoder_{m}`` ({'kernel', 'bias'}, or {'bias'} when tied; decoder_m
the output layer). decoder_l's kernel has the shape of encoder_{m-l}'s kernel transposed, so a
deep autoencoder can be assembled layer by layer (jdl.ae.stacked).

:class:`VariationalAutoencoder` -- Kingma & Welling 2014 ("Auto-encoding variational Bayes",
ICLR): an encoder q(z | x) = N(mu(x), diag exp(log_var(x))), the reparameterised code
z = mu + exp(log_var / 2) * eps with eps ~ N(0, I), and a decoder p(x | z) that is Bernoulli
(the decoder returns logits) or Gaussian with fixed variance ``output_variance`` (it returns
the mean).

Inputs of any shape are flattened per example; integer inputs are cast to float32.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jdl.nn.activations import get_activation
from jdl.nn.initializers import DEFAULT_KERNEL_INIT, zeros

LIKELIHOODS = ("bernoulli", "gaussian")


def _flatten(x):
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.float32)
    return jnp.reshape(x, (x.shape[0], -1))


def _check_sizes(name, sizes):
    if any(int(s) <= 0 for s in sizes):
        raise ValueError(f"{name} sizes must be positive, got {tuple(sizes)}")


class _Dense(nn.Module):
    """x W + b with W of shape (x.shape[-1], features); ``features`` may be given at call time
    (the output layer learns its size from the data)."""
    features: int | None = None
    kernel_init: Callable = DEFAULT_KERNEL_INIT

    @nn.compact
    def __call__(self, x, features: int | None = None):
        n_out = self.features if features is None else features
        kernel = self.param("kernel", self.kernel_init, (x.shape[-1], n_out), jnp.float32)
        bias = self.param("bias", zeros, (n_out,), jnp.float32)
        dtype = jnp.result_type(x.dtype, kernel.dtype)
        y = jnp.dot(x.astype(dtype), kernel.astype(dtype))
        return y + jnp.reshape(bias.astype(dtype), (1,) * (y.ndim - 1) + (-1,))  # rank-explicit


class _TiedDense(nn.Module):
    """x K^T + b: a decoder layer that borrows the encoder kernel K and owns only its bias."""

    @nn.compact
    def __call__(self, x, kernel):
        bias = self.param("bias", zeros, (kernel.shape[0],), jnp.float32)
        dtype = jnp.result_type(x.dtype, kernel.dtype)
        y = jnp.dot(x.astype(dtype), kernel.T.astype(dtype))
        return y + jnp.reshape(bias.astype(dtype), (1,) * (y.ndim - 1) + (-1,))


class Autoencoder(nn.Module):
    """MLP autoencoder: ``encoder`` hidden sizes, a ``code`` layer, a mirrored decoder.

    Attributes: encoder (hidden layer sizes, bottom first; () for the one-layer autoencoder
    x -> code -> x), code (code size), activation (hidden layers of encoder and decoder),
    code_activation (default 'linear', as in Hinton & Salakhutdinov 2006), output_activation
    ('sigmoid' for data in [0, 1], to be trained with cross-entropy or squared error; 'linear'
    for real data), tied (decoder kernels are the transposed encoder kernels), features (the
    data dimension; inferred from the data unless the module is initialised through
    ``decode`` alone), kernel_init.

    Methods (``model.apply(variables, ..., method=...)``):
    ``encode(x, all_layers=False)`` -> code (N, code), or the list [h_1, ..., h_m, code];
    ``decode(z, logits=False)`` -> reconstruction (N, features), or the output layer's
    pre-activation with ``logits=True`` (the logits of a sigmoid output);
    ``__call__(x, train=False, logits=False)`` -> (reconstruction shaped like x, code).
    """
    encoder: Sequence[int] = (256,)
    code: int = 32
    activation: Any = "sigmoid"
    code_activation: Any = "linear"
    output_activation: Any = "sigmoid"
    tied: bool = False
    features: int | None = None
    kernel_init: Callable = DEFAULT_KERNEL_INIT

    def __post_init__(self):
        _check_sizes("encoder", tuple(self.encoder) + (self.code,))
        if self.features is not None and int(self.features) <= 0:
            raise ValueError(f"features must be positive, got {self.features}")
        for a in (self.activation, self.code_activation, self.output_activation):
            get_activation(a)
        super().__post_init__()

    def setup(self):
        sizes = [int(s) for s in self.encoder] + [int(self.code)]
        self.encoder_layers = [_Dense(n, self.kernel_init, name=f"encoder_{i}")
                               for i, n in enumerate(sizes)]
        if self.tied:
            self.decoder_layers = [_TiedDense(name=f"decoder_{i}") for i in range(len(sizes))]
        else:
            out = [int(s) for s in reversed(tuple(self.encoder))] + [None]
            self.decoder_layers = [_Dense(n, self.kernel_init, name=f"decoder_{i}")
                                   for i, n in enumerate(out)]

    def _n_features(self) -> int:
        if self.features is not None:
            return int(self.features)
        first = self.encoder_layers[0]
        if not first.has_variable("params", "kernel"):
            raise ValueError("Autoencoder: the data dimension is unknown; initialise the "
                             "module on data (__call__ or encode) or set features=")
        return int(first.variables["params"]["kernel"].shape[0])

    def encode(self, x, all_layers: bool = False):
        act, code_act = get_activation(self.activation), get_activation(self.code_activation)
        h = _flatten(x)
        layers = []
        for i, layer in enumerate(self.encoder_layers):
            last = i == len(self.encoder_layers) - 1
            h = (code_act if last else act)(layer(h))
            layers.append(h)
        return layers if all_layers else h

    def decode(self, z, logits: bool = False):
        act, out_act = get_activation(self.activation), get_activation(self.output_activation)
        h = jnp.asarray(z)
        n = len(self.decoder_layers)
        for l, layer in enumerate(self.decoder_layers):
            if self.tied:
                source = self.encoder_layers[n - 1 - l]
                if not source.has_variable("params", "kernel"):
                    raise ValueError("a tied Autoencoder's decoder uses the encoder kernels: "
                                     "initialise it on data (__call__ or encode)")
                h = layer(h, source.variables["params"]["kernel"])
            else:
                h = layer(h, self._n_features()) if l == n - 1 else layer(h)
            if l < n - 1:
                h = act(h)
        return h if logits else out_act(h)

    def __call__(self, x, train: bool = False, logits: bool = False):
        code = self.encode(x)
        out = self.decode(code, logits=logits)
        return jnp.reshape(out, jnp.shape(x)), code


class VariationalAutoencoder(nn.Module):
    """Variational autoencoder (Kingma & Welling 2014) with MLP encoder and decoder.

    Attributes: encoder (hidden sizes of q(z | x)), latent (dimension of z), decoder (hidden
    sizes of p(x | z); default the encoder's reversed), activation (hidden layers),
    likelihood ('bernoulli': the decoder returns logits; 'gaussian': it returns the mean, the
    variance being ``output_variance``), features (the data dimension, inferred from the data
    unless the module is initialised through ``decode``), kernel_init.

    Methods: ``encode(x)`` -> (mu, log_var), each (N, latent); ``decode(z)`` -> logits or mean
    (..., features) for codes z of shape (..., latent); ``__call__(x, rng=None, train=False)``
    -> (decoder output shaped (N, features), mu, log_var), where z = mu + exp(log_var / 2) eps,
    eps ~ N(0, I) drawn with ``rng`` when given, else with the module's 'latent' rng stream
    (``apply(..., rngs={'latent': key})``) when ``train``; in inference without rng, z = mu.
    """
    encoder: Sequence[int] = (400,)
    latent: int = 20
    decoder: Sequence[int] | None = None
    activation: Any = "relu"
    likelihood: str = "bernoulli"
    output_variance: float = 1.0
    features: int | None = None
    kernel_init: Callable = DEFAULT_KERNEL_INIT

    def __post_init__(self):
        _check_sizes("encoder", tuple(self.encoder) + (self.latent,))
        if self.decoder is not None:
            _check_sizes("decoder", tuple(self.decoder))
        if self.likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {self.likelihood!r}")
        if not float(self.output_variance) > 0:
            raise ValueError(f"output_variance must be positive, got {self.output_variance}")
        if self.features is not None and int(self.features) <= 0:
            raise ValueError(f"features must be positive, got {self.features}")
        get_activation(self.activation)
        super().__post_init__()

    @property
    def decoder_sizes(self) -> tuple:
        return tuple(reversed(tuple(self.encoder))) if self.decoder is None \
            else tuple(self.decoder)

    def setup(self):
        self.encoder_layers = [_Dense(int(n), self.kernel_init, name=f"encoder_{i}")
                               for i, n in enumerate(self.encoder)]
        self.mu_layer = _Dense(int(self.latent), self.kernel_init, name="mu")
        self.log_var_layer = _Dense(int(self.latent), self.kernel_init, name="log_var")
        sizes = [int(n) for n in self.decoder_sizes] + [None]
        self.decoder_layers = [_Dense(n, self.kernel_init, name=f"decoder_{i}")
                               for i, n in enumerate(sizes)]

    def _n_features(self) -> int:
        if self.features is not None:
            return int(self.features)
        first = self.encoder_layers[0] if self.encoder_layers else self.mu_layer
        if not first.has_variable("params", "kernel"):
            raise ValueError("VariationalAutoencoder: the data dimension is unknown; "
                             "initialise the module on data or set features=")
        return int(first.variables["params"]["kernel"].shape[0])

    def encode(self, x):
        act = get_activation(self.activation)
        h = _flatten(x)
        for layer in self.encoder_layers:
            h = act(layer(h))
        return self.mu_layer(h), self.log_var_layer(h)

    def decode(self, z):
        act = get_activation(self.activation)
        h = jnp.asarray(z)
        n = len(self.decoder_layers)
        for l, layer in enumerate(self.decoder_layers):
            h = layer(h, self._n_features()) if l == n - 1 else act(layer(h))
        return h

    def __call__(self, x, rng=None, train: bool = False):
        mu, log_var = self.encode(x)
        if rng is None and train:
            rng = self.make_rng("latent")
        if rng is None:
            z = mu
        else:
            eps = jax.random.normal(rng, mu.shape, mu.dtype)
            z = mu + jnp.exp(0.5 * log_var) * eps
        return self.decode(z), mu, log_var
