"""HybrIK's SMPL layer: IK from a 29-joint skeleton, then skinning.

Reproduces mmhuman3d 0.11.0 ``HybrIKSMPL.forward``
(``mmhuman3d/models/body_models/smpl.py``):

1. v_shaped = v_template + shapedirs . betas; rest joints = J_regressor .
   v_shaped (24) + shaped vertices 411, 2445, 5905, 3216, 6617 (5 leaves).
2. Twist-and-swing IK (``ik.batch_inverse_kinematics_transform``).
3. Rigid chain of the 24 local rotations, pose blend shapes, LBS.
4. H36M joints = J_regressor_extra . vertices.
5. Without ``transl``: joints and H36M joints are made root-relative (the
   subtracted root is stop-gradient); vertices are left as they are (their
   pelvis sits at the rest pelvis). With ``transl``: nothing is made
   root-relative and transl is added to all three.

Difference from the reference: mmhuman3d's ``HybrIKSMPL.forward`` crashes when
given ``leaf_thetas`` (it builds a 24-joint rest pose, then indexes 29
parents). Here the rest pose always has 29 joints; leaf rotations are passed
to the IK and only affect its output ``rot_mats`` [B, 29, 3, 3] (and the
leaves of the rotated rest pose) — the mesh, joints and ``poses`` use the 24
SMPL rotations, since SMPL has no leaf joints to skin.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from hybrik_jax.smpl import ik, lbs, tables
from hybrik_jax.smpl.model import SMPLModel


def rest_joints29(model: SMPLModel, betas: jax.Array) -> jax.Array:
  """HybrIK rest skeleton [B, 29, 3] (metres) for shape ``betas`` [B, NB].

  24 regressed joints of the shaped template, then its vertices 411, 2445,
  5905, 3216, 6617 (head top, middle finger tips, big toes).
  """
  return lbs.shaped_points(
    model, betas, model.J_regressor, tables.LEAF_VERTEX_IDS
  )


def hybrik_forward(
  model: SMPLModel,
  pose_skeleton: jax.Array,
  betas: jax.Array,
  phis: jax.Array,
  train: bool = False,
  leaf_thetas: jax.Array | None = None,
  transl: jax.Array | None = None,
) -> dict[str, jax.Array]:
  """``HybrIKSMPL.forward``: IK on a predicted skeleton, then the SMPL mesh.

  Args:
    model: SMPL model; needs ``J_regressor_extra`` (H36M-17, [17, V]).
    pose_skeleton: [B, 29, 3] target joints (metres, root-relative).
    betas: [B, 10] shape coefficients.
    phis: [B, 23, 2] twist (cos, sin) pairs (normalised inside the IK).
    train: static; selects the IK's training branch (mmhuman3d uses the
      module's ``training`` flag).
    leaf_thetas: optional [B, 5, 3, 3] leaf rotations (see module docstring).
    transl: optional [B, 3] translation (metres).

  Returns:
    dict with ``vertices`` [B, V, 3], ``joints`` [B, 24, 3] (FK of the IK
    rotations), ``joints_from_verts`` [B, 17, 3], ``poses`` [B, 24, 3, 3]
    (local rotations fed to SMPL), ``rot_mats`` (the raw IK output:
    [B, 24, 3, 3], or [B, 29, 3, 3] with ``leaf_thetas``). Metres.
  """
  if model.J_regressor_extra is None:
    raise ValueError(
      "hybrik_forward needs model.J_regressor_extra (the H36M "
      "regressor); load the model with extra_regressor=... or "
      "call model.with_extra_regressor(...)"
    )
  dtype = model.dtype
  pose_skeleton = jnp.asarray(pose_skeleton, dtype)
  betas = jnp.asarray(betas, dtype)
  phis = jnp.asarray(phis, dtype)
  rest = rest_joints29(model, betas)  # [B, 29, 3]
  rot_mats, _ = ik.batch_inverse_kinematics_transform(
    pose_skeleton,
    None,
    phis,
    rest,
    tables.HYBRIK_CHILDREN,
    tables.HYBRIK_PARENTS,
    train=train,
    leaf_thetas=leaf_thetas,
  )
  poses = rot_mats[:, : tables.NUM_SMPL_JOINTS]
  vertices, joints, joints_from_verts = lbs.lbs_from_rotmats(
    model, betas, rest[:, : tables.NUM_SMPL_JOINTS], poses
  )
  if transl is not None:
    transl = jnp.asarray(transl, dtype)[:, None, :]
    vertices = vertices + transl
    joints = joints + transl
    joints_from_verts = joints_from_verts + transl
  else:
    joints = joints - jax.lax.stop_gradient(joints[:, :1])
    joints_from_verts = joints_from_verts - jax.lax.stop_gradient(
      joints_from_verts[:, :1]
    )
  return {
    "vertices": vertices,
    "joints": joints,
    "joints_from_verts": joints_from_verts,
    "poses": poses,
    "rot_mats": rot_mats,
  }
