"""Tests of the fused LSTM (jdl.nn.fused_recurrent, SequenceModel(..., fused=True)): the same
function and the same gradients as LSTMCell scanned by nn.scan with autodiff.

Facts checked: outputs and final carry equal the scanned path's (float32, 1e-5), with and
without masks, initial carries, readouts 'all' and 'last'; the same parameters at init; the
hand-written backward pass equals autodiff of the scanned path (float32 relative 1e-5, float64
1e-10), for the weights, the inputs and the initial carry, and a central finite difference in
float64; jit, vmap over parameter sets, grad; jdl.rnn's bptt through it equals RTRL's
gradient and truncated BPTT with a full horizon; bad inputs are refused.

Speed: tiny sizes (hidden 3-5, T 4-7), each test one jax.jit.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jdl.nn.fused_recurrent import lstm_sequence
from jdl.nn.recurrent import FusedLSTM, SequenceModel
from jdl.rnn import bptt, rtrl, truncated_bptt


@pytest.fixture(autouse=True)
def strict_dtypes():
    with jax.numpy_dtype_promotion("strict"):
        yield


def random_params(model, x, seed, dtype=None, scale=0.5):
    """Every parameter (biases included) drawn from N(0, scale^2), the model's structure."""
    shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), x))["params"]
    leaves, tree = jax.tree.flatten(shapes)
    rng = np.random.default_rng(seed)
    return jax.tree.unflatten(tree, [jnp.asarray(scale * rng.normal(size=a.shape),
                                                 dtype or a.dtype) for a in leaves])


def flat(tree) -> np.ndarray:
    return np.concatenate([np.ravel(np.asarray(a, np.float64)) for a in jax.tree.leaves(tree)])


def rel_err(a, b) -> float:
    a, b = flat(a), flat(b)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def pair(**kw):
    """The same model fused and scanned."""
    return SequenceModel("lstm", fused=True, **kw), SequenceModel("lstm", fused=False, **kw)


def masks(B, T, lengths):
    m = np.zeros((B, T), bool)
    for i, L in enumerate(lengths):
        m[i, :L] = True
    return jnp.asarray(m)


def test_fused_forward_equals_the_scanned_cell():
    B, T, d, n, k = 3, 7, 2, 5, 2
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(B, T, d)), jnp.float32)
    mask = masks(B, T, (T, 4, 1))
    carry0 = tuple(jnp.asarray(rng.normal(size=(B, n)), jnp.float32) for _ in range(2))
    models = {ro: pair(hidden=n, num_outputs=k, readout=ro) for ro in ("all", "last")}
    models["none"] = pair(hidden=n, num_outputs=None, readout="all")
    params = {ro: random_params(f, x, i) for i, (ro, (f, _)) in enumerate(models.items())}

    @jax.jit
    def compute(params):
        out = {}
        for ro, (fused, scanned) in models.items():
            for m_name, m in (("nomask", None), ("mask", mask)):
                for c_name, c in (("zero", None), ("given", carry0)):
                    kw = dict(mask=m, initial_carry=c, return_carry=True)
                    out[ro, m_name, c_name] = (
                        fused.apply({"params": params[ro]}, x, **kw),
                        scanned.apply({"params": params[ro]}, x, **kw))
        return out

    out = compute(params)
    for key, (a, b) in out.items():
        (ca, ha), ya = a
        (cb, hb), yb = b
        for u, v in ((ca, cb), (ha, hb), (ya, yb)):
            assert u.shape == v.shape and u.dtype == v.dtype == jnp.float32, key
            np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-5, err_msg=str(key))
    (_, h_all), y_all = out["none", "mask", "zero"][0]
    np.testing.assert_array_equal(y_all[1, 4:], 0.0)           # padded frames: zero output
    np.testing.assert_array_equal(y_all[1, 3], h_all[1])       # the carry stops at frame 4
    assert not np.allclose(y_all[0, 4:], 0.0)


def test_same_parameters_at_init_and_the_cell_reads_them():
    x = jnp.ones((2, 4, 3), jnp.float32)
    fused, scanned = pair(hidden=4, num_outputs=2, readout="last")
    pf = fused.init(jax.random.PRNGKey(3), x)["params"]
    ps = scanned.init(jax.random.PRNGKey(3), x)["params"]
    assert jax.tree.structure(pf) == jax.tree.structure(ps)
    for a, b in zip(jax.tree.leaves(pf), jax.tree.leaves(ps)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(pf["cell"]["b"][4:8], 1.0)          # forget bias
    assert set(pf["cell"]) == {"W_x", "W_h", "b"}
    assert pf["cell"]["W_x"].shape == (3, 16) and pf["cell"]["W_h"].shape == (4, 16)
    # the unbound cell of the fused model is the LSTMCell, for rtrl / truncated BPTT
    cell = fused.make_cell()
    carry = cell.initialize_carry(None, (2, 3))
    (c, h), _ = cell.apply({"params": pf["cell"]}, carry, x[:, 0])
    (_, hs), _ = fused.apply({"params": pf}, x[:, :1], return_carry=True)
    np.testing.assert_allclose(h, hs, rtol=1e-6, atol=1e-7)


def _loss(model, params, x, mask, carry0, y):
    out = model.apply({"params": params}, x, mask=mask, initial_carry=carry0)
    return jnp.sum(jnp.sin(out) * y)       # a cotangent on every output entry


@pytest.mark.parametrize("dtype,tol", [(jnp.float32, 1e-5), (jnp.float64, 1e-10)])
def test_fused_gradients_equal_autodiff_of_the_scanned_cell(dtype, tol):
    """d/d(params, x, initial carry) of a loss through SequenceModel, fused vs nn.scan + autodiff,
    readouts 'all' and 'last', with and without a mask."""
    B, T, d, n, k = 3, 6, 2, 4, 3
    with jax.enable_x64(dtype == jnp.float64):
        rng = np.random.default_rng(1)
        x = jnp.asarray(rng.normal(size=(B, T, d)), dtype)
        carry0 = tuple(jnp.asarray(rng.normal(size=(B, n)), dtype) for _ in range(2))
        mask = masks(B, T, (T, 3, 5))
        models = {ro: pair(hidden=n, num_outputs=k, readout=ro, param_dtype=dtype)
                  for ro in ("all", "last")}
        params = {ro: random_params(models[ro][0], x, 10 + i) for i, ro in enumerate(models)}
        ys = {"all": jnp.asarray(rng.normal(size=(B, T, k)), dtype),
              "last": jnp.asarray(rng.normal(size=(B, k)), dtype)}

        @jax.jit
        def compute(params):
            out = {}
            for ro, (fused, scanned) in models.items():
                for m_name, m in (("nomask", None), ("mask", mask)):
                    g = [jax.grad(lambda p, x, c: _loss(model, p, x, m, c, ys[ro]),
                                  argnums=(0, 1, 2))(params[ro], x, carry0)
                         for model in (fused, scanned)]
                    out[ro, m_name] = g
            return out

        out = compute(params)
    for key, (gf, gs) in out.items():
        assert jax.tree.structure(gf) == jax.tree.structure(gs)
        for name, a, b in zip(("params", "x", "carry"), gf, gs):
            assert all(u.dtype == dtype for u in jax.tree.leaves(a)), (key, name)
            assert rel_err(a, b) <= tol, (key, name, rel_err(a, b))
        assert np.linalg.norm(flat(gs[0]["cell"])) > 1e-3                 # not vacuous
    # masked frames get no gradient from the input, the last readout none after the last frame
    g_x = out["last", "mask"][0][1]
    np.testing.assert_array_equal(g_x[1, 3:], 0.0)
    assert np.all(np.abs(np.asarray(g_x[1, :3])) > 0)


def test_fused_gradient_against_finite_differences():
    B, T, d, n = 2, 5, 3, 4
    with jax.enable_x64(True):
        rng = np.random.default_rng(2)
        x = jnp.asarray(rng.normal(size=(B, T, d)))
        mask = masks(B, T, (T, 3))
        W_x = jnp.asarray(0.5 * rng.normal(size=(d, 4 * n)))
        W_h = jnp.asarray(0.5 * rng.normal(size=(n, 4 * n)))
        b = jnp.asarray(0.5 * rng.normal(size=(4 * n,)))
        h0 = jnp.asarray(rng.normal(size=(B, n)))
        w = jnp.asarray(rng.normal(size=(B, T, n)))

        def E(W_x, W_h, b, x, h0):
            y, (c, h) = lstm_sequence(W_x, W_h, b, x, None, h0, mask)
            return jnp.sum(w * y) + jnp.sum(jnp.cos(c)) + jnp.sum(h ** 2)

        grads = jax.jit(jax.grad(E, argnums=(0, 1, 2, 3, 4)))(W_x, W_h, b, x, h0)
        E = jax.jit(E)
        eps = 1e-6
        args = [W_x, W_h, b, x, h0]
        for arg, index in ((0, (1, 5)), (1, (2, 9)), (1, (0, 15)), (2, (6,)), (3, (1, 2, 0)),
                           (4, (0, 3))):
            plus = list(args)
            minus = list(args)
            plus[arg] = args[arg].at[index].add(eps)
            minus[arg] = args[arg].at[index].add(-eps)
            fd = (float(E(*plus)) - float(E(*minus))) / (2 * eps)
            analytic = float(grads[arg][index])
            assert abs(fd - analytic) <= 1e-6 * max(1.0, abs(analytic)), (arg, index, fd,
                                                                           analytic)
        assert float(grads[3][1, 4, 0]) == 0.0          # a padded frame of sequence 1


def test_jit_vmap_over_parameter_sets_and_grad():
    """vmap of the fused gradient over a stack of parameter sets equals a loop."""
    B, T, d, n, k, P = 2, 4, 2, 3, 2, 3
    rng = np.random.default_rng(3)
    x = jnp.asarray(rng.normal(size=(B, T, d)), jnp.float32)
    y = jnp.asarray(rng.normal(size=(B, k)), jnp.float32)
    fused, scanned = pair(hidden=n, num_outputs=k, readout="last")
    sets = [random_params(fused, x, 40 + i) for i in range(P)]
    stacked = jax.tree.map(lambda *a: jnp.stack(a), *sets)

    def loss(model, p):
        return jnp.mean((model.apply({"params": p}, x) - y) ** 2)

    @jax.jit
    def compute(stacked):
        return (jax.vmap(jax.value_and_grad(lambda p: loss(fused, p)))(stacked),
                [jax.value_and_grad(lambda p: loss(scanned, p))(p) for p in sets])

    (values, grads), loop = compute(stacked)
    for i, (v, g) in enumerate(loop):
        np.testing.assert_allclose(values[i], v, rtol=1e-5)
        assert rel_err(jax.tree.map(lambda a: a[i], grads), g) <= 1e-5
    # vmap over sequences of the functional form: one sequence at a time = the batch
    W = sets[0]["cell"]
    one = jax.vmap(lambda xi: lstm_sequence(W["W_x"], W["W_h"], W["b"], xi[None])[0][0])(x)
    both = lstm_sequence(W["W_x"], W["W_h"], W["b"], x)[0]
    np.testing.assert_allclose(one, both, rtol=1e-6, atol=1e-7)


def test_bptt_through_the_fused_model_equals_rtrl_and_truncated_bptt():
    """jdl.rnn: bptt (autodiff through FusedLSTM) = rtrl (forward sensitivities of the cell) =
    truncated_bptt with horizon T (the cell under lax.scan), float64, variable lengths."""
    B, T, d, n, k = 3, 6, 2, 4, 2
    with jax.enable_x64(True):
        key = jax.random.PRNGKey(0)
        rng = np.random.default_rng(5)
        m = masks(B, T, (T, 4, 5))
        cases = {"all": ("quadratic", jnp.asarray(rng.normal(size=(B, T, k)))),
                 "last": ("cross_entropy", jnp.asarray(rng.integers(0, k, B), jnp.int32))}
        models = {ro: pair(hidden=n, num_outputs=k, readout=ro) for ro in cases}
        x = jnp.asarray(rng.normal(size=(B, T, d)))
        params = {ro: random_params(models[ro][0], x.astype(jnp.float32), 50 + i,
                                    dtype=jnp.float64) for i, ro in enumerate(cases)}

        @jax.jit
        def compute(params):
            out = {}
            for ro, (loss, y) in cases.items():
                batch = {"x": x, "y": y, "time_mask": m}
                fused, scanned = models[ro]
                out[ro] = (bptt(fused, loss)(params[ro], {}, batch, key),
                           bptt(scanned, loss)(params[ro], {}, batch, key),
                           rtrl(fused, loss)(params[ro], {}, batch, key),
                           truncated_bptt(fused, T, loss)(params[ro], {}, batch, key))
            return out

        out = compute(params)
    for ro, ((gf, _, mf), (gs, _, ms), (gr, _, mr), (gt, _, mt)) in out.items():
        assert rel_err(gf, gs) <= 1e-10, ro
        assert rel_err(gr, gf) <= 1e-9, ro
        assert rel_err(gt, gf) <= 1e-10, ro
        for other in (ms, mr, mt):
            np.testing.assert_allclose(other["loss"], mf["loss"], rtol=1e-12)


def test_inputs_and_dtypes():
    """Mixed dtypes promote (float64 inputs, float32 parameters), integer inputs are cast,
    empty sequences and bad shapes are handled."""
    n = 3
    rng = np.random.default_rng(6)
    W_x = jnp.asarray(rng.normal(size=(2, 4 * n)), jnp.float32)
    W_h = jnp.asarray(rng.normal(size=(n, 4 * n)), jnp.float32)
    b = jnp.zeros((4 * n,), jnp.float32)
    xi = jnp.asarray(rng.integers(0, 3, size=(2, 4, 2)), jnp.int32)
    y, (c, h) = lstm_sequence(W_x, W_h, b, xi)
    assert y.dtype == jnp.float32 and y.shape == (2, 4, n)
    y2, _ = lstm_sequence(W_x, W_h, b, xi.astype(jnp.float32))
    np.testing.assert_array_equal(y, y2)
    np.testing.assert_array_equal(y[:, -1], h)
    with jax.enable_x64(True):
        y64, _ = lstm_sequence(W_x, W_h, b, xi.astype(jnp.float64))
        assert y64.dtype == jnp.float64
    y0, (c0, h0) = lstm_sequence(W_x, W_h, b, jnp.zeros((2, 0, 2)))
    assert y0.shape == (2, 0, n) and not np.any(np.asarray(c0))
    with pytest.raises(ValueError, match="batch, T, features"):
        lstm_sequence(W_x, W_h, b, jnp.zeros((4, 2)))
    with pytest.raises(ValueError, match="parameter shapes"):
        lstm_sequence(W_x, W_h, b, jnp.zeros((2, 4, 3)))
    with pytest.raises(ValueError, match="mask"):
        lstm_sequence(W_x, W_h, b, xi, mask=jnp.ones((2, 5)))
    with pytest.raises(ValueError, match="batch, T, features"):
        FusedLSTM(3).init(jax.random.PRNGKey(0), jnp.zeros((4, 2)))
    # a cell module (not the name) is scanned, whatever `fused` says
    from jdl.nn.recurrent import LSTMCell
    model = SequenceModel(LSTMCell(n), num_outputs=None)
    p = model.init(jax.random.PRNGKey(0), xi.astype(jnp.float32))
    assert "cell" in p["params"]
