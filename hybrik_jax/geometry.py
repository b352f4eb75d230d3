"""Rotation and vector helpers shared by the SMPL forward and HybrIK's IK.

Every helper is a pure jax.numpy function over arrays with arbitrary leading
(batch) dimensions. Norms are "safe": their value equals the true norm, and
their gradient is 0 (not NaN) where the vector is exactly zero, which is what
PyTorch's ``torch.norm`` backward does and what the all-zero skeletons of COCO
samples need.

Small 3x3 products are written as broadcast multiply + sum rather than
``jnp.matmul`` so that they run in exact float32 on every backend (GPU dots
may otherwise use reduced-precision TF32 passes) and fuse into neighbouring
element-wise code.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def safe_norm(
  x: jax.Array, axis: int = -1, keepdims: bool = False
) -> jax.Array:
  """Euclidean norm with a finite (zero) gradient at x = 0.

  Args:
    x: [..., N] array.
    axis: axis to reduce.
    keepdims: keep the reduced axis with size 1.

  Returns:
    ``||x||`` along ``axis``; its gradient is 0 where ``x`` is all zeros.
  """
  if x.shape[axis] == 3 and axis in (-1, x.ndim - 1):
    sq = x[..., 0] * x[..., 0] + x[..., 1] * x[..., 1] + x[..., 2] * x[..., 2]
    sq = sq[..., None] if keepdims else sq
  else:
    sq = jnp.sum(x * x, axis=axis, keepdims=keepdims)
  nonzero = sq > 0
  return jnp.where(nonzero, jnp.sqrt(jnp.where(nonzero, sq, 1.0)), 0.0)


def safe_div(num: jax.Array, den: jax.Array) -> jax.Array:
  """``num / den`` where ``den != 0``, else 0 (finite gradient everywhere)."""
  ok = den != 0
  return jnp.where(ok, num / jnp.where(ok, den, 1.0), 0.0)


@jax.custom_jvp
def safe_arccos(x: jax.Array) -> jax.Array:
  """``arccos`` clipped to [-1, 1] with a bounded derivative near +-1."""
  return jnp.arccos(jnp.clip(x, -1.0, 1.0))


@safe_arccos.defjvp
def _safe_arccos_jvp(primals, tangents):
  (x,), (dx,) = primals, tangents
  tiny = jnp.finfo(x.dtype).tiny
  denom = jnp.sqrt(jnp.maximum(1.0 - x * x, tiny))
  return safe_arccos(x), -dx / denom


def dot(a: jax.Array, b: jax.Array, keepdims: bool = False) -> jax.Array:
  """Dot product of [..., 3] vectors (explicit adds, no reduction)."""
  d = a[..., 0] * b[..., 0] + a[..., 1] * b[..., 1] + a[..., 2] * b[..., 2]
  return d[..., None] if keepdims else d


def cross(a: jax.Array, b: jax.Array) -> jax.Array:
  """Cross product of [..., 3] vectors (exact float32 on every backend)."""
  ax, ay, az = a[..., 0], a[..., 1], a[..., 2]
  bx, by, bz = b[..., 0], b[..., 1], b[..., 2]
  return jnp.stack(
    [ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx], axis=-1
  )


def matmul3(a: jax.Array, b: jax.Array) -> jax.Array:
  """[..., 3, 3] @ [..., 3, 3] as three broadcast multiply-adds.

  (Written without a reduction: XLA:CPU runs broadcast-multiply-reduce
  patterns over tiny axes far slower than explicit adds.)
  """
  return (
    a[..., :, 0:1] * b[..., 0:1, :]
    + a[..., :, 1:2] * b[..., 1:2, :]
    + a[..., :, 2:3] * b[..., 2:3, :]
  )


def matvec3(a: jax.Array, v: jax.Array) -> jax.Array:
  """[..., 3, 3] @ [..., 3] as three broadcast multiply-adds."""
  return (
    a[..., :, 0] * v[..., 0:1]
    + a[..., :, 1] * v[..., 1:2]
    + a[..., :, 2] * v[..., 2:3]
  )


def transpose3(a: jax.Array) -> jax.Array:
  """Swaps the last two axes."""
  return jnp.swapaxes(a, -1, -2)


def skew(v: jax.Array) -> jax.Array:
  """Cross-product matrix [v]x of [..., 3] vectors -> [..., 3, 3]."""
  x, y, z = v[..., 0], v[..., 1], v[..., 2]
  zeros = jnp.zeros_like(x)
  return jnp.stack(
    [
      jnp.stack([zeros, -z, y], axis=-1),
      jnp.stack([z, zeros, -x], axis=-1),
      jnp.stack([-y, x, zeros], axis=-1),
    ],
    axis=-2,
  )


def rodrigues_from_axis(
  axis: jax.Array, cos: jax.Array, sin: jax.Array
) -> jax.Array:
  """``I + sin K + (1 - cos) K^2`` with ``K = [axis]x``.

  Args:
    axis: [..., 3] rotation axis (unit for a proper rotation; the reference
      IK also feeds it the zero vector, which gives the identity).
    cos: [...] cosine of the angle (not necessarily consistent with sin).
    sin: [...] sine of the angle.

  Returns:
    [..., 3, 3] matrices.
  """
  k = skew(axis)
  eye = jnp.eye(3, dtype=axis.dtype)
  return (
    eye
    + sin[..., None, None] * k
    + (1.0 - cos)[..., None, None] * matmul3(k, k)
  )


def batch_rodrigues(rot_vecs: jax.Array) -> jax.Array:
  """Axis-angle -> rotation matrix exactly as smplx's ``batch_rodrigues``.

  smplx computes ``angle = ||rot_vec + 1e-8||`` and ``axis = rot_vec / angle``
  (the 1e-8 keeps the zero vector finite); we follow it term by term.

  Args:
    rot_vecs: [..., 3] axis-angle vectors (radians).

  Returns:
    [..., 3, 3] rotation matrices.
  """
  angle = safe_norm(rot_vecs + 1e-8, keepdims=True)  # [..., 1]
  axis = safe_div(rot_vecs, angle)
  angle = angle[..., 0]
  return rodrigues_from_axis(axis, jnp.cos(angle), jnp.sin(angle))


def axis_angle_to_matrix(axis_angle: jax.Array) -> jax.Array:
  """pytorch3d (0.7.x) ``axis_angle_to_matrix`` via quaternions.

  Uses pytorch3d's small-angle branch ``sin(t/2)/t ~ 1/2 - t^2/48`` for
  ``|t| < 1e-6``; this is what mmhuman3d's ``aa_to_rotmat`` calls.

  Args:
    axis_angle: [..., 3] axis-angle vectors (radians).

  Returns:
    [..., 3, 3] rotation matrices.
  """
  angles = safe_norm(axis_angle, keepdims=True)  # [..., 1]
  half = 0.5 * angles
  small = jnp.abs(angles) < 1e-6
  big_angles = jnp.where(small, 1.0, angles)
  sin_half_over = jnp.where(
    small, 0.5 - angles * angles / 48.0, jnp.sin(half) / big_angles
  )
  quat = jnp.concatenate([jnp.cos(half), axis_angle * sin_half_over], axis=-1)
  return quaternion_to_matrix(quat)


def quaternion_to_matrix(quat: jax.Array) -> jax.Array:
  """pytorch3d ``quaternion_to_matrix`` (w-first, need not be unit)."""
  r, i, j, k = quat[..., 0], quat[..., 1], quat[..., 2], quat[..., 3]
  two_s = 2.0 / jnp.sum(quat * quat, axis=-1)
  m = jnp.stack(
    [
      1 - two_s * (j * j + k * k),
      two_s * (i * j - k * r),
      two_s * (i * k + j * r),
      two_s * (i * j + k * r),
      1 - two_s * (i * i + k * k),
      two_s * (j * k - i * r),
      two_s * (i * k - j * r),
      two_s * (j * k + i * r),
      1 - two_s * (i * i + j * j),
    ],
    axis=-1,
  )
  return m.reshape(quat.shape[:-1] + (3, 3))


@jax.custom_jvp
def orthogonal_polar_factor_t(s: jax.Array) -> jax.Array:
  """``V U^T`` for ``S = U diag(sigma) V^T`` (Kabsch without det fix).

  This is the rotation (or reflection) R that best maps the columns of the
  first factor of ``S = Σ a_c b_c^T`` onto those of the second: R = argmax
  tr(R S). Its derivative is that of the orthogonal polar factor of ``S^T``,
  written with the denominators ``sigma_i + sigma_j`` (finite unless two
  singular values are zero, and guarded to 0 there) instead of the
  ``1 / (sigma_i^2 - sigma_j^2)`` terms of the generic SVD derivative, which
  are infinite for repeated singular values.

  Args:
    s: [..., 3, 3].

  Returns:
    [..., 3, 3] ``V U^T``.
  """
  u, _, vh = jnp.linalg.svd(s, full_matrices=False)
  return matmul3(transpose3(vh), transpose3(u))


@orthogonal_polar_factor_t.defjvp
def _orthogonal_polar_factor_t_jvp(primals, tangents):
  (s,), (ds,) = primals, tangents
  u, sig, vh = jnp.linalg.svd(s, full_matrices=False)
  v = transpose3(vh)
  ut = transpose3(u)
  r = matmul3(v, ut)
  # M = S^T = V Σ U^T = R P; X = V^T dM U; dR = V w U^T with
  # w_ij = (X_ij - X_ji) / (σ_i + σ_j).
  x = matmul3(matmul3(vh, transpose3(ds)), u)
  den = sig[..., :, None] + sig[..., None, :]
  w = safe_div(x - transpose3(x), den)
  dr = matmul3(matmul3(v, w), ut)
  return r, dr
