"""Tests of jdl.train.greedy: the one greedy layer-wise trainer behind jdl.rbm.dbn and
jdl.ae.stacked, checked against the procedure stepped by hand, layer by layer."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jdl import ae, rbm
from jdl.rbm import dbn
from jdl.train import read_metrics
from jdl.train.greedy import epochs_per_layer, per_layer

KEY = jax.random.PRNGKey(3)


def _binary(n, d, seed):
    return (np.random.default_rng(seed).random((n, d)) < 0.4).astype(np.float32)


def test_dbn_is_train_rbm_layer_by_layer_and_scores_held_out_data():
    # The stack equals train_rbm run by hand on each layer's input (layer l: key fold_in(rng,
    # l), batch order seed + l, input the probabilities p(h | x) of the layer below), bit for
    # bit; the held-out metrics of each layer are the mean free energy and mean-field
    # reconstruction error of the held-out data propagated up, computed here directly.
    x, x_val = _binary(40, 6, 0), _binary(10, 6, 1)
    init = dbn.init_stack(KEY, 6, (4, 3))
    txs = [optax.sgd(0.1 * (l + 1)) for l in range(2)]   # shared: the same compiled steps
    kw = dict(batch_size=10, tx_factory=lambda l: txs[l], persistent=True, verbose=False)
    stack, history = dbn.greedy_layerwise(x, (4, 3), KEY, epochs=(1, 2), initial=init, seed=5,
                                          x_val=x_val, return_history=True, **kw)
    h, v = jnp.asarray(x), jnp.asarray(x_val)
    for layer, epochs in enumerate((1, 2)):
        ref = rbm.train_rbm(h, init[layer], jax.random.fold_in(KEY, layer), epochs=epochs,
                            batch_size=10, tx=txs[layer], persistent=True,
                            seed=5 + layer, verbose=False).state.params
        for name in ("W", "b", "c"):
            np.testing.assert_array_equal(stack[layer][name], ref[name])
        p = stack[layer]
        recon = rbm.p_v_given_h(p, rbm.p_h_given_v(p, v))
        last = history[layer][-1]
        assert last["val_free_energy"] == pytest.approx(
            float(np.mean(rbm.free_energy(p, v))), rel=1e-5)
        assert last["val_reconstruction_error"] == pytest.approx(
            float(np.mean(np.square(v - recon))), rel=1e-5)
        h, v = rbm.p_h_given_v(p, h), rbm.p_h_given_v(p, v)


def test_stacked_autoencoders_keep_their_run_in_workdir(tmp_path):
    # each layer's fit writes workdir/layer{k}; the same call again finds the finished run
    # there and returns it (same params, same history) without training anew.
    x = np.random.default_rng(2).random((30, 8)).astype(np.float32)
    kw = dict(epochs=1, batch_size=10, tx_factory=optax.sgd(0.5), workdir=str(tmp_path),
              verbose=False)
    first = ae.greedy_layerwise(x, (5, 3), KEY, **kw)
    again = ae.greedy_layerwise(x, (5, 3), KEY, **kw)
    for k in range(2):
        assert len(read_metrics(str(tmp_path / f"layer{k}"))) > 0
        for a, b in zip(jax.tree.leaves(first.params[k]), jax.tree.leaves(again.params[k])):
            np.testing.assert_array_equal(a, b)
    assert again.history == first.history


def test_per_layer_options_and_their_errors():
    assert per_layer("loss", ["a", "b"], 2) == ["a", "b"]
    assert per_layer("corruption", ("mask", 0.1), 3) == [("mask", 0.1)] * 3
    assert epochs_per_layer(4, 2) == [4, 4] and epochs_per_layer((1, 2), 2) == [1, 2]
    with pytest.raises(ValueError, match="loss gives 1 values for 2 layers"):
        per_layer("loss", ["a"], 2)
    with pytest.raises(ValueError, match="epochs gives 3 values for 2 layers"):
        epochs_per_layer((1, 2, 3), 2)
