"""The authors' HybrIK SMPL layer (``SMPL_layer.hybrik``), on hybrik_jax.smpl.

Jeff-sjtu/HybrIK's ``hybrik/models/layers/smpl/SMPL.py`` + ``lbs.py``
(``hybrik()``, ``batch_inverse_kinematics_transform[_naive]``) drive the same
twist-and-swing IK and SMPL skinning as mmhuman3d's ``HybrIKSMPL``, which
:func:`hybrik_jax.smpl.hybrik_forward` reproduces. The rest skeleton
(24 regressed joints + vertices 411, 2445, 5905, 3216, 6617), the kinematic
tables (parents, children with spine3 -> neck) and the skinning are shared
(``hybrik_layer.rest_joints29``, ``lbs.lbs_from_rotmats``); the differences,
implemented here, are:

1. **Eval, non-naive IK** (``naive=False``, the final IK of both camera
   models): identical to mmhuman3d's eval branch (adaptive 15 mm rule, swing
   of bone i -> child(i) from the FK-reconstructed parent) EXCEPT the pelvis
   SVD, which has the Kabsch determinant fix: ``R = V diag(1, 1, det(V U^T))
   U^T`` (mmhuman3d: ``V U^T``, a reflection when the three pelvis bones are
   mirrored). Identity where the entries of S sum to exactly 0, as both.
2. **Naive IK** (``naive=True``: HRNet's ``update_scale``, and every call in
   train mode, where the layer forces ``naive = True``): the analytic pelvis
   (swing of spine1 built with Rodrigues' cos/sin -- not pytorch3d's
   axis-angle as mmhuman3d's train branch -- then a rotation about the
   predicted spine aligning the mean hip direction), and for every joint i
   the swing of the rest bone i -> child(i) onto the PREDICTED bone
   i -> child(i) rotated into the parent's frame (mmhuman3d's train branch
   swings pa(i) -> i and reads the target from the non-detached skeleton).
   The predicted relative skeleton is stop-gradient, the twist axis is
   ``t / (|t| + 1e-8)``.
3. **Outputs**: without ``transl``, vertices are made relative to the H36M
   pelvis regressed from the mesh (``joints_from_verts[:, 0]``, stop-
   gradient), joints to joint 0, H36M joints to their pelvis (mmhuman3d
   leaves the vertices where the body model puts them).
4. **Leaves**: the authors' layer builds a 24-joint rest pose when given
   ``leaf_thetas`` and then fails in the 29-joint IK (as mmhuman3d's), and
   neither camera model passes them: not supported here.

Positions are in metres; ``pose_skeleton`` is root-relative.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from hybrik_jax import geometry
from hybrik_jax.smpl import lbs, tables
from hybrik_jax.smpl.hybrik_layer import rest_joints29
from hybrik_jax.smpl.model import SMPLModel

ADAPTIVE_THRESHOLD_M = 15 / 1000  # metres
PARENTS = tables.HYBRIK_PARENTS
CHILDREN = tables.HYBRIK_CHILDREN
SPINE1 = 3
HIPS = (1, 2)


def _relative(x: jax.Array) -> jax.Array:
  """x[k] - x[pa(k)] for k >= 1; row 0 kept. [B, 29, 3]."""
  par = np.asarray(PARENTS)
  return jnp.concatenate([x[:, :1], x[:, 1:] - x[:, par[1:]]], axis=1)


def swing(rest: jax.Array, target: jax.Array) -> jax.Array:
  """HybrIK's Rodrigues swing taking ``rest`` towards ``target``.

  axis = r x v / (|r x v| + 1e-8), cos = r.v / (|r||v| + 1e-8),
  sin = |r x v| / (|r||v| + 1e-8). [..., 3] x2 -> [..., 3, 3].
  """
  axis = geometry.cross(rest, target)
  axis_norm = geometry.safe_norm(axis)
  den = geometry.safe_norm(rest) * geometry.safe_norm(target) + 1e-8
  cos = geometry.dot(rest, target) / den
  sin = axis_norm / den
  axis = axis / (axis_norm + 1e-8)[..., None]
  return geometry.rodrigues_from_axis(axis, cos, sin)


def twist(rest: jax.Array, phis: jax.Array, eps: float) -> jax.Array:
  """Rotation about ``rest / (|rest| + eps)`` by (cos, sin) = ``phis``
  (already normalised). [..., 3], [..., 2] -> [..., 3, 3]."""
  if eps:
    axis = rest / (geometry.safe_norm(rest, keepdims=True) + eps)
  else:
    axis = geometry.safe_div(rest, geometry.safe_norm(rest, keepdims=True))
  return geometry.rodrigues_from_axis(axis, phis[..., 0], phis[..., 1])


def pelvis_orient_svd_detfix(
  rel_pose: jax.Array, rel_rest: jax.Array
) -> jax.Array:
  """``batch_get_pelvis_orient_svd`` of the authors (Kabsch with det fix).

  S = sum_c rel_rest[c] rel_pose[c]^T over the pelvis children (spine1,
  left hip, right hip); with S = U diag(s) V^T (s descending),
  R = V diag(1, 1, det(V U^T)) U^T; identity where sum(S) == 0.

  Args:
    rel_pose: [B, 29, 3] predicted bones.
    rel_rest: [B, 29, 3] rest bones.

  Returns:
    [B, 3, 3].
  """
  idx = np.asarray((SPINE1,) + HIPS)
  s = jnp.sum(rel_rest[:, idx, :, None] * rel_pose[:, idx, None, :], axis=1)
  zero = jnp.sum(s, axis=(-2, -1)) == 0
  s_safe = jnp.where(
    zero[:, None, None], jnp.diag(jnp.asarray([3.0, 2.0, 1.0], s.dtype)), s
  )
  u, _, vh = jnp.linalg.svd(s_safe, full_matrices=False)  # [B,3,3] x2
  v = geometry.transpose3(vh)
  ut = geometry.transpose3(u)
  det = jnp.linalg.det(geometry.matmul3(v, ut))  # [B]
  fix = jnp.ones(det.shape + (3,), s.dtype).at[..., 2].set(det)  # [B, 3]
  rot = geometry.matmul3(v * fix[:, None, :], ut)
  return jnp.where(zero[:, None, None], jnp.eye(3, dtype=s.dtype), rot)


def pelvis_orient_analytic(
  rel_pose: jax.Array, rel_rest: jax.Array
) -> jax.Array:
  """The authors' ``batch_get_pelvis_orient`` (naive IK). [B, 29, 3] x2 ->
  [B, 3, 3]: swing of the rest spine1 bone onto the predicted one
  (Rodrigues with cos/sin), then the swing about the predicted spine that
  aligns the mean hip bone, both projected orthogonally to the spine."""
  s_f = rel_pose[:, SPINE1]  # [B, 3]
  s_r = rel_rest[:, SPINE1]
  spine_dir = s_f / (geometry.safe_norm(s_f, keepdims=True) + 1e-8)
  rot_spine = swing(s_r, s_f)
  c_f = (rel_pose[:, HIPS[0]] + rel_pose[:, HIPS[1]]) / len(HIPS)
  c_r = (rel_rest[:, HIPS[0]] + rel_rest[:, HIPS[1]]) / len(HIPS)
  c_r = geometry.matvec3(rot_spine, c_r)
  c_f = c_f - geometry.dot(c_f, spine_dir, keepdims=True) * spine_dir
  c_r = c_r - geometry.dot(c_r, spine_dir, keepdims=True) * spine_dir
  return geometry.matmul3(swing(c_r, c_f), rot_spine)


def inverse_kinematics(
  pose_skeleton: jax.Array,
  phis: jax.Array,
  rest_pose: jax.Array,
  naive: bool,
) -> jax.Array:
  """The authors' IK: ``batch_inverse_kinematics_transform[_naive]``.

  Args:
    pose_skeleton: [B, 29, 3] target joints (metres, root-relative).
    phis: [B, 23, 2] twist (cos, sin), normalised here (|phi| + 1e-8).
    rest_pose: [B, 29, 3] rest joints.
    naive: static; the naive branch (see the module docstring).

  Returns:
    [B, 24, 3, 3] local rotations (row 0 = global orientation).
  """
  rel_rest = _relative(rest_pose)
  rel_pose = jax.lax.stop_gradient(_relative(pose_skeleton))
  rel_pose = rel_pose.at[:, 0].set(jax.lax.stop_gradient(rel_rest[:, 0]))
  final = pose_skeleton - pose_skeleton[:, :1] + rel_rest[:, :1]
  phis = phis / (geometry.safe_norm(phis, keepdims=True) + 1e-8)
  if naive:
    root = pelvis_orient_analytic(rel_pose, rel_rest)
  else:
    root = pelvis_orient_svd_detfix(rel_pose, rel_rest)
  pp_norm = geometry.safe_norm(rel_pose, keepdims=True)  # [B, 29, 1]
  tt_norm = geometry.safe_norm(rel_rest, keepdims=True)

  n = tables.NUM_SMPL_JOINTS
  chain = [None] * n  # global rotations: [B, 3, 3]
  local = [None] * n
  posed = [None] * n  # rotated rest joints (non-naive): [B, 3]
  chain[0] = local[0] = root
  posed[0] = rel_rest[:, 0]
  for level in tables.tree_levels(PARENTS)[1:]:
    joints = tuple(j for j in level if CHILDREN[j] != -1)
    if not joints:
      continue
    idx = np.asarray(joints)
    cidx = np.asarray([CHILDREN[j] for j in joints])
    g_par = jnp.stack([chain[PARENTS[j]] for j in joints], axis=1)  # [B,L,3,3]
    rest_vec = rel_rest[:, cidx]  # [B, L, 3]: rest bone j -> child(j)
    if naive:
      target = rel_pose[:, cidx]
      eps = 1e-8
    else:
      q_par = jnp.stack([posed[PARENTS[j]] for j in joints], axis=1)
      q = q_par + geometry.matvec3(g_par, rel_rest[:, idx])  # [B, L, 3]
      for k, j in enumerate(joints):
        posed[j] = q[:, k]
      target = final[:, cidx] - q
      # o = p_c * |t_c| / |p_c| (no eps in the reference: a zero-length
      # predicted bone gives NaN there, "NaN > 15 mm" is False, target kept).
      orig = rel_pose[:, cidx] * geometry.safe_div(
        tt_norm[:, cidx], pp_norm[:, cidx]
      )
      diff = geometry.safe_norm(target - orig)
      use_orig = (diff > ADAPTIVE_THRESHOLD_M) & (pp_norm[:, cidx, 0] > 0)
      target = jnp.where(use_orig[..., None], orig, target)
      eps = 0.0
    target = geometry.matvec3(geometry.transpose3(g_par), target)
    rot = geometry.matmul3(
      swing(rest_vec, target), twist(rest_vec, phis[:, idx - 1], eps)
    )  # [B, L, 3, 3]
    g_new = geometry.matmul3(g_par, rot)
    for k, j in enumerate(joints):
      local[j] = rot[:, k]
      chain[j] = g_new[:, k]
  return jnp.stack(local, axis=1)


def authors_hybrik(
  model: SMPLModel,
  pose_skeleton: jax.Array,
  betas: jax.Array,
  phis: jax.Array,
  naive: bool = False,
  transl: jax.Array | None = None,
) -> dict[str, jax.Array]:
  """``SMPL_layer.hybrik(pose_skeleton, betas, phis, global_orient=None)``.

  Args:
    model: SMPL model with ``J_regressor_extra`` (H36M-17).
    pose_skeleton: [B, 29, 3] target joints (metres, root-relative).
    betas: [B, 10] shape.
    phis: [B, 23, 2] twists (cos, sin), unnormalised.
    naive: static; naive IK (the layer forces it in train mode: pass
      ``naive or train``).
    transl: optional [B, 3] metres; then nothing is made relative and transl
      is added to vertices, joints and H36M joints.

  Returns:
    dict (metres): ``vertices`` [B, V, 3] (minus the H36M pelvis),
    ``joints`` [B, 24, 3] (minus joint 0), ``joints_from_verts`` [B, 17, 3]
    (minus the H36M pelvis), ``rot_mats`` [B, 24, 3, 3] local rotations.
  """
  if model.J_regressor_extra is None:
    raise ValueError("authors_hybrik needs model.J_regressor_extra (H36M)")
  dtype = model.dtype
  pose_skeleton = jnp.asarray(pose_skeleton, dtype)
  betas = jnp.asarray(betas, dtype)
  phis = jnp.asarray(phis, dtype)
  rest = rest_joints29(model, betas)  # [B, 29, 3]
  rot_mats = inverse_kinematics(pose_skeleton, phis, rest, naive)
  vertices, joints, jfv = lbs.lbs_from_rotmats(
    model, betas, rest[:, : tables.NUM_SMPL_JOINTS], rot_mats
  )
  if transl is not None:
    t = jnp.asarray(transl, dtype)[:, None, :]
    vertices, joints, jfv = vertices + t, joints + t, jfv + t
  else:
    pelvis = jax.lax.stop_gradient(jfv[:, :1])  # [B, 1, 3]
    vertices = vertices - pelvis
    joints = joints - jax.lax.stop_gradient(joints[:, :1])
    jfv = jfv - pelvis
  return {
    "vertices": vertices,
    "joints": joints,
    "joints_from_verts": jfv,
    "rot_mats": rot_mats,
  }
