"""Tests of the synthetic dataset generator and the body demo."""

from __future__ import annotations

import json

import cv2
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import golden

from hybrik_jax import assets, render
from hybrik_jax.data import conventions, synthetic
from hybrik_jax.data.human_data import load_human_data
from hybrik_jax.demo import body_demo
from hybrik_jax.smpl import numpy_kinematics, poses, tables

H29 = np.asarray(conventions.HYBRIK29_IDXS)
H17 = np.asarray(conventions.H36M_IDXS)
IMAGE_WH = (240, 320)


@pytest.fixture(scope="module")
def model(smpl_model):
  return smpl_model


@pytest.fixture(scope="module")
def dataset(module_tmp, model):
  out = module_tmp.mktemp("synthetic")
  res = synthetic.generate(
    out,
    num=6,
    num_test=2,
    seed=3,
    image_size=IMAGE_WH,
    model=model,
    progress=False,
  )
  return out, res


def _splits(dataset):
  out, _ = dataset
  return {
    "train": (load_human_data(out / "synthetic_train.npz"), 1000.0),
    "test": (load_human_data(out / "synthetic_test.npz"), 1.0),
  }


def test_assets_paths_and_model(model):
  for p in (
    assets.synthetic_smpl_path(),
    assets.h36m_regressor_path(),
    assets.h36m_mean_beta_path(),
  ):
    assert p.is_file(), p
  assert model.J_regressor_extra.shape == (17, 6890)
  np.testing.assert_array_equal(
    assets.load_h36m_mean_beta(),
    np.load(
      assets.ASSETS_DIR.parent.parent
      / "tests"
      / "fixtures"
      / "h36m_mean_beta.npy"
    ),
  )


def test_swing_twist_matches_golden_phis(model):
  g = golden("golden_ik_transform.npz")
  phis = numpy_kinematics.swing_twist_phis(g["true_rot_mats"], g["rest_pose"])
  np.testing.assert_allclose(phis, g["phis_true"], atol=1e-6, rtol=0)
  fk = numpy_kinematics.fk_skeleton29(g["true_rot_mats"], g["rest_pose"])
  np.testing.assert_allclose(fk - fk[:, :1], g["pose_skeleton_fk"], atol=1e-6)
  np.testing.assert_allclose(
    numpy_kinematics.rest_skeleton29(model, g["betas"]),
    g["rest_pose"],
    atol=1e-5,
  )


def test_sampled_poses_respect_limits():
  rng = np.random.default_rng(0)
  pose = poses.sample_body_pose(rng, 500)  # [500, 23, 3]
  lo, hi = poses.POSE_LIMITS[..., 0], poses.POSE_LIMITS[..., 1]
  assert np.all(pose >= lo - 1e-12) and np.all(pose <= hi + 1e-12)
  knees = pose[:, [3, 4]]  # SMPL joints 4, 5
  assert np.all(knees[..., 0] >= 0) and np.all(knees[..., 1:] == 0)
  assert knees[..., 0].max() > 1.0
  assert np.all(pose[:, 17, 1] <= 0) and np.all(pose[:, 18, 1] >= 0)  # elbows
  orient = numpy_kinematics.axis_angle_to_matrix(
    poses.sample_global_orient(rng, 500)
  )
  up = orient @ np.array([0.0, 1.0, 0.0])  # template up in camera frame
  fwd = orient @ np.array([0.0, 0.0, 1.0])  # body's facing direction
  assert np.all(up[:, 1] < -np.cos(np.deg2rad(15)))  # upright (y down)
  assert np.all(fwd[:, 2] < np.sin(np.deg2rad(15)))  # never faces away
  betas = poses.sample_betas(rng, 100)
  assert betas.shape == (100, 10) and np.abs(betas).max() <= 2.0


def test_files_and_layout(dataset):
  out, res = dataset
  assert res["num_train"] == 4 and res["num_test"] == 2
  for i in range(6):
    img = cv2.imread(str(out / "images" / f"{i:06d}.jpg"))
    assert img is not None and img.shape == (IMAGE_WH[1], IMAGE_WH[0], 3)
  info = json.loads((out / "synthetic_info.json").read_text())
  assert info["train"]["units"] == "mm" and info["test"]["units"] == "m"
  splits = _splits(dataset)
  for name, (hd, unit) in splits.items():
    n = 4 if name == "train" else 2
    assert hd.data_len == n
    assert hd["config"] == ("h36m" if name == "train" else "pw3d")
    offset = 0 if name == "train" else 4
    assert hd["image_path"] == [
      f"images/{offset + i:06d}.jpg" for i in range(n)
    ]
    assert list(hd["image_height"]) == [IMAGE_WH[1]] * n
    assert list(hd["image_width"]) == [IMAGE_WH[0]] * n
    np.testing.assert_array_equal(hd["depth_factor"], 2.0 * unit)
    assert hd["bbox_xywh"].shape == (n, 5)
    np.testing.assert_array_equal(hd["bbox_xywh"][:, 4], 1.0)
    assert hd["smpl"]["thetas"].shape == (n, 24, 3)
    assert hd["smpl"]["betas"].shape == (n, 10)
    assert hd["phi"].shape == (n, 23, 2) and hd["phi"].dtype == np.float32
    np.testing.assert_allclose(
      np.linalg.norm(hd["phi"], axis=-1), 1.0, atol=1e-6
    )
    assert hd["root_cam"].dtype == np.float32
    for key in (
      "keypoints3d",
      "keypoints3d_cam",
      "keypoints3d_relative",
      "keypoints3d17",
      "keypoints3d17_cam",
      "keypoints3d17_relative",
    ):
      kp = hd[key]
      assert kp.shape == (n, 190, 4), key
      idx = H17 if "17" in key else H29
      mask = np.zeros(190, np.uint8)
      mask[idx] = 1
      np.testing.assert_array_equal(hd[key + "_mask"], mask)
      np.testing.assert_array_equal(kp[:, idx, 3], 1.0)
      np.testing.assert_array_equal(kp[:, mask == 0], 0.0)
    # Units: the pelvis lies 3-6 m (a little more where the body would not
    # fit) in front of the camera.
    z = hd["root_cam"][:, 2] / unit
    assert np.all(z > 2.9) and np.all(z < 7.0)


def test_keypoints_consistent_with_camera(dataset):
  for name, (hd, unit) in _splits(dataset).items():
    k = np.linalg.inv(hd["cam_param"]["intrinsic"].astype(np.float64))
    np.testing.assert_allclose(
      k[:, 0, 0], hd["cam_param"]["f"][:, 0], rtol=1e-5
    )
    np.testing.assert_allclose(k[:, :2, 2], hd["cam_param"]["c"], rtol=1e-5)
    for suffix, idx in (("", H29), ("17", H17)):
      cam = hd[f"keypoints3d{suffix}_cam"][:, idx, :3]  # [n, K, 3]
      img = hd[f"keypoints3d{suffix}"][:, idx, :3]
      rel = hd[f"keypoints3d{suffix}_relative"][:, idx, :3]
      proj = np.einsum("nij,nkj->nki", k, cam)
      uv = proj[..., :2] / proj[..., 2:]
      np.testing.assert_allclose(img[..., :2], uv, atol=1e-3)  # px
      np.testing.assert_allclose(
        img[..., 2], cam[..., 2] - cam[:, :1, 2], atol=1e-9 * unit
      )
      np.testing.assert_allclose(rel, cam - cam[:, :1], atol=1e-9 * unit)
    np.testing.assert_allclose(
      hd["root_cam"], hd["keypoints3d_cam"][:, 0, :3], rtol=1e-6
    )


def test_mesh_mask_matches_bbox(dataset, model):
  out, _ = dataset
  for name, (hd, unit) in _splits(dataset).items():
    smpl = hd["smpl"]
    res = numpy_kinematics.smpl_forward_batched(
      model, smpl["betas"], smpl["thetas"]
    )
    verts = res["vertices"]  # [n, V, 3] metres, model frame
    pelvis = res["joints"][:, :1]
    verts_cam = verts - pelvis + hd["root_cam"][:, None] / unit
    # The leaf joints are the posed mesh's leaf vertices.
    np.testing.assert_allclose(
      verts_cam[:, np.asarray(tables.LEAF_VERTEX_IDS)] * unit,
      hd["keypoints3d_cam"][:, H29[24:], :3],
      atol=2e-5 * unit,
    )
    for i in range(hd.data_len):
      f, c = hd["cam_param"]["f"][i], hd["cam_param"]["c"][i]
      h, w = hd["image_height"][i], hd["image_width"][i]
      mask = (
        render.rasterize(verts_cam[i], np.asarray(model.faces), f, c, (h, w))[0]
        >= 0
      )
      ys, xs = np.nonzero(mask)
      x1, y1, x2, y2 = hd["bbox_xywh"][i, :4]
      np.testing.assert_allclose(
        [xs.min(), ys.min(), xs.max(), ys.max()], [x1, y1, x2, y2], atol=1.0
      )
      # The body is fully in view and fills a good part of the image.
      assert 0 <= x1 and x2 <= w - 1 and 0 <= y1 and y2 <= h - 1
      assert (y2 - y1) > 0.3 * h or (x2 - x1) > 0.3 * w
      uv = hd["keypoints3d"][i, H29, :2]
      assert np.all(uv >= [x1 - 3, y1 - 3]) and np.all(uv <= [x2 + 3, y2 + 3])
      img = cv2.imread(str(out / hd["image_path"][i]))
      assert img.shape[:2] == (h, w)


def test_twists_reconstruct_the_rotations(dataset, model):
  splits = _splits(dataset)
  hds = [splits["train"][0], splits["test"][0]]
  units = [splits["train"][1], splits["test"][1]]
  thetas = np.concatenate([hd["smpl"]["thetas"] for hd in hds])  # [6, 24, 3]
  betas = np.concatenate([hd["smpl"]["betas"] for hd in hds])
  phis = np.concatenate([hd["phi"] for hd in hds])  # stored float32
  rel = np.concatenate(
    [
      hd["keypoints3d_relative"][:, H29[:24], :3] / u
      for hd, u in zip(hds, units)
    ]
  )
  rest = numpy_kinematics.rest_skeleton29(model, betas)
  rot = numpy_kinematics.axis_angle_to_matrix(thetas)
  skel = numpy_kinematics.fk_skeleton29(rot, rest)
  skel = skel - skel[:, :1]
  # The stored 24 SMPL joints are this FK skeleton (camera frame).
  np.testing.assert_allclose(rel, skel[:, :24], atol=2e-5)
  ik = body_demo.jitted_hybrik_forward()(
    model,
    jnp.asarray(skel, jnp.float32),
    jnp.asarray(betas, jnp.float32),
    jnp.asarray(phis),
    train=False,
  )
  true = numpy_kinematics.smpl_forward_batched(model, betas, thetas)
  np.testing.assert_allclose(
    np.asarray(ik["vertices"]), true["vertices"], atol=1e-4
  )
  np.testing.assert_allclose(np.asarray(ik["poses"]), rot, atol=1e-4)


def test_deterministic_given_seed(tmp_path, model):
  outs = []
  for k in range(2):
    d = tmp_path / f"run{k}"
    synthetic.generate(
      d,
      num=2,
      num_test=1,
      seed=11,
      image_size=(96, 128),
      model=model,
      progress=False,
    )
    outs.append(d)
  for f in (
    "images/000000.jpg",
    "images/000001.jpg",
    "synthetic_train.npz",
    "synthetic_test.npz",
  ):
    a = (outs[0] / f).read_bytes()
    b = (outs[1] / f).read_bytes()
    if f.endswith(".jpg"):
      assert a == b, f
  for f in ("synthetic_train.npz", "synthetic_test.npz"):
    ha, hb = load_human_data(outs[0] / f), load_human_data(outs[1] / f)
    for key in ("keypoints3d", "bbox_xywh", "phi", "root_cam"):
      np.testing.assert_array_equal(ha[key], hb[key])


def test_cli(tmp_path):
  synthetic.main(
    [
      "--out",
      str(tmp_path),
      "--num",
      "2",
      "--num-test",
      "1",
      "--image-size",
      "96,128",
      "--no-progress",
    ]
  )
  assert load_human_data(tmp_path / "synthetic_test.npz").data_len == 1
  with pytest.raises(ValueError, match="num-test"):
    synthetic.generate(tmp_path, num=2, num_test=3, progress=False)


def test_body_demo_runs_and_writes_png(tmp_path, model):
  summary = body_demo.run(tmp_path, num=2, seed=0, model=model, verbose=False)
  img = cv2.imread(str(tmp_path / "body_demo.png"))
  assert img is not None
  assert img.shape == (2 * body_demo.PANEL, 6 * body_demo.PANEL, 3)
  # Rendered bodies, not blank panels.
  assert (img < 250).any(axis=-1).mean() > 0.03
  exact = summary["cases"]["skeleton + true twists"]
  assert exact["mpjpe24_mm"] < 0.05 and exact["vertex_mm"] < 0.1
  zero = summary["cases"]["skeleton + zero twists"]
  assert zero["vertex_mm"] > 10 * exact["vertex_mm"]
