"""A character-level corpus that every installation has, its vocabulary and an n-gram baseline.

Corpus
    The Python standard library's own source code: the files of the fixed module list
    :data:`CORPUS_MODULES` (71 long-lived, pure-Python modules present in every CPython >= 3.10;
    none of PEP 594's removed modules, none generated at build time), read from
    ``sysconfig.get_paths()['stdlib']`` as UTF-8, newlines normalised to ``\\n``, concatenated in
    sorted order of their path relative to that folder (``_pydecimal.py`` first,
    ``zipfile.py`` last). On CPython 3.11.7 that is 3,543,141 characters (3.5 MB), 165 distinct
    ones: ASCII but for 88 characters (shlex's Latin-1 word characters, zipfile's box drawing,
    a few names and signs in comments). CPython 3.10.13 / 3.12.1 / 3.13.0 give 3.42 / 3.48 /
    3.56 million characters from the same 71 files. Nothing is downloaded, so it works offline
    wherever the project runs. The text is a fixed function of the Python version
    (a different minor or patch release ships slightly different sources): :func:`corpus_info`
    gives the files, the size and a SHA-256 to log with every experiment.

Splits
    Contiguous, by fraction (default 90 / 5 / 5 % train / validation / test), as for the
    character-level benchmarks text8 and enwik8 (Mahoney 2011; Mikolov et al. 2012): the test
    text is the corpus' last 5 %, never seen in training, not a shuffled sample of it.

Vocabulary
    Built from the training split only; id 0 is reserved for characters it does not contain
    (or holds fewer than ``min_count`` times), so validation and test text always encode.

Baseline
    :class:`NGramModel`: interpolated Kneser-Ney smoothing (Kneser & Ney 1995, in the
    interpolated form of Chen & Goodman 1998), fitted with numpy in seconds, reporting bits
    per character, the unit of character-level language modelling (Graves 2013).

References:
    R. Kneser, H. Ney (1995). Improved backing-off for m-gram language modeling. ICASSP.
    S. F. Chen, J. Goodman (1998). An empirical study of smoothing techniques for language
    modeling. Harvard TR-10-98.
    H. Ney, U. Essen, R. Kneser (1994). On structuring probabilistic dependences in stochastic
    language modelling. Computer Speech & Language 8.
    T. Mikolov et al. (2012). Subword language modeling with neural networks (text8 splits).
    A. Graves (2013). Generating sequences with recurrent neural networks. arXiv:1308.0850.
"""
from __future__ import annotations

import hashlib
import math
import os
import platform
import sysconfig
from typing import NamedTuple, Sequence

import numpy as np

CORPUS_MODULES = (
    "_pydecimal", "_pyio", "argparse", "ast", "bdb", "calendar", "codecs", "configparser",
    "contextlib", "copy", "csv", "dataclasses", "datetime", "difflib", "dis", "doctest", "enum",
    "fractions", "ftplib", "functools", "getopt", "gettext", "gzip", "heapq", "hmac", "imaplib",
    "inspect", "ipaddress", "locale", "logging", "mailbox", "mimetypes", "ntpath", "optparse",
    "os", "pathlib", "pdb", "pickle", "pickletools", "platform", "plistlib", "posixpath",
    "pprint", "pydoc", "queue", "random", "re", "sched", "selectors", "shlex", "shutil",
    "smtplib", "socket", "socketserver", "ssl", "statistics", "string", "subprocess", "tarfile",
    "tempfile", "textwrap", "threading", "tokenize", "trace", "traceback", "typing", "uuid",
    "warnings", "weakref", "webbrowser", "zipfile",
)
"""Standard-library modules whose source makes the corpus. A module is ``<name>.py`` or, for
those that became packages (re in 3.11, zipfile in 3.12, pathlib in 3.13; logging always),
``<name>/__init__.py``."""

UNK = 0
"""Vocabulary id of every character the training split does not contain."""


class CorpusNotFoundError(FileNotFoundError):
    """The standard library's sources are not on disk (e.g. a build shipping only .pyc files)."""


def stdlib_dir() -> str:
    return sysconfig.get_paths()["stdlib"]


def corpus_files(modules: Sequence[str] = CORPUS_MODULES, root: str | None = None) -> list[str]:
    """Paths of the corpus' source files, sorted by their path relative to ``root``.

    Modules absent from this Python are left out (none is, on CPython 3.10 to 3.13); if none is
    found, :class:`CorpusNotFoundError` says where it looked.
    """
    root = os.fspath(root) if root is not None else stdlib_dir()
    found = []
    for m in modules:
        for rel in (f"{m}.py", os.path.join(m, "__init__.py")):
            if os.path.isfile(os.path.join(root, rel)):
                found.append(rel)
                break
    if not found:
        raise CorpusNotFoundError(
            f"none of the {len(modules)} corpus modules ({', '.join(modules[:4])}, ...) has a .py "
            f"source in {root!r}; this Python ships without its standard library's sources. "
            f"Pass root= a folder holding them (any CPython >= 3.10 Lib/ folder works).")
    return [os.path.join(root, rel) for rel in sorted(found)]


def load_corpus(modules: Sequence[str] = CORPUS_MODULES, root: str | None = None) -> str:
    """The corpus text: the sources of ``modules`` (see :func:`corpus_files`), UTF-8, with
    ``\\r\\n`` and ``\\r`` normalised to ``\\n``, each file ending in one newline, concatenated."""
    parts = []
    for path in corpus_files(modules, root):
        with open(path, "rb") as f:
            t = f.read().decode("utf-8")
        t = t.replace("\r\n", "\n").replace("\r", "\n")
        parts.append(t if t.endswith("\n") else t + "\n")
    return "".join(parts)


def corpus_info(modules: Sequence[str] = CORPUS_MODULES, root: str | None = None) -> dict:
    """What :func:`load_corpus` returns here: files, size, distinct characters, SHA-256 of the
    UTF-8 text and the Python version, to log next to every result measured on it."""
    text = load_corpus(modules, root)
    root = root if root is not None else stdlib_dir()
    return {
        "root": root,
        "files": [os.path.relpath(p, root) for p in corpus_files(modules, root)],
        "n_chars": len(text),
        "n_distinct": len(set(text)),
        "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
        "python": platform.python_version(),  # the running Python (the sources' if root is None)
    }


def split_text(text, fractions: Sequence[float] = (0.9, 0.05, 0.05)):
    """Contiguous (train, val, test) pieces of ``text`` (a str or an id array).

    Boundaries are ``floor(cumsum(fractions) * len(text))``; the fractions must be positive
    and sum to 1 (within 1e-9).
    """
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != 3 or min(fractions) <= 0 or abs(sum(fractions) - 1.0) > 1e-9:
        raise ValueError(f"fractions must be three positive numbers summing to 1, got {fractions}")
    n = len(text)
    a = int(math.floor(fractions[0] * n))
    b = int(math.floor((fractions[0] + fractions[1]) * n))
    return text[:a], text[a:b], text[b:]


def _codepoints(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


class Vocabulary:
    """Characters <-> integer ids. Id 0 (:data:`UNK`) stands for every unknown character;
    the known characters get ids 1..len(chars) in the order given (sorted by :meth:`build`)."""

    def __init__(self, chars: Sequence[str], unk_char: str = "\ufffd"):
        chars = list(chars)
        if any(len(c) != 1 for c in chars) or len(set(chars)) != len(chars):
            raise ValueError("chars must be distinct single characters")
        self.chars = chars
        self.unk_char = unk_char
        self._to_char = np.array([unk_char] + chars)
        cps = np.array([ord(c) for c in chars], dtype=np.int64)
        self._table = np.zeros(int(cps.max(initial=0)) + 1, np.int32)
        self._table[cps] = np.arange(1, len(chars) + 1, dtype=np.int32)

    @classmethod
    def build(cls, text: str, min_count: int = 1) -> "Vocabulary":
        """Every character of ``text`` occurring at least ``min_count`` times, sorted by code point."""
        cps, counts = np.unique(_codepoints(text), return_counts=True)
        return cls([chr(int(c)) for c in cps[counts >= min_count]])

    def __len__(self) -> int:
        """Number of ids, the unknown id included: the size of a model's output layer."""
        return len(self.chars) + 1

    def encode(self, text: str) -> np.ndarray:
        """int32 ids of ``text``'s characters; unknown characters map to :data:`UNK` (0)."""
        cps = _codepoints(text).astype(np.int64)
        ids = np.zeros(len(cps), np.int32)
        inside = cps < len(self._table)
        ids[inside] = self._table[cps[inside]]
        return ids

    def decode(self, ids) -> str:
        """Text of ``ids``; :data:`UNK` becomes ``unk_char`` (U+FFFD by default)."""
        ids = np.asarray(ids)
        if ids.size and (ids.min() < 0 or ids.max() >= len(self)):
            raise ValueError(f"ids must lie in [0, {len(self)}), got range [{ids.min()}, {ids.max()}]")
        return "".join(self._to_char[ids.reshape(-1)].tolist())


class CharCorpus(NamedTuple):
    vocab: Vocabulary
    train: np.ndarray  # int32 ids
    val: np.ndarray
    test: np.ndarray


def load_char_corpus(fractions: Sequence[float] = (0.9, 0.05, 0.05), min_count: int = 1,
                     modules: Sequence[str] = CORPUS_MODULES, root: str | None = None) -> CharCorpus:
    """The corpus split contiguously into train/val/test, encoded with the training vocabulary."""
    train, val, test = split_text(load_corpus(modules, root), fractions)
    vocab = Vocabulary.build(train, min_count=min_count)
    return CharCorpus(vocab, vocab.encode(train), vocab.encode(val), vocab.encode(test))


def char_windows(ids, seq_len: int, stride: int | None = None) -> dict:
    """Next-character training windows: ``x[j] = ids[s : s + seq_len]``,
    ``y[j] = ids[s + 1 : s + seq_len + 1]`` with ``s = j * stride`` (default ``stride = seq_len``:
    non-overlapping windows, every character a target once; the tail that does not fill a window
    is dropped).

    Returns ``{'x': int32 (n, seq_len), 'y': int32 (n, seq_len)}`` with
    ``n = (len(ids) - 1 - seq_len) // stride + 1``.
    """
    ids = np.asarray(ids)
    if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"ids must be a 1-D integer array, got {ids.dtype} {ids.shape}")
    if isinstance(seq_len, bool) or not isinstance(seq_len, (int, np.integer)) or seq_len < 1:
        raise ValueError(f"seq_len must be a positive integer, got {seq_len!r}")
    stride = seq_len if stride is None else stride
    if isinstance(stride, bool) or not isinstance(stride, (int, np.integer)) or stride < 1:
        raise ValueError(f"stride must be a positive integer, got {stride!r}")
    if len(ids) < seq_len + 1:
        raise ValueError(f"{len(ids)} ids are too few for one window of seq_len={seq_len} (+1 target)")
    w = np.lib.stride_tricks.sliding_window_view(ids, seq_len + 1)[::stride]
    return {"x": np.ascontiguousarray(w[:, :-1], dtype=np.int32),
            "y": np.ascontiguousarray(w[:, 1:], dtype=np.int32)}


def _kgram_codes(ids: np.ndarray, k: int, V: int) -> np.ndarray:
    """codes[i] = sum_j ids[i + j] * V**(k - 1 - j), for every k-gram ids[i : i + k]."""
    m = len(ids) - k + 1
    if m <= 0:
        return np.zeros(0, np.int64)
    c = ids[:m].astype(np.int64)
    for j in range(1, k):
        c = c * V + ids[j:j + m]
    return c


class _Level(NamedTuple):
    types: np.ndarray    # sorted codes of the k-grams h w with count > 0
    counts: np.ndarray   # their (raw or continuation) counts
    ctx: np.ndarray      # sorted distinct contexts h (codes of k - 1 ids; 0 for k = 1)
    total: np.ndarray    # c(h) = sum_w count(h w)
    n1plus: np.ndarray   # N1+(h .) = #{w : count(h w) > 0}
    discount: float


class NGramModel:
    """Character n-gram model with interpolated Kneser-Ney smoothing (Chen & Goodman 1998, sec. 3).

    For the highest order n, with history h (the previous n - 1 characters), h' = h without
    its oldest character, c(.) the training counts and D_n the order's discount:

        p_n(w | h) = [max(c(h w) - D_n, 0) + D_n N1+(h .) p_{n-1}(w | h')] / c(h)

    where c(h) = sum_w c(h w) and N1+(h .) = #{w : c(h w) > 0}. Lower orders k < n use the same
    formula with the count replaced by the continuation count (Kneser & Ney 1995)
    c_KN(h w) = N1+(. h w), the number of distinct characters seen before h w (equivalently,
    of (k+1)-gram types ending in h w); c(h) and N1+(h .) are then taken over c_KN. A history
    never seen (c(h) = 0) passes the lower order through unchanged: p_k(w | h) = p_{k-1}(w | h').
    The recursion ends in the uniform distribution p_0(w) = 1 / V over the vocabulary, so
    every character, even one never seen in training, has positive probability, and for every
    history sum_w p_k(w | h) = 1 (the discounted mass D N1+(h .) / c(h) is exactly what the
    lower order fills).

    The discount of order k is Ney, Essen & Kneser's (1994) estimate, used by Chen & Goodman,
    D_k = n1 / (n1 + 2 n2), n_r being the number of k-grams with (continuation) count exactly r;
    it is clipped to [0.05, 0.95] (0.5 if n1 = n2 = 0) so that degenerate tiny corpora keep
    every probability positive. ``discount`` overrides it: one number for all orders, or one per
    order (index 0 for unigrams).

    The first n - 1 characters of a scored sequence have shorter histories; they are scored by
    the order their history allows (the first character by the unigram distribution p_1).
    N-grams are encoded as base-V integers in int64, so V**order must stay below 2**63
    (order <= 9 for V = 97).
    """

    def __init__(self, order: int, vocab_size: int, discount=None):
        if isinstance(order, bool) or not isinstance(order, (int, np.integer)) or order < 1:
            raise ValueError(f"order must be a positive integer, got {order!r}")
        if not isinstance(vocab_size, (int, np.integer)) or vocab_size < 1:
            raise ValueError(f"vocab_size must be a positive integer, got {vocab_size!r}")
        if int(vocab_size) ** int(order) >= 2 ** 63:
            raise ValueError(f"vocab_size**order = {vocab_size}**{order} overflows the int64 "
                             "n-gram codes; lower the order or the vocabulary")
        if discount is not None:
            d = np.broadcast_to(np.asarray(discount, np.float64), (order,))
            if np.any(d <= 0) or np.any(d >= 1):
                raise ValueError(f"discounts must lie in (0, 1), got {discount}")
            discount = [float(x) for x in d]
        self.order, self.vocab_size, self._fixed_discount = int(order), int(vocab_size), discount
        self.levels: list[_Level] | None = None

    @property
    def discounts(self) -> list[float]:
        self._check_fitted()
        return [lv.discount for lv in self.levels]

    def _check_fitted(self):
        if self.levels is None:
            raise RuntimeError("NGramModel is not fitted: call fit(train_ids) first")

    def _check_ids(self, ids, what: str) -> np.ndarray:
        ids = np.asarray(ids)
        if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
            raise ValueError(f"{what} must be a 1-D integer array, got {ids.dtype} {ids.shape}")
        if ids.size and (ids.min() < 0 or ids.max() >= self.vocab_size):
            raise ValueError(f"{what} must lie in [0, {self.vocab_size}), got range "
                             f"[{int(ids.min())}, {int(ids.max())}]")
        return ids.astype(np.int64)

    def fit(self, ids) -> "NGramModel":
        """Count every k-gram (k = 1..order) of ``ids`` and derive the smoothing tables."""
        ids = self._check_ids(ids, "training ids")
        if len(ids) < self.order:
            raise ValueError(f"{len(ids)} training ids are fewer than the order {self.order}")
        V, n = self.vocab_size, self.order
        levels: list[_Level] = [None] * n
        types, counts = np.unique(_kgram_codes(ids, n, V), return_counts=True)
        for k in range(n, 0, -1):
            if k < n:  # continuation counts: number of (k+1)-gram types ending in this k-gram
                types, counts = np.unique(levels[k].types % V ** k, return_counts=True)
            ctx, start, n1plus = np.unique(types // V, return_index=True, return_counts=True)
            total = np.add.reduceat(counts, start)
            if self._fixed_discount is not None:
                d = self._fixed_discount[k - 1]
            else:
                n1, n2 = int(np.sum(counts == 1)), int(np.sum(counts == 2))
                d = 0.5 if n1 + 2 * n2 == 0 else float(np.clip(n1 / (n1 + 2 * n2), 0.05, 0.95))
            levels[k - 1] = _Level(types, counts.astype(np.float64), ctx, total.astype(np.float64),
                                   n1plus.astype(np.float64), d)
        self.levels = levels
        return self

    def _prob(self, windows: np.ndarray, avail: np.ndarray) -> np.ndarray:
        """p(windows[:, -1] | the up to order - 1 ids before it in windows), using only the
        last ``avail`` columns of each row (1 <= avail <= order)."""
        V, n = self.vocab_size, self.order
        p = np.full(len(windows), 1.0 / V)
        code = np.zeros(len(windows), np.int64)
        for k in range(1, n + 1):
            lv = self.levels[k - 1]
            code = code + windows[:, n - k] * V ** (k - 1)  # k-gram ending at the last column
            use = avail >= k
            h = code // V
            j = np.minimum(np.searchsorted(lv.ctx, h), len(lv.ctx) - 1)
            seen = use & (lv.ctx[j] == h)
            i = np.minimum(np.searchsorted(lv.types, code), len(lv.types) - 1)
            c = np.where(lv.types[i] == code, lv.counts[i], 0.0)
            C = np.where(seen, lv.total[j], 1.0)
            N1 = np.where(seen, lv.n1plus[j], 0.0)
            d = lv.discount
            p = np.where(seen, (np.maximum(c - d, 0.0) + d * N1 * p) / C, p)
        return p

    def log2_probs(self, ids, chunk: int = 1 << 20) -> np.ndarray:
        """log2 p(ids[i] | ids[max(0, i - order + 1) : i]) for every position i."""
        self._check_fitted()
        ids = self._check_ids(ids, "ids")
        n = self.order
        padded = np.concatenate([np.zeros(n - 1, np.int64), ids])
        out = np.empty(len(ids))
        for s in range(0, len(ids), chunk):
            e = min(s + chunk, len(ids))
            w = np.lib.stride_tricks.sliding_window_view(padded[s:e + n - 1], n)
            avail = np.minimum(np.arange(s, e) + 1, n)
            out[s:e] = np.log2(self._prob(w, avail))
        return out

    def bits_per_char(self, ids) -> float:
        """Cross-entropy in bits per character, -(1/N) sum_i log2 p(ids[i] | history)."""
        lp = self.log2_probs(ids)
        if lp.size == 0:
            raise ValueError("bits_per_char needs at least one id")
        return float(-lp.mean())

    def distribution(self, context=()) -> np.ndarray:
        """p(. | context): the (vocab_size,) distribution of the next id after ``context``
        (its last order - 1 ids count; a shorter one uses the lower orders)."""
        self._check_fitted()
        ctx = self._check_ids(np.asarray(context, dtype=np.int64).reshape(-1), "context")
        n, V = self.order, self.vocab_size
        ctx = ctx[max(0, len(ctx) - (n - 1)):]
        w = np.zeros((V, n), np.int64)
        if len(ctx):
            w[:, n - 1 - len(ctx):n - 1] = ctx
        w[:, -1] = np.arange(V)
        return self._prob(w, np.full(V, len(ctx) + 1))
