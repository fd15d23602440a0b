"""Reading PyTorch checkpoint files (``torch.save`` output) into numpy arrays, without torch.

``torch.save(obj, f)`` writes a pickle whose tensors are references to raw storages kept
beside it. Two layouts exist:

- the zip layout (torch >= 1.6, the default): a zip archive ``<name>/data.pkl`` (the pickle),
  ``<name>/data/<key>`` (one file per storage, raw bytes in the ``<name>/byteorder`` order,
  little-endian when that file is absent) and ``<name>/version``;
- the legacy layout (``_use_new_zipfile_serialization=False``, and files from torch < 1.6):
  five concatenated pieces: the pickled magic number 0x1950a86a20f9469cfc6c, the pickled
  protocol version 1001, a pickled dict of system information, the pickled object, a pickled
  list of storage keys, then for each key an int64 element count followed by the raw bytes.

A tensor is pickled as a call ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride,
...)``, i.e. the strided view

    tensor[i_0, ..., i_{n-1}] = storage[offset + sum_k i_k stride_k]

(strides in elements), which :func:`_rebuild_tensor` rebuilds with
``numpy.lib.stride_tricks.as_strided`` and copies. The unpickler below is restricted: it builds
only containers from the standard library, storages of the known dtypes and tensors/parameters;
any other global in the pickle (arbitrary code, a pickled ``nn.Module``) is refused with an error
naming it, so a file that is not a plain state dict cannot run code here.
"""
from __future__ import annotations

import collections
import io
import os
import pickle
import struct
import zipfile
from typing import Any, Mapping

import numpy as np

LEGACY_MAGIC = 0x1950a86a20f9469cfc6c
LEGACY_PROTOCOL = 1001


def _bfloat16():
    import ml_dtypes  # shipped with jax
    return np.dtype(ml_dtypes.bfloat16)


# torch storage class name -> numpy dtype (bfloat16 resolved lazily, from ml_dtypes)
STORAGE_DTYPES = {
    "DoubleStorage": np.float64, "FloatStorage": np.float32, "HalfStorage": np.float16,
    "BFloat16Storage": "bfloat16", "LongStorage": np.int64, "IntStorage": np.int32,
    "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8,
    "BoolStorage": np.bool_, "ComplexFloatStorage": np.complex64,
    "ComplexDoubleStorage": np.complex128,
}


class TorchFileError(ValueError):
    """A file that is not a torch checkpoint this reader understands; the message says why."""


def _dtype(storage_name: str) -> np.dtype:
    d = STORAGE_DTYPES[storage_name]
    return _bfloat16() if d == "bfloat16" else np.dtype(d)


class _StorageType:
    """Stands for ``torch.<Name>Storage`` in the pickle: only its dtype is kept."""

    def __init__(self, name: str):
        self.name = name
        self.dtype = _dtype(name)


def _rebuild_tensor(storage: np.ndarray, storage_offset: int, size, stride, *_args) -> np.ndarray:
    """tensor[i] = storage[offset + sum_k i_k stride_k]; returned as a contiguous copy."""
    size, stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)
    if any(s == 0 for s in size):
        return np.zeros(size, storage.dtype)
    last = storage_offset + sum((n - 1) * s for n, s in zip(size, stride))
    if storage_offset < 0 or last >= storage.size:
        raise TorchFileError(f"tensor of size {size}, stride {stride} at offset {storage_offset} "
                             f"reaches past its storage of {storage.size} elements")
    item = storage.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(storage[storage_offset:],
                                           shape=size, strides=[s * item for s in stride])
    return np.array(view, order="C")


def _skip(*_args, **_kwargs):
    return None


def _rebuild_parameter(data, requires_grad=None, backward_hooks=None, *_args):
    return data


def _rebuild_parameter_with_state(data, requires_grad=None, backward_hooks=None, state=None):
    return data


_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "slice"): slice,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter_with_state,
}


class _Unpickler(pickle.Unpickler):
    """Unpickler that knows torch tensors and storages and nothing else outside plain data.

    ``load_storage(storage_type, key, numel)`` returns the 1-D numpy array of a storage.
    """

    def __init__(self, file, load_storage, source: str, rebuild: bool = True):
        super().__init__(file)
        self._load_storage = load_storage
        self._rebuild = rebuild
        self._source = source
        self._storages: dict[str, np.ndarray] = {}

    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            if not self._rebuild and module == "torch._utils":
                return _skip
            return _ALLOWED[(module, name)]
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        raise TorchFileError(
            f"{self._source}: the pickle refers to {module}.{name}, which this reader does not "
            f"build (it reads state dicts: containers of tensors and numbers only); save "
            f"model.state_dict() rather than the model, or load it with torch")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise TorchFileError(f"{self._source}: unknown persistent id {pid!r}")
        storage_type, key, _location, numel = pid[1:5]
        if len(pid) > 5 and pid[5] is not None:
            raise TorchFileError(f"{self._source}: storage views (legacy torch < 0.4 files) "
                                 f"are not supported")
        if not isinstance(storage_type, _StorageType):
            raise TorchFileError(f"{self._source}: storage type {storage_type!r} is unknown")
        key = str(key)
        if key not in self._storages:
            self._storages[key] = self._load_storage(storage_type.dtype, key, int(numel))
        return self._storages[key]


def _from_bytes(raw: bytes, dtype: np.dtype, numel: int, big_endian: bool, what: str):
    if len(raw) < numel * dtype.itemsize:
        raise TorchFileError(f"{what}: {len(raw)} bytes for {numel} elements of {dtype}")
    arr = np.frombuffer(raw, dtype.newbyteorder(">") if big_endian else dtype, count=numel)
    return arr.astype(dtype) if big_endian else arr


def _read_zip(path: str) -> Any:
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        pkl = [n for n in names if n.endswith("data.pkl") and n.count("/") == 1]
        if not pkl:
            raise TorchFileError(f"{path}: a zip archive without <name>/data.pkl, not a "
                                 f"torch.save file")
        root = pkl[0][:-len("data.pkl")]
        big = False
        if root + "byteorder" in names:
            big = zf.read(root + "byteorder").decode().strip() == "big"

        def load_storage(dtype, key, numel):
            name = f"{root}data/{key}"
            if name not in names:
                raise TorchFileError(f"{path}: storage {name} is missing from the archive")
            return _from_bytes(zf.read(name), dtype, numel, big, f"{path}:{name}")

        return _Unpickler(io.BytesIO(zf.read(pkl[0])), load_storage, path).load()


def _read_legacy(path: str) -> Any:
    with open(path, "rb") as f:
        def plain():
            return _Unpickler(f, _no_storage, path).load()

        if plain() != LEGACY_MAGIC:
            raise TorchFileError(f"{path}: neither a zip archive nor a legacy torch file "
                                 f"(no magic number {LEGACY_MAGIC:#x})")
        if plain() != LEGACY_PROTOCOL:
            raise TorchFileError(f"{path}: legacy torch file of an unknown protocol version")
        sys_info = plain()
        big = sys_info.get("little_endian", True) is False
        wanted: dict[str, tuple[np.dtype, int]] = {}

        def note_storage(dtype, key, numel):
            wanted[key] = (dtype, numel)
            return key                       # placeholder, replaced once the bytes are read

        _Unpickler(f, note_storage, path, rebuild=False).load()
        keys = plain()
        arrays = {}
        for key in keys:
            (count,) = struct.unpack("<q", f.read(8))
            dtype, numel = wanted[str(key)]
            arrays[str(key)] = _from_bytes(f.read(count * dtype.itemsize), dtype, count, big,
                                           f"{path}: storage {key}")
        # the pickle is small next to the storages: read it a second time with the real arrays
        f.seek(0)
        for _ in range(3):
            plain()
        return _Unpickler(f, lambda dtype, key, numel: arrays[key], path).load()


def _no_storage(*_args):
    raise TorchFileError("a storage where plain data was expected")


def read_torch_file(path: str | os.PathLike) -> Any:
    """The object ``torch.save`` wrote to ``path`` (zip or legacy layout), with every tensor
    as a numpy array (its dtype kept, bfloat16 as ml_dtypes.bfloat16)."""
    path = os.fspath(path)
    if zipfile.is_zipfile(path):
        return _read_zip(path)
    return _read_legacy(path)


def flatten_state_dict(obj: Any, source: str = "state dict") -> dict[str, np.ndarray]:
    """A flat {name: array} from a state dict, also unwrapping the usual checkpoint wrappers
    ``{'state_dict': ...}`` / ``{'model': ...}`` when that is the only tensor-holding entry."""
    if not isinstance(obj, Mapping):
        raise TorchFileError(f"{source}: expected a mapping of names to tensors, "
                             f"got {type(obj).__name__}")
    for wrapper in ("state_dict", "model", "model_state_dict"):
        if wrapper in obj and isinstance(obj[wrapper], Mapping):
            return flatten_state_dict(obj[wrapper], source)
    out = {}
    for k, v in obj.items():
        if isinstance(v, np.ndarray):
            out[str(k)] = v
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[str(k)] = np.asarray(v)
        else:
            raise TorchFileError(f"{source}: entry {k!r} is a {type(v).__name__}, not a tensor")
    return out


def load_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a state dict {name: numpy array} from a torch ``.pth``/``.pt`` file (without torch)
    or from a numpy ``.npz`` archive of the same names."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such state dict file: {path}")
    if path.endswith(".npz"):
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    return flatten_state_dict(read_torch_file(path), path)
