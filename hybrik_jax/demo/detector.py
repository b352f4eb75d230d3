"""Person detector: a YOLOX or YOLOv8 ONNX file run by OpenCV's dnn module.

:class:`PersonDetector` finds the people in a video frame, so the demo needs
no hand-made boxes. It runs a COCO object detector exported to ONNX with
OpenCV's ``cv2.dnn`` (already a dependency: no other framework at run time)
and keeps the boxes of one class, COCO class 0 = person::

  detector = PersonDetector("yolox_s.onnx")     # layout read off the file
  boxes, scores = detector.detect(frame_bgr)     # [N, 4] xyxy px, [N]
  xywh = xyxy_to_xywh(boxes)                     # the demo's x, y, w, h

**No weights ship with the project and nothing is downloaded**: the user
exports a file once, with the detector's own tools, and passes its path.

* YOLOX (Megvii-BaseDetection/YOLOX, Apache-2.0): from a clone of that repo
  and a checkpoint of its model zoo (``yolox_s.pth``, ...)::

    python tools/export_onnx.py -n yolox-s -c yolox_s.pth --output-name yolox_s.onnx

  The default export leaves the box decoding out of the graph (raw output,
  decoded here); ``--decode_in_inference`` puts it in (also handled, see
  ``decoded`` below).
* YOLOv8 (ultralytics, AGPL-3.0)::

    yolo export model=yolov8n.pt format=onnx
    # or, in Python: YOLO("yolov8n.pt").export(format="onnx")

  YOLO11 and the other ultralytics ``Detect`` heads export the same output
  layout and work too. End-to-end exports (YOLOv10, ``nms=True``, output
  ``[1, 300, 6]``) do not.

What each export expects, as its own inference code does it (YOLOX:
``yolox/data/data_augment.py`` ``preproc``, ``demo/ONNXRuntime``,
``yolox/utils/demo_utils.py`` ``demo_postprocess``, the head's
``decode_outputs``; ultralytics: ``LetterBox``, ``BasePredictor.preprocess``,
the ``Detect`` head), with ``r = min(Hi / h, Wi / w)`` for an ``h x w`` frame
and an ``Hi x Wi`` input:

* YOLOX: resize (bilinear) to ``int(w r) x int(h r)``, image at the top-left
  corner, padded with 114 below and to the right; BGR, 0..255 floats (no
  normalisation), NCHW float32 [1, 3, Hi, Wi]. Output [1, A, 5 + nc]: x, y,
  w, h, objectness, nc class scores (sigmoids applied in the graph). Raw
  boxes are decoded here over the grids of strides 8, 16, 32 (x fastest):
  ``cx = (x + gx) * s``, ``w = exp(w) * s``. Score = objectness * class
  score. Frame box = input box / r.
* YOLOv8: resize (bilinear) to ``round(w r) x round(h r)``, centred, padded
  with 114 (``round(pad / 2 - 0.1)`` before, the rest after); RGB, /255,
  NCHW float32 [1, 3, Hi, Wi]. Output [1, 4 + nc, A]: cx, cy, w, h in input
  pixels, nc class scores (sigmoids applied, no objectness), transposed
  here. Score = class score. Frame box = (input box - (left, top)) / r.

``A`` is the number of anchor points: ``sum (Hi/s) * (Wi/s)`` over the
strides 8, 16, 32 (8400 for a 640 x 640 input); ``nc`` = 80 for COCO.

After decoding, an anchor is a person when its best class is
``person_class`` (as the exports' own class-agnostic NMS labels it) and its
score is above ``score_threshold``; overlapping person boxes are merged by
``cv2.dnn.NMSBoxes`` (IoU above ``nms_threshold`` -> the lower score goes);
the survivors are mapped back through the letterbox to frame pixels, clipped
to the frame (x in [0, W], y in [0, H]) and returned best first. Boxes that
lie wholly outside the frame (empty after clipping) are dropped.

Thresholds: ``score_threshold`` (default 0.5) trades missed people for false
ones: the exports' own demos use 0.25 (ultralytics) and 0.3 (YOLOX); a
higher value suits a demo that should only fit confident people.
``nms_threshold`` (default 0.45, YOLOX's value; ultralytics uses 0.7) is the
IoU above which two person boxes count as one person.

``layout='auto'`` decides from the (single, first) output's shape ``[1, d1,
d2]`` and the anchor count ``A`` of the input size: ``d1 == A`` -> YOLOX,
``d2 == A`` -> YOLOv8; anything else is a :class:`DetectorError` naming the
file and the shape. For YOLOX, ``decoded=None`` decides likewise: a raw
output's x, y are offsets within a grid cell (a few units), a decoded one's
are pixel centres that spread over the whole input, so the output counts as
decoded when some ``|x|`` or ``|y|`` exceeds the largest stride (32). Both
are resolved once, on a gray frame, when the detector is made.

The input size is read from the ONNX file's input (``[1, 3, Hi, Wi]``); a
file with dynamic height/width uses ``input_size`` (default 640 x 640).
"""

from __future__ import annotations

import dataclasses
import mmap
import os
import re
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from hybrik_jax import errors

LAYOUTS = ("auto", "yolox", "yolov8")
STRIDES = (8, 16, 32)
PAD_VALUE = 114
DEFAULT_INPUT_SIZE = (640, 640)
CHANNEL_ORDERS = ("bgr", "rgb")


class DetectorError(errors.InputError, ValueError):
  """A detector file or option that cannot be used (names the path or the
  option, what was found and what was expected)."""


# ----------------------------------------------------------------------------
# Pre-processing.


@dataclasses.dataclass(frozen=True)
class Letterbox:
  """Where a frame went in the network input: ``input = frame * scale +
  (pad_x, pad_y)``."""

  scale: float
  pad_x: int
  pad_y: int

  def to_frame(self, boxes_xyxy: np.ndarray) -> np.ndarray:
    """[N, 4] xyxy input pixels -> [N, 4] xyxy frame pixels (not clipped)."""
    pad = np.array([self.pad_x, self.pad_y] * 2, dtype=np.float64)
    return (np.asarray(boxes_xyxy, np.float64) - pad) / self.scale


def letterbox(
  image: np.ndarray, input_size: Sequence[int], centre: bool
) -> tuple[np.ndarray, Letterbox]:
  """Resizes ``image`` into ``input_size`` keeping its aspect ratio.

  Args:
    image: [h, w, C] uint8.
    input_size: (Hi, Wi) of the network input.
    centre: False: YOLOX (image at the top-left corner, ``int`` sizes);
      True: ultralytics (centred, ``round`` sizes, ``round(pad/2 - 0.1)``
      before and the rest after).

  Returns:
    ([Hi, Wi, C] uint8 padded with 114, the :class:`Letterbox`).
  """
  in_h, in_w = (int(s) for s in input_size)
  h, w = image.shape[:2]
  r = min(in_h / h, in_w / w)
  if centre:
    new_w, new_h = round(w * r), round(h * r)
  else:
    new_w, new_h = int(w * r), int(h * r)
  new_w, new_h = max(1, min(new_w, in_w)), max(1, min(new_h, in_h))
  if (new_w, new_h) != (w, h):
    image = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
  image = image.reshape(new_h, new_w, -1)
  if centre:
    left = round((in_w - new_w) / 2 - 0.1)
    top = round((in_h - new_h) / 2 - 0.1)
  else:
    left = top = 0
  out = np.full((in_h, in_w, image.shape[2]), PAD_VALUE, dtype=np.uint8)
  out[top : top + new_h, left : left + new_w] = image
  return out, Letterbox(scale=r, pad_x=left, pad_y=top)


def preprocess(
  frame: np.ndarray,
  input_size: Sequence[int],
  layout: str,
  channel_order: str = "bgr",
) -> tuple[np.ndarray, Letterbox]:
  """A frame -> the network input of ``layout`` ('yolox' or 'yolov8').

  Args:
    frame: [H, W, 3] uint8, channels in ``channel_order`` ('bgr', this
      project's frames, or 'rgb').

  Returns:
    ([1, 3, Hi, Wi] float32: YOLOX BGR 0..255, YOLOv8 RGB 0..1; the
    :class:`Letterbox`).
  """
  _check_frame(frame)
  if layout not in ("yolox", "yolov8"):
    raise ValueError(f"layout must be 'yolox' or 'yolov8', got {layout!r}")
  if channel_order not in CHANNEL_ORDERS:
    raise ValueError(
      f"channel_order must be one of {CHANNEL_ORDERS}, got {channel_order!r}"
    )
  boxed, box = letterbox(frame, input_size, centre=layout == "yolov8")
  want = "bgr" if layout == "yolox" else "rgb"
  if channel_order != want:
    boxed = boxed[..., ::-1]
  blob = np.ascontiguousarray(boxed.transpose(2, 0, 1)[None], dtype=np.float32)
  if layout == "yolov8":
    blob /= 255.0
  return blob, box


def _check_frame(frame: np.ndarray) -> None:
  if (
    not isinstance(frame, np.ndarray)
    or frame.dtype != np.uint8
    or frame.ndim != 3
    or frame.shape[2] != 3
    or frame.shape[0] < 1
    or frame.shape[1] < 1
  ):
    what = (
      f"{frame.dtype} {list(frame.shape)}"
      if isinstance(frame, np.ndarray)
      else type(frame).__name__
    )
    raise ValueError(f"expected a [H, W, 3] uint8 frame, got {what}")


# ----------------------------------------------------------------------------
# Output decoding.


def num_anchors(input_size: Sequence[int]) -> int:
  """Anchor points of a stride-8/16/32 head: 8400 for (640, 640)."""
  in_h, in_w = input_size
  return sum((in_h // s) * (in_w // s) for s in STRIDES)


def infer_layout(shape: Sequence[int], input_size: Sequence[int]) -> str | None:
  """'yolox' for [1, A, C], 'yolov8' for [1, C, A], None otherwise (A: the
  anchors of ``input_size``; C: at least 5 classes-and-box channels)."""
  a = num_anchors(input_size)
  if len(shape) != 3 or shape[0] != 1:
    return None
  if shape[1] == a and shape[2] > 5:
    return "yolox"
  if shape[2] == a and shape[1] > 4:
    return "yolov8"
  return None


def _yolox_grid(input_size: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
  """([A, 2] cell x, y; [A, 1] stride), levels 8, 16, 32, x fastest."""
  in_h, in_w = input_size
  grids, strides = [], []
  for s in STRIDES:
    ys, xs = np.mgrid[0 : in_h // s, 0 : in_w // s]
    grids.append(np.stack([xs.ravel(), ys.ravel()], axis=1))
    strides.append(np.full((xs.size, 1), s))
  return (
    np.concatenate(grids).astype(np.float32),
    np.concatenate(strides).astype(np.float32),
  )


def decode(
  output: np.ndarray,
  layout: str,
  input_size: Sequence[int],
  decoded: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
  """A network output -> every anchor's box and class scores.

  Args:
    output: [1, A, 5 + nc] (YOLOX) or [1, 4 + nc, A] (YOLOv8).
    layout: 'yolox' or 'yolov8'.
    input_size: (Hi, Wi).
    decoded: YOLOX only: whether the export decoded its boxes already.

  Returns:
    ([A, 4] xyxy boxes in input pixels, [A, nc] scores: YOLOX objectness *
    class score, YOLOv8 the class score).
  """
  output = np.asarray(output, dtype=np.float32)
  if layout == "yolox":
    pred = output[0]
    xy, wh = pred[:, :2], pred[:, 2:4]
    if not decoded:
      grid, stride = _yolox_grid(input_size)
      xy = (xy + grid) * stride
      wh = np.exp(wh) * stride
    scores = pred[:, 4:5] * pred[:, 5:]
  elif layout == "yolov8":
    pred = output[0].T
    xy, wh = pred[:, :2], pred[:, 2:4]
    scores = pred[:, 4:]
  else:
    raise ValueError(f"layout must be 'yolox' or 'yolov8', got {layout!r}")
  boxes = np.concatenate([xy - wh / 2, xy + wh / 2], axis=1)
  return boxes, scores


def select_people(
  boxes: np.ndarray,
  scores: np.ndarray,
  person_class: int,
  score_threshold: float,
  nms_threshold: float,
) -> tuple[np.ndarray, np.ndarray]:
  """Person anchors (best class ``person_class``, score above the threshold)
  after NMS, best first: ([N, 4] boxes, [N] scores), float32."""
  best = np.argmax(scores, axis=1)
  person = scores[:, person_class]
  keep = np.flatnonzero((best == person_class) & (person > score_threshold))
  if keep.size == 0:
    return np.zeros((0, 4), np.float32), np.zeros((0,), np.float32)
  cand, cand_scores = boxes[keep], person[keep]
  xywh = np.concatenate([cand[:, :2], cand[:, 2:] - cand[:, :2]], axis=1)
  kept = np.asarray(
    cv2.dnn.NMSBoxes(
      xywh.astype(np.float64).tolist(),
      cand_scores.astype(np.float64).tolist(),
      float(score_threshold),
      float(nms_threshold),
    ),
    dtype=np.int64,
  ).reshape(-1)
  kept = kept[np.argsort(-cand_scores[kept], kind="stable")]
  return cand[kept].astype(np.float32), cand_scores[kept].astype(np.float32)


# ----------------------------------------------------------------------------
# The ONNX file's input shape (a few protobuf fields, no onnx package).


def _varint(buf, pos: int) -> tuple[int, int]:
  value = shift = 0
  while True:
    byte = buf[pos]
    pos += 1
    value |= (byte & 0x7F) << shift
    if byte < 0x80:
      return value, pos
    shift += 7
    if shift > 63:
      raise ValueError("bad varint")


def _fields(buf, start: int, end: int):
  """(field number, wire type, varint value or (start, end) of a
  length-delimited field) of one protobuf message."""
  pos = start
  while pos < end:
    key, pos = _varint(buf, pos)
    field, wire = key >> 3, key & 7
    if wire == 0:
      value, pos = _varint(buf, pos)
    elif wire == 2:
      size, pos = _varint(buf, pos)
      value, pos = (pos, pos + size), pos + size
    elif wire == 1:
      value, pos = None, pos + 8
    elif wire == 5:
      value, pos = None, pos + 4
    else:
      raise ValueError(f"unsupported wire type {wire}")
    if pos > end:
      raise ValueError("truncated message")
    yield field, wire, value


def _sub(buf, span, field: int):
  """The spans of the length-delimited ``field`` in the message at span."""
  return [v for f, w, v in _fields(buf, *span) if f == field and w == 2]


def _onnx_input_shape(path: Path) -> list[int | None] | None:
  """The first graph input's dims (None: dynamic), None when unreadable.

  ModelProto.graph (7) -> GraphProto.input (11), less GraphProto.initializer
  (5) names -> ValueInfoProto.name (1) / type (2) -> TypeProto.tensor_type (1)
  -> shape (2) -> dim (1) -> dim_value (1) | dim_param (2).
  """
  try:
    with (
      open(path, "rb") as f,
      mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf,
    ):
      graphs = _sub(buf, (0, len(buf)), 7)
      if not graphs:
        return None
      inputs, initializers = [], set()
      for field, wire, span in _fields(buf, *graphs[0]):
        if wire != 2:
          continue
        if field == 11:
          inputs.append(span)
        elif field == 5:
          for name in _sub(buf, span, 8):
            initializers.add(bytes(buf[name[0] : name[1]]))
      for info in inputs:
        names = _sub(buf, info, 1)
        name = bytes(buf[names[0][0] : names[0][1]]) if names else b""
        if name in initializers:
          continue
        dims = []
        for typ in _sub(buf, info, 2):
          for tensor in _sub(buf, typ, 1):
            for shape in _sub(buf, tensor, 2):
              for dim in _sub(buf, shape, 1):
                value = None
                for f, w, v in _fields(buf, *dim):
                  if f == 1 and w == 0:
                    value = v - (1 << 64) if v >= 1 << 63 else v
                dims.append(value if value is not None and value > 0 else None)
        return dims
  except (OSError, ValueError, IndexError):
    return None
  return None


# ----------------------------------------------------------------------------
# The detector.


def _check_multiple(size: tuple[int, ...], what: str, name: str) -> None:
  if any(s <= 0 or s % max(STRIDES) for s in size):
    raise DetectorError(
      f"{what}: {name} {size} (height, width) must be positive multiples "
      f"of {max(STRIDES)}"
    )


def _expected_shape(layout: str | None, input_size: Sequence[int]) -> str:
  shapes = {
    "yolox": "[1, A, 5 + nc] (YOLOX)",
    "yolov8": "[1, 4 + nc, A] (YOLOv8)",
  }
  text = " or ".join(shapes.values()) if layout is None else shapes[layout]
  return (
    f"{text} with A = {num_anchors(input_size)} anchors for the "
    f"{input_size[0]}x{input_size[1]} input"
  )


def _cv_message(e: Exception) -> str:
  """OpenCV's message without its source location and error code."""
  text = " ".join(str(e).split())
  text = text.split("error: ", 1)[-1]
  text = re.sub(r"^\(-?\d+:[^)]*\)\s*", "", text)
  return re.sub(r"\s*in function '[^']*'$", "", text)


class PersonDetector:
  """Finds people in frames with a YOLOX or YOLOv8 ONNX file (see the module
  docstring for how to get one, the layouts and the thresholds).

  Args:
    path: the .onnx file.
    layout: 'auto' (from the output shape), 'yolox' or 'yolov8'.
    input_size: (height, width) of the network input; None: read from the
      file (640 x 640 when the file leaves it dynamic). Must match a file
      with a fixed input size; multiples of 32.
    score_threshold: keep person boxes scoring above this (0..1).
    nms_threshold: IoU above which the lower-scoring of two person boxes is
      dropped (0..1).
    person_class: the person class index (0 in COCO).
    decoded: YOLOX only: whether the export decoded its boxes
      (``--decode_in_inference``); None: tell from the output.

  Raises:
    hybrik_jax.errors.MissingInputError: no file at ``path``.
    DetectorError: a bad option, a file OpenCV cannot read or run, an output
      shape that fits no layout (each message names the path).

  Attributes (resolved): ``path``, ``layout`` ('yolox' or 'yolov8'),
  ``decoded`` (YOLOX: bool; YOLOv8: None), ``input_size`` (Hi, Wi),
  ``num_classes``, ``score_threshold``, ``nms_threshold``, ``person_class``.
  """

  def __init__(
    self,
    path: str | os.PathLike,
    layout: str = "auto",
    input_size: Sequence[int] | None = None,
    score_threshold: float = 0.5,
    nms_threshold: float = 0.45,
    person_class: int = 0,
    decoded: bool | None = None,
  ):
    self.path = Path(path)
    what = f"person detector {self.path}"
    if layout not in LAYOUTS:
      raise DetectorError(
        f"{what}: layout must be one of {LAYOUTS}, got {layout!r}"
      )
    if not 0.0 <= score_threshold <= 1.0:
      raise DetectorError(
        f"{what}: score_threshold must be in [0, 1], got {score_threshold!r}"
      )
    if not 0.0 <= nms_threshold <= 1.0:
      raise DetectorError(
        f"{what}: nms_threshold must be in [0, 1], got {nms_threshold!r}"
      )
    if int(person_class) != person_class or person_class < 0:
      raise DetectorError(
        f"{what}: person_class must be an integer >= 0, got {person_class!r}"
      )
    self.score_threshold = float(score_threshold)
    self.nms_threshold = float(nms_threshold)
    self.person_class = int(person_class)

    if not self.path.exists():
      raise errors.MissingInputError(f"{what}: no such file")
    if not self.path.is_file():
      raise errors.MissingInputError(f"{what}: not a file")
    try:
      self._net = cv2.dnn.readNetFromONNX(str(self.path))
    except cv2.error as e:
      raise DetectorError(
        f"{what}: OpenCV's dnn module cannot read it as an ONNX model "
        f"({_cv_message(e)})"
      ) from None
    if self._net.empty():
      raise DetectorError(
        f"{what}: OpenCV's dnn module read an empty network from it"
      )
    self._out_names = list(self._net.getUnconnectedOutLayersNames())

    self.input_size = self._resolve_input_size(input_size, what)
    # One forward pass on a gray frame: checks OpenCV can run the file and
    # resolves the layout and (YOLOX) whether the boxes come decoded.
    gray = np.full((*self.input_size, 3), PAD_VALUE, np.uint8)
    trial = "yolox" if layout == "auto" else layout
    out = self._forward(preprocess(gray, self.input_size, trial)[0])
    shape = tuple(out.shape)
    found = infer_layout(shape, self.input_size)
    if layout == "auto":
      if found is None:
        raise DetectorError(
          f"{what}: cannot tell the layout from its output shape "
          f"{list(shape)}: expected {_expected_shape(None, self.input_size)}"
        )
      self.layout = found
    else:
      if found != layout:
        raise DetectorError(
          f"{what}: output shape {list(shape)} does not fit layout "
          f"{layout!r}: expected {_expected_shape(layout, self.input_size)}"
        )
      self.layout = layout
    channels = shape[2] if self.layout == "yolox" else shape[1]
    self.num_classes = channels - (5 if self.layout == "yolox" else 4)
    if self.person_class >= self.num_classes:
      raise DetectorError(
        f"{what}: person_class {self.person_class} is not below the "
        f"model's {self.num_classes} classes (output shape {list(shape)})"
      )
    if self.layout == "yolov8":
      self.decoded = None
    elif decoded is None:
      self.decoded = bool(np.abs(out[0, :, :2]).max() > max(STRIDES))
    else:
      self.decoded = bool(decoded)

  def _resolve_input_size(
    self, input_size: Sequence[int] | None, what: str
  ) -> tuple[int, int]:
    dims = _onnx_input_shape(self.path)
    file_hw = None
    if dims is not None and len(dims) == 4:
      if dims[1] is not None and dims[1] != 3:
        raise DetectorError(
          f"{what}: its input {dims} has {dims[1]} channels, expected a "
          "[1, 3, H, W] image"
        )
      if dims[2] is not None and dims[3] is not None:
        file_hw = (dims[2], dims[3])
    if input_size is None:
      size = file_hw or DEFAULT_INPUT_SIZE
    else:
      try:
        size = tuple(int(s) for s in input_size)
      except (TypeError, ValueError):
        size = ()
      if len(size) != 2 or any(s != t for s, t in zip(size, input_size)):
        raise DetectorError(
          f"{what}: input_size must be (height, width), got {input_size!r}"
        )
      _check_multiple(size, what, "input_size")
      if file_hw is not None and size != file_hw:
        raise DetectorError(
          f"{what}: input_size {size} differs from the file's fixed "
          f"input size {file_hw} (height, width)"
        )
    _check_multiple(size, what, "the input size")
    return size

  def _forward(self, blob: np.ndarray) -> np.ndarray:
    try:
      self._net.setInput(blob)
      outs = self._net.forward(self._out_names)
    except cv2.error as e:
      raise DetectorError(
        f"person detector {self.path}: OpenCV's dnn module cannot run it on "
        f"a {list(blob.shape)} input ({_cv_message(e)})"
      ) from None
    return np.asarray(outs[0])

  def detect(
    self, frame: np.ndarray, channel_order: str = "bgr"
  ) -> tuple[np.ndarray, np.ndarray]:
    """The people in one frame.

    Args:
      frame: [H, W, 3] uint8.
      channel_order: 'bgr' (this project's frames, OpenCV's) or 'rgb'.

    Returns:
      ([N, 4] float32 x1, y1, x2, y2 boxes in frame pixels, clipped to the
      frame; [N] float32 scores), best score first; N may be 0.
    """
    blob, box = preprocess(frame, self.input_size, self.layout, channel_order)
    out = self._forward(blob)
    boxes, scores = decode(
      out, self.layout, self.input_size, decoded=bool(self.decoded)
    )
    boxes, scores = select_people(
      boxes,
      scores,
      self.person_class,
      self.score_threshold,
      self.nms_threshold,
    )
    h, w = frame.shape[:2]
    boxes = box.to_frame(boxes)
    boxes[:, 0::2] = np.clip(boxes[:, 0::2], 0.0, w)
    boxes[:, 1::2] = np.clip(boxes[:, 1::2], 0.0, h)
    ok = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    return boxes[ok].astype(np.float32), scores[ok]

  def __repr__(self) -> str:
    h, w = self.input_size
    extra = f", decoded={self.decoded}" if self.layout == "yolox" else ""
    return (
      f"PersonDetector({str(self.path)!r}, layout={self.layout!r}{extra}, "
      f"input {h}x{w}, {self.num_classes} classes, "
      f"score>{self.score_threshold}, nms {self.nms_threshold})"
    )


def xyxy_to_xywh(boxes_xyxy: np.ndarray) -> np.ndarray:
  """[N, 4] x1, y1, x2, y2 -> [N, 4] x, y, w, h (the demo's box format)."""
  boxes = np.asarray(boxes_xyxy)
  return np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)
