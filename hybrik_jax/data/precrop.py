"""Pre-cropping of person regions so that training reads small JPEGs.

A record stores a crop of the full frame around the annotated person plus the
crop offset and the original frame size. All annotations stay in ORIGINAL
full-frame pixel coordinates. At train time the crop is pasted at its offset
into a zero "virtual full frame" of the original size, so the unchanged
mmhuman3d-style transforms (DPG clipping to the frame, occlusion bounds, flip
about the frame width W, the crop affine and its inverse `trans_inv`, which the
model combines with the camera intrinsics) see exactly the frame coordinates
they would see on the original image.

The crop is large enough for every augmentation of the HybrIK train pipeline
(mmhuman3d `resnet34_hybrik_mixed`), derived analytically:

* No DPG, or DPG "patch" branch: the box centre lies inside the annotated box
  (x1, y1, x2, y2) and the square side is at most `1.25 * max(w, h) + 1`
  (1.25 = `bbox_scale_factor`; the DPG patch drops the 1.25 but is never larger
  than the box plus one pixel).
* DPG "jitter" branch: each edge moves by `N(mean, std) * w` (or `* h`) and
  is clipped to the frame; the square has no 1.25 margin. The normal is
  unbounded, so the crop covers edge moves within `mean +- jitter_sigmas *
  std` (default 4 sigma; a move beyond on a given edge has probability
  6.3e-5). The footprint's left/top extent `centre - kappa * side` is concave
  and its right/bottom extent convex in the four edges, so their extremes over
  that box of edge values are found exactly by enumerating its vertices.
* GetRandomScaleRotation multiplies the side by at most `1 + scale_factor`
  (1.25) and rotates by at most 60 degrees: the rotated square of side s has an
  axis-aligned half-extent of at most `s / 2 * (|cos t| + |sin t|) <= s / sqrt(2)`.
* `pad` pixels (default 2) cover bilinear interpolation and rounding.

The crop is clipped to the frame; pixels outside the frame are zero in both the
original warp (cv2 constant border) and the virtual frame, so clipping is exact.
`footprint_inside` checks, for a given `trans_inv`, that a warp only samples
frame pixels that are in the crop (the rare > 4-sigma DPG draws are the only
way to violate it).
"""

import dataclasses
import math

import numpy as np


@dataclasses.dataclass(frozen=True)
class PrecropConfig:
  """Augmentation bounds that the crop margin must cover.

  Defaults are the values of mmhuman3d `configs/hybrik/resnet34_hybrik_mixed.py`
  and `RandomDPG` (`hybrik_transforms.py`).

  Attributes:
    bbox_scale_factor: margin of the un-jittered box (box2cs), 1.25.
    scale_factor: GetRandomScaleRotation scale factor; scale <= 1 + this.
    max_rotation_deg: GetRandomScaleRotation clip, degrees (60).
    dpg_edge_mean: RandomDPG edge jitter means (x1, y1, x2, y2), in units of
      the box width (x) or height (y).
    dpg_edge_std: RandomDPG edge jitter standard deviations, same units.
    jitter_sigmas: outward DPG jitter covered, in standard deviations.
    pad: extra pixels on every side (bilinear support + rounding).
    augment: False for test-only splits: the crop then only covers the
      1.25-scaled box without rotation (plus `pad`).
  """

  bbox_scale_factor: float = 1.25
  scale_factor: float = 0.25
  max_rotation_deg: float = 60.0
  dpg_edge_mean: tuple[float, float, float, float] = (
    -0.0142,
    0.0043,
    0.0154,
    -0.0013,
  )
  dpg_edge_std: tuple[float, float, float, float] = (
    0.1158,
    0.068,
    0.1337,
    0.0711,
  )
  jitter_sigmas: float = 4.0
  pad: int = 2
  augment: bool = True


# The crop margins used when none are given (a frozen dataclass, safe to share).
DEFAULT_CONFIG = PrecropConfig()


def _rotation_extent(max_rotation_deg: float) -> float:
  """Max over |t| <= max_rotation of (|cos t| + |sin t|)."""
  t = math.radians(min(abs(max_rotation_deg), 90.0))
  if t >= math.pi / 4:
    return math.sqrt(2.0)
  return math.cos(t) + math.sin(t)


def _edge_candidates(e1, e2, size, m1, m2, frame_size):
  """Vertex values of one axis' jittered, clipped (E1, E2) edge pair."""
  clip1 = lambda v: max(1.0, min(v, frame_size - 3.0))  # noqa: E731
  raw2 = [e2 + m * size for m in m2]
  starts = {clip1(e1 + m * size) for m in m1}
  lo1, hi1 = min(starts), max(starts)
  for v in raw2:  # kink of max(E1 + 2, E2) inside [lo1, hi1]
    if lo1 < v - 2.0 < hi1:
      starts.add(v - 2.0)
  out = []
  for s1 in starts:
    for v in raw2:
      out.append((s1, min(max(s1 + 2.0, v), frame_size - 3.0)))
  return out


def _jitter_vertices(box, size, frame_wh, config):
  """(centre x, centre y, side) at the vertices of the DPG jitter range."""
  k = config.jitter_sigmas
  mean, std = config.dpg_edge_mean, config.dpg_edge_std
  rng = [(mean[i] - k * std[i], mean[i] + k * std[i]) for i in range(4)]
  xs = _edge_candidates(box[0], box[2], size[0], rng[0], rng[2], frame_wh[0])
  ys = _edge_candidates(box[1], box[3], size[1], rng[1], rng[3], frame_wh[1])
  for ex1, ex2 in xs:
    for ey1, ey2 in ys:
      yield (0.5 * (ex1 + ex2), 0.5 * (ey1 + ey2), max(ex2 - ex1, ey2 - ey1))


def crop_box(bbox_xyxy, frame_hw, config: PrecropConfig = PrecropConfig()):
  """Integer crop window, in full-frame pixels, safe for all augmentations.

  Args:
    bbox_xyxy: annotated person box [x1, y1, x2, y2] in frame pixels (the
      HumanData `bbox_xywh[:4]`, which holds clipped xyxy).
    frame_hw: (H, W) of the original frame.
    config: augmentation bounds.

  Returns:
    (x0, y0, x1, y1) ints with 0 <= x0 < x1 <= W, 0 <= y0 < y1 <= H; the crop
    is image[y0:y1, x0:x1].
  """
  h_frame, w_frame = int(frame_hw[0]), int(frame_hw[1])
  x1, y1, x2, y2 = (float(v) for v in np.asarray(bbox_xyxy, np.float64)[:4])
  w, h = max(x2 - x1, 0.0), max(y2 - y1, 0.0)
  if config.augment:
    max_scale = 1.0 + config.scale_factor
    # Half-extent of the rotated square = kappa * side, for every rotation.
    kappa = 0.5 * max_scale * _rotation_extent(config.max_rotation_deg)
    # No DPG (1.25 box) or DPG patch (inside the box, side <= max(w, h) + 1):
    # centre inside the box, side <= 1.25 * max(w, h) + 1.
    r_a = kappa * (config.bbox_scale_factor * max(w, h) + 1.0)
    lo_x, hi_x, lo_y, hi_y = x1 - r_a, x2 + r_a, y1 - r_a, y2 + r_a
    # DPG jitter: extent = centre -/+ kappa * max(X2 - X1, Y2 - Y1) is concave
    # (left/top) or convex (right/bottom) in the edges, so its extremes over
    # the box of edge values (each within mean +- k sigma, then clipped as
    # RandomDPG clips) lie at vertices: enumerate them.
    for cx, cy, side in _jitter_vertices(
      (x1, y1, x2, y2), (w, h), (w_frame, h_frame), config
    ):
      r = kappa * side
      lo_x, hi_x = min(lo_x, cx - r), max(hi_x, cx + r)
      lo_y, hi_y = min(lo_y, cy - r), max(hi_y, cy + r)
  else:
    cx, cy = x1 + 0.5 * w, y1 + 0.5 * h
    r = 0.5 * config.bbox_scale_factor * max(w, h)
    lo_x, hi_x, lo_y, hi_y = cx - r, cx + r, cy - r, cy + r
  pad = config.pad
  x0 = int(np.clip(math.floor(lo_x) - pad, 0, max(w_frame - 1, 0)))
  y0 = int(np.clip(math.floor(lo_y) - pad, 0, max(h_frame - 1, 0)))
  xe = int(np.clip(math.ceil(hi_x) + pad + 1, x0 + 1, w_frame))
  ye = int(np.clip(math.ceil(hi_y) + pad + 1, y0 + 1, h_frame))
  return x0, y0, xe, ye


def crop_image(image: np.ndarray, box) -> np.ndarray:
  """image[y0:y1, x0:x1] (a copy) for box = (x0, y0, x1, y1)."""
  x0, y0, x1, y1 = box
  return np.ascontiguousarray(image[y0:y1, x0:x1])


def virtual_frame(crop: np.ndarray, offset_xy, frame_hw) -> np.ndarray:
  """Pastes `crop` at `offset_xy` into a zero frame of size `frame_hw`.

  Args:
    crop: [h, w, C] uint8 crop.
    offset_xy: (x0, y0) top-left of the crop in the frame, pixels.
    frame_hw: (H, W) of the original frame.

  Returns:
    [H, W, C] uint8 frame, zero outside the crop (`crop` itself if it is the
    whole frame). np.zeros pages are mapped
    lazily, so only the touched part of a large frame costs memory traffic.
  """
  h_frame, w_frame = int(frame_hw[0]), int(frame_hw[1])
  x0, y0 = int(offset_xy[0]), int(offset_xy[1])
  ch, cw = crop.shape[:2]
  if x0 < 0 or y0 < 0 or x0 + cw > w_frame or y0 + ch > h_frame:
    raise ValueError(
      f"crop of shape {crop.shape} at offset {(x0, y0)} does not fit in a "
      f"frame of (H, W) = {(h_frame, w_frame)}"
    )
  if (ch, cw) == (h_frame, w_frame):
    return crop  # the record holds the whole frame
  frame = np.zeros((h_frame, w_frame) + crop.shape[2:], dtype=crop.dtype)
  frame[y0 : y0 + ch, x0 : x0 + cw] = crop
  return frame


def footprint_inside(
  trans_inv,
  box,
  frame_hw,
  flipped: bool = False,
  out_size: int = 256,
  pad: float = 1.0,
) -> bool:
  """Whether a crop warp reads only frame pixels that the crop holds.

  Args:
    trans_inv: [2, 3] affine from output pixels to (possibly flipped) frame
      pixels, as produced by the transforms.
    box: crop window (x0, y0, x1, y1) in the unflipped frame.
    frame_hw: (H, W) of the original frame.
    flipped: whether the sample was mirrored (trans_inv then refers to the
      mirrored frame, x' = W - 1 - x).
    out_size: output side in pixels (256).
    pad: bilinear support, pixels.

  Returns:
    True if the warp's source footprint, intersected with the frame, lies in
    the crop (so the virtual frame reproduces the original warp exactly).
  """
  h_frame, w_frame = frame_hw
  corners = np.array(
    [[0, 0, 1], [out_size, 0, 1], [0, out_size, 1], [out_size, out_size, 1]],
    np.float64,
  )
  pts = corners @ np.asarray(trans_inv, np.float64).T  # [4, 2]
  if flipped:
    pts[:, 0] = w_frame - 1 - pts[:, 0]
  lo = np.maximum(pts.min(0) - pad, 0.0)
  hi = np.minimum(pts.max(0) + pad, [w_frame - 1, h_frame - 1])
  if np.any(hi < lo):  # footprint entirely outside the frame
    return True
  x0, y0, x1, y1 = box
  return bool(
    lo[0] >= x0 and lo[1] >= y0 and hi[0] <= x1 - 1 and hi[1] <= y1 - 1
  )
