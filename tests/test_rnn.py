"""Tests of jdl.nn.recurrent (cells, scan, masks, canonical form) and jdl.rnn (BPTT, truncated
BPTT, RTRL).

Facts checked: each cell against its equations written out in numpy (and flax's LSTMCell /
GRUCell with copied weights); the scanned model against the cell stepped by hand; padding with
a mask against the unpadded sequence; RTRL's gradient against BPTT's (float64, relative error
<= 1e-5); truncated BPTT against BPTT (N_t >= T) and a hand-built chunked computation
(N_t < T); online RTRL against a hand-derived two-frame update; a short RTRL training run.

Speed: on XLA's CPU backend compilation dominates, so each test gathers what it checks into
one ``jax.jit``; sizes are tiny (hidden 3-5, T 5-6).
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jdl.nn import MLP
from jdl.nn.recurrent import (RNN, CanonicalRNN, ElmanCell, GRUCell, LSTMCell, SequenceModel,
                              last_frame)
from jdl.rnn import (bptt, evaluate_fn, frame_weights, rtrl, rtrl_step, truncated_bptt,
                     truncated_bptt_step)
from jdl.train import create_state, fit, make_eval_step, make_train_step


@pytest.fixture(autouse=True)
def strict_dtypes():
    with jax.numpy_dtype_promotion("strict"):
        yield


def randomize(params, seed, scale=0.5):
    """Every parameter (biases included) drawn from N(0, scale^2), same structure and dtype."""
    leaves, tree = jax.tree.flatten(params)
    rng = np.random.default_rng(seed)
    return jax.tree.unflatten(tree, [jnp.asarray(scale * rng.normal(size=a.shape), a.dtype)
                                     for a in leaves])


def random_params(model, x, seed, *args, dtype=None, scale=0.5):
    """Random parameters for ``model`` (shapes from an abstract init: nothing is compiled)."""
    shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), *args, x))["params"]
    p = randomize(shapes, seed, scale)
    return p if dtype is None else jax.tree.map(lambda a: a.astype(dtype), p)


def flat(tree) -> np.ndarray:
    return np.concatenate([np.ravel(np.asarray(a, np.float64)) for a in jax.tree.leaves(tree)])


def rel_err(a, b) -> float:
    a, b = flat(a), flat(b)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def np_sigmoid(z):
    return 1 / (1 + np.exp(-z))


def _np(tree):
    return jax.tree.map(lambda a: np.asarray(a, np.float64), tree)


# ---------------------------------------------------------------------------------- the cells


def test_cells_follow_their_equations():
    n, d, B = 4, 3, 2
    rng = np.random.default_rng(0)
    x = rng.normal(size=(B, d))
    h0 = rng.normal(size=(B, n))
    c0 = rng.normal(size=(B, n))
    cells = {"elman": ElmanCell(n, jnp.float64), "irnn": ElmanCell(n, jnp.float64, irnn=True),
             "lstm": LSTMCell(n, jnp.float64), "gru": GRUCell(n, jnp.float64),
             "gru_after": GRUCell(n, jnp.float64, reset_after=True)}
    carries = {"elman": h0, "irnn": h0, "lstm": (c0, h0), "gru": h0, "gru_after": h0}
    with jax.enable_x64(True):
        key = jax.random.PRNGKey(0)
        params = {k: random_params(c, x, i, carries[k]) for i, (k, c) in enumerate(cells.items())}
        flax_lstm, flax_gru = nn.LSTMCell(n, param_dtype=jnp.float64), nn.GRUCell(
            n, param_dtype=jnp.float64)

        def to_flax_lstm(p):  # gate blocks [i, f, g, o] -> flax's ii/hi, if/hf, ...
            W_x, W_h, b = (jnp.split(p[k], 4, axis=-1) for k in ("W_x", "W_h", "b"))
            out = {}
            for j, g in enumerate("ifgo"):
                out["i" + g] = {"kernel": W_x[j]}
                out["h" + g] = {"kernel": W_h[j], "bias": b[j]}
            return out

        def to_flax_gru(p):  # blocks [r, z, n] -> ir/hr, iz/hz, in/hn (+ b_hn)
            W_x, W_h, b = (jnp.split(p[k], 3, axis=-1) for k in ("W_x", "W_h", "b"))
            out = {"i" + g: {"kernel": W_x[j], "bias": b[j]} for j, g in enumerate("rzn")}
            out.update({"h" + g: {"kernel": W_h[j]} for j, g in enumerate("rz")})
            out["hn"] = {"kernel": W_h[2], "bias": p["b_hn"]}
            return out

        @jax.jit
        def compute(params):
            init = {k: cells[k].init(key, carries[k], x)["params"] for k in ("irnn", "lstm")}
            out = {k: c.apply({"params": params[k]}, carries[k], x) for k, c in cells.items()}
            out["flax_lstm"] = flax_lstm.apply({"params": to_flax_lstm(params["lstm"])},
                                               (c0, h0), x)
            out["flax_gru"] = flax_gru.apply({"params": to_flax_gru(params["gru_after"])}, h0, x)
            return out, init["irnn"], init["lstm"]["b"]

        out, irnn_init, lstm_bias = _np(compute(params))
    p = _np(params)

    e = p["elman"]
    h = np.tanh(x @ e["W_x"] + h0 @ e["W_h"] + e["b"])
    np.testing.assert_allclose(out["elman"][0], h, rtol=1e-12)
    np.testing.assert_allclose(out["elman"][1], h, rtol=1e-12)
    e = p["irnn"]
    np.testing.assert_allclose(out["irnn"][1], np.maximum(x @ e["W_x"] + h0 @ e["W_h"] + e["b"], 0),
                               rtol=1e-12, atol=1e-15)
    # IRNN initialisation (Le, Jaitly & Hinton 2015): W_h = I, b = 0
    np.testing.assert_array_equal(irnn_init["W_h"], np.eye(n))
    np.testing.assert_array_equal(irnn_init["b"], np.zeros(n))
    # LSTM: forget-gate bias 1 at initialisation, the others 0
    np.testing.assert_array_equal(lstm_bias, np.r_[np.zeros(n), np.ones(n), np.zeros(2 * n)])

    L = p["lstm"]
    zi, zf, zg, zo = np.split(x @ L["W_x"] + h0 @ L["W_h"] + L["b"], 4, axis=-1)
    c = np_sigmoid(zf) * c0 + np_sigmoid(zi) * np.tanh(zg)
    h = np_sigmoid(zo) * np.tanh(c)
    (c_got, h_got), y_got = out["lstm"]
    np.testing.assert_allclose(c_got, c, rtol=1e-12)
    np.testing.assert_allclose(h_got, h, rtol=1e-12)
    np.testing.assert_allclose(y_got, h, rtol=1e-12)
    (fc, fh), _ = out["flax_lstm"]
    np.testing.assert_allclose(fc, c, rtol=1e-12)
    np.testing.assert_allclose(fh, h, rtol=1e-12)

    for name in ("gru", "gru_after"):
        G = p[name]
        Wxr, Wxz, Wxn = np.split(G["W_x"], 3, axis=-1)
        Whr, Whz, Whn = np.split(G["W_h"], 3, axis=-1)
        br, bz, bn = np.split(G["b"], 3)
        r = np_sigmoid(x @ Wxr + h0 @ Whr + br)
        z = np_sigmoid(x @ Wxz + h0 @ Whz + bz)
        if name == "gru":    # Cho et al. 2014: reset before the recurrent product
            cand = np.tanh(x @ Wxn + (r * h0) @ Whn + bn)
        else:                # reset after (cuDNN / flax)
            cand = np.tanh(x @ Wxn + bn + r * (h0 @ Whn + G["b_hn"]))
        h = z * h0 + (1 - z) * cand
        np.testing.assert_allclose(out[name][0], h, rtol=1e-12, err_msg=name)
        np.testing.assert_allclose(out[name][1], h, rtol=1e-12, err_msg=name)
    np.testing.assert_allclose(out["flax_gru"][0], out["gru_after"][0], rtol=1e-12)


def test_scanned_model_equals_the_cell_stepped_by_hand():
    B, T, d, n = 2, 5, 3, 4
    x = np.random.default_rng(1).normal(size=(B, T, d)).astype(np.float32)
    cells = {"elman": ElmanCell(n), "lstm": LSTMCell(n), "gru": GRUCell(n)}
    params = {k: random_params(RNN(c), x, 2) for k, c in cells.items()}
    seq = SequenceModel("gru", hidden=n, num_outputs=2, readout="last")
    seq_params = random_params(seq, x, 3)

    @jax.jit
    def compute(params, seq_params):
        out = {}
        for k, c in cells.items():
            scanned = RNN(c).apply({"params": params[k]}, x)
            carry, hs = c.initialize_carry(None, (B, d)), []
            for t in range(T):
                carry, h = c.apply({"params": params[k]["cell"]}, carry, x[:, t])
                hs.append(h)
            out[k] = scanned, (carry, jnp.stack(hs, axis=1))
        # SequenceModel = cell + Dense readout of the last frame
        carry = jnp.zeros((B, n))
        for t in range(T):
            carry, h = seq.make_cell().apply({"params": seq_params["cell"]}, carry, x[:, t])
        y = seq.make_readout().apply({"params": seq_params["readout"]}, h)
        return out, (seq.apply({"params": seq_params}, x), y)

    out, (seq_y, hand_y) = compute(params, seq_params)
    for k, (scanned, by_hand) in out.items():
        for a, b in zip(jax.tree.leaves(scanned), jax.tree.leaves(by_hand)):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7, err_msg=k)
    assert out["lstm"][0][1].shape == (B, T, n)
    np.testing.assert_allclose(seq_y, hand_y, rtol=1e-6, atol=1e-7)


def test_mask_padded_sequence_equals_the_unpadded_one():
    B, T, short, d, n = 2, 6, 4, 2, 3
    rng = np.random.default_rng(2)
    x = rng.normal(size=(B, T, d)).astype(np.float32)   # the padding frames hold garbage
    mask = np.ones((B, T), bool)
    mask[1, short:] = False
    model = SequenceModel("lstm", hidden=n, num_outputs=None, readout="all")
    last = SequenceModel("lstm", hidden=n, num_outputs=2, readout="last")
    params = random_params(model, x, 4)
    lparams = random_params(last, x, 5)

    @jax.jit
    def compute(params, lparams):
        padded = model.apply({"params": params}, x, mask=mask, return_carry=True)
        alone = model.apply({"params": params}, x[1:, :short], return_carry=True)
        return (padded, alone, last.apply({"params": lparams}, x, mask=mask),
                last.apply({"params": lparams}, x[1:, :short]))

    (carry, hs), (carry1, hs1), y_last, y1 = compute(params, lparams)
    for a, b in zip(carry, carry1):               # (c, h) after the last real frame
        np.testing.assert_allclose(a[1], b[0], rtol=1e-6)
    np.testing.assert_allclose(hs[1, :short], hs1[0], rtol=1e-6)
    np.testing.assert_array_equal(hs[1, short:], 0.0)
    np.testing.assert_allclose(y_last[1], y1[0], rtol=1e-6)
    assert not np.allclose(hs[0, short:], 0.0)    # the full-length sequence runs on
    np.testing.assert_array_equal(last_frame(hs, mask)[1], hs[1, short - 1])


def test_canonical_form_with_an_mlp_equals_the_recursion():
    """(X(t), Y(t)) = f(X(t-1), U(t)), f an MLP with 2 state and 3 output values."""
    B, T, d, s, k = 2, 5, 3, 2, 3
    u = np.random.default_rng(3).normal(size=(B, T, d)).astype(np.float32)
    f = MLP(hidden=(6,), num_outputs=s + k, activation="tanh")
    model = CanonicalRNN(f, state_size=s, state_activation="tanh")
    params = random_params(model, u, 6)

    @jax.jit
    def compute(params):
        X, ys = jnp.zeros((B, s)), []
        for t in range(T):
            out = f.apply({"params": params["cell"]["f"]}, jnp.concatenate([X, u[:, t]], -1))
            X = jnp.tanh(out[:, :s])
            ys.append(out[:, s:])
        return model.apply({"params": params}, u, return_carry=True), (X, jnp.stack(ys, 1))

    (X_T, Y), (X_hand, Y_hand) = compute(params)
    assert Y.shape == (B, T, k)
    np.testing.assert_allclose(Y, Y_hand, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(X_T, X_hand, rtol=1e-6, atol=1e-7)


def test_bad_hyperparameters_are_refused():
    with pytest.raises(ValueError, match="unknown cell"):
        SequenceModel("lsmt")
    with pytest.raises(ValueError, match="readout"):
        SequenceModel("gru", readout="first")
    with pytest.raises(ValueError, match="horizon"):
        truncated_bptt(SequenceModel("gru"), 0)
    with pytest.raises(ValueError, match="jacobian"):
        rtrl(SequenceModel("gru"), jacobian="sideways")


@pytest.mark.parametrize("entry", ["apply", "apply_scanned", "init_state", "fit_bptt",
                                   "fit_rtrl", "rtrl_step", "gradient_lags"])
def test_sequences_of_length_zero_are_refused_by_name(entry):
    """Issue 12 item 7: T = 0 is a clear ValueError at every entry, not an IndexError from
    inside JAX's scan."""
    from jdl.rnn import gradient_lags
    from jdl.train import init_state
    model = SequenceModel("lstm", hidden=3, num_outputs=2, fused=entry != "apply_scanned")
    good = _sequence_batch(0, 4, 5, 2, 2, "all")
    empty = {"x": good["x"][:, :0], "y": good["y"][:, :0]}
    state = init_state(model, optax.sgd(0.1), good["x"], jax.random.PRNGKey(0))
    fit_with = lambda gf: fit(make_train_step(gf, optax.sgd(0.1)), state, empty, epochs=1,
                              batch_size=2, progress=False, verbose=False)
    calls = {
        "apply": lambda: model.apply({"params": state.params}, empty["x"]),
        "apply_scanned": lambda: model.apply({"params": state.params}, empty["x"]),
        "init_state": lambda: init_state(model, optax.sgd(0.1), empty["x"], jax.random.PRNGKey(0)),
        "fit_bptt": lambda: fit_with(bptt(model)),
        "fit_rtrl": lambda: fit_with(rtrl(model)),
        "rtrl_step": lambda: rtrl_step(model, optax.sgd(0.1))(state, empty),
        "gradient_lags": lambda: gradient_lags(model, state.params, empty["x"][0])}
    with pytest.raises(ValueError, match=r"sequences of length 0 \(shape \(.*\), axis \d is "
                                         r"time\)"):
        calls[entry]()


# ------------------------------------------------------------------------------ RTRL == BPTT


def _sequence_batch(seed, B, T, d, k, readout, lengths=None):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(B, T, d))
    mask = np.ones((B, T), bool)
    for i, L in enumerate(lengths or []):
        mask[i, L:] = False
    if readout == "all":
        y = rng.normal(size=(B, T, k))
    else:
        y = rng.integers(0, k, size=B).astype(np.int32)
    return {"x": jnp.asarray(x), "y": jnp.asarray(y), "time_mask": jnp.asarray(mask)}


def test_rtrl_gradient_equals_bptt_gradient():
    """sum_t dL_t/dtheta from forward sensitivities == reverse-mode BPTT, float64, variable
    lengths: tanh RNN and LSTM (quadratic loss on every frame, 'rev' Jacobians), a GRU
    classifier on the last frame (cross-entropy, 'fwd' Jacobians) and the canonical form with
    an MLP f."""
    B, T, d, n, k = 3, 6, 2, 4, 2
    with jax.enable_x64(True):
        key = jax.random.PRNGKey(4)
        cases = {   # float32 models whose parameters are cast to float64
            "elman": (SequenceModel("elman", n, k), "quadratic", "auto"),
            "lstm": (SequenceModel("lstm", n, k), "quadratic", "auto"),
            "gru_last": (SequenceModel("gru", 3, k, readout="last"), "cross_entropy", "fwd"),
            "canonical": (CanonicalRNN(MLP(hidden=(5,), num_outputs=3 + k, activation="tanh"),
                                       state_size=3, state_activation="tanh"), "quadratic",
                          "auto"),
        }
        batches, params = {}, {}
        for i, (name, (model, _, _)) in enumerate(cases.items()):
            batches[name] = _sequence_batch(10 + i, B, T, d, k, model.readout, lengths=(T, 4, 5))
            params[name] = random_params(model, batches[name]["x"].astype(jnp.float32), 20 + i,
                                         dtype=jnp.float64)

        @jax.jit
        def compute(params, batches):
            out = {}
            for name, (model, loss, jac) in cases.items():
                gb, _, mb = bptt(model, loss)(params[name], {}, batches[name], key)
                gr, _, mr = rtrl(model, loss, jacobian=jac)(params[name], {}, batches[name], key)
                out[name] = gb, gr, mb, mr
            return out

        out = compute(params, batches)
    for name, (gb, gr, mb, mr) in out.items():
        assert jax.tree.structure(gb) == jax.tree.structure(gr)
        assert rel_err(gr, gb) <= 1e-5, (name, rel_err(gr, gb))
        np.testing.assert_allclose(mr["loss"], mb["loss"], rtol=1e-12, err_msg=name)
        assert np.linalg.norm(flat(gb)) > 1e-3                            # not vacuous
    np.testing.assert_allclose(out["gru_last"][3]["accuracy"], out["gru_last"][2]["accuracy"])


# ----------------------------------------------------------------------------- truncated BPTT


def test_truncated_bptt_full_horizon_is_bptt_and_short_horizon_is_chunked_backprop():
    B, T, d, n, k, N = 2, 5, 2, 3, 2, 2
    lr = 0.1
    with jax.enable_x64(True):
        model = SequenceModel("lstm", n, k, param_dtype=jnp.float64)
        batch = _sequence_batch(30, B, T, d, k, "all", lengths=(T, 3))
        key = jax.random.PRNGKey(5)
        params = random_params(model, batch["x"], 31)
        tx = optax.sgd(lr)
        state = create_state(params, tx, key)

        cell, readout = model.make_cell(), model.make_readout()

        def chunk_loss(p, carry, t0, t1, w):
            """sum over frames t0..t1-1 of w l from the (constant) carry, the cell stepped by
            hand; on padded frames the carry stays and the cell output is 0."""
            carry, value = jax.lax.stop_gradient(carry), 0.0
            for t in range(t0, min(t1, T)):
                new, h = cell.apply({"params": p["cell"]}, carry, batch["x"][:, t])
                m = batch["time_mask"][:, t, None]
                carry = jax.tree.map(lambda a, b: jnp.where(m, a, b), new, carry)
                y = readout.apply({"params": p["readout"]}, jnp.where(m, h, 0.0))
                value = value + jnp.sum(w[:, t] * jnp.sum(jnp.square(y - batch["y"][:, t]), -1))
            return value, carry

        @jax.jit
        def compute(params, state):
            w = frame_weights("all", batch["time_mask"], dtype=jnp.float64)
            full = bptt(model)(params, {}, batch, key)[0]
            same = truncated_bptt(model, T)(params, {}, batch, key)[0]
            short = truncated_bptt(model, N)(params, {}, batch, key)[0]
            stepped = truncated_bptt_step(model, tx, N)(state, batch)[0]
            # by hand: chunks [0, 2), [2, 4), [4, 5); gradients summed, or one update each
            carry = model.make_cell().initialize_carry(None, (B, d), jnp.float64)
            hand, p, carry_p = jax.tree.map(jnp.zeros_like, params), params, carry
            for t0 in range(0, T, N):
                g, carry = jax.grad(chunk_loss, has_aux=True)(params, carry, t0, t0 + N, w)
                hand = jax.tree.map(jnp.add, hand, g)
                g, carry_p = jax.grad(chunk_loss, has_aux=True)(p, carry_p, t0, t0 + N, w)
                p = jax.tree.map(lambda a, b: a - lr * b, p, g)
            return full, same, short, stepped.params, hand, p

        full, same, short, stepped, hand, hand_stepped = compute(params, state)
    assert rel_err(same, full) <= 1e-12
    assert rel_err(short, hand) <= 1e-12
    assert rel_err(short, full) > 1e-3                # truncation does change the gradient
    assert rel_err(stepped, hand_stepped) <= 1e-12


# -------------------------------------------------------------------------------- online RTRL


def test_online_rtrl_updates_every_frame_with_carried_sensitivities():
    """Two frames, SGD: theta_1 = theta_0 - lr g_1(theta_0); g_2 differentiates frame 2's loss
    through its step at theta_1 and, via S(1), through frame 1's step at theta_0."""
    B, T, d, n, k = 2, 2, 2, 3, 2
    lr = 0.3
    with jax.enable_x64(True):
        model = SequenceModel("elman", n, k, param_dtype=jnp.float64)
        batch = _sequence_batch(40, B, T, d, k, "all")
        key = jax.random.PRNGKey(6)
        params = random_params(model, batch["x"], 41)
        tx = optax.sgd(lr)
        cell, readout = model.make_cell(), model.make_readout()
        x, y = batch["x"], batch["y"]

        def frame_loss(p_now, p_before, t):
            carry = jnp.zeros((B, n))
            for s in range(t + 1):
                p = p_now if s == t else p_before
                carry, h = cell.apply({"params": p["cell"]}, carry, x[:, s])
            out = readout.apply({"params": p_now["readout"]}, h)
            return jnp.mean(jnp.sum(jnp.square(out - y[:, t]), axis=-1))

        @jax.jit
        def compute(params):
            new = rtrl_step(model, tx)(create_state(params, tx, key), batch)[0]
            theta1 = jax.tree.map(lambda a, g: a - lr * g, params,
                                  jax.grad(frame_loss)(params, params, 0))
            g2 = jax.grad(lambda e: frame_loss(jax.tree.map(jnp.add, theta1, e),
                                               jax.tree.map(jnp.add, params, e), 1))(
                jax.tree.map(jnp.zeros_like, params))
            return new, jax.tree.map(lambda a, g: a - lr * g, theta1, g2)

        new, hand = compute(params)
    assert int(new.step) == 1 and int(new.bad_step) == -1
    assert rel_err(new.params, hand) <= 1e-12
    assert rel_err(new.params, params) > 1e-3


# ------------------------------------------------------------------------------- training run


def test_rtrl_grad_fn_trains_a_recurrent_net_to_remember_its_first_input():
    """Target: the sign of the first of 5 inputs, read at the last frame (a memory task).
    jdl.train.fit drives the RTRL grad_fn; jdl.rnn.evaluate_fn scores held-out sequences
    (20 of them: fit pads the last eval batch and masks it)."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(84, 5, 1)).astype(np.float32)
    y = (x[:, 0, 0] > 0).astype(np.int32)
    data, val = {"x": x[:64], "y": y[:64]}, {"x": x[64:], "y": y[64:]}
    model = SequenceModel("elman", hidden=5, num_outputs=2, readout="last")
    tx = optax.adam(0.1)
    state = create_state(random_params(model, x[:2], 7), tx, jax.random.PRNGKey(8))
    step = make_train_step(rtrl(model, "cross_entropy"), tx)
    with jax.numpy_dtype_promotion("standard"):     # optax's Adam mixes int and float
        result = fit(step, state, data, epochs=8, batch_size=16, progress=False,
                     tensorboard=False, val_data=val, eval_batch_size=16,
                     eval_step=make_eval_step(evaluate_fn(model, "cross_entropy")))
    first, last = result.history[0], result.history[-1]
    assert last["train_loss"] < 0.3 * first["train_loss"], result.history
    assert last["train_accuracy"] > 0.9
    assert last["val_loss"] < 0.5 * first["val_loss"] and last["val_accuracy"] >= 0.8
