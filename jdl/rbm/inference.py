"""Inference with a trained RBM (the lecture's slide "Use of trained RBM"): input completion,
generating representative samples, classification when trained on data together with its
label, and a look at the hidden units' weights. Pure functions over the params pytree
``{'W': (n_visible, n_hidden), 'b': (n_visible,), 'c': (n_hidden,)}``; every random function
takes an explicit PRNG key and runs under ``jax.jit`` (integer sizes static) and ``jax.vmap``.

- :func:`complete`: clamp some visible units and estimate E[v_free | v_clamped] with a clamped
  block Gibbs chain (Hinton 2002; Geman & Geman 1984).
- :func:`generate`: free-running block Gibbs chains, whose stationary distribution is the model's
  p(v) (Hinton 2002).
- :func:`reconstruction_error`: one deterministic up-down pass v -> p(h|v) -> p(v|h), the
  number Hinton's code prints while training (Hinton 2010, "practical guide", section 5).
- :func:`classify`, :func:`label_log_probs`: the "classification RBM" of Larochelle & Bengio
  2008 ("Classification using discriminative restricted Boltzmann machines", ICML), an RBM over
  the concatenation [x, one_hot(y)] (Hinton, Osindero & Teh 2006 train their top-level RBM the
  same way), whose p(y | x) is exact and cheap through the free energy.
- :func:`hidden_weight_images`: columns of W as images ("look at weights of hidden nodes:
  low-level features").
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from jdl.rbm.conditionals import p_h_given_v, p_v_given_h
from jdl.rbm.contrastive_divergence import init_chains
from jdl.rbm.energy import along_last_axis, check_visible, hidden_input, layer_sizes
from jdl.rbm.gibbs import gibbs_chain, gibbs_step


def complete(params, v, mask, rng, n_steps: int, burn_in: int | None = None,
             n_chains: int = 1, visible: str = "bernoulli"):
    """Input completion: estimate the conditional mean of the free visible units given the
    clamped ones,

        E[v_i | v_C] = sum_{v_F} v_i p(v_F | v_C),     i in F,

    with C = {i : mask_i = 1} (held at ``v``) and F the free units. A block Gibbs chain with the
    clamped units reset after every step (``jdl.rbm.gibbs_step``'s clamping) has stationary
    distribution p(v_F, h | v_C); the estimate is the Rao-Blackwellised time average of the
    conditional means of its visible states,

        E^[v_F | v_C] = 1 / (T - T0) sum_{t = T0+1}^{T} E[v_F | h_t],   h_t ~ p(h | v_t),

    over ``n_chains`` independent chains (a batch sharing ``rng``'s stream), T = ``n_steps``,
    T0 = ``burn_in`` (default T // 10). Free units start at their values in ``v``.

    ``v`` and ``mask`` have shape (..., n_visible) (``mask`` broadcast against ``v``; nonzero
    means clamped). Returns an array shaped like ``v``: the clamped units equal to ``v``, the
    free units their estimated conditional mean (probabilities for Bernoulli units)."""
    if burn_in is None:
        burn_in = n_steps // 10
    if not 0 <= burn_in < n_steps:
        raise ValueError(f"need 0 <= burn_in < n_steps, got burn_in={burn_in}, "
                         f"n_steps={n_steps}")
    if n_chains < 1:
        raise ValueError(f"n_chains must be positive, got {n_chains}")
    v = jnp.asarray(v, params["W"].dtype)
    mask = jnp.broadcast_to(jnp.asarray(mask).astype(bool), v.shape)
    v0 = jnp.broadcast_to(v, (n_chains,) + v.shape)

    def body(carry, xs):
        state, total = carry
        key, keep = xs
        state, mean = gibbs_step(params, state, key, visible, mask=mask, clamped=v,
                                 return_mean=True)
        return (state, total + jnp.where(keep, mean, jnp.zeros_like(mean))), None

    keep = jnp.arange(n_steps) >= burn_in
    (_, total), _ = jax.lax.scan(body, (v0, jnp.zeros_like(v0)),
                                 (jax.random.split(rng, n_steps), keep))
    estimate = jnp.sum(total, axis=0) / jnp.asarray(n_chains * (n_steps - burn_in), v.dtype)
    return jnp.where(mask, v, estimate)


def generate(params, rng, n_samples: int, n_steps: int, v0=None, visible: str = "bernoulli",
             return_mean: bool = False):
    """Draw ``n_samples`` representative samples from the model's p(v) by running as many
    independent block Gibbs chains for ``n_steps`` steps (Hinton 2002),

        h_t ~ p(h | v_t),    v_{t+1} ~ p(v | h_t),

    from ``v0`` (broadcast to (n_samples, n_visible)) or, by default, from random states
    (Bernoulli(1/2) for binary units, N(0, I) for Gaussian ones, ``init_chains``). Returns
    the final states v_n, shape (n_samples, n_visible), and with ``return_mean`` also their
    conditional means E[v_n | h_{n-1}] (the less noisy "probabilities" usually displayed).
    The chains are exact samplers only in the limit n_steps -> infinity."""
    check_visible(visible)
    n_visible, _ = layer_sizes(params)
    k_init, k_chain = jax.random.split(rng)
    if v0 is None:
        v0 = init_chains(k_init, n_samples, n_visible, visible, params["W"].dtype)
    else:
        v0 = jnp.broadcast_to(jnp.asarray(v0, params["W"].dtype), (n_samples, n_visible))
    return gibbs_chain(params, v0, k_chain, n_steps, visible, return_mean=return_mean)


def reconstruction_error(params, v, visible: str = "bernoulli"):
    """Mean squared error of one deterministic up-down pass (mean-field reconstruction):

        h^ = p(h = 1 | v) = sigmoid(c + v W),     v^ = E[v | h^] = sigmoid(b + W h^)
                                                        (b + W h^ for Gaussian units),
        error = mean_{n, i} (v_ni - v^_ni)^2,

    a scalar averaged over the examples and units of ``v`` (shape (..., n_visible)). A cheap
    training monitor (Hinton 2010, section 5), not the objective CD optimises: prefer
    ``jdl.rbm.log_likelihood`` or AIS to compare models."""
    v = jnp.asarray(v, params["W"].dtype)
    recon = p_v_given_h(params, p_h_given_v(params, v), visible)
    return jnp.mean(jnp.square(v - recon))


def label_log_probs(params, v, n_classes: int):
    """log p(y = c | v) of a classification RBM (Larochelle & Bengio 2008, eq. 2), an RBM over
    [v, e_y] (e_y the one-hot label, the LAST ``n_classes`` visible units):

        p(y = c | v) = exp(-F([v, e_c])) / sum_d exp(-F([v, e_d])),
        F([v, e_c]) = -v.b_v - b_y,c - sum_j softplus(c_j + (v W_v)_j + W_y,cj),

    exact, because the label layer's one-hot states can be enumerated (n_classes terms).
    ``v`` has shape (..., n_visible - n_classes); returns (..., n_classes)."""
    n_visible, _ = layer_sizes(params)
    n_data = n_visible - n_classes
    if n_classes < 2 or n_data < 0:
        raise ValueError(f"need 2 <= n_classes <= n_visible={n_visible}, got {n_classes}")
    v = jnp.asarray(v, params["W"].dtype)
    if v.shape[-1] != n_data:
        raise ValueError(f"v has {v.shape[-1]} units, the RBM has {n_data} data units "
                         f"(+ {n_classes} label units)")
    W_v, W_y = params["W"][:n_data], params["W"][n_data:]
    b_v, b_y = params["b"][:n_data], params["b"][n_data:]
    pre = hidden_input({"W": W_v, "c": params["c"]}, v)           # (..., n_hidden)
    free = pre[..., None, :] + along_last_axis(W_y, pre[..., None, :])
    neg_f = (along_last_axis(b_y, free[..., 0]) + jnp.sum(jax.nn.softplus(free), axis=-1)
             + (v @ b_v)[..., None])                              # -F([v, e_c]), (..., n_classes)
    return jax.nn.log_softmax(neg_f, axis=-1)


def classify(params, v, n_classes: int):
    """Predicted label of a classification RBM trained on [v, one_hot(label)] (label units
    last; Larochelle & Bengio 2008; Hinton, Osindero & Teh 2006):

        y^(v) = argmin_c F([v, e_c]) = argmax_c p(y = c | v),

    the most probable label under the model's exact p(y | v) (:func:`label_log_probs`).
    ``v`` has shape (..., n_visible - n_classes); returns int32 labels of shape (...)."""
    return jnp.argmax(label_log_probs(params, v, n_classes), axis=-1).astype(jnp.int32)


def hidden_weight_images(params, image_shape, n: int | None = None):
    """The receptive fields of the first ``n`` hidden units (all by default): column j of W,
    the weights w_.j from every visible unit to hidden unit j, reshaped to ``image_shape``
    (e.g. (28, 28)). Returns (n, *image_shape); plot them with a diverging colour map centred
    on 0 (e.g. ``jdl.runs.plots``)."""
    n_visible, n_hidden = layer_sizes(params)
    image_shape = tuple(int(s) for s in image_shape)
    size = 1
    for s in image_shape:
        size *= s
    if size != n_visible:
        raise ValueError(f"image_shape {image_shape} has {size} pixels, the RBM {n_visible} "
                         f"visible units")
    n = n_hidden if n is None else n
    if not 0 < n <= n_hidden:
        raise ValueError(f"n must lie in 1..{n_hidden}, got {n}")
    return params["W"][:, :n].T.reshape((n,) + image_shape)
