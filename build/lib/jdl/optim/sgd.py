"""Stochastic gradient descent with the lecture's momentum, as optax compositions.

The lecture's update (slide 'Recall of back-prop principle'):

    W(t+1) = W(t) - lambda(t) grad_W Q(t) + mu (W(t) - W(t-1))

i.e. the heavy-ball update u(t) = -lambda(t) g(t) + mu u(t-1), W(t+1) = W(t) + u(t) (Polyak 1964;
also Keras' SGD). It is ``scale_by_learning_rate(lambda)`` followed by ``trace(mu)``: the
learning rate enters before the momentum buffer, so a decreasing lambda(t) only damps new
gradients (optax.sgd puts it after, which rescales the whole buffer; both agree for constant
lambda). The gradient g may carry a weight-decay term (see jdl.optim.weight_decay) and be clipped
first, against exploding gradients (the lecture's RNN part):

- by value, ``clip_value=c``: each component g_i -> max(-c, min(c, g_i)) (optax.clip), as in
  Mikolov's RNNLM and Keras' ``clipvalue``; it changes the gradient's direction;
- by global norm, ``clip_norm=c``: g -> g * min(1, c / ||g||) over all parameters together
  (optax.clip_by_global_norm; Pascanu, Mikolov & Bengio 2013), which keeps the direction.

With both, clipping by value comes first, then by norm, then the weight-decay term is added
(so the penalty's gradient itself is never clipped).
"""
from __future__ import annotations

import optax

from jdl.optim.schedules import _check_lr
from jdl.optim.weight_decay import weight_decay


def momentum(learning_rate, mu: float = 0.9, nesterov: bool = False) -> optax.GradientTransformation:
    """Heavy-ball momentum with learning rate (float or schedule) inside the buffer."""
    if not 0.0 <= mu < 1.0:
        raise ValueError(f"momentum must be in [0, 1), got {mu}")
    parts = [optax.scale_by_learning_rate(learning_rate)]
    if mu > 0:
        parts.append(optax.trace(decay=mu, nesterov=nesterov))
    return optax.chain(*parts)


def sgd(learning_rate, momentum_: float = 0.0, *, l2: float = 0.0, l1: float = 0.0,
        penalty_start_step: int = 0, clip_norm: float | None = None,
        nesterov: bool = False, clip_value: float | None = None) -> optax.GradientTransformation:
    """SGD on the lecture's regularised cost: clip by value (``clip_value``) -> clip by global
    norm (``clip_norm``) -> + grad of (l2 sum W^2 + l1 sum |W|) -> momentum.

    ``learning_rate`` is a float or an optax schedule (see jdl.optim.schedules); ``clip_value``
    and ``clip_norm`` are None (no clipping) or > 0.
    """
    if not callable(learning_rate):
        _check_lr(learning_rate)
    return optax.chain(*_pre(l2, l1, penalty_start_step, clip_norm, clip_value),
                       momentum(learning_rate, momentum_, nesterov))


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
