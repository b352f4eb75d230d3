"""The ONNX person detector (hybrik_jax.demo.detector) on tiny graphs.

Each test model (``tests/onnx_graphs.py``) is a real ONNX file that
OpenCV's dnn module runs: its input goes through ReduceMean, times 0, plus a
constant of the output's shape, so the output is a known tensor whatever the
frame. The constants encode boxes (in the 640 x 640 input) for each export
layout; the detector must find the persons, drop the other class and the
low score, merge the duplicate by NMS and undo the letterbox for frames of
other aspect ratios.
"""

from __future__ import annotations

import numpy as np
import pytest

from hybrik_jax import errors
from hybrik_jax.demo import detector as det

pytest.importorskip("onnx")
from onnx_graphs import (  # noqa: E402
  NC,
  write_model,
  yolov8_output,
  yolox_output,
)

# (x1, y1, x2, y2) in input pixels, class scores, objectness (YOLOX: the
# score is objectness * class score), YOLOX stride of the anchor it sits on.
P1 = dict(box=(100, 150, 200, 350), cls=(1.0, 0.0, 0.0), obj=0.9, stride=32)
P2 = dict(box=(300, 160, 380, 340), cls=(0.8, 0.1, 0.0), obj=1.0, stride=8)
DUP = dict(box=(304, 164, 384, 344), cls=(0.8, 0.0, 0.1), obj=0.875, stride=8)
OTHER = dict(box=(220, 200, 280, 300), cls=(0.6, 0.0, 0.95), obj=1.0, stride=8)
LOW = dict(box=(400, 150, 470, 250), cls=(0.6, 0.0, 0.0), obj=0.5, stride=16)
CLIP = dict(box=(460, 300, 600, 520), cls=(0.85, 0.0, 0.0), obj=1.0, stride=16)
DETS = [P1, P2, DUP, OTHER, LOW, CLIP]

# Expected: P1 0.9, CLIP 0.85, P2 0.8 (DUP merged into P2, OTHER is class
# 2, LOW scores 0.3), in frame pixels, worked out by hand per layout/frame:
# YOLOX  720x1280: r = 0.5, top-left           -> box / 0.5
# YOLOX  480x360 : r = 4/3, top-left           -> box * 0.75
# YOLOv8 720x1280: r = 0.5, 360 rows, top 140  -> (x * 2, (y - 140) * 2)
# YOLOv8 480x360 : r = 4/3, 480 cols, left 80  -> ((x - 80) * 0.75, y * 0.75)
# CLIP sticks out of the frame each time and is clipped to it.
SCORES = [0.9, 0.85, 0.8]
EXPECTED = {
  ("yolox", (720, 1280)): [
    (200, 300, 400, 700),
    (920, 600, 1200, 720),
    (600, 320, 760, 680),
  ],
  ("yolox", (480, 360)): [
    (75, 112.5, 150, 262.5),
    (345, 225, 360, 390),
    (225, 120, 285, 255),
  ],
  ("yolov8", (720, 1280)): [
    (200, 20, 400, 420),
    (920, 320, 1200, 720),
    (600, 40, 760, 400),
  ],
  ("yolov8", (480, 360)): [
    (15, 112.5, 90, 262.5),
    (285, 225, 360, 390),
    (165, 120, 225, 255),
  ],
}
FRAMES = [(720, 1280), (480, 360)]


@pytest.fixture(scope="module")
def models(module_tmp):
  d = module_tmp.mktemp("detector")
  return {
    "yolox": write_model(d / "yolox_s.onnx", yolox_output(DETS)),
    "yolox_decoded": write_model(
      d / "yolox_decoded.onnx", yolox_output(DETS, decoded=True)
    ),
    "yolov8": write_model(d / "yolov8n.onnx", yolov8_output(DETS)),
  }


def check_people(detector, layout, frame_hw):
  frame = np.zeros((*frame_hw, 3), np.uint8)
  boxes, scores = detector.detect(frame)
  assert boxes.dtype == np.float32 and scores.dtype == np.float32
  assert boxes.shape == (3, 4) and scores.shape == (3,)
  np.testing.assert_allclose(scores, SCORES, atol=1e-6)
  np.testing.assert_allclose(boxes, EXPECTED[layout, frame_hw], atol=1e-3)


# ----------------------------------------------------------------------------
# Pre-processing.


def test_letterbox_yolox_top_left_and_yolov8_centred():
  img = np.arange(5 * 8 * 3, dtype=np.uint8).reshape(5, 8, 3)
  # Scale 1 (no resize): YOLOX puts it at the top-left, ultralytics splits
  # the 3 rows of padding as round(1.5 - 0.1) = 1 above, 2 below.
  out, box = det.letterbox(img, (8, 8), centre=False)
  assert box == det.Letterbox(scale=1.0, pad_x=0, pad_y=0)
  np.testing.assert_array_equal(out[:5], img)
  assert np.all(out[5:] == 114)
  out, box = det.letterbox(img, (8, 8), centre=True)
  assert box == det.Letterbox(scale=1.0, pad_x=0, pad_y=1)
  np.testing.assert_array_equal(out[1:6], img)
  assert np.all(out[:1] == 114) and np.all(out[6:] == 114)

  # Scale 2 along the long side; a flat image stays flat when resized.
  flat = np.full((2, 4, 3), 7, np.uint8)
  out, box = det.letterbox(flat, (8, 8), centre=False)
  assert box == det.Letterbox(scale=2.0, pad_x=0, pad_y=0)
  assert np.all(out[:4] == 7) and np.all(out[4:] == 114)
  out, box = det.letterbox(flat, (16, 8), centre=True)
  assert box == det.Letterbox(scale=2.0, pad_x=0, pad_y=6)
  assert np.all(out[6:10] == 7)
  assert np.all(out[:6] == 114) and np.all(out[10:] == 114)
  # Wide input: columns padded (left, right), the frame maps back.
  out, box = det.letterbox(flat, (4, 16), centre=True)
  assert box == det.Letterbox(scale=2.0, pad_x=4, pad_y=0)
  assert np.all(out[:, 4:12] == 7)
  assert np.all(out[:, :4] == 114) and np.all(out[:, 12:] == 114)
  np.testing.assert_allclose(
    box.to_frame(np.array([[4.0, 0.0, 12.0, 4.0]])), [[0, 0, 4, 2]]
  )


def test_preprocess_channels_and_scale():
  frame = np.zeros((2, 4, 3), np.uint8)
  frame[...] = (10, 20, 30)  # B, G, R
  blob, box = det.preprocess(frame, (8, 8), "yolox")
  assert blob.shape == (1, 3, 8, 8) and blob.dtype == np.float32
  assert box.scale == 2.0 and (box.pad_x, box.pad_y) == (0, 0)
  np.testing.assert_array_equal(blob[0, :, 0, 0], [10, 20, 30])  # BGR
  np.testing.assert_array_equal(blob[0, :, 7, 7], [114, 114, 114])
  blob, box = det.preprocess(frame, (8, 8), "yolov8")
  assert (box.pad_x, box.pad_y) == (0, 2)
  np.testing.assert_allclose(blob[0, :, 3, 0], np.array([30, 20, 10]) / 255)
  np.testing.assert_allclose(blob[0, :, 0, 0], np.full(3, 114 / 255))
  # An RGB frame gives the same network input.
  rgb = np.ascontiguousarray(frame[..., ::-1])
  for layout in ("yolox", "yolov8"):
    np.testing.assert_array_equal(
      det.preprocess(rgb, (8, 8), layout, "rgb")[0],
      det.preprocess(frame, (8, 8), layout)[0],
    )
  with pytest.raises(ValueError, match="uint8"):
    det.preprocess(frame.astype(np.float32), (8, 8), "yolox")


# ----------------------------------------------------------------------------
# Decoding, NMS and the letterbox undone, per layout.


@pytest.mark.parametrize("frame_hw", FRAMES)
def test_yolox_raw_output(models, frame_hw):
  detector = det.PersonDetector(models["yolox"])
  assert detector.layout == "yolox" and detector.decoded is False
  assert detector.input_size == (640, 640) and detector.num_classes == NC
  check_people(detector, "yolox", frame_hw)


@pytest.mark.parametrize("frame_hw", FRAMES)
def test_yolox_decoded_output(models, frame_hw):
  detector = det.PersonDetector(models["yolox_decoded"])
  assert detector.layout == "yolox" and detector.decoded is True
  check_people(detector, "yolox", frame_hw)
  forced = det.PersonDetector(
    models["yolox_decoded"], layout="yolox", decoded=True
  )
  check_people(forced, "yolox", frame_hw)


@pytest.mark.parametrize("frame_hw", FRAMES)
def test_yolov8_output(models, frame_hw):
  detector = det.PersonDetector(models["yolov8"])
  assert detector.layout == "yolov8" and detector.decoded is None
  check_people(detector, "yolov8", frame_hw)
  forced = det.PersonDetector(models["yolov8"], layout="yolov8")
  check_people(forced, "yolov8", frame_hw)


def test_rgb_frame_same_boxes(models):
  detector = det.PersonDetector(models["yolov8"])
  frame = np.zeros((720, 1280, 3), np.uint8)
  a = detector.detect(frame)
  b = detector.detect(frame, channel_order="rgb")
  np.testing.assert_array_equal(a[0], b[0])


def test_thresholds(models):
  # Score threshold 0.2 keeps LOW (0.3); NMS threshold 0.9 keeps DUP (IoU
  # with P2 is 0.87); OTHER stays out (its best class is not a person).
  detector = det.PersonDetector(
    models["yolox"], score_threshold=0.2, nms_threshold=0.9
  )
  boxes, scores = detector.detect(np.zeros((640, 640, 3), np.uint8))
  np.testing.assert_allclose(scores, [0.9, 0.85, 0.8, 0.7, 0.3], atol=1e-6)
  np.testing.assert_allclose(
    boxes,
    [P1["box"], (460, 300, 600, 520), P2["box"], DUP["box"], LOW["box"]],
    atol=1e-3,
  )
  # Class 2 as the "person": only OTHER (0.95) is left.
  detector = det.PersonDetector(models["yolov8"], person_class=2)
  boxes, scores = detector.detect(np.zeros((640, 640, 3), np.uint8))
  np.testing.assert_allclose(scores, [0.95], atol=1e-6)
  np.testing.assert_allclose(boxes, [OTHER["box"]], atol=1e-3)


def test_no_people(tmp_path):
  path = write_model(tmp_path / "empty.onnx", yolov8_output([OTHER, LOW]))
  boxes, scores = det.PersonDetector(path).detect(
    np.zeros((100, 200, 3), np.uint8)
  )
  assert boxes.shape == (0, 4) and boxes.dtype == np.float32
  assert scores.shape == (0,) and scores.dtype == np.float32


def test_non_square_input_read_from_file(tmp_path):
  # A 384 x 640 (height x width) export: 48*80 + 24*40 + 12*20 = 5040
  # anchors. For a 720x1280 frame r = 0.5, 360 rows centred: top 12.
  size = (384, 640)
  dets = [
    dict(box=(100, 50, 200, 250), cls=(0.9, 0, 0), obj=1.0, stride=8),
    dict(box=(300, 100, 360, 200), cls=(0.7, 0, 0), obj=1.0, stride=16),
  ]
  v8 = write_model(
    tmp_path / "v8.onnx", yolov8_output(dets, size), (1, 3, *size)
  )
  yx = write_model(
    tmp_path / "yx.onnx", yolox_output(dets, size=size), (1, 3, *size)
  )
  frame = np.zeros((720, 1280, 3), np.uint8)
  detector = det.PersonDetector(v8)
  assert detector.input_size == size and detector.layout == "yolov8"
  boxes, scores = detector.detect(frame)
  np.testing.assert_allclose(scores, [0.9, 0.7], atol=1e-6)
  np.testing.assert_allclose(
    boxes, [(200, 76, 400, 476), (600, 176, 720, 376)], atol=1e-3
  )
  detector = det.PersonDetector(yx)
  assert detector.input_size == size and detector.layout == "yolox"
  boxes, scores = detector.detect(frame)
  np.testing.assert_allclose(
    boxes, [(200, 100, 400, 500), (600, 200, 720, 400)], atol=1e-3
  )
  with pytest.raises(det.DetectorError, match=r"v8\.onnx.*\(640, 640\)"):
    det.PersonDetector(v8, input_size=(640, 640))


def test_dynamic_input_uses_input_size(tmp_path):
  path = write_model(
    tmp_path / "dyn.onnx", yolov8_output(DETS), (1, 3, "height", "width")
  )
  detector = det.PersonDetector(path)
  assert detector.input_size == (640, 640)
  check_people(detector, "yolov8", (720, 1280))
  # A 320 x 320 input has 2100 anchors, not the file's 8400.
  with pytest.raises(det.DetectorError, match="2100 anchors"):
    det.PersonDetector(path, input_size=(320, 320))


@pytest.mark.parametrize("opset", [11, 17])
def test_other_opsets(tmp_path, opset):
  path = write_model(tmp_path / "m.onnx", yolox_output(DETS), opset=opset)
  check_people(det.PersonDetector(path), "yolox", (720, 1280))


# ----------------------------------------------------------------------------
# Errors: each names the file.


def test_missing_file(tmp_path):
  path = tmp_path / "nowhere" / "yolox_s.onnx"
  with pytest.raises(errors.MissingInputError, match="yolox_s.onnx") as e:
    det.PersonDetector(path)
  assert isinstance(e.value, FileNotFoundError)
  assert str(path) in str(e.value)
  with pytest.raises(errors.MissingInputError, match="not a file"):
    det.PersonDetector(tmp_path)


def test_not_onnx(tmp_path):
  path = tmp_path / "weights.onnx"
  path.write_bytes(b"this is not a protobuf \x00\xff" * 10)
  with pytest.raises(det.DetectorError) as e:
    det.PersonDetector(path)
  assert isinstance(e.value, errors.InputError)
  assert str(path) in str(e.value) and "cannot read" in str(e.value)
  path.write_bytes(b"")
  with pytest.raises(det.DetectorError, match="weights.onnx"):
    det.PersonDetector(path)


def test_unknown_output_shape(tmp_path):
  path = write_model(tmp_path / "odd.onnx", np.zeros((1, 100, 7)))
  with pytest.raises(det.DetectorError) as e:
    det.PersonDetector(path)
  msg = str(e.value)
  assert str(path) in msg and "[1, 100, 7]" in msg and "8400" in msg
  path = write_model(tmp_path / "flat.onnx", np.zeros((1, 8400)))
  with pytest.raises(det.DetectorError, match=r"flat\.onnx.*\[1, 8400\]"):
    det.PersonDetector(path)


def test_layout_does_not_fit(models):
  with pytest.raises(det.DetectorError) as e:
    det.PersonDetector(models["yolox"], layout="yolov8")
  msg = str(e.value)
  assert str(models["yolox"]) in msg and "[1, 8400, 8]" in msg
  with pytest.raises(det.DetectorError, match=r"\[1, 7, 8400\].*'yolox'"):
    det.PersonDetector(models["yolov8"], layout="yolox")


@pytest.mark.parametrize(
  "kwargs, match",
  [
    (dict(layout="yolo"), "layout"),
    (dict(score_threshold=1.5), "score_threshold"),
    (dict(nms_threshold=-0.1), "nms_threshold"),
    (dict(person_class=-1), "person_class"),
    (dict(person_class=3), "3 classes"),
    (dict(input_size=(600, 600)), "multiples of 32"),
    (dict(input_size=640), "height, width"),
  ],
)
def test_bad_options(models, kwargs, match):
  with pytest.raises(det.DetectorError, match=match) as e:
    det.PersonDetector(models["yolov8"], **kwargs)
  assert str(models["yolov8"]) in str(e.value)


def test_bad_frame(models):
  detector = det.PersonDetector(models["yolov8"])
  with pytest.raises(ValueError, match=r"\[H, W, 3\] uint8"):
    detector.detect(np.zeros((10, 10), np.uint8))


def test_onnx_input_shape_reader(tmp_path):
  path = write_model(
    tmp_path / "m.onnx", np.zeros((1, 7, 5040)), (1, 3, 384, 640)
  )
  assert det._onnx_input_shape(path) == [1, 3, 384, 640]
  path = write_model(
    tmp_path / "d.onnx", np.zeros((1, 7, 8400)), ("n", 3, "h", 640)
  )
  assert det._onnx_input_shape(path) == [None, 3, None, 640]
  bad = tmp_path / "bad.onnx"
  bad.write_bytes(b"\xff\xff\xff")
  assert det._onnx_input_shape(bad) is None


def test_xyxy_to_xywh():
  np.testing.assert_array_equal(
    det.xyxy_to_xywh(np.array([[10.0, 20.0, 40.0, 80.0]])),
    [[10, 20, 30, 60]],
  )
  assert det.xyxy_to_xywh(np.zeros((0, 4), np.float32)).shape == (0, 4)
