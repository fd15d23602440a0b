"""Mixed precision (jdl.train.precision): float32 gradients close to the float32 ones, master
weights and model state kept float32, static loss scaling, training through jdl's step."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jdl.nn import MLP
from jdl.optim import sgd
from jdl.train import (backprop, cast_floating, init_state, make_train_step, mixed_precision,
                       mixed_precision_backprop, scale_loss)

MODEL = MLP(hidden=(64,))


def rel_err(a, b):
    num = sum(float(jnp.sum((x - y) ** 2)) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))
    return (num / sum(float(jnp.sum(y ** 2)) for y in jax.tree.leaves(b))) ** 0.5


def dtypes(tree):
    return {x.dtype for x in jax.tree.leaves(tree)}


@pytest.fixture
def setup(digits_small):
    train, _ = digits_small
    batch = {"x": jnp.asarray(train["x"][:128]), "y": jnp.asarray(train["y"][:128])}
    params = MODEL.init(jax.random.PRNGKey(0), batch["x"][:1])["params"]
    return params, batch


@pytest.mark.parametrize("build", ["wrapper", "backprop"])
def test_bfloat16_gradients_are_float32_and_close(setup, build):
    params, batch = setup
    rng = jax.random.PRNGKey(0)
    g32, _, m32 = jax.jit(backprop(MODEL))(params, {}, batch, rng)
    fn = (mixed_precision(backprop(MODEL)) if build == "wrapper"
          else mixed_precision_backprop(MODEL, compute_dtype=jnp.bfloat16))
    g16, state, m16 = jax.jit(fn)(params, {}, batch, rng)
    assert dtypes(g16) == {jnp.dtype(jnp.float32)} and state == {}
    assert dtypes(m16) == {jnp.dtype(jnp.float32)}
    assert jax.tree.structure(g16) == jax.tree.structure(g32)
    err = rel_err(g16, g32)
    assert 0 < err < 3e-2, err               # bf16 has an 8-bit mantissa: ~1e-2, not 0
    assert abs(float(m16["loss"]) - float(m32["loss"])) < 2e-2


def test_only_floating_leaves_are_cast():
    tree = {"x": jnp.ones(3, jnp.float32), "y": jnp.arange(3), "m": jnp.ones(3, jnp.bool_)}
    assert dtypes(cast_floating(tree, jnp.bfloat16)["x"]) == {jnp.dtype(jnp.bfloat16)}
    out = cast_floating(tree, jnp.bfloat16)
    assert out["y"].dtype == tree["y"].dtype and out["m"].dtype == jnp.bool_


def test_scale_loss_keeps_the_value_and_scales_the_gradient():
    logits = jnp.array([[1.0, -0.5, 0.2], [0.1, 0.3, -1.0]])
    y = jnp.array([0, 2])
    plain, scaled = scale_loss("cross_entropy", 1.0), scale_loss("cross_entropy", 256.0)
    v1, g1 = jax.value_and_grad(lambda z: plain(z, y))(logits)
    v2, g2 = jax.value_and_grad(lambda z: scaled(z, y))(logits)
    assert float(v1) == float(v2)
    np.testing.assert_allclose(g2, 256 * g1, rtol=1e-6)


def test_float16_with_static_loss_scale(setup):
    params, batch = setup
    rng = jax.random.PRNGKey(0)
    g32, _, _ = jax.jit(backprop(MODEL))(params, {}, batch, rng)
    fn = mixed_precision_backprop(MODEL, compute_dtype=jnp.float16, loss_scale=1024.0)
    g16, _, m = jax.jit(fn)(params, {}, batch, rng)
    assert dtypes(g16) == {jnp.dtype(jnp.float32)}
    assert rel_err(g16, g32) < 1e-2          # float16: 11-bit mantissa
    with pytest.raises(ValueError, match="loss_scale"):
        mixed_precision(backprop(MODEL), loss_scale=0.0)


class DenseBN(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool = False):
        x = nn.Dense(32)(x.reshape(x.shape[0], -1))
        x = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.9)(x))
        return nn.Dense(10)(x)


@pytest.mark.parametrize("model", [MODEL, DenseBN()], ids=["mlp", "dense_bn"])
def test_training_in_bfloat16_decreases_the_loss_and_keeps_float32_state(digits_small, model):
    train, _ = digits_small
    batch = {"x": jnp.asarray(train["x"][:128]), "y": jnp.asarray(train["y"][:128])}
    tx = sgd(0.1, 0.9)
    state = init_state(model, tx, batch["x"][:2], jax.random.PRNGKey(0))
    before = dtypes((state.params, state.model_state, state.opt_state))
    step = jax.jit(make_train_step(mixed_precision_backprop(model), tx), donate_argnums=0)
    losses = []
    for _ in range(8):
        state, m = step(state, batch)
        losses.append(float(m["loss"]))
    assert losses[-1] < 0.7 * losses[0], losses
    assert int(state.bad_step) == -1
    after = dtypes((state.params, state.model_state, state.opt_state))
    assert after == before and jnp.dtype(jnp.bfloat16) not in after
