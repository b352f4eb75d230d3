"""HybrIK IK (batch_inverse_kinematics_transform) and HybrIKSMPL forward.

References: golden_ik_transform.npz (mmhuman3d's IK function called directly)
and golden_ik.npz (HybrIKSMPL.forward); tolerances from the fixtures README,
"Tolerances observed": positions 1e-5 m, IK rotations 2e-5 (eval) and 5e-5
(train), x64 vs the float64 reference ~1e-9.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import golden

from hybrik_jax import geometry, smpl
from hybrik_jax.smpl import hybrik_layer as hybrik
from hybrik_jax.smpl import ik, tables

ATOL_M = 1e-5
ATOL_ROT = {"eval": 2e-5, "train": 5e-5}
MODES = ("eval", "train")
SKELETONS = {
  "fk": "pose_skeleton_fk",
  "noisy5mm": "pose_skeleton_noisy5mm",
  "noisy30mm": "pose_skeleton_noisy30mm",
  "fk_rawphis": "pose_skeleton_fk",
}


@pytest.fixture(scope="module")
def model(smpl_model):
  return smpl_model


@pytest.fixture(scope="module")
def gt():
  return golden("golden_ik_transform.npz")


@pytest.fixture(scope="module")
def gik():
  return golden("golden_ik.npz")


_IK = jax.jit(
  ik.batch_inverse_kinematics_transform,
  static_argnames=("children", "parents", "train"),
)
_HYBRIK = jax.jit(smpl.hybrik_forward, static_argnames=("train",))


def _err(a, b):
  return float(np.max(np.abs(np.asarray(a, np.float64) - b)))


def _run_ik(gt, skel_key, phis_key, train, leaf=None, dtype=jnp.float32):
  return _IK(
    jnp.asarray(gt[skel_key], dtype),
    None,
    jnp.asarray(gt[phis_key], dtype),
    jnp.asarray(gt["rest_pose"], dtype),
    train=train,
    leaf_thetas=leaf,
  )


def test_tables_match_fixture(gt):
  assert tuple(gt["parents29"][1:]) == tables.HYBRIK_PARENTS[1:]
  assert tuple(gt["children29"]) == tables.HYBRIK_CHILDREN


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", tuple(SKELETONS))
def test_ik_transform_matches_mmhuman3d(gt, mode, case):
  phis = "phis_raw" if case.endswith("rawphis") else "phis_true"
  rot, rest = _run_ik(gt, SKELETONS[case], phis, mode == "train")
  assert rot.shape == (8, 24, 3, 3) and rest.shape == (8, 29, 3)
  assert _err(rot, gt[f"{mode}_{case}_rot_mats"]) < ATOL_ROT[mode]
  assert _err(rest, gt[f"{mode}_{case}_rotate_rest_pose"]) < ATOL_M
  # Without leaf rotations the leaf rows stay exactly 0 (reference).
  assert np.all(np.asarray(rest)[:, 24:] == 0)


@pytest.mark.parametrize("mode", MODES)
def test_ik_transform_leaf_thetas(gt, mode):
  rot, rest = _run_ik(
    gt,
    "pose_skeleton_fk",
    "phis_true",
    mode == "train",
    leaf=jnp.asarray(gt["leaf_rot_mats"]),
  )
  assert rot.shape == (8, 29, 3, 3)
  assert _err(rot, gt[f"{mode}_fk_leaf_rot_mats"]) < ATOL_ROT[mode]
  assert _err(rest, gt[f"{mode}_fk_leaf_rotate_rest_pose"]) < ATOL_M
  np.testing.assert_array_equal(np.asarray(rot)[:, 24:], gt["leaf_rot_mats"])


def test_eval_ik_recovers_true_rotations(gt):
  rot, _ = _run_ik(gt, "pose_skeleton_fk", "phis_true", False)
  assert _err(rot, gt["true_rot_mats"]) < 5e-5


@pytest.mark.parametrize("mode", MODES)
def test_ik_transform_x64_matches_float64_reference(gt, mode):
  with jax.enable_x64(True):
    for case in ("fk", "noisy5mm", "noisy30mm"):
      rot, rest = _IK(
        jnp.asarray(gt[SKELETONS[case]], jnp.float64),
        None,
        jnp.asarray(gt["phis_true"], jnp.float64),
        jnp.asarray(gt["rest_pose"], jnp.float64),
        train=mode == "train",
      )
      assert rot.dtype == jnp.float64
      assert _err(rot, gt[f"{mode}_{case}_rot_mats_f64"]) < 1e-9
      assert _err(rest, gt[f"{mode}_{case}_rotate_rest_pose_f64"]) < 1e-9


# Edge element 2 puts the left knee on the left hip. The eval solver then aims
# the left hip at the target knee seen from the FK-placed hip, a ~2e-8 m
# vector made of rounding noise (in the reference too): the left-leg chain
# (hip 1, knee 4, ankle 7, foot 10) has no well-defined answer. Everything
# else must match; everything must be finite.
_NOISE_CHAIN = (1, 4, 7, 10)
# Edge element 1 is the all-zero skeleton: every target is the rest root, and
# the wrist rotations are ill-conditioned. There the reference's own float32
# output is 2.2e-5 away from a float64 run of the same algorithm (measured
# with the x64 path validated above), so the eval figure of the README table
# (from well-conditioned cases) cannot apply; we use the README's float32 IK
# noise bound of the ill-conditioned (train) branch for that element.
_ZERO_SKELETON_ATOL = 5e-5


@pytest.mark.parametrize("mode", MODES)
def test_ik_transform_edge_cases(gt, mode):
  rot, rest = _IK(
    jnp.asarray(gt["edge_pose_skeleton"]),
    None,
    jnp.asarray(gt["edge_phis"]),
    jnp.asarray(gt["edge_rest_pose"]),
    train=mode == "train",
  )
  rot, rest = np.asarray(rot), np.asarray(rest)
  assert np.all(np.isfinite(rot)) and np.all(np.isfinite(rest))
  want_rot = gt[f"edge_{mode}_rot_mats"]
  want_rest = gt[f"edge_{mode}_rotate_rest_pose"]
  mask_rot = np.ones(rot.shape[:2], bool)
  mask_rest = np.ones(rest.shape[:2], bool)
  if mode == "eval":
    mask_rot[2, list(_NOISE_CHAIN)] = False
    mask_rest[2, list(_NOISE_CHAIN[1:])] = False
    assert _err(rot[1], want_rot[1]) < _ZERO_SKELETON_ATOL
    mask_rot[1] = False
  assert _err(rot[mask_rot], want_rot[mask_rot]) < ATOL_ROT[mode]
  assert _err(rest[mask_rest], want_rest[mask_rest]) < ATOL_M


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", ("fk", "noisy"))
def test_hybrik_forward_matches_hybriksmpl(model, gik, mode, case):
  out = _HYBRIK(
    model,
    gik[f"pose_skeleton_{case}"],
    gik["betas"],
    gik["phis"],
    train=mode == "train",
  )
  for key in ("vertices", "joints", "joints_from_verts"):
    assert _err(out[key], gik[f"{mode}_{case}_{key}"]) < ATOL_M, key
  assert _err(out["poses"], gik[f"{mode}_{case}_poses"]) < ATOL_ROT[mode]
  np.testing.assert_array_equal(
    np.asarray(out["poses"]), np.asarray(out["rot_mats"])
  )


@pytest.mark.parametrize("name", ("eval_fk", "eval_fk_transl", "train_fk"))
def test_hybrik_forward_body_cases(model, gt, name):
  train = name.startswith("train")
  transl = gt["transl"] if name.endswith("transl") else None
  out = _HYBRIK(
    model,
    gt["pose_skeleton_fk"][:4],
    gt["betas"][:4],
    gt["phis_true"][:4],
    train=train,
    transl=transl,
  )
  # Element 0 is the rest pose itself. The train-mode pelvis takes
  # arccos(s_r.s_f / (|s_r||s_f| + 1e-8)) with s_r == s_f: at the arccos
  # singularity, a 1e-7 m rounding difference in the regressed rest joints
  # can move the pelvis by 5e-4 (seen with an earlier summation order; the
  # current one happens to match to 3e-7 on CPU). It is checked below on the
  # reference's own rest pose instead; all other elements match directly.
  sel = slice(1, 4) if train else slice(0, 4)
  for key in ("vertices", "joints", "joints_from_verts"):
    assert (
      _err(np.asarray(out[key])[sel], gt[f"body_{name}_{key}"][sel]) < ATOL_M
    ), key
  assert (
    _err(np.asarray(out["poses"])[sel], gt[f"body_{name}_poses"][sel])
    < ATOL_ROT["train" if train else "eval"]
  )
  if name == "eval_fk":  # smplx on the true rotations (README: 4.3e-6 m)
    assert _err(out["vertices"], gt["smplx_true_vertices"]) < ATOL_M
    true_joints = gt["smplx_true_joints24"]
    assert _err(out["joints"], true_joints - true_joints[:, :1]) < ATOL_M


def test_train_body_element0_on_reference_rest_pose(model, gt):
  from hybrik_jax.smpl import lbs

  rest = jnp.asarray(gt["rest_pose"][:1])
  rot, _ = _IK(
    jnp.asarray(gt["pose_skeleton_fk"][:1]),
    None,
    jnp.asarray(gt["phis_true"][:1]),
    rest,
    train=True,
  )
  verts, joints, h36m = jax.jit(lbs.lbs_from_rotmats)(
    model, jnp.asarray(gt["betas"][:1]), rest[:, :24], rot
  )
  assert _err(rot, gt["body_train_fk_poses"][:1]) < ATOL_ROT["train"]
  assert _err(verts, gt["body_train_fk_vertices"][:1]) < ATOL_M
  assert _err(joints - joints[:, :1], gt["body_train_fk_joints"][:1]) < ATOL_M
  assert (
    _err(h36m - h36m[:, :1], gt["body_train_fk_joints_from_verts"][:1]) < ATOL_M
  )


def test_hybrik_forward_leaf_thetas(model, gt):
  args = (model, gt["pose_skeleton_fk"], gt["betas"], gt["phis_true"])
  base = _HYBRIK(*args)
  leaf = _HYBRIK(*args, leaf_thetas=jnp.asarray(gt["leaf_rot_mats"]))
  assert leaf["rot_mats"].shape == (8, 29, 3, 3)
  assert _err(leaf["rot_mats"], gt["eval_fk_leaf_rot_mats"]) < ATOL_ROT["eval"]
  for key in ("vertices", "joints", "joints_from_verts", "poses"):
    np.testing.assert_allclose(
      np.asarray(leaf[key]), np.asarray(base[key]), atol=1e-6
    )


@pytest.mark.parametrize("train", (False, True))
def test_jit_equals_eager(model, gik, train):
  args = (model, gik["pose_skeleton_noisy"], gik["betas"], gik["phis"])
  eager = smpl.hybrik_forward(*args, train=train)
  jitted = _HYBRIK(*args, train=train)
  for key in eager:
    np.testing.assert_allclose(
      np.asarray(eager[key]),
      np.asarray(jitted[key]),
      atol=_consistency_atol(key),
      err_msg=key,
    )


def _consistency_atol(key):
  """Run-to-run (jit/eager, batch size) float32 noise: fused kernels round
  differently, and the IK amplifies that in rotations."""
  return 1e-5 if key in ("poses", "rot_mats") else 2e-6


def _tile(x, n):
  return np.concatenate([x] * (-(-n // x.shape[0])), axis=0)[:n]


def test_batch_one_equals_batch_eight(model, gik):
  full = _HYBRIK(model, gik["pose_skeleton_noisy"], gik["betas"], gik["phis"])
  for i in (0, 5):
    one = _HYBRIK(
      model,
      gik["pose_skeleton_noisy"][i : i + 1],
      gik["betas"][i : i + 1],
      gik["phis"][i : i + 1],
    )
    for key in full:
      np.testing.assert_allclose(
        np.asarray(one[key])[0],
        np.asarray(full[key])[i],
        atol=_consistency_atol(key),
        err_msg=key,
      )


@pytest.mark.slow
@pytest.mark.parametrize("train", (False, True))
def test_batch_1000_equals_batch_eight(model, gik, train):
  full = _HYBRIK(
    model, gik["pose_skeleton_noisy"], gik["betas"], gik["phis"], train=train
  )
  big = _HYBRIK(
    model,
    _tile(gik["pose_skeleton_noisy"], 1000),
    _tile(gik["betas"], 1000),
    _tile(gik["phis"], 1000),
    train=train,
  )
  for key in full:
    got = np.asarray(big[key]).reshape((125, 8) + full[key].shape[1:])
    np.testing.assert_allclose(
      got,
      np.broadcast_to(np.asarray(full[key]), got.shape),
      atol=_consistency_atol(key),
      err_msg=key,
    )


def _grad_inputs(gt):
  """4 noisy samples + the 4 edge samples (incl. an all-zero skeleton)."""
  assert not np.any(gt["edge_pose_skeleton"][1])
  skel = np.concatenate(
    [
      gt["pose_skeleton_noisy30mm"][:2],
      gt["pose_skeleton_noisy5mm"][2:4],
      gt["edge_pose_skeleton"],
    ],
    0,
  )
  betas = np.concatenate([gt["betas"][:4], gt["betas"][:4]], 0)
  phis = np.concatenate([gt["phis_raw"][:4], gt["edge_phis"]], 0)
  phis[5] = 0.0  # all-zero skeleton with all-zero twists
  # Collinear target bone: right knee straight below the right hip, along
  # the rest bone direction (swing axis = 0).
  skel[3, 5] = skel[3, 2] + (gt["rest_pose"][3, 5] - gt["rest_pose"][3, 2])
  return skel, betas, phis


@pytest.mark.slow  # ~15 s: compiles the gradient of the whole forward
@pytest.mark.parametrize("train", (False, True))
def test_gradients_finite_with_degenerate_samples(model, gt, train):
  skel, betas, phis = _grad_inputs(gt)

  def loss(skel, betas, phis):
    out = smpl.hybrik_forward(model, skel, betas, phis, train=train)
    return sum(
      jnp.sum(out[k] ** 2)
      for k in ("vertices", "joints", "joints_from_verts", "poses")
    )

  grad = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))
  g_all = grad(skel, betas, phis)
  for g in g_all:
    assert np.all(np.isfinite(np.asarray(g)))
  assert np.any(np.asarray(g_all[0]) != 0) and np.any(np.asarray(g_all[1]) != 0)
  # Samples are independent: the degenerate ones do not leak into the rest
  # (same batch shape with the degenerate samples replaced by clean ones).
  clean = [np.concatenate([x[:4], x[:4]], 0) for x in (skel, betas, phis)]
  g_clean = grad(*clean)
  for a, b in zip(g_all, g_clean):
    b = np.asarray(b)[:4]  # float32 noise relative to the gradient's scale
    np.testing.assert_allclose(
      np.asarray(a)[:4], b, rtol=1e-4, atol=1e-5 * np.abs(b).max()
    )


def test_svd_pelvis_derivative_matches_finite_differences():
  rng = np.random.default_rng(1)
  with jax.enable_x64(True):
    s = jnp.asarray(rng.normal(size=(3, 3)))
    jac = np.asarray(jax.jacfwd(geometry.orthogonal_polar_factor_t)(s))
    eps = 1e-6
    num = np.zeros((3, 3, 3, 3))
    for i in range(3):
      for j in range(3):
        d = np.zeros((3, 3))
        d[i, j] = eps
        num[:, :, i, j] = (
          np.asarray(geometry.orthogonal_polar_factor_t(s + d))
          - np.asarray(geometry.orthogonal_polar_factor_t(s - d))
        ) / (2 * eps)
    np.testing.assert_allclose(jac, num, atol=1e-7)
    r = np.asarray(geometry.orthogonal_polar_factor_t(s))
    u, _, vh = np.linalg.svd(np.asarray(s))
    np.testing.assert_allclose(r, vh.T @ u.T, atol=1e-12)
    # Zero matrix: finite (zero) derivative.
    z = jax.jacfwd(geometry.orthogonal_polar_factor_t)(jnp.zeros((3, 3)))
    assert np.all(np.isfinite(np.asarray(z)))


def test_safe_helpers_gradients_at_zero():
  g = jax.grad(lambda x: geometry.safe_norm(x))(jnp.zeros(3))
  np.testing.assert_array_equal(np.asarray(g), 0.0)
  g = jax.grad(lambda x: geometry.safe_arccos(x))(jnp.float32(1.0))
  assert np.isfinite(float(g))
  aa = jnp.asarray([[1e-8, 0.0, 0.0], [0.3, -0.2, 0.1]], jnp.float32)
  m = np.asarray(geometry.axis_angle_to_matrix(aa))
  np.testing.assert_allclose(m[0], np.eye(3), atol=1e-7)
  np.testing.assert_allclose(
    m[1], np.asarray(geometry.batch_rodrigues(aa))[1], atol=1e-6
  )


def test_bad_shapes_are_named(model, gik):
  with pytest.raises(ValueError, match="pose_skeleton"):
    ik.batch_inverse_kinematics_transform(
      jnp.zeros((2, 24, 3)), None, jnp.zeros((2, 23, 2)), jnp.zeros((2, 29, 3))
    )
  with pytest.raises(ValueError, match="phis"):
    ik.batch_inverse_kinematics_transform(
      jnp.zeros((2, 29, 3)), None, jnp.zeros((2, 23)), jnp.zeros((2, 29, 3))
    )
  with pytest.raises(ValueError, match="J_regressor_extra"):
    hybrik.hybrik_forward(
      model.replace(J_regressor_extra=None),
      gik["pose_skeleton_fk"],
      gik["betas"],
      gik["phis"],
    )
