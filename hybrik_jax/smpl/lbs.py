"""SMPL forward pass (shape blend, joint regression, rigid chain, LBS).

Semantics follow smplx 0.1.28 (``smplx/lbs.py`` and ``SMPL.forward``): joints
are regressed from the shaped template, the rigid chain rotates about the rest
joints, and ``transl`` is added to vertices and joints. Nothing is made
root-relative. All positions are in metres in the model's frame.

Layout for speed: rest joints come from the regressor applied to the blend
*directions* (J v_template + (J shapedirs) beta, tiny), so the [B, V, 3] shaped
template is needed only by the mesh. The mesh (shape blend as one
[c, NB] x [NB, V*3] matmul, pose blend as one [c, 207] x [207, V*3] matmul,
skinning as one [c*12, J] x [J, V] contraction and an explicit per-vertex
3x4 apply, extra-joint regression) runs over batch chunks of ``c`` samples
on CPU (``lax.map``): every intermediate then stays a few MB, instead of
several fresh [B, V, 12] arrays whose first touch dominates the run time at
large B. On accelerators the whole batch is one chunk.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from hybrik_jax import geometry
from hybrik_jax.smpl import tables
from hybrik_jax.smpl.model import SMPLModel

_HI = jax.lax.Precision.HIGHEST


CPU_CHUNK = 64  # samples per mesh chunk on CPU (see module docstring)


def _check_betas(model: SMPLModel, betas: jax.Array) -> int:
  nb = betas.shape[-1]
  if betas.ndim != 2 or nb > model.num_betas:
    raise ValueError(
      f"betas must be [B, NB] with NB <= {model.num_betas} "
      f"(the model's shape directions), got {betas.shape}"
    )
  return nb


def shape_blend(model: SMPLModel, betas: jax.Array) -> jax.Array:
  """Shaped template ``v_template + shapedirs . betas``.

  Args:
    model: the SMPL model.
    betas: [B, NB] shape coefficients (NB <= model.num_betas; the first NB
      shape directions are used, as smplx does).

  Returns:
    [B, V, 3] shaped rest vertices (metres).
  """
  nb = _check_betas(model, betas)
  dirs = model.shapedirs[..., :nb].reshape(-1, nb)  # [V*3, NB]
  offsets = jnp.matmul(betas, dirs.T, precision=_HI)  # [B, V*3]
  return model.v_template[None] + offsets.reshape(betas.shape[0], -1, 3)


def regress_joints(regressor: jax.Array, vertices: jax.Array) -> jax.Array:
  """Per-sample ``regressor @ vertices``: [J, V] x [B, V, 3] -> [B, J, 3]."""
  return jnp.einsum("jv,bvk->bjk", regressor, vertices, precision=_HI)


def shaped_points(
  model: SMPLModel,
  betas: jax.Array,
  regressor: jax.Array | None = None,
  vertex_ids: Sequence[int] = (),
) -> jax.Array:
  """Regressed joints and selected vertices of the shaped template.

  Equals ``regressor @ shape_blend(model, betas)`` (then the vertices
  ``vertex_ids``) by linearity, computed as ``R v_template + (R shapedirs)
  beta`` without forming the [B, V, 3] shaped template.

  Args:
    model: the SMPL model.
    betas: [B, NB] shape coefficients.
    regressor: [J, V] joint regressor (default: model.J_regressor).
    vertex_ids: static vertex indices appended after the joints.

  Returns:
    [B, J + len(vertex_ids), 3] rest positions (metres).
  """
  nb = _check_betas(model, betas)
  if regressor is None:
    regressor = model.J_regressor
  dirs = model.shapedirs[..., :nb]  # [V, 3, NB]
  base = jnp.matmul(regressor, model.v_template, precision=_HI)  # [J, 3]
  jdirs = jnp.einsum("jv,vkl->jkl", regressor, dirs, precision=_HI)
  if vertex_ids:
    ids = np.asarray(vertex_ids)
    base = jnp.concatenate([base, model.v_template[ids]], axis=0)
    jdirs = jnp.concatenate([jdirs, dirs[ids]], axis=0)
  n = base.shape[0]
  offsets = jnp.matmul(betas, jdirs.reshape(n * 3, nb).T, precision=_HI)
  return base[None] + offsets.reshape(betas.shape[0], n, 3)


def batch_rigid_transform(
  rot_mats: jax.Array,
  joints: jax.Array,
  parents: Sequence[int] = tables.SMPL_PARENTS,
  levels: Sequence[Sequence[int]] | None = None,
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Forward kinematics of local rotations on rest joints (smplx semantics).

  The chain ``A_k = A_pa(k) [R_k | t_k - t_pa(k)]`` is evaluated level by
  level of the kinematic tree (joints of one depth at once).

  Args:
    rot_mats: [B, J, 3, 3] local rotations (row 0 = global orientation).
    joints: [B, J, 3] rest joint positions (metres).
    parents: static parent table (parents[0] = -1).
    levels: static tree levels (computed from ``parents`` if None).

  Returns:
    posed_joints: [B, J, 3] translations of the global transforms.
    rel_rot: [B, J, 3, 3] the *global* rotations ``R_0 R_1 ... R_k`` along
      each chain. Removing the rest joint location changes only the
      translation of a skinning transform, so this is both the global
      orientation of joint k and the rotation part of its skinning
      transform (smplx's ``rel_transforms[..., :3, :3]``).
    rel_transl: [B, J, 3] translation part of the skinning transforms
      (the global transform with the rest joint location removed).
  """
  parents = tuple(int(p) for p in parents)
  num_joints = len(parents)
  if levels is None:
    levels = tables.tree_levels(parents)
  par = np.asarray(parents)
  rel_joints = joints - jnp.concatenate(
    [jnp.zeros_like(joints[:, :1]), joints[:, par[1:]]], axis=1
  )

  glob_r = [None] * num_joints
  glob_t = [None] * num_joints
  glob_r[0] = rot_mats[:, 0]
  glob_t[0] = rel_joints[:, 0]
  for level in levels[1:]:
    idx = np.asarray(level)
    pr = jnp.stack([glob_r[parents[j]] for j in level], axis=1)  # [B, L, 3, 3]
    pt = jnp.stack([glob_t[parents[j]] for j in level], axis=1)  # [B, L, 3]
    new_r = geometry.matmul3(pr, rot_mats[:, idx])
    new_t = geometry.matvec3(pr, rel_joints[:, idx]) + pt
    for k, j in enumerate(level):
      glob_r[j] = new_r[:, k]
      glob_t[j] = new_t[:, k]
  glob_r = jnp.stack(glob_r, axis=1)  # [B, J, 3, 3]
  glob_t = jnp.stack(glob_t, axis=1)  # [B, J, 3]
  rel_t = glob_t - geometry.matvec3(glob_r, joints)
  return glob_t, glob_r, rel_t


def pose_blend(model: SMPLModel, rot_mats: jax.Array) -> jax.Array:
  """Pose-corrective offsets from ``vec(R_1..R_23 - I)``.

  Args:
    model: the SMPL model (posedirs [207, V*3]).
    rot_mats: [B, 24, 3, 3] local rotations.

  Returns:
    [B, V, 3] vertex offsets (metres).
  """
  b = rot_mats.shape[0]
  feat = (rot_mats[:, 1:] - jnp.eye(3, dtype=rot_mats.dtype)).reshape(b, -1)
  offsets = jnp.matmul(feat, model.posedirs, precision=_HI)  # [B, V*3]
  return offsets.reshape(b, -1, 3)


def skin(
  lbs_weights: jax.Array,
  rel_rot: jax.Array,
  rel_transl: jax.Array,
  v_posed: jax.Array,
) -> jax.Array:
  """Linear blend skinning.

  The per-vertex 3x4 transforms are formed channel-major ([B, 12, V], one
  [B*12, J] x [J, V] contraction) and applied with explicit multiply-adds,
  which XLA:CPU vectorises along the vertex axis.

  Args:
    lbs_weights: [V, J] skinning weights.
    rel_rot: [B, J, 3, 3] skinning rotations.
    rel_transl: [B, J, 3] skinning translations.
    v_posed: [B, V, 3] rest vertices with pose blend offsets.

  Returns:
    [B, V, 3] skinned vertices.
  """
  b, j = rel_rot.shape[:2]
  affine = jnp.concatenate([rel_rot, rel_transl[..., None]], axis=-1)
  affine = affine.reshape(b, j, 12)
  per_vertex = jnp.einsum(
    "bjc,vj->bcv", affine, lbs_weights, precision=_HI
  )  # [B, 12, V]
  x, y, z = v_posed[..., 0], v_posed[..., 1], v_posed[..., 2]  # [B, V]
  rows = [
    per_vertex[:, 4 * i] * x
    + per_vertex[:, 4 * i + 1] * y
    + per_vertex[:, 4 * i + 2] * z
    + per_vertex[:, 4 * i + 3]
    for i in range(3)
  ]
  return jnp.stack(rows, axis=-1)


def _to_rotmats(x: jax.Array, num: int, name: str) -> jax.Array:
  """Accepts axis-angle [B, num*3] / [B, num, 3] or matrices [B, num, 3, 3]."""
  x = jnp.asarray(x)
  b = x.shape[0] if x.ndim else 0
  if x.ndim >= 3 and x.shape[-2:] == (3, 3):
    if x.shape[1:] not in ((num, 3, 3),) and not (num == 1 and x.ndim == 3):
      raise ValueError(
        f"{name}: rotation matrices must be [B, {num}, 3, 3], got {x.shape}"
      )
    return x.reshape(b, num, 3, 3)
  if x.ndim in (2, 3) and int(np.prod(x.shape[1:])) == num * 3:
    return geometry.batch_rodrigues(x.reshape(b, num, 3))
  raise ValueError(
    f"{name}: expected axis-angle [B, {num * 3}] or "
    f"[B, {num}, 3] or rotation matrices [B, {num}, 3, 3], got "
    f"shape {x.shape}"
  )


def _mesh_chunk(
  model: SMPLModel,
  betas: jax.Array,
  rot_mats: jax.Array,
  rel_rot: jax.Array,
  rel_transl: jax.Array,
  transl: jax.Array | None,
) -> tuple[jax.Array, jax.Array | None]:
  """Shape blend + pose blend + LBS (+ transl, extra joints) for one chunk."""
  v_shaped = shape_blend(model, betas)
  v_posed = v_shaped + pose_blend(model, rot_mats)
  vertices = skin(model.lbs_weights, rel_rot, rel_transl, v_posed)
  if transl is not None:
    vertices = vertices + transl[:, None, :]
  extra = None
  if model.J_regressor_extra is not None:
    extra = regress_joints(model.J_regressor_extra, vertices)
  return vertices, extra


def _chunk_size(batch: int, chunk: int | None) -> int:
  if chunk is None:
    chunk = CPU_CHUNK if jax.default_backend() == "cpu" else batch
  chunk = max(1, min(chunk, batch))
  while batch % chunk:  # largest divisor of batch not above the request
    chunk -= 1
  return chunk


def lbs_from_rotmats(
  model: SMPLModel,
  betas: jax.Array,
  rest_joints: jax.Array,
  rot_mats: jax.Array,
  transl: jax.Array | None = None,
  chunk: int | None = None,
) -> tuple[jax.Array, jax.Array, jax.Array | None]:
  """Poses the shaped body with 24 local rotations.

  Args:
    model: the SMPL model.
    betas: [B, NB] shape coefficients.
    rest_joints: [B, 24, 3] rest joints of the shaped template.
    rot_mats: [B, 24, 3, 3] local rotations.
    transl: optional [B, 3] translation added to the vertices (before the
      extra regression; the returned posed joints stay untranslated).
    chunk: samples per mesh chunk (None: 64 on CPU, all on accelerators).

  Returns:
    vertices [B, V, 3], posed joints [B, 24, 3] and, if the model has an
    extra regressor, extra joints [B, E, 3] regressed from the vertices
    (else None). Metres.
  """
  posed_joints, rel_rot, rel_t = batch_rigid_transform(
    rot_mats, rest_joints, tables.SMPL_PARENTS, tables.SMPL_LEVELS
  )
  batch = rot_mats.shape[0]
  c = _chunk_size(batch, chunk)
  if c == batch:
    vertices, extra = _mesh_chunk(
      model, betas, rot_mats, rel_rot, rel_t, transl
    )
  else:
    xs = jax.tree.map(
      lambda a: a.reshape((batch // c, c) + a.shape[1:]),
      (betas, rot_mats, rel_rot, rel_t, transl),
    )
    vertices, extra = jax.lax.map(lambda x: _mesh_chunk(model, *x), xs)
    vertices = vertices.reshape((batch,) + vertices.shape[2:])
    if extra is not None:
      extra = extra.reshape((batch,) + extra.shape[2:])
  return vertices, posed_joints, extra


def forward(
  model: SMPLModel,
  betas: jax.Array,
  body_pose: jax.Array,
  global_orient: jax.Array,
  transl: jax.Array | None = None,
) -> dict[str, jax.Array]:
  """SMPL forward with smplx semantics.

  Args:
    model: the SMPL model.
    betas: [B, NB] shape coefficients (NB <= model.num_betas).
    body_pose: axis-angle [B, 23, 3] / [B, 69] or rotation matrices
      [B, 23, 3, 3] (radians, parent-relative).
    global_orient: axis-angle [B, 3] / [B, 1, 3] or rotation matrices
      [B, 3, 3] / [B, 1, 3, 3].
    transl: optional [B, 3] translation (metres) added to vertices and joints.

  Returns:
    dict with ``vertices`` [B, V, 3], ``joints`` [B, 24, 3] (metres, not
    root-relative) and, when the model has ``J_regressor_extra``,
    ``joints_extra`` [B, E, 3] regressed from the vertices.
  """
  betas = jnp.asarray(betas)
  pose = _to_rotmats(body_pose, 23, "body_pose")
  orient = _to_rotmats(global_orient, 1, "global_orient")
  rot_mats = jnp.concatenate([orient, pose], axis=1)  # [B, 24, 3, 3]
  b = rot_mats.shape[0]
  if betas.shape[0] != b:
    betas = jnp.broadcast_to(betas, (b,) + betas.shape[1:])
  rot_mats = rot_mats.astype(model.dtype)
  betas = betas.astype(model.dtype)
  rest_joints = shaped_points(model, betas)
  if transl is not None:
    transl = jnp.asarray(transl, dtype=model.dtype).reshape(b, 3)
  vertices, joints, extra = lbs_from_rotmats(
    model, betas, rest_joints, rot_mats, transl
  )
  if transl is not None:
    joints = joints + transl[:, None, :]
  out = {"vertices": vertices, "joints": joints}
  if extra is not None:
    out["joints_extra"] = extra
  return out
