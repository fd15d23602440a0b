"""Tests of jdl.nn.autoencoders and jdl.ae: autoencoder models (tied weights), corruption,
reconstruction losses, sparsity and contractive penalties, the VAE's ELBO, the grad_fns, greedy
stacked training, the deep autoencoder from a DBN, and the uses (retrieval, k-NN, PSNR).

Each test checks a fact against an independent computation: finite differences in float64,
numerical integration, a closed-form log-likelihood, brute-force scikit-learn neighbours.
Sizes are tiny; the library calls of a test are gathered into one ``jax.jit`` where they can.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jdl.ae as ae
from jdl.ae import contractive as cae
from jdl.nn.autoencoders import Autoencoder, VariationalAutoencoder
from jdl.rbm import dbn
from jdl.train import create_state, fit, make_train_step

from rbm_enumeration import random_params, strict_dtypes  # noqa: F401 (autouse fixture)


def key(seed):
    return jax.random.PRNGKey(seed)


def init(model, x, seed=0, scale=1.0):
    """Params shaped as ``model.init`` makes them (jax.eval_shape: nothing is compiled), drawn
    with numpy: kernels N(0, scale^2 / fan_in), biases N(0, 0.1^2)."""
    shapes = jax.eval_shape(model.init, key(0), jnp.asarray(x))["params"]
    rng = np.random.default_rng(seed)

    def draw(s):
        sd = scale / np.sqrt(s.shape[0]) if len(s.shape) == 2 else 0.1
        return jnp.asarray(sd * rng.normal(size=s.shape), s.dtype)

    return jax.tree.map(draw, shapes)


def tree_max_abs_diff(a, b) -> float:
    assert jax.tree.structure(a) == jax.tree.structure(b)
    return max(float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64))))
               for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@pytest.fixture(scope="module")
def digits01():
    """The first 200 scikit-learn digits as 64 pixels in [0, 1], and their labels."""
    from sklearn.datasets import load_digits
    d = load_digits()
    return (d.data[:200] / 16.0).astype(np.float32), d.target[:200].astype(np.int32)


# ------------------------------------------------------------------------------- models


def test_tied_weights_share_one_kernel_per_layer_pair():
    # A tied 7 -> 5 -> 3 -> 5 -> 7 autoencoder owns only the encoder kernels (decoder: biases)
    # and computes what the untied one computes with decoder kernels W^T. Its gradient with
    # respect to a shared kernel W is the sum of the untied gradients of the two places W is
    # used: dL/dW = dL/dW_enc + (dL/dW'_dec)^T.
    x = np.random.default_rng(0).random((6, 7)).astype(np.float32)
    tied = Autoencoder(encoder=(5,), code=3, activation="tanh", tied=True)
    untied = Autoencoder(encoder=(5,), code=3, activation="tanh")
    pt = init(tied, x)
    assert sorted(pt["decoder_0"]) == ["bias"] and sorted(pt["encoder_0"]) == ["bias", "kernel"]
    pu = {**pt, "decoder_0": {"kernel": pt["encoder_1"]["kernel"].T, **pt["decoder_0"]},
          "decoder_1": {"kernel": pt["encoder_0"]["kernel"].T, **pt["decoder_1"]}}

    def loss(model, p):
        z, _ = model.apply({"params": p}, x)
        return ae.squared_error(z, x)

    @jax.jit
    def run(pt, pu):
        return (tied.apply({"params": pt}, x), untied.apply({"params": pu}, x),
                jax.grad(lambda p: loss(tied, p))(pt), jax.grad(lambda p: loss(untied, p))(pu))

    (zt, ct), (zu, cu), gt, gu = run(pt, pu)
    np.testing.assert_allclose(zt, zu, rtol=1e-6)
    np.testing.assert_allclose(ct, cu, rtol=1e-6)
    np.testing.assert_allclose(gt["encoder_0"]["kernel"],
                               gu["encoder_0"]["kernel"] + gu["decoder_1"]["kernel"].T,
                               rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(gt["encoder_1"]["kernel"],
                               gu["encoder_1"]["kernel"] + gu["decoder_0"]["kernel"].T,
                               rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(gt["decoder_1"]["bias"], gu["decoder_1"]["bias"], rtol=1e-6)
    # images keep their shape; decode alone needs the data size when the model never saw data
    img = x[:, :6].reshape(6, 2, 3)
    m = Autoencoder(encoder=(), code=2)
    z, code = jax.eval_shape(m.apply, {"params": init(m, img)}, img)
    assert z.shape == (6, 2, 3) and code.shape == (6, 2)
    with pytest.raises(ValueError, match="features="):
        jax.eval_shape(lambda c: m.init(key(0), c, method="decode"), code)
    m6 = Autoencoder(encoder=(), code=2, features=6)
    shapes = jax.eval_shape(lambda c: m6.init(key(0), c, method="decode"), code)
    assert shapes["params"]["decoder_0"]["kernel"].shape == (2, 6)


# ----------------------------------------------------------------------- corruption


def test_masking_noise_zeroes_the_expected_fraction_deterministically():
    p, shape = 0.3, (100, 400)
    x = jnp.full(shape, 2.0, jnp.float32)

    @jax.jit
    def run(k1, k2):
        return (ae.masking_noise(k1, x, p), ae.masking_noise(k1, x, p),
                ae.masking_noise(k2, x, p), ae.corrupt(k1, x, ("mask", p)),
                jax.vmap(lambda k: ae.masking_noise(k, x[0], p))(jax.random.split(k1, 50)),
                ae.gaussian_noise(k1, x, 0.5), ae.salt_and_pepper(k1, x, 0.2))

    a, a2, b, spec, many, g, sp = (np.asarray(v) for v in run(key(0), key(1)))
    n = x.size
    for m in (a, b, many):
        frac = np.mean(m == 0)
        assert abs(frac - p) < 5 * np.sqrt(p * (1 - p) / m.size), frac    # binomial, 5 sigma
    assert set(np.unique(a)) == {0.0, 2.0}                    # kept components are untouched
    np.testing.assert_array_equal(a, a2)                      # same key, same corruption
    np.testing.assert_array_equal(a, spec)                    # the spec form is the same call
    assert np.mean(a != b) > 0.3                              # another key, another mask
    assert len({tuple(r) for r in many[:, :50]}) == 50        # independent under vmap
    # per-example independence: rows of one call differ
    assert len({tuple(r) for r in a[:, :40]}) == a.shape[0]
    noise = g - 2.0
    assert abs(noise.mean()) < 5 * 0.5 / np.sqrt(n) and abs(noise.std() - 0.5) < 0.01
    hit = sp != 2.0
    assert abs(hit.mean() - 0.2) < 5 * np.sqrt(0.16 / n)
    assert abs(np.mean(sp[hit] == 1.0) - 0.5) < 0.02 and set(np.unique(sp[hit])) == {0.0, 1.0}
    np.testing.assert_array_equal(ae.corrupt(key(0), x[:2], None), x[:2])
    for bad in [("mask", 1.5), ("dropout", 0.1), ("gaussian", -1.0)]:
        with pytest.raises(ValueError):
            ae.corrupt(key(0), x, bad)


# -------------------------------------------------------------------- penalties


def _central_differences(f, x, eps=1e-6):
    """d f / d x by central differences, f: array -> scalar, evaluated on all 2 x.size
    perturbed copies of x in one vmapped call."""
    e = eps * np.eye(x.size).reshape((x.size,) + x.shape)
    values = np.asarray(jax.jit(jax.vmap(f))(jnp.asarray(np.concatenate([x + e, x - e]))))
    return ((values[:x.size] - values[x.size:]) / (2 * eps)).reshape(x.shape)


def test_kl_sparsity_penalty_formula_and_gradient():
    # Ng's penalty by hand in float64, its gradient against central finite differences and
    # against Ng's back-propagated term d/d h_nj = (1/m)(-rho/rho_hat_j + (1-rho)/(1-rho_hat_j)).
    rho = 0.05
    h = np.random.default_rng(1).uniform(0.02, 0.6, (8, 5))
    padded = np.vstack([h, np.ones((3, 5))])
    with jax.enable_x64(True), jax.numpy_dtype_promotion("standard"):
        @jax.jit
        def run(h, padded):
            value, grad = jax.value_and_grad(lambda a: ae.kl_sparsity(a, rho))(h)
            l1, l1_grad = jax.value_and_grad(ae.l1_sparsity)(h - 0.3)
            masked = ae.kl_sparsity(padded, rho, mask=jnp.asarray([1] * 8 + [0] * 3))
            return value, grad, l1, l1_grad, masked, ae.kl_sparsity(jnp.full((4, 3), rho), rho)

        value, grad, l1, l1_grad, masked, zero = run(h, padded)
        fd = _central_differences(lambda a: ae.kl_sparsity(a, rho), h)
    r = h.mean(axis=0)
    expected = np.sum(rho * np.log(rho / r) + (1 - rho) * np.log((1 - rho) / (1 - r)))
    assert float(value) == pytest.approx(expected, rel=1e-12)
    assert float(masked) == pytest.approx(expected, rel=1e-12)   # padded rows do not count
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-9)
    ng = (-rho / r + (1 - rho) / (1 - r)) / h.shape[0]
    np.testing.assert_allclose(grad, np.broadcast_to(ng, h.shape), rtol=1e-10)
    assert float(l1) == pytest.approx(np.abs(h - 0.3).sum(1).mean(), rel=1e-12)
    np.testing.assert_allclose(l1_grad, np.sign(h - 0.3) / h.shape[0], rtol=1e-12)
    assert float(zero) == pytest.approx(0.0, abs=1e-12)


def test_contractive_penalty_equals_finite_differences_and_closed_form():
    # float64: the exact ||J_f(x)||_F^2 by jacfwd and by jacrev equals the central-difference
    # Jacobian's, for a deep tanh encoder (6 -> 5 -> 3) and a one-layer sigmoid encoder; for
    # the latter Rifai's closed form sum_j (h_j(1-h_j))^2 sum_i W_ij^2 equals them too, and
    # so does the grad_fn's 'contractive' metric (closed form, chosen automatically, or exact).
    x = np.random.default_rng(2).normal(size=(4, 6))
    eps = 1e-6
    e = eps * np.eye(6)
    perturbed = np.concatenate([x[:, None, :] + e, x[:, None, :] - e], 1).reshape(-1, 6)
    deep = Autoencoder(encoder=(5,), code=3, activation="tanh", code_activation="tanh")
    one = Autoencoder(encoder=(), code=4, code_activation="sigmoid")
    with jax.enable_x64(True), jax.numpy_dtype_promotion("standard"):
        for model, seed in ((deep, 0), (one, 1)):
            p = init(model, x, seed, scale=2.0)                # large weights: far from linear

            @jax.jit
            def run(p, x, perturbed, model=model):
                enc = lambda xb: model.apply({"params": p}, xb, method="encode")  # noqa: E731
                single = lambda xi: enc(xi[None])[0]                              # noqa: E731
                out = dict(fwd=cae.jacobian_frobenius_sq(single, x, "fwd"),
                           rev=cae.jacobian_frobenius_sq(single, x, "rev"),
                           mean=ae.contractive_penalty(enc, x), codes=enc(perturbed))
                if model is one:
                    out["closed"] = ae.sigmoid_contractive_penalty(p["encoder_0"]["kernel"],
                                                                   enc(x))
                    for mode in ("auto", "rev"):
                        grad_fn = ae.autoencoder_grad_fn(one, contractive=0.5,
                                                         contractive_mode=mode)
                        out["grad_fn_" + mode] = grad_fn(p, {}, {"x": x}, key(0))[2][
                            "contractive"]
                return out

            out = run(p, x, perturbed)
            codes = np.asarray(out["codes"]).reshape(4, 2, 6, -1)
            brute = np.sum(((codes[:, 0] - codes[:, 1]) / (2 * eps)) ** 2, axis=(1, 2))
            np.testing.assert_allclose(out["fwd"], brute, rtol=1e-7)
            np.testing.assert_allclose(out["rev"], brute, rtol=1e-7)
            assert float(out["mean"]) == pytest.approx(brute.mean(), rel=1e-7)
        for name in ("closed", "grad_fn_auto", "grad_fn_rev"):
            assert float(out[name]) == pytest.approx(brute.mean(), rel=1e-7), name
    with pytest.raises(ValueError, match="one-layer sigmoid"):
        ae.autoencoder_grad_fn(deep, contractive=0.1, contractive_mode="closed_form")


def test_grad_fn_objective_is_the_sum_of_its_terms(digits01):
    # A denoising, sparse, contractive, weight-decayed autoencoder with cross-entropy: the
    # grad_fn's loss and gradient equal a hand-written objective on the same masking noise
    # (the step's rng) with the clean input as target; each metric is its term's value.
    x = jnp.asarray(digits01[0][:32])
    model = Autoencoder(encoder=(), code=10, code_activation="sigmoid")
    params = init(model, x)
    rng = key(3)
    opts = dict(loss="cross_entropy", corruption=("mask", 0.25),
                sparsity=dict(target=0.1, weight=0.3), contractive=0.2, weight_decay=1e-3)
    grad_fn = ae.autoencoder_grad_fn(model, **opts)

    def by_hand(p):
        x_tilde = ae.masking_noise(rng, x, 0.25)
        logits, code = model.apply({"params": p}, x_tilde, logits=True)
        h = jax.nn.sigmoid(x @ p["encoder_0"]["kernel"] + p["encoder_0"]["bias"])
        W = p["encoder_0"]["kernel"]
        terms = dict(
            cross_entropy=jnp.mean(jnp.sum(jax.nn.softplus(logits) - x * logits, -1)),
            reconstruction_error=jnp.mean(jnp.sum((jax.nn.sigmoid(logits) - x) ** 2, -1)),
            sparsity=ae.kl_divergence_bernoulli(0.1, jnp.mean(code, 0)),
            contractive=jnp.mean(jnp.sum((h * (1 - h)) ** 2 * jnp.sum(W ** 2, 0), -1)),
            weight_decay=jnp.sum(W ** 2) + jnp.sum(p["decoder_0"]["kernel"] ** 2))
        total = (terms["cross_entropy"] + 0.3 * terms["sparsity"] + 0.2 * terms["contractive"]
                 + 1e-3 * terms["weight_decay"])
        return total, terms

    @jax.jit
    def run(p):
        return grad_fn(p, {}, {"x": x}, rng), jax.value_and_grad(by_hand, has_aux=True)(p)

    (grads, state, metrics), ((total, terms), hand_grads) = run(params)
    assert state == {}
    assert float(metrics["loss"]) == pytest.approx(float(total), rel=1e-5)
    for name, value in terms.items():
        assert float(metrics[name]) == pytest.approx(float(value), rel=1e-5), name
    assert tree_max_abs_diff(grads, hand_grads) < 1e-4 * max(
        float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(hand_grads))
    assert float(terms["sparsity"]) > 0.1 and float(terms["contractive"]) > 0.01
    with pytest.raises(ValueError, match="output_activation"):
        ae.autoencoder_grad_fn(Autoencoder(output_activation="linear"), loss="cross_entropy")
    with pytest.raises(ValueError, match="sparsity"):
        ae.autoencoder_grad_fn(model, sparsity=dict(target=1.5, weight=1.0))


# ------------------------------------------------------------------------------- VAE


def test_gaussian_kl_closed_form_equals_numerical_integration():
    # KL(N(mu, s^2) || N(0, 1)) = int q log(q/p) by the trapezoid rule on a fine 1-D grid,
    # and the multivariate diagonal KL is the sum of the 1-D ones.
    mus, log_vars = np.array([0.0, 1.3, -0.7, 2.0]), np.array([0.0, -1.0, 0.8, -2.5])
    got = np.asarray(jax.vmap(lambda m, lv: ae.gaussian_kl(m[None], lv[None]))(
        jnp.asarray(mus, jnp.float32), jnp.asarray(log_vars, jnp.float32)))
    z = np.linspace(-20, 20, 400_001)
    for m, lv, g in zip(mus, log_vars, got):
        s = np.exp(0.5 * lv)
        log_q = -0.5 * np.log(2 * np.pi * s * s) - (z - m) ** 2 / (2 * s * s)
        log_p = -0.5 * np.log(2 * np.pi) - z ** 2 / 2
        q = np.exp(log_q)
        numeric = np.sum(0.5 * (q[1:] * (log_q - log_p)[1:] + q[:-1] * (log_q - log_p)[:-1])
                         * np.diff(z))
        assert g == pytest.approx(numeric, rel=1e-5, abs=1e-6)
    total = float(ae.gaussian_kl(jnp.asarray(mus, jnp.float32), jnp.asarray(log_vars,
                                                                              jnp.float32)))
    assert total == pytest.approx(got.sum(), rel=1e-6)


def test_elbo_is_below_the_exact_log_likelihood_of_a_linear_gaussian_model():
    # p(z) = N(0, I_2), p(x | z) = N(W z + b, s2 I_4): a VariationalAutoencoder with no hidden
    # layers and a Gaussian decoder is this model, and p(x) = N(b, W W^T + s2 I) is known.
    # For the encoder q(z|x) = N(A x + c, diag(v)), E_q log p(x|z) has a closed form too:
    #   -D/2 log(2 pi s2) - (||x - W mu - b||^2 + sum_j v_j ||W_j||^2) / (2 s2).
    # (1) the library's Monte-Carlo ELBO (vae_eval_fn, 4000 samples) matches that closed form;
    # (2) it lies below log p(x) by more than its sampling error, and the importance-weighted
    #     bound with 500 samples lies between the ELBO and log p(x), much closer to the latter;
    # (3) with W's columns orthogonal the exact posterior is diagonal Gaussian; with q set to
    #     it the closed-form ELBO equals log p(x) (gap KL(q || p(z|x)) = 0).
    D, K, s2 = 4, 2, 0.3
    rng = np.random.default_rng(4)
    x = rng.normal(size=(5, D)).astype(np.float32)
    model = VariationalAutoencoder(encoder=(), latent=K, decoder=(), likelihood="gaussian",
                                   output_variance=s2)

    def params_for(W, b, A, c, v):
        f = lambda a: jnp.asarray(a, jnp.float32)                      # noqa: E731
        return {"mu": {"kernel": f(A.T), "bias": f(c)},
                "log_var": {"kernel": f(np.zeros((D, K))), "bias": f(np.log(v))},
                "decoder_0": {"kernel": f(W.T), "bias": f(b)}}

    def exact_log_px(W, b):
        C = W @ W.T + s2 * np.eye(D)
        r = x.astype(np.float64) - b
        _, logdet = np.linalg.slogdet(C)
        return -0.5 * (D * np.log(2 * np.pi) + logdet + np.einsum("ni,ij,nj->n", r,
                                                                  np.linalg.inv(C), r))

    def closed_elbo(W, b, A, c, v):
        mu = x.astype(np.float64) @ A.T + c
        r = x - mu @ W.T - b
        ll = -0.5 * D * np.log(2 * np.pi * s2) - (np.sum(r * r, 1)
                                                  + np.sum(v * np.sum(W * W, 0))) / (2 * s2)
        kl = 0.5 * np.sum(v + mu ** 2 - 1 - np.log(v), 1)
        return ll - kl

    W, b = rng.normal(size=(D, K)), rng.normal(size=D) * 0.3
    A, c, v = rng.normal(size=(K, D)) * 0.3, rng.normal(size=K) * 0.1, np.array([0.5, 0.2])
    p = params_for(W, b, A, c, v)
    S = 20000
    eval_fn = ae.vae_eval_fn(model, n_samples=S)
    run = jax.jit(lambda p, xb, k: (eval_fn(p, {}, {"x": xb}),
                                    ae.importance_weighted_bound(model, p, xb, k, 500)))
    log_px, expected = exact_log_px(W, b), closed_elbo(W, b, A, c, v)
    errs, iwaes = [], []
    for n in range(len(x)):                                   # per example: eval_fn averages
        metrics, iwae = run(p, x[n:n + 1], key(n))
        errs.append(float(metrics["elbo"]) - expected[n])
        assert float(metrics["loss"]) == pytest.approx(-float(metrics["elbo"]))
        assert float(metrics["elbo"]) < log_px[n] - 0.5       # a gap far above the MC error
        iwaes.append(float(iwae[0]))
    # the Monte-Carlo error: 5 standard errors of an S-sample mean of log p(x|z), z ~ q, with
    # the standard deviation of log p(x|z) estimated from numpy draws
    mu = x.astype(np.float64) @ A.T + c
    z = mu[:, None, :] + np.sqrt(v) * rng.normal(size=(len(x), 10000, K))
    ll = -0.5 * np.sum((x[:, None, :] - z @ W.T - b) ** 2, -1) / s2
    tolerance = 5 * ll.std(axis=1) / np.sqrt(S)
    assert np.all(np.abs(errs) < tolerance), (errs, tolerance)
    assert np.all(expected < log_px)
    iwaes = np.array(iwaes)
    assert np.all(np.abs(log_px - iwaes) < 0.15 * (log_px - expected)), (iwaes, log_px)
    assert np.all(iwaes > np.array(errs) + expected)

    # (3) orthogonal columns: posterior N(S W^T (x - b) / s2, S), S = (I + W^T W / s2)^-1
    Q, _ = np.linalg.qr(rng.normal(size=(D, K)))
    W = Q * np.array([1.5, 0.7])
    S = np.linalg.inv(np.eye(K) + W.T @ W / s2)
    assert np.allclose(S, np.diag(np.diag(S)))
    A, c = S @ W.T / s2, -S @ W.T @ b / s2
    np.testing.assert_allclose(closed_elbo(W, b, A, c, np.diag(S)), exact_log_px(W, b),
                               rtol=1e-10)
    metrics, _ = run(params_for(W, b, A, c, np.diag(S)), x[:1], key(9))
    assert float(metrics["elbo"]) == pytest.approx(exact_log_px(W, b)[0], abs=0.1)


def test_vae_training_raises_the_elbo_and_generates(digits01):
    x = digits01[0]
    model = VariationalAutoencoder(encoder=(32,), latent=4)
    tx = optax.adam(3e-3)
    state = create_state(init(model, x[:2]), tx, key(1))
    with jax.numpy_dtype_promotion("standard"):        # optax.adam is not strict-safe
        result = fit(make_train_step(ae.vae_grad_fn(model), tx), state, {"x": x}, epochs=4,
                     batch_size=20, progress=False, tensorboard=False)
    first, last = result.history[0], result.history[-1]
    assert last["train_elbo"] > first["train_elbo"] + 3, (first, last)
    assert last["train_loss"] == pytest.approx(-last["train_elbo"], rel=1e-6)
    assert last["train_kl"] > 0

    @jax.jit
    def run(p, k):
        v = {"params": p}
        mu, log_var = model.apply(v, x[:5], method="encode")
        z = mu + jnp.exp(0.5 * log_var) * jax.random.normal(k, mu.shape)
        return (ae.generate(model, p, k, 6), ae.generate(model, p, k, 6, sample=True),
                model.apply(v, x[:5], rng=k)[0], model.apply(v, z, method="decode"),
                [model.apply(v, x[:5], train=True, rngs={"latent": s})[0]
                 for s in (k, k, jax.random.fold_in(k, 1))],
                model.apply(v, x[:5])[0], model.apply(v, mu, method="decode"))

    means, samples, by_arg, by_hand, streams, inference, at_mean = run(result.state.params,
                                                                       key(2))
    # the rng argument gives z = mu + sigma eps with eps drawn from that key; the 'latent'
    # stream is deterministic per key; inference without a key decodes the posterior mean
    np.testing.assert_allclose(by_arg, by_hand, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(streams[0], streams[1])
    assert not np.allclose(streams[0], streams[2]) and not np.allclose(streams[0], inference)
    np.testing.assert_allclose(inference, at_mean, rtol=1e-6)
    assert means.shape == samples.shape == (6, 64)
    assert 0 < float(means.min()) and float(means.max()) < 1
    assert set(np.unique(np.asarray(samples))) <= {0.0, 1.0}


# --------------------------------------------------------------------- DBN and stacks


def test_from_dbn_encodes_like_propagate_up_and_decodes_top_down():
    stack = [random_params(30 + i, n_v, n_h) for i, (n_v, n_h) in
             enumerate([(12, 8), (8, 6), (6, 4)])]
    x = np.random.default_rng(5).random((5, 12)).astype(np.float32)
    model, params = ae.from_dbn(stack)
    tied_model, tied_params = ae.from_dbn(stack, tied=True)
    lin_model, lin_params = ae.from_dbn(stack, code_activation="linear", visible="gaussian")
    assert model.encoder == (8, 6) and model.code == 4 and model.features == 12
    reference = jax.eval_shape(model.init, key(0), x)["params"]
    assert (jax.tree.map(lambda a: (a.shape, a.dtype), params)
            == jax.tree.map(lambda a: (a.shape, a.dtype), dict(reference)))

    @jax.jit
    def run(p, pt, pl):
        return (model.apply({"params": p}, x, all_layers=True, method="encode"),
                model.apply({"params": p}, x), tied_model.apply({"params": pt}, x),
                lin_model.apply({"params": pl}, x),
                dbn.propagate_up(stack, x, all_layers=True))

    layers, (z, code), (zt, ct), (zl, cl), up = run(params, tied_params, lin_params)
    for got, want in zip(layers, up):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(code, up[-1], rtol=1e-6)
    # top-down: h_{l-1} = sigmoid(h_l W_l^T + b_l), from the code to the visible layer
    h = np.asarray(up[-1], np.float64)
    for rbm in reversed(stack):
        W, bias = np.asarray(rbm["W"], np.float64), np.asarray(rbm["b"], np.float64)
        h = 1 / (1 + np.exp(-(h @ W.T + bias)))
    np.testing.assert_allclose(z, h, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(zt, z, rtol=1e-6)
    np.testing.assert_allclose(ct, code, rtol=1e-6)
    # linear code: the top RBM's hidden input; linear output: the Gaussian mean b_1 + W_1 h_1
    top = stack[-1]
    np.testing.assert_allclose(cl, up[1] @ np.asarray(top["W"]) + np.asarray(top["c"]),
                               rtol=1e-5, atol=1e-6)
    assert lin_model.output_activation == "linear"
    with pytest.raises(ValueError, match="visible units"):
        ae.from_dbn([stack[0], stack[2]])


def test_greedy_stacked_training_lowers_each_layers_error_and_assembles(digits01):
    # 64 -> 24 -> 12 on 200 digits, 6 epochs per layer (Adam 1e-2, batch 20; the second layer
    # with weight decay; 50 held-out digits as validation data): each layer's reconstruction
    # error on its own input (the codes of the trained layers below) falls to under half its
    # initial value (measured: 13.8 -> 3.9 and 2.6 -> 0.47). The assembled deep autoencoder is
    # exactly the composition of the layers, and 10 epochs of end-to-end fine-tuning lower its
    # reconstruction error by over 15% (measured: 4.61 -> 3.27).
    x, _ = digits01
    x, x_val = x[:150], x[150:]
    rng = key(7)
    models, initial = ae.init_layers(rng, 64, (24, 12))
    with jax.numpy_dtype_promotion("standard"):        # optax.adam is not strict-safe
        result = ae.greedy_layerwise(x, (24, 12), rng, epochs=6, batch_size=15,
                                     tx_factory=optax.adam(1e-2), weight_decay=[0.0, 1e-4],
                                     initial=initial, x_val=x_val)
    assert models == result.models and len(result.history) == 2
    assert "train_weight_decay" in result.history[1][-1]
    assert "train_weight_decay" not in result.history[0][-1]
    for history in result.history:
        assert history[-1]["val_reconstruction_error"] < history[0]["val_reconstruction_error"]
    deep, deep_params = result.assemble()
    assert deep.encoder == (24,) and deep.code == 12 and deep.code_activation == "sigmoid"

    @jax.jit
    def run(layer_params, initial, p):
        h1 = models[0].apply({"params": layer_params[0]}, x, method="encode")
        errors = []
        for m, inputs, p0, p1 in zip(models, (x, h1), initial, layer_params):
            errors.append([ae.reconstruction_error(inputs, m.apply({"params": q}, inputs)[0])
                           for q in (p0, p1)])
        h2 = models[1].apply({"params": layer_params[1]}, h1, method="encode")
        down = models[0].apply({"params": layer_params[0]},
                               models[1].apply({"params": layer_params[1]}, h2,
                                               method="decode"), method="decode")
        z, code = deep.apply({"params": p}, x)
        return errors, h2, down, z, code

    errors, h2, down, z, code = run(result.params, initial, deep_params)
    for layer, (before, after) in enumerate(errors):
        assert float(after) < 0.5 * float(before), (layer, float(before), float(after))
    np.testing.assert_allclose(code, h2, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(z, down, rtol=1e-5, atol=1e-6)

    tx = optax.adam(1e-2)
    state = create_state(deep_params, tx, key(8))
    with jax.numpy_dtype_promotion("standard"):
        tuned = fit(make_train_step(ae.autoencoder_grad_fn(deep), tx), state, {"x": x},
                    epochs=10, batch_size=15, progress=False, tensorboard=False)
    err = jax.jit(lambda p: ae.reconstruction_error(x, deep.apply({"params": p}, x)[0]))
    assert float(err(tuned.state.params)) < 0.85 * float(err(deep_params))


# ------------------------------------------------------------------------------- uses


def test_retrieval_and_knn_match_brute_force_scikit_learn():
    from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors
    rng = np.random.default_rng(6)
    centers = rng.normal(size=(3, 5)) * 1.5
    labels = rng.integers(0, 3, 300).astype(np.int32)
    codes = (centers[labels] + rng.normal(size=(300, 5))).astype(np.float32)
    q_labels = rng.integers(0, 3, 70).astype(np.int32)
    queries = (centers[q_labels] + rng.normal(size=(70, 5))).astype(np.float32)

    @jax.jit
    def run(codes, labels, queries, q_labels):
        return (ae.nearest_neighbors(queries, codes, 7, chunk_size=32),
                ae.precision_at_k(codes, labels, [1, 5, 10], chunk_size=64),
                ae.precision_at_k(codes, labels, 5, queries, q_labels, chunk_size=16),
                ae.knn_classify(codes, labels, queries, 5, 3, chunk_size=32),
                ae.knn_accuracy(codes, labels, queries, q_labels, 5, 3))

    (idx, dist), loo, prec_q, pred, acc = run(codes, labels, queries, q_labels)
    nn = NearestNeighbors(n_neighbors=11, algorithm="brute").fit(codes)
    d_ref, i_ref = nn.kneighbors(queries, n_neighbors=7)
    np.testing.assert_array_equal(idx, i_ref)
    np.testing.assert_allclose(dist, d_ref ** 2, rtol=1e-4, atol=1e-4)
    _, i_self = nn.kneighbors(codes)
    assert np.array_equal(i_self[:, 0], np.arange(300))           # no duplicate codes
    for j, k in enumerate([1, 5, 10]):
        brute = np.mean(labels[i_self[:, 1:k + 1]] == labels[:, None])
        assert float(loo[j]) == pytest.approx(brute, abs=1e-6)
    assert float(prec_q) == pytest.approx(np.mean(labels[i_ref[:, :5]] == q_labels[:, None]),
                                          abs=1e-6)
    knn = KNeighborsClassifier(n_neighbors=5, algorithm="brute").fit(codes, labels)
    np.testing.assert_array_equal(pred, knn.predict(queries))
    assert float(acc) == pytest.approx(knn.score(queries, q_labels), abs=1e-6)
    assert 0.6 < float(loo[0]) < 1.0                                # the clusters are found
    with pytest.raises(ValueError, match="k must be"):
        ae.nearest_neighbors(codes, codes, 300, exclude_self=True)


def test_psnr_and_compression_measures():
    rng = np.random.default_rng(7)
    x = rng.random((4, 8, 8)).astype(np.float32)
    y = np.clip(x + rng.normal(scale=0.1, size=x.shape), 0, 1).astype(np.float32)
    mse = np.mean((x.astype(np.float64) - y) ** 2)
    assert float(ae.psnr(x, y)) == pytest.approx(10 * np.log10(1 / mse), rel=1e-5)
    per = np.asarray(jax.jit(lambda a, b: ae.psnr(a, b, per_example=True))(x, y))
    np.testing.assert_allclose(per, 10 * np.log10(1 / np.mean((x - y) ** 2, axis=(1, 2))),
                               rtol=1e-5)
    u8, v8 = (x * 255).astype(np.uint8), (y * 255).astype(np.uint8)
    mse8 = np.mean((u8.astype(np.float64) - v8) ** 2)
    assert float(ae.psnr(u8, v8, 255.0)) == pytest.approx(10 * np.log10(255 ** 2 / mse8),
                                                          rel=1e-5)
    assert np.isinf(float(ae.psnr(x, x)))
    assert float(ae.reconstruction_error(x, y)) == pytest.approx(
        np.sum((x.astype(np.float64) - y) ** 2, axis=(1, 2)).mean(), rel=1e-5)
    assert ae.compression_ratio(784, 30) == pytest.approx(784 / 30)
