import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from jdl.nn.convolution import Conv, avg_pool, conv2d, max_pool


@pytest.mark.parametrize("shape, kshape, padding", [
    ((2, 9, 8, 3), (3, 3, 3, 4), "VALID"), ((2, 9, 8, 3), (5, 5, 3, 2), "SAME"),
    ((1, 6, 6, 1), (4, 4, 1, 3), "SAME"), ((3, 7, 7, 2), (2, 3, 2, 2), "VALID"),
    ((1, 14, 14, 32), (3, 3, 32, 2), "SAME"),    # through the tap products
    ((3, 5, 5, 4), (5, 5, 4, 6), "VALID")])       # kernel = input: a full layer
def test_conv2d_and_its_gradients_match_xla(shape, kshape, padding):
    kx, kk, kg = jax.random.split(jax.random.PRNGKey(0), 3)
    x, k = jax.random.normal(kx, shape), jax.random.normal(kk, kshape)
    ref = lambda x, k: jax.lax.conv_general_dilated(x, k, (1, 1), padding,
                                                    dimension_numbers=("NHWC", "HWIO", "NHWC"))
    np.testing.assert_allclose(conv2d(x, k, padding), ref(x, k), rtol=1e-5, atol=1e-5)
    g = jax.random.normal(kg, ref(x, k).shape)
    mine = jax.vjp(lambda x, k: conv2d(x, k, padding), x, k)[1](g)
    theirs = jax.vjp(ref, x, k)[1](g)
    for a, b in zip(mine, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
    check_grads(lambda x, k: conv2d(x, k, padding), (x, k), order=1, modes=["rev"], atol=5e-2, rtol=5e-2)


def test_conv_module_equals_flax_conv_with_the_same_parameters():
    x = jax.random.normal(jax.random.PRNGKey(1), (2, 10, 10, 3))
    for padding in ("SAME", "VALID"):
        mine, ref = Conv(5, (3, 3), padding=padding), nn.Conv(5, (3, 3), padding=padding)
        v = ref.init(jax.random.PRNGKey(2), x)
        np.testing.assert_allclose(mine.apply(v, x), ref.apply(v, x), rtol=1e-5, atol=1e-5)


def test_pooling_equals_flax_pooling_values_and_gradients():
    x = jax.random.normal(jax.random.PRNGKey(3), (2, 8, 6, 3))
    for mine, ref in ((max_pool, nn.max_pool), (avg_pool, nn.avg_pool)):
        f = lambda x: (mine(x, (2, 2)) ** 2).sum()
        r = lambda x: (ref(x, (2, 2), strides=(2, 2)) ** 2).sum()
        np.testing.assert_allclose(f(x), r(x), rtol=1e-5)
        np.testing.assert_allclose(jax.grad(f)(x), jax.grad(r)(x), rtol=1e-5, atol=1e-6)
    # overlapping windows fall back to flax
    np.testing.assert_allclose(max_pool(x, (3, 3), (1, 1)), nn.max_pool(x, (3, 3), strides=(1, 1)))


def _lowered_grad_hlo(platform: str, x_shape=(2, 14, 14, 32), k_shape=(3, 3, 32, 4)) -> str:
    x, k = jnp.ones(x_shape), jnp.ones(k_shape)
    grad = jax.jit(jax.grad(lambda x, k: conv2d(x, k, "SAME").sum(), argnums=(0, 1)))
    return grad.trace(x, k).lower(lowering_platforms=(platform,)).as_text()


def test_kernel_gradient_formulation_is_chosen_per_platform():
    """The gradient of sum(conv2d(x, k)), 3x3 kernel over 32 channels, for CPU: dL/dx by a
    convolution and dL/dk by the 3 x 3 tap products (kernel_grad_taps: 9 dot_general ops); for GPU/TPU: two convolutions (XLA's
    native kernel gradient) and no dot. The other platform's branch is not in the program."""
    cpu = _lowered_grad_hlo("cpu")
    assert cpu.count("stablehlo.convolution") == 1 and cpu.count("stablehlo.dot_general") == 9
    for platform in ("cuda", "tpu"):
        other = _lowered_grad_hlo(platform)
        assert other.count("stablehlo.convolution") == 2 and "dot_general" not in other
    # where the taps do not pay off (taps_pay_off: a 5x5 kernel, one input channel), the CPU
    # program is XLA's too
    for x_shape, k_shape in (((2, 14, 14, 32), (5, 5, 32, 4)), ((2, 28, 28, 1), (3, 3, 1, 4))):
        cpu = _lowered_grad_hlo("cpu", x_shape, k_shape)
        assert cpu.count("stablehlo.convolution") == 2 and "dot_general" not in cpu


def test_both_kernel_gradient_formulations_equal_xla():
    from jdl.nn.convolution import kernel_grad_taps, kernel_grad_xla
    kx, kg = jax.random.split(jax.random.PRNGKey(4))
    for padding, kshape in (("SAME", (5, 5, 3, 4)), ("VALID", (3, 2, 3, 2))):
        x = jax.random.normal(kx, (2, 9, 8, 3))
        ref = lambda k: jax.lax.conv_general_dilated(x, k, (1, 1), padding,  # noqa: E731
                                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
        y, vjp = jax.vjp(ref, jnp.ones(kshape))
        g = jax.random.normal(kg, y.shape)
        for fn in (kernel_grad_taps, kernel_grad_xla):
            np.testing.assert_allclose(fn(x, g, kshape, padding), vjp(g)[0], rtol=1e-4, atol=1e-4)


def test_max_pool_gradient_goes_to_the_first_maximum_as_xla_select_and_scatter():
    """Ties (ReLU zeros, repeated values) are where a max-pool gradient can differ: XLA's
    select-and-scatter (flax's nn.max_pool) gives dL/dy to the first maximal element of the
    window in row-major order; window_max must give the same array, bit for bit."""
    x = jnp.round(jax.nn.relu(jax.random.normal(jax.random.PRNGKey(4), (3, 8, 12, 5))) * 2) / 2
    assert float((x == 0).mean()) > 0.4                                   # many ties
    for window in ((2, 2), (2, 3), (4, 4)):
        out = (3, 8 // window[0], 12 // window[1], 5)
        g = jax.random.normal(jax.random.PRNGKey(5), out)
        mine = jax.vjp(lambda v: max_pool(v, window), x)[1](g)[0]
        ref = jax.vjp(lambda v: nn.max_pool(v, window, strides=window), x)[1](g)[0]
        np.testing.assert_array_equal(mine, ref)
        assert int((mine != 0).sum()) == int(np.prod(out))   # one element per window
        np.testing.assert_array_equal(max_pool(x, window), nn.max_pool(x, window, strides=window))
