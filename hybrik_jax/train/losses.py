"""HybrIK training losses, equal to mmhuman3d's ``HybrIK_trainer.compute_losses``.

All four terms follow mmhuman3d 0.11.0; the weights ``w_*`` come from the
config (``config.loss_weights``; ``configs/mixed.py`` holds the recipe's beta
1, theta 0.01, twist 0.2, uvd 1):

* ``loss_beta``  = w_beta  * mean((pred_shape*w_s - target_beta*w_s)^2)
* ``loss_theta`` = w_theta * mean((q(pred_pose)*w_s*w_t - target_theta*w_s*w_t)^2)
* ``loss_twist`` = w_twist * mean((pred_phi*w_p - target_twist*w_p)^2)
* ``loss_uvd``   = w_uvd * sum(|64*pred_uvd - 64*target_uvd| * w_uvd) / sum(w_uvd)

Means run over every element, masked rows included (``MSELoss`` 'mean').
``q`` is pytorch3d 0.7.x's ``matrix_to_quaternion`` (w, x, y, z; the
best-conditioned of four candidates, sign *not* standardised).
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp

# The weighted terms; ``compute_losses`` needs one weight for each.
LOSS_TERMS = ("beta", "theta", "twist", "uvd")


def _sqrt_positive_part(x: jax.Array) -> jax.Array:
  """sqrt(max(x, 0)) with a zero (not NaN) gradient where x <= 0."""
  positive = x > 0
  return jnp.where(positive, jnp.sqrt(jnp.where(positive, x, 1.0)), 0.0)


def matrix_to_quaternion(matrix: jax.Array) -> jax.Array:
  """Rotation matrices [..., 3, 3] -> quaternions [..., 4] (w, x, y, z).

  Same arithmetic as pytorch3d 0.7.0-0.7.5: of the four algebraically
  equivalent candidates, the one with the largest |component| divisor is
  chosen; the sign is not standardised (w may be negative).
  """
  m = matrix
  m00, m01, m02 = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
  m10, m11, m12 = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
  m20, m21, m22 = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
  q_abs = _sqrt_positive_part(
    jnp.stack(
      [
        1.0 + m00 + m11 + m22,
        1.0 + m00 - m11 - m22,
        1.0 - m00 + m11 - m22,
        1.0 - m00 - m11 + m22,
      ],
      axis=-1,
    )
  )  # [..., 4]
  candidates = jnp.stack(
    [
      jnp.stack([q_abs[..., 0] ** 2, m21 - m12, m02 - m20, m10 - m01], -1),
      jnp.stack([m21 - m12, q_abs[..., 1] ** 2, m10 + m01, m02 + m20], -1),
      jnp.stack([m02 - m20, m10 + m01, q_abs[..., 2] ** 2, m12 + m21], -1),
      jnp.stack([m10 - m01, m20 + m02, m21 + m12, q_abs[..., 3] ** 2], -1),
    ],
    axis=-2,
  )  # [..., 4 (candidate), 4 (wxyz)]
  floor = jnp.asarray(0.1, dtype=q_abs.dtype)
  candidates = candidates / (2.0 * jnp.maximum(q_abs[..., None], floor))
  best = jnp.argmax(q_abs, axis=-1)  # [...]
  return jnp.take_along_axis(candidates, best[..., None, None], axis=-2)[
    ..., 0, :
  ]


def mse(pred: jax.Array, target: jax.Array) -> jax.Array:
  """Mean squared error over all elements (torch ``MSELoss``, 'mean')."""
  return jnp.mean(jnp.square(pred - target))


def weighted_l1(
  pred: jax.Array, target: jax.Array, weight: jax.Array, avg_factor: jax.Array
) -> jax.Array:
  """sum(|pred - target| * weight) / avg_factor (mmhuman3d ``L1Loss``)."""
  return jnp.sum(jnp.abs(pred - target) * weight) / avg_factor


def compute_losses(
  predictions: Mapping[str, jax.Array],
  targets: Mapping[str, jax.Array],
  weights: Mapping[str, float],
) -> dict[str, jax.Array]:
  """The four HybrIK loss terms, already multiplied by their loss weights.

  Args:
    predictions: model outputs with mmhuman3d key names: ``pred_shape
      [B, 10]``, ``pred_pose [B, 24, 3, 3]``, ``pred_phi [B, 23, 2]`` (raw,
      not normalised), ``pred_uvd_jts [B, 87]`` (normalised, [-0.5, 0.5)).
    targets: ``target_beta [B, 10]``, ``target_smpl_weight [B, 1]``,
      ``target_theta [B, 96]`` (quaternions w-first), ``target_theta_weight
      [B, 96]``, ``target_twist [B, 23, 2]``, ``target_twist_weight [B, 23,
      2]``, ``target_uvd_29 [B, 87]``, ``target_weight_29 [B, 87]``.
    weights: loss weights keyed ``beta/theta/twist/uvd`` (``LOSS_TERMS``),
      e.g. ``dict(config.loss_weights)``.

  Returns:
    dict with scalar ``loss_beta``, ``loss_theta``, ``loss_twist``,
    ``loss_uvd`` and their sum ``loss``.
  """
  if set(weights) != set(LOSS_TERMS):
    raise ValueError(
      f"loss weights must be keyed {LOSS_TERMS}, got {tuple(sorted(weights))}"
    )
  w = dict(weights)
  smpl_w = targets["target_smpl_weight"]  # [B, 1]
  batch = predictions["pred_pose"].shape[0]

  loss_beta = mse(
    predictions["pred_shape"] * smpl_w, targets["target_beta"] * smpl_w
  )

  pred_quat = matrix_to_quaternion(predictions["pred_pose"]).reshape(batch, 96)
  theta_w = smpl_w * targets["target_theta_weight"]  # [B, 96]
  loss_theta = mse(pred_quat * theta_w, targets["target_theta"] * theta_w)

  twist_w = targets["target_twist_weight"]  # [B, 23, 2]
  loss_twist = mse(
    predictions["pred_phi"] * twist_w, targets["target_twist"] * twist_w
  )

  pred_uvd = predictions["pred_uvd_jts"]  # [B, 87]
  n = pred_uvd.shape[1]
  target_uvd = targets["target_uvd_29"][:, :n]
  uvd_w = targets["target_weight_29"][:, :n]
  loss_uvd = weighted_l1(
    64.0 * pred_uvd, 64.0 * target_uvd, uvd_w, jnp.sum(uvd_w)
  )

  losses = {
    "loss_beta": w["beta"] * loss_beta,
    "loss_theta": w["theta"] * loss_theta,
    "loss_twist": w["twist"] * loss_twist,
    "loss_uvd": w["uvd"] * loss_uvd,
  }
  losses["loss"] = sum(losses.values())
  return losses
