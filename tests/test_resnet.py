"""ResNet (jdl.nn.resnet): pinned parameter counts and MACs, shapes, batch norm in train and
eval mode, training through jdl's step, rematerialisation, bfloat16 compute; and the GPU
benchmark script's --quick mode on the CPU."""
import json
import os
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jdl.nn import (RESNETS, BottleneckResNetBlock, ResNet, ResNet18, ResNet50, ResNetBlock,
                    forward_macs)
from jdl.optim import sgd
from jdl.train import backprop, create_state, make_train_step, num_params

from conftest import tree_max_abs_diff

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def shapes(model, shape):
    """Parameter count, output shape/dtype and variables' shapes, by abstract evaluation only."""
    x = jax.ShapeDtypeStruct(shape, jnp.float32)
    v = jax.eval_shape(lambda x: model.init(jax.random.PRNGKey(0), x, train=False), x)
    out = jax.eval_shape(lambda v, x: model.apply(v, x, train=False), v, x)
    return num_params(v["params"]), out, v


@pytest.mark.parametrize("name, expected", [
    ("resnet18", 11_689_512), ("resnet34", 21_797_672), ("resnet50", 25_557_032),
    ("resnet101", 44_549_160), ("resnet152", 60_192_808)])
def test_parameter_counts_match_torchvision(name, expected):
    n, out, v = shapes(RESNETS[name](num_classes=1000), (1, 224, 224, 3))
    assert n == expected
    assert out.shape == (1, 1000) and out.dtype == jnp.float32
    assert set(v) == {"params", "batch_stats"}


def test_forward_macs_match_published_figures():
    # torchvision's "GFLOPS" for these models are multiply-adds: 1.81 and 4.09 G.
    assert round(forward_macs(ResNet18()) / 1e9, 2) == 1.81
    assert round(forward_macs(ResNet50()) / 1e9, 2) == 4.09


def test_forward_macs_agree_with_xla_cost_analysis():
    """2 x MACs (convs + head) against the FLOPs XLA counts for the compiled forward pass
    (which adds batch norm, ReLU, pooling, additions, and leaves out the taps on zero padding):
    within 10%."""
    m = ResNet(stage_sizes=[1, 1], block_cls=BottleneckResNetBlock, num_filters=8, stem="imagenet",
               num_classes=10)
    x = jax.ShapeDtypeStruct((2, 64, 64, 3), jnp.float32)
    v = jax.eval_shape(lambda x: m.init(jax.random.PRNGKey(0), x), x)
    ca = jax.jit(lambda v, x: m.apply(v, x)).lower(v, x).compile().cost_analysis()
    ca = ca[0] if isinstance(ca, (list, tuple)) else ca
    ratio = ca["flops"] / (2 * 2 * forward_macs(m, (64, 64)))
    assert 0.9 < ratio < 1.1, ratio


def test_output_and_stage_shapes():
    # ImageNet stem: 224 -> 112 (conv 7x7/2) -> 56 (max-pool) -> 56, 28, 14, 7 by stage.
    m = ResNet50(num_classes=7)
    x = jnp.zeros((2, 224, 224, 3))
    v = jax.eval_shape(lambda: m.init(jax.random.PRNGKey(0), x))
    _, inter = jax.eval_shape(lambda v: m.apply(v, x, capture_intermediates=True,
                                                mutable=["intermediates"]), v)
    got = {k: inter["intermediates"][k]["__call__"][0].shape
           for k in ("stage1_block3", "stage2_block4", "stage3_block6", "stage4_block3")}
    assert got == {"stage1_block3": (2, 56, 56, 256), "stage2_block4": (2, 28, 28, 512),
                   "stage3_block6": (2, 14, 14, 1024), "stage4_block3": (2, 7, 7, 2048)}
    # The small-image stem keeps the resolution: 32 -> 32, 16, 8, 4.
    n, out, _ = shapes(ResNet18(num_classes=10, stem="cifar"), (3, 32, 32, 3))
    assert out.shape == (3, 10)
    assert n == 11_689_512 - 1000 * 513 + 10 * 513 - 7 * 7 * 3 * 64 + 3 * 3 * 3 * 64


def test_invalid_configuration():
    with pytest.raises(ValueError, match="stem"):
        ResNet18(stem="mnist")
    with pytest.raises(ValueError, match="stage_sizes"):
        ResNet(stage_sizes=[2, 0], block_cls=ResNetBlock)


# A tiny ResNet that runs on the CPU in seconds: one basic block per stage, 8 and 16 filters.
TINY = ResNet(stage_sizes=[1, 1], block_cls=ResNetBlock, num_filters=8, stem="cifar",
              num_classes=10)


@pytest.fixture(scope="module")
def tiny():
    """(variables, batch), initialised once for the module (an 'rbg' key compiles faster)."""
    x = jax.random.normal(jax.random.PRNGKey(1), (8, 16, 16, 3))
    y = jnp.arange(8) % 10
    v = jax.jit(lambda k, x: TINY.init(k, x, train=False))(jax.random.key(0, impl="rbg"), x)
    return jax.tree.map(np.asarray, v), {"x": x, "y": y}


def test_tiny_resnet_trains_and_updates_batch_stats(tiny):
    variables, batch = tiny
    tx = sgd(0.1, 0.9)
    state = create_state(variables["params"], tx, jax.random.PRNGKey(0),
                         {"batch_stats": variables["batch_stats"]})
    step = jax.jit(make_train_step(backprop(TINY), tx), donate_argnums=0)
    losses = []
    for _ in range(5):
        state, m = step(state, batch)
        losses.append(float(m["loss"]))
    assert losses[-1] < losses[0] - 0.05, losses
    assert int(state.bad_step) == -1
    # Running averages moved towards the batch statistics (momentum 0.9): mean starts at 0.
    old, new = variables["batch_stats"], state.model_state["batch_stats"]
    assert np.all(np.asarray(old["bn_init"]["mean"]) == 0)
    assert tree_max_abs_diff(old, new) > 1e-3
    # Eval mode uses the running averages: outputs depend on them, and an example's output does
    # not depend on the rest of the batch.
    ev = jax.jit(lambda v, x: TINY.apply(v, x, train=False))
    out = ev({"params": state.params, **state.model_state}, batch["x"])
    out_old = ev({"params": state.params, "batch_stats": old}, batch["x"])
    assert float(jnp.max(jnp.abs(out - out_old))) > 1e-4
    out1 = ev({"params": state.params, **state.model_state}, batch["x"][:1])
    np.testing.assert_allclose(out1[0], out[0], rtol=1e-5, atol=1e-5)
    # Train mode normalises by the batch: the same example gives a different output.
    tr, _ = jax.jit(lambda v, x: TINY.apply(v, x, train=True, mutable=["batch_stats"]))(
        {"params": state.params, **state.model_state}, batch["x"][:2])
    assert float(jnp.max(jnp.abs(tr[0] - out[0]))) > 1e-4


@pytest.fixture(scope="module")
def tiny_grads(tiny):
    """The float32 model's (grads, new batch_stats, metrics) on the tiny batch."""
    variables, batch = tiny
    return jax.jit(backprop(TINY))(variables["params"], {"batch_stats": variables["batch_stats"]},
                                   batch, jax.random.PRNGKey(0))


def test_remat_gives_the_same_parameters_and_gradients(tiny, tiny_grads):
    variables, batch = tiny
    remat = TINY.clone(remat=True)
    abstract = jax.eval_shape(lambda: remat.init(jax.random.PRNGKey(0), batch["x"]))
    assert jax.tree.structure(abstract) == jax.tree.structure(variables)
    state = {"batch_stats": variables["batch_stats"]}
    g, s, m = tiny_grads
    gr, sr, mr = jax.jit(backprop(remat))(variables["params"], state, batch, jax.random.PRNGKey(0))
    assert tree_max_abs_diff(g, gr) < 1e-6
    assert tree_max_abs_diff(s, sr) < 1e-6
    assert abs(float(m["loss"]) - float(mr["loss"])) < 1e-6


def test_bfloat16_compute_keeps_float32_params(tiny, tiny_grads):
    variables, batch = tiny
    bf = TINY.clone(dtype=jnp.bfloat16)
    abstract = jax.eval_shape(lambda: bf.init(jax.random.PRNGKey(0), batch["x"]))
    assert {a.dtype for a in jax.tree.leaves(abstract)} == {jnp.dtype(jnp.float32)}
    out, inter = jax.eval_shape(lambda v, x: bf.apply(v, x, capture_intermediates=True,
                                                      mutable=["intermediates"]),
                                variables, batch["x"])
    blocks = {k: a["__call__"][0].dtype for k, a in inter["intermediates"].items()
              if k.startswith("stage")}
    assert blocks == {"stage1_block1": jnp.bfloat16, "stage2_block1": jnp.bfloat16}
    assert out.dtype == jnp.float32          # logits (and so the loss) in float32
    # dtype=None (the default) follows the inputs and parameters, so jdl.train.mixed_precision's
    # casts give bfloat16 compute too.
    cast = {"params": jax.tree.map(lambda a: a.astype(jnp.bfloat16), variables["params"]),
            "batch_stats": variables["batch_stats"]}
    _, inter = jax.eval_shape(lambda v, x: TINY.apply(v, x, capture_intermediates=True,
                                                      mutable=["intermediates"]),
                              cast, batch["x"].astype(jnp.bfloat16))
    assert inter["intermediates"]["stage2_block1"]["__call__"][0].dtype == jnp.bfloat16
    state = {"batch_stats": variables["batch_stats"]}
    rng = jax.random.PRNGKey(0)
    g16, s16, m16 = jax.jit(backprop(bf))(variables["params"], state, batch, rng)
    g32, _, m32 = tiny_grads
    assert {a.dtype for a in jax.tree.leaves((g16, s16))} == {jnp.dtype(jnp.float32)}
    num = sum(float(jnp.sum((a - b) ** 2))
              for a, b in zip(jax.tree.leaves(g16), jax.tree.leaves(g32)))
    den = sum(float(jnp.sum(b ** 2)) for b in jax.tree.leaves(g32))
    assert (num / den) ** 0.5 < 0.05
    assert abs(float(m16["loss"]) - float(m32["loss"])) < 0.05


def test_batch_norm_is_synchronised_over_the_batch_axis(tiny):
    """Two shards mapped over the 'batch' axis (as under jdl.parallel's pmap) give the outputs
    and batch statistics of the whole batch; axis_name=None normalises each shard alone."""
    variables, batch = tiny
    x = batch["x"]

    def train_apply(model):
        return lambda x: model.apply(variables, x, train=True, mutable=["batch_stats"])

    full, full_stats = jax.jit(train_apply(TINY))(x)
    sharded = jax.jit(jax.vmap(train_apply(TINY), axis_name="batch"))
    out, stats = sharded(x.reshape(2, 4, *x.shape[1:]))
    assert float(jnp.max(jnp.abs(out.reshape(full.shape) - full))) < 1e-4
    assert tree_max_abs_diff(jax.tree.map(lambda a: a[0], stats), full_stats) < 1e-5
    alone = jax.jit(jax.vmap(train_apply(TINY.clone(axis_name=None)), axis_name="batch"))
    out_alone, _ = alone(x.reshape(2, 4, *x.shape[1:]))
    assert float(jnp.max(jnp.abs(out_alone.reshape(full.shape) - full))) > 1e-3


def test_benchmark_script_quick_mode(tmp_path):
    """benchmarks/gpu/resnet_throughput.py --quick end to end on the CPU: a table row per dtype
    and the JSON file in $OUT."""
    env = dict(os.environ, OUT=str(tmp_path), JAX_PLATFORMS="cpu")
    t = time.perf_counter()
    script = os.path.join(ROOT, "benchmarks/gpu/resnet_throughput.py")
    p = subprocess.run([sys.executable, script, "--quick"], env=env, capture_output=True, text=True,
                       timeout=300, cwd=ROOT)
    took = time.perf_counter() - t
    assert p.returncode == 0, p.stderr[-3000:]
    rows = [line for line in p.stdout.splitlines() if line.startswith("| resnet10 |")]
    assert [r.split("|")[2].strip() for r in rows] == ["float32", "bfloat16"], p.stdout
    for r in rows:
        cells = [c.strip() for c in r.strip("|").split("|")]
        assert int(cells[2]) == 4 and float(cells[3]) > 0 and float(cells[4]) > 0
        assert cells[8] == "n/a"             # no peak known for a CPU
    result = json.loads((tmp_path / "resnet_throughput.json").read_text())
    assert result["platform"] == "cpu" and result["forward_macs_per_image"] == 253_432_832
    for r in result["rows"]:
        assert r["bad_step"] == -1 and np.isfinite(r["final_loss"])
        assert r["model_flops_per_step"] == 6 * 253_432_832 * 4
        assert 0.5 < r["xla_flops_per_step"] / r["model_flops_per_step"] < 1.5
    print(f"benchmark --quick took {took:.1f} s")
