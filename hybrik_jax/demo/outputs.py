"""Demo outputs: the overlay picture, the OBJ mesh and the npz arrays.

Per image (``<name>`` from :func:`output_names`: the file stem, e.g.
``a.jpg`` -> ``a``; when inputs share a stem, the extension is kept, e.g.
``a.jpg`` -> ``a_jpg`` and ``a.png`` -> ``a_png``): ``<name>_overlay.png``
(mesh over the image | side view, :func:`render_overlay`), ``<name>.obj``
(camera-frame vertices in metres, y down, + faces, :func:`write_obj`) and
``<name>.npz`` (see :func:`result_arrays`). With several people per image
(a person detector or a multi-person box file) the overlay shows everyone,
each in its own colour (:func:`person_rgb`) with a labelled box, the OBJ
holds one object ``o person<k>`` per person and the npz arrays get a
leading person axis ``[P, ...]`` (P may be 0), plus ``scores`` [P].

A video gives ``<name>_overlay.mp4`` and per-track npz files of per-frame
arrays ``[T, ...]`` (:func:`track_output_paths`): ``<name>.npz`` for the
single person of a run without a detector or multi-person box file,
``<name>_track<id>.npz`` per tracked person otherwise (details in
:mod:`hybrik_jax.demo.video`). Distinct names give distinct files
(:func:`image_output_paths`, :func:`video_output_paths`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np

from hybrik_jax.demo.camera import Camera

OVERLAY_ALPHA = 0.85  # mesh opacity over the image
# Person colours (RGB), by track id / person index modulo 10: Sasha
# Trubetskoy's "distinct colours".
PERSON_COLORS = (
  (230, 25, 75),
  (60, 180, 75),
  (0, 130, 200),
  (245, 130, 48),
  (145, 30, 180),
  (70, 240, 240),
  (240, 50, 230),
  (210, 245, 60),
  (0, 128, 128),
  (170, 110, 40),
)
PERSON_TINT = 0.65  # weight of the person colour over the part colours


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
  """The files written for one single-person video: [overlay mp4, npz]."""
  return [out_dir / f"{name}_overlay.mp4", out_dir / f"{name}.npz"]


TRACK_EXTS = (".npz", ".bvh", ".pk")


def track_stem(name: str, track_id: int | None) -> str:
  """``<name>`` (the single person, ``track_id`` None) or
  ``<name>_track<id>``."""
  return name if track_id is None else f"{name}_track{int(track_id)}"


def track_output_paths(
  out_dir: Path,
  name: str,
  track_id: int | None,
  bvh: bool = False,
  pk: bool = False,
) -> list[Path]:
  """The files of one video track: [npz] + [bvh] + [pk] (as asked)."""
  stem = out_dir / track_stem(name, track_id)
  return (
    [stem.with_name(stem.name + ".npz")]
    + ([stem.with_name(stem.name + ".bvh")] if bvh else [])
    + ([stem.with_name(stem.name + ".pk")] if pk else [])
  )


def existing_track_files(out_dir: Path, name: str) -> list[Path]:
  """Files ``<name>_track<digits>.{npz,bvh,pk}`` already in ``out_dir`` (an
  earlier run's tracks: replaced by a new run of the same video)."""
  if not out_dir.is_dir():
    return []
  pattern = re.compile(
    re.escape(name) + r"_track\d+(" + "|".join(map(re.escape, TRACK_EXTS)) + ")"
  )
  return sorted(
    p for p in out_dir.iterdir() if p.is_file() and pattern.fullmatch(p.name)
  )


def person_rgb(person: int) -> np.ndarray:
  """[3] RGB float colour of a track id / person index (stable: the id
  modulo :data:`PERSON_COLORS`)."""
  return np.asarray(PERSON_COLORS[int(person) % len(PERSON_COLORS)], float)


def person_face_colors(part_colors: np.ndarray, person: int) -> np.ndarray:
  """[F, 3] face colours of one person: the body-part colours tinted with
  the person's colour (:data:`PERSON_TINT`)."""
  part = np.asarray(part_colors, np.float64)
  return (1 - PERSON_TINT) * part + PERSON_TINT * person_rgb(person)


def _merge_meshes(vertices, faces, face_colors):
  """One mesh (or a list of meshes sharing ``faces``) -> ([V', 3], [F', 3],
  [F', 3] or None); None vertices for an empty list."""
  faces = np.asarray(faces, np.int64)
  if not isinstance(vertices, (list, tuple)):
    return np.asarray(vertices, np.float64), faces, face_colors
  if not vertices:
    return None, faces[:0], None
  nv = np.asarray(vertices[0]).shape[0]
  verts = np.concatenate([np.asarray(v, np.float64) for v in vertices])
  merged = np.concatenate([faces + k * nv for k in range(len(vertices))])
  colors = None
  if face_colors is not None:
    if isinstance(face_colors, (list, tuple)):
      colors = np.concatenate([np.asarray(c, np.float64) for c in face_colors])
    else:
      colors = np.tile(np.asarray(face_colors, np.float64), (len(vertices), 1))
  return verts, merged, colors


def render_overlay(
  image_bgr: np.ndarray,
  vertices_cam,
  faces: np.ndarray,
  camera: Camera,
  face_colors=None,
  alpha: float = OVERLAY_ALPHA,
) -> np.ndarray:
  """[H, 2W, 3] uint8 BGR: mesh over the image | side view on white.

  ``vertices_cam`` is one [V, 3] mesh or a list of them (several people,
  all sharing ``faces``; an empty list draws nobody), ``face_colors`` one
  [F, 3] array (for every mesh) or a list of them (one per mesh). Several
  meshes are rasterised together (correct occlusion). The side view turns
  the meshes 90 degrees about the vertical axis through their centroid and
  frames them with the same focal length.
  """
  from hybrik_jax import render

  h, w = image_bgr.shape[:2]
  verts, faces, face_colors = _merge_meshes(vertices_cam, faces, face_colors)
  if verts is None:
    white = np.full((h, w, 3), 255, np.uint8)
    return np.ascontiguousarray(np.concatenate([image_bgr, white], axis=1))
  rgb = np.ascontiguousarray(image_bgr[..., ::-1])
  front = render.render_mesh(
    verts,
    faces,
    camera.focal,
    camera.princpt,
    (h, w),
    face_colors=face_colors,
    background=rgb,
  )
  mask = front["mask"][..., None]
  blend = np.where(mask, alpha * front["image"] + (1 - alpha) * rgb, rgb)
  side_verts = render.side_view(verts)
  fitted, focal, princpt = render.fit_camera(
    side_verts, (h, w), focal=camera.focal, margin=0.08
  )
  side = render.render_mesh(
    fitted, faces, focal, princpt, (h, w), face_colors=face_colors
  )["image"]
  panel = np.concatenate([np.round(blend).astype(np.uint8), side], axis=1)
  return np.ascontiguousarray(panel[..., ::-1])


def render_camera(
  camera: Camera,
  vertices: Sequence[np.ndarray],
  focals: Sequence[float],
  princpt: Sequence[float] | None = None,
) -> tuple[Camera, list[np.ndarray]]:
  """One camera and meshes that draw people seen with different focals.

  mmhuman3d checkpoints place everyone in ``camera`` (every ``focal`` equals
  ``camera.focal``): returned unchanged. The authors' camera models give
  each person their own focal length (``1000 / 256 * box width``); to
  rasterise them together, each mesh's depths are multiplied by
  ``focals[0] / focal`` and all are drawn with focal ``focals[0]`` and the
  results' principal point, which reproduces every person's own projection
  exactly (occlusion between people is ordered by the scaled depths).
  """
  vertices = list(vertices)
  if not vertices or all(float(f) == camera.focal for f in focals):
    return camera, vertices
  ref = float(focals[0])
  if princpt is None:
    princpt = camera.princpt
  cam = Camera(ref, tuple(float(c) for c in princpt))
  out = []
  for v, f in zip(vertices, focals):
    v = np.array(v, np.float64)  # [V, 3]
    v[:, 2] *= ref / float(f)
    out.append(v.astype(np.float32))
  return cam, out


def draw_labels(
  panel_bgr: np.ndarray,
  boxes_xywh: Sequence[np.ndarray],
  persons: Sequence[int],
  prefix: str = "id",
) -> np.ndarray:
  """Draws each person's box and ``<prefix> <n>`` label, in the person's
  colour (:func:`person_rgb`), on the left panel of an overlay (in place;
  returned)."""
  h, w = panel_bgr.shape[0], panel_bgr.shape[1] // 2
  thick = max(1, round(min(h, w) / 240))
  scale = max(0.35, min(h, w) / 600)
  for box, person in zip(boxes_xywh, persons):
    x, y, bw, bh = (float(v) for v in box)
    x1, y1 = int(round(max(x, 0))), int(round(max(y, 0)))
    x2, y2 = int(round(min(x + bw, w - 1))), int(round(min(y + bh, h - 1)))
    color = tuple(int(c) for c in person_rgb(person)[::-1])  # BGR
    cv2.rectangle(panel_bgr, (x1, y1), (x2, y2), color, thick)
    text = f"{prefix} {int(person)}"
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    ty = y1 - 2 if y1 - th - base - 2 >= 0 else y1 + th + 2
    cv2.rectangle(
      panel_bgr, (x1, ty - th - 2), (min(x1 + tw + 2, w - 1), ty + 2), color, -1
    )
    cv2.putText(
      panel_bgr,
      text,
      (x1 + 1, ty),
      cv2.FONT_HERSHEY_SIMPLEX,
      scale,
      (255, 255, 255),
      1,
      cv2.LINE_AA,
    )
  return panel_bgr


def write_obj(
  path: str | Path,
  vertices,
  faces: np.ndarray,
  names: Sequence[str] | None = None,
) -> None:
  """Wavefront OBJ: ``v x y z`` (metres) and 1-based ``f i j k``.

  ``vertices`` is one [V, 3] mesh, or a list of meshes sharing ``faces``
  written as objects ``o <names[k]>`` (default ``person<k>``; an empty list
  writes the header only).
  """
  faces = np.asarray(faces, np.int64)
  lines = [
    "# hybrik-jax demo mesh: camera frame (OpenCV: x right, y down, "
    "z forward), metres"
  ]
  if isinstance(vertices, (list, tuple)):
    meshes = [np.asarray(v, np.float64) for v in vertices]
    names = names or [f"person{k}" for k in range(len(meshes))]
  else:
    meshes, names = [np.asarray(vertices, np.float64)], None
  offset = 1
  for k, verts in enumerate(meshes):
    if names is not None:
      lines.append(f"o {names[k]}")
    lines += [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in verts]
    lines += [f"f {a} {b} {c}" for a, b, c in faces + offset]
    offset += verts.shape[0]
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

# Present when every result has them (the authors' camera models).
OPTIONAL_NPZ_KEYS = ("transl",)


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
  input), focal, princpt [2] (px), bbox_xywh [4] (px); with the authors'
  camera models also transl [3] (m, the network's camera translation:
  vertices = their pred_vertices + transl).
  """
  keys = NPZ_KEYS + tuple(
    k for k in OPTIONAL_NPZ_KEYS if results and all(k in r for r in results)
  )
  if stack:
    return {k: np.stack([r[k] for r in results]) for k in keys}
  return {k: np.asarray(results[0][k]) for k in keys}


def empty_result_arrays(num_vertices: int) -> dict[str, np.ndarray]:
  """The stacked arrays of nobody: ``result_arrays`` shapes with a leading 0
  (``num_vertices``: the body model's V)."""
  shapes = {
    "pose": (24, 3, 3),
    "betas": (10,),
    "phis": (23, 2),
    "xyz_24": (24, 3),
    "xyz_17": (17, 3),
    "uvd": (29, 3),
    "uv": (29, 2),
    "vertices": (num_vertices, 3),
    "pelvis_cam": (3,),
    "pelvis_prior": (3,),
    "placement_fit": (),
    "t0": (3,),
    "joint_root_mm": (3,),
    "focal": (),
    "princpt": (2,),
    "bbox_xywh": (4,),
  }
  return {
    k: np.zeros((0,) + shapes[k], bool if k == "placement_fit" else np.float32)
    for k in NPZ_KEYS
  }
