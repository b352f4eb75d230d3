"""Tests of demo.py / hybrik_jax.demo (image, folder, video, geometry).

The network is a small (64 x 64 input) randomly initialised HybrIK saved as
a training-run checkpoint; the placement geometry is checked with the ground
truth of synthetic samples, independently of the network.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import load_demo_cli

from hybrik_jax import assets, render
from hybrik_jax.data import conventions, synthetic, transforms
from hybrik_jax.data.sources import NpzSource
from hybrik_jax.demo import camera, inputs, outputs, placement, predictor
from hybrik_jax.demo import run as demo_run

REPO = Path(__file__).resolve().parent.parent
NET_SIZE = 64  # network input size of the test checkpoint
IMAGE_WH = (192, 256)  # synthetic image size (W, H)


# ----------------------------------------------------------------------------
# Fixtures.


@pytest.fixture(scope="module")
def body():
  return assets.load_synthetic_smpl()


@pytest.fixture(scope="module")
def syn(module_tmp, body):
  """3 synthetic test samples (metres) + their NpzSource."""
  out = module_tmp.mktemp("syn")
  res = synthetic.generate(
    out,
    num=3,
    num_test=3,
    seed=3,
    image_size=IMAGE_WH,
    model=body,
    progress=False,
  )
  source = NpzSource("synthetic", str(res["test"]), str(out), test_mode=True)
  return out, source


@pytest.fixture(scope="module")
def run_dir(tiny_run_dir):
  return tiny_run_dir


@pytest.fixture(scope="module")
def variables(run_dir):
  from hybrik_jax.train import checkpointing

  return checkpointing.load_inference_variables(run_dir)


def _gt_vertices(body, ann):
  """Ground-truth SMPL vertices [V, 3] (model frame) and joints [24, 3]."""
  from hybrik_jax import smpl

  thetas = np.asarray(ann["pose"], np.float32).reshape(24, 3)
  betas = np.asarray(ann["beta"], np.float32).reshape(1, 10)
  out = smpl.forward(body, betas, thetas[None, 1:], thetas[None, 0])
  return (
    np.asarray(out["vertices"][0], np.float64),
    np.asarray(out["joints"][0], np.float64),
  )


def _camera(source, j: int) -> camera.Camera:
  """The synthetic sample's true camera."""
  cam = source.annotations.human_data["cam_param"]
  return camera.Camera(
    float(cam["f"][j][0]), tuple(float(c) for c in cam["c"][j])
  )


def _box_iou(a_xyxy, b_xyxy) -> float:
  ix = max(0.0, min(a_xyxy[2], b_xyxy[2]) - max(a_xyxy[0], b_xyxy[0]))
  iy = max(0.0, min(a_xyxy[3], b_xyxy[3]) - max(a_xyxy[1], b_xyxy[1]))
  area = lambda b: (b[2] - b[0]) * (b[3] - b[1])  # noqa: E731
  inter = ix * iy
  return inter / (area(a_xyxy) + area(b_xyxy) - inter)


def _mask_box(mask) -> np.ndarray:
  ys, xs = np.nonzero(mask)
  return np.array([xs.min(), ys.min(), xs.max(), ys.max()], np.float64)


# ----------------------------------------------------------------------------
# Geometry (no network).


def test_gt_placement_overlays_the_person(syn, body):
  """Ground-truth SMPL placed with ``place_vertices`` covers the rendered
  person: the mesh silhouette's box equals the sample's silhouette box."""
  _, source = syn
  for j in range(len(source)):
    ann = source.annotation(j)
    verts, joints = _gt_vertices(body, ann)
    t0 = placement.rest_pelvis(body, np.asarray(ann["beta"])[None])[0]
    # HybrIKSMPL: the posed pelvis sits at the rest pelvis t0.
    np.testing.assert_allclose(joints[0], t0, atol=1e-5)
    root_cam = np.asarray(ann["joint_root"], np.float64)  # metres (3DPW-like)
    cam = _camera(source, j)
    verts_cam = placement.place_vertices(verts, t0, root_cam)
    h, w = ann["ann_info"]["height"], ann["ann_info"]["width"]
    mask = (
      render.rasterize(
        verts_cam, np.asarray(body.faces), cam.focal, cam.princpt, (h, w)
      )[0]
      >= 0
    )
    iou = _box_iou(_mask_box(mask), np.asarray(ann["bbox"], np.float64))
    assert iou > 0.97, (j, iou)
    # The overlay's left panel shows the mesh exactly where the mask is.
    img = cv2.imread(str(source.image_path(j)))
    panel = outputs.render_overlay(img, verts_cam, np.asarray(body.faces), cam)
    assert panel.shape == (h, 2 * w, 3)
    changed = np.any(panel[:, :w] != img, axis=-1)
    assert changed[mask].mean() > 0.95 and not changed[~mask].any()


def test_fit_translation_recovers_the_root(syn):
  """The reprojection fit of true relative joints onto their true 2D
  positions gives back the true pelvis position."""
  _, source = syn
  idx = np.asarray(conventions.HYBRIK29_IDXS[:24])
  for j in range(len(source)):
    ann = source.annotation(j)
    hd = source.annotations.human_data
    uv = hd.keypoints("keypoints3d", j)[idx, :2]  # [24, 2] px
    rel = hd.keypoints("keypoints3d_relative", j)[idx, :3]  # [24, 3] m
    cam = _camera(source, j)
    t = placement.fit_translation(rel, uv, cam)
    np.testing.assert_allclose(t, ann["joint_root"], atol=1e-4)
    # Degenerate input (all joints at one pixel) is reported as NaN.
    assert np.isnan(
      placement.fit_translation(np.zeros((24, 3)), np.zeros((24, 2)), cam)
    ).all()


def test_crop_matches_the_test_pipeline(syn):
  """``crop_image`` equals mmhuman3d's test transform (image and trans_inv),
  and ``uvd_to_image`` inverts the pipeline's uvd targets."""
  _, source = syn
  config = transforms.TransformConfig(img_res=NET_SIZE)
  for j in range(len(source)):
    ann, img = source[j]
    want = transforms.test_sample(ann, img, config)
    x1, y1, x2, y2 = np.asarray(ann["bbox"], np.float64)
    crop, trans_inv = camera.crop_image(
      img, np.array([x1, y1, x2 - x1, y2 - y1]), NET_SIZE
    )
    np.testing.assert_array_equal(crop, want["img"])
    np.testing.assert_array_equal(trans_inv, want["trans_inv"])
    uvd = want["target_uvd_29"].reshape(29, 3)
    uv = placement.uvd_to_image(uvd, want["trans_inv"], NET_SIZE)
    hd = source.annotations.human_data
    true_uv = hd.keypoints("keypoints3d", j)[
      np.asarray(conventions.HYBRIK29_IDXS), :2
    ]
    np.testing.assert_allclose(uv, true_uv, atol=2e-3)


def test_camera_and_depth_prior():
  cam = camera.default_camera(480, 640)
  assert cam.focal == 640.0 and cam.princpt == (319.5, 239.5)
  np.testing.assert_allclose(cam.k @ cam.k_inv, np.eye(3), atol=1e-12)
  box = np.array([100.0, 20.0, 150.0, 340.0])
  assert camera.root_depth_prior(cam, box, 1.7) == pytest.approx(3.2)
  root = camera.joint_root_prior(cam, box, 1.7)  # mm
  np.testing.assert_allclose(root[2], 3200.0)
  # The root projects to the box centre.
  uv = cam.k @ root
  np.testing.assert_allclose(uv[:2] / uv[2], [175.0, 190.0], atol=1e-9)
  assert camera.default_camera(100, 50, focal=123.0).focal == 123.0


def test_bbox_parsing(tmp_path):
  np.testing.assert_array_equal(
    inputs.parse_bbox("1,2.5,30,40"), [1, 2.5, 30, 40]
  )
  for bad, msg in (
    ("1,2,3", "4 finite numbers"),
    ("a,b,c,d", "x,y,w,h"),
    ("1,2,0,5", "empty"),
    ("1,2,nan,5", "finite"),
  ):
    with pytest.raises(inputs.DemoError, match=msg):
      inputs.parse_bbox(bad)
  with pytest.raises(inputs.DemoError, match="outside the 64x48 image"):
    inputs.check_bbox(np.array([70.0, 0, 10, 10]), 48, 64, "img.png")
  inputs.check_bbox(np.array([-5.0, -5, 10, 10]), 48, 64, "img.png")

  js = tmp_path / "boxes.json"
  js.write_text(json.dumps({"a.jpg": [1, 2, 3, 4], "7": "5,6,7,8"}))
  boxes = inputs.load_bbox_file(js)
  np.testing.assert_array_equal(boxes["a.jpg"], [1, 2, 3, 4])
  np.testing.assert_array_equal(boxes["7"], [5, 6, 7, 8])
  txt = tmp_path / "boxes.txt"
  txt.write_text("# name x y w h\nb.png 1 2 3 4\n3, 5, 6, 7, 8  # frame 3\n")
  boxes = inputs.load_bbox_file(txt)
  assert sorted(boxes) == ["3", "b.png"]
  np.testing.assert_array_equal(boxes["3"], [5, 6, 7, 8])
  txt.write_text("b.png 1 2 3\n")
  with pytest.raises(inputs.DemoError, match="line 1"):
    inputs.load_bbox_file(txt)
  js.write_text(json.dumps({"a.jpg": [1, 2, -3, 4]}))
  with pytest.raises(inputs.DemoError, match="'a.jpg'.*empty"):
    inputs.load_bbox_file(js)
  with pytest.raises(inputs.DemoError, match="does not exist"):
    inputs.load_bbox_file(tmp_path / "nope.json")


def test_image_size_from_checkpoint(run_dir):
  assert predictor.checkpoint_image_size(run_dir) == NET_SIZE
  assert predictor.checkpoint_image_size(run_dir / "checkpoints" / "0") == (
    NET_SIZE
  )
  assert predictor.resolve_image_size(run_dir, None) == NET_SIZE
  with pytest.raises(inputs.DemoError, match="trained at"):
    predictor.resolve_image_size(run_dir, 256)
  assert predictor.resolve_image_size(run_dir.parent, 128) == 128
  with pytest.raises(inputs.DemoError, match="multiple of 32"):
    predictor.resolve_image_size(run_dir.parent, 100)


# ----------------------------------------------------------------------------
# End to end (random network).


def _check_result_npz(path: Path, box, frames=None):
  lead = () if frames is None else (frames,)
  with np.load(path, allow_pickle=False) as d:
    shapes = {k: d[k].shape for k in d.files}
    assert shapes["pose"] == lead + (24, 3, 3)
    assert shapes["betas"] == lead + (10,)
    assert shapes["phis"] == lead + (23, 2)
    assert shapes["xyz_24"] == lead + (24, 3)
    assert shapes["xyz_17"] == lead + (17, 3)
    assert shapes["uvd"] == lead + (29, 3)
    assert shapes["vertices"] == lead + (6890, 3)
    assert all(np.all(np.isfinite(d[k])) for k in d.files)
    # `pose` holds orthonormal matrices (float32 IK of a random network's
    # skeleton: to ~1e-4; the eval-mode SVD pelvis has no reflection fix in
    # mmhuman3d's IK, so det(pose[0]) may be -1 for such random
    # skeletons); the mesh is in front of the camera.
    pose = d["pose"].reshape(-1, 24, 3, 3)
    np.testing.assert_allclose(
      pose @ np.swapaxes(pose, -1, -2),
      np.broadcast_to(np.eye(3), pose.shape),
      atol=1e-3,
    )
    np.testing.assert_allclose(
      np.abs(np.linalg.det(pose[:, 0])), 1.0, atol=1e-3
    )
    np.testing.assert_allclose(np.linalg.det(pose[:, 1:]), 1.0, atol=1e-3)
    assert (d["vertices"][..., 2] > 0).all()
    # Consistent placement: SMPL joints = relative joints + pelvis_cam.
    np.testing.assert_allclose(
      d["xyz_24"][..., 0, :], d["pelvis_cam"], atol=1e-5
    )
    if box is not None:
      np.testing.assert_allclose(d["bbox_xywh"].reshape(-1, 4)[0], box)
    return {k: d[k] for k in d.files}


def test_image_end_to_end_cli(syn, run_dir, tmp_path, capsys):
  syn_dir, _ = syn
  img_path = syn_dir / "images" / "000000.jpg"
  out = tmp_path / "out"
  rc = load_demo_cli().main(
    [
      "--checkpoint",
      str(run_dir),
      "--input",
      str(img_path),
      "--out",
      str(out),
      "--batch-size",
      "1",
      "--bbox",
      "20,30,150,200",
    ]
  )
  assert rc == 0, capsys.readouterr().err
  img = cv2.imread(str(img_path))
  overlay = cv2.imread(str(out / "000000_overlay.png"))
  assert overlay.shape == (img.shape[0], 2 * img.shape[1], 3)
  assert np.any(overlay[:, : img.shape[1]] != img)  # something was drawn
  res = _check_result_npz(out / "000000.npz", [20, 30, 150, 200])
  np.testing.assert_allclose(res["focal"], max(img.shape[:2]))
  # The network's root depth input is the box prior: f * 1.7 m / 200 px.
  np.testing.assert_allclose(
    res["joint_root_mm"][2], 256 * 1.7 / 200 * 1000, rtol=1e-6
  )
  lines = (out / "000000.obj").read_text().splitlines()
  v = np.array(
    [[float(x) for x in l.split()[1:]] for l in lines if l.startswith("v ")]
  )
  f = np.array(
    [[int(x) for x in l.split()[1:]] for l in lines if l.startswith("f ")]
  )
  np.testing.assert_allclose(v, res["vertices"], atol=1e-5)
  assert f.shape == (13668, 3) and f.min() == 1 and f.max() == 6890


def test_folder_with_bbox_file(syn, run_dir, variables, tmp_path):
  syn_dir, _ = syn
  folder = tmp_path / "imgs"
  folder.mkdir()
  names = ("000000.jpg", "000001.jpg", "000002.jpg")
  for name in names:
    (folder / name).write_bytes((syn_dir / "images" / name).read_bytes())
  (folder / "notes.txt").write_text("not an image")
  bbox_file = tmp_path / "boxes.json"
  bbox_file.write_text(
    json.dumps({"000002.jpg": [10, 12, 100, 180], "000000": [3, 4, 150, 240]})
  )
  res = demo_run.run(
    run_dir,
    folder,
    tmp_path / "out",
    bbox_file=bbox_file,
    batch_size=1,
    variables=variables,
    progress=False,
  )
  assert res["num_images"] == 3 and res["kind"] == "folder"
  out = tmp_path / "out"
  w, h = IMAGE_WH
  _check_result_npz(out / "000000.npz", [3, 4, 150, 240])  # key: stem
  _check_result_npz(out / "000001.npz", [0, 0, w, h])  # no entry: whole image
  _check_result_npz(out / "000002.npz", [10, 12, 100, 180])
  assert (out / "000002_overlay.png").is_file()
  assert not list(out.glob("notes*"))
  # Batches of 2 (the last one padded) give the same per-image results.
  demo_run.run(
    run_dir,
    folder,
    tmp_path / "out2",
    bbox_file=bbox_file,
    batch_size=2,
    variables=variables,
    progress=False,
  )
  for name in names:
    stem = Path(name).stem
    with (
      np.load(out / f"{stem}.npz") as a,
      np.load(tmp_path / "out2" / f"{stem}.npz") as b,
    ):
      for key in ("uvd", "betas", "phis"):
        np.testing.assert_allclose(a[key], b[key], atol=1e-4, err_msg=key)
      np.testing.assert_allclose(a["vertices"], b["vertices"], atol=1e-3)


def test_video(syn, run_dir, variables, tmp_path):
  syn_dir, _ = syn
  w, h = IMAGE_WH
  video = tmp_path / "clip.mp4"
  writer = cv2.VideoWriter(
    str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (w, h)
  )
  for k in range(3):
    writer.write(cv2.imread(str(syn_dir / "images" / f"{k:06d}.jpg")))
  writer.release()
  boxes = tmp_path / "boxes.txt"
  boxes.write_text("1 5 6 120 200\n")
  res = demo_run.run(
    run_dir,
    video,
    tmp_path / "out",
    bbox="0,0,150,250",
    bbox_file=boxes,
    batch_size=1,
    variables=variables,
    progress=False,
  )
  assert res["num_images"] == 3 and res["kind"] == "video"
  d = _check_result_npz(tmp_path / "out" / "clip.npz", None, frames=3)
  np.testing.assert_allclose(
    d["bbox_xywh"], [[0, 0, 150, 250], [5, 6, 120, 200], [0, 0, 150, 250]]
  )
  cap = cv2.VideoCapture(str(tmp_path / "out" / "clip_overlay.mp4"))
  frames = []
  while True:
    ok, frame = cap.read()
    if not ok:
      break
    frames.append(frame)
  cap.release()
  assert len(frames) == 3 and frames[0].shape == (h, 2 * w, 3)


# ----------------------------------------------------------------------------
# Errors.


def test_cli_missing_checkpoint_subprocess(tmp_path):
  proc = subprocess.run(
    [
      sys.executable,
      str(REPO / "demo.py"),
      "--checkpoint",
      str(tmp_path / "nope"),
      "--input",
      str(tmp_path),
    ],
    capture_output=True,
    text=True,
    cwd=REPO,
    timeout=120,
    check=False,
  )
  assert proc.returncode == 2
  assert proc.stderr.strip().splitlines()[-1] == (
    f"error: checkpoint {tmp_path / 'nope'} does not exist"
  )
  assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
  "case",
  [
    "unreadable_image",
    "empty_folder",
    "missing_input",
    "bbox_outside",
    "bad_bbox",
    "bad_video",
    "size_mismatch",
  ],
)
def test_cli_errors(case, syn, run_dir, tmp_path, capsys):
  syn_dir, _ = syn
  good = str(syn_dir / "images" / "000000.jpg")
  args = ["--checkpoint", str(run_dir), "--out", str(tmp_path / "out")]
  if case == "unreadable_image":
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"this is not a JPEG")
    args += ["--input", str(bad)]
    want = f"cannot read image {bad}"
  elif case == "empty_folder":
    (tmp_path / "empty").mkdir()
    args += ["--input", str(tmp_path / "empty")]
    want = "contains no images"
  elif case == "missing_input":
    args += ["--input", str(tmp_path / "nothing.jpg")]
    want = "does not exist"
  elif case == "bbox_outside":
    args += ["--input", good, "--bbox", "500,10,50,50"]
    want = f"{good}: box x,y,w,h = [500.0, 10.0, 50.0, 50.0] lies outside"
  elif case == "bad_bbox":
    args += ["--input", good, "--bbox", "1,2,3"]
    want = "--bbox: expected 4 finite numbers"
  elif case == "bad_video":
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00" * 100)
    args += ["--input", str(bad)]
    want = f"cannot open video {bad}"
  else:
    args += ["--input", good, "--image-size", "128"]
    want = "trained at (64)"
  rc = load_demo_cli().main(args)
  err = capsys.readouterr().err.strip().splitlines()
  assert rc == 2
  assert err[-1].startswith("error: ") and want in err[-1], err
