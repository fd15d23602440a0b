"""jdl.transfer: cutting, new heads, freezing, per-group learning rates, backbones from checkpoints."""
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jdl import optim, transfer
from jdl.train import backprop, create_state, fit, make_train_step
from jdl.transfer.subtree import iter_leaves


class TinyBN(nn.Module):
    """A test-local model obeying contract C1 (output_layer, layer_names): conv 4 -> BN -> ReLU ->
    max-pool 2 ('conv1'), conv 6 -> BN -> ReLU -> max-pool 2 ('conv2'), dense 8 + ReLU ('fc'),
    dense to the logits ('logits')."""
    num_classes: int = 3
    width: int = 6
    output_layer: str | None = None

    def layer_names(self):
        return ("conv1", "conv2", "fc", "logits")

    def __post_init__(self):
        if self.output_layer is not None and self.output_layer not in self.layer_names():
            raise ValueError(f"output_layer must be one of {self.layer_names()}")
        super().__post_init__()

    @nn.compact
    def __call__(self, x, train=False):
        for i, f in enumerate((4, self.width)):
            x = nn.Conv(f, (3, 3), use_bias=False, name=f"conv{i + 1}")(x)
            x = nn.BatchNorm(use_running_average=not train, momentum=0.9, name=f"bn{i + 1}")(x)
            x = nn.max_pool(nn.relu(x), (2, 2), (2, 2))
            if self.output_layer == f"conv{i + 1}":
                return x
        x = nn.relu(nn.Dense(8, name="fc")(x.reshape((x.shape[0], -1))))
        if self.output_layer == "fc":
            return x
        return nn.Dense(self.num_classes, name="logits")(x)


def _data(n=32, seed=0, classes=3):
    r = np.random.default_rng(seed)
    return {"x": r.normal(size=(n, 8, 8, 1)).astype(np.float32),
            "y": r.integers(0, classes, n).astype(np.int32)}


@functools.lru_cache(maxsize=None)
def _pretrained(width=6, seed=0):
    """TinyBN(width) variables with non-trivial batch statistics (one train-mode pass)."""
    model, x = TinyBN(width=width), _data(seed=seed)["x"]

    @jax.jit
    def make(x):
        v = model.init(jax.random.PRNGKey(0), x[:2])
        _, upd = model.apply(v, x, train=True, mutable=["batch_stats"])
        return {**v, **upd}

    return make(x)


def _bits(a):
    a = np.asarray(a)
    return a.view(np.uint32) if a.dtype == np.float32 else a


def _bit_equal(a, b):
    return all(np.array_equal(_bits(x), _bits(y)) for x, y in
               zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def _leaf(tree, path):
    for k in path.split("/"):
        tree = tree[k]
    return tree


# --- cutting ---------------------------------------------------------------------------------
def test_cut_output_is_the_intermediate_activation_and_variables_a_subtree():
    model, x = TinyBN(), _data()["x"]
    v = _pretrained()
    (_, inter) = jax.jit(lambda v, x: model.apply(v, x, capture_intermediates=True))(v, x[:5])
    inter = inter["intermediates"]
    after = {"conv1": nn.max_pool(nn.relu(inter["bn1"]["__call__"][0]), (2, 2), (2, 2)),
             "conv2": nn.max_pool(nn.relu(inter["bn2"]["__call__"][0]), (2, 2), (2, 2)),
             "fc": nn.relu(inter["fc"]["__call__"][0]), "logits": inter["__call__"][0]}
    assert transfer.layer_names(model) == ("conv1", "conv2", "fc", "logits")
    for layer, want in after.items():
        backbone, bv = transfer.cut(model, v, layer, x[:1])
        got = backbone.apply(bv, x[:5])
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
        # a sub-tree: same paths, the very same arrays; nothing of later layers
        leaves = dict(iter_leaves(bv))
        for path, leaf in leaves.items():
            assert leaf is _leaf(v, path)
        assert set(leaves) == set(dict(iter_leaves(
            jax.eval_shape(lambda: backbone.init(jax.random.PRNGKey(1), x[:1])))))
    _, bv = transfer.cut(model, v, "conv1", x[:1])
    assert sorted(bv["params"]) == ["bn1", "conv1"] and sorted(bv["batch_stats"]) == ["bn1"]


def test_cut_errors_name_the_layer_and_the_first_mismatching_path():
    model, x = TinyBN(), _data()["x"]
    v = _pretrained()
    with pytest.raises(ValueError, match=r"one of \('conv1', 'conv2', 'fc', 'logits'\).*'conv9'"):
        transfer.cut(model, v, "conv9", x[:1])
    other = _pretrained(width=5)         # conv2 has 5 maps, not 6
    with pytest.raises(ValueError, match=r"'params/conv2/kernel' has shape \(3, 3, 4, 5\), "
                                         r"expected \(3, 3, 4, 6\)"):
        transfer.cut(model, other, "conv2", x[:1])
    with pytest.raises(ValueError, match=r"has no 'batch_stats/bn1/mean'"):
        transfer.cut(model, {"params": v["params"]}, "conv1", x[:1])
    with pytest.raises(TypeError, match="cannot be cut"):
        transfer.layer_names(nn.Dense(3))


def test_extract_features_in_batches_equals_one_inference_pass():
    model, x = TinyBN(), _data(n=11)["x"]
    v = _pretrained()
    backbone, bv = transfer.cut(model, v, "conv2", x[:1])
    h = np.asarray(backbone.apply(bv, x, train=False))          # (11, 2, 2, 6)
    flat = transfer.extract_features(backbone, bv, x, batch_size=4)  # 3 batches, last padded
    assert isinstance(flat, np.ndarray) and flat.shape == (11, 24)
    np.testing.assert_allclose(flat, h.reshape(11, -1), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(transfer.extract_features(backbone, bv, x, 4, pool="avg"),
                               h.mean(axis=(1, 2)), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(transfer.extract_features(backbone, bv, x, 20, pool="max"),
                               h.max(axis=(1, 2)), rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="pool must be one of"):
        transfer.extract_features(backbone, bv, x, pool="mean")


# --- new heads ---------------------------------------------------------------------------------
def test_transfer_model_is_backbone_then_head_by_hand():
    data = _data()
    model = TinyBN()
    v = _pretrained()
    backbone, bv = transfer.cut(model, v, "conv2", data["x"][:1])
    tm = transfer.TransferModel(backbone, nn.Dense(2), pool="avg")   # a 2-output regression head
    tv = transfer.init_transfer(tm, jax.random.PRNGKey(3), data["x"][:2], v)
    assert sorted(tv["params"]) == ["backbone", "head"] and sorted(tv["batch_stats"]) == ["backbone"]
    assert _bit_equal(tv["params"]["backbone"], bv["params"])
    assert _bit_equal(tv["batch_stats"]["backbone"], bv["batch_stats"])
    assert tv["params"]["head"]["kernel"].shape == (6, 2)
    h = np.asarray(backbone.apply(bv, data["x"])).mean(axis=(1, 2))
    w, b = (np.asarray(tv["params"]["head"][k]) for k in ("kernel", "bias"))
    np.testing.assert_allclose(tm.apply(tv, data["x"]), h @ w + b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(tm.apply(tv, data["x"], method="features"), h, rtol=1e-6, atol=1e-6)
    # training mode: the backbone normalises with the batch and updates its statistics ...
    out, upd = tm.apply(tv, data["x"], train=True, mutable=["batch_stats"])
    hb = np.asarray(backbone.apply(bv, data["x"], train=True, mutable=["batch_stats"])[0])
    np.testing.assert_allclose(out, hb.mean(axis=(1, 2)) @ w + b, rtol=1e-5, atol=1e-6)
    assert not _bit_equal(upd["batch_stats"], tv["batch_stats"])
    # ... unless backbone_train=False: inference mode, statistics bit-identical
    frozen_bn = tm.clone(backbone_train=False)
    out, upd = frozen_bn.apply(tv, data["x"], train=True, mutable=["batch_stats"])
    np.testing.assert_allclose(out, h @ w + b, rtol=1e-5, atol=1e-6)
    assert _bit_equal(upd["batch_stats"], tv["batch_stats"])


def test_init_transfer_names_the_first_path_that_does_not_fit():
    x = _data()["x"]
    tm = transfer.TransferModel(TinyBN(output_layer="conv2"), nn.Dense(2), pool="flatten")
    wrong = _pretrained(width=5)
    with pytest.raises(ValueError, match=r"'params/conv2/kernel' has shape \(3, 3, 4, 5\)"):
        transfer.init_transfer(tm, jax.random.PRNGKey(0), x[:2], wrong)
    with pytest.raises(ValueError, match=r"has no 'params/conv1/kernel'.*it has \['bias', 'kernel'\]"):
        transfer.init_transfer(tm, jax.random.PRNGKey(0), x[:2],
                               nn.Dense(2).init(jax.random.PRNGKey(0), x[:1]))
    with pytest.raises(ValueError, match="pool must be one of"):
        transfer.TransferModel(TinyBN(output_layer="conv2"), nn.Dense(2), pool="mean")


def test_jit_vmap_grad_through_a_transfer_model():
    data = _data(n=8)
    tm = transfer.TransferModel(TinyBN(output_layer="fc"), nn.Dense(1), backbone_train=False)
    tv = transfer.init_transfer(tm, jax.random.PRNGKey(1), data["x"][:2],
                                _pretrained())

    @jax.jit
    def loss(params, x, t):
        return jnp.sum((tm.apply({**tv, "params": params}, x) - t) ** 2)

    t = jnp.asarray(data["y"], jnp.float32)[:, None]
    g = jax.grad(loss)(tv["params"], data["x"], t)
    per_ex = jax.vmap(jax.grad(loss), in_axes=(None, 0, 0))(
        tv["params"], data["x"][:, None], t[:, None])
    # the gradient of the sum is the sum of per-example gradients (inference-mode backbone)
    for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(per_ex)):
        np.testing.assert_allclose(a, b.sum(0), rtol=2e-4, atol=2e-5)
    # and a finite difference along the head's bias
    eps = 1e-2
    up = jax.tree.map(lambda p: p, tv["params"])
    up["head"] = {**up["head"], "bias": up["head"]["bias"] + eps}
    down = {**tv["params"], "head": {**tv["params"]["head"], "bias": tv["params"]["head"]["bias"] - eps}}
    fd = (loss(up, data["x"], t) - loss(down, data["x"], t)) / (2 * eps)
    np.testing.assert_allclose(g["head"]["bias"][0], fd, rtol=1e-3)


# --- freezing and per-group learning rates --------------------------------------------------------
RULES = {"backbone/conv1": "frozen", "backbone/bn1": "frozen", "backbone/*": "finetune",
         "head/*": "head"}


def test_param_groups_first_match_wins_and_unlabelled_leaves_are_errors():
    params = {"backbone": {"conv1": {"kernel": 0}, "bn1": {"scale": 0, "bias": 0},
                           "conv2": {"kernel": 0}}, "head": {"kernel": 0, "bias": 0}}
    labels = transfer.param_groups(params, RULES)
    assert labels == {"backbone": {"conv1": {"kernel": "frozen"},
                                   "bn1": {"scale": "frozen", "bias": "frozen"},
                                   "conv2": {"kernel": "finetune"}},
                      "head": {"kernel": "head", "bias": "head"}}
    reordered = {"backbone/*": "finetune", "backbone/conv1": "frozen"}      # first match wins
    assert transfer.param_groups(params, {**reordered, "head": "head"})["backbone"]["conv1"][
        "kernel"] == "finetune"
    with pytest.raises(ValueError, match=r"'head/bias' matches none of the patterns"):
        transfer.param_groups(params, {"backbone": "frozen"})
    assert transfer.param_groups(params, {"backbone": "frozen"}, default="head")["head"]["bias"] == "head"
    with pytest.raises(ValueError, match=r"no optimiser for the group\(s\) \['finetune', 'head'\]"):
        transfer.group_optimizer({}, RULES)


def test_per_group_learning_rates_equal_a_hand_stepped_update():
    """Three groups in a plain jit loop: frozen; 'finetune' SGD lr 0.01, momentum 0.9, L2 on its
    kernels; 'head' plain SGD lr 0.1. Against the lecture's update stepped by hand in numpy:
    u(t) = -lr (g(t) + 2 beta W(t) [kernels]) + mu u(t-1), W(t+1) = W(t) + u(t)."""
    r = np.random.default_rng(0)
    params = {"backbone": {"conv1": {"kernel": r.normal(size=(3, 3, 1, 2))},
                           "conv2": {"kernel": r.normal(size=(3, 3, 2, 2))},
                           "bn2": {"scale": r.normal(size=(2,)), "bias": r.normal(size=(2,))}},
              "head": {"kernel": r.normal(size=(2, 3)), "bias": r.normal(size=(3,))}}
    params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), params)
    params["backbone"]["conv1"]["kernel"] = params["backbone"]["conv1"]["kernel"].at[0, 0, 0, 0].set(-0.0)
    lr_ft, mu, beta, lr_head = 0.01, 0.9, 0.05, 0.1
    tx = transfer.group_optimizer({"finetune": optim.sgd(lr_ft, mu, l2=beta),
                                   "head": optim.sgd(lr_head)},
                                  {"backbone/conv1": "frozen", "backbone": "finetune", "head": "head"})
    opt = tx.init(params)
    grads = [jax.tree.map(lambda a: jnp.asarray(r.normal(size=a.shape), jnp.float32), params)
             for _ in range(4)]

    @jax.jit
    def step(p, o, g):
        u, o = tx.update(g, o, p)
        return jax.tree.map(lambda a, b: a + b, p, u), o

    p = params
    for g in grads:
        p, opt = step(p, opt, g)

    want = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
    vel = jax.tree.map(np.zeros_like, want["backbone"])
    for g in grads:
        g = jax.tree.map(lambda a: np.asarray(a, np.float64), g)
        for path, w in iter_leaves(want["backbone"]):
            if path.startswith("conv1"):
                continue
            gw = _leaf(g["backbone"], path) + (2 * beta * w if w.ndim >= 2 else 0.0)
            layer, name = path.split("/")
            vel[layer][name] = -lr_ft * gw + mu * vel[layer][name]
            want["backbone"][layer][name] = w + vel[layer][name]
        want["head"] = {k: w - lr_head * g["head"][k] for k, w in want["head"].items()}
    for path, w in iter_leaves(want):
        np.testing.assert_allclose(_leaf(p, path), w, rtol=1e-5, atol=1e-6, err_msg=path)
    # the frozen group: bit-identical, the -0.0 entry included
    assert _bit_equal(p["backbone"]["conv1"], params["backbone"]["conv1"])
    assert np.signbit(p["backbone"]["conv1"]["kernel"][0, 0, 0, 0])


def test_frozen_params_and_batch_statistics_bit_identical_after_fit():
    """fit (jdl's loop) on a BN backbone: conv1/bn1 frozen (params by the optimiser, running
    averages by freeze_model_state), conv2/bn2 fine-tuned with momentum and L2, a new head."""
    data = _data(n=48, classes=2)
    model = TinyBN()
    pretrained = _pretrained(seed=1)
    tm = transfer.TransferModel(model.clone(output_layer="conv2"), nn.Dense(2), pool="avg")
    tx = transfer.group_optimizer({"finetune": optim.sgd(0.01, 0.9, l2=1e-3),
                                   "head": optim.sgd(0.1, 0.9, l2=1e-3)}, RULES)
    grad_fn = transfer.freeze_model_state(backprop(tm), RULES)
    state = transfer.transfer_state(tm, tx, jax.random.PRNGKey(0), data["x"][:2], pretrained)
    assert _bit_equal(state.params["backbone"], pretrained["params"])
    result = fit(make_train_step(grad_fn, tx), state, data, epochs=2, batch_size=8,
                 progress=False, tensorboard=False)
    assert int(result.state.step) == 12
    new, old = result.state, state
    for layer in ("conv1", "bn1"):
        assert _bit_equal(new.params["backbone"][layer], old.params["backbone"][layer])
    assert _bit_equal(new.model_state["batch_stats"]["backbone"]["bn1"],
                      old.model_state["batch_stats"]["backbone"]["bn1"])
    for name, path in (("params", "backbone/conv2"), ("params", "backbone/bn2"),
                       ("params", "head"), ("model_state", "batch_stats/backbone/bn2")):
        for a, b in zip(jax.tree.leaves(_leaf(getattr(new, name), path)),
                        jax.tree.leaves(_leaf(getattr(old, name), path))):
            assert not np.array_equal(a, b), path


def test_backbone_in_inference_mode_keeps_all_statistics_in_a_plain_jit_loop():
    """Without jdl's loop: a frozen backbone (optimiser) in inference mode (backbone_train=False)
    leaves every backbone parameter and statistic bit-identical while the head learns."""
    data = _data(n=16, classes=2)
    pretrained = _pretrained()
    tm = transfer.TransferModel(TinyBN(output_layer="fc"), nn.Dense(2), backbone_train=False)
    variables = transfer.init_transfer(tm, jax.random.PRNGKey(0), data["x"][:2], pretrained)
    params, model_state = transfer.split_variables(variables)
    tx = transfer.group_optimizer({"head": optim.sgd(0.5, 0.9)}, {"backbone": "frozen", "head": "head"})
    grad_fn = backprop(tm)

    @jax.jit
    def step(p, ms, o, rng):
        g, ms, m = grad_fn(p, ms, data, rng)
        u, o = tx.update(g, o, p)
        return jax.tree.map(jnp.add, p, u), ms, o, m["loss"]

    p, ms, o = params, model_state, tx.init(params)
    losses = []
    for t in range(30):
        p, ms, o, loss = step(p, ms, o, jax.random.PRNGKey(t))
        losses.append(float(loss))
    assert _bit_equal(p["backbone"], params["backbone"]) and _bit_equal(ms, model_state)
    assert losses[-1] < 0.8 * losses[0]


# --- backbones from jdl checkpoints ---------------------------------------------------------
def test_load_backbone_round_trip_through_a_checkpoint_written_by_fit(tmp_path):
    data = _data(n=16)
    model = TinyBN()
    tx = optim.sgd(0.05, 0.9)
    v = model.init(jax.random.PRNGKey(0), data["x"][:2])
    params, ms = transfer.split_variables(v)
    state = create_state(params, tx, jax.random.PRNGKey(1), model_state=ms)
    result = fit(make_train_step(backprop(model), tx), state, data, epochs=1, batch_size=8,
                 workdir=str(tmp_path), progress=False, tensorboard=False)
    loaded = transfer.load_backbone(tmp_path, model, data["x"][:1])
    assert _bit_equal(loaded, transfer.variables_of(result.state))
    assert not _bit_equal(loaded["params"], params)              # it did train
    # the cut network reads only its own sub-tree; same as cutting the loaded variables
    backbone, bv = transfer.cut(model, loaded, "conv2", data["x"][:1])
    part = transfer.load_backbone(tmp_path / "checkpoints", backbone, data["x"][:1], step=2)
    assert _bit_equal(part, bv) and sorted(part["params"]) == ["bn1", "bn2", "conv1", "conv2"]
    with pytest.raises(ValueError, match=r"'params/conv2/kernel' has shape \(3, 3, 4, 6\), "
                                         r"expected \(3, 3, 4, 5\)"):
        transfer.load_backbone(tmp_path, TinyBN(width=5), data["x"][:1])
    with pytest.raises(Exception, match="no checkpoint at step 7"):
        transfer.load_backbone(tmp_path, model, data["x"][:1], step=7)
    with pytest.raises(Exception, match="neither a jdl workdir"):
        transfer.load_backbone(tmp_path / "nothing", model, data["x"][:1])
