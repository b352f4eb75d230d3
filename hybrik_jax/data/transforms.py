"""HybrIK train/test transforms with mmhuman3d's semantics, randomness explicit.

Reproduces, in order, the pipeline of
``configs/hybrik/resnet34_hybrik_mixed.py``
(``mmhuman3d/data/datasets/pipelines/hybrik_transforms.py`` and
``transforms.py``):

  train: RandomDPG -> GetRandomScaleRotation -> RandomOcclusion ->
         HybrIKRandomFlip -> NewKeypointsSelection -> HybrIKAffine ->
         GenerateHybrIKTarget(train) -> RandomChannelNoise -> Normalize
  test:  NewKeypointsSelection -> HybrIKAffine -> GenerateHybrIKTarget(test)
         -> Normalize

Every function is pure numpy/cv2 and per-sample. mmhuman3d draws from the
global numpy and Python ``random`` generators inside each transform; here all
random numbers of one sample are drawn up front by :func:`sample_draws` into a
:class:`Draws` record (each field is the very value the corresponding
``np.random.*`` / ``random.*`` call returns in mmhuman3d), so the same
``Draws`` fed to the PyTorch pipeline (by patching those calls) gives the same
sample. Float32/float64 arithmetic follows the reference step by step; the
image operations call the same OpenCV functions (``warpAffine`` bilinear with
a constant-0 border on the uint8 image, ``getAffineTransform``, ``Rodrigues``,
``multiply``/``subtract``, ``cvtColor``).

Coordinates: image pixels (x right, y down), boxes (x1, y1, x2, y2) px,
``center``/``scale`` in px (scale = square side), rotation in degrees
(counter-clockwise in the image). Images are HWC BGR uint8 on input; the
model input ``img`` is HWC RGB float32, normalised with ImageNet mean/std in
0-255 units.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import cv2
import numpy as np

from hybrik_jax.data import conventions
from hybrik_jax.data.annotations import box2cs, xyxy2xywh

# Per-edge Gaussian box jitter of RandomDPG: (mean, std) for x1, y1, x2, y2,
# as fractions of the box width (x) / height (y).
DPG_JITTER = (
  (-0.0142, 0.1158),
  (0.0043, 0.068),
  (0.0154, 0.1337),
  (-0.0013, 0.0711),
)
DPG_PATCH_THRESHOLD = 0.85
OCCLUSION_AREA = (0.0, 0.7)  # fraction of the bbox area
OCCLUSION_RATIO = (0.3, 1 / 0.3)  # h / w


TARGET_SETS = ("mmhuman3d", "authors_cam")


@dataclasses.dataclass(frozen=True)
class TransformConfig:
  """Transform settings; defaults are those of ``resnet34_hybrik_mixed``.

  ``targets='authors_cam'`` makes the training targets of the authors'
  camera models (:mod:`hybrik_jax.data.cam_targets`: depth and xyz in units
  of ``bbox_3d_shape`` mm, no uvd range check, rotation-matrix theta, the
  camera targets); ``occlusion_area`` / ``occlusion_ratio`` are the
  occluder's area (fraction of the box) and h/w ranges; ``noise_clip``
  clips the channel noise to [0, 255] and truncates to integers (the
  authors' colour jitter writes back into the uint8 crop; mmhuman3d's
  multiplies the float image unclipped).
  """

  img_res: int = 256
  dpg_prob: float = 0.9
  rot_factor: float = 30.0
  scale_factor: float = 0.25
  rot_prob: float = 0.6
  occlusion_prob: float = 0.9
  flip_prob: float = 0.5
  noise_factor: float = 0.4
  mean: tuple[float, float, float] = (123.675, 116.28, 103.53)
  std: tuple[float, float, float] = (58.395, 57.12, 57.375)
  to_rgb: bool = True
  flip_pairs: tuple[tuple[int, int], ...] = conventions.HUMAN_DATA_FLIP_PAIRS
  keypoints_maps: tuple = conventions.TRAIN_KEYPOINTS_MAPS
  occlusion_area: tuple[float, float] = OCCLUSION_AREA
  occlusion_ratio: tuple[float, float] = OCCLUSION_RATIO
  noise_clip: bool = False
  targets: str = "mmhuman3d"
  bbox_3d_shape: float = 2200.0  # mm; used by targets='authors_cam' only

  def __post_init__(self):
    if self.targets not in TARGET_SETS:
      raise ValueError(f"targets={self.targets!r}; choose from {TARGET_SETS}")


DEFAULT_CONFIG = TransformConfig()


@dataclasses.dataclass
class Draws:
  """All random numbers one training sample uses, in pipeline order.

  Each field is the value the named mmhuman3d call returns. Unused fields
  (e.g. the jitter normals when DPG crops a sub-patch) are ignored.

  Attributes:
    dpg_u: ``np.random.rand()``; RandomDPG runs iff ``dpg_u <= dpg_prob``.
    dpg_patch_scale: ``random.uniform(0, 1)`` (PatchScale).
    dpg_patch_u: two ``random.uniform(0, 1)``: sub-patch x1, y1 placement
      (used iff ``dpg_patch_scale > 0.85``).
    dpg_jitter: four ``np.random.normal(mu, sigma)`` for x1, y1, x2, y2 with
      :data:`DPG_JITTER` (used iff ``dpg_patch_scale <= 0.85``).
    scale_randn: ``np.random.randn()`` for the scale factor.
    rot_randn: ``np.random.randn()`` for the rotation.
    rot_u: ``np.random.rand()``; rotation used iff ``rot_u <= rot_prob``.
    occ_u: ``np.random.rand()``; occlusion tried iff
      ``occ_u <= occlusion_prob``.
    occ_area_u, occ_ratio_u, occ_x_u, occ_y_u: four ``random.random()``.
    occ_noise: ``np.random.rand(h, w, 3)`` for the occluder, [h, w, 3] float64
      in [0, 1), or None when no occluder is pasted (see
      :func:`occlusion_rect`).
    flip_u: ``np.random.rand()``; flipped iff ``flip_u <= flip_prob``.
    channel_noise: ``np.random.uniform(1 - f, 1 + f, (1, 3))`` as [3] (BGR).
  """

  dpg_u: float = 1.0
  dpg_patch_scale: float = 0.0
  dpg_patch_u: tuple[float, float] = (0.0, 0.0)
  dpg_jitter: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
  scale_randn: float = 0.0
  rot_randn: float = 0.0
  rot_u: float = 1.0
  occ_u: float = 1.0
  occ_area_u: float = 0.0
  occ_ratio_u: float = 0.0
  occ_x_u: float = 0.0
  occ_y_u: float = 0.0
  occ_noise: np.ndarray | None = None
  flip_u: float = 1.0
  channel_noise: tuple[float, float, float] = (1.0, 1.0, 1.0)


def identity_draws() -> Draws:
  """Draws that switch every augmentation off (no DPG/rotation/occlusion/flip,
  scale factor 1, channel noise 1)."""
  return Draws()


# ----------------------------------------------------------------------------
# Geometry helpers.
# ----------------------------------------------------------------------------


def xyxy_to_center_scale(
  bbox_xyxy: np.ndarray, bbox_scale_factor: float
) -> tuple[np.ndarray, np.ndarray]:
  """``box2cs(xyxy2xywh(bbox), aspect_ratio=1, bbox_scale_factor)``."""
  return box2cs(
    xyxy2xywh(bbox_xyxy), aspect_ratio=1.0, bbox_scale_factor=bbox_scale_factor
  )


def _third_point(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """``b + rot90(a - b)`` (counter-clockwise), float32 like the reference."""
  d = a - b
  return b + np.array([-d[1], d[0]], dtype=np.float32)


def get_affine_transform(
  center: np.ndarray,
  scale: np.ndarray,
  rot: float,
  output_size: Sequence[int],
  inv: bool = False,
  pixel_std: float = 1.0,
) -> np.ndarray:
  """The 2x3 crop affine of mmhuman3d's ``get_affine_transform`` (shift 0).

  Maps the box centre to the output centre and the point ``scale[0]/2`` above
  the centre, rotated by ``rot`` degrees, to the top-middle of the output, with
  the third point fixed by a 90-degree turn (so the map is a similarity).
  Solved by ``cv2.getAffineTransform`` from float32 point triples.

  Args:
    center: [2] box centre (x, y) px.
    scale: [2] box size (w, h) px; only ``scale[0]`` is used.
    rot: rotation in degrees.
    output_size: (width, height) of the output.
    inv: return the output->input map instead.

  Returns:
    [2, 3] float64 matrix.
  """
  center = np.asarray(center)
  scale_tmp = np.asarray(scale) * pixel_std
  src_w = scale_tmp[0]
  dst_w, dst_h = output_size[0], output_size[1]
  rot_rad = np.pi * rot / 180
  sn, cs = np.sin(rot_rad), np.cos(rot_rad)
  half = src_w * -0.5  # the point (0, -w/2) rotated by rot_rad
  src_dir = np.array([0.0 * cs - half * sn, 0.0 * sn + half * cs])
  src = np.zeros((3, 2), dtype=np.float32)
  src[0, :] = center
  src[1, :] = center + src_dir
  src[2, :] = _third_point(src[0, :], src[1, :])
  dst = np.zeros((3, 2), dtype=np.float32)
  dst[0, :] = [dst_w * 0.5, dst_h * 0.5]
  dst[1, :] = np.array([dst_w * 0.5, dst_h * 0.5]) + np.array(
    [0.0, dst_w * -0.5]
  )
  dst[2, :] = _third_point(dst[0, :], dst[1, :])
  if inv:
    return cv2.getAffineTransform(np.float32(dst), np.float32(src))
  return cv2.getAffineTransform(np.float32(src), np.float32(dst))


def affine_transform_points(
  points: np.ndarray, trans: np.ndarray
) -> np.ndarray:
  """Applies a [2, 3] affine to [K, 2] points in float64 (returns float64)."""
  points = np.asarray(points, dtype=np.float64)
  return points @ trans[:, :2].T + trans[:, 2]


def rotation_matrix_z(rot_deg: float) -> np.ndarray:
  """[3, 3] float32 in-plane rotation by ``rot_deg`` degrees.

  As mmhuman3d's ``_construct_rotation_matrix`` (identity for 0).
  """
  rot_mat = np.eye(3, dtype=np.float32)
  if rot_deg != 0:
    rot_rad = np.deg2rad(rot_deg)
    sn, cs = np.sin(rot_rad), np.cos(rot_rad)
    rot_mat[0, :2] = [cs, -sn]
    rot_mat[1, :2] = [sn, cs]
  return rot_mat


def rotate_smpl_pose(pose: np.ndarray, rot: float) -> np.ndarray:
  """Left-multiplies the global orientation by a z-rotation of ``-rot`` deg.

  Args:
    pose: [72] (or [24, 3]) axis-angle SMPL pose, float32.
    rot: the crop rotation in degrees.

  Returns:
    A copy of ``pose`` (same shape) whose first 3 entries are
    ``Rodrigues(Rz(-rot) @ Rodrigues(pose[:3]))``, via ``cv2.Rodrigues`` in
    float32 as mmhuman3d's ``_rotate_smpl_pose``.
  """
  shape = np.shape(pose)
  pose_rot = np.array(pose, copy=True).reshape(-1)
  if rot != 0:
    rot_mat = rotation_matrix_z(-rot)
    per_rdg, _ = cv2.Rodrigues(pose_rot[:3].astype(np.float32))
    res_rot, _ = cv2.Rodrigues(np.dot(rot_mat, per_rdg))
    pose_rot[:3] = res_rot.T[0]
  return pose_rot.reshape(shape)


def aa_to_quat(axis_angle: np.ndarray) -> np.ndarray:
  """Axis-angle [..., 3] -> quaternion [..., 4] (w, x, y, z), input dtype.

  ``sin(|a|/2)/|a|`` is replaced by ``0.5 - |a|^2/48`` where ``|a| < 1e-6``
  (mmhuman3d ``aa_to_quat_numpy``).
  """
  angles = np.linalg.norm(axis_angle, ord=2, axis=-1, keepdims=True)
  half = 0.5 * angles
  small = np.abs(angles) < 1e-6
  ratio = np.empty_like(angles)
  ratio[~small] = np.sin(half[~small]) / angles[~small]
  ratio[small] = 0.5 - (angles[small] * angles[small]) / 48
  return np.concatenate([np.cos(half), axis_angle * ratio], axis=-1)


def center_scale_to_box(center: np.ndarray, scale: np.ndarray) -> np.ndarray:
  """[4] float32 (x1, y1, x2, y2) of the crop square ``center +- scale/2``."""
  w, h = scale[0] * 1.0, scale[1] * 1.0
  xmin = center[0] - w * 0.5
  ymin = center[1] - h * 0.5
  return np.array([xmin, ymin, xmin + w, ymin + h], dtype=np.float32)


# ----------------------------------------------------------------------------
# Random augmentations (each a pure function of its draws).
# ----------------------------------------------------------------------------


def dpg_bbox(
  bbox: np.ndarray, img_width: int, img_height: int, draws: Draws
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """RandomDPG's box perturbation (assumes the DPG coin came up).

  PatchScale > 0.85: a sub-box with both sides scaled by PatchScale (aspect
  kept) placed uniformly inside the box, ``x2 = x1 + pw + 1``. Otherwise each
  edge moves by a Gaussian fraction of the box size, clipped to the image
  (x1 in [1, W-3], x2 in [x1+2, W-3], same for y). The new crop is the square
  around it **without** the 1.25 margin.

  Returns:
    (bbox [4] float64 xyxy, center [2], scale [2]).
  """
  x1, y1, x2, y2 = (np.float64(v) for v in np.asarray(bbox)[:4])
  width = x2 - x1
  ht = y2 - y1
  patch_scale = draws.dpg_patch_scale
  if patch_scale > DPG_PATCH_THRESHOLD:
    ratio = ht / width
    if width < ht:
      patch_w = patch_scale * width
      patch_h = patch_w * ratio
    else:
      patch_h = patch_scale * ht
      patch_w = patch_h / ratio
    xmin = x1 + draws.dpg_patch_u[0] * (width - patch_w)
    ymin = y1 + draws.dpg_patch_u[1] * (ht - patch_h)
    xmax = xmin + patch_w + 1
    ymax = ymin + patch_h + 1
  else:
    nx1, ny1, nx2, ny2 = draws.dpg_jitter
    xmin = max(1, min(x1 + nx1 * width, img_width - 3))
    ymin = max(1, min(y1 + ny1 * ht, img_height - 3))
    xmax = min(max(xmin + 2, x2 + nx2 * width), img_width - 3)
    ymax = min(max(ymin + 2, y2 + ny2 * ht), img_height - 3)
  new_bbox = np.array([xmin, ymin, xmax, ymax])
  center, scale = xyxy_to_center_scale(new_bbox, bbox_scale_factor=1.0)
  return new_bbox, center, scale


def random_scale_rotation(
  scale: np.ndarray, draws: Draws, config: TransformConfig = DEFAULT_CONFIG
) -> tuple[np.ndarray, float]:
  """GetRandomScaleRotation: scale x clip(1 + sf*n, 1-sf, 1+sf); rotation
  clip(rf*n, -2rf, 2rf) degrees with probability rot_prob, else 0."""
  sf, rf = config.scale_factor, config.rot_factor
  s_factor = np.clip(draws.scale_randn * sf + 1, 1 - sf, 1 + sf)
  r_factor = np.clip(draws.rot_randn * rf, -rf * 2, rf * 2)
  rot = r_factor if draws.rot_u <= config.rot_prob else 0.0
  return np.asarray(scale) * s_factor, rot


def occlusion_rect(
  bbox: np.ndarray,
  img_width: int,
  img_height: int,
  draws: Draws,
  config: TransformConfig = DEFAULT_CONFIG,
) -> tuple[int, int, int, int] | None:
  """RandomOcclusion's rectangle (x, y, w, h) px, or None if none is pasted.

  Area U(``config.occlusion_area``) x box area (mmhuman3d: (0, 0.7); the
  authors' camera recipe: (0, 0.3)), aspect h/w U(``config
  .occlusion_ratio``) ((0.3, 1/0.3); theirs (0.5, 2)), top-left uniform in
  ``[x1, x2 - w - 1)``; pasted only when it lies inside the image (a single
  attempt); coordinates and sizes are truncated to int.
  """
  if draws.occ_u > config.occlusion_prob:
    return None
  xmin, ymin, xmax, ymax = (np.float64(v) for v in np.asarray(bbox)[:4])
  area_min, area_max = config.occlusion_area
  ratio_min, ratio_max = config.occlusion_ratio
  synth_area = (
    (draws.occ_area_u * (area_max - area_min) + area_min)
    * (xmax - xmin)
    * (ymax - ymin)
  )
  synth_ratio = draws.occ_ratio_u * (ratio_max - ratio_min) + ratio_min
  synth_h = math.sqrt(synth_area * synth_ratio)
  synth_w = math.sqrt(synth_area / synth_ratio)
  synth_xmin = draws.occ_x_u * ((xmax - xmin) - synth_w - 1) + xmin
  synth_ymin = draws.occ_y_u * ((ymax - ymin) - synth_h - 1) + ymin
  if (
    synth_xmin >= 0
    and synth_ymin >= 0
    and synth_xmin + synth_w < img_width
    and synth_ymin + synth_h < img_height
  ):
    return int(synth_xmin), int(synth_ymin), int(synth_w), int(synth_h)
  return None


def apply_occlusion(
  img: np.ndarray, rect: tuple[int, int, int, int], noise: np.ndarray
) -> np.ndarray:
  """Returns a copy of ``img`` with ``noise * 255`` (cast to the image dtype,
  i.e. truncated for uint8) pasted at ``rect`` = (x, y, w, h)."""
  x, y, w, h = rect
  noise = np.asarray(noise)
  if noise.shape != (h, w, 3):
    raise ValueError(
      f"occlusion noise has shape {noise.shape}, the occluder "
      f"rectangle needs {(h, w, 3)}"
    )
  out = img.copy()
  out[y : y + h, x : x + w, :] = noise * 255
  return out


def _flip_joints(
  joints: np.ndarray, vis: np.ndarray, width: int, pairs: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
  """x -> width - x - 1, left/right swapped, then multiplied by visibility."""
  mirrored = joints.copy()
  mirrored[:, 0] = width - mirrored[:, 0] - 1
  out, out_vis = mirrored.copy(), vis.copy()
  left, right = pairs[:, 0], pairs[:, 1]
  out[left], out[right] = mirrored[right], mirrored[left]
  out_vis[left], out_vis[right] = vis[right], vis[left]
  return out * out_vis, out_vis


def _flip_xyz(joints: np.ndarray, pairs: np.ndarray) -> np.ndarray:
  """Camera-space joints: x negated, left/right swapped."""
  mirrored = joints.copy()
  mirrored[:, 0] = -1 * mirrored[:, 0]
  out = mirrored.copy()
  out[pairs[:, 0]], out[pairs[:, 1]] = (
    mirrored[pairs[:, 1]],
    mirrored[pairs[:, 0]],
  )
  return out


def flip_pose(pose: np.ndarray) -> np.ndarray:
  """[24, 3] axis-angle: y and z negated, SMPL left/right joints swapped."""
  out = np.array(pose, copy=True)
  out[:, 1] = -1 * out[:, 1]
  out[:, 2] = -1 * out[:, 2]
  pairs = np.asarray(conventions.SMPL_FLIP_PAIRS)
  out[pairs[:, 0]], out[pairs[:, 1]] = (
    out[pairs[:, 1]].copy(),
    out[pairs[:, 0]].copy(),
  )
  return out


def flip_twist(
  twist: np.ndarray, weight: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
  """[23, 2] (cos, sin) twists: sin negated; SMPL pairs (index - 1) swapped in
  both the twists and their weights."""
  out = np.zeros_like(twist)
  out[:, 0] = twist[:, 0]
  out[:, 1] = -1 * twist[:, 1]
  out_w = np.array(weight, copy=True)
  pairs = np.asarray(conventions.SMPL_FLIP_PAIRS) - 1
  a, b = pairs[:, 0], pairs[:, 1]
  out[a], out[b] = out[b].copy(), out[a].copy()
  out_w[a], out_w[b] = out_w[b].copy(), out_w[a].copy()
  return out, out_w


def flip_sample(
  img: np.ndarray,
  results: dict[str, Any],
  flip_pairs: Sequence[Sequence[int]] = conventions.HUMAN_DATA_FLIP_PAIRS,
) -> tuple[np.ndarray, dict[str, Any]]:
  """HybrIKRandomFlip (when the coin came up) on the 190-joint annotation.

  Mirrors the image and the crop centre (``cx -> W - 1 - cx``), keypoints
  (``x -> W - 1 - x``, pairs swapped, times visibility) and, for SMPL samples,
  keypoints3d17, the relative xyz joints (x negated, swapped), the pose and
  the twists. ``bbox``, ``joint_root`` and the intrinsics are not flipped.
  """
  results = dict(results)
  img = cv2.flip(np.ascontiguousarray(img), 1)  # == img[:, ::-1], faster
  width = img.shape[1]
  center = np.array(results["center"], copy=True)
  center[0] = width - 1 - center[0]
  results["center"] = center
  pairs = np.asarray(flip_pairs, dtype=np.int64).reshape(-1, 2)
  kp, kp_vis = _flip_joints(
    results["keypoints3d"], results["keypoints3d_vis"], width, pairs
  )
  if results["has_smpl"]:
    kp17, kp17_vis = _flip_joints(
      results["keypoints3d17"], results["keypoints3d17_vis"], width, pairs
    )
    results["keypoints3d17_relative"] = _flip_xyz(
      results["keypoints3d17_relative"], pairs
    ).astype(np.float32)
    results["keypoints3d_relative"] = _flip_xyz(
      results["keypoints3d_relative"], pairs
    ).astype(np.float32)
    results["target_twist"], results["target_twist_weight"] = flip_twist(
      results["target_twist"], results["target_twist_weight"]
    )
    results["keypoints3d17"] = kp17.astype(np.float32)
    results["keypoints3d17_vis"] = kp17_vis.astype(np.float32)
    results["pose"] = flip_pose(results["pose"]).astype(np.float32)
  results["keypoints3d"] = kp.astype(np.float32)
  results["keypoints3d_vis"] = kp_vis.astype(np.float32)
  return img, results


# ----------------------------------------------------------------------------
# Deterministic steps.
# ----------------------------------------------------------------------------


def select_keypoints(
  results: dict[str, Any], maps=conventions.TRAIN_KEYPOINTS_MAPS
) -> dict[str, Any]:
  """NewKeypointsSelection: 190 -> 17 (H36M) and 190 -> 29 (HybrIK) joints."""
  results = dict(results)
  for keys, index in maps:
    index = list(index)
    for key in keys:
      if key in results:
        results[key] = results[key][..., index, :]
  return results


def affine_sample(
  img: np.ndarray, results: dict[str, Any], img_res: int
) -> tuple[np.ndarray, dict[str, Any]]:
  """HybrIKAffine: warp to ``img_res``^2 and move keypoints/pose along.

  The image is warped with ``cv2.warpAffine`` (bilinear, constant-0 border)
  in its own dtype and then cast to float32; keypoint (u, v) are mapped where
  ``vis[:, 0] > 0``; for SMPL samples the global orientation is rotated by
  ``-rotation`` about the camera z axis.
  """
  results = dict(results)
  center, scale, rot = results["center"], results["scale"], results["rotation"]
  trans = get_affine_transform(center, scale, rot, (img_res, img_res))
  warped = cv2.warpAffine(
    img, trans, (int(img_res), int(img_res)), flags=cv2.INTER_LINEAR
  )

  def move(kp, vis):
    kp = np.array(kp, copy=True)
    sel = vis[:, 0] > 0.0
    kp[sel, 0:2] = affine_transform_points(kp[sel, 0:2], trans)
    return kp

  results["keypoints3d"] = move(
    results["keypoints3d"], results["keypoints3d_vis"]
  ).astype(np.float32)
  results["keypoints3d_vis"] = results["keypoints3d_vis"].astype(np.float32)
  if results["has_smpl"]:
    results["keypoints3d17"] = move(
      results["keypoints3d17"], results["keypoints3d17_vis"]
    )
    results["pose"] = rotate_smpl_pose(
      np.asarray(results["pose"]).reshape(-1), rot
    ).reshape(24, 3)
  return warped.astype(np.float32), results


def _uvd_target(
  joints: np.ndarray, vis: np.ndarray, img_res: int, depth_factor: float
) -> tuple[np.ndarray, np.ndarray]:
  """(u/res - 0.5, v/res - 0.5, d/depth_factor) and its weight [K, 3] float32.

  Weight = visibility of x, zeroed for joints with any coordinate outside
  [-0.5, 0.5] (the mmhuman3d ``_integral_uvd_target_generator``).
  """
  joints = np.asarray(joints, dtype=np.float32)
  res = np.float32(img_res)
  target = np.zeros(joints.shape, dtype=np.float32)
  target[:, 0] = joints[:, 0] / res - np.float32(0.5)
  target[:, 1] = joints[:, 1] / res - np.float32(0.5)
  target[:, 2] = joints[:, 2] / np.float32(depth_factor)
  weight = np.repeat(np.asarray(vis, np.float32)[:, :1], 3, axis=1)
  outside = np.any((target > 0.5) | (target < -0.5), axis=1)
  weight[outside] = 0
  return target, weight


def generate_targets(
  results: dict[str, Any],
  img_res: int,
  test_mode: bool,
  config: TransformConfig = DEFAULT_CONFIG,
) -> dict[str, Any]:
  """GenerateHybrIKTarget (:func:`mmhuman3d_targets`); for training with
  ``config.targets == 'authors_cam'`` the authors' camera-model targets
  then replace or add what differs (:func:`authors_cam_targets`)."""
  out = mmhuman3d_targets(results, img_res, test_mode)
  if config.targets == "authors_cam" and not test_mode:
    out.update(authors_cam_targets(out, img_res, config.bbox_3d_shape))
  return out


def authors_cam_targets(
  results: Mapping[str, Any], img_res: int, bbox_3d_shape: float
) -> dict[str, np.ndarray]:
  """The targets of the authors' camera recipe that differ from mmhuman3d's
  (:mod:`hybrik_jax.data.cam_targets`), from a sample after the crop.

  SMPL samples: depth and root-relative xyz are taken to mm (data in mm
  when ``depth_factor >= 500``, else metres: the authors' rule), the xyz
  joints turned with the crop rotation (the authors rotate them; mmhuman3d
  leaves ``keypoints3d_relative`` unrotated), then
  :func:`cam_targets.smpl_targets`. Other samples keep mmhuman3d's targets
  plus :func:`cam_targets.non_smpl_targets` (no camera).
  """
  from hybrik_jax.data import cam_targets

  if not results["has_smpl"]:
    return cam_targets.non_smpl_targets()
  to_mm = 1.0 if results["depth_factor"] >= 500 else 1000.0
  joints = np.array(results["keypoints3d"], np.float32)  # [29, 3]
  joints[:, 2] = joints[:, 2] * np.float32(to_mm)
  xyz24 = np.asarray(results["keypoints3d_relative"], np.float32)[:24]
  xyz24 = cam_targets.rotate_xyz(xyz24 * np.float32(to_mm), results["rotation"])
  b = float(bbox_3d_shape)
  return cam_targets.smpl_targets(
    joints,
    np.asarray(results["keypoints3d_vis"], np.float32),
    xyz24,
    np.asarray(results["pose"]).reshape(24, 3),
    img_res,
    bbox_3d_shape=(b, b, b),
  )


def mmhuman3d_targets(
  results: dict[str, Any], img_res: int, test_mode: bool
) -> dict[str, Any]:
  """GenerateHybrIKTarget: ``trans_inv``, crop ``bbox`` and all targets.

  SMPL samples: uvd (29) with the range check and weight x visibility twice,
  xyz_24 / xyz_17 = root-relative joints / int(depth_factor), quaternion pose
  (w, x, y, z), beta, unit theta/smpl weights. COCO: (u, v) x visibility, no
  range check, depth 0 with weight 0. MPI-INF-3DHP (train): uvd with the
  range check x visibility. Both non-SMPL datasets zero HybrIK joints
  1, 2, 6, 9, 10, 11; any other non-SMPL case gets all-zero targets.
  """
  results = dict(results)
  c, s, r = results["center"], results["scale"], results["rotation"]
  results["trans_inv"] = get_affine_transform(
    c, s, r, (img_res, img_res), inv=True
  ).astype(np.float32)
  results["bbox"] = center_scale_to_box(c, s)
  kp = np.asarray(results["keypoints3d"], np.float32)
  kp_vis = np.asarray(results["keypoints3d_vis"], np.float32)
  num_joints = kp.shape[0]
  depth_factor = results["depth_factor"]
  f32 = lambda x: np.asarray(x, dtype=np.float32)  # noqa: E731

  if results["has_smpl"]:
    results["target_theta"] = f32(
      aa_to_quat(f32(results["pose"])).reshape(24 * 4)
    )
    results["target_theta_weight"] = np.ones(24 * 4, np.float32)
    results["target_beta"] = f32(results["beta"])
    results["target_smpl_weight"] = np.ones(1, np.float32)
    uvd, w29 = _uvd_target(kp, kp_vis, img_res, depth_factor)
    w29 = w29 * kp_vis
    denom = np.float32(int(depth_factor))
    xyz17 = f32(results["keypoints3d17_relative"]) / denom
    vis17 = f32(results["keypoints3d17_vis"])
    xyz24 = f32(results["keypoints3d_relative"])[:24] / denom
    vis24 = kp_vis[:24]
    results["target_uvd_29"] = uvd.reshape(-1)
    results["target_weight_29"] = w29.reshape(-1)
    results["target_xyz_24"] = xyz24.reshape(-1)
    results["target_weight_24"] = (vis24 * vis24).reshape(-1)
    results["target_xyz_17"] = xyz17.reshape(-1)
    results["target_weight_17"] = (vis17 * vis17).reshape(-1)
    return results

  mask_idx = list(conventions.NON_SMPL_MASKED_JOINTS)
  label_uvd = np.zeros((29, 3), np.float32)
  label_w = np.zeros((29, 3), np.float32)
  dataset_name = results["ann_info"]["dataset_name"]
  if dataset_name == "coco":
    target = np.zeros((num_joints, 2), np.float32)
    target[:, 0] = kp[:, 0] / np.float32(img_res) - np.float32(0.5)
    target[:, 1] = kp[:, 1] / np.float32(img_res) - np.float32(0.5)
    weight = np.repeat(kp_vis[:, :1], 2, axis=1)
    label = target * weight
    label[mask_idx] = 0
    weight[mask_idx] = 0
    label_uvd[:, :2] = label
    label_w[:, :2] = weight
  elif dataset_name == "mpi_inf_3dhp" and not test_mode:
    target, weight = _uvd_target(kp, kp_vis, img_res, depth_factor)
    weight = weight * kp_vis
    label = target * weight
    label[mask_idx] = 0
    weight[mask_idx] = 0
    label_uvd, label_w = label, weight
  results["target_uvd_29"] = label_uvd.reshape(-1)
  results["target_xyz_24"] = np.zeros(72, np.float32)
  results["target_weight_24"] = label_w[:24].reshape(-1)
  results["target_weight_29"] = label_w.reshape(-1)
  results["target_xyz_17"] = np.zeros(51, np.float32)
  results["target_weight_17"] = np.zeros(51, np.float32)
  results["target_theta"] = np.zeros(96, np.float32)
  results["target_beta"] = np.zeros(10, np.float32)
  results["target_smpl_weight"] = np.zeros(1, np.float32)
  results["target_theta_weight"] = np.zeros(96, np.float32)
  return results


def channel_noise(
  img: np.ndarray, factors: Sequence[float], clip: bool = False
) -> np.ndarray:
  """RandomChannelNoise: channel k (BGR order) x factors[k] via cv2.multiply
  (float image, no clipping). ``clip``: then clipped to [0, 255] and
  truncated to integers (the authors' colour jitter on the uint8 crop)."""
  pn = np.asarray(factors, dtype=np.float64).reshape(1, 3)
  out = cv2.multiply(img, pn)
  if clip:
    out = np.floor(np.clip(out, 0, 255)).astype(out.dtype)
  return out


def normalize(
  img: np.ndarray,
  mean: Sequence[float] = DEFAULT_CONFIG.mean,
  std: Sequence[float] = DEFAULT_CONFIG.std,
  to_rgb: bool = True,
) -> np.ndarray:
  """mmcv ``imnormalize``: float32, BGR->RGB, ``(x - mean) * (1 / std)``.

  mean/std are rounded to float32 first (mmhuman3d's Normalize stores them as
  float32) and applied as float64 scalars by OpenCV.
  """
  img = np.asarray(img).astype(np.float32)
  mean64 = np.float64(np.asarray(mean, np.float32).reshape(1, -1))
  stdinv = 1 / np.float64(np.asarray(std, np.float32).reshape(1, -1))
  if to_rgb:
    img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
  img = cv2.subtract(img, mean64)
  return cv2.multiply(img, stdinv)


# ----------------------------------------------------------------------------
# Sampling and entry points.
# ----------------------------------------------------------------------------


def _copy_results(annotation: Mapping[str, Any]) -> dict[str, Any]:
  out = {}
  for k, v in annotation.items():
    if isinstance(v, np.ndarray):
      v = v.copy()
    elif isinstance(v, dict):
      v = dict(v)
    out[k] = v
  return out


def sample_draws(
  rng: np.random.Generator,
  annotation: Mapping[str, Any],
  image_shape: Sequence[int],
  config: TransformConfig = DEFAULT_CONFIG,
) -> Draws:
  """Draws every random number of one training sample, in pipeline order.

  All scalar draws are always taken (a fixed count per sample); the
  occluder's noise patch is drawn only if an occluder will be pasted, with the
  size :func:`occlusion_rect` gives for the (possibly DPG-perturbed) box.

  Args:
    rng: the generator to draw from.
    annotation: the sample's annotation (``bbox``, ``ann_info`` width/height).
    image_shape: shape of the image the sample will be cut from (H, W, 3).
    config: probabilities and factors.
  """
  if len(image_shape) != 3 or image_shape[2] != 3:
    raise ValueError(f"expected an H x W x 3 image, got shape {image_shape}")
  d = Draws()
  d.dpg_u = float(rng.random())
  d.dpg_patch_scale = float(rng.random())
  d.dpg_patch_u = tuple(float(v) for v in rng.random(2))
  mu, sigma = np.asarray(DPG_JITTER).T
  d.dpg_jitter = tuple(float(v) for v in rng.normal(mu, sigma))
  d.scale_randn = float(rng.standard_normal())
  d.rot_randn = float(rng.standard_normal())
  d.rot_u = float(rng.random())
  d.occ_u = float(rng.random())
  d.occ_area_u, d.occ_ratio_u, d.occ_x_u, d.occ_y_u = (
    float(v) for v in rng.random(4)
  )
  width = annotation["ann_info"]["width"]
  height = annotation["ann_info"]["height"]
  bbox = annotation["bbox"]
  if d.dpg_u <= config.dpg_prob:
    bbox, _, _ = dpg_bbox(bbox, width, height, d)
  rect = occlusion_rect(bbox, width, height, d, config)
  if rect is not None:
    d.occ_noise = rng.random((rect[3], rect[2], 3))
  d.flip_u = float(rng.random())
  f = config.noise_factor
  d.channel_noise = tuple(float(v) for v in rng.uniform(1 - f, 1 + f, 3))
  return d


CAM_TARGET_KEYS = (
  "target_xyz_weight_24",
  "camera_scale",
  "camera_trans",
  "camera_valid",
  "camera_error",
)


def _collect(
  img: np.ndarray, results: Mapping[str, Any], return_meta: bool
) -> dict[str, Any]:
  f32 = lambda x: np.asarray(x, dtype=np.float32)  # noqa: E731
  out = {
    "img": f32(img),
    "trans_inv": f32(results["trans_inv"]),
    "intrinsic_param": f32(results["intrinsic_param"]),
    "joint_root": f32(results["joint_root"]),
    "depth_factor": np.array([results["depth_factor"]], np.float32),
    "target_twist": f32(results["target_twist"]),
    "target_twist_weight": f32(results["target_twist_weight"]),
    "bbox": f32(results["bbox"]),
    "sample_idx": np.asarray(results.get("sample_idx", -1), np.int32),
  }
  for key in CAM_TARGET_KEYS:  # targets='authors_cam' only
    if key in results:
      out[key] = f32(results[key])
  for key in (
    "target_uvd_29",
    "target_xyz_24",
    "target_weight_24",
    "target_weight_29",
    "target_xyz_17",
    "target_weight_17",
    "target_theta",
    "target_beta",
    "target_smpl_weight",
    "target_theta_weight",
  ):
    out[key] = f32(results[key])
  if return_meta:
    out["meta"] = {
      "center": np.asarray(results["center"]),
      "scale": np.asarray(results["scale"]),
      "rotation": float(results["rotation"]),
      "image_path": results.get("image_path", ""),
      "is_flipped": bool(results.get("is_flipped", False)),
    }
  return out


def train_sample(
  annotation: Mapping[str, Any],
  image: np.ndarray,
  draws: Draws,
  config: TransformConfig = DEFAULT_CONFIG,
  return_meta: bool = False,
) -> dict[str, Any]:
  """One training sample: the full mmhuman3d train pipeline after loading.

  Args:
    annotation: a per-sample dict from :class:`HybrIKAnnotations` (not
      modified).
    image: the sample's image, H x W x 3 BGR uint8 (as mmcv loads it).
    draws: the sample's random numbers (:func:`sample_draws`).
    config: transform settings.
    return_meta: add ``meta`` {center, scale, rotation, image_path,
      is_flipped} for debugging.

  Returns:
    Dict of float32 numpy arrays with mmhuman3d's key names: ``img``
    [res, res, 3] (RGB, normalised, NHWC), ``trans_inv`` [2, 3],
    ``intrinsic_param`` [3, 3], ``joint_root`` [3], ``depth_factor`` [1],
    ``target_uvd_29`` [87], ``target_xyz_24`` [72], ``target_weight_24`` [72],
    ``target_weight_29`` [87], ``target_xyz_17`` [51], ``target_weight_17``
    [51], ``target_theta`` [96], ``target_beta`` [10], ``target_smpl_weight``
    [1], ``target_theta_weight`` [96], ``target_twist`` [23, 2],
    ``target_twist_weight`` [23, 2], ``bbox`` [4]; ``sample_idx`` int32 [].
  """
  results = _copy_results(annotation)
  width = results["ann_info"]["width"]
  height = results["ann_info"]["height"]
  img = image
  # RandomDPG.
  if draws.dpg_u <= config.dpg_prob:
    results["bbox"], results["center"], results["scale"] = dpg_bbox(
      results["bbox"], width, height, draws
    )
  # GetRandomScaleRotation.
  results["scale"], results["rotation"] = random_scale_rotation(
    results["scale"], draws, config
  )
  # RandomOcclusion (on the original image, inside the current bbox).
  rect = occlusion_rect(results["bbox"], width, height, draws, config)
  if rect is not None:
    if draws.occ_noise is None:
      raise ValueError("the draws paste an occluder but carry no occ_noise")
    img = apply_occlusion(img, rect, draws.occ_noise)
  # HybrIKRandomFlip.
  results["is_flipped"] = draws.flip_u <= config.flip_prob
  if results["is_flipped"]:
    img, results = flip_sample(img, results, config.flip_pairs)
  results = select_keypoints(results, config.keypoints_maps)
  img, results = affine_sample(img, results, config.img_res)
  results = generate_targets(results, config.img_res, False, config)
  img = channel_noise(img, draws.channel_noise, config.noise_clip)
  img = normalize(img, config.mean, config.std, config.to_rgb)
  return _collect(img, results, return_meta)


def test_sample(
  annotation: Mapping[str, Any],
  image: np.ndarray,
  config: TransformConfig = DEFAULT_CONFIG,
  return_meta: bool = False,
) -> dict[str, Any]:
  """One test sample (deterministic): selection, crop (1.25 x GT box,
  rotation 0), test-mode targets, normalisation. Same keys as
  :func:`train_sample`."""
  results = _copy_results(annotation)
  results = select_keypoints(results, config.keypoints_maps)
  img, results = affine_sample(image, results, config.img_res)
  results = generate_targets(results, config.img_res, test_mode=True)
  img = normalize(img, config.mean, config.std, config.to_rgb)
  return _collect(img, results, return_meta)


# `test_sample` is an entry point, not a pytest test.
test_sample.__test__ = False
