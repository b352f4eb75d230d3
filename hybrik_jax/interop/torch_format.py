"""Reads PyTorch checkpoints (``torch.save`` files) without torch.

A ``torch.save`` file (torch >= 1.6) is a zip archive whose records all sit
under one top-level folder (``archive/`` or, in newer torch, the file's stem):

* ``<prefix>/data.pkl``: a pickle (protocol 2) of the saved object. Tensors
  appear as calls to ``torch._utils._rebuild_tensor_v2(storage,
  storage_offset, size, stride, requires_grad, backward_hooks[, metadata])``;
  the ``storage`` argument is a *persistent id*, a tuple
  ``('storage', storage_type, key, location, numel)`` where ``storage_type`` is
  a global such as ``torch.FloatStorage`` (or ``torch.UntypedStorage``, then
  ``numel`` counts bytes), ``key`` names the record ``<prefix>/data/<key>``
  and ``numel`` is the storage length in elements.
* ``<prefix>/data/<key>``: the raw storage bytes, in the byte order named by
  ``<prefix>/byteorder`` (``little`` when absent).
* ``<prefix>/version``: the archive format version (an integer, ``3`` today).

The older stream format (torch < 1.6, still written with
``_use_new_zipfile_serialization=False``) is read too: see
:func:`_load_legacy`.

:func:`load_torch_checkpoint` unpickles ``data.pkl`` with
:class:`hybrik_jax.safe_pickle.RestrictedUnpickler`: the torch globals are
replaced by numpy stand-ins and every global that is not on the allow-list is
refused before anything is called. Tensors come back as C-contiguous numpy
arrays (``bfloat16`` as ``float32``), nested in the original dicts,
``OrderedDict`` s and lists.
"""

from __future__ import annotations

import _codecs
import collections
import dataclasses
import io
import os
import pickle
import zipfile
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.lib import stride_tricks

from hybrik_jax import errors, safe_pickle, storage

__all__ = ["CheckpointFormatError", "load_torch_checkpoint"]

# Highest archive `version` record written by torch 2.x for eager tensors is 3;
# the reader accepts anything up to this bound (the layout has been stable).
_MAX_ARCHIVE_VERSION = 10

# torch.save of torch < 1.6 ("legacy" format): a protocol-2 pickle of this
# magic number first (or, before that, a tar archive).
_LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
_LEGACY_MAGIC = b"\x80\x02\x8a\x0a" + _LEGACY_MAGIC_NUMBER.to_bytes(
  10, "little"
)
_LEGACY_PROTOCOL = 1001


class CheckpointFormatError(errors.InputError, ValueError):
  """The file is not a readable ``torch.save`` checkpoint."""


@dataclasses.dataclass(frozen=True)
class _StorageType:
  """Stand-in for a torch storage class (``torch.FloatStorage`` ...).

  Attributes:
    name: the class name in the pickle.
    dtype: numpy dtype of one element (little-endian); ``uint8`` for
      ``UntypedStorage`` (whose ``numel`` counts bytes).
    bfloat16: elements are bfloat16 bit patterns (stored as ``uint16``).
  """

  name: str
  dtype: np.dtype
  bfloat16: bool = False


@dataclasses.dataclass(frozen=True)
class _TorchDtype:
  """Stand-in for a ``torch.<dtype>`` global (``_rebuild_tensor_v3``)."""

  name: str
  dtype: np.dtype
  bfloat16: bool = False


_STORAGE_DTYPES = {
  "DoubleStorage": ("<f8", False),
  "FloatStorage": ("<f4", False),
  "HalfStorage": ("<f2", False),
  "BFloat16Storage": ("<u2", True),
  "LongStorage": ("<i8", False),
  "IntStorage": ("<i4", False),
  "ShortStorage": ("<i2", False),
  "CharStorage": ("i1", False),
  "ByteStorage": ("u1", False),
  "BoolStorage": ("?", False),
  "UntypedStorage": ("u1", False),
}

_TORCH_DTYPES = {
  "float64": ("<f8", False),
  "double": ("<f8", False),
  "float32": ("<f4", False),
  "float": ("<f4", False),
  "float16": ("<f2", False),
  "half": ("<f2", False),
  "bfloat16": ("<u2", True),
  "int64": ("<i8", False),
  "long": ("<i8", False),
  "int32": ("<i4", False),
  "int": ("<i4", False),
  "int16": ("<i2", False),
  "short": ("<i2", False),
  "int8": ("i1", False),
  "uint8": ("u1", False),
  "bool": ("?", False),
}


class _Storage:
  """A loaded storage: its raw little- (or big-) endian bytes."""

  def __init__(self, key: str, raw: bytes, big_endian: bool):
    self.key = key
    self._raw = raw
    self._big_endian = big_endian

  @property
  def nbytes(self) -> int:
    return len(self._raw)

  def view(self, dtype: np.dtype, count: int, offset: int = 0) -> np.ndarray:
    """Elements ``offset .. offset+count`` as a native-order 1-D array."""
    dtype = np.dtype(dtype)
    if self._big_endian:
      dtype = dtype.newbyteorder(">")
    flat = np.frombuffer(
      self._raw, dtype=dtype, count=count, offset=offset * dtype.itemsize
    )
    if not flat.dtype.isnative:
      flat = flat.astype(flat.dtype.newbyteorder("="))
    return flat


@dataclasses.dataclass(frozen=True)
class _TypedStorage:
  """What a persistent id resolves to: a storage with an element type.

  ``storage`` is None while scanning a legacy file (types only); ``offset``
  (elements) is non-zero only for the legacy format's storage views.
  """

  storage: _Storage | None
  key: str
  dtype: np.dtype
  numel: int
  bfloat16: bool
  offset: int = 0


def _bfloat16_to_float32(bits: np.ndarray) -> np.ndarray:
  """bfloat16 bit patterns (uint16) -> float32 (exact)."""
  return (bits.astype(np.uint32) << 16).view(np.float32)


class _Reader:
  """Builds the unpickler's callbacks for one file.

  Args:
    path: the checkpoint (for messages).
    fetch: ``key -> bytes`` of a storage (raises CheckpointFormatError), or
      None to only scan the pickle for storage types (legacy format, pass 1).
    describe: ``key -> str`` naming the storage's place in the file.
    big_endian: storages are big-endian.
  """

  def __init__(
    self,
    path: str,
    fetch: Callable[[str], bytes] | None,
    describe: Callable[[str], str],
    big_endian: bool = False,
  ):
    self.path = path
    self.fetch = fetch
    self.describe = describe
    self.big_endian = big_endian
    self.storages: dict[str, _Storage] = {}
    self.storage_types: dict[str, _StorageType] = {}

  def error(self, msg: str) -> CheckpointFormatError:
    return CheckpointFormatError(f"{self.path}: {msg}")

  # -- persistent ids ---------------------------------------------------------
  def persistent_load(self, pid: Any) -> _TypedStorage:
    """Resolves ``('storage', type, key, location, numel[, view])``."""
    if not isinstance(pid, tuple) or not pid:
      raise self.error(f"malformed persistent id {pid!r} in the pickle")
    typename = pid[0]
    if isinstance(typename, bytes):
      typename = typename.decode("ascii", "replace")
    if typename == "module":
      raise self.error(
        "the pickle holds a whole nn.Module (persistent id 'module'); only "
        "state_dicts and plain containers are supported: save "
        "model.state_dict() instead"
      )
    if typename != "storage" or len(pid) not in (5, 6):
      raise self.error(
        f"unsupported persistent id {pid!r} (expected ('storage', "
        "storage_type, key, location, numel))"
      )
    storage_type, key, numel = pid[1], pid[2], pid[4]
    view = pid[5] if len(pid) == 6 else None
    if isinstance(key, bytes):
      key = key.decode("ascii", "replace")
    if not isinstance(storage_type, _StorageType):
      raise self.error(
        f"persistent id names an unknown storage type "
        f"{storage_type!r} (storage {key!r})"
      )
    if not isinstance(key, str) or not isinstance(numel, int) or numel < 0:
      raise self.error(f"malformed persistent id {pid!r}")
    self.storage_types.setdefault(key, storage_type)
    offset = 0
    if view is not None:  # legacy storage view: (view_key, offset, size)
      if not (
        isinstance(view, tuple)
        and len(view) == 3
        and all(isinstance(v, int) and v >= 0 for v in view[1:])
      ):
        raise self.error(f"malformed storage view {view!r} of {key!r}")
      offset, view_numel = view[1], view[2]
      if offset + view_numel > numel:
        raise self.error(
          f"storage view {view!r} exceeds storage {key!r} of {numel} elements"
        )
      numel = view_numel
    if self.fetch is None:
      return _TypedStorage(
        None, key, storage_type.dtype, numel, storage_type.bfloat16, offset
      )
    storage = self._storage(key)
    need = (offset + numel) * storage_type.dtype.itemsize
    if storage.nbytes < need:
      raise self.error(
        f"{self.describe(key)} holds {storage.nbytes} bytes but the pickle "
        f"declares {offset + numel} x {storage_type.name} elements "
        f"({need} bytes); the file is truncated or corrupt"
      )
    return _TypedStorage(
      storage, key, storage_type.dtype, numel, storage_type.bfloat16, offset
    )

  def _storage(self, key: str) -> _Storage:
    if key not in self.storages:
      self.storages[key] = _Storage(key, self.fetch(key), self.big_endian)
    return self.storages[key]

  # -- tensor rebuild functions -----------------------------------------------
  def rebuild_tensor(
    self, storage, storage_offset, size, stride, *unused_args
  ) -> np.ndarray:
    """``_rebuild_tensor`` / ``_rebuild_tensor_v2`` -> numpy array."""
    if not isinstance(storage, _TypedStorage):
      raise self.error(
        f"tensor rebuilt from {type(storage).__name__}, "
        "expected a storage persistent id"
      )
    return self._as_array(
      storage, storage.dtype, storage.bfloat16, storage_offset, size, stride
    )

  def rebuild_tensor_v3(
    self,
    storage,
    storage_offset,
    size,
    stride,
    requires_grad,
    backward_hooks,
    dtype,
    *unused_args,
  ) -> np.ndarray:
    """``_rebuild_tensor_v3`` (dtype given explicitly) -> numpy array."""
    del requires_grad, backward_hooks
    if not isinstance(storage, _TypedStorage):
      raise self.error(
        f"tensor rebuilt from {type(storage).__name__}, "
        "expected a storage persistent id"
      )
    if not isinstance(dtype, _TorchDtype):
      raise self.error(f"unsupported tensor dtype {dtype!r}")
    return self._as_array(
      storage, dtype.dtype, dtype.bfloat16, storage_offset, size, stride
    )

  def _as_array(
    self,
    storage: _TypedStorage,
    dtype: np.dtype,
    bfloat16: bool,
    storage_offset,
    size,
    stride,
  ) -> np.ndarray | None:
    key = storage.key
    if not (
      isinstance(storage_offset, int)
      and storage_offset >= 0
      and isinstance(size, tuple)
      and isinstance(stride, tuple)
      and len(size) == len(stride)
      and all(isinstance(s, int) and s >= 0 for s in size + stride)
    ):
      raise self.error(
        f"malformed tensor metadata for storage {key!r}: offset "
        f"{storage_offset!r}, size {size!r}, stride {stride!r}"
      )
    dtype = np.dtype(dtype)
    numel = storage.numel * storage.dtype.itemsize // dtype.itemsize
    shape = tuple(size)
    if 0 in shape:
      return np.zeros(
        shape, np.float32 if bfloat16 else dtype.newbyteorder("=")
      )
    last = storage_offset + sum((n - 1) * s for n, s in zip(shape, stride))
    if last >= numel:
      raise self.error(
        f"storage {key!r} is too small for a tensor of shape {list(shape)} "
        f"(offset {storage_offset}, stride {list(stride)}): needs "
        f"{last + 1} elements, has {numel}"
      )
    if storage.storage is None:  # scanning for storage types only
      return None
    base = storage.offset * storage.dtype.itemsize // dtype.itemsize
    flat = storage.storage.view(dtype, numel, base)  # [numel]
    item = flat.dtype.itemsize
    view = stride_tricks.as_strided(
      flat[storage_offset:],
      shape=shape,
      strides=tuple(s * item for s in stride),
      writeable=False,
    )
    out = np.array(view, copy=True, order="C")
    if bfloat16:
      out = _bfloat16_to_float32(out)
    return out

  def rebuild_parameter(self, data, *unused_args):
    """``_rebuild_parameter`` / ``_rebuild_parameter_with_state``: the data."""
    return data

  # -- allow-list -------------------------------------------------------------
  def allowed_globals(self) -> dict[tuple[str, str], Any]:
    allowed: dict[tuple[str, str], Any] = {
      ("collections", "OrderedDict"): collections.OrderedDict,
      ("torch._utils", "_rebuild_tensor"): self.rebuild_tensor,
      ("torch._utils", "_rebuild_tensor_v2"): self.rebuild_tensor,
      ("torch._utils", "_rebuild_tensor_v3"): self.rebuild_tensor_v3,
      ("torch._utils", "_rebuild_parameter"): self.rebuild_parameter,
      ("torch._utils", "_rebuild_parameter_with_state"): self.rebuild_parameter,
      # Harmless values that mmcv `meta` dicts may hold.
      ("builtins", "set"): set,
      ("builtins", "frozenset"): frozenset,
      ("__builtin__", "set"): set,
      ("_codecs", "encode"): _latin1_encode,
    }
    for name, (dtype, bf16) in _STORAGE_DTYPES.items():
      stand_in = _StorageType(name, np.dtype(dtype), bf16)
      for module in ("torch", "torch.cuda", "torch.storage"):
        allowed[(module, name)] = stand_in
    for name, (dtype, bf16) in _TORCH_DTYPES.items():
      allowed[("torch", name)] = _TorchDtype(name, np.dtype(dtype), bf16)
    # numpy arrays, dtypes and scalars (e.g. values in mmcv `meta` dicts),
    # object dtypes included.
    allowed.update(safe_pickle.numpy_globals(object_arrays=True))
    return allowed


def _latin1_encode(obj: str, encoding: str = "utf-8") -> bytes:
  """``_codecs.encode`` as protocol-2 pickles use it for bytes (latin1 only)."""
  if encoding not in ("latin1", "latin-1") or not isinstance(obj, str):
    raise safe_pickle.UnsafePickleError(
      f"refusing _codecs.encode({type(obj).__name__}, {encoding!r}): only "
      "latin1 byte strings are expected in a checkpoint"
    )
  return _codecs.encode(obj, "latin1")


def _unpickle(
  reader: _Reader, stream: io.BytesIO, label: str, allowed: dict | None = None
) -> Any:
  """Restricted unpickling of one pickle in ``stream``; errors name the file.

  Args:
    reader: supplies the allow-list and persistent-id callbacks.
    stream: positioned at the pickle; left just after its STOP opcode.
    label: what is being read (for messages), e.g. ``archive/data.pkl``.
    allowed: allow-list override (``{}`` for the legacy header pickles).
  """
  unpickler = safe_pickle.RestrictedUnpickler(
    stream,
    reader.allowed_globals() if allowed is None else allowed,
    source=f"{reader.path} ({label})",
    persistent_load=reader.persistent_load,
    encoding="latin1",
  )
  try:
    return unpickler.load()
  except (safe_pickle.UnsafePickleError, CheckpointFormatError):
    raise
  except (
    pickle.UnpicklingError,
    EOFError,
    ValueError,
    TypeError,
    AttributeError,
    IndexError,
    KeyError,
    OverflowError,
    MemoryError,
  ) as e:
    raise reader.error(
      f"corrupt or truncated {label} ({type(e).__name__}: {e})"
    ) from None


def _archive_prefix(path: str, names: list[str]) -> str:
  """The common top-level folder of all records, with a trailing slash."""
  if not names:
    raise CheckpointFormatError(
      f"{path}: empty zip archive, not a torch checkpoint"
    )
  prefix = names[0].split("/", 1)[0] + "/" if "/" in names[0] else ""
  if f"{prefix}constants.pkl" in names or any(
    n.startswith(f"{prefix}code/") for n in names
  ):
    raise CheckpointFormatError(
      f"{path}: a TorchScript archive (torch.jit.save), not a torch.save "
      "checkpoint; save the model's state_dict with torch.save instead"
    )
  if f"{prefix}data.pkl" not in names:
    candidates = [n for n in names if n.endswith("data.pkl")]
    hint = f" (found {candidates[:3]})" if candidates else ""
    raise CheckpointFormatError(
      f"{path}: zip archive without '{prefix}data.pkl'{hint}; not a "
      "torch.save checkpoint"
    )
  return prefix


def _load_zip(path: str) -> Any:
  """The zip format (torch >= 1.6 default)."""
  fh = storage.open_file(path, "rb")
  try:
    zf = zipfile.ZipFile(fh)
  except (zipfile.BadZipFile, EOFError, OSError) as e:
    fh.close()
    raise CheckpointFormatError(
      f"{path}: truncated or corrupt zip archive ({e})"
    ) from None
  with fh, zf:
    names = zf.namelist()
    prefix = _archive_prefix(path, names)

    def describe(key: str) -> str:
      return f"storage record '{prefix}data/{key}'"

    def read(name: str) -> bytes:
      try:
        return zf.read(name)
      except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        raise CheckpointFormatError(
          f"{path}: cannot read record '{name}' (truncated or corrupt "
          f"archive: {e})"
        ) from None

    def fetch(key: str) -> bytes:
      name = f"{prefix}data/{key}"
      if name not in names:
        raise CheckpointFormatError(
          f"{path}: missing {describe(key)} referenced by data.pkl; the "
          "archive is incomplete"
        )
      return read(name)

    def record(name: str) -> bytes | None:
      return read(prefix + name) if prefix + name in names else None

    reader = _Reader(path, fetch, describe)
    version = record("version")
    if version is not None:
      try:
        version_int = int(version.decode("ascii").strip())
      except (UnicodeDecodeError, ValueError):
        raise reader.error(
          f"unreadable archive version {version[:20]!r}"
        ) from None
      if not 1 <= version_int <= _MAX_ARCHIVE_VERSION:
        raise reader.error(f"unsupported archive version {version_int}")
    byteorder = record("byteorder")
    if byteorder not in (None, b"little", b"big"):
      raise reader.error(f"unknown byteorder record {byteorder[:20]!r}")
    reader.big_endian = byteorder == b"big"
    return _unpickle(
      reader, io.BytesIO(record("data.pkl")), f"{prefix}data.pkl"
    )


def _load_legacy(path: str) -> Any:
  """The legacy stream format (torch < 1.6 or ``torch.save(...,
  _use_new_zipfile_serialization=False)``).

  Layout: four pickles (magic number, protocol version 1001, sys_info, the
  object with 6-tuple storage persistent ids), a pickled list of storage
  keys, then for each key in that order an int64 element count and the
  storage's bytes, both little-endian. The object pickle is read twice: once
  to learn each storage's element type (hence its byte size), and once for
  real after the storages are read.
  """
  with storage.open_file(path, "rb") as f:
    stream = io.BytesIO(f.read())
  scan = _Reader(path, None, lambda key: f"legacy storage {key!r}")
  magic = _unpickle(scan, stream, "legacy magic number", allowed={})
  if magic != _LEGACY_MAGIC_NUMBER:
    raise scan.error("not a torch checkpoint (bad legacy magic number)")
  protocol = _unpickle(scan, stream, "legacy protocol version", allowed={})
  if protocol != _LEGACY_PROTOCOL:
    raise scan.error(f"unsupported legacy protocol version {protocol!r}")
  _unpickle(scan, stream, "legacy sys_info", allowed={})
  object_start = stream.tell()
  _unpickle(scan, stream, "legacy object pickle")  # types only
  keys = _unpickle(scan, stream, "legacy storage keys", allowed={})
  if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
    raise scan.error("malformed legacy storage key list")
  raw: dict[str, bytes] = {}
  for key in keys:
    if key not in scan.storage_types:
      raise scan.error(
        f"legacy storage {key!r} is not referenced by the pickle"
      )
    header = stream.read(8)
    count = int.from_bytes(header, "little", signed=True)
    nbytes = count * scan.storage_types[key].dtype.itemsize
    data = stream.read(max(nbytes, 0))
    if len(header) < 8 or count < 0 or len(data) < nbytes:
      raise scan.error(
        f"truncated legacy checkpoint: storage {key!r} "
        f"({count} elements) is incomplete"
      )
    raw[key] = data

  def fetch(key: str) -> bytes:
    if key not in raw:
      raise scan.error(
        f"legacy storage {key!r} is missing from the file's storage list"
      )
    return raw[key]

  reader = _Reader(path, fetch, lambda key: f"legacy storage {key!r}")
  stream.seek(object_start)
  return _unpickle(reader, stream, "legacy object pickle")


def load_torch_checkpoint(path: str | os.PathLike) -> Any:
  """Loads a ``torch.save`` checkpoint into numpy, executing nothing.

  Reads the zip format (torch >= 1.6) and the legacy stream format (torch
  < 1.6, and ``_use_new_zipfile_serialization=False``, as OpenMMLab's
  ``publish_model`` scripts and old torchvision weights use); the legacy tar
  format of torch <= 0.1 is refused.

  Args:
    path: the ``.pth`` / ``.pt`` file.

  Returns:
    The saved object with every tensor replaced by a C-contiguous numpy array
    of the same shape and dtype (float16 stays float16, bfloat16 becomes
    float32, 0-d tensors are 0-d arrays). Tensors that shared a storage are
    independent copies.

  Raises:
    CheckpointFormatError: not a torch checkpoint, truncated or corrupt file,
      missing ``data.pkl`` or storage record, storage too small.
    hybrik_jax.safe_pickle.UnsafePickleError: the pickle names a global
      outside the allow-list (torch rebuild functions and storage types,
      ``collections.OrderedDict``, numpy scalars/arrays); nothing is called.
    FileNotFoundError: the file does not exist.
  """
  path = os.fspath(path)
  with storage.open_file(path, "rb") as f:
    head = f.read(512)
  if head.startswith(b"PK\x03\x04"):
    return _load_zip(path)
  if head.startswith(_LEGACY_MAGIC):
    return _load_legacy(path)
  if head[257:262] == b"ustar":
    raise CheckpointFormatError(
      f"{path}: legacy torch tar format (torch <= 0.3) not supported; "
      "re-save with torch>=1.6"
    )
  raise CheckpointFormatError(
    f"{path}: not a torch checkpoint (neither a torch.save zip archive nor "
    "a legacy torch.save stream)"
  )
