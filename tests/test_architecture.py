"""ARCHITECTURE.md's example of a new model family runs as written and learns what Oja (1982)
proved it learns: the unit-norm first principal component of the data."""
import os
import re

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _example() -> str:
    text = open(os.path.join(ROOT, "ARCHITECTURE.md")).read()
    blocks = [b for b in re.findall(r"```python\n(.*?)```", text, flags=re.S) if "def oja" in b]
    assert len(blocks) == 1, "ARCHITECTURE.md must hold exactly one new-family example"
    return blocks[0]


def test_new_family_example_learns_the_first_principal_component(capsys):
    ns = {}
    exec(compile(_example(), "ARCHITECTURE.md", "exec"), ns)
    w, x = np.asarray(ns["w"], np.float64), np.asarray(ns["x"], np.float64)
    first_pc = np.linalg.eigh(x.T @ x)[1][:, -1]          # brute force, in float64
    assert abs(abs(w @ first_pc) / np.linalg.norm(w) - 1) < 1e-3
    assert abs(np.linalg.norm(w) - 1) < 0.02                # Oja's rule normalises w
    assert ns["result"].history[-1]["train_loss"] < ns["result"].history[0]["train_loss"]
    assert "|cos(w, first PC)|" in capsys.readouterr().out
