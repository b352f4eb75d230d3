"""The original HybrIK authors' test-time crop (``SimpleTransform3DSMPLCam``).

Their ``test_transform`` (demo) and the eval branch of their ``__call__``
(3DPW / H36M test sets) crop the same way: the xyxy box -> float32 centre and
square scale (aspect 1, times ``scale_mult``: 1.25 by default, 1 for their
H36M test set), the same affine as mmhuman3d's (no rotation), a bilinear warp
of the RGB image to N x N, then ``(x / 255 - mean) / std`` per RGB channel
with their constants (:data:`PIXEL_MEAN` is ImageNet's mean in BGR order, as
their code has it). The enlarged box (``_center_scale_to_box``) goes to the
network with the image centre ``(W / 2, H / 2)``.
"""

from __future__ import annotations

import cv2
import numpy as np

from hybrik_jax.data import transforms

AUTHORS_SCALE_MULT = 1.25
PIXEL_MEAN = np.array([0.406, 0.457, 0.480], np.float32)
PIXEL_STD = np.array([0.225, 0.224, 0.229], np.float32)


def authors_center_scale(
  bbox_xywh: np.ndarray, scale_mult: float = AUTHORS_SCALE_MULT
) -> tuple[np.ndarray, np.ndarray]:
  """The authors' ``_box_to_center_scale`` (aspect 1, x ``scale_mult``:
  1.25 in their demo and 3DPW test set, 1 in their H36M test set), float32
  as theirs: centre and scale [2] in pixels."""
  x, y, w, h = (float(v) for v in np.asarray(bbox_xywh, np.float64))
  center = np.zeros(2, np.float32)
  center[0] = x + w * 0.5
  center[1] = y + h * 0.5
  if w > h:
    h = w
  elif w < h:
    w = h
  scale = np.array([w, h], np.float32) * scale_mult
  return center, scale


def authors_test_crop(
  image_bgr: np.ndarray,
  bbox_xywh: np.ndarray,
  image_size: int,
  scale_mult: float = AUTHORS_SCALE_MULT,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """One person's network input, the authors' way (``scale_mult``: see
  :func:`authors_center_scale`).

  Returns:
    (crop [N, N, 3] float32 normalised RGB, box_xyxy [4] float32: the
    enlarged box given to the network, trans_inv [2, 3]: crop -> image).
  """
  center, scale = authors_center_scale(bbox_xywh, scale_mult)
  size = (int(image_size), int(image_size))
  trans = transforms.get_affine_transform(center, scale, 0.0, size)
  trans_inv = transforms.get_affine_transform(
    center, scale, 0.0, size, inv=True
  )
  rgb = np.ascontiguousarray(image_bgr[..., ::-1])
  crop = cv2.warpAffine(rgb, trans, size, flags=cv2.INTER_LINEAR)
  x = crop.astype(np.float32) / np.float32(255.0)
  x = (x - PIXEL_MEAN) / PIXEL_STD  # [N, N, 3]
  w, h = float(scale[0]), float(scale[1])
  x1, y1 = float(center[0]) - w * 0.5, float(center[1]) - h * 0.5
  box = np.array([x1, y1, x1 + w, y1 + h], np.float32)
  return x.astype(np.float32), box, trans_inv.astype(np.float32)
