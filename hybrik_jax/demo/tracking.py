"""SORT-style multi-person tracking for the video demo.

A re-implementation of the algorithm of SORT (Bewley et al., "Simple Online
and Realtime Tracking", ICIP 2016; abewley/sort): every track is a
constant-velocity Kalman filter on its box, detections are associated with
the tracks' predicted boxes by IoU with the Hungarian algorithm
(``scipy.optimize.linear_sum_assignment``), unmatched detections start new
tracks and tracks unmatched for more than ``max_age`` frames end.

Conventions:

* Boxes are ``x1, y1, x2, y2`` in pixels (top-left and bottom-right
  corners, continuous coordinates), [N, 4]; ``x2 > x1`` and ``y2 > y1``.
  (The demo's ``--bbox`` boxes are ``x, y, w, h``: convert with
  :func:`xywh_to_xyxy`.) The tracker never needs the frame size.
* Kalman state, as in SORT: ``[cx, cy, s, r, vx, vy, vs]`` -- box centre
  (px), area ``s = w * h`` (px^2), aspect ratio ``r = w / h`` (unitless,
  assumed constant: no velocity), and the velocities of ``cx, cy, s`` per
  frame. The measurement is ``[cx, cy, s, r]``. The noise covariances are
  SORT's (:data:`KALMAN_NOISE`), in those pixel units.
* Track ids are integers 0, 1, 2, ... of one :class:`Tracker`, in the order
  in which tracks are first reported (with ``min_hits=1``, the default, that
  is the order of creation; within a frame, new tracks are created in
  detection order). An id is never reused.

Per frame (:meth:`Tracker.update`):

1. every track predicts its box (``x <- F x``; as in SORT, a predicted
   area velocity that would make the area non-positive is zeroed first);
2. IoU matrix between detections and predicted boxes; the Hungarian
   algorithm maximises the summed IoU over the pairs with IoU >=
   ``iou_threshold`` (pairs below the threshold count as 0 and are never
   matched). SORT runs the Hungarian algorithm on the raw IoU and drops
   below-threshold pairs afterwards; masking first is a small, documented
   difference that can only add valid matches;
3. matched tracks take their detection as a Kalman measurement; unmatched
   detections start tracks (state = the box, zero velocity);
4. a track is *reported* -- its detection gets the track's id -- when it was
   matched (or created) this frame and has ``hit_streak >= min_hits``
   consecutive detections, counting the one that created it (SORT counts
   from 0 at creation, so its ``min_hits=3`` waits for a 4th detection), or
   while the tracker has seen at most ``min_hits`` frames (SORT's warm-up
   rule);
5. tracks unmatched for more than ``max_age`` consecutive frames are
   deleted: a person missing for up to ``max_age`` frames keeps the id when
   re-detected near the predicted box, one gone longer comes back with a new
   id.

Known limits (SORT's): association is by box overlap only (no appearance),
so two people who overlap *and* move alike can swap; a person leaving the
frame whose clipped box shrinks faster than the constant-velocity model
predicts may lose the match (IoU < ``iou_threshold``) and start a short
track of its own.

Defaults: ``iou_threshold=0.3`` (SORT's), ``max_age=5`` (SORT's 1 is meant
for 30+ fps detection on every frame; 5 bridges short detector dropouts and
occlusions of a person crossing another), ``min_hits=1`` (SORT uses 3 to
suppress false positives in MOT benchmarks; the demo wants an id for every
person it reconstructs, from the first frame). Scores only filter
(``min_score``) -- SORT ignores them too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from scipy.optimize import linear_sum_assignment

from hybrik_jax import errors

DEFAULT_IOU_THRESHOLD = 0.3
DEFAULT_MAX_AGE = 5
DEFAULT_MIN_HITS = 1

# SORT's noise model (abewley/sort KalmanBoxTracker), state/measurement units
# as in the module docstring: measurement noise R on [cx, cy, s, r], initial
# state covariance P0, process noise Q on the state.
KALMAN_NOISE = {
  "R": (1.0, 1.0, 10.0, 10.0),
  "P0": (10.0, 10.0, 10.0, 10.0, 1e4, 1e4, 1e4),
  "Q": (1.0, 1.0, 1.0, 1.0, 1e-2, 1e-2, 1e-4),
}

# Constant velocity: cx += vx, cy += vy, s += vs (r constant).
_F = np.eye(7)
_F[0, 4] = _F[1, 5] = _F[2, 6] = 1.0
_H = np.eye(4, 7)  # measures [cx, cy, s, r]
_R = np.diag(KALMAN_NOISE["R"])
_P0 = np.diag(KALMAN_NOISE["P0"])
_Q = np.diag(KALMAN_NOISE["Q"])


class TrackingError(errors.InputError, ValueError):
  """Bad input to the tracker (names the argument, frame and problem)."""


class Match(NamedTuple):
  """A reported detection: ``track_id`` for ``boxes[detection_index]``."""

  track_id: int
  detection_index: int


@dataclasses.dataclass
class Track:
  """One track's Kalman filter and bookkeeping (see the module docstring).

  ``track_id`` is -1 until the track is first reported.
  """

  x: np.ndarray  # [7] state [cx, cy, s, r, vx, vy, vs]
  P: np.ndarray  # [7, 7] state covariance
  track_id: int = -1
  hits: int = 1  # matched frames in total (creation counts)
  hit_streak: int = 1  # consecutive matched frames up to the latest
  time_since_update: int = 0  # frames since the last match
  age: int = 0  # frames since creation

  @property
  def box(self) -> np.ndarray:
    """[4] current (predicted or updated) box, xyxy pixels."""
    return _z_to_xyxy(self.x[None, :4])[0]


def xywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
  """[..., 4] ``x, y, w, h`` (top-left + size) -> ``x1, y1, x2, y2``."""
  b = np.asarray(boxes, np.float64)
  return np.concatenate([b[..., :2], b[..., :2] + b[..., 2:]], axis=-1)


def _xyxy_to_z(boxes: np.ndarray) -> np.ndarray:
  """[N, 4] xyxy -> [N, 4] measurements ``cx, cy, s, r``."""
  w = boxes[:, 2] - boxes[:, 0]
  h = boxes[:, 3] - boxes[:, 1]
  cx = boxes[:, 0] + w / 2
  cy = boxes[:, 1] + h / 2
  return np.stack([cx, cy, w * h, w / h], axis=1)


def _z_to_xyxy(z: np.ndarray) -> np.ndarray:
  """[N, >=4] ``cx, cy, s, r`` -> [N, 4] xyxy (NaN where ``s * r < 0``)."""
  with np.errstate(invalid="ignore"):
    w = np.sqrt(z[:, 2] * z[:, 3])
    h = z[:, 2] / w
  return np.stack(
    [z[:, 0] - w / 2, z[:, 1] - h / 2, z[:, 0] + w / 2, z[:, 1] + h / 2],
    axis=1,
  )


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """[N, M] intersection over union of xyxy boxes ``a`` [N, 4], ``b`` [M, 4]."""
  a = np.asarray(a, np.float64)[:, None, :]  # [N, 1, 4]
  b = np.asarray(b, np.float64)[None, :, :]  # [1, M, 4]
  iw = np.clip(
    np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None
  )
  ih = np.clip(
    np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None
  )
  inter = iw * ih  # [N, M]
  area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
  area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
  union = area_a + area_b - inter
  with np.errstate(invalid="ignore", divide="ignore"):
    iou = inter / union
  return np.where(union > 0, iou, 0.0)


def associate(
  det_boxes: np.ndarray, track_boxes: np.ndarray, iou_threshold: float
) -> list[tuple[int, int]]:
  """Hungarian matching of detections to tracks on IoU.

  Maximises the summed IoU over pairs with ``IoU >= iou_threshold``; returns
  the matched ``(detection_index, track_index)`` pairs sorted by detection.
  """
  if len(det_boxes) == 0 or len(track_boxes) == 0:
    return []
  iou = iou_matrix(det_boxes, track_boxes)  # [N, M]
  gain = np.where(iou >= iou_threshold, iou, 0.0)
  rows, cols = linear_sum_assignment(gain, maximize=True)
  return [
    (int(r), int(c))
    for r, c in zip(rows, cols, strict=True)
    if iou[r, c] >= iou_threshold and iou[r, c] > 0
  ]


class Tracker:
  """SORT tracker over a stream of frames (see the module docstring).

  Args:
    iou_threshold: minimum IoU between a detection and a track's predicted
      box for them to be matched, in (0, 1].
    max_age: frames a track survives without a match (>= 0).
    min_hits: consecutive matched frames before a track is reported (>= 1).
    min_score: detections with a score below this are ignored (never
      matched, never start tracks, never reported); None keeps all.
  """

  def __init__(
    self,
    iou_threshold: float = DEFAULT_IOU_THRESHOLD,
    max_age: int = DEFAULT_MAX_AGE,
    min_hits: int = DEFAULT_MIN_HITS,
    min_score: float | None = None,
  ):
    if not 0.0 < float(iou_threshold) <= 1.0:
      raise TrackingError(
        f"iou_threshold must be in (0, 1], got {iou_threshold!r}"
      )
    if int(max_age) != max_age or max_age < 0:
      raise TrackingError(f"max_age must be an integer >= 0, got {max_age!r}")
    if int(min_hits) != min_hits or min_hits < 1:
      raise TrackingError(f"min_hits must be an integer >= 1, got {min_hits!r}")
    self.iou_threshold = float(iou_threshold)
    self.max_age = int(max_age)
    self.min_hits = int(min_hits)
    self.min_score = None if min_score is None else float(min_score)
    self.tracks: list[Track] = []  # alive tracks, in creation order
    self.frame_count = 0
    self._next_id = 0

  def _check(self, boxes, scores) -> tuple[np.ndarray, np.ndarray]:
    frame = f"frame {self.frame_count}"
    b = np.asarray(boxes, np.float64)
    if b.size == 0:
      b = b.reshape(0, 4)
    if b.ndim != 2 or b.shape[1] != 4:
      raise TrackingError(
        f"{frame}: boxes must be [N, 4] xyxy, got shape {np.shape(boxes)}"
      )
    if not np.all(np.isfinite(b)):
      raise TrackingError(f"{frame}: boxes contain non-finite values")
    bad = np.flatnonzero((b[:, 2] <= b[:, 0]) | (b[:, 3] <= b[:, 1]))
    if bad.size:
      raise TrackingError(
        f"{frame}: box {int(bad[0])} {b[bad[0]].tolist()} is empty "
        "(need x2 > x1 and y2 > y1; boxes are xyxy, not xywh)"
      )
    if scores is None:
      s = np.ones(len(b))
    else:
      s = np.asarray(scores, np.float64).reshape(-1)
      if s.shape != (len(b),):
        raise TrackingError(
          f"{frame}: scores must be [{len(b)}] (one per box), got shape "
          f"{np.shape(scores)}"
        )
      if not np.all(np.isfinite(s)):
        raise TrackingError(f"{frame}: scores contain non-finite values")
    return b, s

  def _predict(self) -> None:
    for t in self.tracks:
      if t.x[2] + t.x[6] <= 0:  # keep the predicted area positive
        t.x[6] = 0.0
      t.x = _F @ t.x
      t.P = _F @ t.P @ _F.T + _Q
      t.age += 1
      if t.time_since_update > 0:
        t.hit_streak = 0
      t.time_since_update += 1
    # A degenerate state (NaN box) cannot be matched: drop it, as SORT does.
    self.tracks = [t for t in self.tracks if np.all(np.isfinite(t.box))]

  @staticmethod
  def _correct(t: Track, z: np.ndarray) -> None:
    y = z - _H @ t.x  # [4] innovation
    S = _H @ t.P @ _H.T + _R  # [4, 4]
    K = np.linalg.solve(S, _H @ t.P).T  # [7, 4] = P H^T S^-1 (S, P symmetric)
    t.x = t.x + K @ y
    I_KH = np.eye(7) - K @ _H
    t.P = I_KH @ t.P @ I_KH.T + K @ _R @ K.T  # Joseph form
    t.time_since_update = 0
    t.hits += 1
    t.hit_streak += 1

  def update(self, boxes: np.ndarray, scores: np.ndarray | None = None):
    """Advances one frame with its detections.

    Args:
      boxes: [N, 4] detections, xyxy pixels (N may be 0: an empty frame,
        every track ages).
      scores: optional [N] detection scores (used only with ``min_score``).

    Returns:
      list of :class:`Match` ``(track_id, detection_index)``, one per
      reported detection, sorted by detection index. A detection not listed
      was filtered by ``min_score`` or belongs to a track that is not yet
      reported (``min_hits > 1``).

    Raises:
      TrackingError (a ValueError): boxes not [N, 4], non-finite or empty
        (x2 <= x1 or y2 <= y1), or scores not [N] finite.
    """
    boxes, scores = self._check(boxes, scores)
    self.frame_count += 1
    self._predict()
    keep = np.arange(len(boxes))
    if self.min_score is not None:
      keep = np.flatnonzero(scores >= self.min_score)
    det = boxes[keep]  # [N', 4]
    track_boxes = np.array([t.box for t in self.tracks]).reshape(-1, 4)
    pairs = associate(det, track_boxes, self.iou_threshold)
    z = _xyxy_to_z(det)  # [N', 4]
    owner: dict[int, Track] = {}
    for d, ti in pairs:
      self._correct(self.tracks[ti], z[d])
      owner[d] = self.tracks[ti]
    for d in range(len(det)):
      if d not in owner:
        x = np.concatenate([z[d], np.zeros(3)])
        owner[d] = Track(x=x, P=_P0.copy())
        self.tracks.append(owner[d])
    matches = []
    for d in range(len(det)):
      t = owner[d]
      if t.hit_streak >= self.min_hits or self.frame_count <= self.min_hits:
        if t.track_id < 0:
          t.track_id = self._next_id
          self._next_id += 1
        matches.append(Match(t.track_id, int(keep[d])))
    self.tracks = [
      t for t in self.tracks if t.time_since_update <= self.max_age
    ]
    return matches

  def active_ids(self) -> list[int]:
    """Ids of the alive, reported tracks (matched or still within max_age)."""
    return [t.track_id for t in self.tracks if t.track_id >= 0]


def track_all(
  frames: Sequence[np.ndarray],
  scores: Sequence[np.ndarray] | None = None,
  **tracker_kwargs,
) -> list[np.ndarray]:
  """Tracks a whole video's detections.

  Args:
    frames: per frame, [N_t, 4] boxes, xyxy pixels.
    scores: optional, per frame, [N_t] scores.
    **tracker_kwargs: :class:`Tracker` arguments.

  Returns:
    per frame, [N_t] int64 track ids (-1 for detections not reported).
  """
  tracker = Tracker(**tracker_kwargs)
  if scores is not None and len(scores) != len(frames):
    raise TrackingError(
      f"scores has {len(scores)} frames, boxes has {len(frames)}"
    )
  out = []
  for i, boxes in enumerate(frames):
    matches = tracker.update(boxes, None if scores is None else scores[i])
    ids = np.full(len(np.asarray(boxes).reshape(-1, 4)), -1, np.int64)
    for m in matches:
      ids[m.detection_index] = m.track_id
    out.append(ids)
  return out
