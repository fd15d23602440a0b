"""Data augmentation (jdl.data.augment): random crops against numpy slicing of the padded image
at the drawn offsets, flips against numpy mirroring, independence from how a batch is split,
the wrapper inside the train step, and a resumed augmented run (stopped between checkpoints)
reproducing the uninterrupted one exactly."""
import json
from functools import partial

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jdl.data import digits, fit_normalizer
from jdl.data.augment import (AUGMENT_STREAM, augment, augmented, crop_offsets, flip_draws,
                              random_crop, random_flip)
from jdl.nn import ResNet, ResNetBlock
from jdl.optim import make_schedule, sgd
from jdl.train import (backprop, evaluate_fn, fit, init_state, make_eval_step, make_train_step,
                       read_metrics)


def images(n=6, h=7, w=5, c=2, seed=0):
    return np.random.RandomState(seed).randn(n, h, w, c).astype(np.float32)


@pytest.mark.parametrize("mode, np_mode", [("edge", "edge"), ("constant", "constant"),
                                           ("reflect", "reflect")])
def test_crop_is_the_padded_image_sliced_at_the_drawn_offsets(mode, np_mode):
    x, pad, key = images(), 2, jax.random.PRNGKey(3)
    index = np.array([10, 3, 7, 0, 99, 5], np.int32)
    out = np.asarray(jax.jit(partial(random_crop, pad=pad, mode=mode))(key, x, index=index))
    offsets = np.asarray(crop_offsets(key, len(x), pad, index))
    padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode=np_mode)
    for n, (a, b) in enumerate(offsets):
        assert 0 <= a <= 2 * pad and 0 <= b <= 2 * pad
        np.testing.assert_array_equal(out[n], padded[n, a:a + 7, b:b + 5])
    if mode == "constant":  # shifted content, zeros where the shift uncovered the border
        assert out.shape == x.shape


def test_crop_offsets_are_uniform_over_all_shifts():
    offsets = np.asarray(crop_offsets(jax.random.PRNGKey(0), 9000, 2))
    counts = np.bincount(offsets.ravel(), minlength=5)
    assert counts.shape == (5,)
    # 18000 draws, 3600 expected per value: binomial sd ~54, so 300 is > 5 sd
    np.testing.assert_allclose(counts, 3600, atol=300)
    assert abs(np.corrcoef(offsets[:, 0], offsets[:, 1])[0, 1]) < 0.05  # independent axes


def test_flip_mirrors_exactly_the_drawn_examples():
    x, key = images(n=64), jax.random.PRNGKey(1)
    out = np.asarray(jax.jit(random_flip)(key, x))
    drawn = np.asarray(flip_draws(key, len(x)))
    assert 16 < drawn.sum() < 48          # p = 1/2 of 64 (> 4 sd from either bound)
    np.testing.assert_array_equal(out[drawn], x[drawn][:, :, ::-1])
    np.testing.assert_array_equal(out[~drawn], x[~drawn])
    np.testing.assert_array_equal(random_flip(key, x, p=0.0), x)
    np.testing.assert_array_equal(random_flip(key, x, p=1.0), x[:, :, ::-1])


def test_augment_is_crop_then_flip_with_separate_keys():
    x, key, index = images(), jax.random.PRNGKey(2), jnp.arange(6) + 40
    out = augment(key, x, pad=1, index=index)
    expected = random_flip(jax.random.fold_in(key, 1),
                           random_crop(jax.random.fold_in(key, 0), x, 1, index=index), index=index)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(augment(key, x, pad=0, flip=False, index=index), x)


def test_a_batch_split_in_halves_with_global_indices_gets_the_same_augmentation():
    x, key = images(n=8), jax.random.PRNGKey(4)
    index = jnp.array([31, 2, 17, 5, 8, 40, 11, 0])
    whole = augment(key, x, pad=2, index=index)
    halves = jnp.concatenate([augment(key, x[:4], pad=2, index=index[:4]),
                              augment(key, x[4:], pad=2, index=index[4:])])
    np.testing.assert_array_equal(whole, halves)
    # and each example's draw depends on its index only, not on its position in the batch
    perm = np.array([7, 3, 0, 1, 6, 2, 5, 4])
    np.testing.assert_array_equal(augment(key, x[perm], pad=2, index=index[perm]), whole[perm])


def test_arguments_are_checked_with_their_names():
    x, key = images(), jax.random.PRNGKey(0)
    with pytest.raises(ValueError, match="pad"):
        random_crop(key, x, -1)
    with pytest.raises(ValueError, match="mode"):
        random_crop(key, x, 1, mode="wrap")
    with pytest.raises(ValueError, match="NHWC"):
        random_flip(key, x[0])
    with pytest.raises(ValueError, match="index"):
        random_flip(key, x, index=jnp.arange(3))


def tiny_resnet():
    return ResNet(stage_sizes=[1], block_cls=ResNetBlock, num_classes=10, num_filters=4,
                  stem="cifar")


@pytest.fixture
def digits_data():
    tr = digits.load("train")
    norm = fit_normalizer(tr.images[:256])
    x, y = norm(tr.images[:320]), tr.labels[:320]
    return {"x": x[:256], "y": y[:256]}, {"x": x[256:], "y": y[256:]}


class Linear(nn.Module):
    @nn.compact
    def __call__(self, x, train=False):
        return nn.Dense(10)(x.reshape(x.shape[0], -1))


def test_augmented_grad_fn_trains_on_the_augmentation_of_the_steps_key(digits_data):
    train, _ = digits_data
    model = Linear()
    tx = sgd(0.1, 0.9)
    state = init_state(model, tx, train["x"][:2], jax.random.PRNGKey(0))
    batch = {"x": jnp.asarray(train["x"][:16]), "y": jnp.asarray(train["y"][:16]),
             "index": jnp.arange(100, 116)}
    aug = partial(augment, pad=1)
    rng = jax.random.PRNGKey(7)
    g, ms, m = jax.jit(augmented(backprop(model), aug))(state.params, state.model_state, batch, rng)
    x_aug = aug(jax.random.fold_in(rng, AUGMENT_STREAM), batch["x"], index=batch["index"])
    assert not np.array_equal(x_aug, batch["x"])
    g2, ms2, m2 = jax.jit(backprop(model))(state.params, state.model_state,
                                           {**batch, "x": x_aug}, rng)
    for a, b in zip(jax.tree.leaves((g, ms, m)), jax.tree.leaves((g2, ms2, m2))):
        np.testing.assert_array_equal(a, b)


class Stop(Exception):
    pass


def test_resume_after_a_stop_reproduces_the_augmented_run_exactly(tmp_path, digits_data):
    """The acceptance test: train with augmentation inside the step, stop between checkpoints
    (an exception out of fit, as a kill would leave the disk), resume, and compare with the
    uninterrupted run: final parameters, optimiser and batch-norm state, metrics.jsonl."""
    train, val = digits_data
    model = tiny_resnet()
    tx = sgd(make_schedule("cosine", 0.1, total_steps=24), 0.9, nesterov=True, l2=1e-4)
    state = init_state(model, tx, train["x"][:2], jax.random.PRNGKey(0))
    step = make_train_step(augmented(backprop(model), partial(augment, pad=2)), tx)
    eval_step = make_eval_step(evaluate_fn(model))

    def train_run(workdir, stop_at=None, resume=False):
        def on_step(s):
            if s == stop_at:
                raise Stop
        return fit(step, state, train, epochs=3, batch_size=32, eval_step=eval_step,
                   val_data=val, seed=1, workdir=str(workdir), checkpoint_every=5, log_every=3,
                   resume=resume, on_step=on_step, progress=False)

    full = train_run(tmp_path / "full")
    with pytest.raises(Stop):
        train_run(tmp_path / "broken", stop_at=13)      # last checkpoint: step 10
    resumed = train_run(tmp_path / "broken", resume=True)
    assert int(resumed.state.step) == int(full.state.step) == 24
    for a, b in zip(jax.tree.leaves((full.state.params, full.state.opt_state,
                                     full.state.model_state)),
                    jax.tree.leaves((resumed.state.params, resumed.state.opt_state,
                                     resumed.state.model_state))):
        np.testing.assert_array_equal(a, b)
    assert json.dumps(full.history) == json.dumps(resumed.history)
    assert read_metrics(str(tmp_path / "full")) == read_metrics(str(tmp_path / "broken"))
    # (that the wrapper does augment the step's inputs: the test above)


def test_flip_tta_averages_the_probabilities_of_the_image_and_its_mirror():
    from experiments.resnet_fashion import flip_tta_eval_fn
    model = tiny_resnet()
    x = jnp.asarray(images(n=12, h=8, w=8, c=1))
    y = jnp.arange(12) % 10
    v = model.init(jax.random.PRNGKey(0), x[:2])
    v = jax.tree.map(lambda a: a + 0.3 * jax.random.normal(jax.random.PRNGKey(1), a.shape), v)
    m = flip_tta_eval_fn(model)(v["params"], {"batch_stats": v["batch_stats"]}, {"x": x, "y": y})
    p = (jax.nn.softmax(model.apply(v, x)) + jax.nn.softmax(model.apply(v, x[:, :, ::-1])))
    p = np.asarray(p, np.float64) / 2
    np.testing.assert_allclose(m["accuracy"], np.mean(p.argmax(1) == np.asarray(y)))
    np.testing.assert_allclose(m["loss"], -np.mean(np.log(p[np.arange(12), y])), rtol=1e-5)


@pytest.mark.slow
def test_resnet_fashion_script_trains_and_resumes_on_digits(tmp_path):
    """The experiment end to end at toy size (digits, one 4-filter block): outputs, and a second
    invocation with --resume after the run finished reproduces the summary's test accuracy."""
    import subprocess
    import sys
    root = __file__.rsplit("/tests/", 1)[0]
    args = [sys.executable, "experiments/resnet_fashion.py", "--dataset", "digits", "--epochs",
            "1", "--stage-sizes", "1", "--num-filters", "4", "--pad", "1", "--workdir",
            str(tmp_path), "--no-progress", "--max-train-examples", "256"]
    from experiment_scripts import ENV
    out = subprocess.run(args, cwd=root, capture_output=True, text=True, env=ENV)
    assert out.returncode == 0, out.stderr[-2000:]
    s = json.load(open(tmp_path / "summary.json"))
    assert 0 <= s["test_accuracy"] <= 1 and 0 <= s["test_accuracy_flip_tta"] <= 1
    assert s["flip_tta_step"] == s["steps"] == 2
    for f in ("config.json", "metrics.jsonl", "learning_curves.png"):
        assert (tmp_path / f).exists(), f
    again = subprocess.run(args + ["--resume"], cwd=root, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-2000:]
    assert json.load(open(tmp_path / "summary.json"))["test_accuracy"] == s["test_accuracy"]
