"""Decreasing learning rates lambda(t), t = optimiser step (optax schedules).

- constant:     lambda(t) = lambda0
- step:         lambda(t) = lambda0 * gamma ** floor(t / every)
- exponential:  lambda(t) = lambda0 * gamma ** (t / every)
- inverse_time: lambda(t) = lambda0 / (1 + decay * t)   (the 1/t schedule of Robbins & Monro 1951)
- cosine:       lambda(t) = lambda0 * (alpha + (1 - alpha) * (1 + cos(pi t / T)) / 2)  (Loshchilov & Hutter 2017)
"""
from __future__ import annotations

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
