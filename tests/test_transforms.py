"""HybrIK train/test transforms (mmhuman3d semantics, explicit draws)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.spatial.transform import Rotation
from test_human_data import H, W, make_human_data

from hybrik_jax.data import conventions as conv
from hybrik_jax.data import transforms as T
from hybrik_jax.data.annotations import HybrIKAnnotations
from hybrik_jax.data.human_data import save_human_data

MEAN = np.array([123.675, 116.28, 103.53])
STD = np.array([58.395, 57.12, 57.375])
HYB = list(conv.HYBRIK29_IDXS)


@pytest.fixture(scope="module")
def anns(module_tmp):
  tmp = module_tmp.mktemp("hd")
  out = {}
  for kind in ("h36m", "pw3d", "mpi_inf_3dhp", "coco"):
    data = make_human_data(kind, seed=3)
    save_human_data(tmp / f"{kind}.npz", data)
    out[kind] = (HybrIKAnnotations(tmp / f"{kind}.npz", kind), data)
  return out


def _image(seed=0):
  return (np.random.default_rng(seed).random((H, W, 3)) * 255).astype(np.uint8)


def _unnormalize(img):
  """Model input (RGB, normalised) -> BGR 0-255 float."""
  return (img * STD.astype(np.float32) + MEAN.astype(np.float32))[..., ::-1]


def _draws(**kw):
  return dataclasses.replace(T.identity_draws(), **kw)


# ----------------------------------------------------------------------------
# Geometry.
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("rot", [0.0, 23.5, -47.0])
def test_affine_and_inverse(rot):
  center, scale = np.array([310.5, 222.25]), np.array([180.0, 180.0])
  t = T.get_affine_transform(center, scale, rot, (256, 256))
  t_inv = T.get_affine_transform(center, scale, rot, (256, 256), inv=True)
  full = lambda m: np.vstack([m, [0, 0, 1]])  # noqa: E731
  np.testing.assert_allclose(full(t) @ full(t_inv), np.eye(3), atol=1e-5)
  # centre -> output centre; centre + R(rot) (0, -s/2) -> top middle.
  r = np.deg2rad(rot)
  top = center + np.array([np.sin(r), -np.cos(r)]) * scale[0] / 2
  np.testing.assert_allclose(
    T.affine_transform_points(np.stack([center, top]), t),
    [[128, 128], [128, 0]],
    atol=1e-3,
  )
  # It is a similarity with zoom 256 / scale.
  np.testing.assert_allclose(
    np.linalg.det(t[:, :2]), (256 / 180.0) ** 2, rtol=1e-5
  )


def _blob_annotation(anns, rng):
  """An H36M-like annotation whose 29 visible joints sit on a sparse grid."""
  ann = anns["h36m"][0][0]
  kp = np.zeros((190, 3), np.float32)
  kp_vis = np.zeros((190, 3), np.float32)
  grid = np.stack(np.meshgrid(np.arange(6), np.arange(5)), -1).reshape(-1, 2)
  pts = 200 + grid[:29] * [40, 45] + rng.uniform(-6, 6, (29, 2))
  kp[HYB, :2] = pts
  kp[HYB, 2] = rng.uniform(-300, 300, 29)
  kp_vis[HYB] = 1
  ann["keypoints3d"], ann["keypoints3d_vis"] = kp, kp_vis
  bbox = np.array(
    [200.0 - 20, 200.0 - 20, 200 + 5 * 40 + 20, 200 + 4 * 45 + 20]
  )
  ann["bbox"] = bbox
  ann["center"], ann["scale"] = T.xyxy_to_center_scale(bbox, 1.25)
  return ann, pts


def _render_blobs(pts, sigma=1.5):
  yy, xx = np.mgrid[0:H, 0:W]
  img = np.zeros((H, W), np.float64)
  for x, y in pts:
    img += 220 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2))
  return np.repeat(np.clip(img, 0, 255)[..., None], 3, -1).astype(np.uint8)


@pytest.mark.parametrize("flip", [False, True])
def test_keypoints_follow_image_warp(anns, flip):
  """Dots rendered at the keypoints are found again where the uv targets say,
  after DPG, scaling, rotation and (optionally) flipping."""
  rng = np.random.default_rng(5)
  ann, pts = _blob_annotation(anns, rng)
  img = _render_blobs(pts)
  draws = _draws(
    dpg_u=0.0,
    dpg_patch_scale=0.5,
    dpg_jitter=(-0.02, 0.01, 0.03, -0.01),
    scale_randn=0.3,
    rot_randn=0.8,
    rot_u=0.0,
    flip_u=0.0 if flip else 1.0,
  )
  out = T.train_sample(ann, img, draws, return_meta=True)
  assert out["meta"]["rotation"] == pytest.approx(24.0)
  assert out["meta"]["is_flipped"] == flip
  inten = _unnormalize(out["img"]).sum(-1)
  uv = (out["target_uvd_29"].reshape(29, 3)[:, :2] + 0.5) * 256
  w = out["target_weight_29"].reshape(29, 3)[:, 0]
  assert w.sum() >= 20
  errs = []
  for (u, v), wi in zip(uv, w):
    if not wi:
      continue
    x0, y0 = int(round(u)), int(round(v))
    win = inten[y0 - 4 : y0 + 5, x0 - 4 : x0 + 5]
    yy, xx = np.mgrid[y0 - 4 : y0 + 5, x0 - 4 : x0 + 5]
    assert win.sum() > 100  # a dot is there
    errs.append(
      np.hypot(
        (win * xx).sum() / win.sum() - u, (win * yy).sum() / win.sum() - v
      )
    )
  assert max(errs) < 0.3, max(errs)
  # Joints whose uv lies outside the crop have weight 0.
  outside = np.any(np.abs(uv / 256 - 0.5) > 0.5, axis=1)
  assert not np.any(w[outside])


def test_flip_twice_is_identity_and_mirrors(anns):
  ann = anns["h36m"][0][2]
  img = _image(1)
  img1, r1 = T.flip_sample(img, ann)
  img2, r2 = T.flip_sample(img1, r1)
  np.testing.assert_array_equal(img1, img[:, ::-1])
  np.testing.assert_array_equal(img2, img)
  for key in (
    "keypoints3d",
    "keypoints3d_vis",
    "keypoints3d17",
    "keypoints3d17_vis",
    "keypoints3d_relative",
    "keypoints3d17_relative",
    "pose",
    "target_twist",
    "target_twist_weight",
    "center",
  ):
    np.testing.assert_allclose(r2[key], ann[key], atol=1e-4, err_msg=key)
  # Once: left hip (HumanData 1) takes the mirrored right hip (2).
  np.testing.assert_allclose(
    r1["keypoints3d"][1, 0], W - 1 - ann["keypoints3d"][2, 0], rtol=1e-6
  )
  np.testing.assert_array_equal(
    r1["keypoints3d"][1, 1:], ann["keypoints3d"][2, 1:]
  )
  np.testing.assert_allclose(r1["center"][0], W - 1 - ann["center"][0])
  np.testing.assert_array_equal(
    r1["keypoints3d_relative"][145],
    ann["keypoints3d_relative"][144] * [-1, 1, 1],
  )
  # Pose: the mirrored rotation M R M (M = diag(-1, 1, 1)) of the partner.
  m = np.diag([-1.0, 1, 1])
  for j, k in [(0, 0), (1, 2), (2, 1), (16, 17), (23, 22), (12, 12)]:
    np.testing.assert_allclose(
      Rotation.from_rotvec(r1["pose"][j]).as_matrix(),
      m @ Rotation.from_rotvec(ann["pose"][k]).as_matrix() @ m,
      atol=1e-6,
    )
  # Twist k belongs to SMPL joint k+1: sin negated, pairs swapped.
  np.testing.assert_array_equal(
    r1["target_twist"][0], ann["target_twist"][1] * [1, -1]
  )
  np.testing.assert_array_equal(
    r1["target_twist_weight"][4], ann["target_twist_weight"][3]
  )
  assert r1["target_twist_weight"][4].tolist() == [0, 0]
  assert r1["target_twist_weight"][3].tolist() == [1, 1]
  # bbox, root and intrinsics are not flipped.
  for key in ("bbox", "joint_root", "intrinsic_param"):
    np.testing.assert_array_equal(r1[key], ann[key])


def test_rotate_smpl_pose_matches_rotation_matrices():
  rng = np.random.default_rng(2)
  for rot in (-55.0, 12.0, 90.0):
    pose = rng.normal(0, 0.8, 72).astype(np.float32)
    out = T.rotate_smpl_pose(pose, rot)
    r = np.deg2rad(-rot)
    rz = np.array(
      [[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]]
    )
    want = rz @ Rotation.from_rotvec(pose[:3].astype(np.float64)).as_matrix()
    np.testing.assert_allclose(
      Rotation.from_rotvec(out[:3]).as_matrix(), want, atol=2e-6
    )
    np.testing.assert_array_equal(out[3:], pose[3:])
    assert out.dtype == np.float32
  np.testing.assert_array_equal(T.rotate_smpl_pose(pose, 0), pose)


def test_aa_to_quat():
  rng = np.random.default_rng(3)
  aa = rng.normal(0, 1, (50, 3)).astype(np.float32)
  aa *= (
    np.minimum(np.linalg.norm(aa, axis=1), 3.1) / np.linalg.norm(aa, axis=1)
  )[:, None]
  q = T.aa_to_quat(aa)
  assert q.dtype == np.float32
  ref = Rotation.from_rotvec(aa.astype(np.float64)).as_quat()  # x, y, z, w
  np.testing.assert_allclose(q, np.roll(ref, 1, axis=1), atol=2e-6)
  # Small-angle branch: zero and tiny rotations, no 0/0.
  tiny = np.array([[0, 0, 0], [1e-7, 0, 0]], np.float32)
  qt = T.aa_to_quat(tiny)
  np.testing.assert_array_equal(qt[0], [1, 0, 0, 0])
  np.testing.assert_allclose(qt[1], [1, 0.5e-7, 0, 0], rtol=1e-6)


# ----------------------------------------------------------------------------
# Random augmentations.
# ----------------------------------------------------------------------------


def test_dpg_draws():
  bbox = np.array([100.0, 50.0, 300.0, 450.0])  # w 200, h 400
  # Sub-patch branch: PatchScale 0.9 of the box, placed by the two uniforms.
  d = _draws(dpg_patch_scale=0.9, dpg_patch_u=(0.25, 0.75))
  box, c, s = T.dpg_bbox(bbox, W, H, d)
  pw, ph = 0.9 * 200, 0.9 * 400
  x1, y1 = 100 + 0.25 * (200 - pw), 50 + 0.75 * (400 - ph)
  np.testing.assert_allclose(box, [x1, y1, x1 + pw + 1, y1 + ph + 1])
  np.testing.assert_allclose(c, [x1 + (pw + 1) / 2, y1 + (ph + 1) / 2])
  np.testing.assert_allclose(s, [ph + 1, ph + 1])  # no 1.25 margin
  # Jitter branch, edges move by the normals x box size, clipped.
  d = _draws(dpg_patch_scale=0.5, dpg_jitter=(0.1, -0.05, 0.2, 0.3))
  box, _, _ = T.dpg_bbox(bbox, W, H, d)
  np.testing.assert_allclose(box, [120.0, 30.0, 340.0, min(570.0, H - 3)])
  d = _draws(dpg_patch_scale=0.5, dpg_jitter=(-5, -5, -5, -5))
  box, _, _ = T.dpg_bbox(bbox, W, H, d)
  np.testing.assert_allclose(box, [1.0, 1.0, 3.0, 3.0])  # x1 >= 1, x2 >= x1 + 2


def test_scale_rotation_draws():
  cfg = T.DEFAULT_CONFIG
  s = np.array([100.0, 100.0])
  s2, r = T.random_scale_rotation(
    s, _draws(scale_randn=0.4, rot_randn=0.5, rot_u=0.6), cfg
  )
  np.testing.assert_allclose(s2, [110.0, 110.0])
  assert r == pytest.approx(15.0)
  s2, r = T.random_scale_rotation(
    s, _draws(scale_randn=-3, rot_randn=-3, rot_u=0.1), cfg
  )
  np.testing.assert_allclose(s2, [75.0, 75.0])
  assert r == pytest.approx(-60.0)
  _, r = T.random_scale_rotation(s, _draws(rot_randn=1.0, rot_u=0.61), cfg)
  assert r == 0.0


def test_occlusion_draws():
  bbox = np.array([100.0, 50.0, 300.0, 450.0])
  d = _draws(
    occ_u=0.5, occ_area_u=0.5, occ_ratio_u=0.25, occ_x_u=0.5, occ_y_u=0.1
  )
  rect = T.occlusion_rect(bbox, W, H, d)
  area = 0.5 * 0.7 * 200 * 400
  ratio = 0.25 * (1 / 0.3 - 0.3) + 0.3
  h, w = np.sqrt(area * ratio), np.sqrt(area / ratio)
  assert rect == (
    int(0.5 * (200 - w - 1) + 100),
    int(0.1 * (400 - h - 1) + 50),
    int(w),
    int(h),
  )
  assert (
    T.occlusion_rect(bbox, W, H, dataclasses.replace(d, occ_u=0.95)) is None
  )
  # Out of the image: not pasted.
  wide = dataclasses.replace(d, occ_area_u=0.99, occ_ratio_u=0.0)
  assert (
    T.occlusion_rect(
      np.array([500.0, 0.0, 639.0, 479.0]),
      W,
      H,
      dataclasses.replace(wide, occ_x_u=0.0),
    )
    is None
  )
  assert (
    T.occlusion_rect(
      np.array([0.0, 0.0, 100.0, 479.0]),
      W,
      H,
      dataclasses.replace(wide, occ_x_u=1.0),
    )
    is None
  )
  img = _image(2)
  noise = np.random.default_rng(0).random((rect[3], rect[2], 3))
  out = T.apply_occlusion(img, rect, noise)
  x, y, w, h = rect
  np.testing.assert_array_equal(
    out[y : y + h, x : x + w], np.floor(noise * 255).astype(np.uint8)
  )
  out[y : y + h, x : x + w] = img[y : y + h, x : x + w]
  np.testing.assert_array_equal(out, img)


@pytest.mark.parametrize("kind", ["h36m", "pw3d", "mpi_inf_3dhp", "coco"])
def test_sampled_draws_run(anns, kind):
  """sample_draws + train_sample: shapes, finiteness, occluder sizes agree."""
  ann_set, _ = anns[kind]
  rng = np.random.default_rng(11)
  img = _image(3)
  flips = occl = 0
  for i in range(12):
    a = ann_set[i % len(ann_set)]
    d = T.sample_draws(rng, a, img.shape)
    out = T.train_sample(a, img, d, return_meta=True)
    flips += out["meta"]["is_flipped"]
    occl += d.occ_noise is not None
    for key, shape in (
      ("img", (256, 256, 3)),
      ("target_uvd_29", (87,)),
      ("target_weight_29", (87,)),
      ("target_xyz_24", (72,)),
      ("target_twist", (23, 2)),
      ("trans_inv", (2, 3)),
    ):
      assert out[key].shape == shape and out[key].dtype == np.float32
      assert np.all(np.isfinite(out[key]))
  assert 0 < flips < 12 and occl > 0


# ----------------------------------------------------------------------------
# Targets.
# ----------------------------------------------------------------------------


def _reconstruct_cam(out):
  """uvd target -> camera xyz with trans_inv, K^-1, root depth (the head's
  uvd_to_cam applied to the targets)."""
  uvd = out["target_uvd_29"].reshape(29, 3).astype(np.float64)
  px = (uvd[:, :2] + 0.5) * 256
  t_inv = out["trans_inv"].astype(np.float64)
  px = px @ t_inv[:, :2].T + t_inv[:, 2]
  z = uvd[:, 2] * out["depth_factor"][0] + out["joint_root"][2]
  homog = np.concatenate([px, np.ones((29, 1))], 1)
  return (homog @ out["intrinsic_param"].T.astype(np.float64)) * z[:, None]


@pytest.mark.parametrize("kind", ["h36m", "pw3d"])
def test_smpl_targets_reconstruct_camera_joints(anns, kind):
  ann_set, data = anns[kind]
  a = ann_set[1]
  draws = _draws(
    dpg_u=0.0,
    dpg_patch_scale=0.95,
    dpg_patch_u=(0.3, 0.6),
    scale_randn=-0.4,
    rot_randn=-1.1,
    rot_u=0.2,
  )
  out = T.train_sample(a, _image(4), draws, return_meta=True)
  rot = out["meta"]["rotation"]
  assert rot == pytest.approx(-33.0)
  cam = data["keypoints3d_cam"][1, HYB, :3]
  n = 24 if kind == "pw3d" else 29
  tol = 0.05 if kind == "h36m" else 5e-5  # mm / m
  np.testing.assert_allclose(_reconstruct_cam(out)[:n], cam[:n], atol=tol)
  rel = data["keypoints3d_relative"][1, HYB, :3]
  df = int(a["depth_factor"])
  np.testing.assert_allclose(
    out["target_xyz_24"].reshape(24, 3), rel[:24] / df, rtol=1e-6, atol=1e-7
  )
  rel17 = data["keypoints3d17_relative"][1, list(conv.H36M_IDXS), :3]
  np.testing.assert_allclose(
    out["target_xyz_17"].reshape(17, 3), rel17 / df, rtol=1e-6, atol=1e-7
  )
  # theta: w-first quaternions; the root is rotated by -rotation about z.
  q = out["target_theta"].reshape(24, 4)
  pose = data["smpl"]["thetas"][1]
  np.testing.assert_allclose(
    q[1:], T.aa_to_quat(pose[1:].astype(np.float32)), atol=1e-7
  )
  r = np.deg2rad(-rot)
  rz = np.array(
    [[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]]
  )
  np.testing.assert_allclose(
    Rotation.from_quat(np.roll(q[0], -1)).as_matrix(),
    rz @ Rotation.from_rotvec(pose[0]).as_matrix(),
    atol=2e-6,
  )
  np.testing.assert_array_equal(out["target_theta_weight"], 1)
  np.testing.assert_array_equal(out["target_smpl_weight"], [1])
  np.testing.assert_array_equal(
    out["target_beta"], data["smpl"]["betas"][1].astype(np.float32)
  )
  if kind == "pw3d":  # invisible leaves carry no weight anywhere
    np.testing.assert_array_equal(
      out["target_weight_29"].reshape(29, 3)[24:], 0
    )
  np.testing.assert_allclose(out["depth_factor"], [a["depth_factor"]])


def test_smpl_range_check(anns):
  a = anns["h36m"][0][0]
  a["keypoints3d"][HYB[7], 2] = 1001.0  # d = 0.5005 > 0.5
  a["keypoints3d"][HYB[8], 0] = a["bbox"][0] - 400  # far left of the crop
  out = T.test_sample(a, _image(5))
  w = out["target_weight_29"].reshape(29, 3)
  np.testing.assert_array_equal(w[[7, 8]], 0)
  assert w.sum() == 27 * 3
  uvd = out["target_uvd_29"].reshape(29, 3)
  assert uvd[7, 2] == pytest.approx(1001.0 / 2000.0)
  assert uvd[8, 0] < -0.5  # the target itself is kept, only its weight is 0
  np.testing.assert_array_equal(out["target_weight_24"], 1)  # visibility only


def test_coco_targets(anns):
  a = anns["coco"][0][0]
  a["keypoints3d"][4, 0] = a["bbox"][2] + 600  # left knee far outside
  a["keypoints3d_vis"][19] = 0  # right elbow (HumanData 19) unlabelled
  out = T.test_sample(a, _image(6))
  uvd = out["target_uvd_29"].reshape(29, 3)
  w = out["target_weight_29"].reshape(29, 3)
  np.testing.assert_array_equal(w[:, 2], 0)
  np.testing.assert_array_equal(uvd[:, 2], 0)
  for j in conv.NON_SMPL_MASKED_JOINTS:  # hips, spine2/3, feet
    np.testing.assert_array_equal(w[j], 0)
    np.testing.assert_array_equal(uvd[j], 0)
  supervised = [4, 5, 7, 8, 16, 17, 18, 20, 21]
  np.testing.assert_array_equal(w[supervised, :2], 1)
  np.testing.assert_array_equal(w[19], 0)
  assert uvd[4, 0] > 0.5  # COCO: no range check
  np.testing.assert_array_equal(
    out["target_weight_24"], out["target_weight_29"][:72]
  )
  for key in (
    "target_xyz_24",
    "target_xyz_17",
    "target_weight_17",
    "target_theta",
    "target_beta",
    "target_smpl_weight",
    "target_theta_weight",
    "intrinsic_param",
    "joint_root",
    "target_twist_weight",
  ):
    np.testing.assert_array_equal(out[key], 0, err_msg=key)


def test_3dhp_targets(anns):
  a = anns["mpi_inf_3dhp"][0][0]
  a["keypoints3d"][19, 2] = -1500.0  # right elbow: depth out of range
  out = T.train_sample(a, _image(7), T.identity_draws())
  w = out["target_weight_29"].reshape(29, 3)
  supervised = {0, 4, 5, 7, 8, 12, 16, 17, 18, 20, 21}
  for j in range(29):
    np.testing.assert_array_equal(
      w[j], 1 if j in supervised else 0, err_msg=str(j)
    )
  uvd = out["target_uvd_29"].reshape(29, 3)
  np.testing.assert_array_equal(uvd[19], 0)  # label = target x weight
  # Test mode gives 3DHP no uvd targets at all.
  np.testing.assert_array_equal(
    T.test_sample(a, _image(7))["target_weight_29"], 0
  )


def test_non_smpl_other_dataset_has_zero_targets(anns):
  a = anns["mpi_inf_3dhp"][0][0]
  a["ann_info"] = dict(a["ann_info"], dataset_name="h36m")
  out = T.test_sample(a, _image(8))
  np.testing.assert_array_equal(out["target_weight_29"], 0)
  np.testing.assert_array_equal(out["target_uvd_29"], 0)


# ----------------------------------------------------------------------------
# Determinism, test pipeline, image values.
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["h36m", "coco", "pw3d"])
def test_test_mode_determinism_and_identity_draws(anns, kind):
  a = anns[kind][0][2]
  img = _image(9)
  img_before = img.copy()
  out1 = T.test_sample(a, img, return_meta=True)
  out2 = T.test_sample(a, img)
  assert out1["meta"]["rotation"] == 0
  np.testing.assert_array_equal(out1["meta"]["scale"], a["scale"])
  # With every augmentation off, the train pipeline equals the test one.
  out3 = T.train_sample(a, img, T.identity_draws())
  np.testing.assert_array_equal(img, img_before)  # inputs untouched
  for key in out2:
    np.testing.assert_array_equal(out1[key], out2[key], err_msg=key)
    np.testing.assert_array_equal(out2[key], out3[key], err_msg=key)
  # bbox is the 1.25x crop square.
  c, s = a["center"], a["scale"]
  np.testing.assert_allclose(
    out1["bbox"],
    [c[0] - s[0] / 2, c[1] - s[1] / 2, c[0] + s[0] / 2, c[1] + s[1] / 2],
    rtol=1e-6,
  )


def test_image_values_channel_noise_and_normalize(anns):
  a = anns["h36m"][0][0]
  img = _image(10)
  t = T.get_affine_transform(a["center"], a["scale"], 0, (256, 256))
  import cv2

  warped = cv2.warpAffine(
    img,
    t,
    (256, 256),
    flags=cv2.INTER_LINEAR,
    borderMode=cv2.BORDER_CONSTANT,
    borderValue=0,
  )
  factors = (0.7, 1.0, 1.3)
  out = T.train_sample(a, img, _draws(channel_noise=factors))
  want = (warped.astype(np.float64) * factors)[..., ::-1]
  want = (want - MEAN) / STD
  np.testing.assert_allclose(out["img"], want, atol=2e-5)
  # Pure blue (BGR 255, 0, 0) lands in RGB channel 2.
  blue = np.zeros((4, 4, 3), np.float32)
  blue[..., 0] = 255
  norm = T.normalize(blue)
  np.testing.assert_allclose(
    norm[0, 0],
    [-123.675 / 58.395, -116.28 / 57.12, (255 - 103.53) / 57.375],
    rtol=1e-6,
  )
  noisy = T.channel_noise(blue + 10, (0.6, 1.4, 1.0))
  np.testing.assert_allclose(noisy[0, 0], [265 * 0.6, 14.0, 10.0], rtol=1e-6)
  assert (
    T.channel_noise(np.full((2, 2, 3), 250, np.float32), (1.4, 1.4, 1.4)) > 255
  ).all()  # no clipping
