"""The gradient-function protocol and its back-propagation instance.

A gradient function is any pure function

    grad_fn(params, model_state, batch, rng) -> (grads, new_model_state, metrics)

with ``grads`` shaped like ``params`` and ``metrics`` a dict of scalars holding at least 'loss'.
``backprop`` builds one from a Flax module and a loss by reverse-mode differentiation
(Rumelhart, Hinton & Williams 1986): grads = d loss(model(params, x), y) / d params, its
objective (``backprop_objective``) turned into a grad_fn by jdl.train.objective_grad_fn.
Contrastive divergence (jdl.rbm) and RTRL (jdl.rnn) bring their own and plug into the same
step.

An evaluation function is ``eval_fn(params, model_state, batch) -> metrics`` where each metric
is the mean over the unmasked examples of ``batch['mask']``.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jdl.losses import accuracy, get_loss
from jdl.train.guards import DataError
from jdl.train.objective import objective_grad_fn


def classification_metrics(outputs, batch, mask=None) -> dict:
    y = batch["y"]
    if jnp.issubdtype(y.dtype, jnp.integer) and outputs.ndim == 2:
        return {"accuracy": accuracy(outputs, y, mask)}
    return {}


def _split_variables(params, model_state):
    variables = {"params": params, **model_state}
    return variables, [k for k in model_state]


def _output_shape(model, x_key, x, name):
    """Per-example shape of the model's output on one example (jax.eval_shape: no compute)."""
    try:
        out = jax.eval_shape(lambda v: model.init_with_output(jax.random.PRNGKey(0), v,
                                                              train=False)[0], x[:1])
    except Exception as e:  # flax/jax raise many types; name the argument
        raise DataError(f"{name}[{x_key!r}] of per-example shape {tuple(x.shape[1:])} and dtype "
                        f"{x.dtype} does not fit the model: {str(e).splitlines()[0][:300]}") from e
    return tuple(getattr(out, "shape", ())[1:])


def data_checker(model, loss="cross_entropy", x_key: str = "x", y_key: str = "y",
                 integer_inputs: bool = False) -> Callable:
    """check(data, name): refuses, before training, data that ``backprop(model, loss)`` would
    train on silently or fail on deep inside JAX; each DataError names the argument, what was
    expected and what came.

    Inputs: floating point (integer pixels, e.g. uint8, must be cast and scaled explicitly;
    ``integer_inputs=True`` allows integer ids, e.g. for an embedding). Targets, for the named
    losses, against the model's output shape (jax.eval_shape on one example; K = its last
    axis): 'cross_entropy' integer labels of the output's shape without its last axis, in
    [0, K); 'quadratic' the same for integer labels (one-hot encoded), else targets of the
    output's shape. A loss given as a function is not checked."""
    def check(data: dict, name: str = "data") -> None:
        x, y = (v if hasattr(v, "dtype") else np.asarray(v)
                for v in (data[x_key], data.get(y_key, np.zeros(0))))
        if not integer_inputs and not jnp.issubdtype(x.dtype, jnp.floating):
            raise DataError(f"{name}[{x_key!r}]: expected floating-point inputs, got {x.dtype}; "
                            f"cast and scale them first (e.g. x.astype(np.float32) / 255), or "
                            f"pass backprop(..., integer_inputs=True) for integer ids")
        if y_key not in data or not isinstance(loss, str):
            return
        out = _output_shape(model, x_key, x, name)
        if loss == "cross_entropy" or jnp.issubdtype(y.dtype, jnp.integer):
            check_class_labels(y, out, f"{name}[{y_key!r}]", loss)
        elif tuple(y.shape[1:]) != out:
            raise DataError(f"{name}[{y_key!r}]: expected targets of shape (N, "
                            f"{', '.join(map(str, out))}) like the model's outputs, got "
                            f"{tuple(y.shape)}")
    return check


def check_class_labels(y, out_shape: tuple, name: str, loss: str) -> None:
    """Integer labels of shape (N, *out_shape[:-1]) in [0, out_shape[-1])."""
    k, want = out_shape[-1] if out_shape else 1, out_shape[:-1]
    shape = "(N" + "".join(f", {d}" for d in want) + ")"
    if not jnp.issubdtype(y.dtype, jnp.integer):
        raise DataError(f"{name}: the {loss} loss expects integer class labels {shape} in "
                        f"[0, {k}), got dtype {y.dtype}")
    if tuple(y.shape[1:]) != want:
        raise DataError(f"{name}: expected class labels of shape {shape} for a model with "
                        f"outputs (N, {', '.join(map(str, out_shape))}), got {tuple(y.shape)}")
    y = np.asarray(y)
    bad = int(np.sum((y < 0) | (y >= k)))
    if bad:
        raise DataError(f"{name}: labels must lie in [0, {k}) (the model has {k} outputs), "
                        f"got range [{int(y.min())}, {int(y.max())}] ({bad} of {y.size} outside)")


def backprop_objective(model, loss="cross_entropy", metrics: Callable = classification_metrics,
                       x_key: str = "x", y_key: str = "y") -> Callable:
    """objective(params, model_state, batch, rng) -> (loss(model(x), y), (metrics, new state))
    of a Flax module in training mode, called as ``model.apply(variables, x, train=True)`` with
    a 'dropout' rng; mutable collections (e.g. batch statistics) are threaded through
    ``model_state`` here, and only here."""
    loss_fn = get_loss(loss)

    def objective(params, model_state, batch, rng):
        variables, mutable = _split_variables(params, model_state)
        out = model.apply(variables, batch[x_key], train=True, rngs={"dropout": rng},
                          mutable=mutable or False)
        out, new_state = out if mutable else (out, model_state)
        return loss_fn(out, batch[y_key]), (metrics(out, batch), dict(new_state))

    return objective


def backprop(model, loss="cross_entropy", metrics: Callable = classification_metrics,
             x_key: str = "x", y_key: str = "y", integer_inputs: bool = False) -> Callable:
    """grad_fn for a Flax module trained by back-propagation on ``loss(model(x), y)``:
    ``objective_grad_fn(backprop_objective(model, loss, metrics, x_key, y_key))``.

    ``grad_fn.check_data`` is ``data_checker(model, loss, x_key, y_key, integer_inputs)``,
    which ``fit`` calls on its data (through make_train_step).
    """
    grad_fn = objective_grad_fn(backprop_objective(model, loss, metrics, x_key, y_key))
    grad_fn.check_data = data_checker(model, loss, x_key, y_key, integer_inputs)
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
