"""Synthetic HybrIK dataset: rendered random SMPL bodies with full annotations.

The embedded default dataset for machines without licensed data. It poses the
package's synthetic "capsule body" SMPL model (``hybrik_jax.assets``) with
random plausible poses and shapes, places it upright in front of a pinhole
camera, renders it with part colours over a random background, and writes
JPEG images plus two annotation files in mmhuman3d's HumanData layout:

* ``synthetic_train.npz`` -- laid out like ``hybrik_h36m_train.npz``: units
  **millimetres**, ``depth_factor`` = 2000, ``config`` = 'h36m'.
* ``synthetic_test.npz`` -- laid out like ``hybrik_pw3d_test.npz``: units
  **metres**, ``depth_factor`` = 2.0, ``config`` = 'pw3d'. Unlike the real
  3DPW file it keeps the 5 leaf joints visible, fills ``keypoints3d17`` with
  real (u, v, z - z_root) values instead of zeros, and also stores ``phi``.

Keys (N samples; 190-joint HumanData keypoint arrays, the 29 HybrIK joints at
``conventions.HYBRIK29_IDXS``, the 17 H36M joints at ``conventions.H36M_IDXS``,
everything else zero with mask 0):
  image_path (list of 'images/NNNNNN.jpg', relative to the output folder),
  image_height / image_width (lists of int), bbox_xywh [N, 5] (clipped xyxy of
  the rendered silhouette + a column of ones, as the converters write it),
  smpl {thetas [N, 24, 3] axis-angle (camera-frame global orientation first),
  betas [N, 10]}, cam_param {f [N, 2], c [N, 2], intrinsic [N, 3, 3] = K^-1},
  phi [N, 23, 2] (cos, sin) true twists, phi_weight [N, 23, 2] ones,
  root_cam [N, 3] float32 (SMPL pelvis in camera frame), depth_factor [N],
  keypoints3d [N, 190, 4] = [u_px, v_px, z - z_pelvis, 1],
  keypoints3d_cam = [x, y, z, 1], keypoints3d_relative = [xyz - pelvis, 1],
  keypoints3d17 / _cam / _relative likewise for the H36M joints regressed from
  the posed mesh (relative to the H36M pelvis, joint 0), and a ``<key>_mask``
  [190] uint8 for every keypoint key.

The 29 joints are the 24 SMPL joints (forward kinematics) and the 5 leaf
vertices (``tables.LEAF_VERTEX_IDS``) of the posed mesh. Camera frame:
OpenCV (x right, y down, z forward). The twist phis are the exact swing-twist
split of each generating rotation about its rest bone (joint -> HybrIK child),
so HybrIK's eval-mode IK given the forward-kinematics skeleton and these phis
reproduces the generating rotations. Poses and shapes are drawn by
:mod:`hybrik_jax.smpl.poses`; rest skeletons, twists and the batched SMPL
forward come from :mod:`hybrik_jax.smpl.numpy_kinematics`.

The output folder must be new, empty, or one this generator wrote before
(it holds :data:`MARKER_NAME`, written before anything else, or -- folders
from before the marker -- its ``synthetic_info.json``); any other folder is
refused with :class:`OccupiedFolderError`, so a user's files are never
overwritten.

Run: ``python -m hybrik_jax.data.synthetic --out DIR --num N [--num-test M]``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from hybrik_jax import errors, render
from hybrik_jax.data import conventions
from hybrik_jax.smpl import tables
from hybrik_jax.smpl.numpy_kinematics import (
  FORWARD_BATCH,
  axis_angle_to_matrix,
  rest_skeleton29,
  smpl_forward_batched,
  swing_twist_phis,
)
from hybrik_jax.smpl.poses import (
  sample_betas,
  sample_body_pose,
  sample_global_orient,
)

NUM_KEYPOINTS = conventions.NUM_HUMAN_DATA_JOINTS  # 190
HYBRIK29_IDXS = np.asarray(conventions.HYBRIK29_IDXS)
H36M_IDXS = np.asarray(conventions.H36M_IDXS)

DEFAULT_IMAGE_SIZE = (480, 640)  # (W, H): portrait, like 3DPW's frames.
TRAIN_DEPTH_FACTOR = 2000.0  # mm (H36M-like).
TEST_DEPTH_FACTOR = 2.0  # m (3DPW-like).

GENERATOR = "hybrik_jax.data.synthetic"  # synthetic_info.json's "generator"
# Written into the output folder before any image: marks it as this
# generator's (a rerun may overwrite it, e.g. after an interrupted run).
MARKER_NAME = ".hybrik_jax_synthetic"
_MARKER_TEXT = (
  json.dumps(
    {"generator": GENERATOR, "note": "folder written by this generator"}
  )
  + "\n"
)


# ----------------------------------------------------------------------------
# The output folder.


class OccupiedFolderError(errors.InputError, ValueError):
  """The output folder holds files this generator did not write (nothing is
  written; the entry points print it as one ``error:`` line)."""


def _first_files(folder: Path, limit: int) -> list[str]:
  """Up to ``limit`` files under ``folder`` (relative paths; top level
  first, then sub-folders, each sorted by name)."""
  found = []
  for root, dirs, files in os.walk(folder):
    dirs.sort()
    for name in sorted(files):
      found.append(os.path.relpath(os.path.join(root, name), folder))
      if len(found) >= limit:
        return found
  return found


def is_generated_folder(folder: str | Path) -> bool:
  """Whether ``folder`` was written by :func:`generate` (marker file, or a
  ``synthetic_info.json`` naming this generator)."""
  folder = Path(folder)
  if (folder / MARKER_NAME).is_file():
    return True
  try:
    info = json.loads((folder / "synthetic_info.json").read_text())
  except (OSError, ValueError):
    return False
  return isinstance(info, dict) and info.get("generator") == GENERATOR


def check_output_folder(folder: str | Path) -> None:
  """Raises :class:`OccupiedFolderError` unless ``generate`` may write into
  ``folder``: it does not exist, holds no files (empty sub-folders are
  fine), or :func:`is_generated_folder`."""
  folder = Path(folder)
  if not folder.exists():
    return
  why = None
  if not folder.is_dir():
    why = "it is not a folder"
  elif not is_generated_folder(folder):
    files = _first_files(folder, 4)
    if files:
      shown = ", ".join(files[:3]) + (", ..." if len(files) > 3 else "")
      why = f"it holds files that this generator did not write ({shown})"
  if why is not None:
    raise OccupiedFolderError(
      f"refusing to generate the synthetic dataset into {folder}: {why}; "
      "point config.data.root (or --out) at an empty or new folder"
    )


# ----------------------------------------------------------------------------
# Images.


def random_background(
  rng: np.random.Generator, height: int, width: int
) -> np.ndarray:
  """[H, W, 3] uint8 RGB background: gradient, smooth noise or checkers.

  Plus a few random filled rectangles / ellipses and mild pixel noise.
  """
  kind = rng.integers(3)
  c0, c1 = rng.uniform(0, 255, (2, 3)).astype(np.float32)
  if kind == 0:  # Linear gradient in a random direction.
    a = rng.uniform(0, 2 * np.pi)
    xs = np.linspace(0, 1, width, dtype=np.float32) * np.cos(a) * width
    ys = np.linspace(0, 1, height, dtype=np.float32) * np.sin(a) * height
    t = xs[None, :] + ys[:, None]
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    img = c0 * (1 - t[..., None]) + c1 * t[..., None]
  elif kind == 1:  # Smooth colour noise.
    gh = int(rng.integers(2, 9))
    gw = max(2, round(gh * width / height))
    small = rng.uniform(0, 255, (gh, gw, 3)).astype(np.float32)
    img = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
  else:  # Rotated checkerboard.
    cell = rng.uniform(12, 80)
    a = rng.uniform(0, np.pi / 2)
    xs = np.arange(width, dtype=np.float32)[None, :]
    ys = np.arange(height, dtype=np.float32)[:, None]
    xr = (xs * np.cos(a) + ys * np.sin(a)) / cell
    yr = (-xs * np.sin(a) + ys * np.cos(a)) / cell
    parity = (np.floor(xr) + np.floor(yr)) % 2
    img = np.where(parity[..., None] > 0, c0, c1)
  img = np.ascontiguousarray(img, dtype=np.float32)
  for _ in range(rng.integers(0, 5)):
    col = tuple(float(x) for x in rng.uniform(0, 255, 3))
    cx, cy = rng.uniform(0, width), rng.uniform(0, height)
    sx, sy = rng.uniform(10, width / 3), rng.uniform(10, height / 3)
    if rng.uniform() < 0.5:
      cv2.rectangle(
        img, (int(cx - sx), int(cy - sy)), (int(cx + sx), int(cy + sy)), col, -1
      )
    else:
      cv2.ellipse(
        img,
        (int(cx), int(cy)),
        (int(sx), int(sy)),
        float(rng.uniform(0, 180)),
        0,
        360,
        col,
        -1,
      )
  noise = rng.standard_normal((height, width, 1), dtype=np.float32)
  img += noise * rng.uniform(0, 12)
  return np.clip(img, 0, 255).astype(np.uint8)


def place_in_view(
  vertices: np.ndarray,
  focal: float,
  princpt: np.ndarray,
  image_wh: tuple[int, int],
  depth: float,
  rng: np.random.Generator,
  fill: float = 0.9,
  margin: float = 4.0,
) -> np.ndarray:
  """Chooses the camera-frame pelvis position of a body.

  Args:
    vertices: [V, 3] camera-oriented vertices relative to the pelvis (metres).
    focal: focal length (px).
    princpt: [2] principal point (px).
    image_wh: (W, H).
    depth: desired pelvis depth (metres); increased when the body would not
      fit into ``fill`` of the image.
    rng: random generator (horizontal/vertical placement).
    fill: largest allowed fraction of the image side covered by the body.
    margin: pixels kept free at the border (where the body fits).

  Returns:
    [3] pelvis position in the camera frame (metres).
  """
  w, h = image_wh
  root = np.array([0.0, 0.0, depth])
  for _ in range(3):  # Projected size ~ 1/z: converge in a few steps.
    uv = render.project_points(vertices + root, focal, princpt)
    ext = uv.max(0) - uv.min(0)
    grow = max(ext[0] / (fill * w), ext[1] / (fill * h), 1.0)
    if grow <= 1.0:
      break
    root[2] *= grow * 1.01
  uv = render.project_points(vertices + root, focal, princpt)
  lo, hi = uv.min(0), uv.max(0)
  shift = np.zeros(2)
  for k, size in enumerate((w, h)):
    a, b = margin - lo[k], size - 1 - margin - hi[k]
    shift[k] = rng.uniform(a, b) if a <= b else ((size - 1) - lo[k] - hi[k]) / 2
  root[:2] += shift * root[2] / focal
  return root


# ----------------------------------------------------------------------------
# Annotations.


def _to_190(
  values: np.ndarray, idxs: np.ndarray, vis: float = 1.0
) -> np.ndarray:
  """[N, K, 3] -> [N, 190, 4]: (x, y, z, vis) at ``idxs``, zeros elsewhere."""
  out = np.zeros((values.shape[0], NUM_KEYPOINTS, 4), dtype=np.float64)
  out[:, idxs, :3] = values
  out[:, idxs, 3] = vis
  return out


def build_annotations(
  records: dict, idx: np.ndarray, unit: float, depth_factor: float, config: str
) -> dict:
  """HumanData dict for the samples ``idx``.

  Args:
    records: per-sample arrays (metres) collected by ``generate``.
    idx: [n] sample indices of this split.
    unit: 1000 for millimetres, 1 for metres.
    depth_factor: stored ``depth_factor`` (2000 mm or 2.0 m).
    config: stored ``config`` string.
  """
  f = records["focal"][idx]  # [n]
  c = records["princpt"][idx]  # [n, 2]
  n = idx.size
  k = np.zeros((n, 3, 3), dtype=np.float64)
  k[:, 0, 0] = f
  k[:, 1, 1] = f
  k[:, :2, 2] = c
  k[:, 2, 2] = 1.0
  k_inv = np.linalg.inv(k.astype(np.float32)).astype(np.float32)

  def uvd(cam, root_z):  # cam [n, K, 3] metres -> [n, K, 3] (u, v, dz*unit)
    uv = cam[..., :2] / cam[..., 2:3] * f[:, None, None] + c[:, None]
    return np.concatenate(
      [uv, (cam[..., 2:3] - root_z[:, None, None]) * unit], axis=-1
    )

  j29 = records["joints29_cam"][idx]  # [n, 29, 3] m
  j17 = records["joints17_cam"][idx]  # [n, 17, 3] m
  mask29 = np.zeros(NUM_KEYPOINTS, dtype=np.uint8)
  mask29[HYBRIK29_IDXS] = 1
  mask17 = np.zeros(NUM_KEYPOINTS, dtype=np.uint8)
  mask17[H36M_IDXS] = 1
  data = {
    "image_path": [records["image_path"][i] for i in idx],
    "image_height": [int(records["image_hw"][i, 0]) for i in idx],
    "image_width": [int(records["image_hw"][i, 1]) for i in idx],
    "bbox_xywh": np.concatenate(
      [records["bbox_xyxy"][idx], np.ones((n, 1))], axis=1
    ),
    "smpl": {"thetas": records["thetas"][idx], "betas": records["betas"][idx]},
    "cam_param": {
      "f": np.stack([f, f], -1).astype(np.float32),
      "c": c.astype(np.float32),
      "intrinsic": k_inv,
    },
    "phi": records["phis"][idx].astype(np.float32),
    "phi_weight": np.ones((n, 23, 2), dtype=np.float64),
    "root_cam": (j29[:, 0] * unit).astype(np.float32),
    "depth_factor": np.full(n, depth_factor, dtype=np.float64),
    "keypoints3d": _to_190(uvd(j29, j29[:, 0, 2]), HYBRIK29_IDXS),
    "keypoints3d_cam": _to_190(j29 * unit, HYBRIK29_IDXS),
    "keypoints3d_relative": _to_190((j29 - j29[:, :1]) * unit, HYBRIK29_IDXS),
    "keypoints3d17": _to_190(uvd(j17, j17[:, 0, 2]), H36M_IDXS),
    "keypoints3d17_cam": _to_190(j17 * unit, H36M_IDXS),
    "keypoints3d17_relative": _to_190((j17 - j17[:, :1]) * unit, H36M_IDXS),
    "config": config,
  }
  for key in ("keypoints3d", "keypoints3d_cam", "keypoints3d_relative"):
    data[key + "_mask"] = mask29.copy()
  for key in ("keypoints3d17", "keypoints3d17_cam", "keypoints3d17_relative"):
    data[key + "_mask"] = mask17.copy()
  return data


def _save(path: Path, data: dict) -> None:
  from hybrik_jax.data.human_data import save_human_data

  save_human_data(str(path), data)


# ----------------------------------------------------------------------------
# Generation.


def generate(
  out_dir,
  num: int,
  num_test: int | None = None,
  seed: int = 0,
  image_size: tuple[int, int] = DEFAULT_IMAGE_SIZE,
  focal_range: tuple[float, float] | None = None,
  depth_range: tuple[float, float] = (3.0, 6.0),
  jpeg_quality: int = 90,
  model=None,
  progress: bool = True,
) -> dict:
  """Generates the synthetic dataset.

  Args:
    out_dir: output folder (created): new, empty or written by this
      generator before (:func:`check_output_folder`). Writes
      :data:`MARKER_NAME` (first), ``images/NNNNNN.jpg``,
      ``synthetic_train.npz``, ``synthetic_test.npz`` and
      ``synthetic_info.json``.
    num: total number of samples.
    num_test: how many of them (the last ones) form the test split; default
      20% (at least 1 when num >= 2).
    seed: random seed (output is deterministic given the seed).
    image_size: (W, H) pixels.
    focal_range: focal length range (px); default (1000, 1500) * H / 640,
      i.e. 1000-1500 px for the default 480x640 images and the same field of
      view for other sizes.
    depth_range: pelvis depth range (m), increased per sample where needed so
      that the whole body fits into 90% of the image.
    jpeg_quality: JPEG quality.
    model: SMPLModel with the H36M extra regressor; default the package's
      synthetic model.
    progress: show a tqdm progress bar.

  Returns:
    dict with 'train' / 'test' paths, 'num_train', 'num_test', 'seconds'.

  Raises:
    OccupiedFolderError: ``out_dir`` holds files this generator did not
      write (nothing is written then).
    ValueError: bad ``num`` / ``num_test`` / model.
  """
  from tqdm import tqdm

  if num < 1:
    raise ValueError(f"--num must be >= 1, got {num}")
  if num_test is None:
    num_test = max(1, round(0.2 * num)) if num >= 2 else 0
  if not 0 <= num_test <= num:
    raise ValueError(f"--num-test must be in [0, {num}], got {num_test}")
  out_dir = Path(out_dir)
  check_output_folder(out_dir)
  if model is None:
    from hybrik_jax import assets

    model = assets.load_synthetic_smpl()
  if model.J_regressor_extra is None:
    raise ValueError("the SMPL model needs an H36M J_regressor_extra [17, V]")
  out_dir.mkdir(parents=True, exist_ok=True)
  (out_dir / MARKER_NAME).write_text(_MARKER_TEXT)
  (out_dir / "images").mkdir(exist_ok=True)
  t_start = time.perf_counter()
  w, h = int(image_size[0]), int(image_size[1])
  if focal_range is None:
    focal_range = (1000.0 * h / 640.0, 1500.0 * h / 640.0)
  rng = np.random.default_rng(seed)

  # Parameters of all samples up front (determinism independent of batching).
  betas = sample_betas(rng, num)
  body_pose = sample_body_pose(rng, num)
  global_orient = sample_global_orient(rng, num)
  thetas = np.concatenate([global_orient[:, None], body_pose], axis=1)
  focal = rng.uniform(*focal_range, num)
  princpt = np.array([w / 2.0, h / 2.0]) + rng.normal(0, 0.01, (num, 2)) * [
    w,
    h,
  ]
  depth = rng.uniform(*depth_range, num)
  sample_seeds = rng.integers(0, 2**31 - 1, num)

  rest29 = rest_skeleton29(model, betas)  # [N, 29, 3]
  rot_mats = axis_angle_to_matrix(thetas)  # [N, 24, 3, 3]
  phis = swing_twist_phis(rot_mats, rest29)  # [N, 23, 2]
  faces = np.asarray(model.faces, dtype=np.int64)
  lbs_weights = np.asarray(model.lbs_weights)
  base_colors = render.part_face_colors(lbs_weights, faces)  # [F, 3]
  leaf_ids = np.asarray(tables.LEAF_VERTEX_IDS)

  records = {
    "betas": betas,
    "thetas": thetas,
    "phis": phis,
    "focal": focal,
    "princpt": princpt,
    "image_path": [],
    "image_hw": np.zeros((num, 2)),
    "bbox_xyxy": np.zeros((num, 4)),
    "joints29_cam": np.zeros((num, 29, 3)),
    "joints17_cam": np.zeros((num, 17, 3)),
  }
  bar = tqdm(total=num, desc="synthetic", disable=not progress)
  for start in range(0, num, FORWARD_BATCH):
    sl = slice(start, min(start + FORWARD_BATCH, num))
    smpl_out = smpl_forward_batched(model, betas[sl], thetas[sl])
    for i_local, i in enumerate(range(sl.start, sl.stop)):
      srng = np.random.default_rng(sample_seeds[i])
      verts = smpl_out["vertices"][i_local]  # [V, 3], pelvis at rest29[i, 0]
      pelvis = smpl_out["joints"][i_local, 0]
      root = place_in_view(
        verts - pelvis, focal[i], princpt[i], (w, h), depth[i], srng
      )
      shift = root - pelvis
      verts_cam = verts + shift
      joints29 = (
        np.concatenate([smpl_out["joints"][i_local], verts[leaf_ids]], axis=0)
        + shift
      )
      joints17 = smpl_out["joints_extra"][i_local] + shift

      background = random_background(srng, h, w)
      colors = base_colors * srng.uniform(0.8, 1.2, size=(1, 3))
      light = np.array([srng.uniform(-0.6, 0.6), srng.uniform(-0.8, 0.2), -1.0])
      out = render.render_mesh(
        verts_cam,
        faces,
        focal[i],
        princpt[i],
        (h, w),
        face_colors=np.clip(colors, 0, 255),
        background=background,
        light_dir=light,
        ambient=srng.uniform(0.25, 0.5),
      )
      mask = out["mask"]
      if mask.any():
        ys, xs = np.nonzero(mask)
        box = [xs.min(), ys.min(), xs.max(), ys.max()]
      else:  # Body outside the image: box of the projected mesh, clipped.
        uv = render.project_points(verts_cam, focal[i], princpt[i])
        box = [*uv.min(0), *uv.max(0)]
      box = np.clip(
        np.asarray(box, np.float64), 0, [w - 1, h - 1, w - 1, h - 1]
      )
      name = f"images/{i:06d}.jpg"
      cv2.imwrite(
        str(out_dir / name),
        out["image"][..., ::-1],
        [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)],
      )
      records["image_path"].append(name)
      records["image_hw"][i] = (h, w)
      records["bbox_xyxy"][i] = box
      records["joints29_cam"][i] = joints29
      records["joints17_cam"][i] = joints17
      bar.update(1)
  bar.close()

  num_train = num - num_test
  train_idx, test_idx = np.arange(num_train), np.arange(num_train, num)
  paths = {
    "train": out_dir / "synthetic_train.npz",
    "test": out_dir / "synthetic_test.npz",
  }
  _save(
    paths["train"],
    build_annotations(records, train_idx, 1000.0, TRAIN_DEPTH_FACTOR, "h36m"),
  )
  _save(
    paths["test"],
    build_annotations(records, test_idx, 1.0, TEST_DEPTH_FACTOR, "pw3d"),
  )
  seconds = time.perf_counter() - t_start
  info = {
    "generator": GENERATOR,
    "seed": seed,
    "num": num,
    "num_train": num_train,
    "num_test": num_test,
    "image_size_wh": [w, h],
    "focal_range_px": [float(x) for x in focal_range],
    "depth_range_m": list(depth_range),
    "train": {
      "file": paths["train"].name,
      "units": "mm",
      "depth_factor": TRAIN_DEPTH_FACTOR,
      "layout": "hybrik_h36m_train",
    },
    "test": {
      "file": paths["test"].name,
      "units": "m",
      "depth_factor": TEST_DEPTH_FACTOR,
      "layout": "hybrik_pw3d_test",
    },
    "image_root": ".",
    "seconds": round(seconds, 3),
  }
  with open(out_dir / "synthetic_info.json", "w") as fh:
    json.dump(info, fh, indent=2)
  return {
    "train": paths["train"],
    "test": paths["test"],
    "num_train": num_train,
    "num_test": num_test,
    "seconds": seconds,
  }


def define_flags(fv) -> None:
  """Flags of ``python -m hybrik_jax.data.synthetic`` (see hybrik_jax.cli)."""
  from absl import flags

  flags.DEFINE_string("out", None, "Output folder.", flag_values=fv)
  flags.DEFINE_integer("num", 200, "Total number of samples.", flag_values=fv)
  flags.DEFINE_integer(
    "num_test", None, "Samples in the test split (default 20%).", flag_values=fv
  )
  flags.DEFINE_integer("seed", 0, "Random seed.", flag_values=fv)
  flags.DEFINE_list(
    "image_size",
    [str(v) for v in DEFAULT_IMAGE_SIZE],
    "Image width,height in pixels.",
    flag_values=fv,
  )
  flags.DEFINE_integer("jpeg_quality", 90, "JPEG quality.", flag_values=fv)
  flags.DEFINE_bool(
    "no_progress", False, "Hide the progress bar.", flag_values=fv
  )
  flags.mark_flag_as_required("out", flag_values=fv)


def main(argv: Sequence[str] | None = None) -> int:
  """Renders a synthetic HybrIK dataset (HumanData npz + JPEGs)."""
  from hybrik_jax import cli

  args, _ = cli.parse(
    define_flags, argv, "python -m hybrik_jax.data.synthetic", __doc__
  )
  try:
    size = tuple(int(v) for v in args.image_size)
  except ValueError:
    size = ()
  if len(size) != 2 or min(size) < 1:
    raise cli.UsageError(
      f"--image_size={','.join(args.image_size)}: expected "
      "two positive integers W,H"
    )
  try:
    res = generate(
      args.out,
      args.num,
      args.num_test,
      seed=args.seed,
      image_size=size,
      jpeg_quality=args.jpeg_quality,
      progress=not args.no_progress,
    )
  except OccupiedFolderError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  rate = (res["num_train"] + res["num_test"]) / max(res["seconds"], 1e-9)
  print(
    f"wrote {res['num_train']} train + {res['num_test']} test samples to "
    f"{os.fspath(args.out)} in {res['seconds']:.1f} s ({rate:.1f} "
    "samples/s)"
  )
  print(f"  {res['train']}\n  {res['test']}")
  return 0


if __name__ == "__main__":
  from hybrik_jax import cli

  cli.run(main)
