"""Random plausible SMPL bodies: joint limits, poses, shapes, orientations.

Body poses are axis-angle rotations (radians) of SMPL joints 1..23, parent-
relative, in the template frame (+x = the body's left, +y up, +z forward);
global orientations (joint 0) are axis-angle in an OpenCV camera frame (x
right, y down, z forward); shapes are the first ``tables.NUM_BETAS`` betas.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from hybrik_jax.smpl import tables

# Per-joint limits of the sampled body pose: axis-angle components (x, y, z)
# in radians, in the template frame (+x = body's left, +y up, +z forward).
# A component is drawn uniformly in [lo, hi] (every range contains 0) and
# scaled by a per-sample "activity" factor. Knees flex one way (+x), elbows
# one way (-y for the left arm, +y for the right arm).
_R = lambda lo, hi: (lo, hi)  # noqa: E731 - readability of the table.
JOINT_LIMITS = {
  "left_hip": (_R(-1.5, 0.4), _R(-0.4, 0.4), _R(-0.2, 0.7)),
  "right_hip": (_R(-1.5, 0.4), _R(-0.4, 0.4), _R(-0.7, 0.2)),
  "spine1": (_R(-0.15, 0.35), _R(-0.25, 0.25), _R(-0.15, 0.15)),
  "left_knee": (_R(0.0, 2.0), _R(0.0, 0.0), _R(0.0, 0.0)),
  "right_knee": (_R(0.0, 2.0), _R(0.0, 0.0), _R(0.0, 0.0)),
  "spine2": (_R(-0.1, 0.25), _R(-0.2, 0.2), _R(-0.1, 0.1)),
  "left_ankle": (_R(-0.3, 0.5), _R(-0.2, 0.2), _R(-0.15, 0.15)),
  "right_ankle": (_R(-0.3, 0.5), _R(-0.2, 0.2), _R(-0.15, 0.15)),
  "spine3": (_R(-0.1, 0.2), _R(-0.2, 0.2), _R(-0.1, 0.1)),
  "left_foot": (_R(-0.1, 0.1), _R(-0.1, 0.1), _R(-0.1, 0.1)),
  "right_foot": (_R(-0.1, 0.1), _R(-0.1, 0.1), _R(-0.1, 0.1)),
  "neck": (_R(-0.3, 0.4), _R(-0.4, 0.4), _R(-0.25, 0.25)),
  "left_collar": (_R(-0.15, 0.15), _R(-0.15, 0.15), _R(-0.15, 0.15)),
  "right_collar": (_R(-0.15, 0.15), _R(-0.15, 0.15), _R(-0.15, 0.15)),
  "jaw": (_R(-0.2, 0.2), _R(-0.3, 0.3), _R(-0.15, 0.15)),
  "left_shoulder": (_R(-0.6, 0.6), _R(-1.2, 0.5), _R(-1.4, 0.6)),
  "right_shoulder": (_R(-0.6, 0.6), _R(-0.5, 1.2), _R(-0.6, 1.4)),
  "left_elbow": (_R(-0.3, 0.3), _R(-2.2, 0.0), _R(0.0, 0.0)),
  "right_elbow": (_R(-0.3, 0.3), _R(0.0, 2.2), _R(0.0, 0.0)),
  "left_wrist": (_R(-0.5, 0.5), _R(-0.4, 0.4), _R(-0.4, 0.4)),
  "right_wrist": (_R(-0.5, 0.5), _R(-0.4, 0.4), _R(-0.4, 0.4)),
  "left_thumb": (_R(-0.2, 0.2), _R(-0.2, 0.2), _R(-0.2, 0.2)),
  "right_thumb": (_R(-0.2, 0.2), _R(-0.2, 0.2), _R(-0.2, 0.2)),
}
# [23, 3, 2] (lo, hi) per body joint 1..23 and axis.
POSE_LIMITS = np.asarray(
  [JOINT_LIMITS[name] for name in tables.JOINT_NAMES_29[1:24]], dtype=np.float64
)


def sample_betas(
  rng: np.random.Generator, num: int, clip: float = 2.0
) -> np.ndarray:
  """[num, 10] shape coefficients ~ N(0, 1) clipped to [-clip, clip]."""
  return np.clip(rng.standard_normal((num, tables.NUM_BETAS)), -clip, clip)


def sample_body_pose(
  rng: np.random.Generator, num: int, activity: tuple[float, float] = (0.4, 1.0)
) -> np.ndarray:
  """Random plausible body poses.

  Args:
    rng: numpy random generator.
    num: number of poses.
    activity: range of a per-sample factor that scales all joint angles
      (smaller = closer to the rest T-pose).

  Returns:
    [num, 23, 3] axis-angle (radians) of SMPL joints 1..23, parent-relative.
  """
  lo, hi = POSE_LIMITS[..., 0], POSE_LIMITS[..., 1]  # [23, 3]
  u = rng.uniform(size=(num, 23, 3))
  scale = rng.uniform(activity[0], activity[1], size=(num, 1, 1))
  return (lo + (hi - lo) * u) * scale


def upright_orientation(
  yaw: np.ndarray, tilt_x: np.ndarray, tilt_z: np.ndarray
) -> np.ndarray:
  """Camera-frame global orientations of an upright body facing the camera.

  The template has +y up and faces +z; 180 degrees about x makes it stand
  upright in the camera frame (y down) facing the camera (-z). Then a yaw
  about the camera's vertical axis and small tilts about x and z.

  Args:
    yaw, tilt_x, tilt_z: [N] angles in radians.

  Returns:
    [N, 3, 3] rotation matrices.
  """
  flip = Rotation.from_rotvec([np.pi, 0.0, 0.0])
  yaw_r = Rotation.from_rotvec(
    np.stack([np.zeros_like(yaw), yaw, np.zeros_like(yaw)], -1)
  )
  tilt = Rotation.from_rotvec(
    np.stack([tilt_x, np.zeros_like(tilt_x), np.zeros_like(tilt_x)], -1)
  ) * Rotation.from_rotvec(
    np.stack([np.zeros_like(tilt_z), np.zeros_like(tilt_z), tilt_z], -1)
  )
  return (tilt * yaw_r * flip).as_matrix()


def sample_global_orient(
  rng: np.random.Generator,
  num: int,
  max_yaw_deg: float = 90.0,
  max_tilt_deg: float = 10.0,
) -> np.ndarray:
  """[num, 3] axis-angle: upright, facing the camera, yaw +-90, tilt +-10."""
  yaw = np.deg2rad(rng.uniform(-max_yaw_deg, max_yaw_deg, num))
  tx = np.deg2rad(rng.uniform(-max_tilt_deg, max_tilt_deg, num))
  tz = np.deg2rad(rng.uniform(-max_tilt_deg, max_tilt_deg, num))
  return Rotation.from_matrix(upright_orientation(yaw, tx, tz)).as_rotvec()
