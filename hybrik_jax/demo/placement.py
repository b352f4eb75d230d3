"""Placing the network's mesh in the demo camera's frame (metres).

The network's vertices (metres) are not root-centred; the posed pelvis sits
at the shaped rest pelvis ``t0 = (J_regressor @ v_shaped)[0]``. The
camera-frame mesh is ``vertices - t0 + pelvis_cam``. By default
``pelvis_cam`` is the translation that best reprojects the 24 predicted SMPL
joints onto the network's own 2D joint estimates (linear least squares on the
pinhole equations, ``placement='fit'``); if that fit is degenerate (or puts
any vertex closer than ``MIN_FIT_DEPTH_M`` = 0.1 m to the camera plane) or
with ``--placement bbox``, it is the depth prior of
:mod:`hybrik_jax.demo.camera`, along the ray through the predicted 2D pelvis:
``pelvis_cam = K^-1 [u_0, v_0, 1] (z_root + d_0 * 2 m)`` (the network's own
back-projection of joint 0). :class:`hybrik_jax.demo.predictor.Predictor`
makes that choice with the functions here.
"""

from __future__ import annotations

import numpy as np

from hybrik_jax.demo.camera import Camera

MIN_FIT_DEPTH_M = 0.1


def rest_pelvis(body_model, betas: np.ndarray) -> np.ndarray:
  """[B, 3] ``t0 = (J_regressor @ v_shaped)[0]`` in metres (model frame)."""
  from hybrik_jax.smpl import lbs

  betas = np.asarray(betas, np.float32).reshape(-1, np.shape(betas)[-1])
  return np.asarray(lbs.shaped_points(body_model, betas)[:, 0], np.float64)


def place_vertices(
  vertices: np.ndarray, t0: np.ndarray, pelvis_cam: np.ndarray
) -> np.ndarray:
  """Camera-frame mesh ``vertices - t0 + pelvis_cam``.

  Args:
    vertices: [..., V, 3] HybrIK / SMPL vertices (metres) whose posed pelvis
      is at ``t0``.
    t0: [..., 3] rest pelvis (metres).
    pelvis_cam: [..., 3] pelvis in the camera frame (metres).

  Returns:
    [..., V, 3] camera-frame vertices (metres).
  """
  vertices = np.asarray(vertices, np.float64)
  return (
    vertices
    - np.asarray(t0, np.float64)[..., None, :]
    + np.asarray(pelvis_cam, np.float64)[..., None, :]
  )


def uvd_to_image(
  uvd: np.ndarray, trans_inv: np.ndarray, image_size: int
) -> np.ndarray:
  """Network uvd [..., J, 3] (in [-0.5, 0.5)) -> image pixels [..., J, 2]."""
  uvd = np.asarray(uvd, np.float64)
  crop = (uvd[..., :2] + 0.5) * float(image_size)  # [..., J, 2]
  t = np.asarray(trans_inv, np.float64)
  return crop @ np.swapaxes(t[..., :2], -1, -2) + t[..., None, :, 2]


def fit_translation(
  joints_rel: np.ndarray, uv: np.ndarray, camera: Camera
) -> np.ndarray:
  """Translation ``t`` that best projects ``joints_rel + t`` onto ``uv``.

  Linear least squares on the pinhole equations ``f (x + t_x) = (u - c_x)
  (z + t_z)`` and ``f (y + t_y) = (v - c_y) (z + t_z)`` for all joints.

  Args:
    joints_rel: [J, 3] joints (metres) relative to the point being placed.
    uv: [J, 2] their observed image positions (pixels).
    camera: the camera.

  Returns:
    [3] translation (metres); NaNs if the system is degenerate.
  """
  p = np.asarray(joints_rel, np.float64)
  uv = np.asarray(uv, np.float64)
  f = camera.focal
  du = uv[:, 0] - camera.princpt[0]
  dv = uv[:, 1] - camera.princpt[1]
  zeros, ones = np.zeros_like(du), np.ones_like(du)
  a = np.concatenate(
    [np.stack([f * ones, zeros, -du], -1), np.stack([zeros, f * ones, -dv], -1)]
  )  # [2J, 3]
  b = np.concatenate(
    [du * p[:, 2] - f * p[:, 0], dv * p[:, 2] - f * p[:, 1]]
  )  # [2J]
  t, _, rank, _ = np.linalg.lstsq(a, b, rcond=None)
  if rank < 3 or not np.all(np.isfinite(t)):
    return np.full(3, np.nan)
  return t
