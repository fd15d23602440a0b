"""The train steps: one update rule, one NaN guard and one rng rule for every model family.

    step(state, batch) -> (state', metrics)

``make_train_step`` (one update per batch, from any grad_fn):

    rng_t              = fold_in(state.rng, state.step)
    g, ms', metrics    = grad_fn(state.params, state.model_state, batch, rng_t)
    u, opt'            = tx.update(g, state.opt_state, state.params)
    params'            = params + u

``make_online_step`` (several updates per batch, for online rules that supply one gradient per
segment of the batch: truncated BPTT per chunk of frames, RTRL per frame, jdl.rnn): the batch
is cut into K segments s_1..s_K with a carried state c (the recurrent state, RTRL's
sensitivities), and for k = 1..K

    g_k, c_k, m_k      = segment_grad_fn(theta_k, c_{k-1}, s_k, fold_in(rng_t, k))
    theta_{k+1}        = theta_k + tx(g_k)        (only where segment k is active)

``segment_sum_grad_fn`` is the same rule with the parameters held fixed for the batch: the
grad_fn sum_k g_k(theta) for make_train_step (one update per batch).

With ``nan_guard`` the step also checks that the loss and every gradient entry are finite and
records the first step where one is not in ``state.bad_step``. The check is a flag, not a
branch: the loop reads it at its next synchronisation point (every ``log_every`` steps, each
checkpoint, each epoch end), raises an error naming the step, and never writes a checkpoint
after it, so the last checkpoint on disk is good. (Freezing the state with a select instead
cost 18% of an MLP step on the CPU; see BUILD_NOTES.md.) ``state.step`` counts batches, for
online steps too, so fit's epochs and resumption work unchanged.

Every make_train_step is ready for data parallelism: the grad_fn is wrapped in
``jdl.parallel.data_parallel_grad_fn``, which averages gradients, metrics and statistics over
the devices under ``jax.pmap`` over the 'batch' axis and does nothing anywhere else, so on one
device the step is exactly the one above (see jdl.parallel). Online steps run under jit (one
device or parallel='sharded').
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

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


def apply_update(tx: optax.GradientTransformation, params, opt_state, grads, active=None):
    """(params + u, opt') with u, opt' = tx.update(grads, opt_state, params); with ``active``
    (a boolean scalar) the params and optimiser state stay unchanged where it is False."""
    updates, new_opt = tx.update(grads, opt_state, params)
    new_params = optax.apply_updates(params, updates)
    if active is None:
        return new_params, new_opt
    keep = lambda new, old: jnp.where(active, new, old)
    return jax.tree.map(keep, new_params, params), jax.tree.map(keep, new_opt, opt_state)


def advance(state: TrainState, metrics: dict, nan_guard: bool, grads=None, grads_finite=None,
            **new) -> tuple[TrainState, dict]:
    """(state with the ``new`` fields, step + 1 and the NaN guard's record, metrics): bad_step
    becomes state.step the first time metrics['loss'] or a gradient is not finite (the
    gradients ``grads``, checked here, or ``grads_finite``, their check already made)."""
    bad_step = state.bad_step
    if nan_guard:
        ok = jnp.isfinite(metrics["loss"]) & (all_finite(grads) if grads is not None
                                              else grads_finite)
        bad_step = jnp.where((bad_step < 0) & ~ok, state.step, bad_step)
    return state.replace(step=state.step + 1, bad_step=bad_step, **new), metrics


def step_rng(state: TrainState) -> jax.Array:
    """The step's key fold_in(state.rng, state.step): one stream per step, reproducible on
    resumption."""
    return jax.random.fold_in(state.rng, state.step)


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
        grads, model_state, metrics = grad_fn(state.params, state.model_state, batch,
                                              step_rng(state))
        params, opt_state = apply_update(tx, state.params, state.opt_state, grads)
        return advance(state, metrics, nan_guard, grads=grads, params=params,
                       opt_state=opt_state, model_state=model_state)

    step.data_parallel_axis = axis_name
    if check_data is not None:   # the grad_fn's data check (backprop's), which fit calls
        step.check_data = check_data
    return step


class Segments(NamedTuple):
    """A batch cut by an online rule into K segments: ``segments_fn(params, batch)``.

    carry    the state carried from segment to segment (the recurrent state, RTRL's
             sensitivities), its initial value;
    inputs   a pytree whose leaves have a leading axis K (segment k: ``inputs[k]``);
    active   (K,) booleans, False for a segment that makes no update in the online step
             (e.g. only padding; segment_sum_grad_fn sums every segment's gradient);
    grad_fn  ``(params, carry, inputs_k, rng) -> (grads, carry', metrics_k)``, segment k's
             gradient: the grad_fn protocol with the carry as the model state;
    metrics  ``(metrics_k stacked over k) -> the batch's metrics``, 'loss' among them.

    ``params`` is used for shapes only; the segments see the parameters of their time.
    """
    carry: Any
    inputs: Any
    active: jax.Array
    grad_fn: Callable
    metrics: Callable


def _segment_keys(seg: Segments, rng):
    """Segment k's key fold_in(rng, k), k = 0..K-1, the rng rule of every online step (None
    for each segment when ``rng`` is None)."""
    if rng is None:
        return None
    return jax.vmap(lambda k: jax.random.fold_in(rng, k))(jnp.arange(seg.active.shape[0]))


def segment_sum_grad_fn(segments_fn: Callable) -> Callable:
    """grad_fn(params, model_state, batch, rng) -> (sum_k g_k, model_state, metrics) of an
    online rule (``segments_fn(params, batch) -> Segments``) with the parameters held fixed
    for the whole batch: one update per batch through make_train_step."""
    def grad_fn(params, model_state, batch, rng):
        seg = segments_fn(params, batch)

        def segment(state, inp):
            carry, total = state
            grads, carry, m = seg.grad_fn(params, carry, *inp)
            return (carry, jax.tree.map(jnp.add, total, grads)), m

        init = (seg.carry, jax.tree.map(jnp.zeros_like, params))
        (_, grads), ms = jax.lax.scan(segment, init, (seg.inputs, _segment_keys(seg, rng)))
        return grads, model_state, seg.metrics(ms)

    return grad_fn


def make_online_step(segments_fn: Callable, tx: optax.GradientTransformation,
                     nan_guard: bool = True) -> Callable:
    """Train step ``step(state, batch) -> (state, metrics)`` of an online rule: one optimiser
    update per active segment (module docstring), the carry passed on through the updates.
    ``segments_fn(params, batch) -> Segments``. The NaN guard covers every segment's gradient
    and the batch's loss; ``state.step`` counts batches, not segment updates."""
    def step(state: TrainState, batch) -> tuple[TrainState, dict]:
        seg = segments_fn(state.params, batch)

        def segment(carry_state, inp):
            params, opt_state, carry, finite = carry_state
            x, key, active = inp
            grads, carry, m = seg.grad_fn(params, carry, x, key)
            params, opt_state = apply_update(tx, params, opt_state, grads, active)
            return (params, opt_state, carry, finite & all_finite(grads)), m

        init = (state.params, state.opt_state, seg.carry, jnp.array(True))
        inputs = (seg.inputs, _segment_keys(seg, step_rng(state)), seg.active)
        (params, opt_state, _, finite), ms = jax.lax.scan(segment, init, inputs)
        return advance(state, seg.metrics(ms), nan_guard, grads_finite=finite, params=params,
                       opt_state=opt_state)

    return step


def make_eval_step(eval_fn: Callable) -> Callable:
    """eval step(state, batch) -> metrics (masked means), for jit."""
    def step(state: TrainState, batch):
        return eval_fn(state.params, state.model_state, batch)
    return step
