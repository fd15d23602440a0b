"""The gradient-function protocol and its back-propagation instance.

A gradient function is any pure function

    grad_fn(params, model_state, batch, rng) -> (grads, new_model_state, metrics)

with ``grads`` shaped like ``params`` and ``metrics`` a dict of scalars holding at least 'loss'.
``backprop`` builds one from a Flax module and a loss by reverse-mode differentiation
(Rumelhart, Hinton & Williams 1986): grads = d loss(model(params, x), y) / d params. Contrastive
divergence (jdl.rbm) and RTRL (jdl.rnn) bring their own and plug into the same step.

An evaluation function is ``eval_fn(params, model_state, batch) -> metrics`` where each metric
is the mean over the unmasked examples of ``batch['mask']``.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from jdl.losses import accuracy, get_loss


def classification_metrics(outputs, batch, mask=None) -> dict:
    y = batch["y"]
    if jnp.issubdtype(y.dtype, jnp.integer) and outputs.ndim == 2:
        return {"accuracy": accuracy(outputs, y, mask)}
    return {}


def _split_variables(params, model_state):
    variables = {"params": params, **model_state}
    return variables, [k for k in model_state]


def backprop(model, loss="cross_entropy", metrics: Callable = classification_metrics,
             x_key: str = "x", y_key: str = "y") -> Callable:
    """grad_fn for a Flax module trained by back-propagation on ``loss(model(x), y)``.

    The module is called as ``model.apply(variables, x, train=True)`` with a 'dropout' rng;
    mutable collections (e.g. batch statistics) are threaded through ``model_state`` here, and
    only here.
    """
    loss_fn = get_loss(loss)

    def grad_fn(params, model_state, batch, rng):
        def objective(p):
            variables, mutable = _split_variables(p, model_state)
            out = model.apply(variables, batch[x_key], train=True, rngs={"dropout": rng},
                              mutable=mutable or False)
            out, new_state = out if mutable else (out, model_state)
            return loss_fn(out, batch[y_key]), (out, new_state)

        (value, (out, new_state)), grads = jax.value_and_grad(objective, has_aux=True)(params)
        return grads, dict(new_state), {"loss": value, **metrics(out, batch)}

    return grad_fn


def evaluate(model, loss="cross_entropy", metrics: Callable = classification_metrics,
             x_key: str = "x", y_key: str = "y") -> Callable:
    """eval_fn for a Flax module: loss and metrics in inference mode, masked means."""
    loss_fn = get_loss(loss)

    def eval_fn(params, model_state, batch):
        out = model.apply({"params": params, **model_state}, batch[x_key], train=False)
        mask = batch.get("mask")
        return {"loss": loss_fn(out, batch[y_key], mask), **metrics(out, batch, mask)}

    return eval_fn


def predict(model) -> Callable:
    """predict(params, model_state, x) -> outputs, in inference mode."""
    def predict_fn(params, model_state, x):
        return model.apply({"params": params, **model_state}, x, train=False)
    return predict_fn
