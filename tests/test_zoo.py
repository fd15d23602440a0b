"""The model zoo (jdl.nn): cutting at a named layer (contract C1) for every image model,
ResNeXt / wide ResNet parameter counts against torchvision's."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from functools import partial

import flax.linen as nn

from jdl.nn import (MLP, RESNETS, BNConvNet, BottleneckResNetBlock, FashionConvNet, KerasExample,
                    LeNet5, ResNet, ResNetBlock, forward_macs)
from jdl.train import num_params


def shapes(model, shape, **kw):
    """Parameter count, output and variables as abstract values (jax.eval_shape only)."""
    x = jax.ShapeDtypeStruct(shape, jnp.float32)
    v = jax.eval_shape(lambda x: model.init(jax.random.PRNGKey(0), x, train=False, **kw), x)
    out = jax.eval_shape(lambda v, x: model.apply(v, x, train=False, **kw), v, x)
    return num_params(v["params"]), out, v


def leaf_shapes(tree):
    return {jax.tree_util.keystr(p): tuple(l.shape)
            for p, l in jax.tree_util.tree_flatten_with_path(tree)[0]}


# ---------------------------------------------------------------- C1: cutting at a named layer

SMALL_MODELS = {
    "mlp": (lambda **kw: MLP(hidden=(16, 8), **kw), (3, 28, 28, 1)),
    "lenet5": (lambda **kw: LeNet5(**kw), (3, 28, 28, 1)),
    "fashion": (lambda **kw: FashionConvNet(**kw), (3, 28, 28, 1)),
    "keras": (lambda **kw: KerasExample(**kw), (3, 28, 28, 1)),
    "bnconv": (lambda **kw: BNConvNet(features=(4, 8, 8), **kw), (3, 28, 28, 1)),
    "resnet_cifar": (lambda **kw: ResNet(stage_sizes=[2, 1], block_cls=BottleneckResNetBlock,
                                         num_filters=4, stem="cifar", num_classes=10, **kw),
                     (3, 16, 16, 1)),
    "resnet_imagenet": (lambda **kw: RESNETS["resnet10"](num_filters=4, num_classes=10, **kw),
                        (3, 32, 32, 3)),
}


def random_variables(model, x, seed=0):
    """Variables of ``model`` with the init's shapes but random numpy values (params normal with
    std 1/sqrt(fan-in), batch statistics positive): cheaper than flax's init on a loaded CPU, and
    batch norm is not the identity."""
    rng = np.random.default_rng(seed)
    shapes_ = jax.eval_shape(lambda x: model.init(jax.random.PRNGKey(0), x, train=False), x)

    def fill(path, leaf):
        if jax.tree_util.keystr(path).startswith("['batch_stats']"):
            return jnp.asarray(rng.uniform(0.5, 1.5, leaf.shape), jnp.float32)
        fan_in = int(np.prod(leaf.shape[:-1])) if len(leaf.shape) > 1 else 1
        return jnp.asarray(rng.normal(0, 1 / np.sqrt(fan_in), leaf.shape), jnp.float32)
    return jax.tree_util.tree_map_with_path(fill, shapes_)


def full_forward_intermediates(model, variables, x):
    """Every sub-module's output in the full model's forward pass (flax capture_intermediates)."""
    _, state = model.apply(variables, x, train=False, capture_intermediates=True,
                           mutable=["intermediates"])
    return state["intermediates"]


def check_cuts(make, shape, expected_by_name):
    """For every cut point: variables a sub-tree of the full model's (same names and shapes),
    the last name gives the full model, unknown names refused. ``expected_by_name(name,
    intermediates)`` gives the activation the cut model must return (None: not checked here)."""
    full = make()
    x = jax.random.normal(jax.random.PRNGKey(1), shape)
    v = random_variables(full, x)
    full_leaves = leaf_shapes(v)
    names = full.layer_names()
    assert len(set(names)) == len(names)
    cuts = {name: make(output_layer=name) for name in names}

    @jax.jit
    def forward(v, x):  # the full model's variables drive every cut one; one compilation
        return (full.apply(v, x, train=False, capture_intermediates=True,
                           mutable=["intermediates"]),
                {name: cut.apply(v, x, train=False) for name, cut in cuts.items()})

    (y_full, state), ys = forward(v, x)
    cut_leaves = {}
    for name, cut in cuts.items():
        vc = jax.eval_shape(lambda x: cut.init(jax.random.PRNGKey(0), x, train=False), x)
        cut_leaves[name] = leaf_shapes(vc)
        assert cut_leaves[name].items() <= full_leaves.items(), name
        y = ys[name]
        expected = expected_by_name(name, v, state["intermediates"])
        if expected is not None:
            np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6, err_msg=name)
    # the logits layer is the full model; earlier cuts hold strictly fewer variables or the same
    assert cut_leaves[names[-1]] == full_leaves
    np.testing.assert_array_equal(y, y_full)
    assert cut_leaves[names[0]].items() < full_leaves.items()
    with pytest.raises(ValueError, match="output_layer must be None or one of"):
        make(output_layer="no_such_layer")


@pytest.mark.parametrize("key", sorted(SMALL_MODELS))
def test_cut_variables_are_a_subtree_and_outputs_are_the_full_models_intermediates(key):
    make, shape = SMALL_MODELS[key]
    full = make()

    def expected(name, v, inter):
        return layer_output(key, full, name, inter)

    check_cuts(make, shape, expected)


def maxpool2(a):
    """2x2/2 max-pooling, 'VALID' (odd sizes drop the last row/column), by reshaping."""
    a = a[:, :a.shape[1] // 2 * 2, :a.shape[2] // 2 * 2]
    return a.reshape(a.shape[0], a.shape[1] // 2, 2, a.shape[2] // 2, 2, a.shape[3]).max((2, 4))


def layer_output(key, model, name, inter):
    """The activation after ``name`` computed from the full model's captured sub-module outputs
    (flax records each sub-module's raw output: apply the nonlinearity / pooling the docstring
    puts in the cut point by hand)."""
    def out(mod):
        return inter[mod]["__call__"][0]
    relu = jax.nn.relu
    if key == "mlp":
        return relu(out(name)) if name != model.layer_names()[-1] else out(name)
    if key == "lenet5":
        act = jnp.tanh
        pool2 = lambda a: a.reshape(a.shape[0], a.shape[1] // 2, 2, a.shape[2] // 2, 2,
                                    a.shape[3]).mean(axis=(2, 4))
        return {"C1": act(out("C1")), "S2": pool2(act(out("C1"))), "C3": act(out("C3")),
                "S4": pool2(act(out("C3"))), "C5": act(out("C5")), "F6": act(out("F6")),
                "output": out("output")}[name]
    if key == "fashion":
        return {"Conv_0": relu(out("Conv_0")), "pool1": maxpool2(relu(out("Conv_0"))),
                "Conv_1": relu(out("Conv_1")), "pool2": maxpool2(relu(out("Conv_1"))),
                "Dense_0": relu(out("Dense_0")), "Dense_1": out("Dense_1")}[name]
    if key == "keras":
        return {"Conv_0": relu(out("Conv_0")), "Conv_1": relu(out("Conv_1")),
                "pool": maxpool2(relu(out("Conv_1"))), "Dense_0": jax.nn.sigmoid(out("Dense_0")),
                "Dense_1": out("Dense_1")}[name]
    if key == "bnconv":
        block = lambda i: maxpool2(relu(out(f"BatchNorm_{i}")))
        if name.startswith("block"):
            return block(int(name[5:]) - 1)
        pooled = block(len(model.features) - 1).mean(axis=(1, 2))
        return pooled if name == "pool" else out("Dense_0")
    # ResNet: blocks are sub-modules with their outputs; the stem and pool are checked against
    # the first block's input and the head's input through a manual forward below
    if name.startswith("stage"):
        return out(name)
    if name == "head":
        return out("head")
    return None


def test_resnet_stem_and_pool_cuts_are_the_inputs_of_the_next_layers():
    make, shape = SMALL_MODELS["resnet_imagenet"]
    x = jax.random.normal(jax.random.PRNGKey(1), shape)
    full = make()
    v = random_variables(full, x)
    last_block = full.layer_names()[-3]
    inter = full_forward_intermediates(full, v, x)
    feats = inter[last_block]["__call__"][0]
    pooled = make(output_layer="pool").apply(v, x)
    np.testing.assert_allclose(pooled, feats.mean(axis=(1, 2)), rtol=1e-6, atol=1e-6)
    head = v["params"]["head"]
    np.testing.assert_allclose(full.apply(v, x), pooled @ head["kernel"] + head["bias"],
                               rtol=1e-5, atol=1e-5)
    # the stem's output fed through the first block gives the first block's output
    stem = make(output_layer="stem").apply(v, x)
    assert stem.shape == (shape[0], 8, 8, 4)      # 32 -> conv 7x7/2 -> 16 -> max-pool 3x3/2
    blk = ResNetBlock(4, conv=partial(nn.Conv, use_bias=False), act=nn.relu,
                      norm=partial(nn.BatchNorm, use_running_average=True))
    y1 = blk.apply({"params": v["params"]["stage1_block1"],
                    "batch_stats": v["batch_stats"]["stage1_block1"]}, stem)
    np.testing.assert_allclose(y1, inter["stage1_block1"]["__call__"][0], rtol=1e-5, atol=1e-5)


def test_output_layer_none_keeps_names_and_outputs():
    """output_layer=None is the model as before C1: pinned parameter trees and counts (so the
    checkpoints of earlier runs load), and the default output is the logits."""
    n, out, v = shapes(FashionConvNet(), (2, 28, 28, 1))
    assert n == 3_274_634 and out.shape == (2, 10)
    assert set(v["params"]) == {"Conv_0", "Conv_1", "Dense_0", "Dense_1"}
    n, out, v = shapes(KerasExample(), (2, 28, 28, 1))
    assert n == 600_810 and set(v["params"]) == {"Conv_0", "Conv_1", "Dense_0", "Dense_1"}
    n, out, v = shapes(LeNet5(), (2, 28, 28, 1))
    assert n == 61_706 and set(v["params"]) == {"C1", "C3", "C5", "F6", "output"}
    n, out, v = shapes(MLP(hidden=(32, 16)), (2, 28, 28, 1))
    assert set(v["params"]) == {"Dense_0", "Dense_1", "Dense_2"}
    n, out, v = shapes(BNConvNet(), (2, 28, 28, 1))
    assert set(v["params"]) == {"Conv_0", "BatchNorm_0", "Conv_1", "BatchNorm_1", "Dense_0"}
    n, out, v = shapes(RESNETS["resnet50"](), (1, 224, 224, 3))
    assert n == 25_557_032 and out.shape == (1, 1000)
    assert set(v["params"]["stage3_block2"]) == {
        "Conv_0", "Conv_1", "Conv_2", "BatchNorm_0", "BatchNorm_1", "BatchNorm_2"}
    assert v["params"]["stage3_block2"]["Conv_1"]["kernel"].shape == (3, 3, 256, 256)


def test_layer_names_follow_the_config():
    assert MLP(hidden=(4, 4, 4)).layer_names() == ("Dense_0", "Dense_1", "Dense_2", "Dense_3")
    assert BNConvNet(features=(4,)).layer_names() == ("block1", "pool", "Dense_0")
    names = RESNETS["resnet18"]().layer_names()
    assert names[:3] == ("stem", "stage1_block1", "stage1_block2")
    assert names[-3:] == ("stage4_block2", "pool", "head") and len(names) == 11


# ------------------------------------------------------------------ ResNeXt and wide ResNets

@pytest.mark.parametrize("name, expected", [
    ("resnext50_32x4d", 25_028_904), ("resnext101_32x8d", 88_791_336),
    ("resnext101_64x4d", 83_455_272), ("wide_resnet50_2", 68_883_240),
    ("wide_resnet101_2", 126_886_696)])
def test_resnext_and_wide_resnet_counts_match_torchvision(name, expected):
    n, out, v = shapes(RESNETS[name](num_classes=1000), (1, 224, 224, 3))
    assert n == expected and out.shape == (1, 1000)


def test_grouped_bottleneck_widths_and_macs():
    """ResNeXt-50 32x4d stage 1: inner width int(64 * 4 / 64) * 32 = 128, the 3x3 conv's kernel
    (3, 3, 128 / 32, 128); forward_macs counts the grouped conv at 1/32 of a dense one (the
    paper's table 1: 4.2 G multiply-adds for ResNeXt-50, torchvision 4.23 GFLOPS)."""
    _, _, v = shapes(RESNETS["resnext50_32x4d"](), (1, 64, 64, 3))
    blk = v["params"]["stage1_block1"]
    assert blk["Conv_0"]["kernel"].shape == (1, 1, 64, 128)
    assert blk["Conv_1"]["kernel"].shape == (3, 3, 4, 128)
    assert blk["Conv_2"]["kernel"].shape == (1, 1, 128, 256)
    assert round(forward_macs(RESNETS["resnext50_32x4d"]()) / 1e9, 2) == 4.23
    assert round(forward_macs(RESNETS["wide_resnet50_2"]()) / 1e9, 2) == 11.40


def test_basic_block_refuses_groups():
    with pytest.raises(ValueError, match="groups"):
        shapes(RESNETS["resnet18"](groups=2), (1, 32, 32, 3))
