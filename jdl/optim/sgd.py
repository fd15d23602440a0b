"""Stochastic gradient descent with the lecture's momentum, as optax compositions.

The lecture's update (slide 'Recall of back-prop principle'):

    W(t+1) = W(t) - lambda(t) grad_W Q(t) + mu(t) (W(t) - W(t-1))

i.e. the heavy-ball update u(t) = -lambda(t) g(t) + mu(t) u(t-1), W(t+1) = W(t) + u(t) (Polyak
1964; also Keras' SGD). It is ``scale_by_learning_rate(lambda)`` followed by ``trace(mu)``: the
learning rate enters before the momentum buffer, so a decreasing lambda(t) only damps new
gradients (optax.sgd puts it after, which rescales the whole buffer; both agree for constant
lambda). The momentum mu(t) (the lecture's "mu(t) momentum") is a float or, like lambda(t), any
optax schedule: a function of the update count t = 0, 1, 2, ..., stepped with the update
(:func:`scheduled_trace`), e.g. the increasing momentum of Sutskever et al. 2013
(jdl.optim.schedules.increasing_momentum). The gradient g may carry a weight-decay term (see
jdl.optim.weight_decay) and be clipped first, against exploding gradients (the lecture's RNN
part):

- by value, ``clip_value=c``: each component g_i -> max(-c, min(c, g_i)) (optax.clip), as in
  Mikolov's RNNLM and Keras' ``clipvalue``; it changes the gradient's direction;
- by global norm, ``clip_norm=c``: g -> g * min(1, c / ||g||) over all parameters together
  (optax.clip_by_global_norm; Pascanu, Mikolov & Bengio 2013), which keeps the direction.

With both, clipping by value comes first, then by norm, then the weight-decay term is added
(so the penalty's gradient itself is never clipped).
"""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jdl.optim.schedules import _check_lr
from jdl.optim.weight_decay import weight_decay


class ScheduledTraceState(NamedTuple):
    count: jax.Array          # updates done so far, t
    trace: Any                # u(t-1), one leaf per parameter


def scheduled_trace(mu, nesterov: bool = False) -> optax.GradientTransformation:
    """optax.trace with a momentum schedule: at update t (t = 0, 1, ... counted by the state)

        u(t) = g(t) + mu(t) u(t-1),   u(-1) = 0,   the update is u(t)
        (nesterov: g(t) + mu(t) u(t), as optax.trace)

    ``mu`` a function of the update count (an optax schedule); the buffer keeps the dtype of
    the updates. Preceded by ``scale_by_learning_rate`` it is the lecture's
    u(t) = -lambda(t) g(t) + mu(t) u(t-1)."""
    if not callable(mu):
        raise TypeError(f"scheduled_trace needs a schedule (a function of the step) for mu, "
                        f"got {type(mu).__name__}; use optax.trace for a constant")

    def init_fn(params):
        return ScheduledTraceState(count=jnp.zeros([], jnp.int32),
                                   trace=jax.tree.map(jnp.zeros_like, params))

    def update_fn(updates, state, params=None):
        del params
        m = mu(state.count)
        f = lambda g, t: g + jnp.asarray(m, t.dtype) * t
        new_trace = jax.tree.map(f, updates, state.trace)
        updates = jax.tree.map(f, updates, new_trace) if nesterov else new_trace
        return updates, ScheduledTraceState(count=optax.safe_increment(state.count),
                                            trace=new_trace)

    return optax.GradientTransformation(init_fn, update_fn)


def momentum(learning_rate, mu=0.9, nesterov: bool = False) -> optax.GradientTransformation:
    """Heavy-ball momentum with learning rate (float or schedule) inside the buffer; ``mu`` a
    float in [0, 1) (optax.trace, no buffer for 0) or a schedule mu(t) (:func:`scheduled_trace`;
    mu(0) is checked to lie in [0, 1))."""
    if callable(mu):
        mu0 = float(mu(0))
        if not 0.0 <= mu0 < 1.0:
            raise ValueError(f"momentum schedule must give values in [0, 1), got mu(0) = {mu0}")
        return optax.chain(optax.scale_by_learning_rate(learning_rate),
                           scheduled_trace(mu, nesterov))
    if not 0.0 <= mu < 1.0:
        raise ValueError(f"momentum must be in [0, 1), got {mu}")
    parts = [optax.scale_by_learning_rate(learning_rate)]
    if mu > 0:
        parts.append(optax.trace(decay=mu, nesterov=nesterov))
    return optax.chain(*parts)


def sgd(learning_rate, mu=0.0, *, l2: float = 0.0, l1: float = 0.0,
        penalty_start_step: int = 0, clip_norm: float | None = None,
        nesterov: bool = False, clip_value: float | None = None) -> optax.GradientTransformation:
    """SGD on the lecture's regularised cost: clip by value (``clip_value``) -> clip by global
    norm (``clip_norm``) -> + grad of (l2 sum W^2 + l1 sum |W|) -> momentum.

    ``learning_rate`` and ``mu`` (the momentum, the lecture's mu(t)) are floats or optax schedules (see jdl.optim.schedules
    and :func:`momentum`); ``clip_value``
    and ``clip_norm`` are None (no clipping) or > 0.
    """
    if not callable(learning_rate):
        _check_lr(learning_rate)
    return optax.chain(*_pre(l2, l1, penalty_start_step, clip_norm, clip_value),
                       momentum(learning_rate, mu, nesterov))


def adam(learning_rate, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8, *, l2: float = 0.0,
         l1: float = 0.0, penalty_start_step: int = 0, clip_norm: float | None = None,
         clip_value: float | None = None):
    """Adam (Kingma & Ba 2015) on the same regularised cost (the penalty is in the gradient, as in
    the lecture, not decoupled as in AdamW); the gradient clipped first by value
    (``clip_value``) and by global norm (``clip_norm``), as in ``sgd``."""
    if not callable(learning_rate):
        _check_lr(learning_rate)
    return optax.chain(*_pre(l2, l1, penalty_start_step, clip_norm, clip_value),
                       optax.scale_by_adam(b1, b2, eps), optax.scale_by_learning_rate(learning_rate))


def _pre(l2, l1, start, clip_norm, clip_value=None):
    parts = []
    if clip_value is not None:
        if not clip_value > 0:
            raise ValueError(f"clip_value must be > 0, got {clip_value}")
        parts.append(optax.clip(clip_value))
    if clip_norm is not None:
        if clip_norm <= 0:
            raise ValueError(f"clip_norm must be > 0, got {clip_norm}")
        parts.append(optax.clip_by_global_norm(clip_norm))
    if l2:
        parts.append(weight_decay(l2, p=2, start_step=start))
    if l1:
        parts.append(weight_decay(l1, p=1, start_step=start))
    return parts
