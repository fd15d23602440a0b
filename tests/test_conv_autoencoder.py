"""jdl.nn.ConvAutoencoder: shapes of every variant (pooling / strided encoder, upsampling /
transposed-convolution decoder), the code against a hand-built forward pass, its gradient
against central finite differences, and one Adam step that lowers the reconstruction loss
through jdl.ae.autoencoder_grad_fn."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jdl.ae import autoencoder_grad_fn
from jdl.nn import ConvAutoencoder
from jdl.nn.conv_autoencoder import upsample_nearest


@pytest.mark.parametrize("down,up", [("pool", "nearest"), ("stride", "transpose")])
def test_conv_autoencoder_shapes(down, up):
    m = ConvAutoencoder(image_shape=(8, 8, 1), channels=(3, 4), code=5, downsample=down,
                        upsample=up)
    x = jax.random.uniform(jax.random.PRNGKey(0), (2, 64))            # flat inputs
    v = m.init(jax.random.PRNGKey(1), x)
    rec, code = m.apply(v, x)
    assert rec.shape == (2, 64) and code.shape == (2, 5)
    assert float(rec.min()) > 0.0 and float(rec.max()) < 1.0           # sigmoid output
    rec3, _ = m.apply(v, x.reshape(2, 8, 8))                            # (N, H, W) in, out
    np.testing.assert_allclose(rec3.reshape(2, 64), rec, atol=1e-6)
    p = v["params"]
    assert p["code"]["kernel"].shape == (2 * 2 * 4, 5)                  # 8 / 2^2 = 2
    assert p["expand"]["kernel"].shape == (5, 2 * 2 * 4)
    with pytest.raises(ValueError, match="divisible"):
        ConvAutoencoder(image_shape=(6, 6, 1), channels=(3, 4))
    with pytest.raises(ValueError, match="inputs must hold"):
        m.apply(v, jnp.zeros((2, 63)))


def test_conv_autoencoder_encode_matches_hand_forward_pass():
    m = ConvAutoencoder(image_shape=(4, 4, 2), channels=(3,), code=2, activation="tanh")
    x = jax.random.normal(jax.random.PRNGKey(2), (3, 4, 4, 2))
    p = m.init(jax.random.PRNGKey(3), x)["params"]
    k, b = np.asarray(p["conv_0"]["kernel"], np.float64), np.asarray(p["conv_0"]["bias"])
    xp = np.pad(np.asarray(x, np.float64), ((0, 0), (1, 1), (1, 1), (0, 0)))
    conv = np.zeros((3, 4, 4, 3))
    for i in range(4):
        for j in range(4):
            conv[:, i, j] = np.einsum("nabc,abcd->nd", xp[:, i:i + 3, j:j + 3], k) + b
    h = np.tanh(conv).reshape(3, 2, 2, 2, 2, 3).max(axis=(2, 4))        # 2 x 2 max pooling
    want = h.reshape(3, -1) @ np.asarray(p["code"]["kernel"]) + np.asarray(p["code"]["bias"])
    got = m.apply({"params": p}, x, method="encode")
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(upsample_nearest(jnp.arange(4.0).reshape(1, 2, 2, 1))[0, :, :, 0],
                                  [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]])


@pytest.mark.parametrize("down,up", [("pool", "nearest"), ("stride", "transpose")])
def test_conv_autoencoder_gradient_matches_finite_differences(down, up):
    with jax.enable_x64(True):
        m = ConvAutoencoder(image_shape=(4, 4, 1), channels=(2,), code=3, downsample=down,
                            upsample=up, activation="tanh")
        x = jax.random.uniform(jax.random.PRNGKey(4), (2, 16), jnp.float64)
        p = jax.tree.map(lambda a: a.astype(jnp.float64),
                         m.init(jax.random.PRNGKey(5), x)["params"])

        @jax.jit
        def loss(p):
            rec, _ = m.apply({"params": p}, x)
            return jnp.mean(jnp.sum((rec - x) ** 2, axis=1))

        g = jax.grad(loss)(p)
        leaves, tree = jax.tree.flatten(p)
        for li, leaf in enumerate(leaves):
            flat = np.asarray(leaf).reshape(-1)
            for idx in range(0, flat.size, max(1, flat.size // 3)):
                def at(eps):
                    e = flat.copy()
                    e[idx] += eps
                    new = list(leaves)
                    new[li] = jnp.asarray(e.reshape(leaf.shape))
                    return float(loss(jax.tree.unflatten(tree, new)))
                fd = (at(1e-6) - at(-1e-6)) / 2e-6
                got = float(np.asarray(jax.tree.leaves(g)[li]).reshape(-1)[idx])
                assert got == pytest.approx(fd, rel=1e-5, abs=1e-8)


def test_conv_autoencoder_trains_with_the_autoencoder_objective():
    import optax
    m = ConvAutoencoder(image_shape=(8, 8, 1), channels=(4,), code=4)
    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(6), 3)      # structured images in (0, 1)
    x = jax.nn.sigmoid(4.0 * jax.random.normal(k1, (16, 2)) @ jax.random.normal(k2, (2, 64))
                       + 2.0 * jax.random.normal(k3, (64,)))
    p = m.init(jax.random.PRNGKey(7), x)["params"]
    grad_fn = jax.jit(autoencoder_grad_fn(m, "cross_entropy"))
    tx = optax.adam(1e-2)
    opt = tx.init(p)
    first = None
    for _ in range(40):
        grads, _, metrics = grad_fn(p, {}, {"x": x}, jax.random.PRNGKey(0))
        first = float(metrics["reconstruction_error"]) if first is None else first
        updates, opt = tx.update(grads, opt, p)
        p = optax.apply_updates(p, updates)
    assert float(metrics["reconstruction_error"]) < 0.8 * first
