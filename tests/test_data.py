import gzip
import os

import numpy as np
import pytest

from jdl.data import (DatasetNotFoundError, IDXError, batch_indices, digits, fashion_mnist,
                      fit_normalizer, padded_batches, read_idx, train_val_split, write_idx)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("gz", [False, True])
def test_idx_roundtrip(tmp_path, dtype, gz):
    a = (np.arange(2 * 3 * 4) * 7 % 100).astype(dtype).reshape(2, 3, 4)
    p = tmp_path / ("a.idx" + (".gz" if gz else ""))
    write_idx(p, a)
    b = read_idx(p)
    assert b.dtype == np.dtype(dtype) and b.shape == a.shape
    np.testing.assert_array_equal(a, b)


def test_idx_header_bytes_are_the_mnist_format(tmp_path):
    p = tmp_path / "labels"
    write_idx(p, np.array([7, 2, 1], np.uint8))
    raw = p.read_bytes()
    assert raw == bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 2, 1])  # magic 0x00000801 as in MNIST labels


def test_truncated_idx_names_the_file(tmp_path):
    p = tmp_path / "train-images-idx3-ubyte"
    write_idx(p, np.zeros((5, 4, 4), np.uint8))
    p.write_bytes(p.read_bytes()[:-7])
    with pytest.raises(IDXError, match=r"train-images-idx3-ubyte: truncated"):
        read_idx(p)


def test_overlong_idx_is_refused(tmp_path):
    p = tmp_path / "x.idx"
    write_idx(p, np.zeros((5,), np.uint8))
    p.write_bytes(p.read_bytes() + b"\x00")
    with pytest.raises(IDXError, match="longer than its header"):
        read_idx(p)


def test_wrong_magic_names_the_file(tmp_path):
    p = tmp_path / "t10k-labels-idx1-ubyte"
    p.write_bytes(b"\x12\x34\x08\x01" + b"\x00\x00\x00\x01" + b"\x05")
    with pytest.raises(IDXError, match=r"t10k-labels-idx1-ubyte: wrong magic number 0x12340801"):
        read_idx(p)


def test_truncated_gzip_names_the_file(tmp_path):
    p = tmp_path / "images.gz"
    write_idx(p, np.zeros((50, 8, 8), np.uint8))
    p.write_bytes(p.read_bytes()[:30])
    with pytest.raises(IDXError, match="images.gz"):
        read_idx(p)


def _fake_fashion(folder, n_train=20, n_test=10, gz=True):
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    ext = ".gz" if gz else ""
    for split, n in (("train", n_train), ("t10k", n_test)):
        write_idx(folder / f"{split}-images-idx3-ubyte{ext}", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(folder / f"{split}-labels-idx1-ubyte{ext}", rng.integers(0, 10, n, dtype=np.uint8))


@pytest.mark.parametrize("gz", [False, True])
def test_fashion_mnist_loads_from_any_folder(tmp_path, monkeypatch, gz):
    _fake_fashion(tmp_path, gz=gz)
    tr = fashion_mnist.load("train", data_dir=str(tmp_path))
    assert tr.images.shape == (20, 28, 28, 1) and tr.images.dtype == np.uint8
    assert tr.labels.dtype == np.int32 and tr.labels.shape == (20,)
    monkeypatch.setenv("JDL_FASHION_MNIST_DIR", str(tmp_path))
    te = fashion_mnist.load("test")
    assert te.images.shape == (10, 28, 28, 1)


def test_missing_dataset_says_where_it_looked_and_how_to_install(tmp_path, monkeypatch):
    monkeypatch.delenv("JDL_FASHION_MNIST_DIR", raising=False)
    monkeypatch.setattr(fashion_mnist, "_SEARCH", {"fashion_mnist": ("JDL_FASHION_MNIST_DIR", [str(tmp_path / "deb")])})
    with pytest.raises(DatasetNotFoundError) as e:
        fashion_mnist.load("train")
    msg = str(e.value)
    assert str(tmp_path / "deb") in msg
    assert "apt-get install dataset-fashion-mnist" in msg and "JDL_FASHION_MNIST_DIR" in msg


@pytest.mark.parametrize("how", ["argument", "environment"])
def test_a_named_data_folder_without_the_files_is_an_error_naming_it(tmp_path, monkeypatch, how):
    """An explicit folder (data_dir / --data-dir, or $JDL_FASHION_MNIST_DIR) is the only one
    looked in, even when the default folder holds the data set: missing -> error naming it."""
    _fake_fashion(tmp_path / "deb", gz=False)
    monkeypatch.setattr(fashion_mnist, "_SEARCH", {"fashion_mnist": ("JDL_FASHION_MNIST_DIR", [str(tmp_path / "deb")])})
    assert fashion_mnist.load("train").images.shape == (20, 28, 28, 1)   # the default works
    (tmp_path / "empty").mkdir()
    for folder, what in ((tmp_path / "nonexistent", "no such folder"), (tmp_path / "empty", "lacks")):
        if how == "environment":
            monkeypatch.setenv("JDL_FASHION_MNIST_DIR", str(folder))
            kw = {}
        else:
            kw = {"data_dir": str(folder)}
        with pytest.raises(DatasetNotFoundError, match=what) as e:
            fashion_mnist.load("train", **kw)
        assert str(folder) in str(e.value) and str(tmp_path / "deb") not in str(e.value)
        assert not fashion_mnist.is_available(**kw)


def test_label_file_with_wrong_count_is_refused(tmp_path):
    _fake_fashion(tmp_path, gz=False)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(19, np.uint8))
    with pytest.raises(IDXError, match="train-labels-idx1-ubyte: expected 20 labels"):
        fashion_mnist.load("train", data_dir=str(tmp_path))


def test_real_fashion_mnist():
    if not fashion_mnist.is_available():
        if os.environ.get("CI"):  # .ci/run installs it: missing there is a failure
            pytest.fail("dataset-fashion-mnist is not installed in CI")
        pytest.skip("needs dataset-fashion-mnist (apt-get install dataset-fashion-mnist)")
    tr, te = fashion_mnist.load("train"), fashion_mnist.load("test")
    assert tr.images.shape == (60000, 28, 28, 1) and te.images.shape == (10000, 28, 28, 1)
    assert np.bincount(tr.labels).tolist() == [6000] * 10
    assert np.bincount(te.labels).tolist() == [1000] * 10


def test_digits_split_is_fixed_and_complete():
    tr, te = digits.load("train"), digits.load("test")
    assert tr.images.shape[1:] == (8, 8, 1) and len(tr.images) + len(te.images) == 1797
    assert tr.images.max() == 16 and len(te.images) == 359
    np.testing.assert_array_equal(digits.load("test").labels, te.labels)


def test_normalizer_gives_zero_mean_unit_variance():
    x = np.random.default_rng(0).integers(0, 256, (200, 6, 6, 1)).astype(np.uint8)
    for per_feature in (False, True):
        n = fit_normalizer(x, per_feature=per_feature)
        z = n(x)
        assert z.dtype == np.float32
        axis = 0 if per_feature else None
        np.testing.assert_allclose(z.mean(axis=axis), 0, atol=1e-4)
        np.testing.assert_allclose(z.std(axis=axis), 1, atol=1e-3)
    const = np.full((10, 3), 5.0)
    assert np.all(np.isfinite(fit_normalizer(const, per_feature=True)(const)))


def test_validation_split_seeded_and_keras_style():
    x, y = np.arange(100)[:, None], np.arange(100)
    (a, ya), (b, yb) = train_val_split(x, y, 0.1, seed=3)
    (a2, _), (b2, _) = train_val_split(x, y, 0.1, seed=3)
    np.testing.assert_array_equal(b, b2)
    assert len(b) == 10 and len(a) == 90 and set(ya) | set(yb) == set(range(100))
    (_, _), (bk, _) = train_val_split(x, y, 0.1, seed=None)
    np.testing.assert_array_equal(bk[:, 0], np.arange(90, 100))  # Keras takes the last 10%
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        train_val_split(x, y, 1.0)


def test_batching_is_deterministic_and_a_permutation():
    b1 = batch_indices(103, 10, seed=7, epoch=2)
    np.testing.assert_array_equal(b1, batch_indices(103, 10, seed=7, epoch=2))
    assert b1.shape == (10, 10) and len(set(b1.ravel())) == 100
    assert not np.array_equal(b1, batch_indices(103, 10, seed=7, epoch=3))
    assert not np.array_equal(b1, batch_indices(103, 10, seed=8, epoch=2))
    for bad in (0, -3, 2.5):
        with pytest.raises(ValueError, match="batch size must be a positive integer"):
            batch_indices(103, bad, seed=0, epoch=0)


def test_padded_batches_cover_everything_once():
    seen = []
    for idx, mask in padded_batches(23, 10):
        assert len(idx) == 10
        seen += list(idx[mask > 0])
    assert seen == list(range(23))


def test_binarize_thresholds_intensities():
    from jdl.data import binarize
    img = np.array([[[0, 127], [128, 255]]], np.uint8)            # one 2x2 image
    np.testing.assert_array_equal(binarize(img), [[0, 0, 1, 1]])   # 127/255 < 0.5 < 128/255
    np.testing.assert_array_equal(binarize(np.array([[0.2, 0.7]]), threshold=0.6), [[0, 1]])
    assert binarize(img).dtype == np.float32


def test_load_binarized_thresholds_both_splits_and_cuts_the_training_set(tmp_path):
    from jdl.data import fashion_mnist
    rng = np.random.default_rng(1)
    imgs = {"train": rng.integers(0, 256, (5, 28, 28), dtype=np.uint8),
            "t10k": rng.integers(0, 256, (3, 28, 28), dtype=np.uint8)}
    for split in ("train", "t10k"):
        write_idx(tmp_path / f"{split}-images-idx3-ubyte", imgs[split])
        write_idx(tmp_path / f"{split}-labels-idx1-ubyte", np.zeros(len(imgs[split]), np.uint8))
    x_train, x_test = fashion_mnist.load_binarized(str(tmp_path), max_train_examples=2)
    # by hand: a pixel is on when its intensity / 255 exceeds one half, i.e. intensity >= 128
    np.testing.assert_array_equal(x_train, (imgs["train"][:2] >= 128).reshape(2, -1).astype(np.float32))
    np.testing.assert_array_equal(x_test, (imgs["t10k"] >= 128).reshape(3, -1).astype(np.float32))
    assert fashion_mnist.load_binarized(str(tmp_path))[0].shape == (5, 784)
