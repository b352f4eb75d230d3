"""HumanData reader/writer and the per-sample annotation builder.

The files are written with :func:`save_human_data` in the layouts of
mmhuman3d's four HybrIK converters (h36m_hybrik, pw3d_hybrik,
mpi_inf_3dhp_hybrik, coco_hybrik), mask-compressed like theirs.
"""

from __future__ import annotations

import io
import os
import pickle
import zipfile

import numpy as np
import pytest

from hybrik_jax.data import conventions as conv
from hybrik_jax.data.annotations import HybrIKAnnotations, box2cs, xyxy2xywh
from hybrik_jax.data.human_data import (
  HumanDataError,
  load_human_data,
  save_human_data,
)

W, H = 640, 480


def _mask(idxs) -> np.ndarray:
  m = np.zeros(190, np.uint8)
  m[list(idxs)] = 1
  return m


def _scatter(values: np.ndarray, idxs) -> np.ndarray:
  """[N, J, C] in a source convention -> [N, 190, C] HumanData (zeros else)."""
  out = np.zeros((values.shape[0], 190, values.shape[2]))
  out[:, list(idxs)] = values
  return out


def _inv_k(f, c) -> np.ndarray:
  k = np.array([[f[0], 0, c[0]], [0, f[1], c[1]], [0, 0, 1]], np.float32)
  return np.linalg.inv(k).astype(np.float32)


def _project(cam: np.ndarray, f, c) -> np.ndarray:
  """[N, J, 3] camera -> [N, J, 3] (u px, v px, z) like mmhuman3d cam2pixel."""
  u = cam[..., 0] / (cam[..., 2] + 1e-8) * f[0] + c[0]
  v = cam[..., 1] / (cam[..., 2] + 1e-8) * f[1] + c[1]
  return np.stack([u, v, cam[..., 2]], -1)


def _bbox_from(uv: np.ndarray) -> np.ndarray:
  """[N, J, 2] -> stored bbox_xywh [N, 5]: clipped xyxy of the joints + 1."""
  lo = uv.min(1) - 20
  hi = uv.max(1) + 20
  xyxy = np.concatenate([lo, hi], 1)
  xyxy[:, [0, 2]] = np.clip(xyxy[:, [0, 2]], 0, W - 1)
  xyxy[:, [1, 3]] = np.clip(xyxy[:, [1, 3]], 0, H - 1)
  return np.hstack([xyxy, np.ones([len(uv), 1])])


def _skeleton(rng, n, j, unit) -> np.ndarray:
  """[N, J, 3] camera-space joints around a root 4 m (or 4000 mm) away."""
  root = np.stack(
    [
      rng.uniform(-0.2, 0.2, n),
      rng.uniform(-0.1, 0.1, n),
      rng.uniform(3.5, 4.5, n),
    ],
    -1,
  )
  offsets = rng.uniform(-0.5, 0.5, (n, j, 3)) * np.array([1, 1.6, 0.4])
  offsets[:, 0] = 0  # joint 0 is the root
  return (root[:, None] + offsets) * unit


def make_human_data(kind: str, n: int = 4, seed: int = 0) -> dict:
  """A HumanData dict in the layout of one mmhuman3d HybrIK converter.

  kind: 'h36m' (SMPL, mm, twists), 'pw3d' (SMPL, metres, leaves invisible,
  keypoints3d17 zeros), 'mpi_inf_3dhp' (28 3DHP joints, no SMPL), 'coco'
  (17 COCO 2D joints, no camera).
  """
  rng = np.random.default_rng(seed)
  f, c = (1000.0, 1002.0), (320.0, 240.0)
  data = {
    "image_path": [f"{kind}/img_{i:04d}.jpg" for i in range(n)],
    "image_height": [H] * n,
    "image_width": [W] * n,
    "config": kind,
  }
  if kind in ("h36m", "pw3d"):
    unit = 1000.0 if kind == "h36m" else 1.0
    cam29 = _skeleton(rng, n, 29, unit)
    vis29 = np.ones((n, 29, 1))
    if kind == "pw3d":
      cam29[:, 24:] = 0
      vis29[:, 24:] = 0
    img29 = _project(cam29, f, c)
    img29[..., 2] -= cam29[:, :1, 2]
    if kind == "pw3d":
      img29[:, 24:] = 0
    rel29 = cam29 - cam29[:, :1]
    cam17 = _skeleton(rng, n, 17, unit)
    img17 = _project(cam17, f, c)
    img17[..., 2] -= cam17[:, :1, 2]
    if kind == "pw3d":
      img17[:] = 0
    rel17 = cam17 - cam17[:, :1]
    one17 = np.ones((n, 17, 1))
    m29, m17 = _mask(conv.HYBRIK29_IDXS), _mask(conv.H36M_IDXS)
    data.update(
      {
        "bbox_xywh": _bbox_from(_project(cam29[:, :24], f, c)[..., :2]),
        "smpl": {
          "thetas": rng.normal(0, 0.3, (n, 24, 3)),
          "betas": rng.normal(0, 1, (n, 10)),
        },
        "cam_param": {
          "f": np.tile(np.float32(f), (n, 1)),
          "c": np.tile(np.float32(c), (n, 1)),
          "intrinsic": np.tile(_inv_k(f, c), (n, 1, 1)),
        },
        "root_cam": cam29[:, 0].astype(np.float32),
        "depth_factor": [2000.0 if kind == "h36m" else 2.0] * n,
        "keypoints3d": _scatter(
          np.concatenate([img29, vis29], -1), conv.HYBRIK29_IDXS
        ),
        "keypoints3d_cam": _scatter(
          np.concatenate([cam29, vis29], -1), conv.HYBRIK29_IDXS
        ),
        "keypoints3d_relative": _scatter(
          np.concatenate([rel29, vis29], -1), conv.HYBRIK29_IDXS
        ),
        "keypoints3d17": _scatter(
          np.concatenate([img17, one17], -1), conv.H36M_IDXS
        ),
        "keypoints3d17_cam": _scatter(
          np.concatenate([cam17, one17], -1), conv.H36M_IDXS
        ),
        "keypoints3d17_relative": _scatter(
          np.concatenate([rel17, one17], -1), conv.H36M_IDXS
        ),
      }
    )
    for key in ("keypoints3d", "keypoints3d_cam", "keypoints3d_relative"):
      data[f"{key}_mask"] = m29
    for key in ("keypoints3d17", "keypoints3d17_cam", "keypoints3d17_relative"):
      data[f"{key}_mask"] = m17
    if kind == "h36m":
      angle = rng.uniform(-np.pi, np.pi, (n, 23))
      angle[:, 3] = -999  # invalid twist (left knee, a flip pair)
      data["phi"] = np.stack([np.cos(angle), np.sin(angle)], -1).astype(
        np.float32
      )
      w = (angle > -10) * 1.0
      data["phi_weight"] = np.stack([w, w], -1)
  elif kind == "mpi_inf_3dhp":
    cam28 = _skeleton(rng, n, 28, 1000.0)
    img28 = _project(cam28, f, c)
    img28[..., 2] -= cam28[:, 4:5, 2]
    one = np.ones((n, 28, 1))
    m = _mask(conv.HP3D28_TO_HUMAN_DATA)
    data.update(
      {
        "bbox_xywh": _bbox_from(img28[..., :2]),
        "cam_param": {
          "f": np.tile(np.float64(f), (n, 1)),
          "c": np.tile(np.float64(c), (n, 1)),
          "intrinsic": np.tile(_inv_k(f, c), (n, 1, 1)),
        },
        "root_cam": cam28[:, 4],
        "depth_factor": [2000.0] * n,
        "keypoints3d": _scatter(
          np.concatenate([img28, one], -1), conv.HP3D28_TO_HUMAN_DATA
        ),
        "keypoints3d_cam": _scatter(
          np.concatenate([cam28, one], -1), conv.HP3D28_TO_HUMAN_DATA
        ),
        "keypoints3d_mask": m,
        "keypoints3d_cam_mask": m,
      }
    )
  elif kind == "coco":
    uv = np.stack(
      [rng.uniform(100, 540, (n, 17)), rng.uniform(60, 420, (n, 17))], -1
    )
    vis = (rng.random((n, 17, 1)) > 0.2).astype(np.float64)
    vis[:, 5:] = 1  # the converter keeps only fully labelled limbs
    data.update(
      {
        "bbox_xywh": _bbox_from(uv),
        "depth_factor": [2000.0] * n,
        "keypoints2d": _scatter(
          np.concatenate([uv, vis], -1), conv.COCO17_TO_HUMAN_DATA
        ),
        "keypoints2d_mask": _mask(conv.COCO17_TO_HUMAN_DATA),
      }
    )
  else:
    raise ValueError(kind)
  return data


KINDS = ("h36m", "pw3d", "mpi_inf_3dhp", "coco")


def write(tmp_path, kind, name=None, **kw):
  data = make_human_data(kind, **kw)
  path = tmp_path / (name or f"hybrik_{kind}.npz")
  save_human_data(path, data)
  return path, data


# ----------------------------------------------------------------------------
# Reader / writer.
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_round_trip_layouts(tmp_path, kind):
  path, data = write(tmp_path, kind)
  # The writer mask-compresses like HumanData.compress_keypoints_by_mask.
  with zipfile.ZipFile(path) as zf:
    names = set(zf.namelist())
  assert {
    "__key_strict__.npy",
    "__data_len__.npy",
    "__keypoints_compressed__.npy",
  } <= names
  hd = load_human_data(path)
  assert hd.data_len == 4 and hd.keypoints_compressed
  assert hd["image_path"] == data["image_path"]
  assert all(type(p) is str for p in hd["image_path"])
  assert hd["config"] == kind
  np.testing.assert_array_equal(hd["bbox_xywh"], data["bbox_xywh"])
  for key, value in data.items():
    if key.startswith("keypoints") and not key.endswith("_mask"):
      mask = data[f"{key}_mask"]
      raw = hd.get_raw_value(key)
      assert raw.shape == (4, int(mask.sum()), value.shape[2])  # compressed
      np.testing.assert_array_equal(hd[key], value)  # padded back to 190
      np.testing.assert_array_equal(hd.keypoints(key, 2), value[2])
    elif isinstance(value, dict):
      assert set(hd[key]) == set(value)
      for sub, arr in value.items():
        assert hd[key][sub].dtype == arr.dtype
        np.testing.assert_array_equal(hd[key][sub], arr)
    elif key not in ("image_path", "config"):
      np.testing.assert_array_equal(hd[key], np.asarray(value))


def test_uncompressed_and_four_column_bbox(tmp_path):
  data = make_human_data("coco")
  data["bbox_xywh"] = data["bbox_xywh"][:, :4]
  save_human_data(tmp_path / "a.npz", data, compress_keypoints=False)
  hd = load_human_data(tmp_path / "a.npz")
  assert not hd.keypoints_compressed
  assert hd.get_raw_value("keypoints2d").shape == (4, 190, 3)
  # HumanData.load appends a column of ones to a 4-column box.
  assert hd["bbox_xywh"].shape == (4, 5)
  np.testing.assert_array_equal(hd["bbox_xywh"][:, 4], 1.0)
  np.testing.assert_array_equal(hd["bbox_xywh"][:, :4], data["bbox_xywh"])


def test_writer_requires_masks_for_compression(tmp_path):
  data = make_human_data("coco")
  del data["keypoints2d_mask"]
  with pytest.raises(ValueError, match="keypoints2d_mask"):
    save_human_data(tmp_path / "a.npz", data)
  with pytest.raises(ValueError, match=".npz"):
    save_human_data(tmp_path / "a.npy", make_human_data("coco"))


def _npy_bytes_object(payload: bytes, shape=()) -> bytes:
  """A .npy file with an object dtype and the given raw pickle payload."""
  buf = io.BytesIO()
  np.lib.format.write_array_header_1_0(
    buf, {"descr": "|O", "fortran_order": False, "shape": shape}
  )
  return buf.getvalue() + payload


def _replace_member(path, key, content: bytes):
  """Rewrites the npz with ``<key>.npy`` replaced by ``content``."""
  with zipfile.ZipFile(path) as zf:
    members = {n: zf.read(n) for n in zf.namelist()}
  members[f"{key}.npy"] = content
  with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
    for n, b in members.items():
      zf.writestr(n, b)


def test_old_numpy_module_paths_and_protocol2(tmp_path):
  """Files from numpy 1.x name numpy.core.multiarray; py2-style protocol 2
  pickles encode bytes with _codecs.encode. Both must load."""
  path, data = write(tmp_path, "h36m")
  obj = np.empty((), dtype=object)
  obj[()] = {
    "thetas": data["smpl"]["thetas"],
    "betas": data["smpl"]["betas"],
    "scalar": np.float64(2.5),
  }
  payload = pickle.dumps(obj, protocol=2)
  assert b"numpy._core.multiarray" in payload and b"_codecs" in payload
  payload = payload.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
  _replace_member(path, "smpl", _npy_bytes_object(payload))
  hd = load_human_data(path)
  np.testing.assert_array_equal(hd["smpl"]["thetas"], data["smpl"]["thetas"])
  assert hd["smpl"]["scalar"] == 2.5


class _Evil:
  def __init__(self, marker):
    self.marker = marker

  def __reduce__(self):
    return (os.system, (f"touch {self.marker}",))


def test_refuses_malicious_object_payload(tmp_path):
  path, _ = write(tmp_path, "h36m")
  marker = tmp_path / "PWNED"
  obj = np.empty((), dtype=object)
  obj[()] = {"thetas": _Evil(marker)}
  _replace_member(
    path, "smpl", _npy_bytes_object(pickle.dumps(obj, protocol=4))
  )
  with pytest.raises(HumanDataError) as e:
    load_human_data(path)
  assert e.value.field == "smpl" and str(path) in str(e.value)
  assert "system" in str(e.value)
  assert not marker.exists()
  # A pickle that is not even a numpy array is refused too.
  _replace_member(
    path, "smpl", _npy_bytes_object(pickle.dumps({"a": 1}, protocol=4))
  )
  with pytest.raises(HumanDataError, match="field 'smpl'"):
    load_human_data(path)


@pytest.mark.parametrize(
  "case, field",
  [
    ("bbox_cols", "bbox_xywh"),
    ("n_mismatch", "depth_factor"),
    ("joints", "keypoints2d"),
    ("mask_count", "keypoints2d"),
    ("mask_shape", "keypoints2d_mask"),
    ("betas", "smpl.betas"),
    ("image_path", "image_path"),
  ],
)
def test_malformed_fields(tmp_path, case, field):
  kind = "h36m" if case == "betas" else "coco"
  data = make_human_data(kind)
  path = tmp_path / "bad.npz"
  if case == "bbox_cols":
    data["bbox_xywh"] = data["bbox_xywh"][:, :3]
  elif case == "n_mismatch":
    data["depth_factor"] = data["depth_factor"][:-1]
  elif case == "joints":
    data["keypoints2d"] = data["keypoints2d"][:, :18]
  elif case == "betas":
    data["smpl"]["betas"] = data["smpl"]["betas"][:, :9]
  elif case == "image_path":
    data["image_path"] = data["image_path"][:-1]
  good = tmp_path / "good.npz"
  if case in ("mask_count", "mask_shape"):
    save_human_data(good, data)
    if case == "mask_count":
      bad_mask = data["keypoints2d_mask"].copy()
      bad_mask[0] = 1
    else:
      bad_mask = data["keypoints2d_mask"][:100]
    buf = io.BytesIO()
    np.save(buf, bad_mask)
    _replace_member(good, "keypoints2d_mask", buf.getvalue())
    path = good
  else:
    # Write without validation (as a foreign tool might), then read.
    np.savez_compressed(
      path,
      __data_len__=4,
      __key_strict__=False,
      __keypoints_compressed__=False,
      **data,
    )
  with pytest.raises(HumanDataError) as e:
    load_human_data(path)
  assert e.value.field == field, str(e.value)
  assert str(path) in str(e.value)


def test_truncated_and_corrupt_files(tmp_path):
  path, _ = write(tmp_path, "h36m")
  blob = path.read_bytes()
  cut = tmp_path / "cut.npz"
  cut.write_bytes(blob[: len(blob) // 2])
  with pytest.raises(HumanDataError, match="cut.npz"):
    load_human_data(cut)
  # A member whose array data is shorter than its header promises.
  buf = io.BytesIO()
  np.save(buf, np.zeros((4, 3), np.float32))
  _replace_member(path, "root_cam", buf.getvalue()[:-5])
  with pytest.raises(HumanDataError, match="'root_cam'.*truncated"):
    load_human_data(path)
  with pytest.raises(FileNotFoundError):
    load_human_data(tmp_path / "missing.npz")


# ----------------------------------------------------------------------------
# Annotations (HybrIKHumanImageDataset.load_annotations / prepare_data).
# ----------------------------------------------------------------------------


def test_box2cs():
  c, s = box2cs(np.array([10.0, 20.0, 40.0, 100.0, 1.0]), 1.0, 1.25)
  np.testing.assert_allclose(c, [30.0, 70.0])
  np.testing.assert_allclose(s, [125.0, 125.0])  # max(w, h) * 1.25
  c, s = box2cs(np.array([0.0, 0.0, 80.0, 20.0]), 1.0, 1.0)
  np.testing.assert_allclose(c, [40.0, 10.0])
  np.testing.assert_allclose(s, [80.0, 80.0])
  np.testing.assert_allclose(
    xyxy2xywh(np.array([1.0, 2.0, 5.0, 9.0])), [1.0, 2.0, 4.0, 7.0]
  )


def test_annotations_smpl(tmp_path):
  path, data = write(tmp_path, "h36m")
  ann = HybrIKAnnotations(path, "h36m", data_prefix="root")
  assert len(ann) == 4
  a = ann[1]
  assert a["image_path"] == os.path.join(
    "root", "datasets", "h36m", "h36m/img_0001.jpg"
  )
  np.testing.assert_array_equal(a["bbox"], data["bbox_xywh"][1, :4])
  x1, y1, x2, y2 = data["bbox_xywh"][1, :4]
  np.testing.assert_allclose(a["center"], [(x1 + x2) / 2, (y1 + y2) / 2])
  np.testing.assert_allclose(a["scale"], [max(x2 - x1, y2 - y1) * 1.25] * 2)
  assert a["rotation"] == 0 and a["has_smpl"] == 1 and a["sample_idx"] == 1
  assert a["depth_factor"] == 2000.0 and isinstance(a["depth_factor"], float)
  assert a["ann_info"] == {"dataset_name": "h36m", "height": H, "width": W}
  np.testing.assert_array_equal(
    a["intrinsic_param"], data["cam_param"]["intrinsic"][1]
  )
  np.testing.assert_array_equal(a["joint_root"], data["root_cam"][1])
  np.testing.assert_array_equal(a["target_twist"], data["phi"][1])
  assert a["target_twist_weight"][3].tolist() == [0, 0]
  for key in (
    "keypoints3d",
    "keypoints3d_vis",
    "keypoints3d_relative",
    "keypoints3d17",
    "keypoints3d17_vis",
    "keypoints3d17_relative",
    "pose",
    "beta",
    "intrinsic_param",
    "joint_root",
  ):
    assert a[key].dtype == np.float32, key
  kp = data["keypoints3d"][1]
  np.testing.assert_array_equal(a["keypoints3d"], kp[:, :3].astype(np.float32))
  np.testing.assert_array_equal(
    a["keypoints3d_vis"], np.repeat(kp[:, 3:], 3, 1)
  )
  np.testing.assert_array_equal(
    a["pose"], data["smpl"]["thetas"][1].astype(np.float32)
  )
  assert "joint_relative_17" not in a
  t = HybrIKAnnotations(path, "h36m", test_mode=True)[1]
  np.testing.assert_array_equal(
    t["joint_relative_17"], a["keypoints3d17_relative"]
  )
  # The annotation is built fresh each time: mutating it changes nothing.
  a["keypoints3d"][:] = 7
  assert not np.any(ann[1]["keypoints3d"] == 7)


def test_annotations_coco_and_3dhp(tmp_path):
  path, data = write(tmp_path, "coco")
  a = HybrIKAnnotations(path, "coco")[2]
  assert a["has_smpl"] == 0 and "pose" not in a
  np.testing.assert_array_equal(a["intrinsic_param"], np.zeros((3, 3)))
  np.testing.assert_array_equal(a["joint_root"], np.zeros(3))
  np.testing.assert_array_equal(a["target_twist"], np.zeros((23, 2)))
  kp2d = data["keypoints2d"][2]
  # keypoints from keypoints2d: z = 0, visibility on x and y only.
  np.testing.assert_array_equal(
    a["keypoints3d"][:, :2], kp2d[:, :2].astype(np.float32)
  )
  np.testing.assert_array_equal(a["keypoints3d"][:, 2], 0)
  np.testing.assert_array_equal(a["keypoints3d_vis"][:, 0], kp2d[:, 2])
  np.testing.assert_array_equal(a["keypoints3d_vis"][:, 1], kp2d[:, 2])
  np.testing.assert_array_equal(a["keypoints3d_vis"][:, 2], 0)

  path, data = write(tmp_path, "mpi_inf_3dhp")
  a = HybrIKAnnotations(path, "mpi_inf_3dhp")[0]
  assert a["has_smpl"] == 0
  np.testing.assert_array_equal(
    a["joint_root"], data["root_cam"][0].astype(np.float32)
  )
  t = HybrIKAnnotations(path, "mpi_inf_3dhp", test_mode=True)[0]
  np.testing.assert_array_equal(
    t["joint_relative_17"], data["keypoints3d_cam"][0, :, :3].astype(np.float32)
  )


def test_annotations_pw3d_and_has_smpl_fallback(tmp_path):
  path, data = write(tmp_path, "pw3d")
  a = HybrIKAnnotations(path, "pw3d", test_mode=True)[0]
  assert a["depth_factor"] == 2.0 and a["has_smpl"] == 1
  # leaves are invisible in 3DPW
  vis = a["keypoints3d_vis"][list(conv.HYBRIK29_IDXS)]
  assert vis[24:].sum() == 0 and vis[:24].min() == 1
  # Like load_annotations' try-block: a missing SMPL-side key -> no SMPL.
  data = make_human_data("h36m")
  for key in ("keypoints3d17", "keypoints3d17_mask"):
    del data[key]
  save_human_data(tmp_path / "x.npz", data)
  assert HybrIKAnnotations(tmp_path / "x.npz", "h36m")[0]["has_smpl"] == 0


def test_annotations_missing_field(tmp_path):
  data = make_human_data("coco")
  del data["image_width"]
  save_human_data(tmp_path / "nowidth.npz", data)
  with pytest.raises(HumanDataError) as e:
    HybrIKAnnotations(tmp_path / "nowidth.npz", "coco")
  assert e.value.field == "image_width"
  assert "nowidth.npz" in str(e.value)
