"""Stand-ins for the chumpy and scipy.sparse objects in SMPL pickles.

The official SMPL pickles hold chumpy expression nodes (``chumpy.ch.Ch`` and
some ``chumpy.reordering`` / ``chumpy.ch_ops`` wrappers) and a
``scipy.sparse`` CSC ``J_regressor``. :func:`allowed_globals` is the allow-list
that :mod:`hybrik_jax.smpl.io` unpickles them with: numpy's checked array
reconstructors (:func:`hybrik_jax.safe_pickle.numpy_globals`, no object
arrays), the few builtins Python-2/3 protocol-2 pickles name, and for each
chumpy / sparse class a fresh stand-in class that merely records its pickled
state. :func:`materialize` then computes plain numpy arrays from those states
(chumpy's ``.r`` value, scipy's ``toarray()``): neither chumpy nor scipy has
to be importable, and nothing named by the file is ever called.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hybrik_jax.safe_pickle import numpy_globals

__all__ = [
  "PickledObject",
  "ChumpyObject",
  "SparseMatrix",
  "CHUMPY_CLASSES",
  "SPARSE_CLASSES",
  "allowed_globals",
  "as_numeric",
  "sparse_to_dense",
  "chumpy_value",
  "materialize",
]

# Limits guarding against corrupt or hostile files.
_MAX_DENSE_ELEMENTS = 1 << 27  # entries of a densified sparse matrix.
_MAX_CHUMPY_DEPTH = 64


# ---------------------------------------------------------------------------
# Stand-ins for chumpy / scipy.sparse objects and the pickle allow-list.


class PickledObject:
  """Base of stand-ins: records what the pickle gives the object, runs nothing.

  Subclasses are created afresh for every load (see :func:`allowed_globals`),
  so a hostile BUILD opcode that sets attributes on a stand-in class cannot
  leak into later loads.
  """

  pickled_name = "?"

  def __init__(self, *args, **kwargs):
    self._args = args
    self._kwargs = kwargs
    self._state = None

  def __setstate__(self, state):
    self._state = state

  def __repr__(self):
    return f"<stand-in for {self.pickled_name}>"


class ChumpyObject(PickledObject):
  """Stand-in for a pickled chumpy node; its state holds its terms ('x')."""


class SparseMatrix(PickledObject):
  """Stand-in for a pickled ``scipy.sparse`` CSC / CSR matrix."""

  sparse_format = "csc"


# Chumpy classes whose value can be computed from their pickled terms.
# Module paths are identical in old (Python 2) and new chumpy releases.
CHUMPY_CLASSES = (
  ("chumpy.ch", "Ch"),
  ("chumpy.reordering", "Select"),
  ("chumpy.reordering", "transpose"),
  ("chumpy.reordering", "Reshape"),
  ("chumpy.reordering", "Concatenate"),
  ("chumpy.ch_ops", "add"),
  ("chumpy.ch_ops", "subtract"),
  ("chumpy.ch_ops", "multiply"),
  ("chumpy.ch_ops", "divide"),
  ("chumpy.ch_ops", "dot"),
)

SPARSE_CLASSES = (
  ("scipy.sparse.csc", "csc_matrix", "csc"),
  ("scipy.sparse._csc", "csc_matrix", "csc"),
  ("scipy.sparse._csc", "csc_array", "csc"),
  ("scipy.sparse.csr", "csr_matrix", "csr"),
  ("scipy.sparse._csr", "csr_matrix", "csr"),
  ("scipy.sparse._csr", "csr_array", "csr"),
)


def allowed_globals(error: type[Exception]) -> dict[tuple[str, str], Any]:
  """Builds the ``(module, name) -> object`` allow-list for one SMPL load.

  Everything callable here is either an immutable numpy builtin or a fresh
  closure / class that validates its arguments; nothing else can be named by a
  pickle.

  Args:
    error: exception class raised when a call's arguments are refused (the
      loader's :class:`~hybrik_jax.smpl.io.SMPLLoadError`).

  Returns:
    numpy's checked reconstructors (numeric arrays only, see
    :func:`hybrik_jax.safe_pickle.numpy_globals`), ``_codecs.encode`` for
    latin-1 strings, ``bytes()`` without arguments, ``set``, and a new
    stand-in subclass for every entry of :data:`CHUMPY_CLASSES` and
    :data:`SPARSE_CLASSES`.
  """

  def codecs_encode(obj, encoding="utf-8", errors="strict"):
    # Python 3's protocol-2 encoding of bytes: _codecs.encode(str, 'latin1').
    if not isinstance(obj, str) or encoding.lower().replace("-", "").replace(
      "_", ""
    ) not in ("latin1", "iso88591", "l1"):
      raise error(
        f"_codecs.encode is allowed for latin-1 strings only, got "
        f"{type(obj).__name__} / {encoding!r}"
      )
    del errors  # latin-1 encodes every str code point below 256 strictly.
    return obj.encode("latin-1")

  def empty_bytes(*args):
    # Python 3's protocol < 3 encoding of b'': __builtin__.bytes().
    if args:
      raise error("bytes(...) is allowed without arguments only")
    return b""

  allowed = numpy_globals(object_arrays=False, error=error)
  allowed[("_codecs", "encode")] = codecs_encode
  allowed[("__builtin__", "set")] = set
  allowed[("__builtin__", "bytes")] = empty_bytes
  allowed[("builtins", "bytes")] = empty_bytes
  allowed[("builtins", "set")] = set
  for mod, name in CHUMPY_CLASSES:
    allowed[(mod, name)] = type(
      f"Chumpy_{name}", (ChumpyObject,), {"pickled_name": f"{mod}.{name}"}
    )
  for mod, name, fmt in SPARSE_CLASSES:
    allowed[(mod, name)] = type(
      f"Sparse_{name}",
      (SparseMatrix,),
      {"pickled_name": f"{mod}.{name}", "sparse_format": fmt},
    )
  return allowed


# ---------------------------------------------------------------------------
# Turning stand-ins into numpy arrays.


def as_numeric(value: Any, what: str) -> np.ndarray:
  array = np.asarray(value)
  if array.dtype.hasobject or not (
    np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_
  ):
    raise ValueError(
      f"{what} is not a numeric array (got "
      f"{type(value).__name__} of dtype {array.dtype})"
    )
  return array


def sparse_to_dense(obj: SparseMatrix) -> np.ndarray:
  """Densifies a pickled CSC / CSR matrix (duplicates summed, like scipy)."""
  state = obj._state
  if not isinstance(state, dict):
    raise ValueError(f"{obj.pickled_name} has no dict state")
  shape = state.get("_shape", state.get("shape"))
  missing = [k for k in ("data", "indices", "indptr") if k not in state]
  if shape is None:
    missing.append("_shape")
  if missing:
    raise ValueError(f"{obj.pickled_name} state lacks {missing}")
  shape = tuple(int(s) for s in shape)
  if len(shape) != 2 or min(shape) < 0:
    raise ValueError(f"{obj.pickled_name} has shape {shape}")
  if shape[0] * shape[1] > _MAX_DENSE_ELEMENTS:
    raise ValueError(
      f"{obj.pickled_name} of shape {shape} is too large to densify"
    )
  data = as_numeric(state["data"], "data").reshape(-1)
  indices = as_numeric(state["indices"], "indices").reshape(-1)
  indptr = as_numeric(state["indptr"], "indptr").reshape(-1)
  if obj.sparse_format == "csc":
    n_major, n_minor = shape[1], shape[0]
  else:
    n_major, n_minor = shape[0], shape[1]
  if not (
    np.issubdtype(indices.dtype, np.integer)
    and np.issubdtype(indptr.dtype, np.integer)
  ):
    raise ValueError(f"{obj.pickled_name} has non-integer indices")
  if indptr.shape != (n_major + 1,):
    raise ValueError(
      f"{obj.pickled_name} of shape {shape} has indptr of "
      f"shape {indptr.shape}, expected ({n_major + 1},)"
    )
  nnz = int(indptr[-1])
  if (
    indptr[0] != 0
    or np.any(np.diff(indptr) < 0)
    or nnz > min(indices.size, data.size)
  ):
    raise ValueError(f"{obj.pickled_name} has an inconsistent indptr")
  indices = indices[:nnz].astype(np.int64)
  if nnz and (indices.min() < 0 or indices.max() >= n_minor):
    raise ValueError(f"{obj.pickled_name} has indices outside [0, {n_minor})")
  major = np.repeat(np.arange(n_major), np.diff(indptr))
  dense = np.zeros(
    shape,
    dtype=np.result_type(data.dtype, np.float64)
    if data.dtype.kind in "biu"
    else data.dtype,
  )
  if obj.sparse_format == "csc":
    np.add.at(dense, (indices, major), data[:nnz])
  else:
    np.add.at(dense, (major, indices), data[:nnz])
  return dense


def chumpy_value(
  obj: ChumpyObject, depth: int = 0, active: set[int] | None = None
) -> np.ndarray:
  """Computes the value (chumpy's ``.r``) of a pickled chumpy node."""
  if depth > _MAX_CHUMPY_DEPTH:
    raise ValueError("chumpy expression nested too deeply")
  active = set() if active is None else active
  if id(obj) in active:
    raise ValueError(f"cyclic chumpy expression at {obj.pickled_name}")
  state = obj._state
  if not isinstance(state, dict):
    raise ValueError(
      f"{obj.pickled_name} has no dict state (got {type(state).__name__})"
    )
  active.add(id(obj))

  def term(name):
    if name not in state:
      raise ValueError(
        f"{obj.pickled_name} state lacks term '{name}' (has "
        f"{sorted(map(str, state))})"
      )
    value = state[name]
    if isinstance(value, ChumpyObject):
      return chumpy_value(value, depth + 1, active)
    if isinstance(value, SparseMatrix):
      return sparse_to_dense(value)
    return as_numeric(value, f"{obj.pickled_name} term '{name}'")

  name = obj.pickled_name.rsplit(".", 1)[-1]
  if name == "Ch":
    result = term("x")
  elif name == "Select":
    idxs = term("idxs")
    if not np.issubdtype(idxs.dtype, np.integer):
      raise ValueError("Select.idxs is not an integer array")
    result = term("a").ravel()[idxs].copy()
    if "preferred_shape" in state:
      result = result.reshape(tuple(int(s) for s in state["preferred_shape"]))
  elif name == "transpose":
    axes = state.get("axes")
    result = np.transpose(
      term("a"), None if axes is None else tuple(int(a) for a in axes)
    )
  elif name == "Reshape":
    shape = state.get("newshape")
    shape = (
      (int(shape),) if np.ndim(shape) == 0 else tuple(int(s) for s in shape)
    )
    result = term("a").reshape(shape)
  elif name == "Concatenate":
    names = state.get("dterms")
    if not isinstance(names, (list, tuple)) or not names:
      raise ValueError("Concatenate has no 'dterms' list")
    result = np.concatenate(
      [term(str(n)) for n in names], axis=int(state.get("axis", 0))
    )
  elif name == "add":
    result = term("a") + term("b")
  elif name == "subtract":
    result = term("a") - term("b")
  elif name == "multiply":
    result = term("a") * term("b")
  elif name == "divide":
    result = term("x1") / term("x2")
  elif name == "dot":
    result = term("a").dot(term("b"))
  else:  # pragma: no cover - the allow-list holds only the classes above.
    raise ValueError(f"unsupported chumpy class {obj.pickled_name}")
  active.discard(id(obj))
  return np.asarray(result)


def materialize(value: Any) -> Any:
  """Replaces a chumpy / sparse stand-in by its numpy value; else returns it.

  Raises:
    Exception: any error (ValueError for an inconsistent state, numpy's own
      errors for incompatible terms) means the object is corrupt; the caller
      names the file and key.
  """
  if isinstance(value, ChumpyObject):
    return chumpy_value(value)
  if isinstance(value, SparseMatrix):
    return sparse_to_dense(value)
  return value
