"""Objectives and the one builder that turns an objective into a gradient function.

An objective is a pure scalar function of the parameters,

    objective(params, model_state, batch, rng) -> (loss, (metrics, new_model_state)),

with ``metrics`` a dict of values computed on the way (not differentiated) and
``new_model_state`` the model's updated non-parameter state (e.g. batch statistics; the given
one when nothing changes). ``objective_grad_fn`` differentiates it in reverse mode (Rumelhart,
Hinton & Williams 1986; jax.value_and_grad, one forward and one backward pass):

    grad_fn(params, model_state, batch, rng) -> (d loss / d params, new_model_state,
                                                 {'loss': loss, **metrics}),

the gradient-function protocol of jdl.train.make_train_step. Back-propagation
(jdl.train.backprop), the sequence losses of jdl.rnn (BPTT, each chunk of truncated BPTT) and
the autoencoder and VAE objectives of jdl.ae are objectives turned into grad_fns here; rules
whose gradient is not the reverse-mode derivative of one objective (contrastive divergence,
RTRL's forward sensitivities) write their grad_fn themselves and plug into the same step.
"""
from __future__ import annotations

from typing import Callable

import jax


def objective_grad_fn(objective: Callable) -> Callable:
    """grad_fn(params, model_state, batch, rng) -> (grads, new_model_state, metrics) of an
    ``objective(params, model_state, batch, rng) -> (loss, (metrics, new_model_state))``:
    grads = d loss / d params by reverse-mode differentiation, metrics = {'loss': loss,
    **metrics}. ``params`` may be any pytree (a tuple of parameter groups, a carry, ...)."""
    value_and_grad = jax.value_and_grad(objective, has_aux=True)

    def grad_fn(params, model_state, batch, rng):
        (loss, (metrics, new_state)), grads = value_and_grad(params, model_state, batch, rng)
        return grads, new_state, {"loss": loss, **metrics}

    return grad_fn
