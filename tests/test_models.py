import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jdl.nn import MLP, FashionConvNet, KerasExample, LeNet5
from jdl.train import num_params


def count(model, shape=(1, 28, 28, 1)):
    variables = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros(shape)))
    return num_params(variables["params"]), jax.eval_shape(
        lambda v: model.apply(v, jnp.zeros(shape)), variables).shape


def dense(i, o):
    return i * o + o


def conv(k, cin, cout):
    return k * k * cin * cout + cout


@pytest.mark.parametrize("model, expected, formula", [
    (MLP(hidden=(1024, 1024)), 1_863_690, dense(784, 1024) + dense(1024, 1024) + dense(1024, 10)),
    (MLP(hidden=(256,)), 203_530, dense(784, 256) + dense(256, 10)),
    # LeNet-5 with full C3 connectivity: C1 156, C3 2416, C5 48120, F6 10164, output 850
    (LeNet5(), 61_706, conv(5, 1, 6) + conv(5, 6, 16) + conv(5, 16, 120) + dense(120, 84) + dense(84, 10)),
    (FashionConvNet(), 3_274_634, conv(5, 1, 32) + conv(5, 32, 64) + dense(7 * 7 * 64, 1024) + dense(1024, 10)),
    (KerasExample(), 600_810, conv(3, 1, 32) + conv(3, 32, 32) + dense(12 * 12 * 32, 128) + dense(128, 10)),
])
def test_pinned_parameter_counts(model, expected, formula):
    n, out = count(model)
    assert n == expected == formula
    assert out == (1, 10)


def test_lenet_intermediate_shapes():
    # C1 28x28x6, S2 14x14x6, C3 10x10x16, S4 5x5x16, C5 1x1x120 (LeCun 1998, fig. 2)
    m = LeNet5()
    v = m.init(jax.random.PRNGKey(0), jnp.zeros((2, 28, 28, 1)))
    _, inter = m.apply(v, jnp.zeros((2, 28, 28, 1)), capture_intermediates=True)
    shapes = {k: inter["intermediates"][k]["__call__"][0].shape for k in ("C1", "C3", "C5")}
    assert shapes == {"C1": (2, 28, 28, 6), "C3": (2, 10, 10, 16), "C5": (2, 1, 1, 120)}


def test_lecun_uniform_initialisation_is_small_and_fan_in_scaled():
    v = MLP(hidden=(1000,)).init(jax.random.PRNGKey(0), jnp.zeros((1, 784)))
    w = np.asarray(v["params"]["Dense_0"]["kernel"])
    bound = np.sqrt(3 / 784)
    assert np.abs(w).max() <= bound
    assert abs(w.var() * 784 - 1.0) < 0.02  # Var W = 1 / fan_in
    assert np.all(np.asarray(v["params"]["Dense_0"]["bias"]) == 0)


def test_dropout_active_only_in_training():
    # Inference is the plain net: the same params in an MLP without dropout give the same
    # outputs. Training drops hidden units and scales the kept ones by 1 / (1 - p) (inverted
    # dropout), so a training output differs from the inference one, while the mean of the
    # training outputs over many masks is the inference output (the output is linear in the
    # dropped layer): checked within 5 standard errors of the Monte Carlo mean.
    m = MLP(hidden=(64,), dropout_rate=0.5)
    x = jax.random.normal(jax.random.PRNGKey(2), (4, 10))
    v = m.init(jax.random.PRNGKey(0), x)
    a = m.apply(v, x, train=False)
    np.testing.assert_array_equal(a, MLP(hidden=(64,), dropout_rate=0.0).apply(v, x))
    keys = jax.random.split(jax.random.PRNGKey(1), 4000)
    b = jax.jit(jax.vmap(lambda k: m.apply(v, x, train=True, rngs={"dropout": k})))(keys)
    assert not np.allclose(a, b[0])
    sem = np.asarray(b).std(axis=0) / np.sqrt(len(keys))
    assert np.all(np.abs(np.asarray(b).mean(axis=0) - np.asarray(a)) < 5 * sem + 1e-6)


@pytest.mark.parametrize("make", [lambda: MLP(dropout_rate=1.0), lambda: MLP(dropout_rate=-0.1),
                                  lambda: FashionConvNet(dropout_rate=1.5),
                                  lambda: KerasExample(drop_prob=1.0)])
def test_invalid_dropout_rates_are_refused(make):
    with pytest.raises(ValueError, match=r"must be in \[0, 1\)"):
        make()


def test_pure_functions_compose_with_jit_vmap_grad():
    m = KerasExample()
    x = jax.random.normal(jax.random.PRNGKey(0), (3, 28, 28, 1))
    v = m.init(jax.random.PRNGKey(1), x)
    batched = m.apply(v, x)
    # vmap over single examples equals the batched call
    per = jax.vmap(lambda xi: m.apply(v, xi[None])[0])(x)
    np.testing.assert_allclose(per, batched, atol=1e-5)
    # grad w.r.t. the input (a saliency map) through jit matches finite differences
    f = jax.jit(lambda xi: m.apply(v, xi)[0, 3])
    g = jax.grad(f)(x[:1])
    e = np.zeros(x[:1].shape, np.float32)
    e[0, 14, 14, 0] = 1e-2
    fd = (f(x[:1] + e) - f(x[:1] - e)) / 2e-2
    np.testing.assert_allclose(g[0, 14, 14, 0], fd, rtol=2e-2, atol=2e-4)
