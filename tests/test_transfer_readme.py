"""The README's transfer-learning example runs as written (shrunk to a few epochs).

The block of README.md's "Transfer learning" section that builds a ``transfer.TransferModel``."""
import os
import re

import jax
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _example() -> str:
    text = open(os.path.join(ROOT, "README.md")).read()
    blocks = [b for b in re.findall(r"```python\n(.*?)```", text, flags=re.S)
              if "transfer.TransferModel" in b]
    assert len(blocks) == 1, "README.md must hold exactly one transfer-learning example"
    return blocks[0]


def _bit_equal(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    return all(np.array_equal(np.asarray(u).view(np.uint32), np.asarray(v).view(np.uint32))
               for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_transfer_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)                      # runs/digits_0_4 goes to a fresh folder
    block = _example().replace("epochs=10", "epochs=2").replace("epochs=30", "epochs=4")
    ns = {}
    exec(compile(block, "README.md", "exec"), ns)
    assert os.path.isdir(tmp_path / "runs" / "digits_0_4" / "checkpoints" / "last")
    final, start = ns["result"].state, ns["bb_vars"]
    # block1 (Conv_0, BatchNorm_0) frozen bit for bit; block2 fine-tuned; no statistic moved
    for name in ("Conv_0", "BatchNorm_0"):
        assert _bit_equal(final.params["backbone"][name], start["params"][name])
    assert not np.array_equal(final.params["backbone"]["Conv_1"]["kernel"],
                              start["params"]["Conv_1"]["kernel"])
    assert _bit_equal(final.model_state["batch_stats"]["backbone"], start["batch_stats"])
    assert 0.3 < ns["acc_features"] <= 1 and 0.3 < ns["acc_finetuned"] <= 1   # chance: 0.2
