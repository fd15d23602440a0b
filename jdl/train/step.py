"""make_train_step: one pure update step for every model family.

    step(state, batch) -> (state', metrics)

    rng_t              = fold_in(state.rng, state.step)
    g, ms', metrics    = grad_fn(state.params, state.model_state, batch, rng_t)
    u, opt'            = tx.update(g, state.opt_state, state.params)
    params'            = params + u

With ``nan_guard`` the step also checks that the loss and every gradient entry are finite; the
first time one is not, it records the step in ``state.bad_step`` and from then on leaves params,
optimiser and model state unchanged, so the loop can stop with an error naming the step without
a host synchronisation after every update (see jdl.train.loop).
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import optax

from jdl.train.state import TrainState


def all_finite(tree) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)
              if jnp.issubdtype(jnp.asarray(x).dtype, jnp.inexact)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


def make_train_step(grad_fn: Callable, tx: optax.GradientTransformation,
                    nan_guard: bool = True) -> Callable:
    """Turn a gradient function and an optax transformation into a pure train step."""

    def step(state: TrainState, batch) -> tuple[TrainState, dict]:
        rng = jax.random.fold_in(state.rng, state.step)
        grads, model_state, metrics = grad_fn(state.params, state.model_state, batch, rng)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        new = dict(params=params, opt_state=opt_state, model_state=model_state)
        bad_step = state.bad_step
        if nan_guard:
            ok = all_finite(grads) & jnp.all(jnp.isfinite(metrics["loss"]))
            bad_step = jnp.where((bad_step < 0) & ~ok, state.step, bad_step)
            keep_new = bad_step < 0
            old = dict(params=state.params, opt_state=state.opt_state,
                       model_state=state.model_state)
            new = jax.tree.map(lambda n, o: jnp.where(keep_new, n, o), new, old)
        return state.replace(step=state.step + 1, bad_step=bad_step, **new), metrics

    return step


def make_eval_step(eval_fn: Callable) -> Callable:
    """eval step(state, batch) -> metrics (masked means), for jit."""
    def step(state: TrainState, batch):
        return eval_fn(state.params, state.model_state, batch)
    return step
