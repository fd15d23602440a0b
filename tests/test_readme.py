"""The README's examples run as written."""
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _python_blocks():
    text = open(os.path.join(ROOT, "README.md")).read()
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_pure_function_example_runs():
    blocks = [b for b in _python_blocks() if "per_example" in b]
    assert len(blocks) == 1
    ns = {}
    exec(compile(blocks[0], "README.md", "exec"), ns)
    g = ns["g"]
    leaf = next(iter(g.values()))["kernel"]
    assert leaf.shape[0] == 8  # one gradient per example
    assert ns["saliency"].shape == (1, 28, 28, 1)


def test_library_example_runs_on_a_small_slice(tmp_path, monkeypatch):
    """The training example, with the data shrunk and epochs cut so it runs in seconds."""
    import numpy as np
    from jdl.data import fashion_mnist
    from jdl.data.fashion_mnist import Split
    block = [b for b in _python_blocks() if "fashion_mnist.load" in b][0]
    rng = np.random.default_rng(0)
    fake = Split(rng.integers(0, 256, (300, 28, 28, 1), dtype=np.uint8), rng.integers(0, 10, 300).astype(np.int32))
    monkeypatch.setattr(fashion_mnist, "load", lambda *a, **k: fake)
    block = block.replace("epochs=10", "epochs=1").replace('"runs/my_lenet"', repr(str(tmp_path)))
    ns = {}
    exec(compile(block, "README.md", "exec"), ns)
    assert ns["result"].history[0]["epoch"] == 1


def test_rbm_example_runs():
    block = [b for b in _python_blocks() if "rbm.train_rbm" in b][0]
    block = block.replace("epochs=20", "epochs=2").replace("epochs=5", "epochs=1")
    ns = {}
    exec(compile(block, "README.md", "exec"), ns)
    assert ns["params"]["W"].shape == (64, 64)
    assert ns["samples"].shape == (16, 64) and ns["filled"].shape == (4, 64)
    assert (ns["filled"][:, :32] == ns["x"][:4, :32]).all()       # the clamped half is kept
    assert ns["ll"]["log_likelihood"] < 0
    assert ns["mlp_params"]["Dense_1"]["kernel"].shape == (128, 64)


def test_rnn_example_runs():
    """The recurrent-network example, shrunk; its BPTT training lowers the validation MSE."""
    block = [b for b in _python_blocks() if "rnn.bptt" in b][0]
    block = block.replace("adding_problem(2000,", "adding_problem(200,").replace(
        "adding_problem(200, T=50, seed=1)", "adding_problem(50, T=50, seed=1)").replace(
        "epochs=3", "epochs=2").replace("hidden=32", "hidden=8")
    ns = {}
    exec(compile(block, "README.md", "exec"), ns)
    hist = ns["result"].history
    assert len(hist) == 2 and hist[-1]["val_loss"] < hist[0]["val_loss"]
    lags = ns["lags"]
    assert lags.lag_norms.shape == (50,)
    assert bool((lags.norm_bound >= lags.lag_norms * (1 - 1e-5)).all())   # eq. 2
