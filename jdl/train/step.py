"""make_train_step: one pure update step for every model family.

    step(state, batch) -> (state', metrics)

    rng_t              = fold_in(state.rng, state.step)
    g, ms', metrics    = grad_fn(state.params, state.model_state, batch, rng_t)
    u, opt'            = tx.update(g, state.opt_state, state.params)
    params'            = params + u

With ``nan_guard`` the step also checks that the loss and every gradient entry are finite and
records the first step where one is not in ``state.bad_step``. The check is a flag, not a
branch: the loop reads it at its next synchronisation point (every ``log_every`` steps, each
checkpoint, each epoch end), raises an error naming the step, and never writes a checkpoint
after it, so the last checkpoint on disk is good. (Freezing the state with a select instead
cost 18% of an MLP step on the CPU; see BUILD_NOTES.md.)

Every step is ready for data parallelism: the grad_fn is wrapped in
``jdl.parallel.data_parallel_grad_fn``, which averages gradients, metrics and statistics over
the devices under ``jax.pmap`` over the 'batch' axis and does nothing anywhere else, so on one
device the step is exactly the one above (see jdl.parallel).
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import optax

from jdl.parallel.axis import BATCH_AXIS
from jdl.parallel.grad_fn import data_parallel_grad_fn
from jdl.train.guards import assert_batch
from jdl.train.state import TrainState


def all_finite(tree) -> jax.Array:
    """True iff every floating entry of ``tree`` is finite.

    Computed as isfinite(sum of each leaf): a sum is NaN/Inf iff some entry is (or the sum
    overflows float range, itself a sign of divergence). One plain reduction per leaf, which
    XLA vectorises far better than an elementwise isfinite followed by all()."""
    sums = [jnp.sum(x.astype(jnp.float32)) for x in jax.tree.leaves(tree)
            if jnp.issubdtype(jnp.asarray(x).dtype, jnp.inexact)]
    return jnp.isfinite(sum(sums)) if sums else jnp.array(True)


def make_train_step(grad_fn: Callable, tx: optax.GradientTransformation,
                    nan_guard: bool = True, batch_spec: dict | None = None,
                    axis_name: str | None = BATCH_AXIS) -> Callable:
    """Turn a gradient function and an optax transformation into a pure train step.

    ``axis_name``: the data-parallel axis over which, under ``jax.pmap``, the gradients are
    averaged (jdl.parallel.data_parallel_grad_fn); None leaves ``grad_fn`` unwrapped.

    ``batch_spec`` ({key: (per-example shape, dtype)}, e.g. ``guards.spec_of(train_data)``)
    makes the step check every batch it is traced with (chex, at trace time, so at no run-time
    cost): a wrong shape or dtype raises DataError naming what was expected and what came.
    A ``grad_fn.check_data(data, name)`` (``backprop`` attaches one) is carried over as
    ``step.check_data``; ``fit`` calls it on the training and validation data.
    """
    check_data = getattr(grad_fn, "check_data", None)
    if axis_name is not None:
        grad_fn = data_parallel_grad_fn(grad_fn, axis_name)

    def step(state: TrainState, batch) -> tuple[TrainState, dict]:
        if batch_spec is not None:
            assert_batch(batch, batch_spec)
        rng = jax.random.fold_in(state.rng, state.step)
        grads, model_state, metrics = grad_fn(state.params, state.model_state, batch, rng)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        new = dict(params=params, opt_state=opt_state, model_state=model_state)
        bad_step = state.bad_step
        if nan_guard:
            ok = jnp.isfinite(metrics["loss"]) & all_finite(grads)
            bad_step = jnp.where((bad_step < 0) & ~ok, state.step, bad_step)
        return state.replace(step=state.step + 1, bad_step=bad_step, **new), metrics

    step.data_parallel_axis = axis_name
    if check_data is not None:   # the grad_fn's data check (backprop's), which fit calls
        step.check_data = check_data
    return step


def make_eval_step(eval_fn: Callable) -> Callable:
    """eval step(state, batch) -> metrics (masked means), for jit."""
    def step(state: TrainState, batch):
        return eval_fn(state.params, state.model_state, batch)
    return step
