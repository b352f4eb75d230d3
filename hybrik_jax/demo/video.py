"""Videos in the demo: people per frame, tracks, smoothing, exports.

:func:`run_video` is the video path of :func:`hybrik_jax.demo.run.run`:

1. Frames are decoded in a background thread
   (:class:`~hybrik_jax.demo.inputs.FrameReader`, a bounded queue) and taken
   in chunks of ``chunk_frames`` frames.
2. Per frame, ``people_fn`` gives the people's boxes: the person detector
   (:class:`~hybrik_jax.demo.detector.PersonDetector`), the multi-person
   ``--bbox-file`` entry, or -- single-person mode -- the one ``--bbox`` /
   ``--bbox-file`` box / whole frame.
3. In multi-person mode the SORT tracker
   (:class:`~hybrik_jax.demo.tracking.Tracker`, default settings: IoU 0.3,
   max age 5 frames, reported from the first detection) gives each box a
   track id, stable over the video; in single-person mode the one person is
   track 0.
4. All the people of a chunk go through one
   :class:`~hybrik_jax.demo.predictor.Predictor` call (batches of
   ``--batch-size`` crops, one jitted program).
5. Per track, with ``--smooth KIND`` (:mod:`hybrik_jax.demo.smoothing`,
   mmhuman3d's filters with their defaults; ``gaus1d`` with a plain
   per-trajectory median, ``mmhuman3d_median=False``, since mmhuman3d's 2-D
   median mixes neighbouring joints and pulls the ends towards 0):
   ``pose`` (rotation matrices, re-orthonormalised:
   :func:`~hybrik_jax.demo.smoothing.smooth_rotations`), ``vertices``,
   ``pelvis_cam`` and ``xyz_24`` are smoothed over the track's frames (a
   track's missing frames are skipped, not interpolated); ``xyz_17`` is
   recomputed from the smoothed vertices. ``betas``, ``phis``, ``uvd`` /
   ``uv`` and the placement inputs stay as predicted. Units as in the npz:
   metres, so ``oneeuro`` (whose cutoff grows with the speed in input units
   per frame) smooths hard, like mmhuman3d's demo, which applies it to
   metres too.
6. Outputs (``<name>`` = the video's stem): ``<name>_overlay.mp4`` (every
   person, each in its track colour with a labelled box | a side view of
   everyone) and per track ``<name>_track<id>.npz`` (multi-person mode) or
   ``<name>.npz`` (single person): :func:`~hybrik_jax.demo.outputs.result_arrays`
   over the frames where the track was reported, plus ``frames`` [T] int64
   (frame indices), ``scores`` [T] float32 (detection scores; 1 for given
   boxes), ``track_id`` (int64) and ``fps``. ``--save-bvh`` adds
   ``<...>.bvh`` (:func:`~hybrik_jax.demo.bvh.export_track_bvh`: the
   track's median shape, ``--bvh-order`` Euler channels, Y-up, metres,
   frame time 1 / the video's fps; pose matrices are projected onto SO(3)
   first, which only matters for raw -- unsmoothed -- output of a barely
   trained network whose IK can return a reflected pelvis rotation),
   ``--save-pk`` ``<...>.pk`` (:mod:`hybrik_jax.demo.pk`, the authors'
   ``res.pk`` layout, ``img_path`` = ``frame_<index>``).

Without ``--smooth`` the overlay is drawn while predicting (one pass); with
it, the video is decoded a second time to draw the smoothed meshes. Progress
bars (tqdm) count frames (frames/s); :func:`run_video` also returns the time
spent per stage.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np

from hybrik_jax.demo import bvh as bvh_export
from hybrik_jax.demo import pk as pk_export
from hybrik_jax.demo import smoothing
from hybrik_jax.demo.camera import Camera, default_camera
from hybrik_jax.demo.inputs import (
  DEFAULT_QUEUE_FRAMES,
  DemoError,
  FrameReader,
)
from hybrik_jax.demo.outputs import (
  draw_labels,
  person_face_colors,
  render_camera,
  render_overlay,
  result_arrays,
  track_output_paths,
)
from hybrik_jax.demo.predictor import BatchedPredictor
from hybrik_jax.demo.tracking import Tracker, xywh_to_xyxy

log = logging.getLogger(__name__)

SMOOTH_KINDS = smoothing.KINDS  # 'oneeuro', 'gaus1d', 'savgol'
# Per-kind overrides of smoothing.DEFAULTS used by the demo.
SMOOTH_PARAMS = {"gaus1d": {"mmhuman3d_median": False}}
SMOOTHED_KEYS = ("pose", "vertices", "pelvis_cam", "xyz_24", "xyz_17")

# people_fn(frame_bgr, keys, what) -> ([N, 4] xywh boxes, [N] scores)
PeopleFn = Callable[
  [np.ndarray, Sequence[str], str], tuple[np.ndarray, np.ndarray]
]


def smooth_track(
  arrays: dict[str, np.ndarray], kind: str, j_regressor_extra: np.ndarray
) -> dict[str, np.ndarray]:
  """One track's stacked arrays with ``pose``, ``vertices``, ``pelvis_cam``
  and ``xyz_24`` smoothed along time (``kind``: :data:`SMOOTH_KINDS`) and
  ``xyz_17`` = ``j_regressor_extra`` [17, V] @ the smoothed vertices."""
  params = SMOOTH_PARAMS.get(kind, {})
  out = dict(arrays)
  out["pose"] = smoothing.smooth_rotations(arrays["pose"], kind, **params)
  for key in ("vertices", "pelvis_cam", "xyz_24"):
    out[key] = smoothing.smooth(arrays[key], kind, **params)
  if "transl" in arrays:  # authors' camera models: transl == pelvis_cam
    out["transl"] = out["pelvis_cam"]
  reg = np.asarray(j_regressor_extra, np.float64)
  out["xyz_17"] = np.einsum(
    "jv,tvc->tjc", reg, out["vertices"].astype(np.float64)
  ).astype(np.float32)
  return out


class _Timer:
  """Seconds spent per stage (``with timer('predict'): ...``)."""

  def __init__(self):
    self.seconds = collections.defaultdict(float)
    self._stage = None

  def __call__(self, stage: str):
    self._stage = stage
    return self

  def __enter__(self):
    self._start = time.perf_counter()

  def __exit__(self, *exc):
    self.seconds[self._stage] += time.perf_counter() - self._start


class _OverlayWriter:
  """The overlay video, opened at the first frame."""

  def __init__(self, path: Path, fps: float):
    self.path, self.fps, self._writer = path, fps, None

  def write(self, panel: np.ndarray) -> None:
    if self._writer is None:
      self._writer = cv2.VideoWriter(
        str(self.path),
        cv2.VideoWriter_fourcc(*"mp4v"),
        self.fps,
        (panel.shape[1], panel.shape[0]),
      )
      if not self._writer.isOpened():
        raise DemoError(f"cannot write video {self.path}")
    self._writer.write(panel)

  def close(self) -> None:
    if self._writer is not None:
      self._writer.release()


def run_video(
  predictor: BatchedPredictor,
  path: Path,
  out_dir: Path,
  name: str,
  people_fn: PeopleFn,
  multi: bool,
  focal: float | None = None,
  smooth: str | None = None,
  save_bvh: bool = False,
  bvh_order: str = "ZYX",
  save_pk: bool = False,
  progress: bool = True,
  chunk_frames: int | None = None,
  queue_frames: int = DEFAULT_QUEUE_FRAMES,
  stale: Sequence[Path] = (),
  tracker: Tracker | None = None,
) -> dict:
  """Runs the demo on a video (see the module docstring).

  Args:
    predictor: the jitted network + placement.
    path: the video.
    out_dir: output folder (exists).
    name: output name (the video's stem).
    people_fn: ``(frame, keys, what) -> ([N, 4] xywh, [N] scores)``; keys
      are ``(str(frame_index),)``.
    multi: multi-person mode (track the people, ``_track<id>`` outputs);
      False: exactly one person per frame (``people_fn`` gives one box),
      outputs ``<name>.npz`` / ``.bvh`` / ``.pk``.
    focal: focal length in pixels (default ``max(H, W)``).
    smooth: None or one of :data:`SMOOTH_KINDS`.
    save_bvh, bvh_order, save_pk: exports per track.
    progress: tqdm progress bars.
    chunk_frames: frames per predictor call (default the predictor's batch
      size).
    queue_frames: frames decoded ahead by the reading thread.
    stale: files of an earlier run to delete before the new tracks are
      written (``<name>_track*`` files, already counted as replaced).
    tracker: the tracker (default ``Tracker()``), multi-person mode.

  Returns:
    {'outputs': [paths], 'num_images': frames, 'kind': 'video', 'tracks':
    {track id: frames}, 'max_people': most people in one frame, 'fps',
    'seconds': {stage: s} ('people': boxes / detector + tracker,
    'predict', 'smooth', 'overlay': rendering, 'write'; decoding runs in
    its own thread)}.
  """
  from tqdm import tqdm

  if smooth is not None and smooth not in SMOOTH_KINDS:
    raise DemoError(
      f"--smooth must be one of none, {', '.join(SMOOTH_KINDS)}; got {smooth!r}"
    )
  if bvh_order not in bvh_export.EULER_ORDERS:
    raise DemoError(
      f"--bvh-order must be one of {', '.join(bvh_export.EULER_ORDERS)}, "
      f"got {bvh_order!r}"
    )
  from hybrik_jax.demo.inputs import video_info

  fps, count = video_info(path)
  chunk_frames = int(chunk_frames or predictor.batch_size)
  if multi and tracker is None:
    tracker = Tracker()
  timer = _Timer()
  mp4 = out_dir / f"{name}_overlay.mp4"
  overlay = _OverlayWriter(mp4, fps)
  draw_now = smooth is None
  # Per reported detection: frame index, track id, score, prediction.
  dets: list[tuple[int, int, float, dict]] = []
  by_frame: dict[int, list[int]] = collections.defaultdict(list)
  state = {"camera": None, "hw": None, "frames": 0, "max_people": 0}

  def camera_of(frame) -> Camera:
    if state["camera"] is None:
      h, w = frame.shape[:2]
      state["camera"], state["hw"] = default_camera(h, w, focal), (h, w)
    return state["camera"]

  def process(chunk) -> None:
    imgs, boxes, meta = [], [], []
    for index, frame in chunk:
      cam = camera_of(frame)
      with timer("people"):
        xywh, scores = people_fn(frame, (str(index),), f"{path} frame {index}")
        xywh = np.asarray(xywh, np.float64).reshape(-1, 4)
        scores = np.asarray(scores, np.float64).reshape(-1)
        if multi:
          pairs = [
            (m.track_id, m.detection_index)
            for m in tracker.update(xywh_to_xyxy(xywh), scores)
          ]
        else:
          pairs = [(0, 0)]
      state["max_people"] = max(state["max_people"], len(pairs))
      for tid, d in pairs:
        imgs.append(frame)
        boxes.append(xywh[d])
        meta.append((index, tid, float(scores[d])))
    with timer("predict"):
      preds = predictor(imgs, boxes, [cam] * len(imgs)) if imgs else []
    for (index, tid, score), res in zip(meta, preds):
      by_frame[index].append(len(dets))
      dets.append((index, tid, score, res))
    if draw_now:
      for index, frame in chunk:
        _draw(frame, index, state["camera"], by_frame, dets, None)
    state["frames"] += len(chunk)

  def _draw(frame, index, cam, by_frame, dets, smoothed) -> None:
    with timer("overlay"):
      people = [dets[k] for k in by_frame.get(index, [])]
      people.sort(key=lambda d: -float(d[3]["vertices"][:, 2].mean()))
      verts = [
        smoothed[(d[0], d[1])] if smoothed is not None else d[3]["vertices"]
        for d in people
      ]
      if multi:
        colors = [
          person_face_colors(predictor.face_colors, d[1]) for d in people
        ]
      else:
        colors = [predictor.face_colors] * len(people)
      view_cam, verts = render_camera(
        cam,
        verts,
        [d[3]["focal"] for d in people],
        people[0][3]["princpt"] if people else None,
      )
      panel = render_overlay(frame, verts, predictor.faces, view_cam, colors)
      if multi:
        draw_labels(
          panel, [d[3]["bbox_xywh"] for d in people], [d[1] for d in people]
        )
    with timer("write"):
      overlay.write(panel)

  desc = "demo" if draw_now else "demo: predict"
  bar = tqdm(total=count or None, desc=desc, unit="frame", disable=not progress)
  start = time.perf_counter()

  def advance(chunk) -> None:
    process(chunk)
    bar.update(len(chunk))
    rate = state["frames"] / max(time.perf_counter() - start, 1e-9)
    people = len(by_frame.get(chunk[-1][0], []))
    bar.set_postfix_str(f"{rate:.2f} frames/s, {people} people")

  try:
    with FrameReader(path, queue_frames) as reader:
      chunk = []
      for item in reader:
        chunk.append(item)
        if len(chunk) == chunk_frames:
          advance(chunk)
          chunk = []
      if chunk:
        advance(chunk)
    bar.close()
    if not state["frames"]:
      raise DemoError(f"cannot read any frame of video {path}")

    # Tracks: the detections of each id, in frame order.
    rows: dict[int, list[int]] = collections.defaultdict(list)
    for k, (_, tid, _, _) in enumerate(dets):
      rows[tid].append(k)
    tracks = {}
    for tid in sorted(rows):
      ks = rows[tid]
      arrays = result_arrays([dets[k][3] for k in ks], stack=True)
      arrays["frames"] = np.asarray([dets[k][0] for k in ks], np.int64)
      arrays["scores"] = np.asarray([dets[k][2] for k in ks], np.float32)
      arrays["track_id"] = np.int64(tid)
      arrays["fps"] = np.float32(fps)
      if smooth is not None:
        with timer("smooth"):
          arrays = smooth_track(
            arrays, smooth, predictor.body.J_regressor_extra
          )
      tracks[tid] = arrays

    if not draw_now:  # second pass: the smoothed meshes
      smoothed = {
        (int(f), tid): v
        for tid, a in tracks.items()
        for f, v in zip(a["frames"], a["vertices"])
      }
      bar = tqdm(
        total=state["frames"],
        desc="demo: overlay",
        unit="frame",
        disable=not progress,
      )
      with FrameReader(path, queue_frames) as reader:
        for index, frame in reader:
          if index >= state["frames"]:
            break
          _draw(frame, index, state["camera"], by_frame, dets, smoothed)
          bar.update(1)
      bar.close()
  finally:
    bar.close()
    overlay.close()

  outputs = [mp4]
  with timer("write"):
    for p in stale:
      p.unlink(missing_ok=True)
    for tid, arrays in tracks.items():
      outputs += _write_track(
        arrays,
        track_output_paths(
          out_dir, name, tid if multi else None, save_bvh, save_pk
        ),
        predictor,
        state["hw"],
        bvh_order,
      )
  return {
    "outputs": outputs,
    "num_images": state["frames"],
    "kind": "video",
    "tracks": {tid: int(a["frames"].size) for tid, a in tracks.items()},
    "max_people": state["max_people"],
    "fps": fps,
    "seconds": dict(timer.seconds),
  }


def _write_track(
  arrays: dict[str, np.ndarray],
  paths: Sequence[Path],
  predictor: BatchedPredictor,
  image_hw: tuple[int, int],
  bvh_order: str,
) -> list[Path]:
  """Writes one track's npz (+ bvh, pk: by suffix of ``paths``)."""
  fps = float(arrays["fps"])
  for path in paths:
    if path.suffix == ".npz":
      np.savez(path, **arrays)
    elif path.suffix == ".bvh":
      pose = smoothing.project_to_so3(arrays["pose"])
      try:
        bvh_export.export_track_bvh(
          path,
          predictor.body,
          pose,
          arrays["betas"],
          arrays["pelvis_cam"],
          fps,
          order=bvh_order,
        )
      except ValueError as e:
        raise DemoError(f"cannot write {path}: {e}") from None
    elif path.suffix == ".pk":
      names = [f"frame_{int(f):06d}" for f in arrays["frames"]]
      try:
        res = pk_export.pk_from_demo(arrays, image_hw, names)
      except ValueError as e:
        raise DemoError(f"cannot write {path}: {e}") from None
      pk_export.write_pk(path, res)
  return list(paths)
