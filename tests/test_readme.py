"""The README's examples run as written."""
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _python_blocks():
    text = open(os.path.join(ROOT, "README.md")).read()
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_pure_function_example_runs():
    # The per-example gradients: their mean is the gradient of the batch-mean loss (computed
    # here without vmap); the saliency map matches central finite differences at a pixel.
    import jax
    import jax.numpy as jnp
    import numpy as np
    blocks = [b for b in _python_blocks() if "per_example" in b]
    assert len(blocks) == 1
    ns = {}
    exec(compile(blocks[0], "README.md", "exec"), ns)
    model, params, cross_entropy = ns["model"], ns["params"], ns["cross_entropy"]
    x, y = jnp.zeros((8, 28, 28, 1)), jnp.arange(8) % 10
    batch = jax.grad(lambda p: cross_entropy(model.apply({"params": p}, x), y))(params)
    for got, want in zip(jax.tree.leaves(ns["g"]), jax.tree.leaves(batch)):
        assert got.shape == (8,) + want.shape
        np.testing.assert_allclose(got.mean(axis=0), want, rtol=1e-4, atol=1e-6)
    f = jax.jit(lambda im: model.apply({"params": params}, im)[0, 3])
    e = np.zeros((1, 28, 28, 1), np.float32)
    e[0, 14, 14, 0] = 1e-2
    image = ns["image"]   # a random image: no ties in the max-pool windows, where the
    fd = (f(image + e) - f(image - e)) / 2e-2   # gradient is a choice and differences average
    np.testing.assert_allclose(ns["saliency"][0, 14, 14, 0], fd, rtol=2e-2, atol=2e-4)


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
    # training lowered the reconstruction error; generated samples are binary states of the
    # 64 visible units; completion keeps the clamped half; the MLP initialised from the DBN
    # computes, by hand, its output layer on the DBN's top-layer probabilities.
    import numpy as np
    from jdl.nn import MLP
    history = ns["result"].history
    assert history[-1]["train_reconstruction_error"] < history[0]["train_reconstruction_error"]
    samples = np.asarray(ns["samples"])
    assert samples.shape == (16, 64) and np.isin(samples, (0.0, 1.0)).all()
    assert (ns["filled"][:, :32] == ns["x"][:4, :32]).all()       # the clamped half is kept
    assert ns["ll"]["log_likelihood"] < 0
    x, mlp_params = np.asarray(ns["x"], np.float32), ns["mlp_params"]
    logits = MLP(hidden=(128, 64), num_outputs=10, activation="sigmoid").apply(
        {"params": mlp_params}, x)
    top = np.asarray(ns["rbm"].dbn.propagate_up(ns["stack"], x))
    out = mlp_params["Dense_2"]
    np.testing.assert_allclose(logits, top @ np.asarray(out["kernel"]) + np.asarray(out["bias"]),
                               rtol=1e-4, atol=1e-5)


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
