"""Reader for the IDX file format of MNIST and Fashion-MNIST (LeCun et al. 1998).

An IDX file is ``0x00 0x00 <type code> <ndim>`` followed by ``ndim`` big-endian uint32
dimensions and the data, row-major, big-endian. Files may be gzipped. Every deviation
(bad magic, unknown type code, truncated or over-long payload) raises :class:`IDXError`
naming the file: a wrong array is never returned silently.
"""
from __future__ import annotations

import gzip
import os
import struct

import numpy as np

_TYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


class IDXError(ValueError):
    """A malformed IDX file; the message names the file and what is wrong."""


def _read_bytes(path: str) -> bytes:
    with open(path, "rb") as f:
        head = f.read(2)
    try:
        if head == b"\x1f\x8b":
            with gzip.open(path, "rb") as f:
                return f.read()
        with open(path, "rb") as f:
            return f.read()
    except (OSError, EOFError) as e:  # truncated gzip stream, bad CRC, ...
        raise IDXError(f"{path}: cannot decompress ({e}); the file is truncated or corrupt") from e


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (raw or gzipped) into a numpy array of its native dtype."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise IDXError(f"{path}: only {len(data)} bytes, too short for an IDX header")
    zero, code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or code not in _TYPES or ndim == 0:
        raise IDXError(
            f"{path}: wrong magic number 0x{data[:4].hex()} (expected 0x0000 then a type code in "
            f"{sorted(hex(c) for c in _TYPES)} and ndim >= 1): not an IDX file")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise IDXError(f"{path}: truncated header ({len(data)} bytes, need {header})")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    dtype = _TYPES[code]
    expected = int(np.prod(shape)) * dtype.itemsize
    got = len(data) - header
    if got != expected:
        kind = "truncated" if got < expected else "longer than its header says"
        raise IDXError(f"{path}: {kind}: header shape {shape} needs {expected} data bytes, file has {got}")
    arr = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return arr.astype(dtype.newbyteorder("="), copy=True)


def write_idx(path: str | os.PathLike, array: np.ndarray, compress: bool | None = None) -> None:
    """Write ``array`` as IDX (gzipped when ``compress`` or the name ends in .gz)."""
    path = os.fspath(path)
    array = np.asarray(array)
    for code, dt in _TYPES.items():
        if dt.kind == array.dtype.kind and dt.itemsize == array.dtype.itemsize:
            break
    else:
        raise ValueError(f"dtype {array.dtype} has no IDX type code")
    payload = struct.pack(">HBB", 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    payload += np.ascontiguousarray(array, dtype=dt).tobytes()
    if compress is None:
        compress = path.endswith(".gz")
    opener = gzip.open if compress else open
    with opener(path, "wb") as f:
        f.write(payload)
