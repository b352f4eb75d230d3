"""Training losses of the authors' camera models (Jeff-sjtu/HybrIK).

``laplace_losses`` is their ``LaplaceLossDimSMPLCam`` (the loss of the model
zoo's HRNet-W48 recipe, ``LOSS.TYPE`` of
``256x192_adam_lr1e-3-hrw48_cam_2x_w_pw3d_3dhp.yaml``); ``l1_losses`` is
their ``L1LossDimSMPLCam`` (same terms, a plain L1 on uvd). Both are written
from ``hybrik/models/criterion.py`` of the authors' code; what differs from
mmhuman3d's losses (:mod:`hybrik_jax.train.losses`):

* theta is compared as the 24 **rotation matrices** (``pred_theta_mats``
  [B, 216] vs ``target_theta`` [B, 216], row-major), not as quaternions;
* the uvd term of the Laplace loss is the negative log-likelihood of a
  Laplace distribution with the network's own per-joint ``pred_sigma``
  (in normalised uvd units, no ``x 64``):
  ``log(sigma * sqrt(2 pi)) + |pred - target| / (sqrt(2) sigma + 1e-5)``,
  summed with the uvd weights and divided by their sum (by 1 if the sum is
  0) -- it can be negative;
* two camera terms, always with weight 1: ``loss_scale`` = MSE of the
  regressed ``cam_scale`` against the ``camera_scale`` target, and, for
  models that regress an xy offset (the ResNet-34 model's ``cam_trans``),
  ``loss_trans`` = MSE of it against ``camera_trans`` (metres); both masked
  per sample by ``sum(target_xyz_weight_24) > 3`` (samples with 3-D joints).

Means run over every element, masked rows included (``MSELoss`` 'mean'), as
the authors'. Their ``PHI_REG_WEIGHT`` / ``BETA_REG_WEIGHT`` /
``LEAF_REG_WEIGHT`` / ``XYZ*`` / ``VERTICE`` weights are read by their
constructor but unused by ``forward``; they have no counterpart here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import jax
import jax.numpy as jnp

from hybrik_jax.train.losses import mse

# Weighted terms (config.loss_weights keys); the camera terms have weight 1.
LOSS_TERMS = ("beta", "theta", "twist", "uvd")
# Keys of the targets the losses read.
TARGET_KEYS = (
  "target_beta",
  "target_smpl_weight",
  "target_theta",
  "target_theta_weight",
  "target_twist",
  "target_twist_weight",
  "target_uvd_29",
  "target_weight_29",
  "target_xyz_weight_24",
  "camera_scale",
  "camera_trans",
)
NUM_JOINTS = 29
# 1 / sqrt(2 pi): the authors' ``amp`` (log(sigma / amp) = log(sigma sqrt(2 pi))).
_AMP = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT2 = math.sqrt(2.0)
# Samples need more than this many weighted xyz coordinates for the camera.
CAM_MIN_XYZ_WEIGHT = 3.0


def _weighted_mean(out: jax.Array, weight: jax.Array) -> jax.Array:
  """sum(out * weight) / sum(weight), or sum(out * weight) if that is 0
  (the authors' ``size_average and weights.sum() > 0``)."""
  total = jnp.sum(out * weight)
  wsum = jnp.sum(weight)
  return total / jnp.where(wsum > 0, wsum, 1.0)


def weighted_laplace(
  pred: jax.Array, sigma: jax.Array, target: jax.Array, weight: jax.Array
) -> jax.Array:
  """The authors' ``weighted_laplace_loss`` (size-averaged).

  Args:
    pred: [B, J, 3] normalised uvd; target: [B, J, 3]; weight: [B, J, 3].
    sigma: [B, J, 1] (> 0), broadcast over u, v, d.

  Returns:
    scalar: sum_w(log(sigma sqrt(2 pi)) + |pred - target| / (sqrt(2) sigma
    + 1e-5)) / sum(w).
  """
  out = jnp.log(sigma / _AMP) + jnp.abs(pred - target) / (_SQRT2 * sigma + 1e-5)
  return _weighted_mean(out, weight)


def weighted_l1_x64(
  pred: jax.Array, target: jax.Array, weight: jax.Array
) -> jax.Array:
  """The authors' ``weighted_l1_loss``: sum(|64 pred - 64 target| w) /
  sum(w) (by 1 if the sum is 0); any shapes that broadcast."""
  return _weighted_mean(jnp.abs(pred * 64.0 - target * 64.0), weight)


def camera_weight(target_xyz_weight_24: jax.Array) -> jax.Array:
  """[B, 1] float: 1 where a sample has more than 3 weighted xyz coordinates
  among the 24 joints (``target_xyz_weight_24`` [B, 72])."""
  w = target_xyz_weight_24[:, :72]
  return (jnp.sum(w, axis=1) > CAM_MIN_XYZ_WEIGHT).astype(w.dtype)[:, None]


def _cam_losses(
  predictions: Mapping[str, jax.Array],
  targets: Mapping[str, jax.Array],
  weights: Mapping[str, float],
  uvd_loss,
) -> dict[str, jax.Array]:
  if set(weights) != set(LOSS_TERMS):
    raise ValueError(
      f"loss weights must be keyed {LOSS_TERMS}, got {tuple(sorted(weights))}"
    )
  smpl_w = targets["target_smpl_weight"]  # [B, 1]
  loss_beta = mse(
    predictions["pred_shape"] * smpl_w, targets["target_beta"] * smpl_w
  )
  theta_w = smpl_w * targets["target_theta_weight"]  # [B, 216]
  loss_theta = mse(
    predictions["pred_theta_mats"] * theta_w, targets["target_theta"] * theta_w
  )
  twist_w = targets["target_twist_weight"]  # [B, 23, 2]
  loss_twist = mse(
    predictions["pred_phi"] * twist_w, targets["target_twist"] * twist_w
  )
  batch = predictions["pred_uvd_jts"].shape[0]
  n = NUM_JOINTS
  pred_uvd = predictions["pred_uvd_jts"].reshape(batch, -1, 3)[:, :n]
  target_uvd = targets["target_uvd_29"][:, : n * 3].reshape(batch, n, 3)
  uvd_w = targets["target_weight_29"][:, : n * 3].reshape(batch, n, 3)
  loss_uvd = uvd_loss(predictions, pred_uvd, target_uvd, uvd_w)

  cam_w = camera_weight(targets["target_xyz_weight_24"])  # [B, 1]
  scale = predictions["cam_scale"].reshape(batch, 1)
  loss_scale = mse(
    scale * cam_w, targets["camera_scale"].reshape(batch, 1) * cam_w
  )
  w = dict(weights)
  losses = {
    "loss_beta": w["beta"] * loss_beta,
    "loss_theta": w["theta"] * loss_theta,
    "loss_twist": w["twist"] * loss_twist,
    "loss_uvd": w["uvd"] * loss_uvd,
    "loss_scale": loss_scale,
  }
  if "cam_trans" in predictions:
    losses["loss_trans"] = mse(
      predictions["cam_trans"] * cam_w, targets["camera_trans"] * cam_w
    )
  losses["loss"] = sum(losses.values())
  return losses


def laplace_losses(
  predictions: Mapping[str, jax.Array],
  targets: Mapping[str, jax.Array],
  weights: Mapping[str, float],
) -> dict[str, jax.Array]:
  """``LaplaceLossDimSMPLCam``, term by term (each already weighted).

  Args:
    predictions: train-mode outputs of a :mod:`hybrik_jax.model.hybrik_cam`
      model: ``pred_shape`` [B, 10], ``pred_theta_mats`` [B, 216],
      ``pred_phi`` [B, 23, 2] (unnormalised), ``pred_uvd_jts`` [B, 87]
      (normalised, [-0.5, 0.5)), ``pred_sigma`` [B, 29, 1], ``cam_scale``
      [B, 1] and, for the ResNet-34 model, ``cam_trans`` [B, 2] (metres).
    targets: :data:`TARGET_KEYS`: ``target_beta`` [B, 10],
      ``target_smpl_weight`` [B, 1], ``target_theta`` / ``_weight`` [B, 216]
      (rotation matrices), ``target_twist`` / ``_weight`` [B, 23, 2],
      ``target_uvd_29`` / ``target_weight_29`` [B, 87] (normalised uvd, depth
      in units of bbox_3d_shape = 2.2 m), ``target_xyz_weight_24`` [B, 72],
      ``camera_scale`` [B, 1], ``camera_trans`` [B, 2] (metres).
    weights: ``beta``, ``theta``, ``twist``, ``uvd`` (the authors'
      BETA_WEIGHT, THETA_WEIGHT, TWIST_WEIGHT, UVD24_WEIGHT).

  Returns:
    scalar ``loss_beta``, ``loss_theta``, ``loss_twist``, ``loss_uvd`` (the
    Laplace NLL), ``loss_scale``, [``loss_trans``,] and their sum ``loss``.
  """

  def uvd(pred_out, pred, target, w):
    sigma = pred_out["pred_sigma"].reshape(pred.shape[0], NUM_JOINTS, -1)
    return weighted_laplace(pred, sigma, target, w)

  return _cam_losses(predictions, targets, weights, uvd)


def l1_losses(
  predictions: Mapping[str, jax.Array],
  targets: Mapping[str, jax.Array],
  weights: Mapping[str, float],
) -> dict[str, jax.Array]:
  """``L1LossDimSMPLCam``: as :func:`laplace_losses` with the uvd term
  ``sum(|64 pred - 64 target| w) / sum(w)`` (no sigma). (The authors'
  version also computes an xyz L1 that it never adds; left out.)"""

  def uvd(pred_out, pred, target, w):
    return weighted_l1_x64(pred, target, w)

  return _cam_losses(predictions, targets, weights, uvd)


LOSSES = {"laplace": laplace_losses, "l1": l1_losses}


def get_loss(name: str):
  """The loss function for ``config.loss.type`` ('laplace' | 'l1')."""
  try:
    return LOSSES[name]
  except KeyError:
    raise ValueError(
      f"unknown cam loss {name!r}; known: {sorted(LOSSES)}"
    ) from None
