"""Decreasing learning rates lambda(t), t = optimiser step (optax schedules).

- constant:     lambda(t) = lambda0
- step:         lambda(t) = lambda0 * gamma ** floor(t / every)
- exponential:  lambda(t) = lambda0 * gamma ** (t / every)
- inverse_time: lambda(t) = lambda0 / (1 + decay * t)   (the 1/t schedule of Robbins & Monro 1951)
- cosine:       lambda(t) = lambda0 * (alpha + (1 - alpha) * (1 + cos(pi t / T)) / 2)  (Loshchilov & Hutter 2017)

and an increasing momentum mu(t) (jdl.optim.sgd takes any schedule for mu as well):

- increasing_momentum: mu(t) = min(1 - 2^(-1 - log2(floor(t / every) + 1)), mu_max)
  (Sutskever, Martens, Dahl & Hinton 2013, eq. 5: 0.5, 0.75, 0.833, 0.875, ... every ``every``
  steps, capped at mu_max)
"""
from __future__ import annotations

import jax.numpy as jnp
import optax


def _check_lr(lr):
    if not lr > 0:
        raise ValueError(f"learning rate must be > 0, got {lr}")


def constant(lr: float) -> optax.Schedule:
    _check_lr(lr)
    return optax.constant_schedule(lr)


def step_decay(lr: float, every: int, gamma: float = 0.1) -> optax.Schedule:
    _check_lr(lr)
    if every <= 0 or not 0 < gamma <= 1:
        raise ValueError(f"step decay needs every > 0 and 0 < gamma <= 1, got {every}, {gamma}")
    return optax.exponential_decay(lr, transition_steps=every, decay_rate=gamma, staircase=True)


def exponential(lr: float, every: int, gamma: float) -> optax.Schedule:
    _check_lr(lr)
    if every <= 0 or not 0 < gamma <= 1:
        raise ValueError(f"exponential decay needs every > 0 and 0 < gamma <= 1, got {every}, {gamma}")
    return optax.exponential_decay(lr, transition_steps=every, decay_rate=gamma)


def inverse_time(lr: float, decay: float) -> optax.Schedule:
    _check_lr(lr)
    if decay < 0:
        raise ValueError(f"inverse-time decay must be >= 0, got {decay}")
    return lambda t: lr / (1.0 + decay * t)


def cosine(lr: float, total_steps: int, alpha: float = 0.0) -> optax.Schedule:
    _check_lr(lr)
    if total_steps <= 0:
        raise ValueError(f"cosine schedule needs total_steps > 0, got {total_steps}")
    return optax.cosine_decay_schedule(lr, decay_steps=total_steps, alpha=alpha)


def increasing_momentum(mu_max: float = 0.99, every: int = 250) -> optax.Schedule:
    """Sutskever et al. 2013's momentum schedule, mu(t) = min(1 - 2^(-1 - log2(floor(t/every)
    + 1)), mu_max) = min(1 - 1 / (2 (floor(t/every) + 1)), mu_max): 0.5 for the first ``every``
    steps, then 0.75, 0.8333, 0.875, ... up to mu_max."""
    if not 0.0 <= mu_max < 1.0 or every <= 0:
        raise ValueError(f"increasing_momentum needs 0 <= mu_max < 1 and every > 0, got "
                         f"{mu_max}, {every}")
    return lambda t: jnp.minimum(1.0 - 0.5 / (jnp.floor_divide(t, every) + 1.0), mu_max)


def make_schedule(name: str, lr: float, *, total_steps: int = 1, every: int = 1,
                  gamma: float = 0.1, decay: float = 0.0, alpha: float = 0.0) -> optax.Schedule:
    """Build a schedule by name: constant, step, exponential, inverse_time, cosine."""
    if name == "constant":
        return constant(lr)
    if name == "step":
        return step_decay(lr, every, gamma)
    if name == "exponential":
        return exponential(lr, every, gamma)
    if name == "inverse_time":
        return inverse_time(lr, decay)
    if name == "cosine":
        return cosine(lr, total_steps, alpha)
    raise ValueError(f"unknown schedule {name!r}; known: constant, step, exponential, inverse_time, cosine")
