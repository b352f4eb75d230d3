"""The multi-person video demo: detector, tracking, smoothing and exports.

Runs ``demo.py`` / :func:`hybrik_jax.demo.run.run` with the tiny random
network of ``tests/test_demo.py`` (64 px input) on synthetic videos made by
:mod:`hybrik_jax.demo.synthetic_video` (320 x 240):

* a walking clip (3 people, 24 frames, persons 0 and 1 cross), its
  ground-truth boxes fed as per-frame detections through a multi-person
  ``--bbox-file`` (boxes shuffled within each frame, so only the tracker
  can keep the ids): ids must survive the crossing, ``--smooth`` must lower
  the frame-to-frame jitter, and the BVH / ``.pk`` exports must round-trip;
* a standing clip (the people do not move), where a constant-output ONNX
  detector (``tests/onnx_graphs.py``) is right on every frame: the
  ``--detector`` path end to end.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import load_demo_cli

from hybrik_jax import cli
from hybrik_jax.demo import (
  bvh,
  inputs,
  pk,
  smoothing,
  synthetic_video,
  video,
)
from hybrik_jax.demo import run as demo_run
from hybrik_jax.smpl import numpy_kinematics, tables

SIZE = (320, 240)  # (W, H) of the test videos
FRAMES = 24
FPS = 10.0
STAND_FRAMES = 4
ATOL_M = 1e-4


def _read_video(path: Path) -> list[np.ndarray]:
  cap = cv2.VideoCapture(str(path))
  frames = []
  while True:
    ok, frame = cap.read()
    if not ok:
      break
    frames.append(frame)
  cap.release()
  return frames


def _xywh(xyxy: np.ndarray) -> np.ndarray:
  return np.concatenate([xyxy[..., :2], xyxy[..., 2:] - xyxy[..., :2]], -1)


# ----------------------------------------------------------------------------
# Fixtures.


@pytest.fixture(scope="module")
def variables(tiny_run_dir):
  from hybrik_jax.train import checkpointing

  return checkpointing.load_inference_variables(tiny_run_dir)


@pytest.fixture(scope="module")
def walk(module_tmp, smpl_model):
  """The walking clip, its ground truth and a shuffled multi-person
  --bbox-file of the ground-truth boxes."""
  d = module_tmp.mktemp("walk")
  gt = synthetic_video.make_video(
    d / "walk.mp4", 3, FRAMES, SIZE, FPS, model=smpl_model
  )
  rng = np.random.default_rng(0)
  entries = {}
  for i, boxes in enumerate(_xywh(gt["boxes_xyxy"])):
    order = rng.permutation(len(boxes))
    entries[str(i)] = [[float(v) for v in boxes[k]] for k in order]
  (d / "boxes.json").write_text(json.dumps(entries))
  return d, gt


def _run_walk(walk, tiny_run_dir, variables, out, **kwargs):
  d, _ = walk
  return demo_run.run(
    tiny_run_dir,
    d / "walk.mp4",
    out,
    bbox_file=d / "boxes.json",
    variables=variables,
    progress=False,
    save_bvh=True,
    save_pk=True,
    **kwargs,
  )


@pytest.fixture(scope="module")
def raw(walk, tiny_run_dir, variables, module_tmp):
  out = module_tmp.mktemp("raw")
  return _run_walk(walk, tiny_run_dir, variables, out), out


@pytest.fixture(scope="module")
def smoothed(walk, tiny_run_dir, variables, module_tmp):
  out = module_tmp.mktemp("savgol")
  res = _run_walk(
    walk, tiny_run_dir, variables, out, smooth="savgol", bvh_order="XYZ"
  )
  return res, out


def _tracks(out: Path, name: str = "walk") -> dict[int, dict]:
  tracks = {}
  for path in sorted(out.glob(f"{name}_track*.npz")):
    with np.load(path, allow_pickle=False) as d:
      arrays = {k: d[k] for k in d.files}
    tracks[int(arrays["track_id"])] = arrays
  return tracks


@pytest.fixture(scope="module")
def stand(module_tmp, smpl_model):
  """The standing clip + a YOLOv8-layout ONNX that finds its 3 people (and
  a non-person and a low-scoring box it must drop)."""
  pytest.importorskip("onnx")
  from onnx_graphs import write_model, yolov8_output

  d = module_tmp.mktemp("stand")
  gt = synthetic_video.make_video(
    d / "stand.mp4",
    3,
    STAND_FRAMES,
    SIZE,
    FPS,
    motion="stand",
    model=smpl_model,
  )
  boxes = gt["boxes_xyxy"][0]
  np.testing.assert_allclose(
    gt["boxes_xyxy"], boxes[None].repeat(STAND_FRAMES, 0)
  )
  # YOLOv8 letterbox of a 320x240 frame into 640x640: scale 2, 80 rows on top.
  to_input = lambda b: (2 * b[0], 2 * b[1] + 80, 2 * b[2], 2 * b[3] + 80)  # noqa: E731
  dets = [
    dict(box=to_input(b), cls=(s, 0.0, 0.0), obj=1.0)
    for b, s in zip(boxes, (0.9, 0.8, 0.7))
  ]
  dets.append(dict(box=(10, 90, 60, 200), cls=(0.3, 0.0, 0.9), obj=1.0))
  dets.append(dict(box=(500, 300, 560, 400), cls=(0.2, 0.0, 0.0), obj=1.0))
  onnx_path = write_model(d / "yolov8n.onnx", yolov8_output(dets))
  cv2.imwrite(str(d / "stand.png"), gt["frames_bgr"][0])
  return d, gt, onnx_path


# ----------------------------------------------------------------------------
# The synthetic video and the inputs.


def test_synthetic_video(walk):
  d, gt = walk
  w, h = SIZE
  frames = _read_video(d / "walk.mp4")
  assert len(frames) == FRAMES and frames[0].shape == (h, w, 3)
  # mp4v is lossy: close to the rendered frames, not equal.
  assert np.abs(frames[5].astype(float) - gt["frames_bgr"][5]).mean() < 8
  boxes = gt["boxes_xyxy"]  # [T, P, 4]
  assert boxes.shape == (FRAMES, 3, 4) and gt["visible"].all()
  assert (boxes[..., :2] >= 0).all() and (boxes[..., 2] <= w).all()
  assert (boxes[..., 3] <= h).all()
  assert gt["thetas"].shape == (FRAMES, 3, 24, 3)
  np.testing.assert_allclose(gt["joints"][:, :, 0], gt["pelvis"], atol=1e-6)
  # The boxes hold the rendered people: outside every box, the frame is the
  # same in all frames (static background).
  outside = np.ones((FRAMES, h, w), bool)
  for i in range(FRAMES):
    for x1, y1, x2, y2 in boxes[i]:
      outside[
        i, int(y1) : int(np.ceil(y2)) + 1, int(x1) : int(np.ceil(x2)) + 1
      ] = 0
  still = outside.all(axis=0)
  spread = gt["frames_bgr"][:, still].astype(int)
  assert np.abs(spread - spread[:1]).max() == 0
  # Persons 0 and 1 cross (they swap sides and overlap in between);
  # person 2 never meets them.
  cx = (boxes[..., 0] + boxes[..., 2]) / 2
  assert cx[0, 0] < cx[0, 1] and cx[-1, 0] > cx[-1, 1]
  from hybrik_jax.demo.tracking import iou_matrix

  ious = np.array([iou_matrix(b, b) for b in boxes])  # [T, 3, 3]
  assert ious[:, 0, 1].max() > 0.3
  assert ious[:, 2, :2].max() == 0


def test_bbox_file_lists(tmp_path):
  js = tmp_path / "boxes.json"
  js.write_text(
    json.dumps({"0": [[1, 2, 3, 4], [5, 6, 7, 8]], "1": [], "2": [1, 2, 3, 4]})
  )
  boxes = inputs.load_bbox_file(js)
  assert boxes["0"].shape == (2, 4) and boxes["1"].shape == (0, 4)
  assert boxes["2"].shape == (4,) and inputs.is_multi_person(boxes)
  warned = []
  got = inputs.people_for(boxes, ("2",), None, 48, 64, "f2", warned)
  np.testing.assert_array_equal(got, [[1, 2, 3, 4]])
  assert inputs.people_for(boxes, ("9",), None, 48, 64, "f9", warned).shape == (
    0,
    4,
  )
  assert warned  # a missing entry is reported once
  default = np.array([0.0, 0, 10, 10])
  np.testing.assert_array_equal(
    inputs.people_for(boxes, ("9",), default, 48, 64, "f9", warned), [default]
  )
  with pytest.raises(inputs.DemoError, match="outside the 64x48 image"):
    inputs.people_for(
      {"0": np.array([[70.0, 0, 5, 5]])}, ("0",), None, 48, 64, "f", []
    )
  txt = tmp_path / "boxes.txt"
  txt.write_text("0 1 2 3 4\n0 5 6 7 8\n1 1 1 2 2\n")
  boxes = inputs.load_bbox_file(txt)
  assert boxes["0"].shape == (2, 4) and boxes["1"].shape == (4,)
  assert inputs.is_multi_person(boxes)
  txt.write_text("0 1 2 3 4\n1 1 1 2 2\n")
  assert not inputs.is_multi_person(inputs.load_bbox_file(txt))
  js.write_text(json.dumps({"0": [[1, 2, 3, 4], [1, 2, 3]]}))
  with pytest.raises(inputs.DemoError, match="entry '0' box 1"):
    inputs.load_bbox_file(js)


def test_frame_reader(walk):
  d, _ = walk
  want = list(inputs.iter_video(d / "walk.mp4"))
  with inputs.FrameReader(d / "walk.mp4", queue_frames=2) as reader:
    got = list(reader)
  assert [i for i, _ in got] == list(range(FRAMES))
  for (_, a), b in zip(got, want):
    np.testing.assert_array_equal(a, b)
  assert not reader.alive
  # Leaving early (an error in the consumer, Ctrl-C) stops the thread while
  # it waits on the full queue.
  for error in (RuntimeError, KeyboardInterrupt):
    reader = inputs.FrameReader(d / "walk.mp4", queue_frames=2)
    with pytest.raises(error):
      with reader:
        for index, _ in reader:
          if index == 1:
            raise error("stop")
    assert not reader.alive
  assert threading.active_count() < 20
  # A decoding error reaches the consumer.
  bad = d / "broken.mp4"
  bad.write_bytes(b"\x00" * 64)
  with pytest.raises(inputs.DemoError, match="cannot open video"):
    with inputs.FrameReader(bad) as reader:
      list(reader)


# ----------------------------------------------------------------------------
# Tracking, smoothing, exports (the walking clip).


def test_tracking_through_the_crossing(walk, raw):
  _, gt = walk
  res, out = raw
  assert res["kind"] == "video" and res["multi_person"]
  assert res["tracks"] == {0: FRAMES, 1: FRAMES, 2: FRAMES}
  assert res["max_people"] == 3 and res["fps"] == pytest.approx(FPS)
  frames = _read_video(out / "walk_overlay.mp4")
  assert len(frames) == FRAMES and frames[0].shape == (SIZE[1], 2 * SIZE[0], 3)
  tracks = _tracks(out)
  assert sorted(tracks) == [0, 1, 2]
  gt_xywh = _xywh(gt["boxes_xyxy"])  # [T, P, 4]
  person_of, switches = {}, 0
  for tid, arrays in tracks.items():
    np.testing.assert_array_equal(arrays["frames"], np.arange(FRAMES))
    assert arrays["pose"].shape == (FRAMES, 24, 3, 3)
    assert arrays["vertices"].shape == (FRAMES, 6890, 3)
    np.testing.assert_allclose(arrays["scores"], 1.0)
    assert float(arrays["fps"]) == pytest.approx(FPS)
    # Which ground-truth person each frame's box is.
    dist = np.abs(gt_xywh - arrays["bbox_xywh"][:, None]).max(-1)  # [T, P]
    assert dist.min(axis=1).max() < 1e-2
    people = dist.argmin(axis=1)
    switches += int(np.count_nonzero(people != people[0]))
    person_of[tid] = int(people[0])
  assert switches == 0
  assert sorted(person_of.values()) == [0, 1, 2]


def test_smoothing_reduces_jitter(raw, smoothed, smpl_model):
  res, out = smoothed
  assert res["tracks"] == raw[0]["tracks"]
  assert "smooth" in res["seconds"]
  before, after = _tracks(raw[1]), _tracks(out)
  reg = np.asarray(smpl_model.J_regressor_extra, np.float64)
  for tid in before:
    a, b = before[tid], after[tid]
    for key in ("vertices", "pelvis_cam", "xyz_24", "xyz_17"):
      ratio = smoothing.mean_jitter(b[key]) / smoothing.mean_jitter(a[key])
      assert ratio < 0.8, (tid, key, ratio)
    pose_a = a["pose"].reshape(FRAMES, -1, 3)
    pose_b = b["pose"].reshape(FRAMES, -1, 3)
    assert smoothing.mean_jitter(pose_b) < 0.8 * smoothing.mean_jitter(pose_a)
    # Rotations stay rotations; the arrays stay consistent.
    pose = b["pose"].astype(np.float64)
    np.testing.assert_allclose(
      pose @ np.swapaxes(pose, -1, -2),
      np.broadcast_to(np.eye(3), pose.shape),
      atol=1e-5,
    )
    np.testing.assert_allclose(np.linalg.det(pose), 1.0, atol=1e-5)
    np.testing.assert_allclose(b["xyz_24"][:, 0], b["pelvis_cam"], atol=1e-5)
    np.testing.assert_allclose(
      b["xyz_17"], np.einsum("jv,tvc->tjc", reg, b["vertices"]), atol=1e-5
    )
    for key in ("betas", "phis", "uvd", "bbox_xywh", "frames"):
      np.testing.assert_array_equal(a[key], b[key])
  # The other filters, applied as the demo applies them, smooth too.
  a = before[0]
  for kind in ("oneeuro", "gaus1d"):
    s = video.smooth_track(a, kind, reg)
    assert smoothing.mean_jitter(s["vertices"]) < 0.8 * smoothing.mean_jitter(
      a["vertices"]
    )
  # The overlay shows the smoothed meshes: it differs from the raw one.
  raw_frames = _read_video(raw[1] / "walk_overlay.mp4")
  smooth_frames = _read_video(out / "walk_overlay.mp4")
  assert len(smooth_frames) == FRAMES
  assert (
    np.abs(raw_frames[10].astype(int) - smooth_frames[10].astype(int)).mean()
    > 1
  )


def _bvh_order(parsed):
  """[29] file indices: the 24 SMPL joints, then the End Sites as the
  HybrIK leaves (as tests/test_export.py)."""
  idx = parsed.index(bvh.SMPL_JOINT_NAMES)
  ends = [
    len(parsed.names) + parsed.end_parents.index(idx[p])
    for p in tables.HYBRIK_PARENTS[24:]
  ]
  return np.concatenate([idx, ends])


@pytest.mark.parametrize("which", ["raw", "smoothed"])
def test_exports_round_trip(which, raw, smoothed, smpl_model):
  res, out = raw if which == "raw" else smoothed
  for tid, arrays in _tracks(out).items():
    stem = out / f"walk_track{tid}"
    assert stem.with_suffix(".bvh") in res["outputs"]
    parsed = bvh.parse_bvh(stem.with_suffix(".bvh"))
    order = "ZYX" if which == "raw" else "XYZ"
    assert parsed.channels[0][3:] == tuple(f"{a}rotation" for a in order)
    assert parsed.num_frames == FRAMES
    assert parsed.frame_time == pytest.approx(1 / FPS)
    got = bvh.bvh_positions(parsed, end_sites=True)[:, _bvh_order(parsed)]
    # The BVH skeleton: the track's median shape, re-posed by its poses.
    rest = bvh.smpl_rest_skeleton(smpl_model, arrays["betas"])  # [29, 3]
    pose = smoothing.project_to_so3(arrays["pose"])
    want = numpy_kinematics.fk_skeleton29(
      pose, np.broadcast_to(rest, (FRAMES, 29, 3))
    )
    pelvis = arrays["pelvis_cam"].astype(np.float64)
    want = (want - rest[0] + pelvis[:, None]) @ bvh.Y_UP_FROM_CAMERA.T
    np.testing.assert_allclose(got, want, atol=ATOL_M)
    # Comparable with the npz as it is: the pelvis.
    np.testing.assert_allclose(
      got[:, 0], pelvis @ bvh.Y_UP_FROM_CAMERA.T, atol=ATOL_M
    )

    res_pk = pk.load_pk(stem.with_suffix(".pk"))
    assert pk.check_pk(res_pk) == FRAMES
    np.testing.assert_array_equal(
      res_pk["pred_thetas"], arrays["pose"].reshape(FRAMES, 216)
    )
    np.testing.assert_array_equal(res_pk["pred_cam_root"], arrays["pelvis_cam"])
    np.testing.assert_array_equal(res_pk["pred_betas"], arrays["betas"])
    assert list(res_pk["img_path"]) == [f"frame_{i:06d}" for i in range(FRAMES)]
    assert (res_pk["height"] == SIZE[1]).all() and (
      res_pk["width"] == SIZE[0]
    ).all()
    joints = (
      res_pk["pred_xyz_24_struct"].astype(np.float64)
      * pk.AUTHORS_DEPTH_FACTOR_M
      + arrays["pelvis_cam"][:, None]
    )
    np.testing.assert_allclose(joints, arrays["xyz_24"], atol=ATOL_M)


# ----------------------------------------------------------------------------
# The detector path (the standing clip) and single-person videos.


def test_detector_video_cli(stand, tiny_run_dir, tmp_path, capsys):
  d, gt, onnx_path = stand
  out = tmp_path / "out"
  out.mkdir()
  (out / "stand_track7.npz").write_bytes(b"an earlier run's track")
  rc = load_demo_cli().main(
    [
      "--checkpoint",
      str(tiny_run_dir),
      "--input",
      str(d / "stand.mp4"),
      "--out",
      str(out),
      "--detector",
      str(onnx_path),
      "--det-score",
      "0.5",
      "--no-progress",
      "--save-bvh",
    ]
  )
  captured = capsys.readouterr()
  assert rc == 0, captured.err
  assert "(1 replaced)" in captured.out
  assert "3 track(s) (id: frames): 0: 4, 1: 4, 2: 4" in captured.out
  assert not (out / "stand_track7.npz").exists()
  tracks = _tracks(out, "stand")
  assert sorted(tracks) == [0, 1, 2]
  gt_xywh = _xywh(gt["boxes_xyxy"][0])
  for tid, arrays in tracks.items():
    # Ids in the order of the first frame's detections: best score first.
    np.testing.assert_allclose(
      arrays["scores"], [0.9, 0.8, 0.7][tid], atol=1e-6
    )
    np.testing.assert_allclose(
      arrays["bbox_xywh"],
      np.broadcast_to(gt_xywh[tid], (STAND_FRAMES, 4)),
      atol=1e-3,
    )
    assert (out / f"stand_track{tid}.bvh").is_file()
  frames = _read_video(out / "stand_overlay.mp4")
  assert len(frames) == STAND_FRAMES
  # Each person is drawn in its own colour (the label boxes): the three
  # track colours appear in the overlay's left panel.
  from hybrik_jax.demo.outputs import person_rgb

  left = frames[0][:, : SIZE[0]].astype(int)
  for tid in range(3):
    bgr = person_rgb(tid)[::-1]
    assert (np.abs(left - bgr).max(-1) < 40).sum() > 20, tid


def test_detector_image_and_box_precedence(
  stand, tiny_run_dir, tmp_path, capsys, caplog
):
  d, gt, onnx_path = stand
  args = ["--checkpoint", str(tiny_run_dir), "--input", str(d / "stand.png")]
  out = tmp_path / "det"
  rc = load_demo_cli().main(
    args + ["--out", str(out), "--detector", str(onnx_path)]
  )
  assert rc == 0, capsys.readouterr().err
  with np.load(out / "stand.npz", allow_pickle=False) as z:
    assert z["pose"].shape == (3, 24, 3, 3)
    assert z["vertices"].shape == (3, 6890, 3)
    np.testing.assert_allclose(z["scores"], [0.9, 0.8, 0.7], atol=1e-6)
    np.testing.assert_allclose(
      z["bbox_xywh"], _xywh(gt["boxes_xyxy"][0]), atol=1e-3
    )
  obj = (out / "stand.obj").read_text().splitlines()
  assert [l for l in obj if l.startswith("o ")] == [
    "o person0",
    "o person1",
    "o person2",
  ]
  assert sum(l.startswith("v ") for l in obj) == 3 * 6890
  # --bbox wins over --detector (a warning; the detector is not even read).
  out = tmp_path / "box"
  rc = load_demo_cli().main(
    args
    + [
      "--out",
      str(out),
      "--detector",
      str(tmp_path / "none.onnx"),
      "--bbox",
      "30,60,60,150",
    ]
  )
  assert rc == 0, capsys.readouterr().err
  assert any(
    "--detector" in r.getMessage() and "is not used" in r.getMessage()
    for r in caplog.records
  )
  with np.load(out / "stand.npz", allow_pickle=False) as z:
    assert z["pose"].shape == (24, 3, 3)  # the single-person layout


def test_single_person_video_exports(stand, tiny_run_dir, variables, tmp_path):
  d, _, _ = stand
  res = demo_run.run(
    tiny_run_dir,
    d / "stand.mp4",
    tmp_path,
    bbox="30,60,60,150",
    variables=variables,
    progress=False,
    smooth="oneeuro",
    save_bvh=True,
    save_pk=True,
  )
  assert not res["multi_person"] and res["tracks"] == {0: STAND_FRAMES}
  names = sorted(p.name for p in res["outputs"])
  assert names == ["stand.bvh", "stand.npz", "stand.pk", "stand_overlay.mp4"]
  assert bvh.parse_bvh(tmp_path / "stand.bvh").num_frames == STAND_FRAMES
  assert pk.check_pk(pk.load_pk(tmp_path / "stand.pk")) == STAND_FRAMES


@pytest.mark.parametrize(
  "case", ["bvh_image", "missing_detector", "bad_smooth"]
)
def test_cli_errors(case, stand, tiny_run_dir, tmp_path, capsys):
  d, _, _ = stand
  args = ["--checkpoint", str(tiny_run_dir), "--out", str(tmp_path / "o")]
  if case == "bvh_image":
    args += [
      "--input",
      str(d / "stand.png"),
      "--save-bvh",
      "--smooth",
      "savgol",
    ]
    want = "--smooth, --save-bvh need(s) a video --input"
  elif case == "missing_detector":
    args += [
      "--input",
      str(d / "stand.mp4"),
      "--detector",
      str(tmp_path / "x.onnx"),
    ]
    want = "x.onnx: no such file"
  else:
    with pytest.raises(cli.UsageError, match="--smooth"):
      load_demo_cli().main(
        args + ["--input", str(d / "stand.mp4"), "--smooth", "kalman"]
      )
    return
  rc = load_demo_cli().main(args)
  err = capsys.readouterr().err.strip().splitlines()
  assert rc == 2
  assert err[-1].startswith("error: ") and want in err[-1], err


def test_make_figures(tiny_run_dir, variables, tmp_path):
  from hybrik_jax.demo import make_figures

  paths = make_figures.make_figures(
    tiny_run_dir,
    tmp_path / "docs",
    tmp_path / "work",
    size=(160, 120),
    frames=8,
    variables=variables,
    progress=False,
  )
  # (8 frames of 160 px: people jump ~15 px per frame, more than SORT can
  # follow for every id; the pictures are drawn all the same.)
  assert len(paths["demo"]["tracks"]) >= 3
  overlay = cv2.imread(str(paths["overlay"]))
  assert overlay.shape == (2 * 120, 2 * 160, 3)
  picture = cv2.imread(str(paths["bvh"]))
  assert picture is not None and picture.shape[1] > 2 * picture.shape[0]
