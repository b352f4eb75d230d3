"""The README's video-demo pictures: a multi-person overlay, BVH skeletons.

  python -m hybrik_jax.demo.make_figures --checkpoint runs/synthetic --out docs

1. Renders the synthetic walking video (:mod:`hybrik_jax.demo.synthetic_video`:
   3 people, persons 0 and 1 cross; default 480 x 360, 30 frames, 10 fps)
   into ``--work`` (default ``runs/video_demo_figures``).
2. Runs the video demo on it (:func:`hybrik_jax.demo.run.run`) with the
   ground-truth boxes as per-frame detections (a multi-person
   ``--bbox-file``; no detector weights ship), ``--smooth savgol`` and
   ``--save-bvh``; the demo's outputs stay in ``--work``.
3. Writes ``<out>/video_demo_overlay.png``: two frames of the overlay video
   (before the crossing, and where persons 0 and 1 overlap most), stacked.
4. Writes ``<out>/video_demo_bvh.png``: the exported BVH files, parsed back
   (:func:`hybrik_jax.demo.bvh.parse_bvh`) and posed by forward kinematics
   (:func:`hybrik_jax.demo.bvh.bvh_positions`), drawn with matplotlib at 4
   frames: front view (BVH x right, y up; metres), one colour per track (the
   overlay's).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from hybrik_jax.demo import bvh, synthetic_video
from hybrik_jax.demo.outputs import person_rgb

OVERLAY_NAME = "video_demo_overlay.png"
BVH_NAME = "video_demo_bvh.png"


def _read_frames(path: Path, wanted: Sequence[int]) -> dict[int, np.ndarray]:
  cap = cv2.VideoCapture(str(path))
  out, index = {}, 0
  try:
    while len(out) < len(set(wanted)):
      ok, frame = cap.read()
      if not ok:
        break
      if index in wanted:
        out[index] = frame
      index += 1
  finally:
    cap.release()
  return out


def draw_bvh_skeletons(
  path: str | Path,
  tracks: Mapping[int, tuple[bvh.BVH, np.ndarray]],
  frames: Sequence[int],
) -> Path:
  """Draws BVH skeletons (front view, x right / y up) at several frames.

  Args:
    path: output picture (.png).
    tracks: track id -> (parsed BVH, [T] video frame index of each BVH
      frame).
    frames: video frames to draw, one panel each.
  """
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  poses = {}
  for tid, (parsed, track_frames) in tracks.items():
    pos = bvh.bvh_positions(parsed, end_sites=True)  # [T, J + E, 3]
    parents = list(parsed.parents) + list(parsed.end_parents)
    poses[tid] = (
      pos,
      parents,
      list(np.asarray(track_frames)),
      len(parsed.names),
    )
  every = np.concatenate([p[0].reshape(-1, 3) for p in poses.values()])
  lo, hi = every.min(0), every.max(0)
  pad = 0.1 * (hi - lo).max()
  span = (hi - lo)[:2] + 2 * pad
  panel_w = 3.2
  fig, axes = plt.subplots(
    1,
    len(frames),
    figsize=(panel_w * len(frames), panel_w * span[1] / span[0] + 1.3),
    squeeze=False,
  )
  for ax, frame in zip(axes[0], frames):
    for tid, (pos, parents, track_frames, nj) in sorted(poses.items()):
      if frame not in track_frames:
        continue
      p = pos[track_frames.index(frame)]
      color = person_rgb(tid) / 255.0
      for j, parent in enumerate(parents):
        if parent >= 0:
          ax.plot(
            [p[j, 0], p[parent, 0]],
            [p[j, 1], p[parent, 1]],
            "-",
            color=color,
            lw=2,
          )
      ax.plot(p[:nj, 0], p[:nj, 1], ".", ms=3, color="k")
      ax.text(
        p[0, 0],
        hi[1] + 0.3 * pad,
        f"id {tid}",
        color=color,
        ha="center",
        fontsize=9,
      )
    ax.set_xlim(lo[0] - pad, hi[0] + pad)
    ax.set_ylim(lo[1] - pad, hi[1] + pad)
    ax.set_aspect("equal")
    ax.set_title(f"frame {frame}", fontsize=10)
    ax.set_xlabel("x (m)")
    ax.grid(alpha=0.3)
  axes[0][0].set_ylabel("y (m, up)")
  fig.suptitle("exported BVH skeletons (parsed back, forward kinematics)")
  fig.tight_layout()
  path = Path(path)
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path


def make_figures(
  checkpoint: str | Path,
  out_dir: str | Path = "docs",
  work_dir: str | Path = "runs/video_demo_figures",
  size: tuple[int, int] = (480, 360),
  frames: int = 30,
  fps: float = 10.0,
  smooth: str | None = "savgol",
  variables: Mapping[str, Any] | None = None,
  progress: bool = True,
) -> dict[str, Path]:
  """Makes both pictures (see the module docstring); returns their paths
  and the demo's result (``'demo'``)."""
  from hybrik_jax.demo import run as demo_run

  out_dir, work_dir = Path(out_dir), Path(work_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  work_dir.mkdir(parents=True, exist_ok=True)
  clip = work_dir / "walk.mp4"
  gt = synthetic_video.make_video(clip, 3, frames, size, fps)
  boxes = synthetic_video.write_bbox_file(
    work_dir / "walk_boxes.json", gt["boxes_xyxy"], gt["visible"]
  )
  result = demo_run.run(
    checkpoint,
    clip,
    work_dir / "demo",
    bbox_file=boxes,
    variables=variables,
    progress=progress,
    smooth=smooth,
    save_bvh=True,
  )
  from hybrik_jax.demo.tracking import iou_matrix

  iou01 = [iou_matrix(b[:1], b[1:2])[0, 0] for b in gt["boxes_xyxy"]]
  crossing = int(np.argmax(iou01))
  before = max(0, crossing - max(3, frames // 3))
  shots = _read_frames(
    work_dir / "demo" / "walk_overlay.mp4", [before, crossing]
  )
  overlay = np.concatenate([shots[before], shots[crossing]], axis=0)
  overlay_path = out_dir / OVERLAY_NAME
  if not cv2.imwrite(str(overlay_path), overlay):
    raise OSError(f"cannot write {overlay_path}")

  tracks = {}
  for tid in result["tracks"]:
    stem = work_dir / "demo" / f"walk_track{tid}"
    with np.load(stem.with_suffix(".npz")) as d:
      track_frames = d["frames"]
    tracks[tid] = (bvh.parse_bvh(stem.with_suffix(".bvh")), track_frames)
  picks = np.linspace(0, frames - 1, 4).round().astype(int).tolist()
  picks = sorted(set(picks[:2] + [crossing] + picks[3:]))
  bvh_path = draw_bvh_skeletons(out_dir / BVH_NAME, tracks, picks)
  return {"overlay": overlay_path, "bvh": bvh_path, "demo": result}


def define_flags(fv) -> None:
  from absl import flags

  flags.DEFINE_string(
    "checkpoint",
    None,
    "Converted checkpoint folder or training run (e.g. runs/synthetic).",
    flag_values=fv,
  )
  flags.DEFINE_string(
    "out", "docs", "Folder of the two pictures.", flag_values=fv
  )
  flags.DEFINE_string(
    "work",
    "runs/video_demo_figures",
    "Folder of the synthetic video and the demo's outputs.",
    flag_values=fv,
  )
  flags.DEFINE_integer("frames", 30, "Frames of the video.", flag_values=fv)
  flags.DEFINE_string("size", "480x360", "Video size WxH.", flag_values=fv)
  flags.mark_flags_as_required(["checkpoint"], flag_values=fv)


def main(argv: Sequence[str] | None = None) -> int:
  from hybrik_jax import cli

  args, _ = cli.parse(
    define_flags,
    argv,
    "python -m hybrik_jax.demo.make_figures",
    __doc__,
    xla=True,
  )
  try:
    w, h = (int(v) for v in args.size.lower().split("x"))
  except ValueError:
    raise cli.UsageError(f"--size must be WxH, got {args.size!r}") from None
  paths = make_figures(
    args.checkpoint, args.out, args.work, (w, h), args.frames
  )
  print(f"wrote {paths['overlay']} and {paths['bvh']}")
  return 0


if __name__ == "__main__":
  from hybrik_jax import cli

  cli.run(main)
