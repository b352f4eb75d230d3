"""A minimal ``torch.save`` (zip format) writer for tests, without torch.

It writes what torch 2.x writes for a nested object holding CPU tensors:
``<prefix>/data.pkl`` (pickle protocol 2; tensors as
``torch._utils._rebuild_tensor_v2(<persistent id>, offset, size, stride,
False, OrderedDict())``, persistent ids
``('storage', torch.<T>Storage, key, 'cpu', numel)``), one uncompressed
``<prefix>/data/<key>`` record per storage (keys '0', '1', ... in order of
first use), ``byteorder`` and ``version``. Used to build full-size
mmhuman3d-like checkpoints for the converter tests; checked against the real
``torch_format_sample.pth`` in tests/test_torch_format.py.
"""

from __future__ import annotations

import collections
import io
import pickle
import zipfile
from typing import Any

import numpy as np

_STORAGE_NAMES = {
  np.dtype(np.float64): "DoubleStorage",
  np.dtype(np.float32): "FloatStorage",
  np.dtype(np.float16): "HalfStorage",
  np.dtype(np.int64): "LongStorage",
  np.dtype(np.int32): "IntStorage",
  np.dtype(np.int16): "ShortStorage",
  np.dtype(np.int8): "CharStorage",
  np.dtype(np.uint8): "ByteStorage",
  np.dtype(np.bool_): "BoolStorage",
}


class Global:
  """A named global written as a GLOBAL opcode (e.g. ``os.system`` in tests)."""

  def __init__(self, module: str, name: str):
    self.module = module
    self.name = name

  def __repr__(self):
    return f"Global({self.module}.{self.name})"

  def __call__(self, *args):  # pickle requires reduce functions be callable
    raise TypeError(f"{self!r} is a placeholder, it cannot be called")


class Call:
  """Pickles as ``func(*args)`` (GLOBAL + args + REDUCE) without running it."""

  def __init__(self, func: Global, *args):
    self.func = func
    self.args = args

  def __reduce__(self):
    return (self.func, self.args)


class Storage:
  """A torch storage: a flat array (its element dtype picks the class)."""

  def __init__(self, flat: np.ndarray, storage_class: str | None = None):
    self.flat = np.ascontiguousarray(flat).reshape(-1)
    self.storage_class = storage_class or _STORAGE_NAMES[self.flat.dtype]


class StorageView:
  """Legacy-format storage view: elements ``offset .. offset+size`` of a root."""

  def __init__(self, root: Storage, offset: int, size: int):
    self.root = root
    self.offset = int(offset)
    self.size = int(size)
    self.storage_class = root.storage_class


class Tensor:
  """A tensor view ``(storage, offset, size, stride)`` in element units."""

  def __init__(self, storage: Storage, offset: int, size, stride):
    self.storage = storage
    self.offset = int(offset)
    self.size = tuple(int(s) for s in size)
    self.stride = tuple(int(s) for s in stride)

  @classmethod
  def of(cls, array: np.ndarray) -> Tensor:
    """A contiguous tensor holding a copy of ``array``."""
    array = np.asarray(array)
    strides = []
    acc = 1
    for n in reversed(array.shape):
      strides.append(acc)
      acc *= n
    return cls(Storage(array.reshape(-1)), 0, array.shape, reversed(strides))


_REBUILD = Global("torch._utils", "_rebuild_tensor_v2")


class _TorchPickler(pickle._Pickler):  # pylint: disable=protected-access
  """Protocol-2 pickler writing tensors/storages as torch does."""

  def __init__(
    self, file, storages: dict[int, tuple[str, Storage]], legacy: bool = False
  ):
    super().__init__(file, protocol=2)
    self._storages = storages
    self._globals: dict[tuple[str, str], Global] = {}
    self._legacy = legacy

  def _key(self, storage: Storage) -> str:
    if id(storage) not in self._storages:
      n = len(self._storages)
      # The legacy format keys storages by a C pointer: make string order
      # differ from first-use order, as it does in real files.
      key = (
        str(n)
        if not self._legacy
        else str((7919 * (n + 3)) % 10007 + 10 ** (n % 5))
      )
      self._storages[id(storage)] = (key, storage)
    return self._storages[id(storage)][0]

  def _global(self, module: str, name: str) -> Global:
    # One object per global, so the memo reuses it (BINGET) as torch's does.
    return self._globals.setdefault((module, name), Global(module, name))

  def persistent_id(self, obj: Any):
    if isinstance(obj, StorageView):
      assert self._legacy, "storage views exist in the legacy format only"
      root_key = self._key(obj.root)
      view_key = f"{root_key}v{obj.offset}"
      return (
        "storage",
        self._global("torch", obj.storage_class),
        root_key,
        "cpu",
        obj.root.flat.size,
        (view_key, obj.offset, obj.size),
      )
    if isinstance(obj, Storage):
      pid = (
        "storage",
        self._global("torch", obj.storage_class),
        self._key(obj),
        "cpu",
        obj.flat.size,
      )
      return pid + (None,) if self._legacy else pid
    return None

  def reducer_override(self, obj: Any):
    if isinstance(obj, Tensor):
      rebuild = self._global(_REBUILD.module, _REBUILD.name)
      return (
        rebuild,
        (
          obj.storage,
          obj.offset,
          obj.size,
          obj.stride,
          False,
          collections.OrderedDict(),
        ),
      )
    if isinstance(obj, np.ndarray):
      return self.reducer_override(Tensor.of(obj))
    return NotImplemented

  def save_global(self, obj, name=None):
    if isinstance(obj, Global):
      self.write(
        pickle.GLOBAL + obj.module.encode() + b"\n" + obj.name.encode() + b"\n"
      )
      self.memoize(obj)
      return
    super().save_global(obj, name)

  dispatch = dict(pickle._Pickler.dispatch)  # pylint: disable=protected-access
  dispatch[Global] = save_global


def dumps_data_pkl(
  obj: Any, legacy: bool = False
) -> tuple[bytes, list[tuple[str, Storage]]]:
  """Pickles ``obj`` as torch's data.pkl; returns it and the storages."""
  storages: dict[int, tuple[str, Storage]] = {}
  buf = io.BytesIO()
  _TorchPickler(buf, storages, legacy).dump(obj)
  return buf.getvalue(), list(storages.values())


LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C


def save_legacy(obj: Any, path, truncate_to: int | None = None) -> None:
  """Writes ``obj`` in torch's legacy (pre-1.6, non-zip) stream format.

  Four protocol-2 pickles (magic number, protocol 1001, sys_info, the object
  with 6-tuple persistent ids ``('storage', type, key, 'cpu', numel,
  view_or_None)``), the pickled string-sorted storage key list, then per key
  a little-endian int64 element count and the little-endian storage bytes.
  """
  body, storages = dumps_data_pkl(obj, legacy=True)
  by_key = dict(storages)
  keys = sorted(by_key)
  buf = io.BytesIO()
  pickle.dump(LEGACY_MAGIC_NUMBER, buf, protocol=2)
  pickle.dump(1001, buf, protocol=2)
  pickle.dump(
    {
      "protocol_version": 1001,
      "little_endian": True,
      "type_sizes": {"short": 2, "int": 4, "long": 8},
    },
    buf,
    protocol=2,
  )
  buf.write(body)
  pickle.dump(keys, buf, protocol=2)
  for key in keys:
    flat = by_key[key].flat
    buf.write(int(flat.size).to_bytes(8, "little", signed=True))
    buf.write(flat.astype(flat.dtype.newbyteorder("<")).tobytes())
  data = buf.getvalue()
  with open(path, "wb") as f:
    f.write(data if truncate_to is None else data[:truncate_to])


def save(
  obj: Any,
  path,
  prefix: str = "archive",
  data_pkl: bytes | None = None,
  extra_records: dict | None = None,
  skip_records: tuple[str, ...] = (),
  byteorder: str = "little",
) -> None:
  """Writes ``obj`` (numpy arrays / Tensor views as tensors) like torch.save.

  Args:
    obj: nested dicts / OrderedDicts / lists / scalars / strings with numpy
      arrays or :class:`Tensor` views.
    path: output file.
    prefix: the archive's top-level folder.
    data_pkl: write these bytes as data.pkl instead (storages from ``obj``).
    extra_records: more ``name -> bytes`` records under the prefix.
    skip_records: record names (e.g. ``'data/0'``) to leave out.
    byteorder: 'little' or 'big': storage byte order and the byteorder record.
  """
  pkl, storages = dumps_data_pkl(obj)
  records = {
    "data.pkl": pkl if data_pkl is None else data_pkl,
    "byteorder": byteorder.encode(),
  }
  order = "<" if byteorder == "little" else ">"
  for key, storage in storages:
    records[f"data/{key}"] = storage.flat.astype(
      storage.flat.dtype.newbyteorder(order)
    ).tobytes()
  records["version"] = b"3\n"
  records.update(extra_records or {})
  with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
    for name, data in records.items():
      if name not in skip_records:
        zf.writestr(f"{prefix}/{name}", data)
