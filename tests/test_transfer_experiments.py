"""The transfer experiments' runner (jdl.runs.transfer) and smoke runs of
transfer_fashion and pose_regression on scikit-learn's digits."""
from __future__ import annotations

import json

import jax
import numpy as np
import pytest

from experiment_scripts import load  # noqa: E402
from jdl.transfer import cut  # noqa: E402
from jdl.runs.transfer import (TransferConfig, logistic_regression,  # noqa: E402
                                     source_classifier, train_arm, train_steps)

TINY = dict(dataset="digits", backbone="bnconvnet", features=(4, 8), pretrain_epochs=1,
            pretrain_optimizer="adam", pretrain_lr=2e-3, pretrain_batch_size=50, steps=4,
            batch_size=20, seeds=1)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    from jdl.data import digits, fit_normalizer
    tr = digits.load("train")
    norm = fit_normalizer(tr.images)
    x, y = norm(tr.images), tr.labels
    src = y < 5
    cfg = TransferConfig(source_classes=(0, 1, 2, 3, 4), **TINY)
    workdir = str(tmp_path_factory.mktemp("pre"))
    model, state, _ = source_classifier(cfg, x[src], y[src], workdir)
    target = {"x": x[~src][:40], "y": (y[~src] - 5)[:40].astype(np.int32)}
    return cfg, model, state, workdir, target


def leaves_equal(a, b) -> bool:
    return all(np.array_equal(np.asarray(u), np.asarray(v))
               for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_arms_freeze_fine_tune_or_ignore_the_backbone(pretrained):
    cfg, model, state, _, target = pretrained
    backbone, bvars = cut(model, state, "pool", target["x"][:1])
    trained = {}
    for arm in ("head", "finetune", "scratch"):
        m, res = train_arm(arm, cfg, backbone, bvars, target, 5, seed=0)
        assert int(res.state.step) >= cfg.steps
        trained[arm] = res.state
    head = trained["head"]
    assert leaves_equal(head.params["backbone"], bvars["params"])          # frozen: bit-identical
    assert leaves_equal(head.model_state["batch_stats"]["backbone"], bvars["batch_stats"])
    assert not leaves_equal(trained["finetune"].params["backbone"], bvars["params"])
    # the head-only and fine-tuned heads start from the same draw, then differ
    assert not leaves_equal(trained["finetune"].params["head"], head.params["head"])
    # scratch never sees the pretrained weights: its first conv is far from them
    k_pre = np.asarray(bvars["params"]["Conv_0"]["kernel"])
    k_scr = np.asarray(trained["scratch"].params["backbone"]["Conv_0"]["kernel"])
    assert np.max(np.abs(k_pre - k_scr)) > 1e-2


def test_lpft_fine_tunes_from_the_linear_probe(pretrained):
    """LP-FT = the head arm for lp_steps, then the finetune arm from that head: the same
    result as running the two by hand (the probe's head spliced into a fresh finetune start)."""
    import dataclasses
    from jdl.runs.transfer import adam_cosine, transfer_model, with_augmentation
    from jdl.train import backprop
    from jdl.transfer import group_optimizer, init_transfer, split_variables
    cfg, model, state, _, target = pretrained
    backbone, bvars = cut(model, state, "pool", target["x"][:1])
    _, lpft = train_arm("lpft", cfg, backbone, bvars, target, 5, seed=0, lp_steps=3)
    _, probe = train_arm("head", dataclasses.replace(cfg, steps=3), backbone, bvars, target, 5,
                         seed=0)
    assert leaves_equal(probe.state.params["backbone"], bvars["params"])
    # by hand: the finetune arm's start with the probe's head
    m = transfer_model(backbone, 5, backbone_train=cfg.backbone_train)
    params, model_state = split_variables(
        init_transfer(m, jax.random.PRNGKey(1000), target["x"][:1], bvars))
    params = {**params, "head": probe.state.params["head"]}
    tx = group_optimizer({"head": adam_cosine(cfg.head_lr, cfg.steps),
                          "finetune": adam_cosine(cfg.finetune_lr, cfg.steps)},
                         {"backbone": "finetune", "head": "head"})
    by_hand = train_steps(m, params, model_state, tx, target, steps=cfg.steps,
                          batch_size=cfg.batch_size, seed=0,
                          grad_fn=with_augmentation(backprop(m), cfg))
    assert leaves_equal(lpft.state.params, by_hand.state.params)
    _, ft = train_arm("finetune", cfg, backbone, bvars, target, 5, seed=0)
    assert not leaves_equal(lpft.state.params["head"], ft.state.params["head"])


def test_train_steps_makes_at_least_the_asked_updates(pretrained):
    cfg, model, state, _, target = pretrained
    import optax
    res = train_steps(model, state.params, state.model_state, optax.sgd(0.0),
                      {"x": target["x"][:15], "y": target["y"][:15] % 5}, steps=7,
                      batch_size=10, seed=0)
    assert int(res.state.step) == 7     # 15 // 10 = 1 update per epoch, 7 epochs


def test_pretrained_classifier_reloads_from_its_checkpoint(pretrained):
    cfg, model, state, workdir, target = pretrained
    again = TransferConfig(source_classes=(0, 1, 2, 3, 4), pretrained=workdir, **TINY)
    model2, state2, _ = source_classifier(again, target["x"], None)
    assert leaves_equal(state2.params, state.params)
    assert leaves_equal(state2.model_state, state.model_state)


def test_logistic_regression_picks_c_by_validation_accuracy():
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 6))
    y = (x[:, 0] + 0.8 * rng.normal(size=120) > 0).astype(int)
    clf, scaler, c, acc = logistic_regression(x[:60], y[:60], x[60:], y[60:], cs=(1e-3, 1.0))
    s = StandardScaler().fit(x[:60])
    accs = {cc: LogisticRegression(C=cc, max_iter=2000).fit(s.transform(x[:60]), y[:60])
            .score(s.transform(x[60:]), y[60:]) for cc in (1e-3, 1.0)}
    assert acc == pytest.approx(max(accs.values())) and accs[c] == pytest.approx(acc)


@pytest.mark.parametrize("script,args,key", [
    ("transfer_fashion", ["--labels", "4", "--curve-labels", "4", "--val-per-class", "4",
                          "--max-examples", "150"], "finetune_minus_scratch"),
    ("pose_regression", ["--labels", "20", "--val-size", "10", "--cut-layer", "block2",
                         "--max-examples", "150", "--arms", "finetune,lpft,scratch",
                         "--lp-steps", "2"],
     "finetune_over_scratch_error"),
])
def test_script_smoke(tmp_path, script, args, key):
    mod = load(script)
    flags = ["--dataset", "digits", "--backbone", "bnconvnet", "--features", "4,8",
             "--pretrain-epochs", "1",
             "--steps", "3", "--seeds", "1", "--workdir", str(tmp_path)] + args
    summary = mod.main(flags)
    assert key in summary
    with open(tmp_path / "summary.json") as f:
        stored = json.load(f)
    assert stored["arms"].keys() == summary["arms"].keys()
    assert stored["schema"] == "jdl.summary/1" and stored["experiment"] == script
    assert stored["test"] is None and stored["resumed"] is False
    with pytest.raises(SystemExit) as e:      # a finished run is refused without --resume
        mod.main(flags)
    assert e.value.code == 2
    if script == "transfer_fashion":          # --resume reads the finished runs back
        again = mod.main(flags + ["--resume", "--pretrained", str(tmp_path / "pretrain")])
        assert again["resumed"] is True and again["arms"] == summary["arms"]


def test_zoo_fashion_smoke_writes_the_table(tmp_path):
    zoo_fashion = load("zoo_fashion")
    rows = zoo_fashion.main(["--dataset", "digits", "--archs", "lenet5", "--max-train-examples",
                             "256", "--workdir", str(tmp_path), "--no-progress"])
    assert [r["arch"] for r in rows] == ["lenet5"] and rows[0]["num_params"] > 0
    table = (tmp_path / "zoo_table.md").read_text()
    assert f"{rows[0]['num_params']:,}" in table and "lenet5" in table
    with open(tmp_path / "summary.json") as f:
        stored = json.load(f)
    assert stored["schema"] == "jdl.summary/1" and stored["rows"] == rows
    args = ["--dataset", "digits", "--archs", "lenet5", "--max-train-examples", "256",
            "--workdir", str(tmp_path), "--no-progress"]
    with pytest.raises(SystemExit) as e:      # the finished run is refused without --resume
        zoo_fashion.main(args)
    assert e.value.code == 2
    assert zoo_fashion.main(args + ["--resume"]) == rows   # kept, not retrained
    with pytest.raises(SystemExit):
        zoo_fashion.main(["--archs", "lenet6", "--workdir", str(tmp_path / "x")])


def test_augmentation_is_what_the_config_asks():
    from jdl.data.augment import AUGMENT_STREAM, augment
    from jdl.runs.transfer import with_augmentation

    def grad_fn(params, model_state, batch, rng):   # returns the images it was given
        return batch["x"], model_state, {}
    x = np.random.default_rng(0).normal(size=(4, 6, 6, 1)).astype(np.float32)
    batch, rng = {"x": x, "index": np.arange(4)}, jax.random.PRNGKey(5)
    off = TransferConfig(augment_pad=0, augment_flip=False)
    assert with_augmentation(grad_fn, off) is grad_fn
    seen, _, _ = with_augmentation(grad_fn, TransferConfig(augment_pad=1))(None, {}, batch, rng)
    want = augment(jax.random.fold_in(rng, AUGMENT_STREAM), x, pad=1, flip=True, mode="edge",
                   index=batch["index"])
    np.testing.assert_array_equal(np.asarray(seen), np.asarray(want))
    assert not np.array_equal(np.asarray(seen), x)


def test_pose_regression_refuses_flips():
    Config = load("pose_regression").Config
    with pytest.raises(ValueError, match="augment_flip"):
        Config(augment_flip=True).validate()


def test_pose_targets_are_the_scaled_angles_of_the_rotated_images():
    rotated = load("pose_regression").rotated
    from jdl.data import fit_normalizer
    from jdl.data.rotation import rotate
    imgs = np.random.default_rng(0).integers(0, 256, (6, 10, 10, 1)).astype(np.uint8)
    norm = fit_normalizer(imgs)
    d = rotated(imgs, norm, jax.random.PRNGKey(3), 30.0)
    t = d["y"][:, 0] * 30.0
    assert d["y"].shape == (6, 1) and np.all(np.abs(d["y"]) <= 1.0)
    np.testing.assert_allclose(d["x"], norm(np.asarray(rotate(imgs.astype(np.float32), t))),
                               atol=1e-4)


def test_max_pool_padded_has_a_gradient_when_the_last_rows_are_unused():
    """6 -> 2 with 3x3/2 windows: row and column 5 are reached by no window (AlexNetSmall's
    pool5); the pool and its gradient equal those of a VALID reduce_window."""
    from jax import lax
    import jax.numpy as jnp
    from jdl.nn.pooling import max_pool_padded
    x = jnp.asarray(np.random.default_rng(0).random((2, 6, 7, 3)), jnp.float32)

    def ref(x):
        return lax.reduce_window(x, -jnp.inf, lax.max, (1, 3, 3, 1), (1, 2, 2, 1), "VALID")
    np.testing.assert_array_equal(max_pool_padded(x, 3, 2), ref(x))
    g = jax.grad(lambda x: jnp.sum(max_pool_padded(x, 3, 2) ** 2))(x)
    np.testing.assert_allclose(g, jax.grad(lambda x: jnp.sum(ref(x) ** 2))(x))
