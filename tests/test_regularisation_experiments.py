"""The config's momentum schedule mu(t) against a hand-stepped update."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from jdl.experiment import ExperimentConfig, build_optimizer, optimizer_schedules


def test_config_increasing_momentum_is_the_hand_stepped_update():
    """momentum_schedule 'increasing': u(t) = -lambda(t) g(t) + mu(t) u(t-1) with the cosine
    lambda(t) = lambda0 (1 + cos(pi t / T)) / 2 and Sutskever et al.'s
    mu(t) = min(1 - 1 / (2 (floor(t / every) + 1)), mu_max), every = momentum_every_epochs *
    steps per epoch; a float momentum is the constant mu."""
    import optax
    spe, lam0, mu_max = 4, 0.1, 0.8
    cfg = ExperimentConfig(epochs=3, learning_rate=lam0, momentum=mu_max, schedule="cosine",
                           momentum_schedule="increasing", momentum_every_epochs=0.5)
    lam, mu = optimizer_schedules(cfg, spe)
    every, T = 2, 3 * spe

    def lam_of(t):
        return lam0 * (1 + math.cos(math.pi * min(t, T) / T)) / 2

    def mu_of(t):
        return min(1 - 1 / (2 * (t // every + 1)), mu_max)
    assert [round(float(mu(t)), 6) for t in range(9)] == [
        round(mu_of(t), 6) for t in range(9)] == [0.5, 0.5, 0.75, 0.75, 0.8, 0.8, 0.8, 0.8, 0.8]
    for increasing in (True, False):
        c = cfg if increasing else dataclasses.replace(cfg, momentum_schedule="constant")
        tx = build_optimizer(c, spe)
        w = np.array([0.5, -1.5, 2.0])
        params, u = {"w": w.astype(np.float32)}, np.zeros(3)
        state = tx.init(params)
        for t in range(T):
            g = w * np.array([1.0, 3.0, 0.5])             # gradient of a quadratic bowl
            upd, state = tx.update({"w": np.asarray(g, np.float32)}, state, params)
            params = optax.apply_updates(params, upd)
            u = -lam_of(t) * g + (mu_of(t) if increasing else mu_max) * u
            w = w + u
            np.testing.assert_allclose(params["w"], w, rtol=1e-5, atol=1e-6)


def test_config_momentum_schedule_refusals():
    with pytest.raises(ValueError, match="momentum_every_epochs"):
        ExperimentConfig(momentum_schedule="increasing", momentum_every_epochs=0.0).validate()
    with pytest.raises(ValueError, match="needs optimizer sgd"):
        ExperimentConfig(momentum_schedule="increasing", optimizer="adam").validate()
