"""3D pose and mesh metrics, equal to mmhuman3d's ``core/evaluation``.

Batched ``jax.numpy`` versions of ``keypoint_mpjpe``, ``vertice_pve``,
``keypoint_3d_pck`` and ``keypoint_3d_auc``. Units are whatever the inputs
carry (mmhuman3d evaluates in millimetres; PCK thresholds are in mm).

Alignments (per sample):
  * ``'none'``: as is;
  * ``'scale'``: least-squares scale about the origin, s = <p, g> / <p, p>;
  * ``'procrustes'``: similarity transform (rotation with reflection fix,
    uniform scale, translation) fitted on *all* points, as mmhuman3d's
    ``compute_similarity_transform`` (the mask only selects joints in the
    final average).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

ALIGNMENTS = ("none", "scale", "procrustes")


def similarity_transform(source: jax.Array, target: jax.Array) -> jax.Array:
  """Aligns ``source [K, 3]`` to ``target [K, 3]`` by s·R·x + t (Umeyama).

  Returns the transformed source points [K, 3].
  """
  mu1 = jnp.mean(source, axis=0, keepdims=True)  # [1, 3]
  mu2 = jnp.mean(target, axis=0, keepdims=True)
  x1 = source - mu1  # [K, 3]
  x2 = target - mu2
  var1 = jnp.sum(x1 * x1)
  k = x1.T @ x2  # [3, 3] = X1 X2^T in column-point notation
  u, _, vh = jnp.linalg.svd(k)
  v = vh.T
  det_sign = jnp.sign(jnp.linalg.det(u @ v.T))
  z = (
    jnp.diag(jnp.array([1.0, 1.0, 0.0], k.dtype))
    + jnp.diag(jnp.array([0.0, 0.0, 1.0], k.dtype)) * det_sign
  )
  r = v @ z @ u.T  # [3, 3]
  scale = jnp.trace(r @ k) / var1
  t = mu2.T - scale * (r @ mu1.T)  # [3, 1]
  return (scale * (r @ source.T) + t).T


def align(pred: jax.Array, gt: jax.Array, alignment: str = "none") -> jax.Array:
  """Applies one of :data:`ALIGNMENTS` to ``pred [N, K, 3]`` towards ``gt``."""
  if alignment == "none":
    return pred
  if alignment == "procrustes":
    return jax.vmap(similarity_transform)(pred, gt)
  if alignment == "scale":
    pp = jnp.einsum("nkc,nkc->n", pred, pred)
    pg = jnp.einsum("nkc,nkc->n", pred, gt)
    return pred * (pg / pp)[:, None, None]
  raise ValueError(
    f"Invalid value for alignment: {alignment!r}; expected one of {ALIGNMENTS}"
  )


def per_point_errors(
  pred: jax.Array, gt: jax.Array, alignment: str = "none"
) -> jax.Array:
  """Euclidean error per point after alignment, [N, K] (input units)."""
  return jnp.linalg.norm(align(pred, gt, alignment) - gt, axis=-1)


def _masked_mean(values: jax.Array, mask: jax.Array) -> jax.Array:
  mask = mask.astype(values.dtype)
  return jnp.sum(values * mask) / jnp.sum(mask)


def keypoint_mpjpe(pred, gt, mask, alignment: str = "none") -> jax.Array:
  """Mean per-joint position error over the visible joints.

  Args:
    pred, gt: [N, K, 3] keypoints (mm in mmhuman3d's evaluation).
    mask: [N, K] bool, True for joints that count.
    alignment: 'none' (MPJPE), 'procrustes' (PA-MPJPE) or 'scale'.
  """
  return _masked_mean(per_point_errors(pred, gt, alignment), mask)


def vertice_pve(pred_verts, target_verts, alignment: str = "none") -> jax.Array:
  """Per-vertex error, mean over all vertices and samples ([N, V, 3])."""
  return jnp.mean(per_point_errors(pred_verts, target_verts, alignment))


def keypoint_3d_pck(
  pred, gt, mask, alignment: str = "none", threshold: float = 150.0
) -> jax.Array:
  """Percentage (0-100) of visible joints with error < ``threshold``."""
  err = per_point_errors(pred, gt, alignment)
  return _masked_mean((err < threshold).astype(jnp.float32), mask) * 100.0


def keypoint_3d_auc(pred, gt, mask, alignment: str = "none") -> jax.Array:
  """Area under the 3DPCK curve for thresholds linspace(0, 150, 31), in %."""
  err = per_point_errors(pred, gt, alignment)  # [N, K]
  thresholds = jnp.linspace(0.0, 150.0, 31)
  correct = (err[None] < thresholds[:, None, None]).astype(jnp.float32)
  pck = jax.vmap(lambda c: _masked_mean(c, mask))(correct)  # [31]
  return jnp.mean(pck) * 100.0
