"""jdl.transfer.torchvision and jdl.transfer.torch_pickle without torch: against fixtures that
torch 2.14.1 / torchvision 0.29.1 wrote once (scripts/make_torchvision_fixture.py).

- the .pth reader returns exactly the arrays torch saved (zip and legacy layouts, several dtypes,
  non-contiguous and offset views) and refuses pickles that are not plain state dicts;
- every architecture's torchvision keys and shapes are exactly those jdl expects, both ways;
- jdl -> state dict -> jdl is the identity on real arrays;
- for a subset, jdl's logits on imported numpy-seeded weights are torchvision's logits.
The same check against torchvision itself at 224 x 224 is tests/test_torchvision_import.py.
"""
import io
import json
import os
import pickle
import sys
import types
import zipfile

import jax
import numpy as np
import pytest

from jdl.transfer import torchvision as tv
from jdl.transfer.torch_pickle import TorchFileError, load_state_dict

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")


def _load_models():
    with open(os.path.join(FIXTURES, "torchvision_models.json")) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def models():
    return _load_models()


def _case(models, arch, **kw):
    return next(c for c in models["cases"] if c["arch"] == arch and c["kwargs"] == kw)


# --------------------------------------------------------------------------- .pth reader
@pytest.mark.parametrize("layout", ["zip", "legacy"])
def test_reader_returns_what_torch_saved(layout):
    got = load_state_dict(os.path.join(FIXTURES, f"torch_pickle_{layout}.pth"))
    with np.load(os.path.join(FIXTURES, "torch_pickle_expected.npz")) as z:
        expected = {k: z[k] for k in z.files}
    assert sorted(got) == sorted(expected)
    for k, want in expected.items():
        assert got[k].shape == want.shape, k
        np.testing.assert_array_equal(got[k].astype(want.dtype), want, err_msg=k)
    assert got["bf16"].dtype.name == "bfloat16" and got["half"].dtype == np.float16
    assert got["int"].dtype == np.int64 and got["flags"].dtype == np.bool_
    assert got["weight"].flags.c_contiguous          # the transposed view, copied


def test_reader_refuses_a_pickled_module():
    with pytest.raises(TorchFileError, match="torch.nn.modules.linear.Linear"):
        load_state_dict(os.path.join(FIXTURES, "torch_pickle_module.pth"))


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo should-not-run",))


def _zip_with(tmp_path, pkl: bytes, storages: dict) -> str:
    path = str(tmp_path / "made.pth")
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("made/data.pkl", pkl)
        for k, v in storages.items():
            zf.writestr(f"made/data/{k}", v)
    return path


def test_reader_refuses_code_and_short_storages(tmp_path, monkeypatch):
    with pytest.raises(TorchFileError, match="system"):
        load_state_dict(_zip_with(tmp_path, pickle.dumps({"w": _Evil()}), {}))

    fake_torch = types.ModuleType("torch")        # so that pickle can name torch.FloatStorage

    class FloatStorage:
        pass

    FloatStorage.__module__, FloatStorage.__qualname__ = "torch", "FloatStorage"
    fake_torch.FloatStorage = FloatStorage
    monkeypatch.setitem(sys.modules, "torch", fake_torch)

    class Storage:
        pass

    class P(pickle.Pickler):         # writes the persistent id torch writes for a storage
        def persistent_id(self, obj):
            return ("storage", FloatStorage, "0", "cpu", 4) if isinstance(obj, Storage) else None

    buf = io.BytesIO()
    P(buf, protocol=2).dump({"w": Storage()})
    with pytest.raises(TorchFileError, match="8 bytes for 4 elements"):
        load_state_dict(_zip_with(tmp_path, buf.getvalue(), {"0": b"\0" * 8}))


def test_reader_reads_npz_and_names_missing_files(tmp_path):
    np.savez(tmp_path / "w.npz", a=np.arange(3.0))
    np.testing.assert_array_equal(load_state_dict(tmp_path / "w.npz")["a"], np.arange(3.0))
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        load_state_dict(tmp_path / "nope.pth")


# --------------------------------------------------------------------------- name mapping
def test_fixture_covers_every_arch(models):
    assert {c["arch"] for c in models["cases"]} == set(tv.ARCHS)


@pytest.mark.parametrize("arch", sorted(tv.ARCHS) + ["googlenet-noaux"])
def test_keys_and_shapes_match_torchvision(models, arch):
    kw = {"aux_logits": False} if arch == "googlenet-noaux" else {}
    arch = arch.split("-")[0]
    case = _case(models, arch, **kw)
    want = {k: tuple(s) for k, s, _ in case["keys"]}
    jdl_kw = {"aux_logits": not kw} if arch == "googlenet" else {}   # torchvision: aux on
    got = tv.state_dict_shapes(arch, **jdl_kw)
    assert not set(want) - set(got), f"jdl lacks {sorted(set(want) - set(got))[:5]}"
    assert not set(got) - set(want), f"torchvision lacks {sorted(set(got) - set(want))[:5]}"
    assert {k: s for k, s in got.items() if s != want[k]} == {}
    dtypes = {d for k, _, d in case["keys"] if not k.endswith("num_batches_tracked")}
    assert dtypes == {"float32"}


def _arange_like(key_shapes):
    """Distinct, exactly representable values per element (so any misplaced element shows)."""
    out, start = {}, 0
    for k, s in key_shapes:
        n = int(np.prod(s))
        if k.endswith("num_batches_tracked"):
            out[k] = np.zeros(s, np.int64)
        else:
            out[k] = ((np.arange(start, start + n) % 65521).astype(np.float32) / 64).reshape(s)
        start += n
    return out


@pytest.mark.parametrize("arch", ["resnet18", "alexnet", "googlenet"])
def test_round_trip_is_exact(models, arch):
    keys = [(k, s) for k, s, _ in _case(models, arch)["keys"]]
    sd = _arange_like(keys)
    v = tv.from_torchvision(arch, sd)
    back = tv.to_torchvision(arch, v)
    assert list(sorted(back)) == sorted(sd)
    for k in sd:
        np.testing.assert_array_equal(back[k], sd[k], err_msg=k)
    again = tv.from_torchvision(arch, back)
    assert jax.tree.structure(again) == jax.tree.structure(v)
    for a, b in zip(jax.tree.leaves(again), jax.tree.leaves(v)):
        np.testing.assert_array_equal(a, b)


def test_flatten_permutation_is_chw_to_hwc():
    """kernel[(h W + w) C + c, o] = weight[o, (c H + h) W + w] on a 2 x 3 x 4 map."""
    c, h, w, out = 2, 3, 4, 5
    weight = np.random.default_rng(0).standard_normal((out, c * h * w))
    kernel = tv._dense_to_jdl(weight, (c, h, w))
    x = np.random.default_rng(1).standard_normal((c, h, w))       # one image, torch layout
    np.testing.assert_allclose(x.transpose(1, 2, 0).reshape(-1) @ kernel,
                               weight @ x.reshape(-1), rtol=1e-12)
    np.testing.assert_array_equal(tv._dense_to_torch(kernel, (c, h, w)), weight)


# --------------------------------------------------------------------------- errors
def test_errors_name_the_first_offending_key(models):
    sd = tv.random_state_dict([(k, s) for k, s, _ in _case(models, "resnet18")["keys"]])
    missing = {k: v for k, v in sd.items() if k != "layer2.0.downsample.0.weight"}
    with pytest.raises(tv.StateDictMismatch, match=r"missing key 'layer2.0.downsample.0.weight'"):
        tv.from_torchvision("resnet18", missing)
    with pytest.raises(tv.StateDictMismatch, match=r"unexpected key 'layer5.0.conv1.weight'"):
        tv.from_torchvision("resnet18", {**sd, "layer5.0.conv1.weight": np.zeros((1, 1, 1, 1))})
    bad = {**sd, "layer3.1.conv2.weight": np.zeros((256, 256, 1, 3), np.float32)}
    with pytest.raises(tv.StateDictMismatch, match=r"'layer3.1.conv2.weight' has shape "
                                                   r"\(256, 256, 1, 3\).*\(256, 256, 3, 3\)"):
        tv.from_torchvision("resnet18", bad)
    with pytest.raises(ValueError, match="arch must be one of"):
        tv.from_torchvision("resnet19", sd)
    no_counters = {k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}
    assert tv.from_torchvision("resnet18", no_counters, num_classes=1000)["batch_stats"]


# --------------------------------------------------------------------------- numerics
LOGIT_ARCHS = [c["arch"] for c in _load_models()["cases"] if "logits" in c]


@pytest.mark.parametrize("arch", LOGIT_ARCHS)
def test_logits_match_torchvision_on_seeded_weights(models, arch):
    case = _case(models, arch)
    lg = case["logits"]
    sd = tv.random_state_dict([(k, s) for k, s, _ in case["keys"]], lg["seed"])
    checksum = sum(np.abs(v.astype(np.float64)).sum() for v in sd.values())
    assert checksum == pytest.approx(lg["weight_abs_sum"], rel=1e-9), \
        "numpy's random stream differs from the one the fixture was written with"
    x = np.random.default_rng(lg["input_seed"]).standard_normal(lg["input_shape"], np.float32)
    variables = tv.from_torchvision(arch, sd)
    model = tv.model_for_state_dict(arch, sd, **lg["kwargs"])
    del sd
    got = np.asarray(jax.jit(lambda v, x: model.apply(v, x, train=False))(
        variables, x.transpose(0, 2, 3, 1)))
    want = np.asarray(lg["values"], np.float32)
    rel = np.abs(got - want).max() / np.abs(want).max()
    assert rel <= 1e-4, f"{arch}: max |jdl - torchvision| / max |logit| = {rel:.2e}"


# --------------------------------------------------------------------------- command line
def test_command_imports_and_restores(tmp_path, models):
    keys = [(k, s) for k, s, _ in _case(models, "resnet18")["keys"]]
    sd = tv.random_state_dict(keys, seed=3)
    sd["fc.weight"], sd["fc.bias"] = sd["fc.weight"][:7], sd["fc.bias"][:7]
    np.savez(tmp_path / "r18.npz", **sd)
    assert tv.main(["resnet18", str(tmp_path / "r18.npz"), "--workdir",
                    str(tmp_path / "run")]) == 0
    model, variables = tv.load_imported(str(tmp_path / "run"))
    assert model.num_classes == 7
    back = tv.to_torchvision("resnet18", variables)
    for k in sd:
        np.testing.assert_array_equal(back[k], sd[k], err_msg=k)
