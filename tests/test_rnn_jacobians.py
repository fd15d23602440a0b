"""Tests of jdl.rnn.jacobians (state-to-state Jacobians, their products, the lag curves).

Facts checked: the product J(t) ... J(t-k+1) equals jax.jacfwd of the unrolled k-step map
X(t-k) -> X(t) (Elman and LSTM, float64); spectral norms, eigenvalues and radii against numpy;
for a linear RNN with recurrent matrix W (column convention W = W_h^T) the k-step Jacobian is
W^k exactly; a tanh RNN with ||W|| = rho(W) = 0.5 has a lag curve under 0.5^k, a linear RNN
with rho(W) = 1.5 one above 1.5^k, and an IRNN with W_h = 1.5 I kept in its linear region
exactly 1.5^k; the loss gradient dE/dX(T-k) is dE/dh_T . dX(T)/dX(T-k) with readout 'last';
the lag plot is written.

Speed: each test gathers what it checks into one jax.jit; tiny sizes (n 3-8, T 5-40).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jdl.nn.recurrent import ElmanCell, LSTMCell, SequenceModel
from jdl.rnn import (gradient_lags, lag_products, plot_gradient_lags, scale_spectral_radius,
                     spectral_norm, spectral_radius, state_gradients, state_jacobians)
from jdl.rnn.jacobians import flat_transition


def _random_params(module, args, seed, scale=0.7):
    """Random float64 parameters (biases included), shapes from an abstract init (nothing is
    compiled or run)."""
    shapes = jax.eval_shape(lambda: module.init(jax.random.PRNGKey(0), *args))["params"]
    leaves, tree = jax.tree.flatten(shapes)
    rng = np.random.default_rng(seed)
    return jax.tree.unflatten(tree, [jnp.asarray(scale * rng.normal(size=a.shape), jnp.float64)
                                     for a in leaves])


def _cell_params(cell, d, seed, scale=0.7):
    carry = cell.initialize_carry(None, (d,), jnp.float64)
    return _random_params(cell, (carry, jnp.zeros(d, jnp.float64)), seed, scale)


@pytest.mark.parametrize("name", ["elman", "lstm"])
def test_products_equal_jacfwd_of_the_unrolled_map(name):
    T, d, n, t = 6, 2, 3, 5
    with jax.enable_x64(True):
        cell = (ElmanCell(n, jnp.float64) if name == "elman" else LSTMCell(n, jnp.float64))
        params = _cell_params(cell, d, seed=1)
        x = jnp.asarray(np.random.default_rng(2).normal(size=(T, d)))

        @jax.jit
        def compute(params, x):
            states, J = state_jacobians(cell, params, x)
            products = lag_products(J, t)
            step, _ = flat_transition(cell, params, x[0])
            unrolled = []
            for k in range(1, t + 1):
                def k_steps(X, k=k):
                    for s in range(t - k, t):          # frames t-k+1..t use x[t-k..t-1]
                        X = step(X, x[s])[0]
                    return X
                unrolled.append(jax.jacfwd(k_steps)(states[t - k]))
            return states, J, products, jnp.stack(unrolled)

        states, J, products, unrolled = map(np.asarray, compute(params, x))
        # the trajectory is the cell's: X(1) = f(X(0), x_1)
        c1, _ = cell.apply({"params": params}, cell.initialize_carry(None, (d,), jnp.float64),
                           x[0])
    size = n if name == "elman" else 2 * n                  # LSTM: X = [c; h]
    assert J.shape == (T, size, size) and products.shape == (t, size, size)
    np.testing.assert_allclose(products, unrolled, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(products[0], J[t - 1], rtol=0, atol=0)
    assert np.abs(products).max() > 1e-3                    # not trivially zero
    np.testing.assert_allclose(states[1], np.concatenate([np.ravel(a) for a in
                                                          jax.tree.leaves(c1)]), rtol=1e-12)


def test_spectral_norm_eigenvalues_and_radius_match_numpy():
    rng = np.random.default_rng(3)
    M = rng.normal(size=(4, 5, 5))
    with jax.enable_x64(True):
        norms, radii, scaled = jax.jit(lambda M: (spectral_norm(M), spectral_radius(M),
                                                  scale_spectral_radius(M[0], 1.5)))(M)
        radius_scaled = spectral_radius(scaled)
    np.testing.assert_allclose(norms, [np.linalg.norm(m, 2) for m in M], rtol=1e-12)
    np.testing.assert_allclose(radii, [np.abs(np.linalg.eigvals(m)).max() for m in M],
                               rtol=1e-12)
    np.testing.assert_allclose(float(radius_scaled), 1.5, rtol=1e-12)


def test_linear_rnn_k_step_jacobian_is_W_to_the_k():
    """h_t = x_t W_x + h_{t-1} W_h + b: J(t) = W_h^T = W, dX(t)/dX(t-k) = W^k for every k."""
    T, d, n = 8, 2, 4
    rng = np.random.default_rng(4)
    with jax.enable_x64(True):
        cell = ElmanCell(n, jnp.float64, activation="identity")
        params = _cell_params(cell, d, seed=5)
        W_h = jnp.asarray(rng.normal(size=(n, n)) / np.sqrt(n))
        params = {**params, "W_h": W_h}
        x = jnp.asarray(rng.normal(size=(T, d)))
        res = jax.jit(lambda p, x: gradient_lags(cell, p, x))(params, x)
        res = jax.tree.map(np.asarray, res)
    W = np.asarray(W_h).T
    expected = np.stack([np.linalg.matrix_power(W, k) for k in range(1, T + 1)])
    np.testing.assert_allclose(res.products, expected, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(res.jacobians, np.broadcast_to(W, (T, n, n)), rtol=0, atol=0)
    np.testing.assert_allclose(res.lag_norms, [np.linalg.norm(m, 2) for m in expected],
                               rtol=1e-12)
    np.testing.assert_allclose(res.spectral_radii, np.abs(np.linalg.eigvals(W)).max(),
                               rtol=1e-12)
    assert np.all(res.lag_norms <= res.norm_bound * (1 + 1e-12))     # ||prod J|| <= prod ||J||


def test_lag_curve_vanishes_below_and_explodes_above_spectral_radius_one():
    T, d, n = 40, 2, 8
    rng = np.random.default_rng(6)
    x = rng.normal(size=(T, d))
    Q = np.linalg.qr(rng.normal(size=(n, n)))[0]
    G = rng.normal(size=(n, n)) / np.sqrt(n)
    with jax.enable_x64(True):
        tanh = ElmanCell(n, jnp.float64)
        linear = ElmanCell(n, jnp.float64, activation="identity")
        irnn = ElmanCell(n, jnp.float64, irnn=True)
        p_tanh = {**_cell_params(tanh, d, 7), "W_h": jnp.asarray(0.5 * Q)}
        p_lin = {**_cell_params(linear, d, 8, scale=0.1),
                 "W_h": scale_spectral_radius(jnp.asarray(G), 1.5)}
        # ReLU with W_h = 1.5 I, positive inputs and W_x, b >= 0: every unit stays active
        p_irnn = {"W_x": jnp.asarray(np.abs(rng.normal(size=(d, n)))),
                  "W_h": 1.5 * jnp.eye(n, dtype=jnp.float64), "b": jnp.zeros(n, jnp.float64)}

        @jax.jit
        def compute(p_tanh, p_lin, p_irnn, x):
            return (gradient_lags(tanh, p_tanh, x, eigen=False).lag_norms,
                    gradient_lags(linear, p_lin, x, eigen=False).lag_norms,
                    gradient_lags(irnn, p_irnn, jnp.abs(x), eigen=False).lag_norms)

        vanish, explode, irnn_curve = map(np.asarray, compute(p_tanh, p_lin, p_irnn, x))
    k = np.arange(1, T + 1)
    # tanh: J(t) = diag(1 - h_t^2) W_h^T, ||J|| <= ||W_h|| = 0.5, so ||prod|| <= 0.5^k
    assert np.all(vanish <= 0.5 ** k * (1 + 1e-9))
    assert np.all(np.diff(vanish) < 0) and vanish[-1] < 1e-12
    # linear, rho(W) = 1.5: ||W^k|| >= rho^k, growing geometrically
    assert np.all(explode >= 1.5 ** k * (1 - 1e-9))
    assert np.all(np.diff(explode[5:]) > 0) and explode[-1] > 1e6
    np.testing.assert_allclose(irnn_curve, 1.5 ** k, rtol=1e-12)


def test_loss_gradient_is_the_last_frame_gradient_times_the_product():
    """Readout 'last': dE/dX(T-k) = dE/dX(T)|through h_T . dX(T)/dX(T-k), and dE/dX(T) = 0
    (the canonical form's output of frame t depends on X(t-1))."""
    T, d, n, m = 6, 2, 3, 2
    rng = np.random.default_rng(9)
    with jax.enable_x64(True):
        x = jnp.asarray(rng.normal(size=(T, d)))
        target = jnp.asarray(rng.normal(size=(m,)))
        out = {}
        for name in ("elman", "lstm"):
            model = SequenceModel(name, n, m, readout="last", param_dtype=jnp.float64)
            params = _random_params(model, (x[None],), seed=10, scale=0.5)

            @jax.jit
            def compute(params, x, model=model):
                res = gradient_lags(model, params, x, target, eigen=False)
                delta = state_gradients(model, params, x, target)

                def E_of_h(h):          # the loss as a function of h_T
                    y = model.make_readout().apply({"params": params["readout"]}, h)
                    return jnp.sum((y - target) ** 2)
                g_h = jax.grad(E_of_h)(res.states[-1][-n:])
                g_X = jnp.zeros_like(res.states[-1]).at[-n:].set(g_h)   # X = h or [c; h]
                return res, delta, g_X

            out[name] = jax.tree.map(np.asarray, compute(params, x))
    for name, (res, delta, g_X) in out.items():
        expected = np.einsum("i,kij->kj", g_X, res.products)
        np.testing.assert_allclose(delta[:T][::-1], expected, rtol=1e-10, atol=1e-14)
        np.testing.assert_array_equal(delta[T], 0)
        np.testing.assert_allclose(res.loss_grad_norms, np.linalg.norm(expected, axis=1),
                                   rtol=1e-10)


def test_plot_gradient_lags_writes_a_png(tmp_path):
    path = tmp_path / "lags.png"
    k = np.arange(1, 30)
    plot_gradient_lags({"vanish": 0.5 ** k, "explode": 1.5 ** k, "with zeros": np.zeros(29)},
                       str(path), title="test", references={"rho = 1": 1.0})
    assert path.stat().st_size > 1000
    with pytest.raises(ValueError):
        lag_products(jnp.zeros((3, 2, 2)), t=4)
