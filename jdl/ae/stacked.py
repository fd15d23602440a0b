"""Deep stacked autoencoders (Bengio, Lamblin, Popovici & Larochelle 2007, "Greedy layer-wise
training of deep networks", NIPS; Vincent et al. 2010 for stacked denoising autoencoders) and
the deep autoencoder initialised from a DBN (Hinton & Salakhutdinov 2006, "Reducing the
dimensionality of data with neural networks", Science 313).

Greedy layer-wise training (the lecture's slide "Training of stacked autoencoders"): with
h_0 = x and layer sizes n_0 = d, n_1, ..., n_L, for k = 1 .. L a one-layer autoencoder
A_k = g_k o f_k, f_k(h) = act(h W_k + c_k), g_k(u) = out_act(u W'_k + b_k), is trained by
back-propagation on the codes of the layer below,

    minimise  sum_n ||A_k(h_{k-1,n}) - h_{k-1,n}||^2  + lambda sum_ij W_ij^2  (+ sparsity, ...)

(any objective of ``jdl.ae.autoencoder_grad_fn``), then h_k = f_k(h_{k-1}) feeds layer k+1.
The layers are then unrolled into one deep autoencoder (:func:`assemble`),

    x -> f_1 -> ... -> f_L (the code) -> g_L -> ... -> g_1 -> reconstruction,

whose params serve as the starting point of end-to-end fine-tuning of the whole
reconstruction error (``autoencoder_grad_fn`` on the deep model).

The one-layer autoencoder of layer k is ``jdl.nn.Autoencoder(encoder=(), code=n_k)`` with
code activation ``activation`` (``code_activation`` for the top layer) and output activation
``output_activation`` for layer 1 (the data's), ``activation`` above (it reconstructs codes of
that activation), so the assembled deep model is exactly the composition of the layers.

:func:`from_dbn` builds the deep autoencoder from a DBN stack (jdl.rbm.dbn; RBM l has params
{'W': (n_{l-1}, n_l), 'b': (n_{l-1},), 'c': (n_l,)}), as Hinton & Salakhutdinov do:

    encoder layer l:  kernel W_l,   bias c_l    (h_l = sigmoid(h_{l-1} W_l + c_l)),
    decoder layer l:  kernel W_l^T, bias b_l    (in reverse order, top RBM first).

Hinton & Salakhutdinov make the code layer linear, its top RBM having Gaussian hidden units
(mean c_L + h_{L-1} W_L). jdl.rbm trains Bernoulli hidden units, so ``from_dbn`` keeps the
code sigmoid by default (``code_activation='sigmoid'``): the encoder then computes exactly
``jdl.rbm.dbn.propagate_up``. ``code_activation='linear'`` gives H&S's linear code (the top
RBM's hidden input c_L + h_{L-1} W_L), for a stack whose top RBM was trained with Gaussian
hidden units or as a starting point for fine-tuning.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Sequence

import jax
import jax.numpy as jnp

from jdl.ae.objective import autoencoder_eval_fn, autoencoder_grad_fn
from jdl.nn.autoencoders import Autoencoder
from jdl.nn.initializers import DEFAULT_KERNEL_INIT
from jdl.train import create_state, make_eval_step, make_train_step
from jdl.train.greedy import Layer, epochs_per_layer, flatten_examples, layer_tx, per_layer
from jdl.train.greedy import greedy_layerwise as train_greedy


@dataclasses.dataclass
class StackedAutoencoders:
    """Result of :func:`greedy_layerwise`: the one-layer models and their params (bottom
    first), and each layer's ``fit`` history (per-epoch metrics)."""
    models: list
    params: list
    history: list

    def assemble(self):
        """(deep Autoencoder, its params): see :func:`assemble`."""
        return assemble(self.models, self.params)


def layer_models(n_features: int, layer_sizes: Sequence[int], activation: Any = "sigmoid",
                 code_activation: Any = None, output_activation: Any = "sigmoid",
                 tied: bool = False, kernel_init=DEFAULT_KERNEL_INIT) -> list:
    """The one-layer autoencoders d -> n_1 -> d, n_1 -> n_2 -> n_1, ... of a stack.

    Layer k's code activation is ``activation`` (``code_activation``, default ``activation``,
    for the top layer); its output activation is ``output_activation`` for layer 1 and
    ``activation`` above."""
    sizes = [int(n_features)] + [int(s) for s in layer_sizes]
    if len(sizes) < 2:
        raise ValueError("layer_sizes must name at least one layer")
    top = activation if code_activation is None else code_activation
    n = len(sizes) - 1
    return [Autoencoder(encoder=(), code=sizes[k + 1], activation=activation,
                        code_activation=top if k == n - 1 else activation,
                        output_activation=output_activation if k == 0 else activation,
                        tied=tied, features=sizes[k], kernel_init=kernel_init)
            for k in range(n)]


def init_layers(rng, n_features: int, layer_sizes: Sequence[int], **model_options):
    """(models, params) of a fresh stack: layer k is initialised with fold_in(rng, k) (the
    initial params ``greedy_layerwise`` starts from when given no ``initial``)."""
    models = layer_models(n_features, layer_sizes, **model_options)

    @jax.jit     # one compiled program: eager initialisation dispatches op by op (slow)
    def init_all(rng):
        return [m.init(jax.random.fold_in(rng, k), jnp.zeros((1, m.features), jnp.float32))
                ["params"] for k, m in enumerate(models)]

    return models, init_all(rng)


def greedy_layerwise(x, layer_sizes: Sequence[int], rng, *, epochs, batch_size: int,
                     tx_factory, activation: Any = "sigmoid", code_activation: Any = None,
                     output_activation: Any = "sigmoid", tied: bool = False,
                     loss="squared", corruption=None, sparsity=None, contractive=0.0,
                     weight_decay=0.0, initial: Sequence | None = None, x_val=None,
                     seed: int = 0, progress: bool = False, verbose: bool = True,
                     log_every: int = 50, workdir: str | None = None, resume: bool = False,
                     encode_batch_size: int = 1000, devices=None,
                     parallel: str = "sharded") -> StackedAutoencoders:
    """Greedy layer-wise training of a stack of autoencoders (Bengio et al. 2007), with
    ``jdl.train.greedy.greedy_layerwise``.

    For k = 1 .. L: layer k's autoencoder (:func:`layer_models`) is trained on h_{k-1} (h_0 =
    ``x`` flattened) with ``make_train_step(autoencoder_grad_fn(model, loss, corruption,
    sparsity, contractive, weight_decay), tx)`` and ``fit`` for ``epochs`` epochs (an int or
    one per layer); then h_k = f_k(h_{k-1}) (clean input, deterministic). Arguments:

    - ``tx_factory``: an optax GradientTransformation for every layer, or
      ``tx_factory(k) -> GradientTransformation``;
    - ``loss``, ``corruption``, ``sparsity``, ``contractive``, ``weight_decay``: one value for
      every layer, or a list with one per layer (e.g. ``loss=['cross_entropy', 'squared']``);
    - ``rng``: layer k's initial params use fold_in(rng, k) (:func:`init_layers`) unless
      ``initial`` (a list of params) is given; its training key is fold_in(fold_in(rng, k), 1)
      and its batch order fit's ``seed + k``;
    - ``x_val``: held-out data, propagated through the trained layers alike; each layer's
      history then has its val_loss and val_reconstruction_error;
    - ``workdir``: layer k's metrics and checkpoints go to ``workdir/layer{k}``; with
      ``resume=True`` a killed run continues (finished layers restore their last checkpoint);
    - ``progress`` / ``verbose`` / ``log_every``: fit's progress bar and per-epoch lines;
    - ``encode_batch_size``: rows per call of the up-pass h_k = f_k(h_{k-1});
    - ``devices`` / ``parallel``: data parallelism (jdl.parallel).

    Returns a :class:`StackedAutoencoders` (models, params, histories)."""
    data = flatten_examples(x)
    val = None if x_val is None else flatten_examples(x_val).astype(data.dtype)
    n_layers = len(layer_sizes)
    models = layer_models(data.shape[1], layer_sizes, activation, code_activation,
                          output_activation, tied)
    epochs_per_layer(epochs, n_layers)
    options = {name: per_layer(name, value, n_layers) for name, value in
               dict(loss=loss, corruption=corruption, sparsity=sparsity,
                    contractive=contractive, weight_decay=weight_decay).items()}
    if initial is None:
        _, initial = init_layers(rng, data.shape[1], layer_sizes, activation=activation,
                                 code_activation=code_activation,
                                 output_activation=output_activation, tied=tied)
    initial = list(initial)
    if len(initial) != n_layers:
        raise ValueError(f"initial has {len(initial)} layers, layer_sizes {n_layers}")

    def setup_layer(k, key):
        model = models[k]
        layer_opts = {name: values[k] for name, values in options.items()}
        tx = layer_tx(tx_factory, k)
        state = create_state(jax.tree.map(jnp.copy, initial[k]), tx, key)
        return Layer(make_train_step(autoencoder_grad_fn(model, **layer_opts), tx), state,
                     functools.partial(_encode, model),
                     make_eval_step(autoencoder_eval_fn(model, layer_opts["loss"])))

    result = train_greedy(setup_layer, data, n_layers, rng, epochs=epochs,
                          batch_size=batch_size, x_val=val, seed=seed, workdir=workdir,
                          resume=resume, progress=progress, verbose=verbose,
                          log_every=log_every, encode_batch_size=encode_batch_size,
                          devices=devices, parallel=parallel)
    return StackedAutoencoders(models=models, params=result.params, history=result.history)


def _encode(model, params, x):
    """f(x), the encoder of a one-layer autoencoder."""
    return model.apply({"params": params}, x, method="encode")


def _same(name, values):
    values = list(values)
    if any(v != values[0] for v in values):
        raise ValueError(f"the layers disagree on the deep model's {name}: {values}")
    return values[0]


def assemble(models: Sequence[Autoencoder], params: Sequence) -> tuple[Autoencoder, dict]:
    """Unroll one-layer autoencoders (bottom first) into one deep ``Autoencoder`` and its params:

        encoder_l = layer l's encoder_0,      decoder_l = layer (L-1-l)'s decoder_0,

    for l = 0 .. L-1, so that deep.encode = f_L o ... o f_1 and deep.decode = g_1 o ... o g_L.
    The hidden layers' activation must be the same throughout (the layers of
    :func:`layer_models` are)."""
    models, params = list(models), list(params)
    if not models or len(models) != len(params):
        raise ValueError(f"need one params pytree per model, got {len(models)} models and "
                         f"{len(params)} params")
    sizes = [int(params[0]["encoder_0"]["kernel"].shape[0])]
    for k, (m, p) in enumerate(zip(models, params)):
        if len(tuple(m.encoder)) != 0:
            raise ValueError(f"layer {k} is not a one-layer autoencoder (encoder={m.encoder})")
        n_in, n_out = p["encoder_0"]["kernel"].shape
        if n_in != sizes[-1]:
            raise ValueError(f"layer {k} takes {n_in} inputs, the layer below gives {sizes[-1]}")
        sizes.append(int(n_out))
    n = len(models)
    tied = _same("tied", [m.tied for m in models])
    if n > 1:
        hidden = [m.code_activation for m in models[:-1]] + \
                 [m.output_activation for m in models[1:]]
        activation = _same("hidden activation", hidden)
    else:
        activation = models[0].activation
    deep = Autoencoder(encoder=tuple(sizes[1:-1]), code=sizes[-1], activation=activation,
                       code_activation=models[-1].code_activation,
                       output_activation=models[0].output_activation, tied=tied,
                       features=sizes[0], kernel_init=models[0].kernel_init)
    deep_params = {}
    for l in range(n):
        deep_params[f"encoder_{l}"] = params[l]["encoder_0"]
        deep_params[f"decoder_{l}"] = params[n - 1 - l]["decoder_0"]
    return deep, deep_params


def from_dbn(stack: Sequence[dict], code_activation: Any = "sigmoid",
             visible: str = "bernoulli", tied: bool = False) -> tuple[Autoencoder, dict]:
    """The deep autoencoder of Hinton & Salakhutdinov 2006 initialised from a DBN stack
    (bottom RBM first): encoder layer l has kernel W_l and bias c_l; decoder layer l has
    kernel W_{L-l}^T and bias b_{L-l} (top RBM first), or only the bias with ``tied``.

    Hidden layers are sigmoid; the code layer is ``code_activation`` (see the module
    docstring: 'sigmoid' reproduces ``jdl.rbm.dbn.propagate_up``, 'linear' is H&S's choice);
    the output is sigmoid for Bernoulli visible units, linear (the mean b_1 + W_1 h_1) for
    Gaussian ones (``visible``). Returns (model, params)."""
    stack = list(stack)
    if not stack:
        raise ValueError("a DBN needs at least one RBM")
    if visible not in ("bernoulli", "gaussian"):
        raise ValueError(f"visible must be 'bernoulli' or 'gaussian', got {visible!r}")
    sizes = [int(stack[0]["W"].shape[0])]
    for i, rbm in enumerate(stack):
        n_v, n_h = rbm["W"].shape
        if n_v != sizes[-1]:
            raise ValueError(f"RBM {i} has {n_v} visible units, the layer below has "
                             f"{sizes[-1]} units")
        sizes.append(int(n_h))
    n = len(stack)
    model = Autoencoder(encoder=tuple(sizes[1:-1]), code=sizes[-1], activation="sigmoid",
                        code_activation=code_activation,
                        output_activation="sigmoid" if visible == "bernoulli" else "linear",
                        tied=tied, features=sizes[0])
    params = {}
    for l, rbm in enumerate(stack):
        params[f"encoder_{l}"] = {"kernel": jnp.asarray(rbm["W"]), "bias": jnp.asarray(rbm["c"])}
    for l in range(n):
        rbm = stack[n - 1 - l]
        params[f"decoder_{l}"] = ({"bias": jnp.asarray(rbm["b"])} if tied else
                                  {"kernel": jnp.asarray(rbm["W"]).T,
                                   "bias": jnp.asarray(rbm["b"])})
    return model, params
