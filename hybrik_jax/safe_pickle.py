"""Allow-listed unpickling.

Pickle files (SMPL body models, PyTorch checkpoints) can name arbitrary Python
callables and run them while loading. Every loader in hybrik-jax goes through
:class:`RestrictedUnpickler`, which resolves a global only if its
``(module, name)`` pair is on an explicit allow-list and refuses everything
else *before* anything is called, with an error naming the file and the global.

The numpy globals that pickled arrays and numpy scalars name are defined once,
by :func:`numpy_globals`; each loader adds its own extra globals (torch
rebuild functions, chumpy / scipy stand-ins, ``_codecs.encode``) to them.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from hybrik_jax import errors


class UnsafePickleError(errors.InputError, pickle.UnpicklingError):
  """A pickle asked for a global that is not on the allow-list."""


class RestrictedUnpickler(pickle.Unpickler):
  """An Unpickler that resolves only allow-listed globals.

  Args:
    file: binary file object.
    allowed: mapping ``(module, name) -> object`` returned for that global.
      The object need not be the real one: loaders substitute stand-ins (e.g.
      a chumpy ``Ch`` replacement) so that optional packages are never imported.
    source: a label (usually the path) used in error messages.
    persistent_load: optional handler for persistent ids (torch storages).
    **kwargs: passed to :class:`pickle.Unpickler` (e.g. ``encoding='latin1'``).
  """

  def __init__(
    self,
    file,
    allowed: Mapping[tuple[str, str], Any],
    source: str = "<pickle>",
    persistent_load: Callable[[Any], Any] | None = None,
    **kwargs,
  ):
    super().__init__(file, **kwargs)
    self._allowed = dict(allowed)
    self._source = source
    self._persistent_load_fn = persistent_load

  def find_class(self, module: str, name: str) -> Any:
    try:
      return self._allowed[(module, name)]
    except KeyError:
      raise UnsafePickleError(
        f"{self._source}: refusing to load global '{module}.{name}': it is "
        "not on the allow-list of this loader (the file may be corrupt or "
        "malicious; nothing from it was executed)"
      ) from None

  def persistent_load(self, pid: Any) -> Any:
    if self._persistent_load_fn is None:
      raise UnsafePickleError(
        f"{self._source}: unexpected persistent id {pid!r} in pickle"
      )
    return self._persistent_load_fn(pid)


def restricted_loads(
  data: bytes,
  allowed: Mapping[tuple[str, str], Any],
  source: str = "<pickle>",
  **kwargs,
) -> Any:
  """Unpickle ``data`` resolving only the ``allowed`` globals."""
  return RestrictedUnpickler(
    io.BytesIO(data), allowed, source=source, **kwargs
  ).load()


# numpy < 2 pickles name numpy.core.*, numpy >= 2 numpy._core.*: both are read.
_MULTIARRAY_MODULES = ("numpy.core.multiarray", "numpy._core.multiarray")
_NUMERIC_MODULES = ("numpy.core.numeric", "numpy._core.numeric")


def _numpy_multiarray():
  try:
    from numpy._core import multiarray  # numpy >= 2
  except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray  # type: ignore
  return multiarray


def numpy_globals(
  *, object_arrays: bool, error: type[Exception] = UnsafePickleError
) -> dict[tuple[str, str], Any]:
  """The numpy globals that pickled arrays, dtypes and numpy scalars name.

  numpy pickles an array as ``_reconstruct(ndarray, (0,), b'b')`` followed by
  a BUILD with its (version, shape, dtype, fortran flag, data), a dtype as
  ``dtype(str, align, copy)`` + BUILD and a scalar as ``scalar(dtype,
  bytes)``. Both module paths (``numpy.core.*`` and ``numpy._core.*``) are
  allowed, so that files written by any numpy version load.

  Args:
    object_arrays: True for readers whose files hold object arrays (HumanData
      dict fields, checkpoint ``meta``): numpy's own ``_reconstruct``,
      ``scalar``, ``ndarray`` and ``dtype`` are returned unchanged, object
      dtypes included (the elements of an object array can then be only what
      the rest of the caller's allow-list admits). False for numeric-only
      files (SMPL models): every reconstructor checks its arguments before
      numpy sees them and raises ``error`` for an object dtype, an array
      subtype other than ``ndarray`` or a shape other than numpy's ``(0,)``
      placeholder, and a scalar without a byte buffer (a Python-2 ``str``
      buffer read with ``encoding='latin1'`` is taken as latin-1 bytes);
      numpy's protocol-5 array reduction ``numeric._frombuffer`` (C or F
      order; the data is copied) is allowed too. The readers of object
      arrays take ``np.save`` / ``torch.save`` payloads (protocol <= 4),
      which never name ``_frombuffer``.
    error: exception class the checks raise (``object_arrays=False`` only),
      e.g. the loader's own format error.

  Returns:
    A new ``{(module, name): object}`` dict to merge into an allow-list. The
    checking functions are new closures on every call, so a hostile BUILD
    that sets attributes on one cannot affect a later load.
  """
  multiarray = _numpy_multiarray()
  allowed: dict[tuple[str, str], Any] = {}
  if object_arrays:
    for module in _MULTIARRAY_MODULES:
      allowed[(module, "_reconstruct")] = multiarray._reconstruct
      allowed[(module, "scalar")] = multiarray.scalar
    allowed[("numpy", "ndarray")] = np.ndarray
    allowed[("numpy", "dtype")] = np.dtype
    return allowed

  np_reconstruct = multiarray._reconstruct
  np_scalar = multiarray.scalar

  def make_dtype(obj, align=False, copy=False):
    dtype = np.dtype(obj, bool(align), bool(copy))
    if dtype.hasobject:
      raise error(
        f"object dtype {dtype!r} is not allowed (numeric arrays only)"
      )
    return dtype

  def reconstruct(subtype, shape, dtype):
    # numpy pickles every array as _reconstruct(ndarray, (0,), b'b') + BUILD.
    if subtype is not np.ndarray or tuple(shape) != (0,):
      raise error(f"array reconstruction {subtype!r}, {shape!r} is not allowed")
    return np_reconstruct(np.ndarray, (0,), dtype)

  def scalar(dtype, data=None):
    if not isinstance(dtype, np.dtype) or dtype.hasobject:
      raise error(f"numpy scalar of dtype {dtype!r} is not allowed")
    if isinstance(data, str):  # a Python-2 str read with encoding='latin1'
      data = data.encode("latin-1")
    if not isinstance(data, (bytes, bytearray)):
      raise error("numpy scalar without a byte buffer is not allowed")
    return np_scalar(dtype, bytes(data))

  def frombuffer(buf, dtype, shape, order):
    # numpy's protocol-5 array reduction (pickle.dumps(..., protocol=5)).
    if not isinstance(dtype, np.dtype) or dtype.hasobject:
      raise error(f"array of dtype {dtype!r} is not allowed")
    if order not in ("C", "F"):
      raise error(f"array order {order!r} is not allowed")
    data = bytes(memoryview(buf))
    return np.frombuffer(data, dtype=dtype).reshape(shape, order=order).copy()

  for module in _MULTIARRAY_MODULES:
    allowed[(module, "_reconstruct")] = reconstruct
    allowed[(module, "scalar")] = scalar
  for module in _NUMERIC_MODULES:
    allowed[(module, "_frombuffer")] = frombuffer
  allowed[("numpy", "ndarray")] = np.ndarray
  allowed[("numpy", "dtype")] = make_dtype
  return allowed
