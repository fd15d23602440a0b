"""Write the torchvision fixtures that let CI check jdl.transfer without torch (run once).

Needs torch and torchvision (torch==2.14.1, torchvision==0.29.1, about 5.5 GB; kept out of the
default and CI environments), e.g. in a separate virtual environment::

    python3 -m venv /work/tvenv && /work/tvenv/bin/pip install torch==2.14.1 \\
        torchvision==0.29.1 jax flax optax orbax-checkpoint numpy pytest
    PYTHONPATH=$PWD /work/tvenv/bin/python scripts/make_torchvision_fixture.py

Writes, under tests/fixtures/:

- torchvision_models.json: for every architecture jdl imports (and GoogLeNet without its
  auxiliary heads), torchvision's state-dict keys in order with shape and dtype (from models
  built on the 'meta' device: no weights are made or downloaded); for a subset, the logits
  torchvision computes in eval mode for weights from jdl.transfer.torchvision.random_state_dict
  (numpy, seeded: CI regenerates them) on a seeded numpy input of 2 x 3 x 64 x 64, with the sum
  of |weights| to detect a change of numpy's random stream;
- torch_pickle_zip.pth, torch_pickle_legacy.pth, torch_pickle_module.pth and
  torch_pickle_expected.npz: a tiny state dict of several dtypes, a transposed (non-contiguous)
  view and an offset view, saved in torch's zip and legacy layouts, a pickled nn.Module (which
  the reader must refuse), and the arrays the reader must return.
"""
from __future__ import annotations

import json
import os
import sys
import warnings

import numpy as np
import torch
import torchvision

from jdl.transfer.torchvision import ARCHS, random_state_dict

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "tests", "fixtures")
LOGIT_CASES = [("resnet18", {}), ("resnet50", {}), ("resnext50_32x4d", {}), ("alexnet", {}),
               ("vgg11_bn", {}), ("googlenet", {"transform_input": True})]
NAME_CASES = [(a, {}) for a in sorted(ARCHS)] + [("googlenet", {"aux_logits": False})]
SEED, INPUT_SEED, INPUT_SHAPE = 0, 1, (2, 3, 64, 64)


def build(arch, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # GoogLeNet's init_weights FutureWarning
        return getattr(torchvision.models, arch)(weights=None, **kw)


def keys_of(arch, **kw):
    with torch.device("meta"):
        sd = build(arch, **kw).state_dict()
    return [[k, list(v.shape), str(v.dtype).removeprefix("torch.")] for k, v in sd.items()]


def logits_of(arch, keys, **kw):
    sd = random_state_dict([(k, s) for k, s, _ in keys], SEED)
    model = build(arch, **kw).eval()
    model.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()}, strict=True)
    x = np.random.default_rng(INPUT_SEED).standard_normal(INPUT_SHAPE, np.float32)
    with torch.no_grad():
        out = model(torch.from_numpy(x)).numpy()
    checksum = float(sum(np.abs(v.astype(np.float64)).sum() for v in sd.values()))
    return out, checksum


def models_fixture() -> dict:
    cases = []
    for arch, kw in NAME_CASES:
        keys = keys_of(arch, **kw)
        case = {"arch": arch, "kwargs": kw, "keys": keys}
        logit_kw = dict(LOGIT_CASES).get(arch)
        if logit_kw is not None and not kw:
            out, checksum = logits_of(arch, keys, **logit_kw)
            case["logits"] = {"kwargs": logit_kw, "seed": SEED, "input_seed": INPUT_SEED,
                              "input_shape": list(INPUT_SHAPE), "weight_abs_sum": checksum,
                              "values": [[float(v) for v in row] for row in out]}
        print(arch, kw, len(keys), "keys", "+ logits" if "logits" in case else "", flush=True)
        cases.append(case)
    return {"torch": torch.__version__, "torchvision": torchvision.__version__, "cases": cases}


def pickle_fixtures() -> None:
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    sd = {"weight": base.t(),                                   # non-contiguous view
          "tail": base.reshape(-1)[5:17].reshape(3, 4),            # offset into the storage
          "half": torch.linspace(-2, 2, 5, dtype=torch.float16),
          "bf16": torch.linspace(-2, 2, 7, dtype=torch.bfloat16),
          "int": torch.arange(-3, 3, dtype=torch.int64),
          "flags": torch.tensor([True, False, True]),
          "count": torch.tensor(7),
          "nested.scalar": torch.tensor(2.5, dtype=torch.float64)}
    torch.save(sd, os.path.join(FIXTURES, "torch_pickle_zip.pth"))
    torch.save(sd, os.path.join(FIXTURES, "torch_pickle_legacy.pth"),
               _use_new_zipfile_serialization=False)
    torch.save(torch.nn.Linear(2, 1), os.path.join(FIXTURES, "torch_pickle_module.pth"))
    expected = {k: v.float().numpy() if v.dtype == torch.bfloat16 else v.numpy()
                for k, v in sd.items()}
    np.savez(os.path.join(FIXTURES, "torch_pickle_expected.npz"), **expected)


def main() -> int:
    os.makedirs(FIXTURES, exist_ok=True)
    torch.manual_seed(0)
    pickle_fixtures()
    with open(os.path.join(FIXTURES, "torchvision_models.json"), "w") as f:
        json.dump(models_fixture(), f, separators=(",", ":"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
