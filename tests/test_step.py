"""The seam's builders: objective_grad_fn, make_online_step, segment_sum_grad_fn (jdl.train),
against closed-form gradients and a hand-stepped loop."""
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jdl.train import (Segments, create_state, make_online_step, make_train_step,
                       objective_grad_fn, segment_sum_grad_fn)

A = np.array([[1.0, 2.0], [0.5, -1.0], [3.0, 0.0], [-2.0, 1.0], [0.0, 1.5], [1.0, 1.0]])
B = np.array([1.0, -1.0, 2.0, 0.5, 0.0, 3.0])


def least_squares(params, model_state, batch, rng):
    """0.5 sum_i (a_i w - b_i)^2, a count of calls as the model state, |w| as a metric."""
    r = batch["a"] @ params["w"] - batch["b"]
    return 0.5 * jnp.sum(r ** 2), ({"norm": jnp.linalg.norm(params["w"]), "key": rng},
                                   model_state + 1)


def test_objective_grad_fn_is_the_closed_form_gradient():
    w = jnp.array([0.3, -0.2])
    grads, state, m = objective_grad_fn(least_squares)({"w": w}, 4, {"a": A, "b": B},
                                                       jax.random.PRNGKey(0))
    np.testing.assert_allclose(grads["w"], A.T @ (A @ np.asarray(w) - B), rtol=1e-6)
    np.testing.assert_allclose(m["loss"], 0.5 * np.sum((A @ np.asarray(w) - B) ** 2), rtol=1e-6)
    assert state == 5 and set(m) == {"loss", "norm", "key"}


def chunks_of_two(params, batch):
    """An online rule: segments of two rows each; the carry counts the segments seen."""
    K = batch["a"].shape[0] // 2
    inputs = {k: v.reshape((K, 2) + v.shape[1:]) for k, v in batch.items()}
    active = jnp.array([True, False, True])                  # segment 1 makes no update
    return Segments(jnp.zeros((), jnp.int32), inputs, active, objective_grad_fn(least_squares),
                    lambda ms: {"loss": jnp.sum(ms["loss"]), "keys": ms["key"]})


def test_online_step_equals_a_hand_stepped_loop():
    tx = optax.sgd(0.05, momentum=0.9)
    state = create_state({"w": jnp.array([0.3, -0.2])}, tx, jax.random.PRNGKey(7))
    state = state.replace(step=jnp.asarray(3, jnp.int32))
    new, m = jax.jit(make_online_step(chunks_of_two, tx))(state, {"a": A, "b": B})
    w, opt, loss = np.array([0.3, -0.2]), tx.init({"w": jnp.array([0.3, -0.2])}), 0.0
    for k in range(3):
        a, b = A[2 * k:2 * k + 2], B[2 * k:2 * k + 2]
        loss += 0.5 * np.sum((a @ w - b) ** 2)
        if k != 1:
            u, opt = tx.update({"w": jnp.asarray(a.T @ (a @ w - b))}, opt, {"w": jnp.asarray(w)})
            w = w + np.asarray(u["w"])
    np.testing.assert_allclose(new.params["w"], w, rtol=1e-5)
    np.testing.assert_allclose(m["loss"], loss, rtol=1e-5)
    assert int(new.step) == 4 and int(new.bad_step) == -1
    step_key = jax.random.fold_in(state.rng, 3)                # the rng rule of every step
    for k in range(3):
        np.testing.assert_array_equal(m["keys"][k], jax.random.fold_in(step_key, k))


def test_online_step_nan_guard_names_the_step():
    tx = optax.sgd(0.05)
    state = create_state({"w": jnp.array([0.3, -0.2])}, tx, jax.random.PRNGKey(7))
    b = B.copy()
    b[5] = np.nan                                             # in the last segment only
    new, _ = jax.jit(make_online_step(chunks_of_two, tx))(state, {"a": A, "b": b})
    assert int(new.bad_step) == 0 and int(new.step) == 1
    new, _ = jax.jit(make_online_step(chunks_of_two, tx, nan_guard=False))(state,
                                                                           {"a": A, "b": b})
    assert int(new.bad_step) == -1


def test_segment_sum_grad_fn_is_the_batch_gradient_and_one_update():
    tx = optax.sgd(0.1)
    w = jnp.array([0.3, -0.2])
    grads, _, m = segment_sum_grad_fn(chunks_of_two)({"w": w}, {}, {"a": A, "b": B},
                                                     jax.random.PRNGKey(0))
    np.testing.assert_allclose(grads["w"], A.T @ (A @ np.asarray(w) - B), rtol=1e-6)
    np.testing.assert_allclose(m["loss"], 0.5 * np.sum((A @ np.asarray(w) - B) ** 2), rtol=1e-6)
    state = create_state({"w": w}, tx, jax.random.PRNGKey(7))
    new, _ = make_train_step(segment_sum_grad_fn(chunks_of_two), tx)(state, {"a": A, "b": B})
    np.testing.assert_allclose(new.params["w"], np.asarray(w) - 0.1 * np.asarray(grads["w"]),
                               rtol=1e-6)
