"""Tiny ONNX "detectors" with a constant output, for tests.

Each model is a real ONNX file that OpenCV's dnn module runs: its input goes
through ReduceMean, times 0, plus a constant of the output's shape, so the
output is a known tensor whatever the frame. :func:`yolox_output` and
:func:`yolov8_output` build that constant from boxes in the network input
(640 x 640 unless told), in each export layout
(:mod:`hybrik_jax.demo.detector`). Used by ``tests/test_detector.py`` and
``tests/test_video_demo.py``; needs the ``onnx`` package.
"""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from hybrik_jax.demo import detector as det

NC = 3  # classes in the test models: 0 person, 1, 2 others


def write_model(path, output, input_dims=(1, 3, 640, 640), opset=13):
  """An ONNX file whose only output is ``output`` for any input."""
  output = np.asarray(output, np.float32)
  nodes = [
    helper.make_node("ReduceMean", ["images"], ["mean"], keepdims=0),
    helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
    helper.make_node("Add", ["nothing", "table"], ["output"]),
  ]
  graph = helper.make_graph(
    nodes,
    "constant_detector",
    [helper.make_tensor_value_info("images", TensorProto.FLOAT, input_dims)],
    [helper.make_tensor_value_info("output", TensorProto.FLOAT, output.shape)],
    [
      numpy_helper.from_array(np.zeros((), np.float32), "zero"),
      numpy_helper.from_array(output, "table"),
    ],
  )
  model = helper.make_model(
    graph, opset_imports=[helper.make_opsetid("", opset)]
  )
  model.ir_version = 8
  onnx.checker.check_model(model)
  onnx.save(model, str(path))
  return path


def cxcywh(box):
  x1, y1, x2, y2 = box
  return (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1


def anchor_index(cx, cy, stride, size=(640, 640)):
  """The YOLOX anchor of the grid cell holding (cx, cy) at ``stride``."""
  offset = 0
  for s in det.STRIDES:
    if s == stride:
      return offset + int(cy // s) * (size[1] // s) + int(cx // s)
    offset += (size[0] // s) * (size[1] // s)
  raise AssertionError(stride)


def yolox_output(dets, decoded=False, size=(640, 640), nc=NC):
  """[1, A, 5 + nc]: YOLOX's raw (or decoded) head output for ``dets``
  (dicts: ``box`` x1, y1, x2, y2 input px, ``cls`` nc scores, ``obj``
  objectness, ``stride`` of the anchor the box sits on)."""
  out = np.zeros((1, det.num_anchors(size), 5 + nc), np.float32)
  for d in dets:
    cx, cy, w, h = cxcywh(d["box"])
    s = d["stride"]
    i = anchor_index(cx, cy, s, size)
    if decoded:
      box = (cx, cy, w, h)
    else:  # offsets from the cell corner, log of the size in strides
      box = (
        cx / s - cx // s,
        cy / s - cy // s,
        math.log(w / s),
        math.log(h / s),
      )
    out[0, i] = (*box, d["obj"], *d["cls"])
  return out


def yolov8_output(dets, size=(640, 640), nc=NC):
  """[1, 4 + nc, A]: the ultralytics export's output for ``dets`` (no
  objectness: the score is the class score, here cls * obj)."""
  out = np.zeros((1, 4 + nc, det.num_anchors(size)), np.float32)
  for k, d in enumerate(dets):
    cls = np.asarray(d["cls"]) * d["obj"]
    out[0, :, 1000 * k + 7] = (*cxcywh(d["box"]), *cls)
  return out
