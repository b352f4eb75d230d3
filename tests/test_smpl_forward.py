"""SMPL forward (hybrik_jax.smpl.forward) vs smplx 0.1.28 golden outputs."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import golden

from hybrik_jax import geometry, smpl
from hybrik_jax.smpl import lbs

ATOL_M = 1e-5  # metres: fixtures README, SMPL/IK positions


@pytest.fixture(scope="module")
def model(smpl_model):
  return smpl_model


@pytest.fixture(scope="module")
def gold():
  return golden("golden_smpl.npz")


def _max_err(a, b):
  return float(np.max(np.abs(np.asarray(a, np.float64) - b)))


def test_forward_matches_smplx(model, gold):
  out = jax.jit(smpl.forward)(
    model,
    gold["betas"],
    gold["body_pose"],
    gold["global_orient"],
    gold["transl"],
  )
  assert out["vertices"].shape == (8, 6890, 3)
  assert out["joints"].shape == (8, 24, 3)
  assert out["joints_extra"].shape == (8, 17, 3)
  assert _max_err(out["vertices"], gold["vertices"]) < ATOL_M
  assert _max_err(out["joints"], gold["joints24"]) < ATOL_M
  assert _max_err(out["joints_extra"], gold["joints_h36m17"]) < ATOL_M


def test_forward_without_transl_is_shifted(model, gold):
  out = smpl.forward(
    model, gold["betas"], gold["body_pose"], gold["global_orient"]
  )
  shift = gold["transl"][:, None, :]
  assert _max_err(out["vertices"], gold["vertices"] - shift) < ATOL_M
  assert _max_err(out["joints"], gold["joints24"] - shift) < ATOL_M
  assert _max_err(out["joints_extra"], gold["joints_h36m17"] - shift) < ATOL_M


def test_pose_input_formats_agree(model, gold):
  betas, pose, orient = gold["betas"], gold["body_pose"], gold["global_orient"]
  ref = smpl.forward(model, betas, pose, orient)["vertices"]
  pose_mats = geometry.batch_rodrigues(jnp.asarray(pose))
  orient_mats = geometry.batch_rodrigues(jnp.asarray(orient))
  variants = [
    (pose.reshape(8, 69), orient),
    (pose, orient[:, None]),
    (pose_mats, orient_mats),
    (pose_mats, orient_mats[:, None]),
  ]
  for body_pose, global_orient in variants:
    got = smpl.forward(model, betas, body_pose, global_orient)["vertices"]
    assert _max_err(got, np.asarray(ref)) < 1e-6


def test_bad_pose_shape_is_named(model, gold):
  with pytest.raises(ValueError, match="body_pose"):
    smpl.forward(
      model, gold["betas"], gold["body_pose"][:, :22], gold["global_orient"]
    )
  with pytest.raises(ValueError, match="global_orient"):
    smpl.forward(
      model, gold["betas"], gold["body_pose"], np.zeros((8, 2, 3), np.float32)
    )
  with pytest.raises(ValueError, match="betas"):
    smpl.forward(
      model,
      np.zeros((8, 11), np.float32),
      gold["body_pose"],
      gold["global_orient"],
    )


def test_chunked_mesh_equals_single_chunk(model, gold):
  betas = jnp.asarray(gold["betas"])
  rot = jnp.concatenate(
    [
      geometry.batch_rodrigues(jnp.asarray(gold["global_orient"]))[:, None],
      geometry.batch_rodrigues(jnp.asarray(gold["body_pose"])),
    ],
    axis=1,
  )
  rest = lbs.shaped_points(model, betas)
  transl = jnp.asarray(gold["transl"])
  one = lbs.lbs_from_rotmats(model, betas, rest, rot, transl, chunk=8)
  four = jax.jit(lambda *a: lbs.lbs_from_rotmats(*a, chunk=2))(
    model, betas, rest, rot, transl
  )
  for a, b in zip(one, four):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)
  assert _max_err(four[0], gold["vertices"]) < ATOL_M


def test_shaped_points_equal_regressing_shaped_template(model, gold):
  betas = jnp.asarray(gold["betas"])
  v_shaped = lbs.shape_blend(model, betas)
  direct = lbs.regress_joints(model.J_regressor, v_shaped)
  np.testing.assert_allclose(
    np.asarray(lbs.shaped_points(model, betas)), np.asarray(direct), atol=1e-6
  )


def test_batch_rodrigues_is_smplx_formula():
  rng = np.random.default_rng(0)
  aa = rng.normal(size=(16, 3)).astype(np.float64)
  aa[0] = 0.0
  got = np.asarray(geometry.batch_rodrigues(jnp.asarray(aa, jnp.float32)))
  angle = np.linalg.norm(aa + 1e-8, axis=1, keepdims=True)
  axis = aa / angle
  for i in range(16):
    k = np.array(
      [
        [0, -axis[i, 2], axis[i, 1]],
        [axis[i, 2], 0, -axis[i, 0]],
        [-axis[i, 1], axis[i, 0], 0],
      ]
    )
    want = np.eye(3) + np.sin(angle[i]) * k + (1 - np.cos(angle[i])) * k @ k
    np.testing.assert_allclose(got[i], want, atol=2e-6)
  assert np.all(
    np.isfinite(
      jax.grad(lambda x: jnp.sum(geometry.batch_rodrigues(x)))(
        jnp.zeros((2, 3))
      )
    )
  )
