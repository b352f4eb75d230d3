"""Loading SMPL body-model files into :class:`~hybrik_jax.smpl.model.SMPLModel`.

Formats read (the format is sniffed from the content, not the file name):

* Official SMPL pickles (v1.0.0 ``basicModel_*_lbs_10_207_0_v1.0.0.pkl``,
  v1.1.0 ``basicmodel_*_lbs_10_207_0_v1.1.0.pkl`` with 300 shape
  components): Python-2 protocol-2 pickles holding chumpy objects
  (``chumpy.ch.Ch`` and some ``chumpy.reordering`` / ``chumpy.ch_ops``
  wrappers) and a ``scipy.sparse`` CSC ``J_regressor``.
* Plain numpy pickles such as ``SMPL_NEUTRAL.pkl`` as smplx / mmhuman3d load
  them (numpy arrays, possibly still a sparse ``J_regressor``), written by
  Python 2 or 3 with any numpy version (old and new module paths).
* Any of the above gzip-compressed (``.pkl.gz``).
* ``.npz`` archives with the pickle's key names (``v_template``,
  ``shapedirs``, ``posedirs`` [V, 3, 207], dense ``J_regressor``,
  ``weights``, ``f``, optional ``kintree_table`` and ``J_regressor_extra``
  [E, V]), read with ``allow_pickle=False``. This is what the checkpoint
  converter writes.

Pickles are read only through
:class:`hybrik_jax.safe_pickle.RestrictedUnpickler` with
``encoding='latin1'`` and the allow-list of
:func:`hybrik_jax.smpl.pickle_compat.allowed_globals`: chumpy and scipy
classes are replaced by stand-ins that merely record their pickled state, from
which :func:`hybrik_jax.smpl.pickle_compat.materialize` computes plain numpy
arrays. Neither chumpy nor scipy has to be importable, and any global not on
the allow-list (``os.system``, ``builtins.eval``, ...) is refused with
:class:`~hybrik_jax.safe_pickle.UnsafePickleError` before anything is called.

Units and layouts of the result: metres, +y up in the template;
``posedirs`` in smplx's [207, V*3] layout (see :class:`SMPLModel`).
"""

from __future__ import annotations

import gzip
import io
import os
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from etils.epath import Path

from hybrik_jax import errors, storage
from hybrik_jax.safe_pickle import RestrictedUnpickler, UnsafePickleError
from hybrik_jax.smpl import pickle_compat, tables
from hybrik_jax.smpl.model import SMPLModel
from hybrik_jax.smpl.pickle_compat import as_numeric

__all__ = [
  "SMPLLoadError",
  "UnsafePickleError",
  "GENDERS",
  "load_model",
  "load_raw_dict",
  "resolve_model_file",
  "model_file_candidates",
]

PathLike = str | os.PathLike

GENDERS = ("neutral", "male", "female")

# Official names use 'm' / 'f' / 'neutral' in basicModel file names.
_GENDER_SHORT = {"neutral": "neutral", "male": "m", "female": "f"}

# Limits guarding against corrupt or hostile files.
_MAX_DECOMPRESSED_BYTES = 2 << 30  # 2 GiB for a gunzipped pickle.

_GZIP_MAGIC = b"\x1f\x8b"
_ZIP_MAGIC = b"PK\x03\x04"


class SMPLLoadError(errors.InputError, ValueError):
  """A body-model file is missing, unreadable, or holds unexpected arrays.

  The message always names the file and, where it applies, the key and the
  shape at fault.
  """


# ---------------------------------------------------------------------------
# Locating the file.


def model_file_candidates(gender: str = "neutral") -> tuple[str, ...]:
  """File names searched in a model directory for ``gender``, in order."""
  gender = _check_gender(gender)
  upper = gender.upper()
  short = _GENDER_SHORT[gender]
  names = [f"SMPL_{upper}.npz", f"SMPL_{upper}.pkl", f"SMPL_{upper}.pkl.gz"]
  for stem in (
    f"basicModel_{short}_lbs_10_207_0_v1.0.0",
    f"basicmodel_{short}_lbs_10_207_0_v1.0.0",
    f"basicmodel_{short}_lbs_10_207_0_v1.1.0",
    f"basicModel_{short}_lbs_10_207_0_v1.1.0",
  ):
    names += [f"{stem}.pkl", f"{stem}.pkl.gz"]
  return tuple(names)


def resolve_model_file(path_or_dir: PathLike, gender: str = "neutral") -> Path:
  """Returns the model file for ``path_or_dir``.

  Args:
    path_or_dir: a model file, or a directory holding gendered model files
      under their usual names (see :func:`model_file_candidates`); a ``smpl``
      sub-directory is searched too (smplx's ``model_path`` convention).
    gender: 'neutral', 'male' or 'female' (used for directories only).

  Raises:
    SMPLLoadError: the path does not exist, or no candidate file was found in
      the directory (the message lists every path searched).
  """
  path = Path(path_or_dir).expanduser()
  if path.is_file():
    return path
  if not path.exists():
    raise SMPLLoadError(f"{path}: SMPL model path does not exist")
  if not path.is_dir():
    raise SMPLLoadError(
      f"{path}: SMPL model path is neither a file nor a directory"
    )
  names = model_file_candidates(gender)
  searched = []
  for folder in (path, path / "smpl"):
    for name in names:
      candidate = folder / name
      searched.append(str(candidate))
      if candidate.is_file():
        return candidate
  raise SMPLLoadError(
    f"{path}: no SMPL model file for gender '{gender}' found; searched:\n  "
    + "\n  ".join(searched)
  )


# ---------------------------------------------------------------------------
# Reading files.


def _read_bytes(path: Path) -> bytes:
  try:
    with storage.open_file(path, "rb") as fh:
      data = fh.read()
  except OSError as e:
    raise SMPLLoadError(f"{path}: cannot read SMPL model file ({e})") from None
  if data[:2] == _GZIP_MAGIC:
    try:
      with gzip.GzipFile(fileobj=io.BytesIO(data)) as gz:
        data = gz.read(_MAX_DECOMPRESSED_BYTES + 1)
    except Exception as e:  # noqa: BLE001 - OSError, EOFError, zlib.error.
      raise SMPLLoadError(
        f"{path}: corrupt or truncated gzip file ({type(e).__name__}: {e})"
      ) from None
    if len(data) > _MAX_DECOMPRESSED_BYTES:
      raise SMPLLoadError(
        f"{path}: decompresses to more than {_MAX_DECOMPRESSED_BYTES} bytes"
      )
  return data


def _unpickle(data: bytes, path: Path) -> dict[str, Any]:
  try:
    obj = RestrictedUnpickler(
      io.BytesIO(data),
      pickle_compat.allowed_globals(SMPLLoadError),
      source=str(path),
      encoding="latin1",
    ).load()
  except UnsafePickleError:
    raise
  except SMPLLoadError as e:
    raise SMPLLoadError(f"{path}: {e}") from None
  except Exception as e:  # noqa: BLE001 - truncated / corrupt pickle streams.
    raise SMPLLoadError(
      f"{path}: not a readable SMPL model pickle, npz or gzip file "
      f"({type(e).__name__}: {e}); the file may be truncated or corrupt"
    ) from None
  if not isinstance(obj, dict):
    raise SMPLLoadError(
      f"{path}: the pickle holds a {type(obj).__name__}, "
      "expected a dict of model arrays"
    )
  return {str(k): v for k, v in obj.items()}


def _read_npz(data: bytes, path: Path) -> dict[str, Any]:
  try:
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
      return {k: npz[k] for k in npz.files}
  except Exception as e:  # noqa: BLE001 - zip / npy format errors.
    raise SMPLLoadError(
      f"{path}: not a readable SMPL npz archive ({type(e).__name__}: {e})"
    ) from None


def _read_model_file(path: Path) -> dict[str, Any]:
  """Reads a model file into a dict; chumpy / sparse values stay stand-ins."""
  data = _read_bytes(path)
  if data[:4] == _ZIP_MAGIC:
    return _read_npz(data, path)
  return _unpickle(data, path)


def _materialize(value: Any, source: Path, key: str) -> Any:
  """Replaces a chumpy / sparse stand-in by its numpy value; else returns it."""
  try:
    return pickle_compat.materialize(value)
  except Exception as e:  # noqa: BLE001 - any failure means a corrupt file.
    raise SMPLLoadError(
      f"{source}: key '{key}': cannot read "
      f"{value.pickled_name} object ({type(e).__name__}: "
      f"{e})"
    ) from None


def load_raw_dict(
  path_or_dir: PathLike, gender: str = "neutral"
) -> dict[str, Any]:
  """Reads every entry of a model file, chumpy / sparse values as numpy.

  Values are returned as stored (float64 for the official files, ``f`` as
  uint32, ``kintree_table`` with 4294967295 for the root's parent,
  ``posedirs`` [V, 3, 207], ``J_regressor`` densified to [24, V]); strings
  and nested dicts (``pose_training_info``) are returned unchanged.

  Args:
    path_or_dir: model file or directory (see :func:`resolve_model_file`).
    gender: used when ``path_or_dir`` is a directory.

  Raises:
    SMPLLoadError: unreadable file or an entry that cannot be converted.
    UnsafePickleError: the pickle names a global outside the allow-list.
  """
  path = resolve_model_file(path_or_dir, gender)
  raw = _read_model_file(path)
  return {k: _materialize(v, path, k) for k, v in raw.items()}


# ---------------------------------------------------------------------------
# Validation and conversion to an SMPLModel.


def _get_array(raw: Mapping[str, Any], key: str, path: Path) -> np.ndarray:
  if key not in raw:
    raise SMPLLoadError(
      f"{path}: required key '{key}' is missing (keys: {sorted(raw)})"
    )
  value = _materialize(raw[key], path, key)
  try:
    array = as_numeric(value, f"key '{key}'")
  except ValueError as e:
    raise SMPLLoadError(f"{path}: {e}") from None
  return array


def _check_shape(
  array: np.ndarray,
  expected: Sequence[int | None],
  path: Path,
  key: str,
  note: str = "",
) -> None:
  ok = array.ndim == len(expected) and all(
    e is None or s == e for s, e in zip(array.shape, expected)
  )
  if not ok:
    want = "[" + ", ".join("*" if e is None else str(e) for e in expected) + "]"
    raise SMPLLoadError(
      f"{path}: key '{key}' has shape {tuple(array.shape)}, "
      f"expected {want}{note}"
    )


def _check_finite(array: np.ndarray, path: Path, key: str) -> None:
  if not np.all(np.isfinite(array)):
    raise SMPLLoadError(
      f"{path}: key '{key}' (shape {tuple(array.shape)}) "
      "holds non-finite values"
    )


def _check_gender(gender: str) -> str:
  g = str(gender).lower()
  if g not in GENDERS:
    raise ValueError(f"gender must be one of {GENDERS}, got {gender!r}")
  return g


def _resolve_dtype(dtype) -> np.dtype:
  x64 = jax.dtypes.canonicalize_dtype(jnp.float64) == np.float64
  if dtype is None:
    return np.dtype(np.float64 if x64 else np.float32)
  dt = np.dtype(dtype)
  if not jnp.issubdtype(dt, jnp.floating):
    raise ValueError(f"dtype must be a floating dtype, got {dt}")
  if dt.itemsize > 4 and not x64:
    raise ValueError(f"dtype {dt} requested but jax_enable_x64 is off")
  return dt


def _load_extra_regressor(extra, num_vertices: int, source: str) -> np.ndarray:
  if isinstance(extra, (str, os.PathLike)):
    path = Path(extra).expanduser()
    source = str(path)
    try:
      extra = np.load(path, allow_pickle=False)
    except Exception as e:  # noqa: BLE001 - missing / corrupt .npy.
      raise SMPLLoadError(
        f"{path}: cannot read extra joint regressor ({type(e).__name__}: {e})"
      ) from None
    if not isinstance(extra, np.ndarray):
      raise SMPLLoadError(
        f"{path}: extra joint regressor must be a .npy array, got an archive"
      )
  try:
    array = as_numeric(extra, "extra joint regressor")
  except ValueError as e:
    raise SMPLLoadError(f"{source}: {e}") from None
  _check_shape(
    array,
    (None, num_vertices),
    Path(source),
    "J_regressor_extra",
    f" ([E, V] with V={num_vertices} from v_template)",
  )
  _check_finite(array, Path(source), "J_regressor_extra")
  return array


def load_model(
  path_or_dir: PathLike,
  gender: str = "neutral",
  extra_regressor: None | np.ndarray | PathLike = None,
  num_betas: int = tables.NUM_BETAS,
  dtype=None,
) -> SMPLModel:
  """Loads an SMPL body model.

  Args:
    path_or_dir: a model file (.pkl, .pkl.gz or .npz; official chumpy
      pickles, Python-2 pickles, plain numpy pickles) or a directory holding
      ``SMPL_{NEUTRAL,MALE,FEMALE}.{npz,pkl,pkl.gz}`` or the official
      ``basicModel_{neutral,m,f}_lbs_10_207_0_v1.0.0.pkl`` /
      ``basicmodel_{neutral,m,f}_lbs_10_207_0_v1.1.0.pkl`` names.
    gender: 'neutral', 'male' or 'female': picks the file in a directory and
      is recorded in the model (for a file path it is recorded as given).
    extra_regressor: None, an [E, V] array, or a path to a ``.npy`` file
      (e.g. ``J_regressor_h36m.npy`` [17, V]) regressing extra joints from
      vertices. When None, an npz's ``J_regressor_extra`` entry is used if
      present.
    num_betas: number of shape components kept (the first ones; v1.1 files
      carry 300).
    dtype: floating dtype of the arrays; default float32, or float64 when
      jax x64 is enabled.

  Returns:
    :class:`SMPLModel` with v_template [V, 3] (metres, +y up), shapedirs
    [V, 3, num_betas], posedirs [207, V*3] (the file's [V, 3, 207] reshaped
    to [V*3, 207] and transposed; an already transposed [207, V*3] array is
    accepted too), J_regressor [24, V] dense, lbs_weights [V, 24],
    faces [F, 3] int32, J_regressor_extra [E, V] or None.

  Raises:
    SMPLLoadError: missing file / key, wrong shape, corrupt or truncated file;
      the message names the file, the key and the shape at fault.
    UnsafePickleError: the pickle names a global outside the allow-list
      (raised before anything from the file is executed).
    ValueError: invalid ``gender``, ``num_betas`` or ``dtype`` argument.
  """
  gender = _check_gender(gender)
  if (
    isinstance(num_betas, bool)
    or not isinstance(num_betas, (int, np.integer))
    or num_betas < 1
  ):
    raise ValueError(f"num_betas must be a positive integer, got {num_betas!r}")
  num_betas = int(num_betas)
  out_dtype = _resolve_dtype(dtype)

  path = resolve_model_file(path_or_dir, gender)
  raw = _read_model_file(path)
  nj, npb = tables.NUM_SMPL_JOINTS, tables.NUM_POSE_BASIS

  v_template = _get_array(raw, "v_template", path)
  _check_shape(v_template, (None, 3), path, "v_template")
  nv = v_template.shape[0]
  if nv < 1:
    raise SMPLLoadError(
      f"{path}: key 'v_template' has no vertices (shape {v_template.shape})"
    )
  vnote = f" (V={nv} from v_template)"

  shapedirs = _get_array(raw, "shapedirs", path)
  _check_shape(shapedirs, (nv, 3, None), path, "shapedirs", vnote)
  if shapedirs.shape[2] < num_betas:
    raise SMPLLoadError(
      f"{path}: key 'shapedirs' has shape {shapedirs.shape}: "
      f"{shapedirs.shape[2]} shape components, {num_betas} requested"
    )
  shapedirs = shapedirs[:, :, :num_betas]

  posedirs = _get_array(raw, "posedirs", path)
  if posedirs.ndim == 2 and posedirs.shape == (npb, nv * 3):
    posedirs_flat = posedirs  # [207, V*3]
  else:
    _check_shape(
      posedirs, (nv, 3, npb), path, "posedirs", f"{vnote}, or [{npb}, {nv * 3}]"
    )
    posedirs_flat = posedirs.reshape(nv * 3, npb).T  # [207, V*3]

  j_regressor = _get_array(raw, "J_regressor", path)
  _check_shape(j_regressor, (nj, nv), path, "J_regressor", vnote)

  weights = _get_array(raw, "weights", path)
  _check_shape(weights, (nv, nj), path, "weights", vnote)

  faces = _get_array(raw, "f", path)
  _check_shape(faces, (None, 3), path, "f")
  if not np.issubdtype(faces.dtype, np.integer):
    raise SMPLLoadError(
      f"{path}: key 'f' (shape {faces.shape}) has dtype "
      f"{faces.dtype}, expected integers"
    )
  if faces.size and (faces.min() < 0 or faces.max() >= nv):
    raise SMPLLoadError(
      f"{path}: key 'f' (shape {faces.shape}) has vertex indices in "
      f"[{faces.min()}, {faces.max()}], outside [0, {nv}){vnote}"
    )

  for key, array in (
    ("v_template", v_template),
    ("shapedirs", shapedirs),
    ("posedirs", posedirs),
    ("J_regressor", j_regressor),
    ("weights", weights),
  ):
    _check_finite(array, path, key)

  if "kintree_table" in raw:
    kintree = _get_array(raw, "kintree_table", path)
    _check_shape(kintree, (2, nj), path, "kintree_table")
    parents = tuple(int(p) for p in kintree[0, 1:])
    if parents != tables.SMPL_PARENTS[1:]:
      raise SMPLLoadError(
        f"{path}: key 'kintree_table' (shape {kintree.shape}) has parents "
        f"{parents}, expected SMPL's {tables.SMPL_PARENTS[1:]}"
      )

  if extra_regressor is not None:
    extra = _load_extra_regressor(extra_regressor, nv, "extra_regressor")
  elif "J_regressor_extra" in raw:
    extra = _get_array(raw, "J_regressor_extra", path)
    _check_shape(extra, (None, nv), path, "J_regressor_extra", vnote)
    _check_finite(extra, path, "J_regressor_extra")
  else:
    extra = None

  def f(x):
    return jnp.asarray(np.asarray(x, dtype=out_dtype))

  return SMPLModel(
    v_template=f(v_template),
    shapedirs=f(shapedirs),
    posedirs=f(posedirs_flat),
    J_regressor=f(j_regressor),
    lbs_weights=f(weights),
    faces=jnp.asarray(faces.astype(np.int32)),
    J_regressor_extra=None if extra is None else f(extra),
    gender=gender,
  )
