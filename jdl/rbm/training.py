"""Training one RBM by contrastive divergence with the common engine: ``contrastive_divergence``
as the grad_fn of ``jdl.train.make_train_step``, any optax transform (momentum, weight decay,
schedules), and ``jdl.train.fit`` for epochs, progress bar, metrics and resumable checkpoints.

One update on a batch of N training vectors (Hinton 2002; the lecture's "CD-k" slide),

    W <- W + lr ( <v h^T>_data - <v h^T>_k ),  b <- b + lr ( <v>_data - <v>_k ),
    c <- c + lr ( <h>_data - <h>_k ),

with <.>_k the statistics after k Gibbs steps from the data (CD-k) or from the persistent
chains (PCD-k, Tieleman 2008), the batch means taken as in scikit-learn's BernoulliRBM (whose
``learning_rate`` is this ``lr``), then whatever ``tx`` adds (momentum, weight decay).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jdl.losses import masked_mean
from jdl.rbm.conditionals import p_h_given_v, p_v_given_h
from jdl.rbm.contrastive_divergence import contrastive_divergence, init_chains
from jdl.rbm.energy import check_bernoulli_data, check_visible, free_energy, init_params
from jdl.train import create_state, fit, make_train_step
from jdl.parallel.compilation_cache import memoize
from jdl.train.greedy import flatten_examples
from jdl.train.loop import SHORT_STEPS_PER_CALL


def rbm_train_setup(params, rng, tx: optax.GradientTransformation, *, batch_size: int,
                    k: int = 1, persistent: bool = False, visible: str = "bernoulli",
                    dtype=None, **cd_options):
    """(train_step, initial TrainState) of CD-k / PCD-k for the RBM ``params``:
    ``make_train_step(contrastive_divergence(k, persistent, visible, **cd_options), tx)`` and
    ``create_state(params, tx, k_train, model_state)``, where ``k_chains, k_train =
    split(rng)`` and PCD's ``model_state['chains']`` are ``init_chains(k_chains, batch_size,
    n_visible, visible, dtype)`` (one persistent chain per batch example; ``dtype`` defaults
    to W's)."""
    dtype = params["W"].dtype if dtype is None else dtype
    k_chains, k_train = jax.random.split(rng)
    n_visible = params["W"].shape[0]
    model_state = ({"chains": init_chains(k_chains, batch_size, n_visible, visible, dtype)}
                   if persistent else {})
    state = create_state(params, tx, k_train, model_state)
    step = memoize(cd_train_step, tx, k=k, persistent=persistent, visible=visible, **cd_options)
    return step, state


def rbm_eval_fn(visible: str = "bernoulli", x_key: str = "x"):
    """eval_fn(params, model_state, batch) -> masked means over held-out examples of

        reconstruction_error = mean_i (v_i - v^_i)^2,  v^ = E[v | h^], h^ = p(h = 1 | v)
                               (the deterministic up-down pass of
                               ``jdl.rbm.inference.reconstruction_error``),
        free_energy          = F(v)   (``jdl.rbm.free_energy``),

    and ``loss`` = reconstruction_error. Training reports the same free energy of the
    training batches: a validation free energy drifting above it is Hinton's sign of
    overfitting (2010, "A practical guide to training RBMs", section 6). The training
    reconstruction error of ``contrastive_divergence`` samples h, so it runs a little above
    this mean-field one."""
    check_visible(visible)

    def eval_fn(params, model_state, batch):
        v = flatten_examples(batch[x_key]).astype(params["W"].dtype)
        recon = p_v_given_h(params, p_h_given_v(params, v), visible)
        err = jnp.mean(jnp.square(v - recon), axis=-1)
        mask = batch.get("mask")
        metrics = {"reconstruction_error": masked_mean(err, mask),
                   "free_energy": masked_mean(free_energy(params, v, visible), mask)}
        return {"loss": metrics["reconstruction_error"], **metrics}

    return eval_fn


def cd_train_step(tx: optax.GradientTransformation, **cd_options):
    """``make_train_step(contrastive_divergence(**cd_options), tx)``; train_rbm memoises it on
    (tx, options), so calls with the same optimiser object and options share one step, which
    fit compiles once per process and shape (jdl.parallel.compilation_cache)."""
    return make_train_step(contrastive_divergence(**cd_options), tx)


def train_rbm(x, params, rng, *, epochs: int, batch_size: int, tx: optax.GradientTransformation,
              k: int = 1, persistent: bool = False, visible: str = "bernoulli",
              seed: int = 0, workdir: str | None = None, resume: bool = False,
              progress: bool = False, verbose: bool = True, log_every: int = 100,
              init_scale: float = 0.01, devices=None, parallel: str = "sharded",
              steps_per_call: int = SHORT_STEPS_PER_CALL, **cd_options):
    """Train an RBM on ``x`` (n examples, any trailing shape, flattened) by CD-k or PCD-k.

    ``params``: an RBM params pytree to start from, or an int, the number of hidden units of a
    fresh RBM (``jdl.rbm.init_params(fold_in(rng, 0), ..., init_scale)``). The persistent
    chains (PCD) start from ``init_chains`` and the Gibbs noise from the key
    fold_in(rng, 1) split in two; fit's batches carry global example indices (``'index'``), so the
    noise of example n at step t is a function of (rng, t, n) only. ``cd_options`` go to
    ``contrastive_divergence`` (sparsity_target, negative_statistics, ...). With ``workdir``,
    fit writes metrics.jsonl and checkpoints there, and ``resume=True`` continues a killed run.
    ``progress`` / ``verbose``: fit's progress bar (on a terminal) and per-epoch lines.
    ``devices`` / ``parallel`` go to fit (jdl.parallel: ``batch_size`` is the global batch;
    PCD's chains are split across the devices with their examples). ``steps_per_call``:
    fit's k steps per compiled call (bit-identical results for every k; the default,
    jdl.train.loop.SHORT_STEPS_PER_CALL, was chosen by benchmarks/steps_per_call.py).

    Bernoulli visible units take data in [0, 1] (binary, or probabilities as in Hinton's
    practical guide, section 3.2); other values raise DataError before training.

    Returns ``jdl.train.FitResult``: ``.state.params`` is the trained RBM, ``.history`` its
    per-epoch CD metrics (reconstruction error, free energies, hidden activity), ``.train_time``
    the seconds spent in training steps (compilation excluded, ``.compile_time``).
    """
    if check_visible(visible) == "bernoulli":
        check_bernoulli_data(x, "train_rbm x")
    data = flatten_examples(x)
    n_visible = data.shape[1]
    if isinstance(params, (int, np.integer)):
        params = init_params(jax.random.fold_in(rng, 0), n_visible, int(params), init_scale,
                             dtype=data.dtype)
    if params["W"].shape[0] != n_visible:
        raise ValueError(f"the RBM has {params['W'].shape[0]} visible units, the data "
                         f"{n_visible} features per example")
    step, state = rbm_train_setup(params, jax.random.fold_in(rng, 1), tx, batch_size=batch_size,
                                  k=k, persistent=persistent, visible=visible, dtype=data.dtype,
                                  **cd_options)
    return fit(step, state, {"x": data},
               epochs=epochs, batch_size=batch_size, seed=seed, workdir=workdir,
               resume=resume, progress=progress, verbose=verbose, log_every=log_every,
               tensorboard=workdir is not None, devices=devices, parallel=parallel,
               steps_per_call=steps_per_call)
