import math
from collections import Counter

import numpy as np
import pytest

from jdl.data import DatasetNotFoundError, fashion_mnist, write_idx
from jdl.data import text
from jdl.data.sequences import (ADDING_BASELINE_MSE, adding_problem, copy_baseline, copy_task,
                                copy_vocab_size, delayed_echo, fashion_rows, one_hot)
from jdl.data.text import (CORPUS_MODULES, UNK, CorpusNotFoundError, NGramModel, Vocabulary,
                           char_windows, corpus_files, load_char_corpus, load_corpus, split_text)


# ---------------------------------------------------------------- adding problem

@pytest.mark.parametrize("T", [2, 7, 50])
def test_adding_problem_layout_and_target(T):
    d = adding_problem(300, T, seed=1)
    x, y = d["x"], d["y"]
    assert x.shape == (300, T, 2) and x.dtype == np.float32
    assert y.shape == (300, 1) and y.dtype == np.float32
    assert np.all((x[..., 0] >= 0) & (x[..., 0] < 1))
    marker = x[..., 1]
    assert set(np.unique(marker)) <= {0.0, 1.0}
    half = T // 2
    assert np.all(marker[:, :half].sum(1) == 1) and np.all(marker[:, half:].sum(1) == 1)
    np.testing.assert_allclose(y[:, 0], (x[..., 0] * marker).sum(1), rtol=1e-6)
    np.testing.assert_array_equal(adding_problem(300, T, seed=1)["x"], x)  # same seed, same data
    assert not np.array_equal(adding_problem(300, T, seed=2)["x"], x)


def test_adding_problem_baseline_mse_is_one_sixth():
    y = adding_problem(200_000, 10, seed=0)["y"][:, 0].astype(np.float64)
    # (S - 1)^2 for S = U1 + U2 has variance E[Z^4] - (1/6)^2 = 1/15 - 1/36, Z triangular on
    # [-1, 1]: the mean of 200k draws is within 5 standard errors (~0.0022) of 1/6.
    tol = 5 * math.sqrt((1 / 15 - 1 / 36) / len(y))
    assert abs(np.mean((y - 1.0) ** 2) - ADDING_BASELINE_MSE) < tol
    assert abs(np.mean((y - y.mean()) ** 2) - 1 / 6) < tol  # the data's mean predictor
    assert abs(y.mean() - 1.0) < 5 * math.sqrt(1 / 6 / len(y))


def test_adding_problem_refuses_bad_sizes():
    with pytest.raises(ValueError, match="T must be an integer >= 2"):
        adding_problem(10, 1)
    with pytest.raises(ValueError, match="n must be"):
        adding_problem(0, 10)


# ---------------------------------------------------------------- copy task

@pytest.mark.parametrize("T,n_symbols,length", [(1, 8, 10), (30, 8, 10), (12, 3, 4)])
def test_copy_task_layout(T, n_symbols, length):
    d = copy_task(500, T, seed=3, n_symbols=n_symbols, length=length)
    x, y = d["x"], d["y"]
    L = T + 2 * length
    assert x.shape == y.shape == (500, L) and x.dtype == y.dtype == np.int32
    sym = x[:, :length]
    assert sym.min() >= 1 and sym.max() <= n_symbols
    assert set(np.unique(sym)) == set(range(1, n_symbols + 1))  # every symbol drawn somewhere
    assert np.all(x[:, length:length + T - 1] == 0)
    assert np.all(x[:, length + T - 1] == n_symbols + 1)  # the delimiter
    assert np.all(x[:, length + T:] == 0)
    assert np.all(y[:, :T + length] == 0)
    np.testing.assert_array_equal(y[:, T + length:], sym)
    assert x.max() < copy_vocab_size(n_symbols)


def test_copy_baseline_is_the_memoryless_cross_entropy():
    T, n = 40, 40_000
    d = copy_task(n, T, seed=0)
    y = d["y"]
    # The best memoryless predictor emits, at each step t, the marginal distribution of y[:, t];
    # its cross-entropy on the data is the mean over steps of the marginals' empirical entropy.
    ce = 0.0
    for t in range(y.shape[1]):
        p = np.bincount(y[:, t], minlength=copy_vocab_size()) / n
        ce -= np.mean(np.log(p[y[:, t]]))
    ce /= y.shape[1]
    assert copy_baseline(T) == pytest.approx(10 * math.log(8) / (T + 20))
    assert ce == pytest.approx(copy_baseline(T), rel=2e-3)
    assert copy_baseline(100) == pytest.approx(0.17329, abs=1e-5)  # Arjovsky et al.'s T = 100
    assert copy_baseline(12, n_symbols=3, length=4) == pytest.approx(4 * math.log(3) / 20)


def test_delayed_echo_target_is_the_input_delay_frames_back():
    d = delayed_echo(50, 12, delay=3, seed=4)
    x, y = d["x"][..., 0], d["y"][..., 0]
    assert x.shape == y.shape == (50, 12) and x.dtype == np.float32
    assert set(np.unique(x)) == {-1.0, 1.0}
    for t in range(12):   # y(t) = u(t - 3), 0 before
        np.testing.assert_array_equal(y[:, t], x[:, t - 3] if t >= 3 else 0.0)
    # predicting 0 scores (T - delay) / T
    assert np.mean(y ** 2) == (12 - 3) / 12
    np.testing.assert_array_equal(delayed_echo(50, 12, 3, seed=4)["x"], d["x"])
    with pytest.raises(ValueError, match="delay"):
        delayed_echo(5, 4, delay=4)


def test_one_hot():
    t = np.array([[0, 2], [9, 1]])
    h = one_hot(t, 10)
    assert h.shape == (2, 2, 10) and h.dtype == np.float32
    np.testing.assert_array_equal(h.argmax(-1), t)
    assert np.all(h.sum(-1) == 1)
    with pytest.raises(ValueError, match=r"\[0, 10\)"):
        one_hot(np.array([10]), 10)


# ---------------------------------------------------------------- row-by-row Fashion-MNIST

def test_fashion_rows_reads_rows_as_time_steps(tmp_path):
    rng = np.random.default_rng(0)
    imgs = {"train": rng.integers(0, 256, (6, 28, 28), dtype=np.uint8),
            "t10k": rng.integers(0, 256, (4, 28, 28), dtype=np.uint8)}
    imgs["train"][0, 0, 0], imgs["train"][0, 0, 1] = 0, 255
    labs = {"train": rng.integers(0, 10, 6, dtype=np.uint8), "t10k": rng.integers(0, 10, 4, dtype=np.uint8)}
    for split in ("train", "t10k"):
        write_idx(tmp_path / f"{split}-images-idx3-ubyte.gz", imgs[split])
        write_idx(tmp_path / f"{split}-labels-idx1-ubyte", labs[split])
    for split, stem in (("train", "train"), ("test", "t10k")):
        d = fashion_rows(split, data_dir=str(tmp_path))
        assert d["x"].shape == (len(labs[stem]), 28, 28) and d["x"].dtype == np.float32
        assert d["y"].dtype == np.int32
        np.testing.assert_array_equal(d["y"], labs[stem])
        np.testing.assert_allclose(d["x"], imgs[stem] / 255.0, rtol=1e-6)
        np.testing.assert_allclose(d["x"][1, 5], imgs[stem][1, 5] / 255.0, rtol=1e-6)  # step 5 = row 5
    d = fashion_rows("train", data_dir=str(tmp_path))
    assert d["x"][0, 0, 0] == 0.0 and d["x"][0, 0, 1] == 1.0


def test_fashion_rows_missing_data_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("JDL_FASHION_MNIST_DIR", raising=False)
    monkeypatch.setattr(fashion_mnist, "_SEARCH",
                        {"fashion_mnist": ("JDL_FASHION_MNIST_DIR", [str(tmp_path / "deb")])})
    with pytest.raises(DatasetNotFoundError, match="apt-get install dataset-fashion-mnist"):
        fashion_rows("train", data_dir=str(tmp_path / "nothing"))


# ---------------------------------------------------------------- corpus

@pytest.fixture(scope="module")
def corpus():
    return load_char_corpus()


def test_corpus_is_deterministic_and_the_documented_size():
    files = corpus_files()
    assert len(files) == len(CORPUS_MODULES)  # every module has its source on CPython >= 3.10
    rel = [f[len(text.stdlib_dir()):] for f in files]
    assert rel == sorted(rel)
    t1, t2 = load_corpus(), load_corpus()
    assert t1 == t2 and 1_000_000 < len(t1) < 5_000_000
    assert "\r" not in t1 and "def " in t1 and "class " in t1
    info = text.corpus_info()
    assert info["n_chars"] == len(t1) and info["sha256"] == text.corpus_info()["sha256"]


def test_corpus_from_another_folder(tmp_path):
    (tmp_path / "zipfile").mkdir()
    (tmp_path / "zipfile" / "__init__.py").write_text("z = 1")
    (tmp_path / "argparse.py").write_bytes(b"a = 1\r\nb = 2\r\n")
    assert load_corpus(root=str(tmp_path)) == "a = 1\nb = 2\nz = 1\n"
    with pytest.raises(CorpusNotFoundError, match="root="):
        load_corpus(root=str(tmp_path / "empty"))


def test_splits_are_contiguous_and_vocabulary_from_train(corpus):
    t = load_corpus()
    tr, va, te = split_text(t)
    assert tr + va + te == t
    assert len(va) == pytest.approx(0.05 * len(t), abs=2) and len(te) == pytest.approx(0.05 * len(t), abs=2)
    v = corpus.vocab
    assert len(v) == len(set(tr)) + 1
    np.testing.assert_array_equal(corpus.test, v.encode(te))
    assert v.decode(corpus.train[:5000]) == tr[:5000]
    assert corpus.train.min() >= 1  # every training character is known
    ids = v.encode("def \u2603(x):")
    assert ids[4] == UNK and v.decode(ids) == "def \ufffd(x):"
    with pytest.raises(ValueError, match="three positive"):
        split_text(t, (0.9, 0.1, 0.0))


def test_vocabulary_min_count():
    v = Vocabulary.build("aaabbc", min_count=2)
    assert v.chars == ["a", "b"] and len(v) == 3
    np.testing.assert_array_equal(v.encode("abcz"), [1, 2, UNK, UNK])


def test_char_windows_are_next_character_pairs():
    ids = np.arange(23, dtype=np.int32)
    d = char_windows(ids, 5)
    assert d["x"].shape == d["y"].shape == (4, 5) and d["x"].dtype == np.int32
    np.testing.assert_array_equal(d["x"][1], [5, 6, 7, 8, 9])
    np.testing.assert_array_equal(d["y"], d["x"] + 1)
    o = char_windows(ids, 5, stride=2)
    assert len(o["x"]) == (23 - 1 - 5) // 2 + 1 and o["x"][-1, -1] + 1 == o["y"][-1, -1] <= 22
    with pytest.raises(ValueError, match="too few"):
        char_windows(ids[:5], 5)


# ---------------------------------------------------------------- n-gram baseline

def _brute_force_bpc(train, test, order, V, discount=None):
    """Interpolated Kneser-Ney straight from its definition (Chen & Goodman 1998), with dicts."""
    train, test = [int(i) for i in train], [int(i) for i in test]
    grams = {k: Counter(tuple(train[i:i + k]) for i in range(len(train) - k + 1))
             for k in range(1, order + 1)}
    counts = {order: dict(grams[order])}
    for k in range(1, order):  # continuation count: distinct characters seen before the k-gram
        counts[k] = dict(Counter(g[1:] for g in grams[k + 1]))
    disc = {}
    for k in range(1, order + 1):
        if discount is not None:
            disc[k] = discount
            continue
        n1 = sum(1 for c in counts[k].values() if c == 1)
        n2 = sum(1 for c in counts[k].values() if c == 2)
        disc[k] = 0.5 if n1 + 2 * n2 == 0 else min(max(n1 / (n1 + 2 * n2), 0.05), 0.95)

    def p(k, hist, w):
        if k == 0:
            return 1.0 / V
        c = counts[k]
        C = sum(c.get(hist + (v,), 0) for v in range(V))
        if C == 0:
            return p(k - 1, hist[1:], w)
        N1 = sum(1 for v in range(V) if c.get(hist + (v,), 0) > 0)
        D = disc[k]
        return (max(c.get(hist + (w,), 0) - D, 0) + D * N1 * p(k - 1, hist[1:], w)) / C

    lp = [math.log2(p(min(i, order - 1) + 1, tuple(test[max(0, i - order + 1):i]), w))
          for i, w in enumerate(test)]
    return -sum(lp) / len(lp)


@pytest.mark.parametrize("order", [1, 2, 3, 4])
@pytest.mark.parametrize("discount", [None, 0.7])
def test_ngram_matches_brute_force_kneser_ney(order, discount):
    v = Vocabulary.build("abcdr ")
    train = v.encode("abracadabra cadabra abra bar barrac dacca")
    test = v.encode("abracadabrx dab caca bracad") # x is unknown; 'dab', 'cac' contexts unseen
    assert UNK in test
    m = NGramModel(order, len(v), discount=discount).fit(train)
    assert m.bits_per_char(test) == pytest.approx(
        _brute_force_bpc(train, test, order, len(v), discount), rel=1e-12)


@pytest.mark.parametrize("order", [1, 2, 3, 5])
def test_ngram_probabilities_sum_to_one(order):
    rng = np.random.default_rng(order)
    V = 12
    train = rng.choice(V - 1, size=3000, p=np.arange(1, V) / np.arange(1, V).sum()) + 1
    m = NGramModel(order, V).fit(train)
    contexts = [(), (0,), tuple(train[:order - 1]), tuple(train[100:110])]
    contexts += [tuple(rng.integers(0, V, size=rng.integers(0, order + 2))) for _ in range(40)]
    for ctx in contexts:
        p = m.distribution(ctx)
        assert p.shape == (V,) and np.all(p > 0)
        assert p.sum() == pytest.approx(1.0, abs=1e-12)
    ctx = tuple(train[200:200 + order - 1])  # the scorer and the distribution agree
    nxt = int(train[200 + order - 1])
    lp = m.log2_probs(np.array(ctx + (nxt,)))[-1]
    assert lp == pytest.approx(math.log2(m.distribution(ctx)[nxt]), rel=1e-12)


def test_ngram_orders_beat_the_unigram_on_held_out_text(corpus):
    bpc = [NGramModel(k, len(corpus.vocab)).fit(corpus.train).bits_per_char(corpus.test)
           for k in (1, 2, 3, 5)]
    assert all(a > b for a, b in zip(bpc, bpc[1:]))  # more context, fewer bits
    assert bpc[0] > 4.0 and bpc[-1] < bpc[0] - 2.0  # about 4.5 and 2.0 bits/char on 3.11
    m = NGramModel(5, len(corpus.vocab)).fit(corpus.train)
    for ctx in (corpus.test[:4], corpus.test[1000:1004], [UNK] * 4):
        assert m.distribution(ctx).sum() == pytest.approx(1.0, abs=1e-9)


def test_ngram_refuses_misuse():
    with pytest.raises(RuntimeError, match="fit"):
        NGramModel(2, 5).bits_per_char(np.array([1, 2]))
    with pytest.raises(ValueError, match=r"\[0, 5\)"):
        NGramModel(2, 5).fit(np.array([1, 2, 7]))
    with pytest.raises(ValueError, match="overflows"):
        NGramModel(12, 100)
    with pytest.raises(ValueError, match="fewer than the order"):
        NGramModel(4, 5).fit(np.array([1, 2]))
