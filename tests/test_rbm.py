"""Tests of jdl.rbm against exact enumeration on tiny RBMs.

Tiny RBMs (a few units) have 2^n_visible * 2^n_hidden joint states, so every quantity -- the
conditionals, F(v), log Z, p(v), the log-likelihood gradient -- can be computed by brute force
(in float64 numpy) and compared with the library's analytic or sampled versions.

Speed: on XLA's CPU backend every eager op with a new shape is a small compilation, so each test
gathers the library calls it checks into one ``jax.jit`` where it can.
"""
from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jdl.rbm as rbm
from jdl.train import create_state, fit, make_train_step

from rbm_enumeration import (all_states, bars_and_stripes, exact_p_v, fast_key,  # noqa: F401
                             joint_table, random_params, state_index, strict_dtypes,
                             tv_and_expected)


def np_free_energy(params, v):
    """Bernoulli F(v) = -v.b - sum_j log(1 + exp(c_j + (vW)_j)) in float64 numpy."""
    W, b, c = (np.asarray(params[k], np.float64) for k in ("W", "b", "c"))
    return -(v @ b) - np.logaddexp(0, v @ W + c).sum(-1)


def np_p_h_given_v(params, v):
    W, c = (np.asarray(params[k], np.float64) for k in ("W", "c"))
    return 1 / (1 + np.exp(-(v @ W + c)))


def _flat(tree):
    return np.concatenate([np.ravel(tree[k]) for k in ("W", "b", "c")])


# ------------------------------------------------------------------------- energy, conditionals


def test_conditionals_and_energy_match_enumeration_of_the_joint():
    with jax.enable_x64(True):
        params = random_params(0, 4, 3, dtype=jnp.float64)
        V, H, neg_e = joint_table(params)
        Vb, Hb = np.repeat(V, len(H), 0), np.tile(H, (len(V), 1))
        got = jax.jit(lambda p: (rbm.p_h_given_v(p, V), rbm.p_v_given_h(p, H),
                                 rbm.energy(p, Vb, Hb)))(params)
    joint = np.exp(neg_e - neg_e.max())                     # p(v, h) up to a constant
    # p(h_j = 1 | v) = sum_h p(v, h) h_j / sum_h p(v, h), for every v; likewise p(v_i = 1 | h)
    np.testing.assert_allclose(got[0], (joint @ H) / joint.sum(1, keepdims=True), rtol=1e-10)
    np.testing.assert_allclose(got[1], (joint.T @ V) / joint.sum(0)[:, None], rtol=1e-10)
    np.testing.assert_allclose(-got[2], neg_e.ravel(), rtol=1e-10)


def test_sampled_conditionals_have_the_right_means():
    params = random_params(1, 4, 3)
    n = 20000
    v = np.broadcast_to(np.array([1.0, 0.0, 1.0, 1.0], np.float32), (n, 4))
    h = np.broadcast_to(np.array([0.0, 1.0, 1.0], np.float32), (n, 3))

    @jax.jit
    def draw(p):
        return (rbm.sample_h(p, v, fast_key(0)), rbm.sample_v(p, h, fast_key(1)),
                rbm.sample_v(p, h, fast_key(2), visible="gaussian"),
                rbm.p_h_given_v(p, v[0]), rbm.p_v_given_h(p, h[0]),
                rbm.p_v_given_h(p, h[0], "gaussian"))

    hs, vs, gs, ph, pv, mean = (np.asarray(a) for a in draw(params))
    assert hs.dtype == np.float32 and set(np.unique(hs)) <= {0.0, 1.0}
    # binomial standard errors sqrt(p(1-p)/N) <= 0.0036: 0.02 is over 5 of them
    np.testing.assert_allclose(hs.mean(0), ph, atol=0.02)
    np.testing.assert_allclose(vs.mean(0), pv, atol=0.02)
    # Gaussian units: N(b + W h, 1); standard errors 1/sqrt(N) = 0.007
    np.testing.assert_allclose(gs.mean(0), mean, atol=0.04)
    np.testing.assert_allclose(gs.std(0), 1.0, atol=0.03)


def test_free_energy_sums_out_the_hidden_units():
    with jax.enable_x64(True):
        params = random_params(2, 4, 3, dtype=jnp.float64)
        H = all_states(3)
        binary = all_states(4)
        real = np.random.default_rng(3).normal(size=(10, 4))

        @jax.jit
        def compute(p):
            out = {}
            for visible, v in (("bernoulli", binary), ("gaussian", real)):
                neg_e = -jax.vmap(lambda h: rbm.energy(p, v, h, visible))(H)   # (8, n_v)
                out[visible] = (rbm.free_energy(p, v, visible),
                                -jax.nn.logsumexp(neg_e, axis=0))
            return out

        for visible, (free, brute) in compute(params).items():
            np.testing.assert_allclose(free, brute, rtol=1e-10, err_msg=visible)


def test_gaussian_units_conditional_mean_and_partition_function():
    x = np.linspace(-12, 12, 481)
    grid = np.stack(np.meshgrid(x, x, indexing="ij"), -1).reshape(-1, 2)
    with jax.enable_x64(True):
        params = random_params(4, 2, 3, scale=0.7, dtype=jnp.float64)
        H = all_states(3)

        @jax.jit
        def compute(p):
            mean = rbm.p_v_given_h(p, H, "gaussian")
            grad_e = jax.vmap(jax.grad(rbm.energy, argnums=1), in_axes=(None, 0, 0, None))
            hess = jax.hessian(rbm.energy, argnums=1)(p, mean[3], H[3], "gaussian")
            return (grad_e(p, mean, H, "gaussian"), hess, rbm.log_partition(p, "gaussian"),
                    -rbm.free_energy(p, grid, "gaussian"))

        dE, hess, log_z, log_density = (np.asarray(a) for a in compute(params))
    # p(v | h) ∝ exp(-E(v, h)) is N(b + W h, I): the energy is stationary at the mean, with
    # unit curvature
    np.testing.assert_allclose(dE, 0.0, atol=1e-12)
    np.testing.assert_allclose(hess, np.eye(2), atol=1e-12)
    # log Z (integral over v, sum over h) against a Riemann sum on a grid (the integrand is a
    # mixture of unit Gaussians, negligible beyond |v| = 12; the sum converges exponentially)
    quad = np.logaddexp.reduce(log_density) + 2 * np.log(x[1] - x[0])
    np.testing.assert_allclose(log_z, quad, rtol=1e-8)


def test_init_params_and_base_rate_bias():
    data = np.zeros((10, 3), np.float32)
    data[:2, 0] = 1
    data[:, 1] = 1

    @jax.jit
    def compute():
        b = rbm.base_rate_bias(data, pseudocount=0.0)
        return (rbm.init_params(fast_key(0), 50, 20, scale=0.01), b, rbm.base_rate_bias(data),
                rbm.init_params(fast_key(0), 3, 2, visible_bias=b))

    params, b, smoothed, with_b = compute()
    assert params["W"].shape == (50, 20) and params["W"].dtype == jnp.float32
    assert np.std(np.asarray(params["W"])) == pytest.approx(0.01, rel=0.1)
    assert not np.asarray(params["b"]).any() and not np.asarray(params["c"]).any()
    assert float(b[0]) == pytest.approx(math.log(0.2 / 0.8), rel=1e-5)
    assert np.isfinite(np.asarray(smoothed)).all()       # the pseudocount keeps 0 and 1 finite
    np.testing.assert_array_equal(with_b["b"], b)
    with pytest.raises(ValueError):
        rbm.free_energy(params, jnp.zeros(50), visible="gauss")


# --------------------------------------------------------------------------------- likelihood


@pytest.mark.parametrize("n_visible,n_hidden", [(4, 3), (3, 5)])   # enumerates h, then v
def test_log_partition_matches_brute_force(n_visible, n_hidden):
    with jax.enable_x64(True):
        params = random_params(5, n_visible, n_hidden, dtype=jnp.float64)
        V = all_states(n_visible)

        @jax.jit
        def compute(p):
            return (rbm.log_partition(p), rbm.log_partition(p, block_size=2),
                    rbm.log_likelihood(p, V))

        log_z, log_z_blocks, log_p = compute(params)
    _, _, neg_e = joint_table(params)
    brute = np.logaddexp.reduce(neg_e.ravel())
    np.testing.assert_allclose(log_z, brute, rtol=1e-12)
    np.testing.assert_allclose(log_z_blocks, brute, rtol=1e-12)   # several blocks, same sum
    assert np.exp(np.asarray(log_p)).sum() == pytest.approx(1.0, abs=1e-12)
    with pytest.raises(ValueError, match="ais_log_partition"):
        rbm.log_partition(random_params(0, 30, 25))


def test_log_partition_gradient_is_the_model_expectation():
    # d log Z / dW = E_model[v h^T], d/db = E[v], d/dc = E[h]: what CD's negative phase estimates
    with jax.enable_x64(True):
        params = random_params(13, 4, 3, dtype=jnp.float64)
        g = jax.jit(jax.grad(rbm.log_partition))(params)
    V, H, neg_e = joint_table(params)
    p = np.exp(neg_e - np.logaddexp.reduce(neg_e.ravel()))
    np.testing.assert_allclose(g["W"], V.T @ p @ H, rtol=1e-9)
    np.testing.assert_allclose(g["b"], p.sum(1) @ V, rtol=1e-9)
    np.testing.assert_allclose(g["c"], p.sum(0) @ H, rtol=1e-9)


def test_pseudo_log_likelihood_matches_sklearn_and_besag():
    from sklearn.neural_network import BernoulliRBM

    params = random_params(6, 6, 4)
    v = all_states(6, np.float32)[::3]
    # score_samples draws its flipped unit with a fresh RandomState(random_state)
    flip = np.random.RandomState(0).randint(0, v.shape[1], v.shape[0])

    @jax.jit
    def compute(p):
        return {"free": rbm.free_energy(p, v),
                "pll": rbm.pseudo_log_likelihood(p, v, flip=flip),
                "each": jax.vmap(lambda i: rbm.pseudo_log_likelihood(
                    p, v, flip=jnp.full(len(v), i)))(jnp.arange(6)),
                "exact": rbm.exact_pseudo_log_likelihood(p, v),
                "random": rbm.pseudo_log_likelihood(p, v, fast_key(0))}

    got = {k: np.asarray(a) for k, a in compute(params).items()}
    sk = BernoulliRBM(n_components=4, random_state=0)
    sk.components_ = np.asarray(params["W"], np.float64).T
    sk.intercept_hidden_ = np.asarray(params["c"], np.float64)
    sk.intercept_visible_ = np.asarray(params["b"], np.float64)
    np.testing.assert_allclose(got["free"], sk._free_energy(v), rtol=1e-5)
    np.testing.assert_allclose(got["pll"], sk.score_samples(v), rtol=1e-5)
    # Besag's sum_i log p(v_i | v_-i) is the average over which unit is flipped ...
    np.testing.assert_allclose(got["each"].mean(0), got["exact"], rtol=1e-5)
    # ... and each term log p(v_i | v_-i) is what the joint says
    V, pv = exact_p_v(params)
    for row in range(len(v)):
        x = v[row]
        for i in range(6):
            other = x.copy()
            other[i] = 1 - other[i]
            a, b = pv[state_index(x)], pv[state_index(other)]
            assert got["each"][i, row] / 6 == pytest.approx(np.log(a / (a + b)), abs=1e-5)
    assert got["random"].shape == (len(v),) and (got["random"] <= 0).all()


# AIS: one jitted function shared by the two tests, compiled once. 500 chains x 500
# temperatures: over 10 seeds the error's standard deviation was 0.01 nats on the random RBM
# and 0.03 on the trained one (largest error 0.064), so 0.1 nats is over 3 standard deviations.
@jax.jit
def _ais_and_exact(params, key, base_bias):
    est = rbm.ais_log_partition(params, key, n_chains=500, n_betas=500,
                                base_visible_bias=base_bias)
    return est, rbm.log_partition(params)


def _check_ais(params, base_bias, key):
    est, exact = _ais_and_exact(params, key, base_bias)
    exact = float(exact)
    assert abs(float(est.log_z) - exact) < 0.1, (float(est.log_z), exact)
    assert float(est.log_z_lower) <= exact <= float(est.log_z_upper)
    assert 0 < float(est.log_z_std) < 0.05
    assert est.log_weights.shape == (500,)


def test_ais_estimates_log_partition_of_a_random_rbm():
    params = random_params(7, 16, 12, scale=0.5)
    _check_ais(params, np.zeros(16, np.float32), fast_key(0))


def test_ais_estimates_log_partition_of_a_cd_trained_rbm():
    data = bars_and_stripes(4)                                 # 30 patterns of 16 pixels
    tx = optax.sgd(0.1, momentum=0.9)
    step = make_train_step(rbm.contrastive_divergence(k=1), tx)

    @jax.jit
    def train():
        state = create_state(rbm.init_params(fast_key(0), 16, 12, scale=0.1), tx, fast_key(1))
        state, metrics = jax.lax.scan(lambda s, _: step(s, {"x": data}), state, None,
                                      length=300)
        return (state.params, metrics["loss"],
                jnp.mean(rbm.log_likelihood(state.params, data)), rbm.base_rate_bias(data))

    trained, loss, ll, base_bias = train()
    assert float(loss[-1]) < 0.5 * float(loss[0])
    assert float(jnp.max(jnp.abs(trained["W"]))) > 2.0          # far from the initial weights
    assert float(ll) > -16 * math.log(2) + 4                     # and it learnt something
    _check_ais(trained, base_bias, fast_key(2))


# -------------------------------------------------------------------------------------- Gibbs


def test_gibbs_chains_reach_the_model_distribution():
    # Two RBMs at once (vmap over parameter sets), 10000 chains each: vmap over 100 groups of
    # chains with their own keys, each group a batch of 100 chains (v0 may carry a batch
    # dimension). All start at v = 0 and run 50 steps. With weights ~N(0,1) on 4x3 units a
    # chain forgets its start within a few steps, so what remains is sampling noise: the bound
    # 3 E[TV] (E[TV] about 0.012 here) is 3x the TV expected from 10000 exact samples.
    p1, p2 = random_params(8, 4, 3), random_params(9, 4, 3)
    stacked = jax.tree.map(lambda a, b: jnp.stack([a, b]), p1, p2)
    v0 = np.zeros((2, 100, 100, 4), np.float32)
    over_chains = jax.vmap(functools.partial(rbm.gibbs_chain, n_steps=50), in_axes=(None, 0, 0))
    final = jax.jit(lambda p, v0: jax.vmap(over_chains)(
        p, v0, jax.random.split(fast_key(0), (2, 100))))(stacked, v0)
    for params, samples in zip((p1, p2), np.asarray(final).reshape(2, 10000, 4)):
        _, p = exact_p_v(params)
        tv, expected = tv_and_expected(samples, p)
        assert tv < 3 * expected, (tv, expected)
        assert 1 - p[0] > 10 * expected                   # the start (v = 0) is far from p


def test_clamped_gibbs_chain_samples_the_conditional():
    # input completion: clamp v_0 = 1, v_1 = 0 and sample the two free units with one long
    # chain (gibbs_samples keeps every state). Successive states are correlated, so their
    # time average is noisier than independent samples: allow twice the bound used above.
    params = random_params(10, 4, 3)
    mask = jnp.array([True, True, False, False])

    @jax.jit
    def run(p):
        trace = rbm.gibbs_samples(p, jnp.array([1.0, 0.0, 0.0, 0.0]), fast_key(0), 20000,
                                  mask=mask)
        step = rbm.gibbs_step(p, jnp.zeros((5, 4)), fast_key(1), mask=mask,
                              clamped=jnp.array([0.0, 1.0, 0.0, 0.0]))
        return trace, step

    trace, step = (np.asarray(a) for a in run(params))
    assert trace.shape == (20000, 4)
    np.testing.assert_array_equal(trace[:, :2], np.broadcast_to([1.0, 0.0], (20000, 2)))
    V, p = exact_p_v(params)
    keep = (V[:, 0] == 1) & (V[:, 1] == 0)
    cond = p[keep] / p[keep].sum()                        # p(v_2, v_3 | v_0 = 1, v_1 = 0)
    tv, expected = tv_and_expected(trace[100:, 2:], cond)
    assert tv < 6 * expected, (tv, expected)
    # clamping to explicit values
    np.testing.assert_array_equal(step[:, :2], np.broadcast_to([0.0, 1.0], (5, 2)))


# ------------------------------------------------------------------- contrastive divergence


@pytest.mark.parametrize("visible,persistent", [("bernoulli", False), ("gaussian", True)])
def test_cd_with_long_chains_estimates_the_exact_gradient(visible, persistent):
    # With k large the negative phase samples the model, so the CD "gradient" is an unbiased
    # estimate of the gradient of the mean negative log-likelihood (jax.grad of the exact one).
    # Bernoulli, CD-40 from the data: 8 vectors x 1000 copies = 8000 chains; each statistic
    # averages values in [0, 1] over 8000 (nearly independent) chains, a standard error below
    # 0.5/sqrt(8000) = 0.0056, so 0.03 is over 5 standard errors.
    # Gaussian, PCD-20 from N(0, I) chains: 6 vectors x 2000 = 12000 chains of values of order 1,
    # standard errors ~0.015, bound 0.06. Between them the two cases cover both start rules
    # (data / persistent chains) and both kinds of visible unit.
    with jax.enable_x64(visible == "gaussian"):
        if visible == "bernoulli":
            params, k, atol = random_params(11, 4, 3), 40, 0.03
            data = all_states(4, np.float32)[[0, 3, 5, 6, 9, 12, 14, 15]]
        else:
            params, k, atol = random_params(12, 3, 3, scale=0.5, dtype=jnp.float64), 20, 0.06
            data = np.random.default_rng(4).normal(size=(6, 3))
        batch = {"x": np.tile(data, (12000 // len(data) if persistent else 1000, 1))}
        n = batch["x"].shape[0]
        grad_fn = rbm.contrastive_divergence(k=k, persistent=persistent, visible=visible)

        @jax.jit
        def compute(p):
            exact = jax.grad(lambda q: -jnp.mean(rbm.log_likelihood(q, data, visible)))(p)
            state = ({"chains": rbm.init_chains(fast_key(2), n, data.shape[1], visible,
                                                p["W"].dtype)} if persistent else {})
            return exact, state, grad_fn(p, state, batch, fast_key(3))

        exact, state, (grads, new_state, metrics) = compute(params)
    np.testing.assert_allclose(_flat(grads), _flat(exact), atol=atol)
    assert set(metrics) >= {"loss", "free_energy", "free_energy_gap", "hidden_activity"}
    if persistent:
        assert new_state["chains"].shape == (n, data.shape[1])
        assert not np.array_equal(new_state["chains"], state["chains"])


def test_cd_grad_fn_protocol_and_example_keyed_noise():
    params = random_params(14, 6, 4)
    x = all_states(6, np.float32)[::8]                            # 8 examples
    plain = rbm.contrastive_divergence(k=1)
    sparse = rbm.contrastive_divergence(k=1, sparsity_target=0.1, sparsity_cost=0.5)
    key = fast_key(0)

    @jax.jit
    def compute(p):
        return (plain(p, {"other": jnp.ones(3)}, {"x": x}, key),
                sparse(p, {"hidden_activity": jnp.full(4, 0.1)}, {"x": x}, key))

    (grads, state, metrics), (g_s, s_state, _) = compute(params)
    assert jax.tree.map(jnp.shape, grads) == jax.tree.map(jnp.shape, params)
    assert set(state) == {"other"} and np.array_equal(state["other"], np.ones(3))
    assert all(jnp.shape(m) == () for m in metrics.values())
    assert 0 < float(metrics["loss"]) < 1
    assert float(metrics["free_energy"]) == pytest.approx(
        np.mean(np_free_energy(params, x)), rel=1e-5)
    # sparsity (same noise): the gradient is pushed by cost * (q - p), q a running average
    q = 0.95 * 0.1 + 0.05 * np.mean(np_p_h_given_v(params, x), 0)
    np.testing.assert_allclose(s_state["hidden_activity"], q, rtol=1e-5)
    np.testing.assert_allclose(g_s["c"] - grads["c"], 0.5 * (q - 0.1), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(g_s["W"] - grads["W"], 0.5 * np.outer(np.mean(x, 0), q - 0.1),
                               rtol=1e-4, atol=1e-6)
    # with global example indices and threefry keys (whose draws, unlike rbg's, do not change
    # under vmap), each example's Gibbs noise is a function of (rng, index) alone, wherever the
    # example sits in the batch -- what makes sharded and single-device steps agree. Shuffling
    # the batch with its indices leaves the gradient unchanged; shuffling the examples but not
    # their indices changes their noise, hence the gradient.
    step = jax.jit(plain)
    index, key = np.arange(8), jax.random.key(0)
    perm = np.array([3, 7, 0, 5, 1, 6, 2, 4])
    g = _flat(step(params, {}, {"x": x, "index": index}, key)[0])
    g_shuffled = _flat(step(params, {}, {"x": x[perm], "index": index[perm]}, key)[0])
    g_renumbered = _flat(step(params, {}, {"x": x[perm], "index": index}, key)[0])
    np.testing.assert_allclose(g_shuffled, g, rtol=1e-5, atol=1e-6)
    assert np.abs(g_renumbered - g).max() > 0.01
    # images are flattened
    img = jax.eval_shape(plain, params, {}, {"x": x.reshape(8, 2, 3)}, key)[0]
    assert jax.tree.map(jnp.shape, img) == jax.tree.map(jnp.shape, params)
    # misuse fails at trace time with a message
    with pytest.raises(KeyError, match="init_chains"):
        jax.eval_shape(rbm.contrastive_divergence(persistent=True), params, {}, {"x": x}, key)
    with pytest.raises(ValueError, match="one persistent chain"):
        jax.eval_shape(rbm.contrastive_divergence(persistent=True), params,
                       {"chains": jnp.zeros((3, 6))}, {"x": x}, key)
    with pytest.raises(ValueError):
        rbm.contrastive_divergence(k=0)


def test_jit_vmap_grad():
    params = random_params(15, 5, 3)
    v = all_states(5, np.float32)
    doubled = {k: 2 * np.asarray(a) for k, a in params.items()}
    stacked = {k: np.stack([np.asarray(params[k]), doubled[k]]) for k in params}

    @jax.jit
    def compute(p, stacked):
        return {"free": rbm.free_energy(p, v),
                "vmapped": jax.vmap(rbm.free_energy, in_axes=(None, 0))(p, v),
                "dfdv": jax.vmap(jax.grad(rbm.free_energy, argnums=1), in_axes=(None, 0))(p, v),
                "want": -(p["b"] + rbm.p_h_given_v(p, v) @ p["W"].T),
                "log_z": jax.vmap(rbm.log_partition)(stacked),
                "pll_grad": jax.grad(
                    lambda q: jnp.mean(rbm.exact_pseudo_log_likelihood(q, v)))(p)}

    got = compute(params, stacked)
    eager = np_free_energy(params, v)                  # jit, vmap and numpy agree
    np.testing.assert_allclose(got["free"], eager, rtol=1e-6)
    np.testing.assert_allclose(got["vmapped"], eager, rtol=1e-6)
    np.testing.assert_allclose(got["dfdv"], got["want"], rtol=1e-5, atol=1e-6)   # -(b + W p(h|v))
    # vmap over parameter sets = one call per set
    for log_z, p in zip(got["log_z"], (params, doubled)):
        V, _, neg_e = joint_table(p)
        assert float(log_z) == pytest.approx(np.logaddexp.reduce(neg_e.ravel()), rel=1e-5)
    assert all(np.isfinite(a).all() for a in jax.tree.leaves(got["pll_grad"]))


def test_pcd_training_with_fit_increases_the_exact_log_likelihood():
    # toy data: 60 noisy copies (5% flipped bits) of 3 random 12-pixel prototypes
    rng = np.random.default_rng(0)
    protos = (rng.random((3, 12)) < 0.4).astype(np.float32)
    data = protos[rng.integers(0, 3, 60)]
    data = np.abs(data - (rng.random(data.shape) < 0.05)).astype(np.float32)
    tx = optax.sgd(0.1, momentum=0.9)
    step = make_train_step(rbm.contrastive_divergence(k=1, persistent=True), tx)
    state = jax.jit(lambda: create_state(
        rbm.init_params(fast_key(0), 12, 6, scale=0.01), tx, fast_key(1),
        model_state={"chains": rbm.init_chains(fast_key(2), 10, 12)}))()
    mean_ll = jax.jit(lambda p: jnp.mean(rbm.log_likelihood(p, data)))
    before = float(mean_ll(state.params))
    result = fit(step, state, {"x": data}, epochs=10, batch_size=10, progress=False,
                 tensorboard=False)
    after = float(mean_ll(result.state.params))
    assert before == pytest.approx(-12 * math.log(2), abs=0.05)       # ~uniform at init
    # the data's entropy is about 3.5 nats (log 3 + 12 H(0.05)): the optimum is near -3.5
    assert after > before + 2.0, (before, after)
    assert result.state.model_state["chains"].shape == (10, 12)
    assert int(result.state.step) == 60
    assert len(result.history) == 10 and "train_loss" in result.history[-1]


# ------------------------------------------------------------ training helper and AIS likelihood


def test_pcd_update_does_not_depend_on_tracking_the_reconstruction():
    # reconstruction=False only drops a metric: the same key gives the same gradient, chains
    # and the free-energy gap as 'loss'
    params = random_params(21, 6, 4)
    data = (np.random.default_rng(3).random((8, 6)) < 0.5).astype(np.float32)
    state = {"chains": rbm.init_chains(fast_key(5), 8, 6)}
    batch = {"x": data, "index": np.arange(8)}

    @jax.jit
    def both(p, s):
        return (rbm.contrastive_divergence(1, persistent=True)(p, s, batch, fast_key(6)),
                rbm.contrastive_divergence(1, persistent=True, reconstruction=False)(
                    p, s, batch, fast_key(6)))

    (g1, s1, m1), (g2, s2, m2) = both(params, state)
    for a, b in zip(jax.tree.leaves((g1, s1)), jax.tree.leaves((g2, s2))):
        np.testing.assert_array_equal(a, b)
    assert "reconstruction_error" in m1 and "reconstruction_error" not in m2
    assert float(m1["loss"]) == float(m1["reconstruction_error"])
    assert float(m2["loss"]) == float(m2["free_energy_gap"]) == float(m1["free_energy_gap"])


def test_train_rbm_equals_the_hand_written_step_loop():
    # train_rbm = make_train_step(contrastive_divergence) + fit with global example indices:
    # replaying fit's batch order through the step by hand gives the same params
    from jdl.data import batch_indices
    data = bars_and_stripes(4)[:24]
    tx = optax.sgd(0.1, momentum=0.5)
    key = fast_key(3)
    res = rbm.train_rbm(data, 5, key, epochs=2, batch_size=8, tx=tx, persistent=True, seed=4)
    p0 = rbm.init_params(jax.random.fold_in(key, 0), 16, 5, 0.01)
    k_chains, k_train = jax.random.split(jax.random.fold_in(key, 1))
    state = create_state(p0, tx, k_train, {"chains": rbm.init_chains(k_chains, 8, 16)})
    step = jax.jit(make_train_step(rbm.contrastive_divergence(1, persistent=True), tx))
    for epoch in range(2):
        for idx in batch_indices(24, 8, 4, epoch):
            state, _ = step(state, {"x": data[idx], "index": np.asarray(idx, np.int32)})
    for a, b in zip(jax.tree.leaves(res.state.params), jax.tree.leaves(state.params)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert len(res.history) == 2 and "train_reconstruction_error" in res.history[-1]
    with pytest.raises(ValueError, match="visible units"):
        rbm.train_rbm(data, rbm.init_params(key, 9, 3), key, epochs=1, batch_size=8,
                      tx=tx)


def test_ais_log_likelihood_matches_the_exact_average_log_likelihood():
    params = random_params(8, 14, 10, scale=0.5)
    v = (np.random.default_rng(2).random((50, 14)) < 0.5).astype(np.float32)
    exact = float(jnp.mean(rbm.log_likelihood(params, v)))
    got = rbm.ais_log_likelihood(params, v, fast_key(4), n_runs=3, n_chains=200, n_betas=2000,
                                 batch_size=16)
    assert got["log_likelihood"] == pytest.approx(exact, abs=0.1)
    assert got["mean_free_energy"] == pytest.approx(
        float(np.mean(np_free_energy(params, v))), rel=1e-5)
    assert len(got["log_z_runs"]) == 3 and 0 < got["log_z_spread"] < 0.1
    assert got["log_z_lower"] <= got["log_z_runs"][0] <= got["log_z_upper"]


@pytest.mark.parametrize("data, entry, msg", [
    (np.arange(16.0).reshape(2, 8), "train", r"train_rbm x: Bernoulli visible units take values "
                                             r"in \[0, 1\], got 14 of 16 values that are not, "
                                             r"range \[0, 15\]"),
    (np.linspace(-1, 1, 16).reshape(2, 8), "dbn", r"greedy_layerwise x: .*values in \[0, 1\], "
                                                  r"got 8 of 16 .*range \[-1, 1\]"),
    (np.full((2, 8), 0.5), "ais", r"ais_log_likelihood v: Bernoulli visible units take binary "
                                  r"values \(0 or 1\), got 16 of 16 .*range \[0.5, 0.5\]"),
    (np.full((2, 8), 3.0), "free_energy", r"free_energy v: .*values in \[0, 1\], got 16 of 16"),
])
def test_bernoulli_rbm_entries_refuse_non_binary_data(data, entry, msg):
    """Issue 12 item 6: raw pixels or [-1, 1] data are refused at every public entry of a
    Bernoulli RBM, naming the argument, the count and the range; probabilities in [0, 1] are
    accepted for training and free energies, only 0/1 for the likelihood."""
    from jdl.train import DataError
    key = fast_key(0)
    params = rbm.init_params(key, 8, 3)
    calls = {"train": lambda x: rbm.train_rbm(x, 3, key, epochs=1, batch_size=2,
                                               tx=optax.sgd(0.1)),
             "dbn": lambda x: rbm.dbn.greedy_layerwise(x, (3,), key, epochs=1, batch_size=2,
                                                       tx_factory=optax.sgd(0.1)),
             "ais": lambda x: rbm.ais_log_likelihood(params, x, key, n_chains=4, n_betas=10),
             "free_energy": lambda x: rbm.free_energy(params, x)}
    with pytest.raises(DataError, match=msg):
        calls[entry](data)
    ok = np.clip(data, 0, 1) if entry != "ais" else (data > 0.4).astype(np.float32)
    calls[entry](ok.astype(np.float32))   # accepted
    assert np.isfinite(jax.jit(lambda v: rbm.free_energy(params, v))(data).sum())  # traced: unchecked
