"""``res.pk``: a video's predictions in the original HybrIK demo's layout.

The layout follows ``scripts/demo_video.py --save-pk`` of Jeff-sjtu/HybrIK
(HEAD 9b8681d, June 2023; read from the source), whose output the authors'
Blender add-on (``hybrik_blender_addon.zip``) imports. That script appends
one entry per frame with a detection, ``np.stack``s every key and writes the
dict with ``pickle.dump``. Keys (their order) and shapes, T = frames:

======================  ==========  ==========================================
key                     shape       content (this port)
======================  ==========  ==========================================
``pred_uvd``            [T, 29, 3]  network uvd, crop-normalised in [-0.5,
                                    0.5) (ours: mmhuman3d's test crop)
``pred_xyz_17``         [T, 17, 3]  H36M-17 joints from the mesh, relative to
                                    joint 0 (pelvis), / ``depth_factor_m``
``pred_xyz_29``         [T, 29, 3]  HybrIK-29 joints, relative to the pelvis,
                                    / ``depth_factor_m`` (ours: the 24 posed
                                    SMPL joints + the 5 leaf vertices, i.e.
                                    the structure, not the raw uvd lifting,
                                    unless ``xyz_29`` is given)
``pred_xyz_24_struct``  [T, 24, 3]  SMPL joints, pelvis-relative,
                                    / ``depth_factor_m``
``pred_scores``         [T, 29]     heatmap maxvals (this model's head
                                    returns ones; given ``scores`` if any)
``pred_camera``         [T, 1]      weak-perspective scale ``s``: the authors'
                                    ``camDepth = 1000 / (256 s)`` (focal 1000
                                    px in the 256-px crop) generalised to
                                    ``s = focal / (crop_w * z_pelvis)``
``pred_betas``          [T, 10]     SMPL shape
``pred_thetas``         [T, 216]    the 24 rotation matrices (global pelvis
                                    orientation in the camera frame, then
                                    parent-relative), row-major, flattened
``pred_phi``            [T, 23, 2]  twist (cos, sin), raw network output
``pred_cam_root``       [T, 3]      pelvis in the camera frame, metres
``transl``              [T, 3]      SMPL translation as the authors define
                                    it: equal to ``pred_cam_root`` (their
                                    SMPL joints are pelvis-relative)
``transl_camsys``       [T, 3]      ``transl * 1000 / focal``: the same
                                    placement for a camera of focal 1000 px
                                    (the authors' ``transl * 256 / bbox_w``
                                    with their focal ``1000 * bbox_w / 256``)
``bbox``                [T, 4]      the network's crop box, xyxy pixels
``height``, ``width``   [T] int64   image size, pixels
``img_path``            [T] str     frame names (numpy unicode array)
======================  ==========  ==========================================

The authors' ``'f'`` and ``'features'`` keys are commented out in their
script and are not written. Floating-point arrays are float32 (as the
authors' torch outputs). ``depth_factor_m`` defaults to 2.2 m, the authors'
HRNet-W48 cam config (``BBOX_3D_SHAPE`` 2200 mm), so that a reader that
multiplies by 2.2 gets metres; this port's network uses 2 m. Camera:
OpenCV axes (x right, y down, z forward), metres, as the rest of the demo.

:func:`write_pk` writes a plain pickle (protocol 4) of numpy arrays only;
:func:`load_pk` reads it (and the authors' own ``res.pk``, which holds only
numpy arrays) with the project's allow-list unpickler.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from hybrik_jax import errors, safe_pickle
from hybrik_jax.demo.camera import BBOX_SCALE_FACTOR
from hybrik_jax.smpl import tables

PK_KEYS = (
  "pred_uvd",
  "pred_xyz_17",
  "pred_xyz_29",
  "pred_xyz_24_struct",
  "pred_scores",
  "pred_camera",
  "pred_betas",
  "pred_thetas",
  "pred_phi",
  "pred_cam_root",
  "transl",
  "transl_camsys",
  "bbox",
  "height",
  "width",
  "img_path",
)

# Per-frame shapes (after the leading T); None: a 0-d entry ([T]).
PK_SHAPES = {
  "pred_uvd": (29, 3),
  "pred_xyz_17": (17, 3),
  "pred_xyz_29": (29, 3),
  "pred_xyz_24_struct": (24, 3),
  "pred_scores": (29,),
  "pred_camera": (1,),
  "pred_betas": (10,),
  "pred_thetas": (216,),
  "pred_phi": (23, 2),
  "pred_cam_root": (3,),
  "transl": (3,),
  "transl_camsys": (3,),
  "bbox": (4,),
  "height": (),
  "width": (),
  "img_path": (),
}

AUTHORS_DEPTH_FACTOR_M = 2.2  # Jeff-sjtu/HybrIK cam config, BBOX_3D_SHAPE
AUTHORS_FOCAL_PX = 1000.0  # their transl_camsys camera
PICKLE_PROTOCOL = 4


class PkFormatError(errors.InputError, ValueError):
  """A ``.pk`` file that is not a dict of the documented arrays."""


def _array(arrays: Mapping, key: str, shape: tuple, t: int | None):
  if key not in arrays:
    raise ValueError(f"{key} is missing (needed for the .pk file)")
  a = np.asarray(arrays[key], np.float64)
  want = (t if t is not None else a.shape[0] if a.ndim else 0,) + shape
  if a.shape != want or a.shape[0] == 0:
    raise ValueError(
      f"{key} must be [T, {', '.join(map(str, shape))}] with T > 0"
      f"{f' = {t}' if t is not None else ''}, got {a.shape}"
    )
  if not np.all(np.isfinite(a)):
    raise ValueError(f"{key} has non-finite values")
  return a


def pk_from_demo(
  arrays: Mapping[str, np.ndarray],
  image_hw: tuple[int, int],
  img_paths: Sequence[str] | None = None,
  *,
  scores: np.ndarray | None = None,
  depth_factor_m: float = AUTHORS_DEPTH_FACTOR_M,
) -> dict[str, np.ndarray]:
  """The ``res.pk`` dict of a video track from the demo's per-frame arrays.

  Args:
    arrays: the demo's stacked npz arrays
      (:func:`hybrik_jax.demo.outputs.result_arrays` with ``stack=True``):
      ``pose`` [T, 24, 3, 3], ``betas`` [T, 10], ``phis`` [T, 23, 2],
      ``uvd`` [T, 29, 3], ``xyz_24`` [T, 24, 3] and ``xyz_17`` [T, 17, 3]
      (camera metres), ``pelvis_cam`` [T, 3], ``focal`` [T], ``bbox_xywh``
      [T, 4], and ``vertices`` [T, V, 3] (camera metres, for the 5 leaves
      of ``pred_xyz_29``) unless ``xyz_29`` [T, 29, 3] is given.
    image_hw: (height, width) of the video frames, pixels.
    img_paths: T frame names (default ``frame_000000``, ...).
    scores: optional [T, 29] joint scores (default ones, this model's
      ``maxvals``).
    depth_factor_m: the unit of the ``pred_xyz_*`` keys (module docstring).

  Returns:
    dict ``PK_KEYS`` -> numpy arrays (shapes: ``PK_SHAPES``).

  Raises:
    ValueError: naming the missing or bad input (shape, T = 0, non-finite).
  """
  pose = _array(arrays, "pose", (24, 3, 3), None)
  t = pose.shape[0]
  betas = _array(arrays, "betas", (tables.NUM_BETAS,), t)
  phis = _array(arrays, "phis", (23, 2), t)
  uvd = _array(arrays, "uvd", (29, 3), t)
  xyz_24 = _array(arrays, "xyz_24", (24, 3), t)
  xyz_17 = _array(arrays, "xyz_17", (17, 3), t)
  pelvis = _array(arrays, "pelvis_cam", (3,), t)
  focal = _array(arrays, "focal", (), t)
  bbox_xywh = _array(arrays, "bbox_xywh", (4,), t)
  if "xyz_29" in arrays:
    xyz_29 = _array(arrays, "xyz_29", (29, 3), t)
  else:
    if "vertices" not in arrays:
      raise ValueError("vertices (or xyz_29) is missing: needed for the leaves")
    verts = np.asarray(arrays["vertices"], np.float64)
    if verts.ndim != 3 or verts.shape[0] != t or verts.shape[2] != 3:
      raise ValueError(f"vertices must be [T = {t}, V, 3], got {verts.shape}")
    leaves = verts[:, np.asarray(tables.LEAF_VERTEX_IDS)]  # [T, 5, 3]
    if not np.all(np.isfinite(leaves)):
      raise ValueError("vertices has non-finite values")
    xyz_29 = np.concatenate([xyz_24, leaves], axis=1)
  if scores is None:
    scores = np.ones((t, 29))
  scores = _array({"scores": scores}, "scores", (29,), t)
  if np.any(focal <= 0):
    raise ValueError("focal must be positive")
  if np.any(pelvis[:, 2] <= 0):
    raise ValueError("pelvis_cam must be in front of the camera (z > 0)")
  height, width = (int(v) for v in image_hw)
  if height <= 0 or width <= 0:
    raise ValueError(f"image_hw must be positive, got {image_hw}")
  if img_paths is None:
    img_paths = [f"frame_{i:06d}" for i in range(t)]
  img_paths = [str(p) for p in img_paths]
  if len(img_paths) != t:
    raise ValueError(f"img_paths has {len(img_paths)} names, expected {t}")
  depth_factor_m = float(depth_factor_m)
  if not (np.isfinite(depth_factor_m) and depth_factor_m > 0):
    raise ValueError(f"depth_factor_m must be positive, got {depth_factor_m}")

  from hybrik_jax.data import annotations

  center, scale = annotations.box2cs(
    bbox_xywh, aspect_ratio=1.0, bbox_scale_factor=BBOX_SCALE_FACTOR
  )  # [T, 2] each, pixels
  crop_xyxy = np.concatenate([center - scale / 2, center + scale / 2], -1)

  def rel(x):  # root-relative, in units of depth_factor_m
    return (x - x[:, :1]) / depth_factor_m

  res = {
    "pred_uvd": uvd,
    "pred_xyz_17": rel(xyz_17),
    "pred_xyz_29": rel(xyz_29),
    "pred_xyz_24_struct": rel(xyz_24),
    "pred_scores": scores,
    "pred_camera": (focal / (scale[:, 0] * pelvis[:, 2]))[:, None],
    "pred_betas": betas,
    "pred_thetas": pose.reshape(t, 216),
    "pred_phi": phis,
    "pred_cam_root": pelvis,
    "transl": pelvis,
    "transl_camsys": pelvis * (AUTHORS_FOCAL_PX / focal)[:, None],
    "bbox": crop_xyxy,
  }
  res = {k: np.asarray(v, np.float32) for k, v in res.items()}
  res["height"] = np.full(t, height, np.int64)
  res["width"] = np.full(t, width, np.int64)
  res["img_path"] = np.asarray(img_paths, dtype=str)
  return {k: res[k] for k in PK_KEYS}


def check_pk(res: Mapping, source: str = "<res.pk>") -> int:
  """Checks a ``.pk`` dict against ``PK_KEYS`` / ``PK_SHAPES``; returns T.

  Raises:
    PkFormatError: naming ``source`` and the missing / extra key or the bad
      shape.
  """
  if not isinstance(res, Mapping):
    raise PkFormatError(f"{source}: expected a dict, got {type(res).__name__}")
  missing = [k for k in PK_KEYS if k not in res]
  extra = [k for k in res if k not in PK_KEYS]
  if missing or extra:
    raise PkFormatError(f"{source}: missing keys {missing}, extra keys {extra}")
  t = None
  for k in PK_KEYS:
    v = res[k]
    if not isinstance(v, np.ndarray):
      raise PkFormatError(f"{source}: {k} is a {type(v).__name__}, not array")
    t = v.shape[0] if t is None and v.ndim else t
    if v.shape != (t,) + PK_SHAPES[k]:
      raise PkFormatError(
        f"{source}: {k} has shape {v.shape}, expected {(t,) + PK_SHAPES[k]}"
      )
  return int(t)


def write_pk(path: str | Path, res: Mapping[str, np.ndarray]) -> Path:
  """Writes ``res`` (:func:`pk_from_demo`) as a protocol-4 pickle."""
  check_pk(res, str(path))
  path = Path(path)
  with open(path, "wb") as f:
    pickle.dump(
      {k: np.ascontiguousarray(res[k]) for k in PK_KEYS},
      f,
      protocol=PICKLE_PROTOCOL,
    )
  return path


def load_pk(path: str | Path, check: bool = True) -> dict[str, np.ndarray]:
  """Reads a ``.pk`` file with the allow-list unpickler (numeric and string
  numpy arrays only; nothing in the file is executed).

  Args:
    path: the file (ours, or the authors' ``res.pk``).
    check: validate keys and shapes (:func:`check_pk`).

  Raises:
    PkFormatError: not a dict of the documented arrays.
    hybrik_jax.safe_pickle.UnsafePickleError: the file names a global that
      is not a numpy array / dtype constructor.
  """
  path = Path(path)
  allowed = safe_pickle.numpy_globals(object_arrays=False, error=PkFormatError)
  try:
    with open(path, "rb") as f:
      res = safe_pickle.RestrictedUnpickler(f, allowed, source=str(path)).load()
  except (pickle.UnpicklingError, EOFError) as e:
    if isinstance(e, safe_pickle.UnsafePickleError):
      raise
    raise PkFormatError(f"{path}: not a readable pickle ({e})") from None
  if check:
    check_pk(res, str(path))
  elif not isinstance(res, dict):
    raise PkFormatError(f"{path}: expected a dict, got {type(res).__name__}")
  return res
