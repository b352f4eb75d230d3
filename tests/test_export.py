"""Animation exports of a video track: BVH (write, parse, re-pose) and .pk."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from hybrik_jax import safe_pickle
from hybrik_jax.demo import bvh, pk
from hybrik_jax.smpl import numpy_kinematics, tables

T = 20
FPS = 29.97
ATOL_M = 1e-4  # round-trip joint positions, metres
GIMBAL_JOINT = 18  # L_Elbow: middle-axis (Y) angle sweeps 80..99 deg
LOCKED_JOINT = 19  # R_Elbow: exactly 90 deg about Y at every frame


def _track(seed: int = 0):
  """A smooth synthetic track: pose [T, 24, 3, 3], pelvis [T, 3], betas."""
  rng = np.random.default_rng(seed)
  time = np.arange(T) / FPS
  base = rng.normal(0.0, 0.3, (24, 3))
  amp = rng.normal(0.0, 0.4, (24, 3))
  freq = rng.uniform(0.3, 1.5, (24, 3))
  phase = rng.uniform(0, 2 * np.pi, (24, 3))
  aa = base + amp * np.sin(2 * np.pi * freq * time[:, None, None] + phase)
  pose = numpy_kinematics.axis_angle_to_matrix(aa)  # [T, 24, 3, 3]
  # Root: upright person seen by an OpenCV camera (180 deg about x).
  pose[:, 0] = np.diag([1.0, -1.0, -1.0]) @ pose[:, 0]
  ry = bvh.axis_rotation("Y", np.deg2rad(80.0 + np.arange(T)))  # 90 at t=10
  pose[:, GIMBAL_JOINT] = (
    bvh.axis_rotation("Z", 0.2 * np.sin(time))
    @ ry
    @ bvh.axis_rotation("X", 0.3 * np.cos(time))
  )
  pose[:, LOCKED_JOINT] = (
    bvh.axis_rotation("Z", 0.5 + time)
    @ bvh.axis_rotation("Y", np.full(T, np.pi / 2))
    @ bvh.axis_rotation("X", -0.4 + time)
  )
  pelvis = np.stack(
    [0.3 * np.sin(time), 0.1 * np.cos(2 * time), 4.0 + 0.5 * time], -1
  )  # [T, 3] camera metres
  betas = rng.normal(0.0, 0.5, (T, 10))
  return pose, pelvis, betas


@pytest.fixture(scope="module")
def track(smpl_model):
  pose, pelvis, betas = _track()
  rest = bvh.smpl_rest_skeleton(smpl_model, betas)  # [29, 3]
  return pose, pelvis, betas, rest


def _reference(pose, pelvis, rest, up):
  """Posed SMPL skeleton (project FK), pelvis moved to ``pelvis``: [T,29,3]."""
  rest29 = np.broadcast_to(rest, (T, 29, 3))
  joints = numpy_kinematics.fk_skeleton29(pose, rest29)  # [T, 29, 3]
  joints = joints - rest[0] + pelvis[:, None]
  if up == "y":
    joints = joints @ bvh.Y_UP_FROM_CAMERA.T
  return joints


def _smpl_order(parsed):
  """[29] file indices: the 24 SMPL joints, then End Sites as HybrIK leaves."""
  idx = parsed.index(bvh.SMPL_JOINT_NAMES)
  ends = [
    len(parsed.names) + parsed.end_parents.index(idx[p])
    for p in tables.HYBRIK_PARENTS[24:]
  ]
  return np.concatenate([idx, ends])


def test_euler_round_trip_all_orders_and_gimbal():
  rng = np.random.default_rng(1)
  mats = numpy_kinematics.axis_angle_to_matrix(rng.normal(0, 2, (200, 3)))
  for order in bvh.EULER_ORDERS:
    mid = order[1]
    near = []
    for b in (90.0, -90.0, 90 - 1e-9, 90 - 1e-6, 90 - 1e-3, -90 + 1e-5):
      for a, c in ((0.0, 0.0), (37.0, -120.0), (-170.0, 179.0)):
        near.append(bvh.euler_to_matrix(np.array([a, b, c]), order))
    near = np.stack(near)
    assert np.isclose(bvh.matrix_to_euler(near, order)[0, 1], 90.0)
    for r in (mats, near):
      back = bvh.euler_to_matrix(bvh.matrix_to_euler(r, order), order)
      assert np.abs(back - r).max() < 1e-12, (order, mid)
  ang = np.array([[10.0, 20.0, 30.0]])
  zyx = bvh.euler_to_matrix(ang, "ZYX")[0]
  want = (
    bvh.axis_rotation("Z", np.deg2rad(10.0))
    @ bvh.axis_rotation("Y", np.deg2rad(20.0))
    @ bvh.axis_rotation("X", np.deg2rad(30.0))
  )
  np.testing.assert_allclose(zyx, want, atol=1e-15)
  np.testing.assert_allclose(bvh.matrix_to_euler(zyx, "ZYX"), ang[0])


@pytest.mark.parametrize(
  "order,up,units",
  [("ZYX", "y", "m"), ("XYZ", "y", "m"), ("ZYX", "camera", "cm")],
)
def test_bvh_round_trip(tmp_path, track, order, up, units):
  pose, pelvis, _, rest = track
  path = bvh.write_bvh(
    tmp_path / "a.bvh", pose, pelvis, rest, FPS, order=order, up=up, units=units
  )
  parsed = bvh.parse_bvh(path)
  scale = bvh.UNITS[units]
  got = bvh.bvh_positions(parsed, end_sites=True)[:, _smpl_order(parsed)]
  want = _reference(pose, pelvis, rest, up)
  err = np.abs(got / scale - want).max()
  assert err <= ATOL_M, err
  # The file's rotations are the predicted ones (camera frame for 'camera').
  rots, _ = bvh.bvh_local_transforms(parsed)
  idx = parsed.index(bvh.SMPL_JOINT_NAMES)
  if up == "camera":
    np.testing.assert_allclose(rots[:, idx], pose, atol=1e-6)
  else:
    np.testing.assert_allclose(rots[:, idx[1:]], pose[:, 1:], atol=1e-6)


def test_bvh_matches_smpl_forward(tmp_path, smpl_model, track):
  """BVH joints == the SMPL body model's own joints with transl."""
  from hybrik_jax import smpl

  pose, pelvis, betas, rest = track
  shape = np.broadcast_to(np.median(betas, 0), (T, 10)).astype(np.float32)
  out = smpl.forward(
    smpl_model,
    shape,
    pose[:, 1:].astype(np.float32),
    pose[:, :1].astype(np.float32),
    (pelvis - rest[0]).astype(np.float32),
  )
  text = bvh.bvh_text(pose, pelvis, rest, FPS, up="camera")
  parsed = bvh.parse_bvh(text)
  got = bvh.bvh_positions(parsed)[:, parsed.index(bvh.SMPL_JOINT_NAMES)]
  assert np.abs(got - np.asarray(out["joints"], np.float64)).max() <= ATOL_M


def test_bvh_header(tmp_path, smpl_model, track):
  pose, pelvis, betas, rest = track
  path = bvh.export_track_bvh(
    tmp_path / "t.bvh", smpl_model, pose, betas, pelvis, FPS, order="XYZ"
  )
  text = path.read_text()
  assert text.startswith("HIERARCHY\nROOT Pelvis\n")
  parsed = bvh.parse_bvh(path)
  assert len(parsed.names) == 24
  assert set(parsed.names) == set(bvh.SMPL_JOINT_NAMES)
  assert parsed.names[0] == "Pelvis" and parsed.parents[0] == -1
  assert parsed.channels[0] == (
    "Xposition",
    "Yposition",
    "Zposition",
    "Xrotation",
    "Yrotation",
    "Zrotation",
  )
  assert all(
    c == ("Xrotation", "Yrotation", "Zrotation") for c in parsed.channels[1:]
  )
  assert parsed.motion.shape == (T, 6 + 3 * 23)
  assert parsed.num_frames == T
  assert f"Frames: {T}\n" in text
  assert parsed.frame_time == pytest.approx(1.0 / FPS, rel=1e-9)
  # Parents and offsets: SMPL's tree and rest bones.
  idx = parsed.index(bvh.SMPL_JOINT_NAMES)
  for j in range(1, 24):
    assert parsed.parents[idx[j]] == idx[tables.SMPL_PARENTS[j]]
  np.testing.assert_allclose(parsed.offsets[idx[0]], 0.0)
  np.testing.assert_allclose(
    parsed.offsets[idx[1:]],
    rest[1:24] - rest[np.asarray(tables.SMPL_PARENTS[1:])],
    atol=1e-6,
  )
  # End Sites on the 5 leaves, at HybrIK's leaf vertices.
  leaves = ("L_Foot", "R_Foot", "Head", "L_Hand", "R_Hand")
  assert sorted(parsed.names[p] for p in parsed.end_parents) == sorted(leaves)
  assert text.count("End Site") == 5
  # Median shape over the track.
  want = numpy_kinematics.rest_skeleton29(smpl_model, np.median(betas, 0)[None])
  np.testing.assert_allclose(rest, want[0])
  mean = bvh.smpl_rest_skeleton(smpl_model, betas, reduce="mean")
  assert np.abs(mean - rest).max() > 1e-6


def test_bvh_angles_are_smooth(track):
  """Unwrapped angles: no 360-degree jumps in a smooth motion."""
  pose, pelvis, _, rest = track
  big = pose.copy()
  # 1.5 turns about the camera's z (the first ZYX axis): without
  # unwrapping the root's Z angle would jump from +180 to -180 degrees.
  spin = np.linspace(0, 3 * np.pi, T)
  big[:, 0] = bvh.axis_rotation("Z", spin) @ pose[:, 0]
  parsed = bvh.parse_bvh(bvh.bvh_text(big, pelvis, rest, FPS, up="camera"))
  angles = parsed.motion[:, 3:].reshape(T, 24, 3)  # file joint order
  smooth = [
    i for i, n in enumerate(parsed.names) if n not in ("L_Elbow", "R_Elbow")
  ]
  # Gimbal joints excepted (their first / third split is arbitrary).
  assert np.abs(np.diff(angles[:, smooth], axis=0)).max() < 45.0
  assert np.abs(angles[:, parsed.index(["Pelvis"])[0]]).max() > 360.0


def _demo_arrays(track, seed=3):
  pose, pelvis, betas, _ = track
  rng = np.random.default_rng(seed)
  xyz_24 = pelvis[:, None] + rng.normal(0, 0.3, (T, 24, 3))
  xyz_24[:, 0] = pelvis
  return {
    "pose": pose.astype(np.float32),
    "betas": betas.astype(np.float32),
    "phis": rng.normal(0, 1, (T, 23, 2)).astype(np.float32),
    "uvd": rng.uniform(-0.5, 0.5, (T, 29, 3)).astype(np.float32),
    "xyz_24": xyz_24.astype(np.float32),
    "xyz_17": (pelvis[:, None] + rng.normal(0, 0.3, (T, 17, 3))).astype(
      np.float32
    ),
    "vertices": (pelvis[:, None] + rng.normal(0, 0.3, (T, 6890, 3))).astype(
      np.float32
    ),
    "pelvis_cam": pelvis.astype(np.float32),
    "focal": np.full(T, 1920.0, np.float32),
    "bbox_xywh": np.tile(np.float32([100, 50, 300, 600]), (T, 1)),
  }


def test_pk_round_trip(tmp_path, track):
  arrays = _demo_arrays(track)
  names = [f"dance/{i:06d}.png" for i in range(T)]
  res = pk.pk_from_demo(arrays, (1080, 1920), names)
  path = pk.write_pk(tmp_path / "res.pk", res)
  got = pk.load_pk(path)
  assert tuple(got) == pk.PK_KEYS
  for k in pk.PK_KEYS:
    assert got[k].shape == (T,) + pk.PK_SHAPES[k], k
    np.testing.assert_array_equal(got[k], res[k])
    if k not in ("height", "width", "img_path"):
      assert got[k].dtype == np.float32, k
  assert got["height"].dtype == np.int64 and set(got["height"]) == {1080}
  assert list(got["img_path"]) == names
  # Values: the predictions, in the authors' units.
  np.testing.assert_array_equal(
    got["pred_thetas"].reshape(T, 24, 3, 3), arrays["pose"]
  )
  np.testing.assert_array_equal(got["pred_betas"], arrays["betas"])
  np.testing.assert_array_equal(got["pred_phi"], arrays["phis"])
  np.testing.assert_array_equal(got["pred_uvd"], arrays["uvd"])
  np.testing.assert_array_equal(got["transl"], arrays["pelvis_cam"])
  np.testing.assert_array_equal(got["pred_cam_root"], arrays["pelvis_cam"])
  np.testing.assert_allclose(
    got["transl_camsys"], arrays["pelvis_cam"] * 1000.0 / 1920.0, rtol=1e-6
  )
  xyz24 = arrays["xyz_24"].astype(np.float64)
  np.testing.assert_allclose(
    got["pred_xyz_24_struct"] * 2.2, xyz24 - xyz24[:, :1], atol=1e-6
  )
  leaves = arrays["vertices"][:, list(tables.LEAF_VERTEX_IDS)]
  np.testing.assert_allclose(
    got["pred_xyz_29"][:, 24:] * 2.2, leaves - xyz24[:, :1], atol=1e-6
  )
  assert np.all(got["pred_xyz_17"][:, 0] == 0)
  # Crop box: square, 1.25 x the longer side, same centre.
  np.testing.assert_allclose(got["bbox"][0], [-125, -25, 625, 725])
  np.testing.assert_allclose(
    got["pred_camera"][:, 0],
    1920.0 / (750.0 * arrays["pelvis_cam"][:, 2]),
    rtol=1e-6,
  )
  np.testing.assert_array_equal(got["pred_scores"], 1.0)


def test_pk_load_refuses_foreign_globals(tmp_path):
  import datetime

  path = tmp_path / "evil.pk"
  path.write_bytes(pickle.dumps({"pred_uvd": datetime.date(2020, 1, 1)}))
  with pytest.raises(safe_pickle.UnsafePickleError, match="datetime"):
    pk.load_pk(path)
  path.write_bytes(pickle.dumps({"pred_uvd": np.zeros((2, 29, 3))}, protocol=5))
  with pytest.raises(pk.PkFormatError, match="missing keys"):
    pk.load_pk(path)
  assert pk.load_pk(path, check=False)["pred_uvd"].shape == (2, 29, 3)
  path.write_bytes(b"not a pickle")
  with pytest.raises(pk.PkFormatError, match="evil.pk"):
    pk.load_pk(path)


def test_bad_inputs_are_named(tmp_path, track):
  pose, pelvis, _, rest = track
  cases = [
    ((pose[:, :23], pelvis, rest, FPS), {}, "pose must be"),
    ((pose[:0], pelvis[:0], rest, FPS), {}, r"pose has no frames \(T = 0\)"),
    ((pose.reshape(T, 24, 9), pelvis, rest, FPS), {}, "pose must be"),
    (
      (np.where(np.arange(3) == 1, np.nan, pose), pelvis, rest, FPS),
      {},
      "pose has non-finite",
    ),
    ((pose * 2.0, pelvis, rest, FPS), {}, r"pose\[0, 0\] is not a rotation"),
    ((pose, pelvis[:-1], rest, FPS), {}, "pelvis must be"),
    ((pose, pelvis + np.inf, rest, FPS), {}, "pelvis has non-finite"),
    ((pose, pelvis, rest[:20], FPS), {}, "rest_joints must be"),
    ((pose, pelvis, rest, 0.0), {}, "fps must be"),
    ((pose, pelvis, rest, float("nan")), {}, "fps must be"),
    ((pose, pelvis, rest, FPS), {"order": "ZYZ"}, "order must be"),
    ((pose, pelvis, rest, FPS), {"units": "mm"}, "units must be"),
    ((pose, pelvis, rest, FPS), {"up": "z"}, "up must be"),
  ]
  for args, kwargs, msg in cases:
    with pytest.raises(ValueError, match=msg):
      bvh.bvh_text(*args, **kwargs)

  arrays = _demo_arrays(track)
  bad = [
    ({"pose": arrays["pose"][:, :23]}, "pose must be"),
    ({"pose": arrays["pose"][:0]}, "pose must be"),
    ({"betas": arrays["betas"][:5]}, "betas must be"),
    (
      {"pelvis_cam": arrays["pelvis_cam"] * np.nan},
      "pelvis_cam has non-finite",
    ),
    ({"xyz_17": np.full((T, 17, 3), np.inf)}, "xyz_17 has non-finite"),
  ]
  for change, msg in bad:
    with pytest.raises(ValueError, match=msg):
      pk.pk_from_demo({**arrays, **change}, (1080, 1920))
  no_verts = {k: v for k, v in arrays.items() if k != "vertices"}
  with pytest.raises(ValueError, match="vertices"):
    pk.pk_from_demo(no_verts, (1080, 1920))
  with pytest.raises(ValueError, match="img_paths"):
    pk.pk_from_demo(arrays, (1080, 1920), ["a"])
  with pytest.raises(pk.PkFormatError, match="pred_thetas"):
    res = pk.pk_from_demo(arrays, (1080, 1920))
    pk.write_pk(
      tmp_path / "bad.pk", {**res, "pred_thetas": res["pred_thetas"][:, :9]}
    )


def test_parse_bvh_rejects_broken_files(track):
  pose, pelvis, _, rest = track
  text = bvh.bvh_text(pose[:2], pelvis[:2], rest, FPS)
  with pytest.raises(bvh.BVHFormatError, match="MOTION has"):
    bvh.parse_bvh(text.rstrip("\n").rsplit(" ", 1)[0] + "\n")
  with pytest.raises(bvh.BVHFormatError, match="HIERARCHY"):
    bvh.parse_bvh("HIER\n" + text.split("\n", 1)[1])
  with pytest.raises(bvh.BVHFormatError, match="OFFSET"):
    bvh.parse_bvh(text.replace("OFFSET 0.000000 0.000000 0.000000", "OFFSET 0"))


def test_pk_loads_a_file_like_the_authors(tmp_path):
  """Their script: per-frame lists, np.stack, pickle.dump (default protocol)."""
  rng = np.random.default_rng(4)
  frames = []
  for i in range(3):
    f = {
      k: rng.normal(size=s).astype(np.float32) for k, s in pk.PK_SHAPES.items()
    }
    f["bbox"] = np.array([1.0, 2.0, 3.0, 4.0])  # float64 in their script
    f["height"], f["width"] = np.int64(480), np.int64(640)
    f["img_path"] = f"res_dance/raw_images/dance-{i:06d}.png"
    frames.append(f)
  res_db = {k: np.stack([f[k] for f in frames]) for k in pk.PK_KEYS}
  path = tmp_path / "res.pk"
  path.write_bytes(pickle.dumps(res_db))
  got = pk.load_pk(path)
  for k in pk.PK_KEYS:
    np.testing.assert_array_equal(got[k], res_db[k])
  assert pk.check_pk(got) == 3
