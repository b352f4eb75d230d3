"""A small numpy z-buffer rasteriser for triangle meshes (no GPU, no OpenGL).

Used by the synthetic dataset generator and the demos to draw SMPL meshes.

Conventions (OpenCV pinhole camera): camera frame x right, y down, z forward
(metres); a camera-frame point (x, y, z) projects to pixel
``u = f_x x / z + c_x``, ``v = f_y y / z + c_y``; pixel (col, row) has its
centre at integer coordinates (u, v) = (col, row), so it covers
[col - 0.5, col + 0.5) x [row - 0.5, row + 0.5).

Rasterisation is vectorised over triangles: every (triangle, bounding-box
row) pair gets its exact covered column span from the barycentric edge
functions, the spans are expanded into fragments, and the fragments are
resolved by a depth sort (nearest fragment per pixel wins). No Python loop
runs over pixels or triangles (only over memory-bounded chunks of them).
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence

import numpy as np

# Triangles whose nearest vertex is closer than this (metres) are dropped.
NEAR_PLANE = 1e-3
# Upper bound on bounding-box pixels of the triangles processed at once.
_MAX_CANDIDATES = 1 << 22
# Default mesh colour (RGB, 0..255) and light (camera frame, pointing from the
# surface towards the light: above-left of the camera).
DEFAULT_COLOR = (180, 190, 205)
DEFAULT_LIGHT_DIR = (-0.3, -0.5, -1.0)

FloatPair = float | Sequence[float] | np.ndarray


def _pair(x: FloatPair, name: str) -> np.ndarray:
  arr = np.asarray(x, dtype=np.float64).reshape(-1)
  if arr.size == 1:
    arr = np.repeat(arr, 2)
  if arr.size != 2:
    raise ValueError(
      f"{name} must be a scalar or a pair, got shape {np.shape(x)}"
    )
  return arr


def project_points(
  points: np.ndarray, focal: FloatPair, princpt: FloatPair
) -> np.ndarray:
  """Pinhole projection of camera-frame points.

  Args:
    points: [..., 3] camera-frame points (x right, y down, z forward), any
      unit (only ratios x/z, y/z matter).
    focal: f or (f_x, f_y) in pixels.
    princpt: (c_x, c_y) in pixels.

  Returns:
    [..., 2] pixel coordinates (u, v).
  """
  points = np.asarray(points, dtype=np.float64)
  f = _pair(focal, "focal")
  c = _pair(princpt, "princpt")
  return points[..., :2] / points[..., 2:3] * f + c


def face_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
  """Unit normals [F, 3] of the triangles (right-hand rule on index order)."""
  tri = vertices[faces]  # [F, 3, 3]
  n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
  norm = np.linalg.norm(n, axis=-1, keepdims=True)
  return n / np.maximum(norm, 1e-12)


def lambert_shade(
  vertices: np.ndarray,
  faces: np.ndarray,
  face_colors: np.ndarray,
  light_dir: Sequence[float] = DEFAULT_LIGHT_DIR,
  ambient: float = 0.35,
) -> np.ndarray:
  """Two-sided Lambert shading of per-face colours.

  Args:
    vertices: [V, 3] camera-frame vertices.
    faces: [F, 3] triangle indices.
    face_colors: [F, 3] RGB in 0..255.
    light_dir: direction from the surface towards the (directional) light,
      camera frame.
    ambient: ambient fraction in [0, 1].

  Returns:
    [F, 3] float RGB in 0..255.
  """
  light = np.asarray(light_dir, dtype=np.float64)
  light = light / np.linalg.norm(light)
  cos = np.abs(face_normals(vertices, faces) @ light)  # [F]
  intensity = ambient + (1.0 - ambient) * cos
  return np.clip(face_colors * intensity[:, None], 0.0, 255.0)


def _ragged_arange(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """For counts [T] returns (owner [sum], index within owner [sum])."""
  owner = np.repeat(np.arange(counts.size), counts)
  starts = np.cumsum(counts) - counts
  return owner, np.arange(owner.size) - starts[owner]


def rasterize(
  vertices: np.ndarray,
  faces: np.ndarray,
  focal: FloatPair,
  princpt: FloatPair,
  image_size: tuple[int, int],
) -> tuple[np.ndarray, np.ndarray]:
  """Z-buffer rasterisation of a triangle mesh.

  Coverage is exact per pixel row: for every (triangle, row of its bounding
  box) the three barycentric edge functions, linear in the column, give the
  covered column span; the spans are expanded to fragments, whose depths come
  from the plane of 1/z (perspective-correct: 1/z is linear in screen space).
  A pixel centre is covered when all barycentrics are >= 0 (edges are
  inclusive; a pixel on a shared edge may get both triangles and the depth
  test picks one).

  Args:
    vertices: [V, 3] camera-frame vertices (metres; z > 0 in front).
    faces: [F, 3] int triangle indices.
    focal: f or (f_x, f_y) in pixels.
    princpt: (c_x, c_y) in pixels.
    image_size: (H, W) in pixels.

  Returns:
    face_index [H, W] int32: index of the visible face, -1 for background;
    depth [H, W] float32: camera z (metres) of the visible surface, +inf for
    background. Ties in depth go to the lower face index.
  """
  vertices = np.asarray(vertices, dtype=np.float64)
  faces = np.asarray(faces, dtype=np.int64)
  if vertices.ndim != 2 or vertices.shape[1] != 3:
    raise ValueError(f"vertices must be [V, 3], got {vertices.shape}")
  if faces.ndim != 2 or faces.shape[1] != 3:
    raise ValueError(f"faces must be [F, 3], got {faces.shape}")
  h, w = int(image_size[0]), int(image_size[1])
  face_index = np.full(h * w, -1, dtype=np.int32)
  depth = np.full(h * w, np.inf, dtype=np.float32)
  empty = (face_index.reshape(h, w), depth.reshape(h, w))
  if faces.shape[0] == 0:
    return empty

  uv = project_points(vertices, focal, princpt)  # [V, 2]
  inv_z = 1.0 / np.where(vertices[:, 2] > 0, vertices[:, 2], 1.0)  # [V]
  tri = uv[faces]  # [F, 3, 2]

  # Bounding boxes of pixel centres (integer coordinates) inside the image.
  x0 = np.maximum(np.ceil(tri[..., 0].min(1)), 0)
  x1 = np.minimum(np.floor(tri[..., 0].max(1)), w - 1)
  y0 = np.maximum(np.ceil(tri[..., 1].min(1)), 0)
  y1 = np.minimum(np.floor(tri[..., 1].max(1)), h - 1)
  e1 = tri[:, 1] - tri[:, 0]
  e2 = tri[:, 2] - tri[:, 0]
  area = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]  # signed, doubled
  valid = (
    (vertices[faces, 2].min(1) > NEAR_PLANE)
    & (x1 >= x0)
    & (y1 >= y0)
    & (np.abs(area) > 1e-12)
  )
  ids = np.nonzero(valid)[0]
  if ids.size == 0:
    return empty
  tri, area = tri[ids], area[ids]
  x0, x1 = x0[ids].astype(np.int64), x1[ids].astype(np.int64)
  y0, y1 = y0[ids].astype(np.int64), y1[ids].astype(np.int64)

  # Barycentric weight of vertex i as a plane a_i x + b_i y + c_i, from the
  # edge (j, k) opposite to it, normalised by the signed area.
  coef_a = np.empty((ids.size, 3))
  coef_b = np.empty((ids.size, 3))
  coef_c = np.empty((ids.size, 3))
  for i, (j, k) in enumerate(((1, 2), (2, 0), (0, 1))):
    ax, ay = tri[:, j, 0], tri[:, j, 1]
    bx, by = tri[:, k, 0], tri[:, k, 1]
    coef_a[:, i] = -(by - ay) / area
    coef_b[:, i] = (bx - ax) / area
    coef_c[:, i] = ((by - ay) * ax - (bx - ax) * ay) / area
  iz = inv_z[faces[ids]]  # [T, 3]
  # 1/z plane: sum_i w_i / z_i.
  iz_a = np.sum(coef_a * iz, axis=1)
  iz_b = np.sum(coef_b * iz, axis=1)
  iz_c = np.sum(coef_c * iz, axis=1)

  frag_pix, frag_z, frag_face = [], [], []
  rows = y1 - y0 + 1
  # Chunk over triangles so that the bounding-box pixels of a chunk stay
  # below _MAX_CANDIDATES (bounds the memory of the fragment arrays).
  boxes = np.cumsum(rows * (x1 - x0 + 1))
  bounds = [0]
  while bounds[-1] < ids.size:
    done = boxes[bounds[-1] - 1] if bounds[-1] else 0
    nxt = int(np.searchsorted(boxes, done + _MAX_CANDIDATES, side="right"))
    bounds.append(max(nxt, bounds[-1] + 1))
  eps = 1e-9
  for lo_t, hi_t in zip(bounds[:-1], bounds[1:]):
    t_row, r = _ragged_arange(rows[lo_t:hi_t])
    t_row += lo_t
    y = (y0[t_row] + r).astype(np.float64)  # [R]
    lo = x0[t_row].astype(np.float64)
    hi = x1[t_row].astype(np.float64)
    for i in range(3):
      a = coef_a[t_row, i]
      rest = coef_b[t_row, i] * y + coef_c[t_row, i]  # w_i = a x + rest >= 0
      safe_a = np.where(a == 0, 1.0, a)
      bound = -rest / safe_a
      lo = np.where(a > 0, np.maximum(lo, np.ceil(bound - eps)), lo)
      hi = np.where(a < 0, np.minimum(hi, np.floor(bound + eps)), hi)
      hi = np.where((a == 0) & (rest < -eps), lo - 1, hi)
    span = np.maximum(hi - lo + 1, 0).astype(np.int64)
    row_of, c = _ragged_arange(span)
    if row_of.size == 0:
      continue
    px = lo[row_of].astype(np.int64) + c
    py = y[row_of].astype(np.int64)
    t = t_row[row_of]
    z_inv = iz_a[t] * px + iz_b[t] * py + iz_c[t]
    frag_pix.append(py * w + px)
    frag_z.append(1.0 / z_inv)
    frag_face.append(ids[t])

  if not frag_pix:
    return empty
  pix = np.concatenate(frag_pix)
  z = np.concatenate(frag_z)
  fid = np.concatenate(frag_face)
  # Z-buffer: nearest fragment per pixel; equal depths go to the lower face.
  zbuf = np.full(h * w, np.inf)
  np.minimum.at(zbuf, pix, z)
  win = z == zbuf[pix]
  fbuf = np.full(h * w, np.iinfo(np.int64).max)
  np.minimum.at(fbuf, pix[win], fid[win])
  hit = np.isfinite(zbuf)
  face_index[hit] = fbuf[hit]
  depth[hit] = zbuf[hit]
  return face_index.reshape(h, w), depth.reshape(h, w)


def render_mesh(
  vertices: np.ndarray,
  faces: np.ndarray,
  focal: FloatPair,
  princpt: FloatPair,
  image_size: tuple[int, int],
  face_colors: np.ndarray | None = None,
  background: np.ndarray | None = None,
  light_dir: Sequence[float] = DEFAULT_LIGHT_DIR,
  ambient: float = 0.35,
  shade: bool = True,
) -> dict:
  """Renders a shaded triangle mesh with a pinhole camera.

  Args:
    vertices: [V, 3] camera-frame vertices in metres (x right, y down, z
      forward).
    faces: [F, 3] int triangle indices.
    focal: f or (f_x, f_y) in pixels.
    princpt: (c_x, c_y) in pixels.
    image_size: (H, W) of the output image.
    face_colors: [F, 3] RGB (0..255) per face, or [3] for one colour; default
      a light grey-blue.
    background: [H, W, 3] uint8 RGB image to draw over (overlay), or None for
      a white background.
    light_dir: direction towards the light (camera frame).
    ambient: ambient light fraction.
    shade: apply two-sided Lambert shading (else flat colours).

  Returns:
    dict with 'image' [H, W, 3] uint8 RGB, 'depth' [H, W] float32 (metres,
    +inf where empty), 'mask' [H, W] bool (mesh coverage), 'face_index'
    [H, W] int32 (visible face, -1 where empty).
  """
  vertices = np.asarray(vertices, dtype=np.float64)
  faces = np.asarray(faces, dtype=np.int64)
  h, w = int(image_size[0]), int(image_size[1])
  if face_colors is None:
    face_colors = DEFAULT_COLOR
  face_colors = np.asarray(face_colors, dtype=np.float64)
  if face_colors.ndim == 1:
    face_colors = np.broadcast_to(face_colors, (faces.shape[0], 3))
  if face_colors.shape != (faces.shape[0], 3):
    raise ValueError(
      f"face_colors must be [F, 3] = [{faces.shape[0]}, 3], "
      f"got {face_colors.shape}"
    )
  if background is None:
    image = np.full((h, w, 3), 255, dtype=np.uint8)
  else:
    background = np.asarray(background)
    if background.shape != (h, w, 3):
      raise ValueError(
        f"background must be [H, W, 3] = [{h}, {w}, 3], got {background.shape}"
      )
    image = background.astype(np.uint8, copy=True)

  face_index, depth = rasterize(vertices, faces, focal, princpt, (h, w))
  mask = face_index >= 0
  colors = (
    lambert_shade(vertices, faces, face_colors, light_dir, ambient)
    if shade
    else face_colors
  )
  image[mask] = np.round(colors[face_index[mask]]).astype(np.uint8)
  return {
    "image": image,
    "depth": depth,
    "mask": mask,
    "face_index": face_index,
  }


def part_palette(num_parts: int = 24, seed: int = 0) -> np.ndarray:
  """[num_parts, 3] uint8 distinct saturated colours (hue wheel, shuffled)."""
  hues = np.arange(num_parts) / num_parts
  order = np.random.default_rng(seed).permutation(num_parts)
  cols = []
  for i, k in enumerate(order):
    sat = 0.55 + 0.35 * (i % 2)
    val = 0.95 - 0.2 * ((i // 2) % 2)
    cols.append(colorsys.hsv_to_rgb(hues[k], sat, val))
  return np.round(np.asarray(cols) * 255).astype(np.uint8)


def dominant_face_parts(
  lbs_weights: np.ndarray, faces: np.ndarray
) -> np.ndarray:
  """Skinning joint that dominates each face.

  Args:
    lbs_weights: [V, J] skinning weights.
    faces: [F, 3] triangle indices.

  Returns:
    [F] int index of the joint with the largest summed weight over the face's
    three vertices.
  """
  lbs_weights = np.asarray(lbs_weights)
  faces = np.asarray(faces, dtype=np.int64)
  return np.argmax(lbs_weights[faces].sum(axis=1), axis=-1)


def part_face_colors(
  lbs_weights: np.ndarray, faces: np.ndarray, palette: np.ndarray | None = None
) -> np.ndarray:
  """Colours every face by its dominant skinning joint.

  Args:
    lbs_weights: [V, J] skinning weights (SMPL: J = 24).
    faces: [F, 3] triangle indices.
    palette: [J, 3] RGB colours; default ``part_palette(J)``.

  Returns:
    [F, 3] float RGB in 0..255.
  """
  num_parts = np.shape(lbs_weights)[1]
  if palette is None:
    palette = part_palette(num_parts)
  palette = np.asarray(palette, dtype=np.float64)
  if palette.shape[0] < num_parts:
    raise ValueError(
      f"palette has {palette.shape[0]} colours, need {num_parts}"
    )
  return palette[dominant_face_parts(lbs_weights, faces)]


def rotate_about_vertical(
  vertices: np.ndarray,
  angle_deg: float = 90.0,
  center: np.ndarray | None = None,
) -> np.ndarray:
  """Rotates a camera-frame mesh about the vertical (camera y) axis.

  Args:
    vertices: [V, 3] camera-frame vertices (y down).
    angle_deg: rotation angle in degrees, right-handed about +y (a positive
      angle turns +z towards +x).
    center: [3] pivot; default the vertex centroid.

  Returns:
    [V, 3] rotated vertices (same units).
  """
  vertices = np.asarray(vertices, dtype=np.float64)
  if center is None:
    center = vertices.mean(axis=0)
  a = np.deg2rad(angle_deg)
  c, s = np.cos(a), np.sin(a)
  rot = np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])
  return (vertices - center) @ rot.T + center


def side_view(vertices: np.ndarray, angle_deg: float = 90.0) -> np.ndarray:
  """The mesh turned 90 degrees about the vertical axis through its centroid."""
  return rotate_about_vertical(vertices, angle_deg)


def fit_camera(
  vertices: np.ndarray,
  image_size: tuple[int, int],
  focal: float = 1000.0,
  margin: float = 0.1,
) -> tuple[np.ndarray, float, np.ndarray]:
  """Translates a mesh so it fills an image with a given focal length.

  Args:
    vertices: [V, 3] vertices in a camera-oriented frame (x right, y down).
    image_size: (H, W) pixels.
    focal: focal length in pixels.
    margin: fraction of the image left free on each side.

  Returns:
    (translated vertices [V, 3] in front of the camera, focal, princpt [2]).
  """
  vertices = np.asarray(vertices, dtype=np.float64)
  h, w = image_size
  lo, hi = vertices.min(0), vertices.max(0)
  center = (lo + hi) / 2
  ext_x, ext_y = hi[0] - lo[0], hi[1] - lo[1]
  usable = 1.0 - 2.0 * margin
  # Distance of the front face so that the extents fit both image sides.
  dist = max(focal * ext_x / (usable * w), focal * ext_y / (usable * h), 1e-3)
  depth_half = (hi[2] - lo[2]) / 2
  shift = np.array([-center[0], -center[1], dist + depth_half - center[2]])
  return vertices + shift, focal, np.array([w / 2.0, h / 2.0])
