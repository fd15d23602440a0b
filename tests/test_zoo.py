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
    intermediates, cut outputs)`` gives the activation the cut model must return (None: not checked here)."""
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
        expected = expected_by_name(name, state["intermediates"], ys)
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

    def expected(name, inter, ys):
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


def test_resnet_torch_padding_pads_strided_convs_symmetrically():
    """torch_padding=True: the stride-2 3x3 conv of stage 2 is PyTorch's pad-1 convolution of
    relu(BN(conv1x1(x))) (flax's 'SAME' would pad (0, 1)); same parameters as the default."""
    make = lambda **kw: ResNet(stage_sizes=[1, 1], block_cls=BottleneckResNetBlock,
                               num_filters=4, stem="cifar", num_classes=10, **kw)
    x = jax.random.normal(jax.random.PRNGKey(1), (2, 8, 8, 1))
    m = make(torch_padding=True)
    v = random_variables(m, x)
    assert leaf_shapes(v) == leaf_shapes(random_variables(make(), x))
    inter = full_forward_intermediates(m, v, x)["stage2_block1"]
    a = jax.nn.relu(inter["BatchNorm_0"]["__call__"][0])
    k = v["params"]["stage2_block1"]["Conv_1"]["kernel"]
    ref = jax.lax.conv_general_dilated(a, k, (2, 2), [(1, 1), (1, 1)],
                                       dimension_numbers=("NHWC", "HWIO", "NHWC"))
    np.testing.assert_allclose(inter["Conv_1"]["__call__"][0], ref, rtol=1e-5, atol=1e-6)
    same = jax.lax.conv_general_dilated(a, k, (2, 2), "SAME",
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))
    assert np.abs(np.asarray(same - ref)).max() > 1e-3


# ------------------------------------------------------------ AlexNet, ZFNet, VGG, GoogLeNet

from jdl.nn import (SMALL_ZOO, ZOO, AlexNetSmall, GoogLeNet, GoogLeNetOutputs,  # noqa: E402
                    GoogLeNetSmall, VGG11BNSmall, adaptive_avg_pool, local_response_norm,
                    lp_pool, max_pool_padded)
from jdl.nn.convolution import avg_pool  # noqa: E402


def count_macs(fn, *args):
    """Multiply-accumulates of the convolutions and matrix products in ``fn``'s jaxpr (output
    size x contraction size each), sub-jaxprs included."""
    def walk(jaxpr):
        total = 0
        for eqn in jaxpr.eqns:
            if eqn.primitive.name == "conv_general_dilated":
                out, k = eqn.outvars[0].aval.shape, eqn.invars[1].aval.shape
                spec = eqn.params["dimension_numbers"].rhs_spec        # (O, I, spatial...)
                total += int(np.prod(out)) * int(np.prod([k[i] for i in spec[1:]]))
            elif eqn.primitive.name == "dot_general":
                (lc, _), _ = eqn.params["dimension_numbers"]
                a = eqn.invars[0].aval.shape
                total += int(np.prod(eqn.outvars[0].aval.shape)) * int(np.prod([a[i] for i in lc]))
            for p in eqn.params.values():
                for sub in (p if isinstance(p, (list, tuple)) else [p]):
                    inner = getattr(sub, "jaxpr", sub)
                    if hasattr(inner, "eqns"):
                        total += walk(inner)
        return total
    return walk(jax.make_jaxpr(fn)(*args).jaxpr)


def model_macs(model, shape):
    x = jax.ShapeDtypeStruct(shape, jnp.float32)
    v = jax.eval_shape(lambda x: model.init(jax.random.PRNGKey(0), x), x)
    return count_macs(lambda v, x: model.apply(v, x), v, x) // shape[0]


@pytest.mark.parametrize("name, expected", [
    ("alexnet", 61_100_840), ("vgg11", 132_863_336), ("vgg11_bn", 132_868_840),
    ("vgg13", 133_047_848), ("vgg13_bn", 133_053_736), ("vgg16", 138_357_544),
    ("vgg16_bn", 138_365_992), ("vgg19", 143_667_240), ("vgg19_bn", 143_678_248),
    ("googlenet", 6_624_904)])
def test_zoo_counts_match_torchvision(name, expected):
    n, out, _ = shapes(ZOO[name](), (1, 224, 224, 3))
    assert n == expected and out.shape == (1, 1000)


def test_zfnet_count_by_hand():
    """The lecture's ZFNet: AlexNet (torchvision's) with conv1 7x7/2 and conv3-5 512/1024/512.
    224 -> conv1 (224 + 4 - 7) // 2 + 1 = 111 -> pool 55 -> conv2 55 -> pool 27 -> conv3-5 27
    -> pool 13 -> adaptive 6x6x512 = 18,432 inputs to fc6."""
    conv = lambda k, cin, cout: k * k * cin * cout + cout
    dense = lambda i, o: i * o + o
    expected = (conv(7, 3, 64) + conv(5, 64, 192) + conv(3, 192, 512) + conv(3, 512, 1024)
                + conv(3, 1024, 512) + dense(6 * 6 * 512, 4096) + dense(4096, 4096)
                + dense(4096, 1000))
    n, out, v = shapes(ZOO["zfnet"](), (1, 224, 224, 3))
    assert n == expected == 107_020_712 and out.shape == (1, 1000)
    _, pool5, _ = shapes(ZOO["zfnet"](output_layer="pool5"), (1, 224, 224, 3))
    _, conv5, _ = shapes(ZOO["zfnet"](output_layer="conv5"), (1, 224, 224, 3))
    assert conv5.shape == (1, 27, 27, 512) and pool5.shape == (1, 6, 6, 512)


def test_googlenet_aux_heads_count_shapes_and_outputs():
    """aux_logits=True adds, per head, a 1x1 BasicConv to 128 (kernel + BN scale/bias), a
    dense 4*4*128 -> 1024 and a dense 1024 -> classes: 13,004,888 in all as torchvision.
    Training returns (logits, aux1, aux2); evaluation and aux_logits=False return logits."""
    head = lambda cin: cin * 128 + 2 * 128 + 2048 * 1024 + 1024 + 1024 * 1000 + 1000
    n, out, v = shapes(GoogLeNet(aux_logits=True), (1, 224, 224, 3))
    assert n == 6_624_904 + head(512) + head(528) == 13_004_888 and out.shape == (1, 1000)
    m = GoogLeNetSmall(aux_logits=True)
    x = jax.ShapeDtypeStruct((3, 28, 28, 1), jnp.float32)
    v = jax.eval_shape(lambda x: m.init(jax.random.PRNGKey(0), x), x)
    assert {"aux1", "aux2"} <= set(v["params"])
    rngs = {"dropout": jax.random.PRNGKey(1)}
    out, _ = jax.eval_shape(lambda v, x: m.apply(v, x, train=True, rngs=rngs,
                                                   mutable=["batch_stats"]), v, x)
    assert isinstance(out, GoogLeNetOutputs) and [o.shape for o in out] == [(3, 10)] * 3
    assert jax.eval_shape(lambda v, x: m.apply(v, x), v, x).shape == (3, 10)
    plain = GoogLeNetSmall()
    vp = jax.eval_shape(lambda x: plain.init(jax.random.PRNGKey(0), x), x)
    assert not {"aux1", "aux2"} & set(vp["params"])
    out, _ = jax.eval_shape(lambda v, x: plain.apply(v, x, train=True, rngs=rngs,
                                                       mutable=["batch_stats"]), vp, x)
    assert out.shape == (3, 10)
    cut = GoogLeNetSmall(aux_logits=True, output_layer="inception5b")
    vc = jax.eval_shape(lambda x: cut.init(jax.random.PRNGKey(0), x), x)
    assert not {"aux1", "aux2"} & set(vc["params"])


def test_googlenet_pool_shapes_at_224_follow_torchvision_ceil_mode():
    """torchvision's comments: 112 -> pool1 56 -> pool2 28 -> pool3 14 -> pool4 7 (ceil mode:
    floor mode would give 55, 27, 13, 6)."""
    sizes = {name: shapes(GoogLeNet(output_layer=name), (1, 224, 224, 3))[1].shape
             for name in ("conv1", "pool1", "pool2", "pool3", "pool4", "inception5b", "pool")}
    assert sizes == {"conv1": (1, 112, 112, 64), "pool1": (1, 56, 56, 64),
                     "pool2": (1, 28, 28, 192), "pool3": (1, 14, 14, 480),
                     "pool4": (1, 7, 7, 832), "inception5b": (1, 7, 7, 1024), "pool": (1, 1024)}


def test_googlenet_transform_input():
    """transform_input: x_c * std_c / 0.5 + (mean_c - 0.5) / 0.5 before conv1."""
    x = jax.random.normal(jax.random.PRNGKey(1), (2, 16, 16, 3))
    m = GoogLeNetSmall(output_layer="conv1")
    v = random_variables(m, x)
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    y = GoogLeNetSmall(output_layer="conv1", transform_input=True).apply(v, x)
    np.testing.assert_allclose(y, m.apply(v, x * std / 0.5 + (mean - 0.5) / 0.5), rtol=1e-5,
                               atol=1e-6)


@pytest.mark.parametrize("name", sorted(SMALL_ZOO))
def test_small_forms_run_on_fashion_mnist_shapes_within_budget(name):
    n, out, _ = shapes(SMALL_ZOO[name](), (2, 28, 28, 1))
    assert out.shape == (2, 10) and n < 2_000_000
    assert model_macs(SMALL_ZOO[name](), (2, 28, 28, 1)) <= 40e6


def test_count_macs_agrees_with_resnet_forward_macs():
    m = SMALL_ZOO["resnet18"]()
    assert model_macs(m, (1, 28, 28, 1)) == forward_macs(m, (28, 28), in_channels=1)


def _new_family_expected(model, name, inter, ys):
    """The cut output of the new families from the full forward's sub-module outputs and the
    earlier cut points (the pooling the docstrings put between them applied by hand)."""
    out = lambda mod: inter[mod]["__call__"][0]
    relu = jax.nn.relu
    names = model.layer_names()
    prev = names[names.index(name) - 1] if names.index(name) > 0 else None
    if name.startswith("fc"):
        return out(name) if name == names[-1] else relu(out(name))
    if isinstance(model, GoogLeNet):
        if name.startswith(("conv", "inception")):
            return out(name)
        if name == "pool":
            return ys[prev].mean(axis=(1, 2))
        window = 2 if name == "pool4" else 3
        return max_pool_padded(ys[prev], window, 2, ceil_mode=True)
    if name.startswith("conv"):
        bn = "bn" + name[4:]
        y = relu(out(bn) if bn in inter else out(name))
        return local_response_norm(y) if getattr(model, "lrn", False) and name in (
            "conv1", "conv2") else y
    if hasattr(model, "lrn"):                                    # AlexNet: 3x3/2 max-pools
        y = max_pool_padded(ys[prev], 3, 2)
        return adaptive_avg_pool(y, model.pool_size) if name == "pool5" else y
    y = maxpool2(ys[prev])                                       # VGG: 2x2/2 max-pools
    return adaptive_avg_pool(y, model.pool_size) if name == "pool5" else y


@pytest.mark.parametrize("make", [lambda **kw: AlexNetSmall(lrn=True, **kw),
                                  lambda **kw: VGG11BNSmall(**kw),
                                  lambda **kw: GoogLeNetSmall(**kw)],
                         ids=["alexnet_lrn", "vgg11_bn", "googlenet"])
def test_new_families_cut_contract(make):
    check_cuts(make, (2, 28, 28, 1),
               lambda name, inter, ys: _new_family_expected(make(), name, inter, ys))


# ---------------------------------------------------------------------------------- layers

def test_lrn_matches_the_papers_formula():
    """b[c] = a[c] / (k + alpha sum_{c'=max(0,c-n/2)}^{min(C-1,c+n/2)} a[c']^2)^beta, looped."""
    a = np.random.default_rng(0).normal(0, 30, (2, 3, 3, 7)).astype(np.float32)
    k, n, alpha, beta = 2.0, 5, 1e-4, 0.75
    ref = np.zeros_like(a, np.float64)
    for c in range(7):
        lo, hi = max(0, c - n // 2), min(6, c + n // 2)
        s = (a[..., lo:hi + 1].astype(np.float64) ** 2).sum(-1)
        ref[..., c] = a[..., c] / (k + alpha * s) ** beta
    np.testing.assert_allclose(local_response_norm(a), ref, rtol=1e-5)


def _brute_windows(x, k, s, pad=0, fill=0.0, out=None):
    """Windows [i s - pad, i s - pad + k) of a padded copy of x, as a Python loop."""
    n, h, w, c = x.shape
    oh, ow = out or ((h + 2 * pad - k) // s + 1, (w + 2 * pad - k) // s + 1)
    xp = np.full((n, h + 2 * pad + k, w + 2 * pad + k, c), fill, np.float64)
    xp[:, pad:pad + h, pad:pad + w] = x
    for i in range(oh):
        for j in range(ow):
            yield i, j, xp[:, i * s:i * s + k, j * s:j * s + k]


def test_lp_pool_brute_force_p1_average_and_large_p_max():
    x = np.random.default_rng(0).normal(size=(2, 7, 9, 3)).astype(np.float32)
    ref = np.zeros((2, 3, 4, 3))
    for i, j, win in _brute_windows(x, 3, 2):
        ref[:, i, j] = np.mean(np.abs(win) ** 2.5, axis=(1, 2)) ** (1 / 2.5)
    np.testing.assert_allclose(lp_pool(x, 2.5, (3, 3), (2, 2)), ref, rtol=1e-5)
    relu_x = np.maximum(x, 0)
    np.testing.assert_allclose(lp_pool(relu_x, 1.0, (2, 2)), avg_pool(relu_x, (2, 2)),
                               rtol=1e-6, atol=1e-7)
    mx = np.asarray(max_pool_padded(np.abs(x), 3, 2))
    gaps = [np.abs(np.asarray(lp_pool(x, p, (3, 3), (2, 2))) - mx).max() for p in (4, 16, 64, 512)]
    assert all(a > b for a, b in zip(gaps, gaps[1:])) and gaps[-1] < 5e-3 * mx.max()
    # |W|^(-1/p) max <= y <= max
    y = np.asarray(lp_pool(x, 16.0, (3, 3), (2, 2)))
    assert np.all(y <= mx * (1 + 1e-6)) and np.all(y >= 9 ** (-1 / 16) * mx * (1 - 1e-6))


def test_adaptive_avg_pool_matches_torchs_formula():
    """start = floor(i H / out), end = ceil((i + 1) H / out), divisible or not, up or down."""
    x = np.random.default_rng(0).normal(size=(2, 7, 10, 3)).astype(np.float32)
    for oh, ow in [(3, 4), (7, 5), (1, 1), (9, 3)]:
        ref = np.zeros((2, oh, ow, 3))
        for i in range(oh):
            for j in range(ow):
                hs, he = (i * 7) // oh, -(-((i + 1) * 7) // oh)
                ws, we = (j * 10) // ow, -(-((j + 1) * 10) // ow)
                ref[:, i, j] = x[:, hs:he, ws:we].mean(axis=(1, 2))
        np.testing.assert_allclose(adaptive_avg_pool(x, (oh, ow)), ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("h, k, s, p, expected_out", [(5, 2, 2, 1, 3), (112, 3, 2, 0, 56),
                                                      (14, 2, 2, 0, 7), (13, 3, 2, 0, 6)])
def test_ceil_mode_max_pool_against_a_loop(h, k, s, p, expected_out):
    """PyTorch's ceil mode: out = ceil((H + 2p - k) / s) + 1, less one if the last window would
    start in the right padding ((5, 2, 2, 1): ceil(5 / 2) + 1 = 4 -> 3); -inf padding."""
    x = np.random.default_rng(0).normal(size=(1, h, h, 2)).astype(np.float32)
    y = np.asarray(max_pool_padded(x, k, s, p, ceil_mode=True))
    assert y.shape == (1, expected_out, expected_out, 2)
    ref = np.zeros(y.shape)
    for i, j, win in _brute_windows(x, k, s, p, -np.inf, (expected_out, expected_out)):
        ref[:, i, j] = win.max(axis=(1, 2))
    np.testing.assert_array_equal(y, ref)
