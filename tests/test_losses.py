"""Loss parity with mmhuman3d's compute_losses (golden_losses.npz)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import golden
from helpers import recipe_loss_weights

from hybrik_jax.train import losses


@pytest.fixture(scope="module")
def g():
  return golden("golden_losses.npz")


def _inputs(g):
  preds = {
    k[len("pred_") :]: jnp.asarray(v)
    for k, v in g.items()
    if k.startswith("pred_")
  }
  targets = {k: jnp.asarray(v) for k, v in g.items() if k.startswith("target_")}
  return preds, targets


def test_losses_match_golden_from_golden_predictions(g):
  preds, targets = _inputs(g)
  out = jax.jit(losses.compute_losses)(preds, targets, recipe_loss_weights())
  for name in ("loss_beta", "loss_theta", "loss_twist", "loss_uvd"):
    np.testing.assert_allclose(
      np.asarray(out[name]), g[name], atol=1e-4, rtol=0, err_msg=name
    )
  total = sum(
    float(g[n]) for n in ("loss_beta", "loss_theta", "loss_twist", "loss_uvd")
  )
  np.testing.assert_allclose(float(out["loss"]), total, rtol=1e-6)


def test_quaternion_matches_rotation():
  """q -> R(q) recovers the matrix, for rotations near each branch."""
  rng = np.random.default_rng(0)
  aa = rng.normal(size=(64, 3)) * rng.uniform(0, np.pi, size=(64, 1))
  aa[:4] = [[0, 0, 0], [np.pi, 0, 0], [0, np.pi, 0], [0, 0, np.pi - 1e-7]]
  theta = np.linalg.norm(aa, axis=1, keepdims=True)
  axis = np.where(theta > 0, aa / np.maximum(theta, 1e-12), [1.0, 0, 0])
  w = np.cos(theta / 2)
  xyz = axis * np.sin(theta / 2)
  q_true = np.concatenate([w, xyz], 1)
  # Build R from q_true.
  qw, qx, qy, qz = q_true.T
  rot = np.stack(
    [
      1 - 2 * (qy**2 + qz**2),
      2 * (qx * qy - qz * qw),
      2 * (qx * qz + qy * qw),
      2 * (qx * qy + qz * qw),
      1 - 2 * (qx**2 + qz**2),
      2 * (qy * qz - qx * qw),
      2 * (qx * qz - qy * qw),
      2 * (qy * qz + qx * qw),
      1 - 2 * (qx**2 + qy**2),
    ],
    1,
  ).reshape(-1, 3, 3)
  q = np.asarray(losses.matrix_to_quaternion(jnp.asarray(rot, jnp.float32)))
  # Same rotation up to sign.
  dots = np.abs(np.sum(q * q_true, axis=1))
  np.testing.assert_allclose(dots, 1.0, atol=1e-5)


def test_uvd_loss_ignores_zero_weights_and_theta_uses_smpl_weight(g):
  preds, targets = _inputs(g)
  base = losses.compute_losses(preds, targets, recipe_loss_weights())
  # Perturb predictions only where weights are zero: nothing may change.
  uvd_w = np.asarray(targets["target_weight_29"])
  noise = np.where(uvd_w == 0, 10.0, 0.0).astype(np.float32)
  preds2 = dict(preds, pred_uvd_jts=preds["pred_uvd_jts"] + noise)
  smpl_w = np.asarray(targets["target_smpl_weight"])[:, 0]
  shape_noise = np.where(smpl_w[:, None] == 0, 5.0, 0.0).astype(np.float32)
  preds2["pred_shape"] = preds["pred_shape"] + shape_noise
  out = losses.compute_losses(preds2, targets, recipe_loss_weights())
  for k in ("loss_uvd", "loss_beta"):
    np.testing.assert_allclose(float(out[k]), float(base[k]), rtol=1e-6)


def test_loss_gradients_finite_with_zero_weight_sample(g):
  preds, targets = _inputs(g)
  preds = dict(preds)
  preds["pred_pose"] = preds["pred_pose"].at[0].set(jnp.eye(3))
  grads = jax.grad(
    lambda p: losses.compute_losses(p, targets, recipe_loss_weights())["loss"]
  )(preds)
  for k, v in grads.items():
    assert np.all(np.isfinite(np.asarray(v))), k
