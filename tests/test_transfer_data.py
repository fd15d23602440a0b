"""Class subsets, few-label samples, rotated images and the error in degrees (jdl.data)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage as ndi

from jdl.data import class_subset, per_class_sample
from jdl.data.rotation import angle_metrics, rotate, rotated_items
from jdl.losses import mean_absolute_error


def test_class_subset_keeps_and_relabels_against_a_loop():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, 200)
    x = np.arange(200)[:, None] * 10 + y[:, None]
    xs, ys = class_subset(x, y, (7, 5, 9))
    want = [(xi, {7: 0, 5: 1, 9: 2}[yi]) for xi, yi in zip(x, y) if yi in (7, 5, 9)]
    assert [(a, b) for a, b in zip(xs, ys)] == [(a, b) for a, b in want]
    assert ys.dtype == np.int32
    with pytest.raises(ValueError, match="distinct"):
        class_subset(x, y, (1, 1))
    with pytest.raises(ValueError, match=r"classes \[11\]"):
        class_subset(x, y, (1, 11))


def test_per_class_sample_counts_determinism_and_exclusion():
    y = np.repeat(np.arange(4), [10, 12, 8, 30])
    idx = per_class_sample(y, 5, seed=3)
    assert len(np.unique(idx)) == 20
    np.testing.assert_array_equal(np.bincount(y[idx], minlength=4), [5, 5, 5, 5])
    np.testing.assert_array_equal(idx, per_class_sample(y, 5, seed=3))
    assert not np.array_equal(idx, per_class_sample(y, 5, seed=4))
    excl = np.flatnonzero(y == 2)[:3]            # class 2 keeps exactly 5 of its 8
    idx2 = per_class_sample(y, 5, seed=0, exclude=excl)
    assert not set(excl) & set(idx2.tolist())
    assert set(np.flatnonzero(y == 2)[3:]) <= set(idx2.tolist())
    with pytest.raises(ValueError, match="class 2 has 5 examples available, fewer than k=6"):
        per_class_sample(y, 6, seed=0, exclude=excl)
    with pytest.raises(ValueError, match="k"):
        per_class_sample(y, 0, seed=0)


def test_rotate_matches_scipy_and_rot90():
    rng = np.random.default_rng(0)
    x = rng.random((3, 9, 11, 2)).astype(np.float32)
    angles = np.array([30.0, -17.0, 123.0], np.float32)
    got = np.asarray(jax.jit(rotate)(x, angles))
    for img, a, g in zip(x, angles, got):
        want = ndi.rotate(img, float(a), reshape=False, order=1, mode="grid-constant", cval=0.0)
        np.testing.assert_allclose(g, want, atol=1e-5)
    sq = rng.random((7, 7, 1)).astype(np.float32)
    np.testing.assert_allclose(rotate(sq, 90.0), np.rot90(sq), atol=1e-5)  # counter-clockwise
    np.testing.assert_allclose(rotate(x, 0.0), x, atol=1e-6)


def test_rotated_items_draws_angles_from_the_key():
    x = np.random.default_rng(1).random((64, 8, 8, 1)).astype(np.float32)
    r, t = jax.jit(rotated_items, static_argnums=2)(x, jax.random.PRNGKey(0), 30.0)
    assert r.shape == x.shape and t.shape == (64,)
    assert float(jnp.max(jnp.abs(t))) <= 30.0 and float(jnp.std(t)) > 10.0
    np.testing.assert_allclose(r, rotate(x, t), atol=1e-6)
    _, t2 = rotated_items(x, jax.random.PRNGKey(1), 30.0)
    assert not np.allclose(t, t2)
    with pytest.raises(ValueError, match="max_degrees"):
        rotated_items(x, jax.random.PRNGKey(0), 0.0)


def test_angle_error_in_degrees_with_mask():
    out = jnp.array([[0.5], [-1.0], [0.2]])
    tgt = jnp.array([[0.0], [0.0], [9.0]])
    mask = jnp.array([1.0, 1.0, 0.0])
    assert float(mean_absolute_error(out, tgt, mask)) == pytest.approx(0.75)
    m = angle_metrics(45.0)(out, {"y": tgt}, mask)
    assert float(m["mae_degrees"]) == pytest.approx(0.75 * 45.0)
