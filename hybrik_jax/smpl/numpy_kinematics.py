"""SMPL kinematics in numpy (float64) for data generation and demos.

Rotations, HybrIK's 29-joint rest skeleton (24 SMPL joints + 5 leaf
vertices), the true twist angles of given rotations (swing-twist split about
each rest bone) and forward kinematics over that skeleton, plus the batched
SMPL forward (``hybrik_jax.smpl.forward`` jitted in fixed-size chunks) with
numpy in and out. Units: metres; template frame (+y up) unless stated.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy.spatial.transform import Rotation

from hybrik_jax.smpl import tables

FORWARD_BATCH = 32  # SMPL forward batch (fixed: one compilation).


def axis_angle_to_matrix(aa: np.ndarray) -> np.ndarray:
  """[..., 3] axis-angle -> [..., 3, 3] rotation matrices (float64)."""
  aa = np.asarray(aa, dtype=np.float64)
  flat = Rotation.from_rotvec(aa.reshape(-1, 3)).as_matrix()
  return flat.reshape(aa.shape[:-1] + (3, 3))


def rest_skeleton29(model, betas: np.ndarray) -> np.ndarray:
  """HybrIK rest skeleton of shaped bodies (numpy, float64).

  Args:
    model: SMPLModel (arrays are read with np.asarray).
    betas: [N, NB] shape coefficients.

  Returns:
    [N, 29, 3] rest joints in metres (template frame): J_regressor . v_shaped
    for the 24 SMPL joints, shaped template vertices for the 5 leaves.
  """
  betas = np.asarray(betas, dtype=np.float64)
  nb = betas.shape[-1]
  v_template = np.asarray(model.v_template, dtype=np.float64)
  shapedirs = np.asarray(model.shapedirs, dtype=np.float64)[..., :nb]
  j_reg = np.asarray(model.J_regressor, dtype=np.float64)
  v_shaped = v_template[None] + np.einsum("nl,vkl->nvk", betas, shapedirs)
  joints = np.einsum("jv,nvk->njk", j_reg, v_shaped)
  leaves = v_shaped[:, np.asarray(tables.LEAF_VERTEX_IDS)]
  return np.concatenate([joints, leaves], axis=1)


def swing_twist_phis(rot_mats: np.ndarray, rest29: np.ndarray) -> np.ndarray:
  """True HybrIK twists of local rotations by swing-twist decomposition.

  For SMPL joint j = 1..23 with rest bone t = rest[children[j]] - rest[j]
  (``tables.HYBRIK_CHILDREN``), the local rotation is split as
  R_j = Swing . Twist, Swing the minimal rotation taking t/|t| to R_j t/|t|
  and Twist a rotation about t by angle phi. Then HybrIK's IK (which builds
  exactly that swing from the target bone) recovers R_j from (cos, sin)(phi).

  Args:
    rot_mats: [N, 24, 3, 3] local rotations (row 0, the root, is unused).
    rest29: [N, 29, 3] rest skeleton (``rest_skeleton29``).

  Returns:
    [N, 23, 2] unit (cos phi, sin phi); entry k belongs to joint k + 1.
  """
  rot_mats = np.asarray(rot_mats, dtype=np.float64)
  rest29 = np.asarray(rest29, dtype=np.float64)
  joints = np.arange(1, 24)
  children = np.asarray(tables.HYBRIK_CHILDREN)[joints]
  t = rest29[:, children] - rest29[:, joints]  # [N, 23, 3]
  n = t / np.linalg.norm(t, axis=-1, keepdims=True)
  r = rot_mats[:, 1:]  # [N, 23, 3, 3]
  rn = np.einsum("nkij,nkj->nki", r, n)  # rotated bone direction
  # Swing: rotation taking unit n to unit rn, R = I + [v]x + [v]x^2 / (1 + c).
  v = np.cross(n, rn)
  c = np.sum(n * rn, axis=-1)
  vx = _skew(v)
  swing = np.eye(3) + vx + vx @ vx / np.maximum(1.0 + c, 1e-12)[..., None, None]
  twist = np.swapaxes(swing, -1, -2) @ r  # rotation about n
  cos = (np.trace(twist, axis1=-2, axis2=-1) - 1.0) / 2.0
  w = (
    np.stack(
      [
        twist[..., 2, 1] - twist[..., 1, 2],
        twist[..., 0, 2] - twist[..., 2, 0],
        twist[..., 1, 0] - twist[..., 0, 1],
      ],
      -1,
    )
    / 2.0
  )
  sin = np.sum(w * n, axis=-1)
  phis = np.stack([cos, sin], axis=-1)
  return phis / np.linalg.norm(phis, axis=-1, keepdims=True)


def _skew(v: np.ndarray) -> np.ndarray:
  z = np.zeros_like(v[..., 0])
  return np.stack(
    [
      np.stack([z, -v[..., 2], v[..., 1]], -1),
      np.stack([v[..., 2], z, -v[..., 0]], -1),
      np.stack([-v[..., 1], v[..., 0], z], -1),
    ],
    -2,
  )


def fk_skeleton29(rot_mats: np.ndarray, rest29: np.ndarray) -> np.ndarray:
  """Forward kinematics of the 29-joint HybrIK skeleton (numpy, float64).

  Args:
    rot_mats: [N, 24, 3, 3] local rotations (root first).
    rest29: [N, 29, 3] rest skeleton.

  Returns:
    [N, 29, 3] posed joints (metres, model frame: the pelvis stays at
    rest29[:, 0], as in SMPL without translation). The 5 leaves move rigidly
    with their parents (identity leaf rotations), as in the golden fixtures'
    ``pose_skeleton_fk``.
  """
  rot_mats = np.asarray(rot_mats, dtype=np.float64)
  rest29 = np.asarray(rest29, dtype=np.float64)
  parents = tables.HYBRIK_PARENTS
  glob = [None] * len(parents)
  pos = [None] * len(parents)
  glob[0], pos[0] = rot_mats[:, 0], rest29[:, 0]
  for j in range(1, len(parents)):
    p = parents[j]
    bone = rest29[:, j] - rest29[:, p]
    pos[j] = pos[p] + np.einsum("nij,nj->ni", glob[p], bone)
    glob[j] = glob[p] @ rot_mats[:, j] if j < tables.NUM_SMPL_JOINTS else None
  return np.stack(pos, axis=1)


@functools.cache
def _jitted_forward():
  import jax

  from hybrik_jax.smpl import forward

  return jax.jit(forward)


def smpl_forward_batched(
  model, betas: np.ndarray, thetas: np.ndarray, batch: int = FORWARD_BATCH
) -> dict[str, np.ndarray]:
  """SMPL forward (``hybrik_jax.smpl.forward``) in fixed-size jitted chunks.

  Args:
    model: SMPLModel with an H36M ``J_regressor_extra``.
    betas: [N, 10].
    thetas: [N, 24, 3] axis-angle (global orientation first).
    batch: chunk size (the last chunk is padded; one compilation).

  Returns:
    dict of numpy float64 arrays: vertices [N, V, 3], joints [N, 24, 3],
    joints_extra [N, 17, 3]; metres, model frame, no translation.
  """
  fn = _jitted_forward()
  n = betas.shape[0]
  outs = {"vertices": [], "joints": [], "joints_extra": []}
  for start in range(0, n, batch):
    b = betas[start : start + batch]
    th = thetas[start : start + batch]
    m = b.shape[0]
    pad = batch - m
    if pad:
      b = np.concatenate([b, np.zeros((pad,) + b.shape[1:])])
      th = np.concatenate([th, np.zeros((pad,) + th.shape[1:])])
    res = fn(
      model,
      b.astype(np.float32),
      th[:, 1:].astype(np.float32),
      th[:, 0].astype(np.float32),
    )
    for k in outs:
      outs[k].append(np.asarray(res[k], dtype=np.float64)[:m])
  return {k: np.concatenate(v) for k, v in outs.items()}
