"""A whole LSTM sequence as one function with a hand-written backward pass (``jax.custom_vjp``).

``SequenceModel('lstm', ...)`` uses it by default (``fused=True``); ``jdl.nn.recurrent.LSTMCell``
stepped by ``nn.scan`` computes the same function (same parameters 'W_x', 'W_h', 'b', gate order
[i, f, g, o], same masks) and stays the reference: RTRL, truncated BPTT and the Jacobian tools
use the cell. The fused path exists for speed on XLA's CPU backend (the issue's "LSTM training
throughput at least PyTorch's", benchmarks/lstm_vs_torch.py); see BUILD_NOTES.md, "LSTM training
throughput", for what was measured.

Forward (Hochreiter & Schmidhuber 1997, forget gate of Gers et al. 2000; row vectors, as in
jdl.nn.recurrent), for t = 1..T from (c_0, h_0):

    z_t = [x_t, h_{t-1}, 1] [W_x; W_h; b]                     one GEMM per frame, bias included
    i_t = sigma(z_t^i), f_t = sigma(z_t^f), g_t = tanh(z_t^g), o_t = sigma(z_t^o)
    c_t = f_t * c_{t-1} + i_t * g_t,        h_t = o_t * tanh(c_t)

Backward (BPTT written out; the equations of Graves 2012, 'Supervised sequence labelling with
recurrent neural networks', ch. 4.6, and of Greff et al. 2017, 'LSTM: a search space odyssey',
appendix, without peepholes). With dy_t = dE/dh_t from the outputs, and (dh, dc) the gradient
flowing back into the carry (dh_T, dc_T from the final carry's cotangent):

    dh_t  = dy_t + dh                               (dh = dz_{t+1} W_h^T from frame t+1)
    dc_t  = dc + dh_t * o_t * (1 - tanh(c_t)^2)     (dc = dc_{t+1} * f_{t+1}: the carousel)
    dz_t^o = dh_t * tanh(c_t) * o_t (1 - o_t)
    dz_t^i = dc_t * g_t * i_t (1 - i_t)
    dz_t^f = dc_t * c_{t-1} * f_t (1 - f_t)
    dz_t^g = dc_t * i_t * (1 - g_t^2)
    dh_{t-1} <- dz_t W_h^T,   dc_{t-1} <- dc_t * f_t         (the reverse loop's carry)

so that each frame of the reverse loop costs ONE GEMM (dz_t W_h^T); the weight gradients are
then a single GEMM over all frames,

    [dW_x; dW_h; db] = sum_t [x_t, h_{t-1}, 1]^T dz_t          ((T*B) rows, one product)

and the input gradient dX = dZ W_x^T another (XLA drops it when x is data). The forward saves
the gate activations [i, f, g, o], the cells c_t and the rows [x_t, h_{t-1}, 1]; tanh(c_t) is
recomputed.

Masks (batch, T), 1 on real frames: where the mask is 0 the carry is kept and the output is
zero, as jdl.nn.recurrent.masked_step does, so the reverse loop passes (dh, dc) through such a
frame unchanged and gives it no gate gradient:

    c_t = m c~_t + (1 - m) c_{t-1},  h_t = m h~_t + (1 - m) h_{t-1},  y_t = m h~_t
    dh_t = m (dy_t + dh),  dc_t = m dc + dh_t o_t (1 - tanh(c~_t)^2),
    dh_{t-1} = dz_t W_h^T + (1 - m) dh,  dc_{t-1} = dc_t f_t + (1 - m) dc.

Implementation notes (XLA CPU; measured, BUILD_NOTES.md): the per-frame values are written
in place into preallocated (T, ...) buffers carried by ``lax.fori_loop`` (each write fused with
the elementwise computation that produces it), rather than stacked by ``lax.scan``; the input
projection is NOT done for all frames up front (a K = 28 GEMM writing (T*B) x 4n floats is
memory-bound and cost more than the 29 extra columns of the per-frame GEMM's input, K 128 ->
157); indices are unsigned so that no negative-index fix-up runs each frame.

Forward-mode differentiation (jax.jvp, jacfwd) is not available through a custom_vjp; use
``SequenceModel(..., fused=False)`` (or the cell) for it.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

Array = jax.Array


def _read(buf, t, col=0, width=None):
    """buf[t, :, col:col + width] for a (T, B, k) buffer and an unsigned scalar index t."""
    zero = jnp.zeros((), t.dtype)
    width = buf.shape[2] if width is None else width
    return lax.dynamic_slice(buf, (t, zero, zero + col), (1, buf.shape[1], width))[0]


def _write(buf, t, value, col=0):
    """buf with buf[t, :, col:col + k] = value (an in-place update inside the loop)."""
    zero = jnp.zeros((), t.dtype)
    return lax.dynamic_update_slice(buf, value[None], (t, zero, zero + col))


def _forward(W_x, W_h, b, x, c0, h0, m):
    """Time-major forward: x (T, B, F), m (T, B, 1) bool or None. Returns the buffers
    A (T, B, 4n) gate activations, C (T+1, B, n) cells (C[0] = c_0) and XH (T+1, B, F+n+1)
    with rows [x_t, h_{t-1}, 1] (XH[T] = [0, h_T, 1])."""
    T, B, F = x.shape
    n = h0.shape[-1]
    dt = x.dtype
    W = jnp.concatenate([W_x, W_h, b[None]], axis=0)                   # (F + n + 1, 4n)
    XH = jnp.concatenate([jnp.concatenate([x, jnp.zeros((1, B, F), dt)], axis=0),
                          jnp.concatenate([h0[None], jnp.zeros((T, B, n), dt)], axis=0),
                          jnp.ones((T + 1, B, 1), dt)], axis=-1)
    C = jnp.concatenate([c0[None], jnp.zeros((T, B, n), dt)], axis=0)
    A = jnp.zeros((T, B, 4 * n), dt)

    def frame(t, bufs):
        A, C, XH = bufs
        t = t.astype(jnp.uint32)
        z = _read(XH, t) @ W
        A = _write(A, t, jax.nn.sigmoid(z[:, :2 * n]), 0)                      # i, f
        A = _write(A, t, jnp.tanh(z[:, 2 * n:3 * n]), 2 * n)            # g
        A = _write(A, t, jax.nn.sigmoid(z[:, 3 * n:]), 3 * n)                  # o
        i, f, g, o = (_read(A, t, k * n, n) for k in range(4))
        c_prev = _read(C, t)
        c = f * c_prev + i * g
        if m is not None:
            m_t = _read(m, t)
            c = jnp.where(m_t, c, c_prev)
        C = _write(C, t + 1, c)
        h = o * jnp.tanh(_read(C, t + 1))
        if m is not None:
            h = jnp.where(m_t, h, _read(XH, t, F, n))
        XH = _write(XH, t + 1, h, F)
        return A, C, XH

    return lax.fori_loop(0, T, frame, (A, C, XH))


def _outputs(C, XH, m, F, n):
    """Batch-major outputs (B, T, n) and the final carry (c_T, h_T)."""
    H = XH[1:, :, F:F + n]
    Y = H if m is None else jnp.where(m, H, jnp.zeros((), H.dtype))
    return jnp.swapaxes(Y, 0, 1), (C[-1], XH[-1, :, F:F + n])


@jax.custom_vjp
def _lstm_time_major(W_x, W_h, b, x, c0, h0, m):
    """x (T, B, F) and m (T, B, 1) time-major; outputs (B, T, n) batch-major."""
    A, C, XH = _forward(W_x, W_h, b, x, c0, h0, m)
    return _outputs(C, XH, m, x.shape[-1], h0.shape[-1])


def _lstm_fwd(W_x, W_h, b, x, c0, h0, m):
    A, C, XH = _forward(W_x, W_h, b, x, c0, h0, m)
    return _outputs(C, XH, m, x.shape[-1], h0.shape[-1]), (W_x, W_h, A, C, XH, m)


def _lstm_bwd(res, cotangents):
    W_x, W_h, A, C, XH, m = res
    dY, (dc_T, dh_T) = cotangents                 # dY batch-major (B, T, n)
    B, T, n = dY.shape
    F = W_x.shape[0]
    dt = dY.dtype

    def frame(k, carry):
        dZ, dh, dc = carry
        t = (T - 1 - k).astype(jnp.uint32)
        i, f, g, o = (_read(A, t, j * n, n) for j in range(4))
        tc = jnp.tanh(_read(C, t + 1))
        c_prev = _read(C, t)
        zero = jnp.zeros((), t.dtype)
        dh_t = lax.dynamic_slice(dY, (zero, t, zero), (B, 1, n))[:, 0] + dh
        dc_t = dc
        if m is not None:
            m_t = _read(m, t)
            dh_t = jnp.where(m_t, dh_t, 0.0)
            dc_t = jnp.where(m_t, dc_t, 0.0)
        dc_t = dc_t + dh_t * o * (1 - tc * tc)
        dZ = _write(dZ, t, dc_t * g * i * (1 - i), 0)
        dZ = _write(dZ, t, dc_t * c_prev * f * (1 - f), n)
        dZ = _write(dZ, t, dc_t * i * (1 - g * g), 2 * n)
        dZ = _write(dZ, t, dh_t * tc * o * (1 - o), 3 * n)
        dh_prev = lax.dot_general(_read(dZ, t), W_h, (((1,), (1,)), ((), ())))   # dz_t W_h^T
        dc_prev = dc_t * f
        if m is not None:
            dh_prev = dh_prev + jnp.where(m_t, 0.0, dh)
            dc_prev = dc_prev + jnp.where(m_t, 0.0, dc)
        return dZ, dh_prev, dc_prev

    # T + 1 rows like XH, dZ[T] = 0: the weight-gradient GEMM then takes XH whole (no copy)
    dZ = jnp.zeros((T + 1, B, 4 * n), dt)
    dZ, dh0, dc0 = lax.fori_loop(0, T, frame, (dZ, dh_T.astype(dt), dc_T.astype(dt)))
    dW = lax.dot_general(XH.reshape((T + 1) * B, F + n + 1), dZ.reshape((T + 1) * B, 4 * n),
                         (((0,), (0,)), ((), ())))
    dx = (dZ[:T].reshape(T * B, 4 * n) @ W_x.T).reshape(T, B, F)
    return dW[:F], dW[F:F + n], dW[F + n], dx, dc0, dh0, None


_lstm_time_major.defvjp(_lstm_fwd, _lstm_bwd)


def _common_dtype(*arrays):
    dt = np.dtype(jnp.asarray(arrays[0]).dtype)
    for a in arrays[1:]:
        dt = np.promote_types(dt, jnp.asarray(a).dtype)
    if not jnp.issubdtype(dt, jnp.floating):
        dt = np.dtype(np.float32)
    return jax.dtypes.canonicalize_dtype(dt)


def lstm_sequence(W_x, W_h, b, x, c0=None, h0=None, mask=None):
    """Run an LSTM (jdl.nn.recurrent.LSTMCell's equations and parameters) over a whole sequence.

    W_x (F, 4n), W_h (n, 4n), b (4n,) in gate order [i, f, g, o]; x (B, T, F) batch-major;
    c0, h0 (B, n) or broadcastable to it (zeros if None); mask (B, T) or None (see the module
    docstring). Returns (outputs (B, T, n), (c_T, h_T)). Differentiable in reverse mode with
    respect to the weights, x and the initial carry by the hand-written backward pass; works
    under jit and vmap. Everything is computed in the promotion of the inputs' dtypes.
    """
    x = jnp.asarray(x)
    if x.ndim != 3:
        raise ValueError(f"lstm_sequence expects x of shape (batch, T, features), got {x.shape}")
    n = W_h.shape[0]
    if W_x.shape != (x.shape[-1], 4 * n) or W_h.shape != (n, 4 * n) or b.shape != (4 * n,):
        raise ValueError(f"LSTM parameter shapes W_x {W_x.shape}, W_h {W_h.shape}, b {b.shape} "
                         f"do not fit inputs with {x.shape[-1]} features and {n} units")
    B, T = x.shape[:2]
    parts = [a for a in (W_x, W_h, b, x, c0, h0) if a is not None]
    dt = _common_dtype(*parts)
    c0 = jnp.zeros((B, n), dt) if c0 is None else jnp.broadcast_to(jnp.asarray(c0).astype(dt),
                                                                     (B, n))
    h0 = jnp.zeros((B, n), dt) if h0 is None else jnp.broadcast_to(jnp.asarray(h0).astype(dt),
                                                                     (B, n))
    if mask is not None:
        if tuple(mask.shape) != (B, T):
            raise ValueError(f"mask must have shape (batch, T) = {(B, T)}, got {mask.shape}")
        mask = jnp.swapaxes(jnp.asarray(mask).astype(bool), 0, 1)[..., None]     # (T, B, 1)
    if T == 0:
        return jnp.zeros((B, 0, n), dt), (c0, h0)
    return _lstm_time_major(W_x.astype(dt), W_h.astype(dt), b.astype(dt),
                            jnp.swapaxes(x.astype(dt), 0, 1), c0, h0, mask)
