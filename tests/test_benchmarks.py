"""`python -m benchmarks --quick`: the side-by-side table's structure, and that jdl and each
peer sharing its weights compute the same loss on the same batch."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:     # benchmarks/ is not installed with jdl
    sys.path.insert(0, ROOT)


def test_quick_table_structure_and_equal_losses(tmp_path):
    out = tmp_path / "rows.json"
    env = dict(os.environ, PYTHONPATH=ROOT)
    r = subprocess.run([sys.executable, "-m", "benchmarks", "--quick", "--workloads", "mlp",
                        "--steps", "1", "--json", str(out)], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = json.loads(out.read_text())
    assert {row["peer"] for row in rows} == {"torch", "flax"}
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("|")]
    assert lines[0].startswith("| workload | peer |") and set(lines[1]) <= set("|-: ")
    assert len(lines) == 2 + len(rows)
    for row in rows:
        if "skipped" in row:     # an absent peer is named, not silently dropped
            assert "not installed" in row["skipped"] and "skipping peer" in r.stdout
            continue
        assert row["jdl"] > 0 and row["peer_rate"] > 0 and row["jdl_rss_mb"] > 0
        assert np.isclose(row["ratio"], np.median(np.divide(row["jdl_all"], row["peer_all"])))
        assert row["loss_match"] is True, (row["jdl_loss0"], row["peer_loss0"])


@pytest.mark.parametrize("name", ["lenet5", "convnet", "keras_example", "mlp"])
def test_torch_forms_compute_jdl_losses(name, tmp_path):
    """The PyTorch networks of the benchmark, given jdl's initial weights, give jdl's loss."""
    pytest.importorskip("torch")
    from benchmarks import sides
    jdl = sides.jdl_side(name, batch=4, quick=True, shared=str(tmp_path))
    peer = sides.torch_side(name, batch=4, quick=True, shared=str(tmp_path), threads=1)
    assert peer.loss0 is not None
    np.testing.assert_allclose(peer.loss0, jdl.loss0, rtol=1e-5)
