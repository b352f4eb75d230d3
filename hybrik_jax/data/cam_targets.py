"""Training targets of the authors' camera models (numpy, per sample).

From Jeff-sjtu/HybrIK ``hybrik/utils/presets/simple_transform_3d_smpl_cam.py``
(``SimpleTransform3DSMPLCam.__call__``, SMPL branch, and its
``calc_cam_scale_trans2`` / ``back_projection``), re-written for this
project. Only what differs from mmhuman3d's ``GenerateHybrIKTarget``
(:func:`hybrik_jax.data.transforms.generate_targets`, which was derived from
the authors' code) lives here; :mod:`transforms` calls it for SMPL samples
when ``TransformConfig.targets == 'authors_cam'``:

* depth and xyz are normalised by ``bbox_3d_shape`` (2200 mm in the model
  zoo's configs), not by the sample's ``depth_factor`` (2000 mm);
* the uvd targets have **no** [-0.5, 0.5] range check (the authors commented
  it out): joints outside the crop keep their weight;
* ``target_uvd_29`` is returned multiplied by its weight (as theirs);
* ``target_theta`` / ``target_theta_weight`` are the 24 rotation matrices
  [216] (``batch_rodrigues_numpy``), not quaternions [96];
* ``target_xyz_weight_24`` [72] (= ``target_weight_24``) and the camera
  targets ``camera_scale`` [1], ``camera_trans`` [2] (metres),
  ``camera_valid`` [1], ``camera_error`` [1] (mm).

The camera (``calc_cam_scale_trans2``): with the crop's focal length ``f``
(1000 px for the 256-px crop) every joint with all three uvd weights set
satisfies ``u * 256 / f * (z + f / (256 s)) = x + tx`` (and the same for
v, y, ty), u, v normalised crop coordinates, (x, y, z) the root-relative
joint in metres; the weighted linear least squares in (1/s, tx, ty) gives
the scale ``s`` (the network's ``cam_scale``) and the xy offset (metres).
``camera_error`` is the mean distance (mm) of the joints back-projected with
that camera from the 3-D joints; ``camera_valid`` = error < 70 mm. With
fewer than 2 usable joints: scale 0, offset 0, valid 0, error -1.
"""

from __future__ import annotations

import numpy as np

FOCAL_LENGTH = 1000.0  # px for the 256-px crop (MODEL.FOCAL_LENGTH)
CROP_SIZE = 256.0  # px: the focal length's reference crop (hard-coded 256)
BBOX_3D_SHAPE = (2200.0, 2200.0, 2200.0)  # mm (MODEL.BBOX_3D_SHAPE)
VALID_ERROR_MM = 70.0  # camera_valid iff the back-projection error is below
MIN_JOINTS = 2  # fewer usable joints: no camera


def depth_factor_to_metres(depth: float) -> float:
  """metres per unit of a depth given in mm (> 500) or metres (the
  authors' ``depth_factor2meter`` rule): 2200 -> 2.2, 2.2 -> 2.2."""
  return depth * 1e-3 if depth >= 500 else depth


def rotate_xyz(xyz: np.ndarray, rot_deg: float) -> np.ndarray:
  """[J, 3] camera-frame joints turned about z with the crop rotation
  ``rot_deg`` (degrees; the authors' ``rotate_xyz_jts``: by ``-rot`` in
  x right / y down, so they stay aligned with the rotated crop). Returns
  the input dtype."""
  out = np.array(xyz, copy=True)
  rad = -np.pi * rot_deg / 180
  sn, cs = np.sin(rad), np.cos(rad)
  out[:, 0] = xyz[:, 0] * cs - xyz[:, 1] * sn
  out[:, 1] = xyz[:, 0] * sn + xyz[:, 1] * cs
  return out


def rodrigues_matrices(axis_angle: np.ndarray) -> np.ndarray:
  """[N, 3] axis-angle -> [N, 3, 3] rotation matrices, float64.

  The authors' ``batch_rodrigues_numpy``: ``angle = |aa + 1e-8|``, axis =
  aa / angle, ``R = I + sin K + (1 - cos) K^2``.
  """
  aa = np.asarray(axis_angle)
  angle = np.linalg.norm(aa + 1e-8, axis=1, keepdims=True)  # [N, 1]
  axis = aa / angle
  rx, ry, rz = axis[:, 0:1], axis[:, 1:2], axis[:, 2:3]
  zeros = np.zeros_like(rx)
  k = np.concatenate(
    [zeros, -rz, ry, rz, zeros, -rx, -ry, rx, zeros], axis=1
  ).reshape(-1, 3, 3)  # [N, 3, 3]
  cos = np.cos(angle)[:, None, :]
  sin = np.sin(angle)[:, None, :]
  return np.eye(3)[None] + sin * k + (1 - cos) * np.einsum("bij,bjk->bik", k, k)


def camera_scale_trans(
  xyz: np.ndarray,
  uvd: np.ndarray,
  uvd_weight: np.ndarray,
  focal_length: float = FOCAL_LENGTH,
  bbox_3d_shape: tuple[float, float, float] = BBOX_3D_SHAPE,
) -> tuple[float, np.ndarray, float, float]:
  """The camera target of one sample (``calc_cam_scale_trans2``).

  Args:
    xyz: [J, 3] root-relative joints in units of ``bbox_3d_shape``
      (the ``target_xyz_24`` layout), float32.
    uvd: [J, 3] normalised uvd (u, v in [-0.5, 0.5] of the crop, d in
      units of ``bbox_3d_shape[2]``), float32.
    uvd_weight: [J, 3]; a joint is used iff its three weights sum to >= 3.
    focal_length: px for the 256-px crop.
    bbox_3d_shape: mm (only ``[2]`` is used: its metres scale xyz and d).

  Returns:
    (scale, trans [2] metres, valid 0./1., error mm); (0, 0, 0., -1) when
    fewer than 2 joints are usable or the system is singular.
  """
  f = float(focal_length)
  to_m = depth_factor_to_metres(float(bbox_3d_shape[2]))
  weight = (np.sum(uvd_weight, axis=-1, keepdims=True) >= 3.0) * 1.0  # [J, 1]
  if weight.sum() < MIN_JOINTS:
    return 0.0, np.zeros(2), 0.0, -1.0
  xyz = xyz * to_m  # metres
  n = len(uvd)
  ax = np.zeros((n, 3))
  ax[:, 0] = uvd[:, 0]
  ax[:, 1] = -1
  ay = np.zeros((n, 3))
  ay[:, 0] = uvd[:, 1]
  ay[:, 2] = -1
  a = np.concatenate([ax * weight, ay * weight], axis=0)  # [2J, 3]
  bx = (xyz[:, 0] - CROP_SIZE * uvd[:, 0] / f * xyz[:, 2]) * weight[:, 0]
  by = (xyz[:, 1] - CROP_SIZE * uvd[:, 1] / f * xyz[:, 2]) * weight[:, 0]
  b = np.concatenate([bx, by], axis=0)  # [2J]
  try:
    para = np.linalg.solve(a.T @ a, a.T @ b)  # [1/s, tx, ty]
  except np.linalg.LinAlgError:  # the authors' code raises here
    return 0.0, np.zeros(2), 0.0, -1.0
  scale = 1.0 / para[0]
  trans = para[1:]
  # Back-project uvd with that camera and compare with xyz (metres).
  depth = f / (CROP_SIZE * scale)
  back = np.zeros_like(uvd)
  back[:, 2] = uvd[:, 2]
  back[:, :2] = (uvd[:, :2] * CROP_SIZE / f) * (
    back[:, 2:] * to_m + depth
  ) - trans
  back[:, 2] = back[:, 2] * to_m
  diff = np.sum((back - xyz) ** 2, axis=-1) * weight[:, 0]
  error = np.sqrt(diff).sum() / (weight.sum() + 1e-6) * 1000
  return float(scale), trans, float(error < VALID_ERROR_MM), float(error)


def smpl_targets(
  joints29: np.ndarray,
  vis29: np.ndarray,
  xyz24: np.ndarray,
  pose: np.ndarray,
  img_res: int,
  bbox_3d_shape: tuple[float, float, float] = BBOX_3D_SHAPE,
  focal_length: float = FOCAL_LENGTH,
) -> dict[str, np.ndarray]:
  """The authors' targets of an SMPL sample (their ``__call__``, SMPL
  branch, after the crop).

  Args:
    joints29: [29, 3] crop-space joints: u, v px in the ``img_res`` crop, d
      = depth relative to the root, mm.
    vis29: [29, 3] visibility (0/1).
    xyz24: [24, 3] root-relative camera-frame joints, mm (rotated and
      flipped with the crop).
    pose: [24, 3] axis-angle SMPL pose (global orientation rotated with the
      crop).
    img_res: crop size, px.
    bbox_3d_shape: mm.
    focal_length: px for the 256-px crop.

  Returns:
    float32 arrays: ``target_uvd_29`` [87] (x its weight),
    ``target_weight_29`` [87], ``target_xyz_24`` [72], ``target_weight_24``
    [72], ``target_xyz_weight_24`` [72], ``target_theta`` [216],
    ``target_theta_weight`` [216], ``camera_scale`` [1], ``camera_trans``
    [2], ``camera_valid`` [1], ``camera_error`` [1].
  """
  joints29 = np.asarray(joints29, np.float32)
  vis29 = np.asarray(vis29, np.float32)
  shape = [float(v) for v in bbox_3d_shape]  # python floats: float32 maths
  # _integral_uvd_target_generator (no range check).
  w29 = np.repeat(vis29[:, :1], 3, axis=1).astype(np.float32)  # [29, 3]
  uvd = np.zeros((29, 3), np.float32)
  uvd[:, 0] = joints29[:, 0] / int(img_res) - 0.5
  uvd[:, 1] = joints29[:, 1] / int(img_res) - 0.5
  uvd[:, 2] = joints29[:, 2] / shape[2]
  w29 = w29 * vis29
  # _integral_xyz_target_generator on the 24 joints.
  xyz = np.asarray(xyz24, np.float32)
  t_xyz = np.zeros((24, 3), np.float32)
  for k in range(3):
    t_xyz[:, k] = xyz[:, k] / shape[k]
  w24 = vis29[:24].copy() * vis29[:24]
  scale, trans, valid, error = camera_scale_trans(
    t_xyz, uvd[:24].copy(), w29[:24].copy(), focal_length, bbox_3d_shape
  )
  f32 = lambda x: np.asarray(x, np.float32)  # noqa: E731
  return {
    "target_uvd_29": f32(uvd * w29).reshape(-1),
    "target_weight_29": f32(w29).reshape(-1),
    "target_xyz_24": t_xyz.reshape(-1),
    "target_weight_24": f32(w24).reshape(-1),
    "target_xyz_weight_24": f32(w24).reshape(-1),
    "target_theta": f32(
      rodrigues_matrices(np.asarray(pose).reshape(24, 3))
    ).reshape(-1),
    "target_theta_weight": np.ones(24 * 9, np.float32),
    "camera_scale": f32([scale]),
    "camera_trans": f32(trans),
    "camera_valid": f32([valid]),
    "camera_error": f32([error]),
  }


def non_smpl_targets() -> dict[str, np.ndarray]:
  """The extra keys of a sample without SMPL (COCO / 3DHP through the
  mmhuman3d data): zero rotation-matrix targets and no camera
  (``target_xyz_weight_24`` 0, so the camera losses skip it)."""
  return {
    "target_theta": np.zeros(24 * 9, np.float32),
    "target_theta_weight": np.zeros(24 * 9, np.float32),
    "target_xyz_weight_24": np.zeros(72, np.float32),
    "camera_scale": np.zeros(1, np.float32),
    "camera_trans": np.zeros(2, np.float32),
    "camera_valid": np.zeros(1, np.float32),
    "camera_error": np.full(1, -1.0, np.float32),
  }
