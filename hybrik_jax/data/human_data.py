"""Reading and writing mmhuman3d HumanData ``.npz`` files without unsafe pickle.

mmhuman3d's ``HumanData.dump`` writes a dict with ``np.savez_compressed``:
every value becomes one ``<key>.npy`` member of a zip file. Arrays and lists
of numbers/strings are stored as plain typed arrays; nested dicts (``smpl``,
``cam_param``, ``meta``) become 0-d *object* arrays whose ``.npy`` body is a
pickle. Three bookkeeping entries are stored next to the data:
``__key_strict__``, ``__data_len__`` (N) and ``__keypoints_compressed__``.

When ``__keypoints_compressed__`` is true, every array whose key contains
``keypoints`` (not ``*_mask``) and that has a ``<key>_mask`` companion of
length 190 is stored *compressed*: only the joints with mask 1 are on disk
(``[N, mask.sum(), C]``). ``HumanData.__getitem__`` zero-pads such arrays back
to the full 190-joint convention; :class:`HumanData` here does the same, and
:meth:`HumanData.keypoints` pads a single sample without materialising the
whole padded array.

:func:`load_human_data` never calls ``np.load(allow_pickle=True)``: it opens
the zip itself, parses each ``.npy`` header with ``numpy.lib.format``, reads
typed arrays straight from the bytes and unpickles object payloads through
:func:`hybrik_jax.safe_pickle.restricted_loads` with an allow-list of numpy's
array/dtype/scalar reconstructors
(:func:`hybrik_jax.safe_pickle.numpy_globals`, object arrays allowed) and
``_codecs.encode`` only. Anything else in a pickle (e.g. ``os.system``) is
refused before it is called.
"""

from __future__ import annotations

import _codecs
import math
import os
import zipfile
import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.lib import format as npy_format

from hybrik_jax import errors, storage
from hybrik_jax.safe_pickle import (
  UnsafePickleError,
  numpy_globals,
  restricted_loads,
)

NUM_JOINTS = 190

_ATTRIBUTE_KEYS = ("__key_strict__", "__data_len__", "__keypoints_compressed__")


class HumanDataError(errors.InputError, ValueError):
  """A HumanData file is unreadable or has a field of the wrong form.

  Attributes:
    path: the file at fault.
    field: the key (``smpl.thetas`` for a sub-key) at fault, or ``<file>``.
  """

  def __init__(self, path: Any, field: str, message: str):
    self.path = str(path)
    self.field = field
    super().__init__(f"{self.path}: field '{field}': {message}")


# The globals an object-array payload written by numpy may name: numpy's
# array / dtype / scalar reconstructors (object arrays included) and the
# _codecs.encode that protocol-2 pickles use for bytes.
_ALLOWED_GLOBALS = {
  **numpy_globals(object_arrays=True),
  ("_codecs", "encode"): _codecs.encode,
}


def _is_keypoints_key(key: str, value: Any) -> bool:
  """Mirrors HumanData: arrays whose key contains 'keypoints', not masks."""
  return (
    isinstance(value, np.ndarray) and "keypoints" in key and "_mask" not in key
  )


def _pad_keypoints(compressed: np.ndarray, mask: np.ndarray) -> np.ndarray:
  """Zero-pads ``[..., K, C]`` (K = mask.sum()) to ``[..., 190, C]``."""
  full = np.zeros(
    compressed.shape[:-2] + (mask.shape[0], compressed.shape[-1]),
    dtype=compressed.dtype,
  )
  full[..., np.flatnonzero(mask == 1), :] = compressed
  return full


class HumanData(dict):
  """A HumanData file's content, as mmhuman3d's ``HumanData.load`` makes it.

  The dict holds the *stored* values (keypoints possibly compressed);
  ``hd[key]`` zero-pads compressed keypoints back to 190 joints exactly like
  mmhuman3d's ``HumanData.__getitem__`` (``dict.get``/``items`` return the raw
  values). ``image_path`` is a ``list[str]``; a 4-column ``bbox_xywh`` gets a
  5th column of ones, as in ``HumanData.load``.

  Attributes:
    path: the file it came from ('' if built in memory).
    data_len: N, the number of samples.
    keypoints_compressed: whether keypoints are stored mask-compressed.
    key_strict: the stored ``__key_strict__`` flag (informational).
  """

  def __init__(
    self,
    values: Mapping[str, Any] = (),
    *,
    path: str = "",
    data_len: int = -1,
    keypoints_compressed: bool = False,
    key_strict: bool = False,
  ):
    super().__init__(values)
    self.path = path
    self.data_len = int(data_len)
    self.keypoints_compressed = bool(keypoints_compressed)
    self.key_strict = bool(key_strict)

  def _mask_for(self, key: str) -> np.ndarray | None:
    value = dict.get(self, key)
    if not (self.keypoints_compressed and _is_keypoints_key(key, value)):
      return None
    mask = dict.get(self, f"{key}_mask")
    return None if mask is None else np.asarray(mask)

  def __getitem__(self, key: str) -> Any:
    value = dict.__getitem__(self, key)
    mask = self._mask_for(key)
    return value if mask is None else _pad_keypoints(value, mask)

  def get_raw_value(self, key: str) -> Any:
    """The value as stored (no zero padding)."""
    return dict.__getitem__(self, key)

  def keypoints(self, key: str, index: Any = slice(None)) -> np.ndarray:
    """Full 190-joint keypoints of ``key`` for ``index`` (int, slice, array).

    Pads only the selected samples, so per-sample access to a large file
    stays cheap. Returns ``[190, C]`` for an int index, else ``[n, 190, C]``,
    in the stored dtype.
    """
    raw = dict.__getitem__(self, key)[index]
    mask = self._mask_for(key)
    return raw if mask is None else _pad_keypoints(raw, mask)


# ----------------------------------------------------------------------------
# Reading.
# ----------------------------------------------------------------------------


def _read_npy_member(
  zf: zipfile.ZipFile, info: zipfile.ZipInfo, path: str, key: str
) -> np.ndarray:
  """Reads one ``.npy`` member; object payloads via the restricted unpickler."""
  with zf.open(info) as fp:
    try:
      version = npy_format.read_magic(fp)
    except ValueError as e:
      raise HumanDataError(path, key, f"not a .npy array ({e})") from None
    if version == (1, 0):
      shape, fortran_order, dtype = npy_format.read_array_header_1_0(fp)
    elif version == (2, 0):
      shape, fortran_order, dtype = npy_format.read_array_header_2_0(fp)
    else:
      raise HumanDataError(path, key, f"unsupported .npy version {version}")
    if dtype.hasobject:
      payload = fp.read()
      try:
        array = restricted_loads(
          payload, _ALLOWED_GLOBALS, source=f"{path}:{key}", encoding="latin1"
        )
      except UnsafePickleError as e:
        raise HumanDataError(path, key, str(e)) from None
      except Exception as e:  # malformed pickle: any unpickling error
        raise HumanDataError(
          path,
          key,
          f"object payload is not a valid numpy pickle "
          f"({type(e).__name__}: {e})",
        ) from None
      if not isinstance(array, np.ndarray) or array.shape != tuple(shape):
        raise HumanDataError(
          path,
          key,
          f"object payload does not hold an array of the header "
          f"shape {tuple(shape)}",
        )
      return array
    count = math.prod(shape)
    array = np.empty(count, dtype=dtype)
    nbytes = count * dtype.itemsize
    if nbytes:
      buf = array.view(np.uint8)
      got = fp.readinto(buf)
      if got != nbytes:
        raise HumanDataError(
          path,
          key,
          f"array data truncated: header promises {nbytes} bytes "
          f"of {dtype} {tuple(shape)}, found {got}",
        )
    if fortran_order:
      return array.reshape(shape[::-1]).transpose()
    return array.reshape(shape)


def _read_npz(path: str) -> dict[str, np.ndarray]:
  fh = None
  try:
    fh = storage.open_file(path, "rb")
    zf = zipfile.ZipFile(fh)
  except FileNotFoundError:
    raise
  except (zipfile.BadZipFile, OSError, EOFError) as e:
    if fh is not None:
      fh.close()
    raise HumanDataError(
      path, "<file>", f"not a readable npz/zip file ({e})"
    ) from None
  out = {}
  with fh, zf:
    for info in zf.infolist():
      if not info.filename.endswith(".npy"):
        raise HumanDataError(
          path, info.filename, "unexpected non-.npy member in a HumanData npz"
        )
      key = info.filename[: -len(".npy")]
      try:
        out[key] = _read_npy_member(zf, info, path, key)
      except HumanDataError:
        raise
      except (
        zipfile.BadZipFile,
        zlib.error,
        EOFError,
        OSError,
        ValueError,
      ) as e:
        raise HumanDataError(
          path, key, f"corrupt or truncated member ({e})"
        ) from None
  return out


def load_human_data(path: str | os.PathLike) -> HumanData:
  """Loads an npz written by mmhuman3d's ``HumanData.dump`` (or ours).

  Args:
    path: the ``.npz`` file.

  Returns:
    A :class:`HumanData`: values as ``HumanData.load`` leaves them (0-d
    arrays unwrapped to Python objects/dicts, ``image_path`` a list of str,
    ``bbox_xywh`` with 5 columns), keypoints still compressed on the inside
    but zero-padded to 190 joints by ``hd[key]`` / ``hd.keypoints(key, i)``.

  Raises:
    HumanDataError: unreadable/truncated file, a refused or malformed pickle
      payload, or a field whose shape is inconsistent (naming file and field).
  """
  path = os.fspath(path)
  raw = _read_npz(path)
  attrs = {
    "__key_strict__": False,
    "__data_len__": -1,
    "__keypoints_compressed__": False,
  }
  values: dict[str, Any] = {}
  for key, value in raw.items():
    if isinstance(value, np.ndarray) and value.ndim == 0:
      value = value.item()  # value was not an ndarray before dump
    if value is None:
      continue
    if key in _ATTRIBUTE_KEYS:
      attrs[key] = value
      continue
    if key in ("image_path", "image_id") and not isinstance(value, list):
      value = [v.item() if isinstance(v, np.generic) else v for v in value]
    values[key] = value
  human_data = HumanData(
    values,
    path=path,
    data_len=int(attrs["__data_len__"]),
    keypoints_compressed=bool(attrs["__keypoints_compressed__"]),
    key_strict=bool(attrs["__key_strict__"]),
  )
  n = validate_human_data(human_data, path)
  bbox = dict.get(human_data, "bbox_xywh")
  if bbox is not None and bbox.shape[1] == 4:
    # HumanData.load appends a column of ones to 4-column boxes.
    dict.__setitem__(
      human_data, "bbox_xywh", np.hstack([bbox, np.ones([n, 1])])
    )
  return human_data


# ----------------------------------------------------------------------------
# Validation.
# ----------------------------------------------------------------------------


def _infer_data_len(raw: Mapping[str, Any], path: str) -> int:
  for key in ("image_path", "bbox_xywh", "depth_factor"):
    if key in raw:
      return len(raw[key])
  raise HumanDataError(
    path,
    "__data_len__",
    "cannot tell the number of samples: no __data_len__, "
    "image_path or bbox_xywh",
  )


def _check_array(
  path: str,
  field: str,
  value: Any,
  n: int,
  trailing: tuple[int, ...] | None = None,
  ndim: int | None = None,
) -> np.ndarray:
  if not isinstance(value, np.ndarray):
    raise HumanDataError(
      path, field, f"expected an array, got {type(value).__name__}"
    )
  if not (np.issubdtype(value.dtype, np.number) or value.dtype == bool):
    raise HumanDataError(
      path, field, f"expected a numeric array, got dtype {value.dtype}"
    )
  if value.ndim == 0 or value.shape[0] != n:
    raise HumanDataError(
      path,
      field,
      f"expected {n} samples along axis 0 (data_len), got shape {value.shape}",
    )
  if ndim is not None and value.ndim != ndim:
    raise HumanDataError(
      path, field, f"expected {ndim} dims, got shape {value.shape}"
    )
  if trailing is not None and value.shape[1:] != trailing:
    raise HumanDataError(
      path, field, f"expected shape {(n,) + trailing}, got {value.shape}"
    )
  return value


def _check_mask(path: str, field: str, mask: Any) -> np.ndarray:
  mask = np.asarray(mask)
  if mask.shape != (NUM_JOINTS,):
    raise HumanDataError(
      path, field, f"expected a ({NUM_JOINTS},) mask, got shape {mask.shape}"
    )
  if not np.isin(mask, (0, 1)).all():
    raise HumanDataError(path, field, "mask values must be 0 or 1")
  return mask


def validate_human_data(hd: HumanData, path: str = "") -> int:
  """Checks the shapes of the fields HybrIK uses; returns N.

  Checked when present: ``image_path`` (N), ``bbox_xywh`` ([N,4] or [N,5]),
  every keypoints array (``[N, 190, C]`` after decompression, C in {3, 4},
  with a consistent ``*_mask``), ``smpl.thetas`` ([N,24,3] or [N,72]),
  ``smpl.betas`` ([N,10]), ``cam_param.intrinsic`` ([N,3,3]), ``phi`` and
  ``phi_weight`` ([N,23,2]), ``root_cam`` ([N,3]), ``depth_factor``,
  ``image_height``, ``image_width``, ``has_smpl`` ([N]).
  """
  path = path or hd.path
  raw = dict(hd)  # stored values, no padding
  n = hd.data_len if hd.data_len >= 0 else _infer_data_len(raw, path)
  hd.data_len = n

  if "image_path" in raw:
    paths = raw["image_path"]
    if len(paths) != n or not all(isinstance(p, str) for p in paths):
      raise HumanDataError(
        path, "image_path", f"expected {n} strings, got {len(paths)} entries"
      )
  if "bbox_xywh" in raw:
    bbox = _check_array(path, "bbox_xywh", raw["bbox_xywh"], n, ndim=2)
    if bbox.shape[1] not in (4, 5):
      raise HumanDataError(
        path,
        "bbox_xywh",
        f"expected shape [{n}, 4] or [{n}, 5], got {bbox.shape}",
      )
  for key in ("depth_factor", "image_height", "image_width", "has_smpl"):
    if key in raw:
      _check_array(path, key, np.asarray(raw[key]), n, trailing=())
  for key, trailing in (
    ("phi", (23, 2)),
    ("phi_weight", (23, 2)),
    ("root_cam", (3,)),
  ):
    if key in raw:
      _check_array(path, key, raw[key], n, trailing=trailing)
  if "smpl" in raw:
    smpl = raw["smpl"]
    if not isinstance(smpl, dict):
      raise HumanDataError(
        path, "smpl", f"expected a dict, got {type(smpl).__name__}"
      )
    if "thetas" in smpl:
      thetas = _check_array(path, "smpl.thetas", smpl["thetas"], n)
      if thetas.shape[1:] not in ((24, 3), (72,)):
        raise HumanDataError(
          path,
          "smpl.thetas",
          f"expected [{n}, 24, 3] or [{n}, 72], got {thetas.shape}",
        )
    if "betas" in smpl:
      _check_array(path, "smpl.betas", smpl["betas"], n, trailing=(10,))
  if "cam_param" in raw:
    cam = raw["cam_param"]
    if not isinstance(cam, dict):
      raise HumanDataError(
        path, "cam_param", f"expected a dict, got {type(cam).__name__}"
      )
    if "intrinsic" in cam:
      _check_array(
        path, "cam_param.intrinsic", cam["intrinsic"], n, trailing=(3, 3)
      )
  for key, value in raw.items():
    if key.endswith("_mask") and "keypoints" in key:
      _check_mask(path, key, value)
      continue
    if not _is_keypoints_key(key, value):
      continue
    value = _check_array(path, key, value, n, ndim=3)
    if value.shape[2] not in (3, 4):
      raise HumanDataError(
        path,
        key,
        f"expected 3 (x, y, conf) or 4 "
        f"(x, y, z, conf) values per joint, got shape "
        f"{value.shape}",
      )
    mask = hd._mask_for(key)
    if mask is not None:
      mask = _check_mask(path, f"{key}_mask", mask)
      if int(mask.sum()) != value.shape[1]:
        raise HumanDataError(
          path,
          key,
          f"compressed to {value.shape[1]} joints but "
          f"{key}_mask has {int(mask.sum())} ones",
        )
    elif value.shape[1] != NUM_JOINTS:
      raise HumanDataError(
        path,
        key,
        f"expected {NUM_JOINTS} joints (HumanData convention), "
        f"got shape {value.shape}",
      )
  return n


# ----------------------------------------------------------------------------
# Writing.
# ----------------------------------------------------------------------------


def save_human_data(
  path: str | os.PathLike,
  data: Mapping[str, Any],
  *,
  compress_keypoints: bool = True,
  key_strict: bool = False,
) -> None:
  """Writes ``data`` the way mmhuman3d's ``HumanData.dump`` does.

  Args:
    path: output file; must end in ``.npz``; overwritten if it exists.
    data: the HumanData dict, keypoints in the full 190-joint convention,
      e.g. ``{'image_path': list[str], 'image_height': [N], 'image_width':
      [N], 'bbox_xywh': [N,5] (xyxy + 1, as the HybrIK converters store it),
      'depth_factor': [N], 'smpl': {'thetas': [N,24,3], 'betas': [N,10]},
      'cam_param': {'f','c','intrinsic' [N,3,3] (inverse K)}, 'root_cam':
      [N,3], 'phi'/'phi_weight': [N,23,2], 'keypoints3d': [N,190,4],
      'keypoints3d_mask': [190] uint8, ..., 'config': str}``. Dict values are
      stored as 0-d object arrays (pickled by numpy, as ``np.savez`` does).
    compress_keypoints: like ``HumanData.compress_keypoints_by_mask()`` before
      ``dump()``: every keypoints array is stored with only its mask-1 joints
      and ``__keypoints_compressed__`` is set. Each keypoints array then
      needs its ``<key>_mask`` (ValueError otherwise, as in mmhuman3d).
    key_strict: the stored ``__key_strict__`` flag.
  """
  path = os.fspath(path)
  if not path.endswith(".npz"):
    raise ValueError(f"{path}: HumanData files must end in .npz")
  values = dict(data)
  if "image_path" in values:
    values["image_path"] = list(values["image_path"])
  n = validate_human_data(
    HumanData(values, path=path, keypoints_compressed=False), path
  )
  if compress_keypoints:
    for key, value in list(values.items()):
      if not _is_keypoints_key(key, value):
        continue
      mask_key = f"{key}_mask"
      if mask_key not in values:
        raise ValueError(
          f"{path}: keypoints field {key!r} has no "
          f"{mask_key!r}; set it before compression"
        )
      mask = np.asarray(values[mask_key])
      values[key] = np.take(value, np.flatnonzero(mask == 1), axis=1)
  to_dump = {
    "__key_strict__": bool(key_strict),
    "__data_len__": int(n),
    "__keypoints_compressed__": bool(compress_keypoints),
  }
  to_dump.update(values)
  np.savez_compressed(path, **to_dump)
