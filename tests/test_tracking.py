"""Tests of hybrik_jax.demo.tracking (SORT-style tracker) on synthetic scenes.

Scenes are generated here: people are boxes moving linearly across a
1280 x 720 frame (xyxy pixels), with +-1 px detection noise, detections
shuffled within each frame (so a detection's index says nothing about its
identity) and clipped to the frame; a person less than 30% inside the
frame is not detected (as a detector would miss them: a SORT tracker gives
a thin clipped sliver, shrinking faster than the constant-velocity model
predicts, IoU < 0.3 with its track and so a short-lived track of its own). Identity is scored as in the MOT
benchmarks: an id switch is a ground-truth person whose reported track id
differs from the one it had when last reported, or a track id reported for
two people. Every scene below has 0 id switches (printed with -s).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from hybrik_jax.demo import tracking

W, H = 1280, 720


@dataclasses.dataclass
class Person:
  x: float  # box top-left at frame `start`, pixels
  y: float
  vx: float  # pixels / frame
  vy: float
  w: float = 120.0
  h: float = 300.0
  start: int = 0
  end: int = 10**9  # last frame (inclusive)
  missing: tuple[int, ...] = ()  # frames without a detection


def make_scene(people, n_frames, seed=0, noise=1.0):
  """Per frame: [N_t, 4] detections and [N_t] ground-truth person index."""
  rng = np.random.default_rng(seed)
  boxes, gts = [], []
  for t in range(n_frames):
    fb, fg = [], []
    for i, p in enumerate(people):
      if not p.start <= t <= p.end or t in p.missing:
        continue
      x1 = p.x + p.vx * (t - p.start)
      y1 = p.y + p.vy * (t - p.start)
      b = np.array([x1, y1, x1 + p.w, y1 + p.h]) + rng.uniform(-noise, noise, 4)
      full = (b[2] - b[0]) * (b[3] - b[1])
      b = np.clip(b, 0, [W, H, W, H])
      if (b[2] - b[0]) * (b[3] - b[1]) < 0.3 * full:  # mostly out of frame
        continue
      fb.append(b)
      fg.append(i)
    order = rng.permutation(len(fb))
    boxes.append(np.array(fb).reshape(-1, 4)[order])
    gts.append(np.array(fg, np.int64)[order])
  return boxes, gts


def id_switches(ids, gts):
  """MOT-style id switches of per-frame track ids against ground truth."""
  last: dict[int, int] = {}
  owner: dict[int, int] = {}
  switches = 0
  for fid, fgt in zip(ids, gts, strict=True):
    for tid, g in zip(fid.tolist(), fgt.tolist(), strict=True):
      if tid < 0:
        continue
      if g in last and last[g] != tid:
        switches += 1
      if owner.setdefault(tid, g) != g:
        switches += 1
      last[g] = tid
  return switches


def ids_of(ids, gts, person):
  """Sorted distinct track ids reported for one ground-truth person."""
  found = {
    int(t)
    for f, g in zip(ids, gts, strict=True)
    for t in f[g == person]
    if t >= 0
  }
  return sorted(found)


def crossing_scene():
  people = [
    Person(x=150, y=250, vx=10, vy=0),  # left -> right
    Person(x=1000, y=265, vx=-10, vy=0),  # right -> left, crosses person 0
    Person(x=600, y=30, vx=1, vy=1.5, w=100, h=250),  # slow, upper middle
  ]
  return make_scene(people, 80, seed=1)


# ----------------------------------------------------------------------------


def test_crossing_keeps_identities():
  boxes, gts = crossing_scene()
  # The scene really overlaps: persons 0 and 1 at IoU > 0.3 for 5+ frames.
  overlap = 0
  for b, g in zip(boxes, gts, strict=True):
    if 0 in g and 1 in g:
      iou = tracking.iou_matrix(b[g == 0], b[g == 1])[0, 0]
      overlap += iou > 0.3
  assert overlap >= 5
  ids = tracking.track_all(boxes)
  n_sw = id_switches(ids, gts)
  print(f"crossing: {overlap} frames at IoU > 0.3, id switches = {n_sw}")
  assert n_sw == 0
  assert all((f >= 0).all() for f in ids)  # min_hits=1: every box has an id
  per_person = [ids_of(ids, gts, p) for p in range(3)]
  assert sorted(sum(per_person, [])) == [0, 1, 2]  # one id each, 0..2


def test_leaving_and_entering():
  max_age = 5
  people = [
    Person(x=900, y=200, vx=20, vy=0),  # leaves on the right
    Person(x=300, y=350, vx=2, vy=0),  # stays
    Person(x=-100, y=100, vx=15, vy=0, start=40),  # enters on the left
  ]
  boxes, gts = make_scene(people, 70, seed=2)
  last_seen = max(t for t, g in enumerate(gts) if 0 in g)
  first_new = min(t for t, g in enumerate(gts) if 2 in g)
  tracker = tracking.Tracker(max_age=max_age)
  ids, active = [], []
  for b in boxes:
    m = tracker.update(b)
    f = np.full(len(b), -1)
    for tid, d in m:
      f[d] = tid
    ids.append(f)
    active.append(tracker.active_ids())
  n_sw = id_switches(ids, gts)
  print(f"leaving/entering: id switches = {n_sw}")
  assert n_sw == 0
  (id0,) = ids_of(ids, gts, 0)
  (id1,) = ids_of(ids, gts, 1)
  (id2,) = ids_of(ids, gts, 2)
  assert {id0, id1} == {0, 1} and id2 == 2  # new person: next new id
  # The leaver's track survives max_age unmatched frames, then ends.
  for t in range(last_seen, last_seen + max_age + 1):
    assert id0 in active[t], t
  assert id0 not in active[last_seen + max_age + 1]
  assert id2 not in active[first_new - 1] and id2 in active[first_new]


def test_missing_detections_reassociated():
  people = [
    Person(x=100, y=200, vx=12, vy=2, missing=(20, 21)),
    Person(x=1000, y=300, vx=-8, vy=0, missing=(30, 31)),
  ]
  boxes, gts = make_scene(people, 50, seed=3)
  tracker = tracking.Tracker()  # max_age=5 > 2 missing frames
  ids = []
  for t, b in enumerate(boxes):
    m = tracker.update(b)
    f = np.full(len(b), -1)
    for tid, d in m:
      f[d] = tid
    ids.append(f)
    if t in (20, 21, 30, 31):
      assert len(m) == 1 and len(tracker.active_ids()) == 2
  n_sw = id_switches(ids, gts)
  print(f"missing 2 frames: id switches = {n_sw}")
  assert n_sw == 0
  ids0, ids1 = ids_of(ids, gts, 0), ids_of(ids, gts, 1)
  assert len(ids0) == len(ids1) == 1 and {*ids0, *ids1} == {0, 1}


def test_gap_longer_than_max_age_gives_a_new_id():
  # The same person standing still, unseen for 10 frames > max_age = 5.
  still = Person(x=500, y=200, vx=0, vy=0, missing=tuple(range(10, 20)))
  boxes, gts = make_scene([still], 30, seed=4)
  ids = tracking.track_all(boxes, max_age=5)
  assert [int(f[0]) for f in ids[:10]] == [0] * 10
  assert [int(f[0]) for f in ids[20:]] == [1] * 10
  # ... but one gap of 3 frames is bridged.
  still.missing = (10, 11, 12)
  ids = tracking.track_all(make_scene([still], 30, seed=4)[0], max_age=5)
  assert {int(i) for f in ids for i in f} == {0}


def test_empty_frames():
  tracker = tracking.Tracker(max_age=2)
  assert tracker.update(np.zeros((0, 4))) == []
  assert tracker.update([]) == []
  box = np.array([[10.0, 20.0, 110.0, 320.0]])
  assert tracker.update(box) == [(0, 0)]
  for _ in range(2):  # survives max_age empty frames
    assert tracker.update(np.zeros((0, 4))) == []
    assert tracker.active_ids() == [0]
  assert tracker.update(np.zeros((0, 4))) == []
  assert tracker.active_ids() == []
  assert tracker.update(box) == [(1, 0)]  # a new track, a new id
  assert tracker.frame_count == 7


def test_deterministic():
  boxes, _ = crossing_scene()
  a = tracking.track_all(boxes)
  b = tracking.track_all([x.copy() for x in boxes])
  assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_min_hits_and_ids_in_creation_order():
  people = [
    Person(x=100, y=100, vx=5, vy=0),
    Person(x=700, y=300, vx=-5, vy=0, start=10),
    Person(x=400, y=400, vx=0, vy=-3, start=10),
  ]
  boxes, gts = make_scene(people, 20, seed=5, noise=0.0)
  ids = tracking.track_all(boxes, min_hits=3)
  # Warm-up (SORT): the first min_hits frames report at once.
  assert all((f == 0).all() for f in ids[:3])
  # Tracks born at frame 10 are reported from their 3rd detection (counting
  # the creating one); ids are given when first reported, in detection order.
  for t in (10, 11):
    assert sorted(ids[t].tolist()) == [-1, -1, 0]
  assert sorted(ids[12].tolist()) == [0, 1, 2]
  order = [int(g) for g in gts[12] if g != 0]  # detection order at frame 12
  assert ids_of(ids, gts, order[0]) == [1]
  assert ids_of(ids, gts, order[1]) == [2]


def test_scores_and_min_score():
  boxes = np.array([[0, 0, 100, 200], [500, 0, 600, 200.0]])
  tracker = tracking.Tracker(min_score=0.5)
  m = tracker.update(boxes, scores=np.array([0.9, 0.2]))
  assert m == [tracking.Match(0, 0)]
  assert m[0].track_id == 0 and m[0].detection_index == 0


def test_iou_and_box_helpers():
  a = np.array([[0, 0, 10, 10], [0, 0, 10, 10.0]])
  b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30.0]])
  np.testing.assert_allclose(
    tracking.iou_matrix(a, b), [[1, 1 / 3, 0], [1, 1 / 3, 0]]
  )
  assert tracking.iou_matrix(np.zeros((0, 4)), b).shape == (0, 3)
  np.testing.assert_array_equal(
    tracking.xywh_to_xyxy([[10, 20, 30, 40]]), [[10, 20, 40, 60]]
  )
  # Greedy would take (0, 0) then leave det 1 unmatched; Hungarian pairs all.
  dets = np.array([[0, 0, 10, 10], [4, 0, 14, 10.0]])
  trks = np.array([[2, 0, 12, 10], [7, 0, 17, 10.0]])
  assert tracking.associate(dets, trks, 0.3) == [(0, 0), (1, 1)]


@pytest.mark.parametrize(
  "boxes,scores,match",
  [
    (np.zeros((2, 3)), None, r"frame 0: boxes must be \[N, 4\] xyxy"),
    ([[0, 0, np.nan, 5]], None, "frame 0: boxes contain non-finite"),
    ([[10, 0, 5, 5]], None, "frame 0: box 0 .* is empty"),
    ([[0, 0, 5, 5]], [0.1, 0.2], r"scores must be \[1\]"),
    ([[0, 0, 5, 5]], [np.inf], "scores contain non-finite"),
  ],
)
def test_bad_input(boxes, scores, match):
  with pytest.raises(ValueError, match=match):
    tracking.Tracker().update(boxes, scores)


@pytest.mark.parametrize(
  "kwargs,match",
  [
    ({"iou_threshold": 0.0}, "iou_threshold must be in"),
    ({"max_age": -1}, "max_age must be an integer >= 0"),
    ({"min_hits": 0}, "min_hits must be an integer >= 1"),
  ],
)
def test_bad_parameters(kwargs, match):
  with pytest.raises(ValueError, match=match):
    tracking.Tracker(**kwargs)
