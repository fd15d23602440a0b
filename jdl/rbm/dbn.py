"""Deep Belief Networks (Hinton, Osindero & Teh 2006, "A fast learning algorithm for deep belief
nets", Neural Computation 18): a stack of RBMs trained greedily, one layer at a time.

A DBN with layers v = h_0, h_1, ..., h_L is a generative model whose top two layers form an
undirected RBM (an "associative memory") and whose lower layers are directed, top-down:

    p(v, h_1, ..., h_L) = p(h_{L-1}, h_L) prod_{l=1}^{L-1} p(h_{l-1} | h_l),
    p(h_{l-1} = 1 | h_l) = sigmoid(b_l + W_l h_l)          (RBM l's visible biases b_l),

while recognition (inference) goes bottom-up with the same weights,

    q(h_l = 1 | h_{l-1}) = sigmoid(c_l + h_{l-1} W_l).

Greedy layer-wise training: RBM 1 is trained on the data; RBM l+1 is trained on the
representations of the data given by the layers below (here the probabilities q(h_l | h_{l-1}),
as Hinton & Salakhutdinov 2006 do). Each added layer, initialised as the transpose of the one
below, improves a variational lower bound on log p(v) (Hinton, Osindero & Teh 2006, section 4).
The stack is the list of RBM params pytrees, bottom first: ``stack[l]`` maps h_l <-> h_{l+1}.

Supervised fine-tuning (the lecture's "DBN supervised tuning"; Hinton & Salakhutdinov 2006,
"Reducing the dimensionality of data with neural networks", Science 313): the recognition
weights initialise a sigmoid MLP, topped by a fresh output layer and trained by backprop
(:func:`to_mlp_params` for ``jdl.nn.MLP`` and ``jdl.train.backprop``).
"""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp

from jdl.rbm.conditionals import p_h_given_v, p_v_given_h, sample_visible_from_mean
from jdl.rbm.contrastive_divergence import init_chains
from jdl.rbm.energy import check_bernoulli_data, check_visible, init_params
from jdl.rbm.gibbs import gibbs_chain
from jdl.rbm.training import rbm_eval_fn, rbm_train_setup
from jdl.train import make_eval_step
from jdl.train.greedy import Layer, flatten_examples, layer_tx
from jdl.train.greedy import greedy_layerwise as train_greedy


def _sizes(stack) -> list[int]:
    if len(stack) == 0:
        raise ValueError("a DBN needs at least one RBM")
    sizes = [stack[0]["W"].shape[0]]
    for i, params in enumerate(stack):
        n_v, n_h = params["W"].shape
        if n_v != sizes[-1]:
            raise ValueError(f"RBM {i} has {n_v} visible units, the layer below has "
                             f"{sizes[-1]} units")
        sizes.append(n_h)
    return sizes


def init_stack(rng, n_visible: int, layer_sizes: Sequence[int], scale: float = 0.01,
               dtype=jnp.float32) -> list:
    """Fresh RBM params for every layer of a DBN (``jdl.rbm.init_params``: W ~ N(0, scale^2),
    zero biases); layer l's key is fold_in(rng, l). ``greedy_layerwise`` starts from this
    stack when given no ``initial`` one."""
    sizes = [int(n_visible)] + [int(s) for s in layer_sizes]
    return [init_params(jax.random.fold_in(rng, i), sizes[i], sizes[i + 1], scale, dtype=dtype)
            for i in range(len(sizes) - 1)]


def greedy_layerwise(x, layer_sizes: Sequence[int], rng, *, epochs, batch_size: int,
                     tx_factory, k: int = 1, persistent: bool = False, progress: bool = False,
                     verbose: bool = True, visible: str = "bernoulli",
                     initial: Sequence | None = None, init_scale: float = 0.01, seed: int = 0,
                     return_history: bool = False, x_val=None, workdir: str | None = None,
                     resume: bool = False, log_every: int = 100, devices=None,
                     parallel: str = "sharded", **cd_options):
    """Greedy layer-wise training of a DBN (Hinton, Osindero & Teh 2006, section 4), with
    ``jdl.train.greedy.greedy_layerwise``.

    For l = 1 .. L, with x_0 = x (flattened per example):

        RBM l  <- contrastive divergence (CD-k, or PCD-k with ``persistent``) on x_{l-1},
        x_l    =  p(h_l = 1 | x_{l-1}) = sigmoid(c_l + x_{l-1} W_l),

    each RBM trained as :func:`jdl.rbm.training.train_rbm` does (``contrastive_divergence`` as
    the grad_fn of ``jdl.train.make_train_step``, ``jdl.train.fit``) for ``epochs`` epochs (an
    int, or one per layer) of ``batch_size`` examples (the batches carry global example
    indices, so the Gibbs noise of example n is a function of (key, step, n)). Arguments:

    - ``layer_sizes``: the hidden layer sizes (n_1, ..., n_L); n_0 is x's feature count;
    - ``rng``: layer l's initial params use fold_in(rng, l) (:func:`init_stack`) unless
      ``initial`` (a stack) is given; its training key is fold_in(fold_in(rng, l), 1) and its
      batch order fit's ``seed + l``;
    - ``tx_factory``: an optax ``GradientTransformation`` used for every layer, or a callable
      ``tx_factory(l) -> GradientTransformation`` (a rate per layer);
    - ``visible``: the data's units, 'bernoulli' or 'gaussian' (layer 1 only; the layers above
      are Bernoulli, trained on probabilities);
    - ``cd_options``: passed on to ``contrastive_divergence`` (e.g. sparsity_target);
    - ``x_val``: held-out data, propagated up alike; each layer's history then has
      ``val_reconstruction_error`` and ``val_free_energy`` (:func:`jdl.rbm.training.rbm_eval_fn`;
      compare the latter with ``train_free_energy`` to see overfitting, Hinton 2010, section 6);
    - ``workdir``: layer l's metrics and checkpoints go to ``workdir/layer{l}``; with
      ``resume=True`` a killed run continues (finished layers restore their last checkpoint);
    - ``progress`` / ``verbose`` / ``log_every``: fit's progress bar and per-epoch lines;
    - ``devices`` / ``parallel``: data parallelism (jdl.parallel; PCD's chains are split across
      the devices with their examples).

    Returns the stack, a list of L RBM params pytrees (bottom first); with ``return_history``,
    also the list of each layer's ``fit`` history (per-epoch CD metrics)."""
    if check_visible(visible) == "bernoulli":
        check_bernoulli_data(x, "greedy_layerwise x")
        if x_val is not None:
            check_bernoulli_data(x_val, "greedy_layerwise x_val")
    data = flatten_examples(x)
    val = None if x_val is None else flatten_examples(x_val).astype(data.dtype)
    n_layers = len(layer_sizes)
    if n_layers == 0:
        raise ValueError("layer_sizes must name at least one hidden layer")
    if initial is None:
        initial = init_stack(rng, data.shape[1], layer_sizes, init_scale, data.dtype)
    initial = list(initial)
    sizes = _sizes(initial)
    if sizes != [data.shape[1]] + [int(s) for s in layer_sizes]:
        raise ValueError(f"initial stack has layer sizes {sizes}, expected "
                         f"{[data.shape[1]] + list(layer_sizes)}")

    def setup_layer(layer, key):
        layer_visible = visible if layer == 0 else "bernoulli"
        step, state = rbm_train_setup(initial[layer], key, layer_tx(tx_factory, layer),
                                      batch_size=batch_size, k=k, persistent=persistent,
                                      visible=layer_visible, **cd_options)
        return Layer(step, state, p_h_given_v, make_eval_step(rbm_eval_fn(layer_visible)))

    result = train_greedy(setup_layer, data, n_layers, rng, epochs=epochs,
                          batch_size=batch_size, x_val=val, seed=seed, workdir=workdir,
                          resume=resume, progress=progress, verbose=verbose,
                          log_every=log_every, devices=devices, parallel=parallel)
    return (result.params, result.history) if return_history else result.params


def propagate_up(stack, v, all_layers: bool = False):
    """Bottom-up (recognition) pass: x_0 = v, x_l = p(h_l = 1 | x_{l-1}) = sigmoid(c_l +
    x_{l-1} W_l), deterministic, with probabilities (not samples) fed upward, as in greedy
    training. ``v`` has shape (..., n_visible). Returns the top-layer probabilities x_L (the
    DBN's code for v), or with ``all_layers`` the list [x_1, ..., x_L]."""
    _sizes(stack)
    x = jnp.asarray(v, stack[0]["W"].dtype)
    layers = []
    for params in stack:
        x = p_h_given_v(params, x)
        layers.append(x)
    return layers if all_layers else x


def sample_down(stack, rng, n_samples: int, n_gibbs: int, visible: str = "bernoulli",
                h0=None, return_mean: bool = False):
    """Generate from the DBN (Hinton, Osindero & Teh 2006, section 5): run ``n_gibbs`` steps of
    block Gibbs sampling in the top RBM (layers h_{L-1} <-> h_L) from ``h0`` (states of h_{L-1};
    random Bernoulli(1/2) by default), then one ancestral top-down pass through the directed
    layers,

        h_{l-1} ~ p(h_{l-1} | h_l) = Bernoulli(sigmoid(b_l + W_l h_l)),   l = L-1, ..., 1,

    the bottom one with the data's units (``visible``: Bernoulli, or N(b_1 + W_1 h_1, I) for
    Gaussian). Returns samples v of shape (n_samples, n_visible), and with ``return_mean``
    also their conditional means E[v | h_1] (for a one-RBM stack, E[v | h] of the last step)."""
    sizes = _sizes(stack)
    check_visible(visible)
    top = stack[-1]
    top_visible = visible if len(stack) == 1 else "bernoulli"
    k_init, k_gibbs, k_down = jax.random.split(rng, 3)
    if h0 is None:
        h0 = init_chains(k_init, n_samples, sizes[-2], top_visible, top["W"].dtype)
    else:
        h0 = jnp.broadcast_to(jnp.asarray(h0, top["W"].dtype), (n_samples, sizes[-2]))
    h, mean = gibbs_chain(top, h0, k_gibbs, n_gibbs, top_visible, return_mean=True)
    for layer in range(len(stack) - 2, -1, -1):
        layer_visible = visible if layer == 0 else "bernoulli"
        mean = p_v_given_h(stack[layer], h, layer_visible)
        h = sample_visible_from_mean(jax.random.fold_in(k_down, layer), mean, layer_visible)
    return (h, mean) if return_mean else h


def to_mlp_params(stack, num_outputs: int, rng, scale: float = 0.01) -> dict:
    """The ``params`` pytree of ``jdl.nn.MLP(hidden=(n_1, ..., n_L), activation='sigmoid',
    num_outputs=num_outputs)`` initialised from the DBN's recognition weights (Hinton &
    Salakhutdinov 2006): hidden layer l computes sigmoid(x_{l-1} W_l + c_l), i.e.

        Dense_{l-1} = {'kernel': W_l, 'bias': c_l},        l = 1 .. L,

    so the MLP's hidden activations are exactly :func:`propagate_up`'s probabilities; the
    output layer Dense_L is fresh: kernel ~ N(0, scale^2) of shape (n_L, num_outputs) drawn
    with ``rng``, bias 0. The visible biases b_l (generative direction) are dropped."""
    _sizes(stack)
    if num_outputs <= 0:
        raise ValueError(f"num_outputs must be positive, got {num_outputs}")
    params = {f"Dense_{i}": {"kernel": rbm["W"], "bias": rbm["c"]}
              for i, rbm in enumerate(stack)}
    top = stack[-1]["W"]
    params[f"Dense_{len(stack)}"] = {
        "kernel": scale * jax.random.normal(rng, (top.shape[1], num_outputs), top.dtype),
        "bias": jnp.zeros((num_outputs,), top.dtype)}
    return params
