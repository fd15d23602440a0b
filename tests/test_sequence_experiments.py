"""The sequence experiments' runner (jdl.runs.sequences) and scripts, on tiny data: one-hot
tokens inside the step equal one-hot data, the learning rules that share a gradient train to
the same parameters through the runner, the copy task's recall metric against a count by hand,
the n-gram table against NGramModel, and each script's command line end to end."""
from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from jdl.data.sequences import adding_problem, copy_task  # noqa: E402
from jdl.nn.recurrent import SequenceModel  # noqa: E402
from jdl.rnn import bptt  # noqa: E402
from jdl.runs.sequences import (SequenceConfig, first_below, one_hot_inputs,  # noqa: E402
                                run_sequences, updates_per_batch)

from experiment_scripts import load  # noqa: E402

char_lm, rnn_adding, rnn_copy = load("char_lm"), load("rnn_adding"), load("rnn_copy")


def test_one_hot_inputs_equals_training_on_one_hot_data():
    d = copy_task(6, 5, seed=1)
    V = 10
    model = SequenceModel("tanh", 8, V, readout="all")
    x1h = jax.nn.one_hot(d["x"], V)
    params = model.init(jax.random.PRNGKey(0), x1h)["params"]
    key = jax.random.PRNGKey(1)
    g_ref, _, m_ref = bptt(model, "cross_entropy")(params, {}, {"x": x1h, "y": d["y"]}, key)
    g, _, m = one_hot_inputs(bptt(model, "cross_entropy"), V)(params, {}, d, key)
    for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(g_ref)):
        np.testing.assert_array_equal(a, b)
    assert float(m["loss"]) == float(m_ref["loss"])


def _tiny(rule, horizon=None, cell="tanh", tmp=None):
    train = adding_problem(64, 12, seed=0)
    test = adding_problem(32, 12, seed=1)
    cfg = SequenceConfig(cell=cell, hidden=6, rule=rule, horizon=horizon, batch_size=16,
                         epochs=2, learning_rate=1e-2, log_every=2)
    return run_sequences(cfg, train, test, test, os.path.join(tmp, rule + str(horizon)),
                         num_outputs=1, readout="last", loss="quadratic", progress=False)


def test_rules_with_the_same_gradient_train_alike_through_the_runner(tmp_path):
    """BPTT, RTRL (batch gradient) and truncated BPTT with N_t = T compute one gradient, so 8
    Adam updates from the same start end at the same test loss (float32 rounding apart)."""
    ref = _tiny("bptt", tmp=str(tmp_path))
    for rule, h in (("rtrl", None), ("truncated", 12)):
        s = _tiny(rule, h, tmp=str(tmp_path))
        assert s["steps"] == ref["steps"] == 8
        assert s["test_loss"] == pytest.approx(ref["test_loss"], rel=1e-4)
        for a, b in zip(s["history"], ref["history"]):
            assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-4)
    assert ref["sequences_seen"] == 8 * 16


def test_first_below_and_the_sequences_needed():
    hist = [{"epoch": 1, "step": 10, "val_loss": 0.2}, {"epoch": 2, "step": 20, "val_loss": 0.009},
            {"epoch": 3, "step": 30, "val_loss": 0.001}]
    assert first_below(hist, "val_loss", 0.01)["epoch"] == 2
    assert first_below(hist, "val_loss", 1e-4) is None
    assert first_below(hist, "val_loss", None) is None


def test_updates_per_batch_counts_the_online_updates():
    assert updates_per_batch(SequenceConfig(rule="bptt"), 100, "all") == 1
    assert updates_per_batch(SequenceConfig(rule="rtrl"), 100, "all") == 1
    assert updates_per_batch(SequenceConfig(rule="truncated", horizon=8), 100, "all") == 1
    assert updates_per_batch(SequenceConfig(rule="truncated_online", horizon=8), 100, "all") == 13
    assert updates_per_batch(SequenceConfig(rule="truncated_online", horizon=8), 96, "all") == 12
    assert updates_per_batch(SequenceConfig(rule="rtrl_online"), 100, "all") == 100
    assert updates_per_batch(SequenceConfig(rule="rtrl_online"), 100, "last") == 1


def test_sequence_config_refuses_bad_rules():
    with pytest.raises(ValueError, match="rule"):
        SequenceConfig(rule="backprop").validate()
    with pytest.raises(ValueError, match="horizon"):
        SequenceConfig(rule="truncated").validate()


def test_copy_recall_accuracy_counts_the_last_frames():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, size=(5, 14))
    logits = rng.normal(size=(5, 14, 10))
    w = jnp.full((5, 14), 1.0 / 70)
    got = rnn_copy.recall_metrics(4)(jnp.asarray(logits), jnp.asarray(y), w)
    want = np.mean(np.argmax(logits[:, -4:], -1) == y[:, -4:])
    assert float(got["recall_accuracy"]) == pytest.approx(want, abs=1e-6)
    assert float(got["accuracy"]) == pytest.approx(np.mean(np.argmax(logits, -1) == y), abs=1e-6)


def test_adding_script_end_to_end(tmp_path, capsys):
    res = rnn_adding.main(["--models", "gru,tanh", "--T", "10", "--train-size", "64",
                           "--val-size", "32", "--test-size", "32", "--batch-size", "32",
                           "--epochs", "1", "--hidden", "4", "--workdir", str(tmp_path),
                           "--no-progress"])
    assert set(res) == {"gru", "tanh"}
    out = capsys.readouterr().out
    assert "| gru | 4 |" in out and "| tanh | 4 |" in out
    assert "after never" not in out and ("not reached in" in out or "after" in out)
    saved = json.load(open(tmp_path / "summary.json"))
    assert saved["runs"]["gru"]["steps"] == 2 and "history" not in saved["runs"]["gru"]
    assert saved["schema"] == "jdl.summary/1" and saved["runs"]["gru"]["test"]["loss"] > 0


def test_copy_script_end_to_end(tmp_path):
    res = rnn_copy.main(["--models", "gru", "--T", "5", "--train-size", "32", "--val-size", "16",
                         "--test-size", "16", "--batch-size", "16", "--epochs", "1",
                         "--hidden", "4", "--workdir", str(tmp_path), "--no-progress"])
    s = res["gru"]
    assert s["baseline"] == pytest.approx(10 * math.log(8) / 25)
    assert set(s["test"]) >= {"loss", "recall_accuracy"}


def test_copy_recall_accuracy_counts_the_recalled_symbols_by_hand():
    # recall_accuracy: the weighted fraction of the last `length` frames whose argmax output is
    # the target symbol, counted here with a loop over examples and frames.
    rng = np.random.default_rng(0)
    outputs = rng.normal(size=(3, 7, 4)).astype(np.float32)
    targets = rng.integers(0, 4, (3, 7)).astype(np.int32)
    hit = rng.random((3, 3)) < 0.5                  # make about half the recalled frames right
    targets[:, -3:][hit] = outputs.argmax(-1)[:, -3:][hit]
    weights = rng.random((3, 7)).astype(np.float32)
    hits = total = 0.0
    for n in range(3):
        for t in range(4, 7):
            hits += weights[n, t] * (int(np.argmax(outputs[n, t])) == targets[n, t])
            total += weights[n, t]
    got = rnn_copy.recall_metrics(3)(jnp.asarray(outputs), jnp.asarray(targets),
                                     jnp.asarray(weights))
    assert float(got["recall_accuracy"]) == pytest.approx(hits / total, rel=1e-6)


def test_char_lm_script_compares_against_the_ngram(tmp_path, monkeypatch):
    from jdl.data import text
    ids = np.random.default_rng(0).integers(1, 6, size=4000).astype(np.int32)
    corpus = text.CharCorpus(text.Vocabulary(list("abcde")), ids[:3000], ids[3000:3500],
                             ids[3500:])
    monkeypatch.setattr(char_lm, "load_char_corpus", lambda: corpus)
    s = char_lm.main(["--max-order", "2", "--epochs", "1", "--hidden", "4", "--seq-len", "20",
                      "--eval-seq-len", "100",
                      "--batch-size", "16", "--workdir", str(tmp_path), "--no-progress"])
    want = [text.NGramModel(k, 6).fit(corpus.train).bits_per_char(corpus.test) for k in (1, 2)]
    assert [r["test_bpc"] for r in s["ngram"]] == pytest.approx(want)
    assert s["rnn_test_bpc"] == pytest.approx(s["rnn"]["test_loss"] / math.log(2))
    assert s["rnn_test_bpc_long_windows"] == pytest.approx(
        s["rnn"]["extra_tests"]["long_windows"]["loss"] / math.log(2))
