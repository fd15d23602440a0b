"""Contrastive divergence (Hinton 2002) and persistent contrastive divergence (Tieleman 2008):
the RBM's learning rule as a ``grad_fn`` for ``jdl.train.make_train_step``.

The log-likelihood gradient of an RBM is a difference of two expectations,

    d log p(v) / dW = <v h^T>_data - <v h^T>_model
    d log p(v) / db = <v>_data     - <v>_model
    d log p(v) / dc = <h>_data     - <h>_model

(the lecture's "positive gradient" v h^T from a training sample minus the "negative gradient"
v' h'^T from a reconstruction). The positive phase is exact: h is summed out by using
p(h | v_data) for the statistics (Hinton 2010, "practical guide", section 3). The model
expectation is estimated from Gibbs chains:

- CD-k (Hinton 2002): each chain starts at its training vector and runs k block Gibbs steps,
  v_0 = v_data -> h_0 -> v_1 -> ... -> v_k, and the negative statistics are v_k p(h | v_k)^T.
- PCD-k (Tieleman 2008, "Training restricted Boltzmann machines using approximations to the
  likelihood gradient"): the chains are not restarted at the data; their visible states persist
  in ``model_state['chains']`` (shape (batch_size, n_visible)) and continue k steps per update.

The step DESCENDS along the gradient it is given, so the gradient returned is that of the negative
log-likelihood: negative phase minus positive phase, averaged over the batch.

Metrics (all scalars):

- ``loss`` and ``reconstruction_error``: the mean squared reconstruction error of one Gibbs step,
  mean_{n,i} (v_ni - E[v_i | h_n])^2 with h_n ~ p(h | v_n) -- the number Hinton's code prints.
  It is NOT the quantity CD optimises; use ``jdl.rbm.likelihood`` for the log-likelihood.
- ``free_energy``: mean F(v) over the batch;
- ``free_energy_gap``: mean F(v_data) - mean F(v_negative), negative when the model gives the
  data more probability than its own samples;
- ``hidden_activity``: mean p(h_j = 1 | v_data) over the batch and the hidden units.

Randomness: each example's Gibbs noise comes from ``fold_in(rng, index)`` with ``index`` the
batch's ``'index'`` entry (global example indices) when present, else its position in the batch;
with global indices (e.g. ``fit(step, state, {'x': X, 'index': np.arange(len(X))}, ...)``) and
a vmap-invariant key (threefry, JAX's default; not 'rbg' or 'unsafe_rbg', whose vmapped draws
are also slow on CPU), the draws do not depend on how a batch is split across devices.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from jdl.rbm.conditionals import bernoulli, p_v_given_h, sample_visible_from_mean
from jdl.rbm.energy import check_visible, free_energy, free_energy_from_input, hidden_input
from jdl.rbm.gibbs import gibbs_step


def example_keys(rng, batch_size: int, index=None):
    """One PRNG key per example: fold_in(rng, index_n), index_n defaulting to n."""
    index = jnp.arange(batch_size) if index is None else jnp.asarray(index)
    return jax.vmap(jax.random.fold_in, in_axes=(None, 0))(rng, index)


def init_chains(rng, batch_size: int, n_visible: int, visible: str = "bernoulli",
                dtype=jnp.float32):
    """Initial visible states of the persistent chains: Bernoulli(1/2) for binary visible
    units, N(0, I) for Gaussian ones. Use as ``model_state={'chains': init_chains(...)}``
    (Tieleman 2008 starts them anywhere; a batch of training vectors works too)."""
    if check_visible(visible) == "gaussian":
        return jax.random.normal(rng, (batch_size, n_visible), dtype)
    return bernoulli(rng, jnp.full((batch_size, n_visible), 0.5, dtype))


def _check_options(k, visible, negative_statistics, sparsity_target) -> None:
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer number of Gibbs steps, got {k!r}")
    check_visible(visible)
    if negative_statistics not in ("sample", "mean"):
        raise ValueError(f"negative_statistics must be 'sample' or 'mean', got "
                         f"{negative_statistics!r}")
    if sparsity_target is not None and not 0.0 < sparsity_target < 1.0:
        raise ValueError(f"sparsity_target must lie in (0, 1), got {sparsity_target}")


def _chain_start(model_state, v_data):
    """PCD's persistent chains, one per batch example, in the data's dtype."""
    if "chains" not in model_state:
        raise KeyError("persistent CD needs model_state['chains'] of shape "
                       "(batch_size, n_visible): see jdl.rbm.init_chains")
    v_start = model_state["chains"]
    if v_start.shape != v_data.shape:
        raise ValueError(f"model_state['chains'] has shape {v_start.shape}, the batch "
                         f"{v_data.shape}: one persistent chain per batch example")
    return v_start.astype(v_data.dtype)


def _negative_chain(params, v0, ph, key, k, persistent, reconstruction, visible):
    """One example's negative phase: the reconstruction E[v | h ~ p(h | v_data)] (None for
    PCD without ``reconstruction``) and the chain's last state and its mean after k Gibbs
    steps, from the data (CD: the reconstruction step is the chain's first) or from the
    persistent chain ``v0`` (PCD)."""
    k_h, k_v, k_chain = jax.random.split(key, 3)
    if persistent and not reconstruction:
        recon = None
    else:
        recon = p_v_given_h(params, bernoulli(k_h, ph), visible)    # one Gibbs step
    if persistent:
        init, steps = (v0, v0), k
    else:  # CD: the reconstruction step is the chain's first step
        init, steps = (sample_visible_from_mean(k_v, recon, visible), recon), k - 1

    def body(carry, step_key):
        return gibbs_step(params, carry[0], step_key, visible, return_mean=True), None

    (v_neg, mean_neg), _ = jax.lax.scan(body, init, jax.random.split(k_chain, steps))
    return recon, v_neg, mean_neg


def _add_sparsity_push(grads, v_data, push):
    """Hinton's sparsity term: ``push`` = cost (q - p) added to the hidden biases' gradient,
    and push_j <v_i> to the weights'."""
    return {**grads, "c": grads["c"] + push,
            "W": grads["W"] + jnp.mean(v_data, axis=0)[:, None] * push[None, :]}


def contrastive_divergence(k: int = 1, persistent: bool = False, visible: str = "bernoulli",
                           sparsity_target: float | None = None, sparsity_cost: float = 0.0,
                           sparsity_decay: float = 0.95, negative_statistics: str = "sample",
                           reconstruction: bool = True, x_key: str = "x",
                           index_key: str = "index"):
    """grad_fn(params, model_state, batch, rng) -> (grads, model_state, metrics) for CD-k or
    PCD-k (``persistent=True``, chains in ``model_state['chains']``).

    ``negative_statistics``: 'sample' uses the sampled visible state v_k (and p(h | v_k)) for the
    negative phase, an unbiased estimate of the model expectation once the chain has mixed;
    'mean' uses its conditional mean E[v_k | h_{k-1}] instead (Hinton 2010, section 3.3:
    "use real-valued probabilities for both the data and the reconstructions"), less noisy
    but biased. Persistent chains always carry the sampled states.

    Sparsity (Hinton 2010, section 11; Lee, Ekanadham & Ng 2008): with a ``sparsity_target`` p,
    the hidden units' mean activity q is pushed toward p by adding ``sparsity_cost * (q_j - p)``
    to the gradient of hidden bias c_j and ``sparsity_cost * (q_j - p) * <v_i>`` to that of
    W_ij (the derivative of the cross-entropy penalty w.r.t. the unit's total input). q is the
    batch mean of p(h | v_data), or, when ``model_state`` holds 'hidden_activity', the running
    average q <- decay q + (1 - decay) q_batch, stored back there.

    ``reconstruction=False`` skips the reconstruction of the data, which costs PCD one more
    matrix product per update (CD-k gets it free: it is the chain's first step); ``loss`` is
    then the free-energy gap, mean F(v_data) - mean F(v_negative), whose gradient with the
    negative samples held fixed is exactly the CD update (it is what CD descends, batch by
    batch), and there is no ``reconstruction_error`` metric.
    """
    _check_options(k, visible, negative_statistics, sparsity_target)

    def grad_fn(params, model_state, batch, rng):
        dtype = params["W"].dtype
        v_data = jnp.asarray(batch[x_key]).astype(dtype)
        v_data = v_data.reshape(v_data.shape[0], -1)
        n, n_visible = v_data.shape
        if n_visible != params["W"].shape[0]:
            raise ValueError(f"batch[{x_key!r}] has {n_visible} visible units per example, the "
                             f"RBM has {params['W'].shape[0]}")
        v_start = _chain_start(model_state, v_data) if persistent else v_data
        keys = example_keys(rng, n, batch.get(index_key))
        pre_data = hidden_input(params, v_data)
        ph_data = jax.nn.sigmoid(pre_data)                     # p(h | v_data), positive phase
        recon, v_neg, mean_neg = jax.vmap(
            lambda v0, ph, key: _negative_chain(params, v0, ph, key, k, persistent,
                                                reconstruction, visible))(v_start, ph_data, keys)
        v_stat = v_neg if negative_statistics == "sample" else mean_neg
        pre_stat = hidden_input(params, v_stat)
        ph_neg = jax.nn.sigmoid(pre_stat)
        # <v h>_neg - <v h>_data as one product: [v_neg; v_data]^T [p_neg; -p_data] / n
        grads = {"W": jnp.concatenate([v_stat, v_data]).T
                 @ jnp.concatenate([ph_neg, -ph_data]) / n,
                 "b": jnp.mean(v_stat - v_data, axis=0),
                 "c": jnp.mean(ph_neg - ph_data, axis=0)}

        new_state = dict(model_state)
        if persistent:
            new_state["chains"] = v_neg.astype(model_state["chains"].dtype)
        q_batch = jnp.mean(ph_data, axis=0)
        if sparsity_target is not None:
            q = q_batch
            if "hidden_activity" in model_state:
                q = sparsity_decay * model_state["hidden_activity"] + (1 - sparsity_decay) * q
                new_state["hidden_activity"] = q
            grads = _add_sparsity_push(grads, v_data, sparsity_cost * (q - sparsity_target))

        f_data = jnp.mean(free_energy_from_input(params, v_data, pre_data, visible))
        f_neg = (free_energy_from_input(params, v_neg, pre_stat, visible)
                 if negative_statistics == "sample" else free_energy(params, v_neg, visible))
        gap = f_data - jnp.mean(f_neg)
        metrics = {"free_energy": f_data, "free_energy_gap": gap,
                   "hidden_activity": jnp.mean(q_batch)}
        if recon is None:
            metrics["loss"] = gap
        else:
            metrics["loss"] = metrics["reconstruction_error"] = jnp.mean(
                jnp.square(v_data - recon))
        return grads, new_state, metrics

    return grad_fn
