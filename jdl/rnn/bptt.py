"""Back-propagation through time (BPTT) and truncated BPTT as grad_fns for jdl.train.

The lecture's recurrent net in canonical form, unfolded in time, is a deep feed-forward net whose
T copies of f share the weights theta (jdl.nn.recurrent):

    (X(t), h_t) = f(theta, X(t-1), U(t)),   Y(t) = g(theta, h_t),   X(0) = 0,

trained on the cost of the whole sequence (the lecture's E = sum_t (Y_t - D_t)^2, here any jdl
loss l weighted per frame, see ``frame_weights``):

    E(theta) = sum_{n, t} w_{n t} l(Y_n(t), D_n(t)).

BPTT (Rumelhart, Hinton & Williams 1986; Werbos 1990, 'Backpropagation through time: what it
does and how to do it') is reverse-mode differentiation of E through the unfolded net. With
E_t the loss of frame t (a function of h_t, so of X(t-1) and theta) and delta(t) = dE/dX(t)
the total derivative, the gradient flows back through the states by the chain rule,

    delta(T) = 0,   delta(t-1) = dE_t/dh_t . dh_t/dX(t-1) + delta(t) . J(t),
    J(t) = dX(t)/dX(t-1)  (the Jacobian of f with respect to the state),
    dE/dtheta = sum_t [ delta(t) . dX(t)/dtheta|direct + dE_t/dh_t . dh_t/dtheta|direct
                        + dE_t/dtheta|readout ],

so delta(t) contains products J(t+1) ... J(T) of Jacobians: they vanish when the Jacobians'
eigenvalues are below 1 and explode when above (the lecture's vanishing/exploding gradient
problem; Bengio, Simard & Frasconi 1994; Pascanu, Mikolov & Bengio 2013, who clip the gradient
norm: ``jdl.optim.sgd(..., clip_norm=c)``; clip by value: ``clip_value=c``, which applies first).
Here it is ``jax.value_and_grad`` through the ``nn.scan`` of the model: ``bptt``.

Truncated BPTT (Williams & Peng 1990, 'An efficient gradient-based algorithm for on-line
training of recurrent network trajectories', BPTT(h; h)): the sequence is cut into chunks of
N_t frames (the lecture's horizon), the state is carried from chunk to chunk but the gradient
is not (stop_gradient at the chunk boundaries), and each chunk is back-propagated alone:

    g_k = d/dtheta sum_{t in chunk k} sum_n w_{n t} l(Y_n(t), D_n(t)),   X(start of k) constant.

``truncated_bptt`` is a grad_fn that SUMS the g_k over the chunks (one update per batch of
sequences; with N_t >= T it is BPTT exactly); ``truncated_bptt_step`` is a train step that
applies one optimiser update per chunk, W(t + N_t) = W(t) - lambda g_k, the lecture's 'BPTT
delay' rule, the state of chunk k+1 starting from the one computed with the old weights.

Batches: ``batch['x']`` (batch, T, features); ``batch['y']`` targets per frame (batch, T, ...)
for models with readout 'all', per sequence (batch, ...) for readout 'last';
``batch['time_mask']`` (batch, T), optional, 1 on real frames and 0 on end padding; at
evaluation ``batch['mask']`` (batch,) drops padded examples (jdl.train.fit adds it).
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jdl.losses import get_loss
from jdl.nn.recurrent import RNN, carry_dtype, check_frames, last_frame, masked_step
from jdl.train.state import TrainState
from jdl.train.step import all_finite


# ------------------------------------------------------------------ the model as pure functions


class Recurrence(NamedTuple):
    """A recurrent model as pure functions over its two groups of parameters.

    transition(cell_params, carry, x_t) -> (carry, h_t)   the cell f (any leading batch dims)
    output(readout_params, h_t) -> y_t                     the readout g (identity if none)
    init_carry(x_t) -> zero carry for inputs x_t of shape (*batch, features)
    split(params) -> (cell_params, readout_params);  merge(cell_part, readout_part) -> params
    readout: 'all' (a loss on every frame's output) or 'last' (on each sequence's last frame)
    """
    transition: Callable
    output: Callable
    init_carry: Callable
    split: Callable
    merge: Callable
    readout: str


def recurrence(model) -> Recurrence:
    """The Recurrence of a jdl.nn.recurrent SequenceModel, CanonicalRNN or RNN (or any module
    with ``make_cell()``, ``make_readout()`` and ``readout`` whose parameters are
    {'cell': ..., 'readout': ...})."""
    if isinstance(model, RNN):
        cell, readout, mode = model.cell, None, "all"
    elif hasattr(model, "make_cell"):
        cell, readout = model.make_cell(), model.make_readout()
        mode = getattr(model, "readout", "all")
    else:
        raise TypeError(f"no recurrence known for {type(model).__name__}: expected a "
                        f"SequenceModel, CanonicalRNN or RNN")

    def transition(cell_params, carry, x_t):
        return cell.apply({"params": cell_params}, carry, x_t)

    def output(readout_params, h):
        return h if readout is None else readout.apply({"params": readout_params}, h)

    def init_carry(x_t):
        return cell.initialize_carry(None, x_t.shape, carry_dtype(cell, x_t))

    def split(params):
        return params["cell"], (params["readout"] if readout is not None else {})

    def merge(cell_part, readout_part):
        return {"cell": cell_part, **({"readout": readout_part} if readout is not None else {})}

    return Recurrence(transition, output, init_carry, split, merge, mode)


# ----------------------------------------------------------------------- per-frame loss weights


def _float_dtype(x):
    x = jnp.asarray(x)
    return x.dtype if jnp.issubdtype(x.dtype, jnp.floating) else jnp.float32


def frame_weights(readout: str, time_mask=None, example_mask=None, shape=None, dtype=jnp.float32):
    """Weights w (batch, T) of the frame losses, summing to 1 over the counted frames:

    readout 'all':  w_{n t} = e_n m_{n t} / sum_{n t} e_n m_{n t}   (mean over real frames)
    readout 'last': w_{n t} = e_n [t = T_n - 1] / sum_n e_n          (mean over sequences)

    with m the time mask (ones if None), T_n = sum_t m_{n t} and e the example mask (ones).
    ``shape`` = (batch, T) is needed when time_mask is None. The denominators are at least 1,
    as in jdl.losses.
    """
    if time_mask is None:
        time_mask = jnp.ones(shape, dtype)
    m = jnp.asarray(time_mask).astype(dtype)
    e = (jnp.ones(m.shape[:1], dtype) if example_mask is None
         else jnp.asarray(example_mask).astype(dtype))
    if readout == "all":
        w = e[:, None] * m
    elif readout == "last":
        last = jnp.maximum(jnp.sum(m, axis=1).astype(jnp.int32) - 1, 0)
        w = e[:, None] * jax.nn.one_hot(last, m.shape[1], dtype=dtype)
    else:
        raise ValueError(f"readout must be 'all' or 'last', got {readout!r}")
    return w / jnp.maximum(jnp.sum(w), 1.0)


def frame_targets(readout: str, targets, T: int):
    """Targets per frame (batch, T, ...): as given for 'all', each sequence's target repeated
    on every frame for 'last' (only its last real frame has a weight)."""
    targets = jnp.asarray(targets)
    if readout == "last":
        return jnp.broadcast_to(targets[:, None], targets.shape[:1] + (T,) + targets.shape[1:])
    if targets.ndim < 2 or targets.shape[1] != T:
        raise ValueError(f"readout 'all' needs targets (batch, T={T}, ...), got {targets.shape}")
    return targets


def single_loss(loss_fn: Callable) -> Callable:
    """l(y, d) for one output y and one target d, from a jdl batch loss."""
    return lambda y, d: loss_fn(y[None], d[None])


def weighted_loss(loss_fn: Callable, outputs, targets, weights):
    """sum_i w_i l(outputs_i, targets_i) over the leading ``weights.ndim`` axes."""
    lead = weights.shape
    o = outputs.reshape((-1,) + outputs.shape[len(lead):])
    d = jnp.asarray(targets).reshape((-1,) + jnp.shape(targets)[len(lead):])
    per = jax.vmap(single_loss(get_loss(loss_fn)))(o, d)
    return jnp.sum(weights.reshape(-1).astype(per.dtype) * per)


def sequence_metrics(outputs, targets, weights) -> dict:
    """Weighted accuracy sum_i w_i [argmax outputs_i = targets_i] for integer targets."""
    targets = jnp.asarray(targets)
    if jnp.issubdtype(targets.dtype, jnp.integer) and outputs.ndim == targets.ndim + 1:
        predicted = jnp.argmax(outputs, axis=-1).astype(targets.dtype)
        correct = (predicted == targets).astype(weights.dtype)
        return {"accuracy": jnp.sum(weights * correct)}
    return {}


def _batch_parts(batch, x_key, y_key, mask_key):
    x = jnp.asarray(batch[x_key])
    if x.ndim < 3:
        raise ValueError(f"batch[{x_key!r}] must be (batch, T, features), got shape {x.shape}")
    check_frames(x, f"batch[{x_key!r}]")
    m = batch.get(mask_key) if mask_key else None
    if m is not None and tuple(m.shape) != x.shape[:2]:
        raise ValueError(f"batch[{mask_key!r}] must be (batch, T) = {x.shape[:2]}, got {m.shape}")
    return x, m, batch[y_key]


# ------------------------------------------------------------------------------ full BPTT


def bptt(model, loss="quadratic", metrics: Callable = sequence_metrics, x_key: str = "x",
         y_key: str = "y", mask_key: str = "time_mask") -> Callable:
    """grad_fn(params, model_state, batch, rng) -> (grads, model_state, metrics) for BPTT:
    reverse-mode gradient of E(theta) = sum_{n t} w_{n t} l(Y_n(t), D_n(t)) through the scanned
    model (``model.apply(variables, x, mask=time_mask, train=True)``), one update per batch.

    ``loss`` is a jdl loss name or function l(outputs, targets) ('quadratic' by default: the
    lecture's E = sum_t ||Y_t - D_t||^2, here a mean over frames); weights from
    ``frame_weights``. jdl.train.backprop is not reused because it neither passes the time mask
    nor weights frames.
    """
    loss_fn = get_loss(loss)
    readout = getattr(model, "readout", "all")

    def grad_fn(params, model_state, batch, rng):
        x, m, y = _batch_parts(batch, x_key, y_key, mask_key)
        w = frame_weights(readout, m, shape=x.shape[:2], dtype=_float_dtype(x))
        w = w if readout == "all" else jnp.sum(w, axis=1)
        kw = {} if m is None else {"mask": m}

        def objective(p):
            out = model.apply({"params": p, **model_state}, x, train=True,
                              rngs={"dropout": rng}, **kw)
            return weighted_loss(loss_fn, out, y, w), out

        (value, out), grads = jax.value_and_grad(objective, has_aux=True)(params)
        return grads, model_state, {"loss": value, **metrics(out, y, w.astype(value.dtype))}

    return grad_fn


def evaluate_fn(model, loss="quadratic", metrics: Callable = sequence_metrics, x_key: str = "x",
                y_key: str = "y", mask_key: str = "time_mask") -> Callable:
    """eval_fn(params, model_state, batch) -> metrics for jdl.train.make_eval_step: the same
    weighted loss as ``bptt`` in inference mode, over the examples with batch['mask'] = 1."""
    loss_fn = get_loss(loss)
    readout = getattr(model, "readout", "all")

    def eval_fn(params, model_state, batch):
        x, m, y = _batch_parts(batch, x_key, y_key, mask_key)
        w = frame_weights(readout, m, batch.get("mask"), x.shape[:2], _float_dtype(x))
        w = w if readout == "all" else jnp.sum(w, axis=1)
        kw = {} if m is None else {"mask": m}
        out = model.apply({"params": params, **model_state}, x, train=False, **kw)
        value = weighted_loss(loss_fn, out, y, w)
        return {"loss": value, **metrics(out, y, w.astype(value.dtype))}

    return eval_fn


# ---------------------------------------------------------------------------- truncated BPTT


def run_frames(rec: Recurrence, cell_params, readout_params, carry, xs, ms, ds, ws, loss_fn):
    """Unroll ``rec`` over time-major frames xs (T, batch, ...), masks ms (T, batch), targets
    ds and weights ws (T, batch); returns (sum_{t n} w_{n t} l(y_{n t}, d_{n t}),
    (final carry, outputs (T, batch, ...)))."""
    lossf = jax.vmap(single_loss(loss_fn))

    def frame(carry, inp):
        x_t, m_t, d_t, w_t = inp
        carry, h = masked_step(rec.transition(cell_params, carry, x_t), carry, m_t)
        y = rec.output(readout_params, h)
        return carry, (jnp.sum(w_t.astype(y.dtype) * lossf(y, d_t)), y)

    carry, (ls, ys) = jax.lax.scan(frame, carry, (xs, ms, ds, ws))
    return jnp.sum(ls), (carry, ys)


def _chunked(batch, rec, horizon, x_key, y_key, mask_key):
    """Pad T up to K * horizon (masked frames) and reshape to (K, horizon, batch, ...)."""
    x, m, y = _batch_parts(batch, x_key, y_key, mask_key)
    B, T = x.shape[:2]
    dtype = _float_dtype(x)
    m = jnp.ones((B, T), bool) if m is None else jnp.asarray(m).astype(bool)
    w = frame_weights(rec.readout, m, dtype=dtype)
    d = frame_targets(rec.readout, y, T)
    K = math.ceil(T / horizon)
    pad = K * horizon - T

    def chunks(a):
        a = jnp.pad(a, [(0, 0), (0, pad)] + [(0, 0)] * (a.ndim - 2))
        a = jnp.swapaxes(a, 0, 1)                                      # (T', B, ...)
        return a.reshape((K, horizon) + a.shape[1:])

    return x, m, y, w, (chunks(x), chunks(m), chunks(d), chunks(w))


def _unchunk(ys, T):
    ys = ys.reshape((-1,) + ys.shape[2:])[:T]                          # (T, B, ...)
    return jnp.swapaxes(ys, 0, 1)


def _check_horizon(horizon):
    if not isinstance(horizon, int) or horizon < 1:
        raise ValueError(f"horizon must be a positive number of frames, got {horizon!r}")


def _chunk_value_and_grad(rec, loss_fn):
    def objective(cp, op, carry, xs, ms, ds, ws):
        carry = jax.lax.stop_gradient(carry)          # truncation: no gradient into the past
        return run_frames(rec, cp, op, carry, xs, ms, ds, ws, loss_fn)
    return jax.value_and_grad(objective, argnums=(0, 1), has_aux=True)


def truncated_bptt(model, horizon: int, loss="quadratic", metrics: Callable = sequence_metrics,
                   x_key: str = "x", y_key: str = "y", mask_key: str = "time_mask") -> Callable:
    """grad_fn for truncated BPTT with horizon N_t = ``horizon`` frames (Williams & Peng 1990):
    the sum over chunks of each chunk's gradient, the state carried across chunk boundaries
    under stop_gradient (one update per batch; for per-chunk updates see truncated_bptt_step).
    A last, shorter chunk is padded with masked frames. horizon >= T gives BPTT exactly.
    """
    _check_horizon(horizon)
    rec = recurrence(model)
    loss_fn = get_loss(loss)
    vg = _chunk_value_and_grad(rec, loss_fn)

    def grad_fn(params, model_state, batch, rng):
        del rng
        x, m, y, w, chunked = _chunked(batch, rec, horizon, x_key, y_key, mask_key)
        cp, op = rec.split(params)
        zeros = jax.tree.map(jnp.zeros_like, (cp, op))

        def chunk(state, inp):
            carry, acc = state
            (value, (carry, ys)), g = vg(cp, op, carry, *inp)
            return (carry, jax.tree.map(jnp.add, acc, g)), (value, ys)

        (_, (gc, go)), (values, ys) = jax.lax.scan(chunk, (rec.init_carry(x[:, 0]), zeros),
                                                   chunked)
        outputs = _unchunk(ys, x.shape[1])
        value = jnp.sum(values)
        out, wm = _readout_view(rec.readout, outputs, m, w)
        metrics_ = {"loss": value, **metrics(out, y, wm.astype(value.dtype))}
        return rec.merge(gc, go), model_state, metrics_

    return grad_fn


def _readout_view(readout, outputs, m, w):
    """The outputs and weights the metrics see: per frame for 'all', last frame for 'last'."""
    if readout == "last":
        return last_frame(outputs, m), jnp.sum(w, axis=1)
    return outputs, w


# -------------------------------------------------------------- online updates inside a batch


def guarded_update(tx: optax.GradientTransformation, params, opt_state, grads, active):
    """params, opt_state after one optax update, or unchanged where ``active`` is False."""
    updates, new_opt = tx.update(grads, opt_state, params)
    new_params = optax.apply_updates(params, updates)
    keep = lambda new, old: jnp.where(active, new, old)
    return jax.tree.map(keep, new_params, params), jax.tree.map(keep, new_opt, opt_state)


def finish_step(state: TrainState, params, opt_state, metrics, grads_finite, nan_guard: bool):
    """The TrainState after a batch of online updates (step + 1, NaN guard as make_train_step)."""
    bad_step = state.bad_step
    if nan_guard:
        ok = jnp.isfinite(metrics["loss"]) & grads_finite
        bad_step = jnp.where((bad_step < 0) & ~ok, state.step, bad_step)
    return state.replace(step=state.step + 1, bad_step=bad_step, params=params,
                         opt_state=opt_state), metrics


def truncated_bptt_step(model, tx: optax.GradientTransformation, horizon: int,
                        loss="quadratic", metrics: Callable = sequence_metrics,
                        x_key: str = "x", y_key: str = "y", mask_key: str = "time_mask",
                        nan_guard: bool = True) -> Callable:
    """Train step ``step(state, batch) -> (state, metrics)`` for truncated BPTT with one
    optimiser update per chunk of ``horizon`` frames (W(t + N_t) = W(t) - lambda g_k):

        for k = 1..K:  g_k, X_k = grad of chunk k's loss from X_{k-1} (stop_gradient) at theta_k
                       theta_{k+1} = theta_k + tx(g_k)

    g_k uses the whole-batch frame weights (w sums to 1 over the batch, so the K gradients sum
    to the truncated_bptt gradient when theta does not move). A chunk with no weight (only
    padding) makes no update. ``state.step`` counts batches, not chunk updates, so fit's
    epochs and resumption work unchanged; metrics['loss'] is the sum of the chunk losses, each
    computed with the weights of its time.
    """
    _check_horizon(horizon)
    rec = recurrence(model)
    loss_fn = get_loss(loss)
    vg = _chunk_value_and_grad(rec, loss_fn)

    def step(state: TrainState, batch):
        x, m, y, w, chunked = _chunked(batch, rec, horizon, x_key, y_key, mask_key)

        def chunk(carry_state, inp):
            params, opt_state, carry, finite = carry_state
            cp, op = rec.split(params)
            (value, (carry, ys)), (gc, go) = vg(cp, op, carry, *inp)
            grads = rec.merge(gc, go)
            params, opt_state = guarded_update(tx, params, opt_state, grads, jnp.sum(inp[3]) > 0)
            return (params, opt_state, carry, finite & all_finite(grads)), (value, ys)

        init = (state.params, state.opt_state, rec.init_carry(x[:, 0]), jnp.array(True))
        (params, opt_state, _, finite), (values, ys) = jax.lax.scan(chunk, init, chunked)
        value = jnp.sum(values)
        out, wm = _readout_view(rec.readout, _unchunk(ys, x.shape[1]), m, w)
        metrics_ = {"loss": value, **metrics(out, y, wm.astype(value.dtype))}
        return finish_step(state, params, opt_state, metrics_, finite, nan_guard)

    return step
