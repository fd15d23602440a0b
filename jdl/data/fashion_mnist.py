"""Fashion-MNIST (Xiao, Rasul & Vollgraf 2017) and MNIST from IDX files on disk.

Nothing is downloaded. The folder is the ``data_dir`` argument (``--data-dir`` in experiments)
when given, else the environment variable ``JDL_FASHION_MNIST_DIR`` (or ``JDL_MNIST_DIR`` for
MNIST) when set, else Debian's ``/usr/share/datasets/fashion-mnist`` (package
``dataset-fashion-mnist``). A folder named by the argument or the variable is the only one
looked in: when it lacks the files, that is an error naming it, never a silent fall-back to
another folder. Any folder holding the four standard IDX files, gzipped or not, works.
"""
from __future__ import annotations

import os
from typing import NamedTuple

import numpy as np

from jdl.data.idx import IDXError, read_idx

CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")

_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_SEARCH = {
    "fashion_mnist": ("JDL_FASHION_MNIST_DIR", ["/usr/share/datasets/fashion-mnist"]),
    "mnist": ("JDL_MNIST_DIR", ["/usr/share/datasets/mnist"]),
}
_INSTALL = {
    "fashion_mnist": "install Debian's package with `sudo apt-get install dataset-fashion-mnist`, "
                     "or point JDL_FASHION_MNIST_DIR (or --data-dir) at a folder holding "
                     "train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], "
                     "t10k-images-idx3-ubyte[.gz] and t10k-labels-idx1-ubyte[.gz]",
    "mnist": "point JDL_MNIST_DIR (or --data-dir) at a folder holding the four MNIST IDX files",
}


class DatasetNotFoundError(FileNotFoundError):
    """The dataset's files are not where jdl looked; the message lists where and how to install."""


class Split(NamedTuple):
    images: np.ndarray  # (N, 28, 28, 1) uint8
    labels: np.ndarray  # (N,) int32


def _candidates(name: str, data_dir: str | None) -> tuple[list[str], str | None]:
    """The folders to look in, and what named them when it was the user (else None)."""
    env, defaults = _SEARCH[name]
    if data_dir is not None:
        return [os.fspath(data_dir)], "data_dir (--data-dir)"
    if os.environ.get(env):
        return [os.environ[env]], f"${env}"
    return list(defaults), None


def _find(folder: str, stem: str) -> str | None:
    for suffix in ("", ".gz"):
        p = os.path.join(folder, stem + suffix)
        if os.path.exists(p):
            return p
    return None


def find_dir(name: str = "fashion_mnist", data_dir: str | None = None) -> str:
    """The first folder holding all four IDX files, or DatasetNotFoundError saying where it looked
    (and, for a folder the user named, that it does not exist or which files it lacks)."""
    looked = []
    dirs, named_by = _candidates(name, data_dir)
    stems = [s for pair in _FILES.values() for s in pair]
    for d in dirs:
        missing = [s for s in stems if not _find(d, s)]
        if not missing:
            return d
        if named_by and not os.path.isdir(d):
            raise DatasetNotFoundError(f"{named_by} {d}: no such folder. To get {name}, "
                                       f"{_INSTALL[name]}.")
        if named_by:
            raise DatasetNotFoundError(f"{named_by} {d} lacks the {name} files "
                                       f"{', '.join(missing)} (or their .gz). To get them, "
                                       f"{_INSTALL[name]}.")
        looked.append(d)
    raise DatasetNotFoundError(
        f"{name} not found; looked in: {', '.join(looked)}. To get it, {_INSTALL[name]}.")


def load(split: str = "train", name: str = "fashion_mnist", data_dir: str | None = None) -> Split:
    """Load ``split`` ('train' or 'test') as uint8 images (N, 28, 28, 1) and int32 labels."""
    if split not in _FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    folder = find_dir(name, data_dir)
    img_path, lab_path = (_find(folder, s) for s in _FILES[split])
    images = read_idx(img_path)
    labels = read_idx(lab_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise IDXError(f"{img_path}: expected uint8 images of rank 3, got {images.dtype} {images.shape}")
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise IDXError(f"{lab_path}: expected {images.shape[0]} labels, got shape {labels.shape}")
    if labels.max(initial=0) > 9:
        raise IDXError(f"{lab_path}: label {int(labels.max())} out of range 0..9")
    return Split(images[..., None], labels.astype(np.int32))


def load_binarized(data_dir: str | None = None, max_train_examples: int | None = None,
                   name: str = "fashion_mnist") -> tuple[np.ndarray, np.ndarray]:
    """Train and test images binarised at 0.5 (``jdl.data.binarize``: pixel / 255 > 0.5, float32
    0/1, one flattened row of 784 per image) for the RBM experiments, the training set cut to
    its first ``max_train_examples`` when given (None or 0: all of it)."""
    from jdl.data.normalize import binarize
    x_train = binarize(load("train", name, data_dir).images)
    x_test = binarize(load("test", name, data_dir).images)
    return (x_train[:max_train_examples] if max_train_examples else x_train), x_test


def is_available(name: str = "fashion_mnist", data_dir: str | None = None) -> bool:
    try:
        find_dir(name, data_dir)
        return True
    except DatasetNotFoundError:
        return False
