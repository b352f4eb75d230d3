"""Demo outputs: the overlay picture, the OBJ mesh and the npz arrays.

Per image (``<name>`` from :func:`output_names`: the file stem, e.g.
``a.jpg`` -> ``a``; when inputs share a stem, the extension is kept, e.g.
``a.jpg`` -> ``a_jpg`` and ``a.png`` -> ``a_png``): ``<name>_overlay.png``
(mesh over the image | side view, :func:`render_overlay`), ``<name>.obj``
(camera-frame vertices in metres, y down, + faces, :func:`write_obj`) and
``<name>.npz`` (see :func:`result_arrays`). A video gives
``<name>_overlay.mp4`` and one ``<name>.npz`` with per-frame arrays
``[T, ...]`` (and ``fps``). Distinct names give distinct files
(:func:`image_output_paths`, :func:`video_output_paths`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from hybrik_jax.demo.camera import Camera

OVERLAY_ALPHA = 0.85  # mesh opacity over the image


def output_names(paths: Sequence[Path]) -> list[str]:
  """One output name per input file, unique (case-insensitively, so also on
  case-insensitive file systems).

  The stem (``a.jpg`` -> ``a``) where no other input has the same stem;
  otherwise stem + ``_`` + extension (``a.jpg`` -> ``a_jpg``, ``a.png`` ->
  ``a_png``). A name still taken after that (e.g. an input ``a_jpg.png``
  next to ``a.jpg`` and ``a.png``) gets ``_2``, ``_3``, ... in input order.
  """
  stems = [p.stem.casefold() for p in paths]
  counts = {s: stems.count(s) for s in stems}
  base = [
    f"{p.stem}_{p.suffix.lstrip('.')}" if counts[s] > 1 and p.suffix else p.stem
    for p, s in zip(paths, stems)
  ]
  folded = [b.casefold() for b in base]
  taken = set()
  names = []
  for name, key in zip(base, folded):
    if key in taken:
      k = 2
      while f"{key}_{k}" in taken or f"{key}_{k}" in folded:
        k += 1
      name, key = f"{name}_{k}", f"{key}_{k}"
    taken.add(key)
    names.append(name)
  return names


def image_output_paths(out_dir: Path, name: str) -> list[Path]:
  """The files written for one image: [overlay png, obj, npz]."""
  return [
    out_dir / f"{name}_overlay.png",
    out_dir / f"{name}.obj",
    out_dir / f"{name}.npz",
  ]


def video_output_paths(out_dir: Path, name: str) -> list[Path]:
  """The files written for one video: [overlay mp4, npz]."""
  return [out_dir / f"{name}_overlay.mp4", out_dir / f"{name}.npz"]


def render_overlay(
  image_bgr: np.ndarray,
  vertices_cam: np.ndarray,
  faces: np.ndarray,
  camera: Camera,
  face_colors: np.ndarray | None = None,
  alpha: float = OVERLAY_ALPHA,
) -> np.ndarray:
  """[H, 2W, 3] uint8 BGR: mesh over the image | side view on white.

  The side view turns the mesh 90 degrees about the vertical axis through its
  centroid and frames it with the same focal length.
  """
  from hybrik_jax import render

  h, w = image_bgr.shape[:2]
  rgb = np.ascontiguousarray(image_bgr[..., ::-1])
  front = render.render_mesh(
    vertices_cam,
    faces,
    camera.focal,
    camera.princpt,
    (h, w),
    face_colors=face_colors,
    background=rgb,
  )
  mask = front["mask"][..., None]
  blend = np.where(mask, alpha * front["image"] + (1 - alpha) * rgb, rgb)
  side_verts = render.side_view(vertices_cam)
  fitted, focal, princpt = render.fit_camera(
    side_verts, (h, w), focal=camera.focal, margin=0.08
  )
  side = render.render_mesh(
    fitted, faces, focal, princpt, (h, w), face_colors=face_colors
  )["image"]
  panel = np.concatenate([np.round(blend).astype(np.uint8), side], axis=1)
  return np.ascontiguousarray(panel[..., ::-1])


def write_obj(
  path: str | Path, vertices: np.ndarray, faces: np.ndarray
) -> None:
  """Wavefront OBJ: ``v x y z`` (metres) and 1-based ``f i j k``."""
  vertices = np.asarray(vertices, np.float64)
  faces = np.asarray(faces, np.int64) + 1
  lines = [
    "# hybrik-jax demo mesh: camera frame (OpenCV: x right, y down, "
    "z forward), metres"
  ]
  lines += [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in vertices]
  lines += [f"f {a} {b} {c}" for a, b, c in faces]
  Path(path).write_text("\n".join(lines) + "\n")


NPZ_KEYS = (
  "pose",
  "betas",
  "phis",
  "xyz_24",
  "xyz_17",
  "uvd",
  "uv",
  "vertices",
  "pelvis_cam",
  "pelvis_prior",
  "placement_fit",
  "t0",
  "joint_root_mm",
  "focal",
  "princpt",
  "bbox_xywh",
)


def result_arrays(
  results: Sequence[Mapping[str, np.ndarray]], stack: bool
) -> dict[str, np.ndarray]:
  """The npz content of one image (``stack=False``) or a video ([T, ...]).

  Keys: pose [24, 3, 3] (global pelvis rotation + 23 parent-relative),
  betas [10], phis [23, 2] (cos, sin, raw), xyz_24 [24, 3] (SMPL joints) and
  xyz_17 [17, 3] (H36M joints from the mesh) in camera metres, uvd [29, 3]
  (network output in [-0.5, 0.5)), uv [29, 2] (its image pixels), vertices
  [6890, 3] camera metres, pelvis_cam [3] (m), pelvis_prior [3] (m, the
  depth-prior placement), placement_fit (bool: pelvis_cam from the
  reprojection fit), t0 [3] (rest pelvis, m), joint_root_mm [3] (network
  input), focal, princpt [2] (px), bbox_xywh [4] (px).
  """
  if stack:
    return {k: np.stack([r[k] for r in results]) for k in NPZ_KEYS}
  return {k: np.asarray(results[0][k]) for k in NPZ_KEYS}
