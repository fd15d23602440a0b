"""Greedy layer-wise training (the lecture's "greedy layer-wise training" of DBNs and stacked
autoencoders; Hinton, Osindero & Teh 2006, "A fast learning algorithm for deep belief nets",
Neural Computation 18, section 4; Bengio, Lamblin, Popovici & Larochelle 2007, "Greedy
layer-wise training of deep networks", NIPS).

A deep network with layers h_0 = x, h_1, ..., h_L is trained one layer at a time, each layer
an unsupervised model of the representation computed by the trained layers below it:

    for l = 1 .. L:
        theta_l <- train layer l's model on h_{l-1}       (an RBM by contrastive divergence,
                                                           an autoencoder by back-propagation)
        h_l     =  f_l(h_{l-1}; theta_l)                  (its deterministic up-pass:
                                                           p(h_l = 1 | h_{l-1}), or the encoder)

Hinton, Osindero & Teh show that for a DBN each added layer improves a variational lower
bound on log p(x); Bengio et al. use the same procedure with autoencoders in place of RBMs.
The layers' parameters then initialise a deep model (a DBN, a deep autoencoder, an MLP) that
is fine-tuned as a whole.

:func:`greedy_layerwise` is the procedure, written once for every model family: the family
supplies, for layer l, a :class:`Layer` (its train step, initial state, up-pass and optional
eval step); the procedure runs ``jdl.train.fit`` on each layer with one set of conventions:

- layer l's training key is fold_in(fold_in(rng, l), 1) (the families initialise layer l's
  params with fold_in(rng, l)) and its batch order fit's ``seed + l``;
- ``epochs``: an int for every layer or one per layer;
- held-out data ``x_val`` is propagated through the trained layers alike (one up-pass over
  [x; x_val]) and scored by each layer's eval step (``val_*`` metrics in its history);
- ``workdir``: layer l's metrics and checkpoints go to ``workdir/layer{l}``; with ``resume``
  a killed run continues (finished layers restore their last checkpoint, see ``fit``);
- ``devices`` / ``parallel``: data parallelism (jdl.parallel), ``batch_size`` the global batch.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jdl.train.loop import SHORT_STEPS_PER_CALL, fit
from jdl.train.state import TrainState


@dataclasses.dataclass(frozen=True)
class Layer:
    """What a model family supplies for one layer of a greedy stack.

    ``train_step(state, batch) -> (state, metrics)`` (``jdl.train.make_train_step``) trains the
    layer from ``state``; ``encode(params, x) -> h`` is its up-pass, applied to the trained
    params (jit-able; called on whole arrays, or on chunks of ``encode_batch_size`` rows);
    ``eval_step(state, batch) -> metrics`` (masked means) scores held-out data."""
    train_step: Callable
    state: TrainState
    encode: Callable
    eval_step: Callable | None = None


@dataclasses.dataclass
class GreedyResult:
    """Each layer's trained params (bottom first) and ``fit`` history (per-epoch metrics)."""
    params: list
    history: list


def flatten_examples(x):
    """``x`` as a float array of shape (n_examples, n_features) (integers become float32)."""
    x = jnp.asarray(x)
    data = x.reshape(x.shape[0], -1)
    if not jnp.issubdtype(data.dtype, jnp.floating):
        data = data.astype(jnp.float32)
    return data


def per_layer(name: str, value: Any, n_layers: int) -> list:
    """One value per layer: a list must have ``n_layers`` items; anything else (a tuple
    included) applies to every layer."""
    if isinstance(value, list):
        if len(value) != n_layers:
            raise ValueError(f"{name} gives {len(value)} values for {n_layers} layers")
        return value
    return [value] * n_layers


def epochs_per_layer(epochs, n_layers: int) -> list[int]:
    """``epochs`` (an int, or a sequence with one int per layer) as a list of ``n_layers``
    ints."""
    values = [int(epochs)] * n_layers if np.ndim(epochs) == 0 else [int(e) for e in epochs]
    if len(values) != n_layers:
        raise ValueError(f"epochs gives {len(values)} values for {n_layers} layers")
    return values


def layer_tx(tx_factory, layer: int):
    """An optax ``GradientTransformation`` used for every layer, or ``tx_factory(layer)``."""
    return tx_factory if isinstance(tx_factory, optax.GradientTransformation) \
        else tx_factory(layer)


def _encode(encode: Callable, params, x, batch_size: int | None):
    fn = jax.jit(encode)
    if batch_size is None or x.shape[0] <= batch_size:
        return fn(params, x)
    return jnp.concatenate([fn(params, x[i:i + batch_size])
                            for i in range(0, x.shape[0], batch_size)])


def greedy_layerwise(setup_layer: Callable[[int, Any], Layer], x, n_layers: int, rng, *,
                     epochs, batch_size: int, x_val=None, seed: int = 0,
                     workdir: str | None = None, resume: bool = False, progress: bool = False,
                     verbose: bool = True, log_every: int = 50,
                     encode_batch_size: int | None = None, devices=None,
                     parallel: str = "sharded",
                     steps_per_call: int = SHORT_STEPS_PER_CALL) -> GreedyResult:
    """Train ``n_layers`` layers greedily (see the module docstring for the procedure).

    ``setup_layer(l, key) -> Layer`` builds layer l (0-based) from its training key
    fold_in(fold_in(rng, l), 1); ``x`` (n examples, n_0 features) is h_0 and ``x_val`` the
    held-out data (both float arrays of shape (n, n_0)). Each layer is trained by ``fit`` on
    ``{'x': h_{l-1}}`` for its ``epochs`` with ``batch_size``, batch order ``seed + l``,
    ``progress`` / ``verbose`` / ``log_every`` (fit's output), ``workdir/layer{l}`` with
    ``resume`` (TensorBoard events too, when there is a workdir), ``steps_per_call`` (fit's k
    steps per compiled call: bit-identical for every k), ``devices`` and
    ``parallel``. The up-pass runs in chunks of ``encode_batch_size`` rows (None: at once).

    Returns a :class:`GreedyResult` (each layer's params and history)."""
    if n_layers <= 0:
        raise ValueError(f"n_layers must be at least 1, got {n_layers}")
    epochs = epochs_per_layer(epochs, n_layers)
    data, val = x, x_val
    params, histories = [], []
    for layer in range(n_layers):
        spec = setup_layer(layer, jax.random.fold_in(jax.random.fold_in(rng, layer), 1))
        if val is not None and spec.eval_step is None:
            raise ValueError(f"layer {layer} has no eval_step to score x_val with")
        result = fit(spec.train_step, spec.state, {"x": data}, epochs=epochs[layer],
                     batch_size=batch_size, seed=seed + layer,
                     eval_step=None if val is None else spec.eval_step,
                     val_data=None if val is None else {"x": val},
                     workdir=None if workdir is None else os.path.join(workdir, f"layer{layer}"),
                     resume=resume, progress=progress, verbose=verbose, log_every=log_every,
                     tensorboard=workdir is not None, devices=devices, parallel=parallel,
                     steps_per_call=steps_per_call)
        params.append(result.state.params)
        histories.append(result.history)
        if layer + 1 < n_layers:
            if val is None:
                data = _encode(spec.encode, result.state.params, data, encode_batch_size)
            else:                                  # one pass (one compilation) for both
                both = _encode(spec.encode, result.state.params,
                               jnp.concatenate([data, val]), encode_batch_size)
                data, val = both[:data.shape[0]], both[data.shape[0]:]
    return GreedyResult(params=params, history=histories)
