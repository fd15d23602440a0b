import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jdl import optim

A = np.array([[3.0, 0.5], [0.5, 1.0]])
B = np.array([1.0, -2.0])


def quad_grad(w):
    """Gradient of the toy loss 0.5 w^T A w - B.w (per weight matrix W row)."""
    return w @ A - B


def run_optax(tx, w0, steps):
    params = {"W": jnp.asarray(w0, jnp.float32), "b": jnp.asarray([0.5, -0.5], jnp.float32)}
    state = tx.init(params)
    traj = []
    for _ in range(steps):
        g = {"W": jnp.asarray(quad_grad(np.asarray(params["W"], np.float64)), jnp.float32),
             "b": jnp.asarray([1.0, 1.0], jnp.float32)}
        upd, state = tx.update(g, state, params)
        params = optax.apply_updates(params, upd)
        traj.append(jax.tree.map(np.asarray, params))
    return traj


def test_momentum_plus_weight_decay_is_the_lecture_update():
    """W(t+1) = W(t) - lambda grad_W [Q + beta sum W^2] + mu (W(t) - W(t-1)), stepped by hand."""
    lam, mu, beta, steps = 0.05, 0.8, 0.01, 30
    w0 = np.array([[0.3, -0.7], [1.2, 0.4]])
    traj = run_optax(optim.sgd(lam, mu, l2=beta), w0, steps)
    w_prev, w = w0.copy(), w0.copy()
    b_prev, b = np.array([0.5, -0.5]), np.array([0.5, -0.5])
    for t in range(steps):
        w_next = w - lam * (quad_grad(w) + 2 * beta * w) + mu * (w - w_prev)
        b_next = b - lam * np.array([1.0, 1.0]) + mu * (b - b_prev)  # no decay on biases
        w_prev, w, b_prev, b = w, w_next, b, b_next
        np.testing.assert_allclose(traj[t]["W"], w, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(traj[t]["b"], b, rtol=1e-5, atol=1e-6)


def test_decreasing_rate_enters_before_the_momentum_buffer():
    """With lambda(t) = lambda0 / (1 + d t) the lecture's form still holds step by step."""
    lam0, d, mu, steps = 0.1, 0.3, 0.9, 20
    w0 = np.array([[0.3, -0.7], [1.2, 0.4]])
    traj = run_optax(optim.sgd(optim.inverse_time(lam0, d), mu), w0, steps)
    w_prev, w = w0.copy(), w0.copy()
    for t in range(steps):
        w_next = w - lam0 / (1 + d * t) * quad_grad(w) + mu * (w - w_prev)
        w_prev, w = w, w_next
        np.testing.assert_allclose(traj[t]["W"], w, rtol=1e-5, atol=1e-6)


def test_l1_penalty_switched_on_after_start_step():
    lam, beta, start, steps = 0.05, 0.2, 5, 12
    w0 = np.array([[0.3, -0.7], [1.2, 0.4]])
    traj = run_optax(optim.sgd(lam, 0.0, l1=beta, penalty_start_step=start), w0, steps)
    w = w0.copy()
    for t in range(steps):
        pen = beta * np.sign(w) if t >= start else 0.0
        w = w - lam * (quad_grad(w) + pen)
        np.testing.assert_allclose(traj[t]["W"], w, rtol=1e-5, atol=1e-6)


def test_weight_decay_mask_spares_biases_and_scales():
    params = {"Dense_0": {"kernel": jnp.ones((3, 2)), "bias": jnp.ones(2)},
              "BatchNorm_0": {"scale": jnp.ones(2), "bias": jnp.ones(2)}}
    tx = optim.weight_decay(0.5, p=2)
    zeros = jax.tree.map(jnp.zeros_like, params)
    upd, _ = tx.update(zeros, tx.init(params), params)
    np.testing.assert_allclose(upd["Dense_0"]["kernel"], np.ones((3, 2)))  # 2 * beta * W
    for leaf in (upd["Dense_0"]["bias"], upd["BatchNorm_0"]["scale"], upd["BatchNorm_0"]["bias"]):
        np.testing.assert_array_equal(leaf, 0)


def test_clip_by_global_norm():
    tx = optim.sgd(1.0, 0.0, clip_norm=1.0)
    g = {"W": jnp.array([[3.0, 4.0]])}
    upd, _ = tx.update(g, tx.init(g), g)
    np.testing.assert_allclose(upd["W"], -np.array([[0.6, 0.8]]), rtol=1e-6)


def test_clip_by_value_then_by_norm_hand_computed():
    """g_i -> max(-c, min(c, g_i)) componentwise, then (clip_norm) rescaled to norm <= c'."""
    g = {"W": jnp.array([[3.0, -0.2], [-4.0, 0.1]]), "b": jnp.array([0.5, -0.7])}
    tx = optim.sgd(0.1, 0.0, clip_value=0.5)
    upd, _ = tx.update(g, tx.init(g), g)
    np.testing.assert_allclose(upd["W"], -0.1 * np.array([[0.5, -0.2], [-0.5, 0.1]]), rtol=1e-6)
    np.testing.assert_allclose(upd["b"], -0.1 * np.array([0.5, -0.5]), rtol=1e-6)
    # value first: [[2, 2]] (norm 2 sqrt 2), then norm 1: [[1, 1]] / sqrt 2
    g = {"W": jnp.array([[3.0, 4.0]])}
    tx = optim.sgd(1.0, 0.0, clip_value=2.0, clip_norm=1.0)
    upd, _ = tx.update(g, tx.init(g), g)
    np.testing.assert_allclose(upd["W"], -np.array([[1.0, 1.0]]) / np.sqrt(2), rtol=1e-6)
    # momentum sees the clipped gradients: u1 = -lr c, u2 = -lr c + mu u1
    tx = optim.sgd(0.1, 0.9, clip_value=1.0)
    g = {"W": jnp.array([[10.0, -0.5]])}
    s = tx.init(g)
    u1, s = tx.update(g, s, g)
    u2, s = tx.update(g, s, g)
    np.testing.assert_allclose(u2["W"], -0.1 * np.array([[1.0, -0.5]]) * 1.9, rtol=1e-6)
    # Adam on the clipped gradients g_c, two steps by hand from the moments (float32's
    # 1 - b2^t is good to ~1e-5 relative, hence rtol 1e-4)
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    tx = optim.adam(lr, b1, b2, eps, clip_value=0.3)
    p = {"W": jnp.zeros((1, 3))}
    s = tx.init(p)
    grads = [np.array([[1.0, -0.1, 0.2]]), np.array([[2.0, -0.4, 0.1]])]
    m = v = np.zeros((1, 3))
    for t, gr in enumerate(grads, 1):
        u, s = tx.update({"W": jnp.asarray(gr, jnp.float32)}, s, p)
        gc = np.clip(gr, -0.3, 0.3)
        m, v = b1 * m + (1 - b1) * gc, b2 * v + (1 - b2) * gc ** 2
        expected = -lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
        np.testing.assert_allclose(u["W"], expected, rtol=1e-4)


def test_adam_matches_optax_adam_without_penalty():
    p = {"W": jnp.array([[0.3, -0.7], [1.2, 0.4]])}
    mine, ref = optim.adam(1e-2), optax.adam(1e-2)
    s1, s2 = mine.init(p), ref.init(p)
    for i in range(5):
        g = {"W": jnp.sin(p["W"] * (i + 1))}
        u1, s1 = mine.update(g, s1, p)
        u2, s2 = ref.update(g, s2, p)
        np.testing.assert_allclose(u1["W"], u2["W"], rtol=1e-6)


@pytest.mark.parametrize("name, kwargs, formula", [
    ("constant", {}, lambda t: 0.1),
    ("step", dict(every=10, gamma=0.5), lambda t: 0.1 * 0.5 ** (t // 10)),
    ("exponential", dict(every=10, gamma=0.5), lambda t: 0.1 * 0.5 ** (t / 10)),
    ("inverse_time", dict(decay=0.01), lambda t: 0.1 / (1 + 0.01 * t)),
    ("cosine", dict(total_steps=100), lambda t: 0.1 * 0.5 * (1 + np.cos(np.pi * min(t, 100) / 100))),
])
def test_schedules_match_their_formulas(name, kwargs, formula):
    s = optim.make_schedule(name, 0.1, **kwargs)
    for t in (0, 1, 9, 10, 11, 37, 100, 150):
        np.testing.assert_allclose(float(s(t)), formula(t), rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("bad", [
    lambda: optim.sgd(-0.1), lambda: optim.sgd(0.0), lambda: optim.sgd(0.1, 1.0),
    lambda: optim.sgd(0.1, -0.5), lambda: optim.weight_decay(-1.0), lambda: optim.weight_decay(0.1, p=3),
    lambda: optim.sgd(0.1, clip_norm=0.0), lambda: optim.make_schedule("linear", 0.1),
    lambda: optim.step_decay(0.1, every=0), lambda: optim.adam(-1e-3),
    lambda: optim.sgd(0.1, clip_value=0.0), lambda: optim.sgd(0.1, clip_value=-1.0),
    lambda: optim.adam(1e-3, clip_value=0.0),
])
def test_invalid_hyperparameters_are_refused(bad):
    with pytest.raises(ValueError):
        bad()


@pytest.mark.parametrize("mu_sched, mu_of_t", [
    (lambda t: 0.9, lambda t: 0.9),                                   # constant, as a schedule
    (optax.linear_schedule(0.5, 0.95, 9), lambda t: min(0.5 + 0.05 * t, 0.95)),  # increasing
    (optim.increasing_momentum(0.99, every=4), lambda t: 1.0 - 0.5 / (t // 4 + 1)),  # Sutskever
])
def test_momentum_schedule_is_the_lecture_update_stepped_by_hand(mu_sched, mu_of_t):
    """u(t) = -lambda(t) g(t) + mu(t) u(t-1), W(t+1) = W(t) + u(t), lambda(t) = lambda0/(1 + d t)
    decaying, t counted from 0 with the updates."""
    lam0, d, steps = 0.1, 0.2, 25
    for t in range(steps):
        np.testing.assert_allclose(float(mu_sched(t)), mu_of_t(t), rtol=1e-6)
    w0 = np.array([[0.3, -0.7], [1.2, 0.4]])
    traj = run_optax(optim.sgd(optim.inverse_time(lam0, d), mu_sched), w0, steps)
    w, u = w0.copy(), np.zeros_like(w0)
    for t in range(steps):
        u = -lam0 / (1 + d * t) * quad_grad(w) + mu_of_t(t) * u
        w = w + u
        np.testing.assert_allclose(traj[t]["W"], w, rtol=1e-5, atol=1e-6)


def test_float_momentum_is_bit_identical_to_the_plain_trace():
    """A float mu keeps optax.trace (today's path), bit for bit, and a constant schedule gives
    the same trajectory (to float32 rounding)."""
    w0 = np.array([[0.3, -0.7], [1.2, 0.4]])
    lr = optim.inverse_time(0.1, 0.2)
    for nesterov in (False, True):
        today = optax.chain(optax.scale_by_learning_rate(lr), optax.trace(0.9, nesterov))
        a = run_optax(optim.sgd(lr, 0.9, nesterov=nesterov), w0, 15)
        b = run_optax(today, w0, 15)
        c = run_optax(optim.sgd(lr, lambda t: 0.9, nesterov=nesterov), w0, 15)
        for ta, tb, tc in zip(a, b, c):
            np.testing.assert_array_equal(ta["W"], tb["W"])
            np.testing.assert_array_equal(ta["b"], tb["b"])
            np.testing.assert_allclose(tc["W"], ta["W"], rtol=1e-6)


def test_momentum_schedule_under_jit_and_bad_schedules():
    tx = optim.sgd(0.1, optim.increasing_momentum(0.9, every=2))
    p = {"W": jnp.ones((2, 2))}
    s = tx.init(p)
    step = jax.jit(lambda g, s: tx.update(g, s, p))
    us = []
    for _ in range(5):
        u, s = step(p, s)
        us.append(float(u["W"][0, 0]))
    # g = 1 each step: u(t) = -0.1 + mu(t) u(t-1), mu = 0.5, 0.5, 0.75, 0.75, 0.8333
    expect, prev = [], 0.0
    for mu in (0.5, 0.5, 0.75, 0.75, 1 - 0.5 / 3):
        prev = -0.1 + mu * prev
        expect.append(prev)
    np.testing.assert_allclose(us, expect, rtol=1e-6)
    with pytest.raises(ValueError, match="momentum schedule"):
        optim.sgd(0.1, lambda t: 1.0)
    with pytest.raises(ValueError):
        optim.increasing_momentum(1.0)
    with pytest.raises(TypeError, match="schedule"):
        optim.scheduled_trace(0.9)
