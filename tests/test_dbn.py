"""Tests of jdl.rbm.inference (completion, generation, classification, reconstruction, weight images)
and jdl.rbm.dbn (greedy layer-wise training, up/down passes, conversion to an MLP, fine-tuning).

Tiny RBMs are checked against brute-force enumeration (float64 numpy); the training tests use
bars-and-stripes 4x4 (30 patterns of 16 pixels; MacKay 2003), small enough to train in seconds.
As in test_rbm.py, each test gathers its library calls into one ``jax.jit`` where it can.
"""
from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jdl.rbm as rbm
from jdl.losses import cross_entropy
from jdl.nn.mlp import MLP
from jdl.rbm import dbn, inference
from jdl.train import backprop, create_state, fit, make_train_step

from rbm_enumeration import (all_states, exact_p_v, fast_key, random_params,
                             strict_dtypes, tv_and_expected)  # noqa: F401 (autouse fixture)


def bars_and_stripes(n=4):
    """(patterns, labels): the 2^(n+1) - 2 distinct n x n images whose rows are all equal
    (label 0, "stripes") or columns all equal (label 1, "bars"); the blank and the full image
    are both, labelled 0."""
    rows = [np.array(bits, np.float32) for bits in itertools.product([0, 1], repeat=n)]
    stripes = {tuple(np.tile(r[:, None], (1, n)).ravel()) for r in rows}
    bars = {tuple(np.tile(r[None, :], (n, 1)).ravel()) for r in rows} - stripes
    x = np.array(sorted(stripes) + sorted(bars), np.float32)
    y = np.array([0] * len(stripes) + [1] * len(bars), np.int32)
    return x, y


# ---------------------------------------------------------------------- RBM inference


def test_complete_equals_the_exact_conditional_expectation():
    # 5 visible x 3 hidden units, W ~ N(0, 1.5^2): clamp units 0 and 1 and estimate
    # E[v_2..4 | v_0, v_1] for two clamped patterns at once (v batched, one mask). The estimate
    # averages the conditional means E[v_F | h_t] of 400 chains over 180 steps each (after 20 of
    # burn-in); over 20 seeds its error had a standard deviation of 0.0004 and never exceeded
    # 0.0015 (measured), so 0.005 is over 10 standard deviations, while the conditional means
    # differ from the unconditional ones by more than 0.03 (asserted): clamping matters.
    params = random_params(6, 5, 3, scale=1.5)
    v = np.array([[1, 0, 0, 0, 0], [0, 1, 1, 1, 1]], np.float32)
    mask = np.array([1, 1, 0, 0, 0], np.int32)

    @jax.jit
    def run(p):
        return (inference.complete(p, v, mask, fast_key(0), n_steps=200, burn_in=20, n_chains=400),
                inference.complete(p, v[0], mask.astype(bool), fast_key(1), n_steps=3))

    got, short = (np.asarray(a) for a in run(params))
    assert short.shape == (5,) and np.array_equal(short[:2], v[0, :2])   # boolean mask
    V, p = exact_p_v(params)
    np.testing.assert_array_equal(got[:, :2], v[:, :2])            # clamped units untouched
    for row in range(2):
        keep = np.all(V[:, :2] == v[row, :2], axis=1)
        cond = p[keep] / p[keep].sum()
        expected = cond @ V[keep][:, 2:]                            # E[v_F | v_C] by enumeration
        np.testing.assert_allclose(got[row, 2:], expected, atol=0.005)
        assert np.abs(expected - p @ V[:, 2:]).max() > 0.03        # clamping matters
    with pytest.raises(ValueError, match="burn_in"):
        inference.complete(params, v, mask, fast_key(0), n_steps=10, burn_in=10)


def test_classify_is_the_brute_force_argmax_of_p_label_given_v():
    # a classification RBM over [v, one_hot(y)]: 4 data units, 3 label units (last), 3 hidden.
    # p(y = c | v) by brute force: sum exp(-E([v, e_c], h)) over all 8 hidden states, normalised
    # over the 3 one-hot label states.
    n_data, n_classes, n_hidden = 4, 3, 3
    params = random_params(3, n_data + n_classes, n_hidden, scale=1.5)
    V = all_states(n_data, np.float32)                              # all 16 data vectors
    E_y = np.eye(n_classes, dtype=np.float32)

    @jax.jit
    def compute(p):
        joined = np.concatenate([np.repeat(V, n_classes, 0), np.tile(E_y, (len(V), 1))], 1)
        return (inference.label_log_probs(p, V, n_classes), inference.classify(p, V, n_classes),
                rbm.free_energy(p, joined).reshape(len(V), n_classes))

    log_probs, labels, free = (np.asarray(a) for a in compute(params))
    W, b, c = (np.asarray(params[k], np.float64) for k in ("W", "b", "c"))
    H = all_states(n_hidden)
    brute = np.empty((len(V), n_classes))
    for i, x in enumerate(V.astype(np.float64)):
        for y in range(n_classes):
            full = np.concatenate([x, E_y[y].astype(np.float64)])
            brute[i, y] = np.logaddexp.reduce(full @ b + H @ c + full @ W @ H.T)   # -F([v, e_y])
        brute[i] -= np.logaddexp.reduce(brute[i])                   # log p(y | v)
    np.testing.assert_allclose(log_probs, brute, atol=1e-5)
    np.testing.assert_array_equal(labels, np.argmax(brute, axis=1))
    np.testing.assert_array_equal(labels, np.argmin(free, axis=1))  # argmin_c F([v, e_c])
    assert labels.dtype == np.int32 and len(set(labels.tolist())) > 1   # not a constant guess
    with pytest.raises(ValueError, match="data units"):
        inference.classify(params, np.zeros((2, 5), np.float32), n_classes)


def test_generate_under_vmap_and_jit_samples_the_model():
    # jit(vmap over 100 keys) x 100 chains each, 50 steps from random states: the 10000 samples
    # match the exact p(v) of a 4x3 RBM within 3x the total variation that exact samples would
    # show (the same bound as test_rbm's Gibbs test). (Threefry keys would also make each
    # vmapped draw equal generate() for that key alone, at 4x the compile time; test_rbm
    # checks that vmap invariance for the CD noise.)
    params = random_params(2, 4, 3)
    keys = jax.random.split(fast_key(0), 100)

    @jax.jit
    def run(p):
        many = jax.vmap(lambda k: inference.generate(p, k, 100, 50))(keys)
        one = inference.generate(p, keys[0], 100, 50, return_mean=True)
        from_v0 = inference.generate(p, keys[1], 3, 0, v0=jnp.array([1.0, 0.0, 1.0, 0.0]))
        return many, one, from_v0

    samples, (single, mean), from_v0 = jax.tree.map(np.asarray, run(params))
    assert samples.shape == (100, 100, 4) and set(np.unique(samples)) <= {0.0, 1.0}
    assert len({tuple(s.ravel()) for s in samples[:5]}) == 5         # independent per key
    assert single.shape == mean.shape == (100, 4) and 0 < mean.min() and mean.max() < 1
    np.testing.assert_array_equal(from_v0, np.tile([1.0, 0.0, 1.0, 0.0], (3, 1)))  # 0 steps
    _, p = exact_p_v(params)
    tv, expected = tv_and_expected(samples.reshape(-1, 4), p)
    assert tv < 3 * expected, (tv, expected)


def test_reconstruction_error_and_hidden_weight_images():
    params = random_params(3, 6, 4)
    v = all_states(6, np.float32)[::5]
    err = float(jax.jit(inference.reconstruction_error)(params, v))
    W, b, c = (np.asarray(params[k], np.float64) for k in ("W", "b", "c"))
    h = 1 / (1 + np.exp(-(v @ W + c)))
    recon = 1 / (1 + np.exp(-(h @ W.T + b)))
    assert err == pytest.approx(np.mean((v - recon) ** 2), rel=1e-5)
    images = np.asarray(inference.hidden_weight_images(params, (2, 3), n=3))
    assert images.shape == (3, 2, 3)
    for j in range(3):
        np.testing.assert_array_equal(images[j].ravel(), W[:, j].astype(np.float32))
    with pytest.raises(ValueError, match="pixels"):
        inference.hidden_weight_images(params, (2, 2))


# ----------------------------------------------------------------------------------- DBN


def test_mlp_from_dbn_computes_propagate_up():
    # the MLP built from the stack computes, layer by layer, exactly the DBN's bottom-up
    # probabilities: its Dense_i pre-activations (captured intermediates) pass through a sigmoid
    # to give propagate_up's layer i; the logits use the fresh output layer.
    stack = [random_params(10 + i, n_v, n_h)
             for i, (n_v, n_h) in enumerate([(12, 8), (8, 6), (6, 4)])]
    x = np.random.default_rng(0).random((5, 12)).astype(np.float32)
    model = MLP(hidden=(8, 6, 4), num_outputs=3, activation="sigmoid")
    params = dbn.to_mlp_params(stack, 3, fast_key(0))
    reference = jax.eval_shape(model.init, fast_key(1), x)["params"]     # no compilation
    assert (jax.tree.map(lambda a: (a.shape, a.dtype), params)
            == jax.tree.map(lambda a: (a.shape, a.dtype), dict(reference)))

    @jax.jit
    def compute(p):
        logits, inter = model.apply({"params": p}, x, capture_intermediates=True)
        return logits, inter["intermediates"], dbn.propagate_up(stack, x, all_layers=True)

    logits, inter, layers = compute(params)
    for i in range(3):
        hidden = jax.nn.sigmoid(inter[f"Dense_{i}"]["__call__"][0])
        np.testing.assert_allclose(hidden, layers[i], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(logits, layers[-1] @ params["Dense_3"]["kernel"], rtol=1e-5,
                               atol=1e-7)
    np.testing.assert_allclose(dbn.propagate_up(stack, x), layers[-1], rtol=1e-6)
    assert float(jnp.std(params["Dense_3"]["kernel"])) < 0.05      # a small fresh output layer
    assert not np.asarray(params["Dense_3"]["bias"]).any()
    with pytest.raises(ValueError, match="visible units"):
        dbn.propagate_up([stack[0], stack[2]], x)


def test_sample_down_samples_the_dbn_marginal():
    # a two-layer DBN 4 -> 3 -> 2: p(v) = sum_{h1} p_top(h1) p(v | h1), p_top the marginal of
    # the top RBM over its visible layer h1, p(v | h1) = prod_i Bernoulli(sigmoid(b_1 + W_1 h1)).
    # 10000 samples (60 top Gibbs steps each) match it within 3x the exact-sampling TV.
    stack = [random_params(20, 4, 3, scale=1.5), random_params(21, 3, 2, scale=1.5)]
    samples, mean = jax.jit(lambda k: dbn.sample_down(stack, k, 10000, 60, return_mean=True))(
        fast_key(0))
    H1, p_h1 = exact_p_v(stack[1])
    V = all_states(4)
    W, b = np.asarray(stack[0]["W"], np.float64), np.asarray(stack[0]["b"], np.float64)
    q = 1 / (1 + np.exp(-(H1 @ W.T + b)))                          # p(v_i = 1 | h1), (8, 4)
    p_v_given_h1 = np.prod(np.where(V[:, None, :] == 1, q[None], 1 - q[None]), axis=-1)
    p_v = p_v_given_h1 @ p_h1
    samples = np.asarray(samples)
    assert samples.shape == (10000, 4) and mean.shape == (10000, 4)
    tv, expected = tv_and_expected(samples, p_v)
    assert tv < 3 * expected, (tv, expected)
    # a one-RBM "DBN" is the RBM itself: sample_down is Gibbs sampling on it
    one = np.asarray(jax.jit(lambda k: dbn.sample_down(stack[:1], k, 10000, 60))(fast_key(1)))
    tv, expected = tv_and_expected(one, exact_p_v(stack[0])[1])
    assert tv < 3 * expected, (tv, expected)


@pytest.fixture(scope="module")
def pretrained():
    """A 16 -> 12 -> 8 DBN trained greedily (CD-1, 20 epochs per layer, SGD 0.1 with momentum
    0.9) on bars-and-stripes, 30 patterns x 10 copies: (x, y, initial stack, stack, history).
    Shared by two tests: each layer's fit costs about 2 s of compilation."""
    with jax.numpy_dtype_promotion("strict"):
        x, y = bars_and_stripes(4)
        x, y = np.tile(x, (10, 1)), np.tile(y, 10)
        init = dbn.init_stack(fast_key(0), 16, (12, 8), scale=0.01)
        stack, history = dbn.greedy_layerwise(
            x, (12, 8), fast_key(1), epochs=20, batch_size=10,
            tx_factory=optax.sgd(0.1, momentum=0.9), initial=init, return_history=True)
    return x, y, init, stack, history


def test_greedy_training_lowers_each_layers_reconstruction_error(pretrained):
    # Layer l's error is measured on its own training data (the probabilities propagated up by
    # the trained layers below), from the initial W ~ N(0, 0.01^2) and after training: training
    # at least halves it on both layers (measured: 0.250 -> 0.0008 on layer 1, 0.230 -> 0.055
    # on layer 2). PCD-2 with a per-layer rate factory runs as well, and the initial stack
    # given is left intact (fit donates its buffers; using init below would raise otherwise).
    x, _, init, stack, history = pretrained
    assert [p["W"].shape for p in stack] == [(16, 12), (12, 8)]
    assert len(history) == 2 and len(history[0]) == 20
    inputs = [x] + dbn.propagate_up(stack, x, all_layers=True)[:-1]
    err = jax.jit(inference.reconstruction_error)
    for layer in range(2):
        before = float(err(init[layer], inputs[layer]))
        after = float(err(stack[layer], inputs[layer]))
        assert after < 0.5 * before, (layer, before, after)
        assert history[layer][-1]["train_loss"] < history[layer][0]["train_loss"]
    pcd = dbn.greedy_layerwise(x, (6,), fast_key(2), epochs=(2,),
                               batch_size=10, tx_factory=lambda layer: optax.sgd(0.05),
                               persistent=True, k=2)
    assert len(pcd) == 1 and pcd[0]["W"].shape == (16, 6)
    assert all(np.isfinite(np.asarray(leaf)).all() for leaf in jax.tree.leaves(pcd))
    assert not np.allclose(pcd[0]["c"], 0.0)                        # it trained


def test_fine_tuning_the_dbn_as_an_mlp_improves_the_loss(pretrained):
    # the DBN pretrained on bars-and-stripes without labels, converted to a sigmoid MLP with a
    # fresh 2-way output layer (bars vs stripes), fine-tuned by backprop: the cross-entropy
    # falls from about log 2 (the small output layer starts near 0) to under a tenth of it
    # (measured: 0.693 -> 0.005 after 15 epochs), and every pattern is classified correctly.
    x, y, _, stack, _ = pretrained
    model = MLP(hidden=(12, 8), num_outputs=2, activation="sigmoid")
    params = dbn.to_mlp_params(stack, 2, fast_key(1))
    tx = optax.sgd(0.5, momentum=0.9)
    state = create_state(jax.tree.map(jnp.copy, params), tx, fast_key(2))   # fit donates
    loss = jax.jit(lambda p: cross_entropy(model.apply({"params": p}, x), y))
    before = float(loss(params))
    result = fit(make_train_step(backprop(model), tx), state, {"x": x, "y": y}, epochs=15,
                 batch_size=10, progress=False, tensorboard=False)
    after = float(loss(result.state.params))
    assert before == pytest.approx(np.log(2), abs=0.05)
    assert after < before / 10, (before, after)
    logits = model.apply({"params": result.state.params}, x)
    assert float(jnp.mean((jnp.argmax(logits, -1) == y).astype(jnp.float32))) == 1.0
    # fine-tuning moved the pretrained weights, starting from them
    assert not np.allclose(result.state.params["Dense_0"]["kernel"], stack[0]["W"])
    assert np.allclose(params["Dense_0"]["kernel"], stack[0]["W"])
