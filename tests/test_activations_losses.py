import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from jdl import losses
from jdl.nn import activations as A

# points kept away from the kinks (0 for relu/threshold/sign, +-1 for saturation)
X = jnp.array([-2.3, -1.4, -0.6, -0.2, 0.3, 0.7, 1.6, 2.9])


@pytest.mark.parametrize("name", ["identity", "sigmoid", "tanh", "lecun_tanh", "relu",
                                  "saturation", "gaussian", "threshold", "sign"])
def test_activation_gradients_match_finite_differences(name):
    f = A.get_activation(name)
    check_grads(f, (X,), order=2, modes=["fwd", "rev"], atol=1e-2, rtol=1e-2)


def test_activation_values_match_their_formulas():
    x = np.asarray(X, np.float64)
    np.testing.assert_allclose(A.threshold(X), (x > 0).astype(float))
    np.testing.assert_allclose(A.sign(X), np.sign(x))
    np.testing.assert_allclose(A.identity(X), x)
    np.testing.assert_allclose(A.sigmoid(X), 1 / (1 + np.exp(-x)), rtol=1e-6)
    np.testing.assert_allclose(A.tanh(X), np.tanh(x), rtol=1e-6)
    np.testing.assert_allclose(A.lecun_tanh(X), 1.7159 * np.tanh(2 * x / 3), rtol=1e-6)
    np.testing.assert_allclose(A.relu(X), np.maximum(x, 0))
    np.testing.assert_allclose(A.saturation(X), np.clip(x, -1, 1))
    np.testing.assert_allclose(A.gaussian(X), np.exp(-x ** 2), rtol=1e-6)


def test_analytic_derivatives():
    g = jax.vmap(jax.grad(A.sigmoid))(X)
    s = 1 / (1 + np.exp(-np.asarray(X, np.float64)))
    np.testing.assert_allclose(g, s * (1 - s), rtol=1e-5)
    np.testing.assert_allclose(jax.vmap(jax.grad(A.gaussian))(X),
                               -2 * np.asarray(X) * np.exp(-np.asarray(X) ** 2), rtol=1e-5)
    np.testing.assert_allclose(jax.vmap(jax.grad(A.saturation))(X), (np.abs(X) < 1).astype(float))


def test_unknown_activation_is_refused():
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        A.get_activation("swish")


def _logits_labels():
    logits = jax.random.normal(jax.random.PRNGKey(1), (6, 5))
    labels = jnp.array([0, 4, 2, 2, 1, 3])
    return logits, labels


def test_cross_entropy_matches_formula_and_gradient():
    logits, labels = _logits_labels()
    l = np.asarray(logits, np.float64)
    logp = l - np.log(np.exp(l).sum(1, keepdims=True))
    expected = -logp[np.arange(6), np.asarray(labels)].mean()
    np.testing.assert_allclose(losses.cross_entropy(logits, labels), expected, rtol=1e-5)
    check_grads(lambda z: losses.cross_entropy(z, labels), (logits,), order=2, atol=1e-2, rtol=1e-2)
    # d/dz CE = (softmax - onehot) / batch
    g = jax.grad(losses.cross_entropy)(logits, labels)
    p = np.exp(logp)
    np.testing.assert_allclose(g, (p - np.eye(5)[np.asarray(labels)]) / 6, atol=1e-6)


def test_quadratic_error_matches_lecture_formula():
    y, labels = _logits_labels()
    d = np.eye(5)[np.asarray(labels)]
    expected = ((np.asarray(y, np.float64) - d) ** 2).sum(1).mean()
    np.testing.assert_allclose(losses.quadratic_error(y, labels), expected, rtol=1e-5)
    np.testing.assert_allclose(losses.quadratic_error(y, jnp.asarray(d, jnp.float32)), expected, rtol=1e-5)
    check_grads(lambda z: losses.quadratic_error(z, labels), (y,), order=2, atol=1e-2, rtol=1e-2)
    # lecture: delta_j = 2 (y_j - D_j) for a linear output neuron (per example)
    g = jax.grad(losses.quadratic_error)(y, labels)
    np.testing.assert_allclose(g, 2 * (np.asarray(y) - d) / 6, atol=1e-6)


def test_masked_losses_ignore_padding():
    logits, labels = _logits_labels()
    mask = jnp.array([1, 1, 1, 0, 0, 0], jnp.float32)
    np.testing.assert_allclose(losses.cross_entropy(logits, labels, mask),
                               losses.cross_entropy(logits[:3], labels[:3]), rtol=1e-6)
    np.testing.assert_allclose(losses.accuracy(logits, labels, mask),
                               losses.accuracy(logits[:3], labels[:3]), rtol=1e-6)
