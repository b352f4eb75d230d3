"""A synthetic multi-person video with ground truth, for tests, docs, bench.

:func:`make_video` renders 1-4 of the package's synthetic "capsule body"
SMPL bodies (:func:`hybrik_jax.assets.load_synthetic_smpl`, posed with
:func:`hybrik_jax.smpl.numpy_kinematics.smpl_forward_batched`, drawn with
:func:`hybrik_jax.render.render_mesh` over one fixed random background of
:func:`hybrik_jax.data.synthetic.random_background`) and returns the
ground truth of every frame: boxes, poses, pelvis positions and person ids.

Motions (``motion=``):

* ``'walk'`` (default): person 0 walks left to right, person 1 right to left
  a metre further back, so the two cross in the middle of the clip (person
  0 passes in front); person 2 walks slowly at the right edge, far back;
  person 3 walks towards the camera at the left edge. Persons 2 and 3 never
  overlap persons 0 and 1. A walk cycle swings the legs (hips, knees) and
  the arms (shoulders) with a 1.4 m stride.
* ``'stand'``: the people stand still, side by side (arms down, one leg a
  little forward): every frame is the same, so a constant-output detector
  (the tests' ONNX graphs) is right on every frame.

Positions are given as fractions of the image width, so the layout is the
same at every resolution. Camera: the demo's default camera
(:func:`hybrik_jax.demo.camera.default_camera`: focal ``max(H, W)`` px,
principal point at the image centre), OpenCV axes, metres; the pelvis is at
camera height (y = 0.1 m, just below the optical axis).

Ground-truth boxes are the boxes of each whole projected mesh (amodal: a
person behind another keeps the box of its whole body), clipped to the
image, ``x1, y1, x2, y2`` pixels. :func:`write_bbox_file` writes them in the
demo's ``--bbox-file`` JSON layout with several boxes per frame
(``{"0": [[x, y, w, h], ...], ...}``).

Command line (writes ``OUT.mp4``, ``OUT_boxes.json`` and ``OUT_gt.npz``)::

  python -m hybrik_jax.demo.synthetic_video --out clip.mp4 --people 3 \\
      --frames 48 --width 640 --height 480
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from scipy.spatial.transform import Rotation

from hybrik_jax import render
from hybrik_jax.demo.camera import default_camera

MOTIONS = ("walk", "stand")
MAX_PEOPLE = 4
STRIDE_M = 1.4  # metres per walk cycle
PELVIS_Y_M = 0.1  # camera frame, y down: a little below the optical axis
MIN_VISIBLE_AREA = 16.0  # px^2 of the clipped box for a person to count
# SMPL joints moved by the walk cycle.
L_HIP, R_HIP, L_KNEE, R_KNEE = 1, 2, 4, 5
L_SHOULDER, R_SHOULDER, L_ELBOW, R_ELBOW = 16, 17, 18, 19
# Person tints (RGB multipliers of the part colours), one per person.
TINTS = (
  (1.15, 0.8, 0.8),
  (0.8, 0.9, 1.2),
  (0.85, 1.15, 0.85),
  (1.1, 1.05, 0.7),
)


@dataclasses.dataclass(frozen=True)
class Path2D:
  """One person's path: image-width fractions and depths at the clip's start
  and end (linear in time), the body's yaw (degrees, camera y axis; -90:
  facing +x, 0: facing the camera) and its gait phase offset (radians)."""

  u0: float
  u1: float
  z0: float
  z1: float
  yaw_deg: float
  phase: float = 0.0


WALK_PATHS = (
  Path2D(0.14, 0.80, 4.5, 4.5, -70.0),
  Path2D(0.80, 0.16, 5.5, 5.5, 70.0, np.pi / 2),
  Path2D(0.93, 0.91, 9.0, 9.0, -40.0, np.pi),
  Path2D(0.05, 0.06, 9.0, 8.0, 10.0, np.pi / 3),
)
STAND_PATHS = (
  Path2D(0.22, 0.22, 4.5, 4.5, 20.0),
  Path2D(0.52, 0.52, 5.5, 5.5, -20.0),
  Path2D(0.80, 0.80, 6.5, 6.5, 0.0),
  Path2D(0.05, 0.05, 9.0, 9.0, 10.0),
)


def _rotvec(*mats: np.ndarray) -> np.ndarray:
  """Product of rotation matrices -> [3] axis-angle."""
  out = np.eye(3)
  for m in mats:
    out = out @ m
  return Rotation.from_matrix(out).as_rotvec()


def _rot(axis: str, angle: float) -> np.ndarray:
  return Rotation.from_euler(axis, angle).as_matrix()


def body_pose(phase: float, walking: bool) -> np.ndarray:
  """[24, 3] axis-angle (template frame, joint 0 left at 0) of a walk cycle
  at ``phase`` (radians), or of a relaxed stance (``walking=False``)."""
  pose = np.zeros((24, 3))
  s = np.sin(phase) if walking else 0.3
  swing = 0.45 * s  # hip flexion (-x lifts the leg forward)
  pose[L_HIP] = [-swing, 0.0, 0.05]
  pose[R_HIP] = [swing, 0.0, -0.05]
  # The knee bends while its leg swings forward.
  pose[L_KNEE] = [0.6 * max(0.0, np.sin(phase + 0.6)) if walking else 0.1, 0, 0]
  pose[R_KNEE] = [
    0.6 * max(0.0, -np.sin(phase + 0.6)) if walking else 0.1,
    0,
    0,
  ]
  # Arms down (about z), swinging against the legs (about x).
  arm = 0.35 * s
  pose[L_SHOULDER] = _rotvec(_rot("x", arm), _rot("z", -1.25))
  pose[R_SHOULDER] = _rotvec(_rot("x", -arm), _rot("z", 1.25))
  pose[L_ELBOW] = [0.0, -0.3, 0.0]
  pose[R_ELBOW] = [0.0, 0.3, 0.0]
  return pose


def global_orient(yaw_deg: float) -> np.ndarray:
  """[3] axis-angle: upright in the camera frame (y down), turned by yaw."""
  flip = _rot("x", np.pi)  # template +y up -> camera y down, facing -z
  return _rotvec(_rot("y", np.deg2rad(yaw_deg)), flip)


def make_video(
  path: str | Path | None,
  people: int = 3,
  frames: int = 24,
  size: tuple[int, int] = (320, 240),
  fps: float = 10.0,
  motion: str = "walk",
  seed: int = 0,
  model=None,
) -> dict[str, np.ndarray]:
  """Renders the clip (and writes it to ``path`` as mp4, unless None).

  Args:
    path: output video (``.mp4``, OpenCV's ``mp4v``), or None.
    people: 1..4 persons (ids 0..people-1, see the module docstring).
    frames: number of frames (>= 2).
    size: (W, H) pixels.
    fps: frame rate written to the file.
    motion: 'walk' or 'stand'.
    seed: background, shapes and colours.
    model: SMPLModel (default: the package's synthetic body).

  Returns:
    dict of numpy arrays: ``boxes_xyxy`` [T, P, 4] (whole-body boxes clipped
    to the image, px), ``visible`` [T, P] bool (clipped box area >= 16
    px^2), ``ids`` [P], ``thetas`` [T, P, 24, 3] axis-angle (camera-frame
    global orientation first), ``betas`` [P, 10], ``pelvis`` [T, P, 3] and
    ``joints`` [T, P, 24, 3] (camera frame, metres), ``vertices`` [T, P,
    6890, 3] float32 (camera metres), ``frames_bgr`` [T, H, W, 3] uint8,
    ``focal``, ``princpt`` [2], ``fps``, ``size_wh`` [2].
  """
  from hybrik_jax.data.synthetic import random_background
  from hybrik_jax.smpl.numpy_kinematics import smpl_forward_batched
  from hybrik_jax.smpl.poses import sample_betas

  if motion not in MOTIONS:
    raise ValueError(f"motion must be one of {MOTIONS}, got {motion!r}")
  if not 1 <= people <= MAX_PEOPLE:
    raise ValueError(f"people must be in 1..{MAX_PEOPLE}, got {people}")
  if frames < 2:
    raise ValueError(f"frames must be >= 2, got {frames}")
  w, h = int(size[0]), int(size[1])
  if model is None:
    from hybrik_jax import assets

    model = assets.load_synthetic_smpl()
  cam = default_camera(h, w)
  rng = np.random.default_rng(seed)
  betas = 0.7 * sample_betas(rng, people)  # [P, 10]
  background = random_background(rng, h, w)  # RGB
  paths = (WALK_PATHS if motion == "walk" else STAND_PATHS)[:people]
  walking = motion == "walk"

  T, P = frames, people
  t = np.linspace(0.0, 1.0, T)  # [T]
  thetas = np.zeros((T, P, 24, 3))
  pelvis = np.zeros((T, P, 3))
  for p, spec in enumerate(paths):
    z = spec.z0 + (spec.z1 - spec.z0) * t  # [T]
    u = (spec.u0 + (spec.u1 - spec.u0) * t) * w
    x = (u - cam.princpt[0]) * z / cam.focal
    walked = np.concatenate(
      [[0.0], np.cumsum(np.hypot(np.diff(x), np.diff(z)))]
    )  # [T] metres along the path
    phase = spec.phase + 2 * np.pi * walked / STRIDE_M
    bounce = 0.02 * np.cos(2 * phase) if walking else np.zeros(T)
    pelvis[:, p] = np.stack([x, PELVIS_Y_M + bounce, z], axis=-1)
    orient = global_orient(spec.yaw_deg)
    for i in range(T):
      thetas[i, p] = body_pose(phase[i], walking)
      thetas[i, p, 0] = orient

  flat = smpl_forward_batched(
    model,
    np.repeat(betas[None], T, axis=0).reshape(T * P, -1),
    thetas.reshape(T * P, 24, 3),
  )
  root = flat["joints"][:, :1]  # [T*P, 1, 3] model-frame pelvis
  shift = pelvis.reshape(T * P, 1, 3) - root
  vertices = (flat["vertices"] + shift).reshape(T, P, -1, 3)
  joints = (flat["joints"] + shift).reshape(T, P, 24, 3)

  faces = np.asarray(model.faces, np.int64)
  parts = render.part_face_colors(np.asarray(model.lbs_weights), faces)
  colors = [np.clip(parts * np.asarray(TINTS[p]), 0, 255) for p in range(P)]
  all_faces = np.concatenate([faces + p * vertices.shape[2] for p in range(P)])
  all_colors = np.concatenate(colors)

  boxes = np.zeros((T, P, 4))
  visible = np.zeros((T, P), bool)
  images = np.zeros((T, h, w, 3), np.uint8)
  for i in range(T):
    uv = render.project_points(
      vertices[i].reshape(-1, 3), cam.focal, cam.princpt
    ).reshape(P, -1, 2)
    lo = np.clip(uv.min(axis=1), 0, [w, h])  # [P, 2]
    hi = np.clip(uv.max(axis=1), 0, [w, h])
    boxes[i] = np.concatenate([lo, hi], axis=1)
    visible[i] = np.prod(hi - lo, axis=1) >= MIN_VISIBLE_AREA
    out = render.render_mesh(
      vertices[i].reshape(-1, 3),
      all_faces,
      cam.focal,
      cam.princpt,
      (h, w),
      face_colors=all_colors,
      background=background,
    )
    images[i] = out["image"][..., ::-1]  # BGR
  if path is not None:
    write_video(path, images, fps)
  return {
    "boxes_xyxy": boxes,
    "visible": visible,
    "ids": np.arange(P),
    "thetas": thetas,
    "betas": betas,
    "pelvis": pelvis,
    "joints": joints,
    "vertices": vertices.astype(np.float32),
    "frames_bgr": images,
    "focal": np.float64(cam.focal),
    "princpt": np.asarray(cam.princpt),
    "fps": np.float64(fps),
    "size_wh": np.array([w, h]),
  }


def write_video(path: str | Path, frames_bgr: np.ndarray, fps: float) -> Path:
  """[T, H, W, 3] uint8 BGR -> an mp4 (``mp4v``) file."""
  path = Path(path)
  h, w = frames_bgr.shape[1:3]
  writer = cv2.VideoWriter(
    str(path), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (w, h)
  )
  if not writer.isOpened():
    raise OSError(f"cannot write video {path}")
  try:
    for frame in frames_bgr:
      writer.write(frame)
  finally:
    writer.release()
  return path


def write_bbox_file(
  path: str | Path, boxes_xyxy: np.ndarray, visible: np.ndarray | None = None
) -> Path:
  """The ground-truth boxes as a demo ``--bbox-file`` (JSON, a list of
  ``[x, y, w, h]`` per frame key, persons in id order; invisible persons are
  left out, a frame without any gets ``[]``)."""
  boxes = np.asarray(boxes_xyxy, np.float64)
  if visible is None:
    visible = np.ones(boxes.shape[:2], bool)
  data = {}
  for i, (frame_boxes, vis) in enumerate(zip(boxes, visible)):
    data[str(i)] = [
      [round(float(v), 3) for v in (x1, y1, x2 - x1, y2 - y1)]
      for (x1, y1, x2, y2), ok in zip(frame_boxes, vis)
      if ok
    ]
  path = Path(path)
  path.write_text(json.dumps(data, indent=0) + "\n")
  return path


def define_flags(fv) -> None:
  from absl import flags

  flags.DEFINE_string("out", None, "Output video (.mp4).", flag_values=fv)
  flags.DEFINE_integer(
    "people", 3, "Persons (1..4).", lower_bound=1, upper_bound=4, flag_values=fv
  )
  flags.DEFINE_integer("frames", 24, "Frames.", lower_bound=2, flag_values=fv)
  flags.DEFINE_integer(
    "width", 320, "Width (px).", lower_bound=32, flag_values=fv
  )
  flags.DEFINE_integer(
    "height", 240, "Height (px).", lower_bound=32, flag_values=fv
  )
  flags.DEFINE_float(
    "fps", 10.0, "Frame rate.", lower_bound=0.1, flag_values=fv
  )
  flags.DEFINE_enum("motion", "walk", MOTIONS, "Motion.", flag_values=fv)
  flags.DEFINE_integer("seed", 0, "Random seed.", flag_values=fv)
  flags.mark_flags_as_required(["out"], flag_values=fv)


def main(argv: Sequence[str] | None = None) -> int:
  from hybrik_jax import cli

  args, _ = cli.parse(
    define_flags, argv, "python -m hybrik_jax.demo.synthetic_video", __doc__
  )
  out = Path(args.out)
  if out.suffix.lower() != ".mp4":
    raise cli.UsageError(f"--out must end in .mp4, got {out}")
  out.parent.mkdir(parents=True, exist_ok=True)
  gt = make_video(
    out,
    args.people,
    args.frames,
    (args.width, args.height),
    args.fps,
    args.motion,
    args.seed,
  )
  boxes = write_bbox_file(
    out.with_name(out.stem + "_boxes.json"), gt["boxes_xyxy"], gt["visible"]
  )
  gt_path = out.with_name(out.stem + "_gt.npz")
  np.savez(gt_path, **{k: v for k, v in gt.items() if k != "frames_bgr"})
  print(f"wrote {out}, {boxes} and {gt_path}")
  return 0


if __name__ == "__main__":
  from hybrik_jax import cli

  cli.run(main)
