"""The canonical form of a network with delays on its connections (jdl.nn.DelayedStep in a
CanonicalRNN) against the delayed network written directly: outputs and BPTT gradients."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jdl.nn import CanonicalRNN, DelayedStep


def delayed_network(A, B, b, u):
    """y(t) = tanh(sum_{tau=0..p} u(t-tau) A_tau + sum_{tau=1..q} y(t-tau) B_tau + b), zero
    before t = 1, written directly with the whole past kept (u: (batch, T, m))."""
    p, q = A.shape[0] - 1, B.shape[0]
    T = u.shape[1]
    ys = []
    for t in range(T):
        z = b
        for tau in range(p + 1):
            if t - tau >= 0:
                z = z + u[:, t - tau] @ A[tau]
        for tau in range(1, q + 1):
            if t - tau >= 0:
                z = z + ys[t - tau] @ B[tau - 1]
        ys.append(jnp.tanh(z))
    return jnp.stack(ys, axis=1)


@pytest.mark.parametrize("n, m, q, p", [(3, 2, 2, 0), (4, 3, 3, 2)])
def test_canonical_form_computes_the_delayed_network(n, m, q, p):
    u = jnp.asarray(np.random.default_rng(0).normal(size=(2, 7, m)), jnp.float32)
    step = DelayedStep(n, output_delays=q, input_delays=p)
    model = CanonicalRNN(step, state_size=DelayedStep.state_size(m, n, q, p))
    params = model.init(jax.random.PRNGKey(1), u)["params"]
    f = params["cell"]["f"]
    # larger weights than the initialisation, so every delay matters visibly
    f = {"A": 2 * f["A"], "B": 2 * f["B"] + 0.5, "b": f["b"] + 0.1}
    params = {"cell": {"f": f}}
    assert f["A"].shape == (p + 1, m, n) and f["B"].shape == (q, n, n)

    @jax.jit
    def both(params):
        g = params["cell"]["f"]
        return model.apply({"params": params}, u), delayed_network(g["A"], g["B"], g["b"], u)

    y, y_direct = both(params)
    assert y.shape == (2, 7, n)
    np.testing.assert_allclose(y, y_direct, rtol=1e-5, atol=1e-6)

    # BPTT through the canonical form = the gradient of the direct network
    target = jnp.sin(jnp.arange(7.0))[None, :, None]

    def loss_canonical(params):
        return jnp.mean((model.apply({"params": params}, u) - target) ** 2)

    def loss_direct(params):
        g = params["cell"]["f"]
        return jnp.mean((delayed_network(g["A"], g["B"], g["b"], u) - target) ** 2)

    g1, g2 = jax.jit(lambda p: (jax.grad(loss_canonical)(p), jax.grad(loss_direct)(p)))(params)
    for a, b in zip(jax.tree.leaves(g1), jax.tree.leaves(g2)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_the_state_is_the_delayed_outputs_and_inputs():
    """X(T) = [y(T), .., y(T-q+1), u(T), .., u(T-p+1)]."""
    n, m, q, p = 2, 3, 2, 2
    u = jnp.asarray(np.random.default_rng(2).normal(size=(1, 5, m)), jnp.float32)
    model = CanonicalRNN(DelayedStep(n, q, p), state_size=DelayedStep.state_size(m, n, q, p))
    params = model.init(jax.random.PRNGKey(0), u)["params"]
    X, y = model.apply({"params": params}, u, return_carry=True)
    np.testing.assert_allclose(X, jnp.concatenate([y[:, -1], y[:, -2], u[:, -1], u[:, -2]], -1),
                               rtol=1e-6)


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="output_delays"):
        DelayedStep(3, output_delays=0)
    step = DelayedStep(3, output_delays=2, input_delays=1)
    with pytest.raises(ValueError, match="expected"):
        step.init(jax.random.PRNGKey(0), jnp.zeros((1, 7)))     # 7 - 6 = 1 not divisible by 2
