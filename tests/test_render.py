"""Tests of the numpy z-buffer rasteriser (hybrik_jax/render.py)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from hybrik_jax import render


def _unproject(uv, z, focal, princpt):
  """Camera-frame points at depth z that project to pixels uv [N, 2]."""
  uv = np.asarray(uv, np.float64)
  z = np.broadcast_to(np.asarray(z, np.float64), uv.shape[:1])
  xy = (uv - np.asarray(princpt)) / np.asarray(focal) * z[:, None]
  return np.concatenate([xy, z[:, None]], axis=1)


def _brute_force_cover(tri_uv, h, w):
  """Per-pixel barycentrics of a 2D triangle [3, 2] at all pixel centres."""
  ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
  a, b, c = tri_uv
  area = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])

  def edge(p, q):
    return ((q[0] - p[0]) * (ys - p[1]) - (q[1] - p[1]) * (xs - p[0])) / area

  bary = np.stack([edge(b, c), edge(c, a), edge(a, b)], -1)  # [H, W, 3]
  return bary.min(-1)


def test_project_points_pinhole_formula():
  pts = np.array([[0.3, -0.2, 2.0], [-1.0, 0.5, 4.0], [0.0, 0.0, 1.0]])
  uv = render.project_points(pts, (1000.0, 1100.0), (320.0, 240.0))
  expected = np.stack(
    [
      1000.0 * pts[:, 0] / pts[:, 2] + 320.0,
      1100.0 * pts[:, 1] / pts[:, 2] + 240.0,
    ],
    -1,
  )
  np.testing.assert_allclose(uv, expected, rtol=0, atol=1e-9)


def test_quad_covers_exactly_the_expected_pixels():
  focal, princpt, (h, w) = 100.0, (32.0, 24.0), (48, 64)
  # A screen-aligned rectangle from u in [9.5, 20.5], v in [4.5, 30.5] at
  # z = 2 m: covers pixel centres columns 10..20 and rows 5..30.
  corners = np.array([[9.5, 4.5], [20.5, 4.5], [20.5, 30.5], [9.5, 30.5]])
  verts = _unproject(corners, 2.0, focal, princpt)
  faces = np.array([[0, 1, 2], [0, 2, 3]])
  out = render.render_mesh(
    verts, faces, focal, princpt, (h, w), face_colors=[255, 0, 0], shade=False
  )
  expected = np.zeros((h, w), bool)
  expected[5:31, 10:21] = True
  np.testing.assert_array_equal(out["mask"], expected)
  np.testing.assert_allclose(out["depth"][expected], 2.0, rtol=1e-6)
  assert np.isinf(out["depth"][~expected]).all()
  np.testing.assert_array_equal(
    out["image"][expected], [[255, 0, 0]] * int(expected.sum())
  )
  np.testing.assert_array_equal(out["image"][~expected], 255)


@pytest.mark.parametrize("seed", range(5))
def test_random_triangle_matches_brute_force(seed):
  rng = np.random.default_rng(seed)
  h, w, focal, princpt = 40, 50, 80.0, (25.0, 20.0)
  tri_uv = rng.uniform([-5, -5], [w + 5, h + 5], size=(3, 2))
  verts = _unproject(tri_uv, rng.uniform(1.0, 3.0, 3), focal, princpt)
  face_index, _ = render.rasterize(
    verts, np.array([[0, 1, 2]]), focal, princpt, (h, w)
  )
  min_bary = _brute_force_cover(tri_uv, h, w)
  certain = np.abs(min_bary) > 1e-7  # pixel centres not on an edge
  np.testing.assert_array_equal(
    (face_index >= 0)[certain], (min_bary >= 0)[certain]
  )
  assert (face_index >= 0).sum() > 0 or (min_bary >= 0).sum() == 0


def test_perspective_correct_depth_on_tilted_plane():
  focal, princpt, (h, w) = 60.0, (20.0, 20.0), (40, 40)
  # Plane z = 3 + 0.5 x, triangle covering most of the image.
  xy = np.array([[-2.0, -2.0], [2.0, -2.0], [0.0, 2.0]])
  verts = np.concatenate([xy, 3.0 + 0.5 * xy[:, :1]], axis=1)
  _, depth = render.rasterize(
    verts, np.array([[0, 1, 2]]), focal, princpt, (h, w)
  )
  rows, cols = np.nonzero(np.isfinite(depth))
  assert rows.size > 100
  # Ray through pixel (u, v): (x, y, z) = z ((u - c) / f, (v - c) / f, 1);
  # on the plane z = 3 + 0.5 z (u - c) / f  =>  z = 3 / (1 - 0.5 (u - c) / f).
  expected = 3.0 / (1.0 - 0.5 * (cols - princpt[0]) / focal)
  np.testing.assert_allclose(depth[rows, cols], expected, rtol=1e-6)


@pytest.mark.parametrize("near_first", [True, False])
def test_zbuffer_keeps_nearest_triangle(near_first):
  focal, princpt, (h, w) = 50.0, (16.0, 16.0), (32, 32)
  near = _unproject([[2.0, 2.0], [20.0, 2.0], [2.0, 20.0]], 2.0, focal, princpt)
  far = _unproject([[8.0, 8.0], [30.0, 8.0], [8.0, 30.0]], 3.0, focal, princpt)
  verts = np.concatenate([near, far] if near_first else [far, near])
  faces = np.array([[0, 1, 2], [3, 4, 5]])
  near_id = 0 if near_first else 1
  colors = np.zeros((2, 3))
  colors[near_id] = [255, 0, 0]
  colors[1 - near_id] = [0, 0, 255]
  out = render.render_mesh(
    verts, faces, focal, princpt, (h, w), face_colors=colors, shade=False
  )
  # (10, 10) is inside both triangles, (12, 15) only in the far one,
  # (4, 4) only in the near one.
  assert out["face_index"][10, 10] == near_id
  np.testing.assert_array_equal(out["image"][10, 10], [255, 0, 0])
  np.testing.assert_allclose(out["depth"][10, 10], 2.0, rtol=1e-6)
  assert out["face_index"][15, 12] == 1 - near_id
  np.testing.assert_allclose(out["depth"][15, 12], 3.0, rtol=1e-6)
  np.testing.assert_array_equal(out["image"][15, 12], [0, 0, 255])
  assert out["face_index"][4, 4] == near_id


def test_vertex_projection_lands_on_rendered_pixel():
  rng = np.random.default_rng(0)
  focal, princpt, (h, w) = (900.0, 950.0), (70.0, 50.0), (100, 140)
  for _ in range(10):
    p = np.array(
      [rng.uniform(-0.2, 0.2), rng.uniform(-0.15, 0.15), rng.uniform(2.0, 4.0)]
    )
    u, v = render.project_points(p, focal, princpt)
    # A tiny triangle (< 1 px) around the point, facing the camera.
    d = 0.4 * p[2] / focal[0]
    tri = p + np.array([[-d, -d, 0.0], [d, -d, 0.0], [0.0, d, 0.0]])
    out = render.render_mesh(tri, np.array([[0, 1, 2]]), focal, princpt, (h, w))
    rows, cols = np.nonzero(out["mask"])
    # The covered pixels (if the sub-pixel triangle hits a centre) are the
    # nearest pixel centre to the projection.
    assert np.all(np.abs(cols - u) <= 0.5 + 1e-9)
    assert np.all(np.abs(rows - v) <= 0.5 + 1e-9)


def test_background_overlay_and_behind_camera():
  h, w = 20, 30
  rng = np.random.default_rng(1)
  bg = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
  # One triangle in front, one behind the camera (must be dropped).
  verts = np.array(
    [
      [-0.1, -0.1, 1.0],
      [0.1, -0.1, 1.0],
      [0.0, 0.1, 1.0],
      [-0.1, -0.1, -1.0],
      [0.1, -0.1, -1.0],
      [0.0, 0.1, -1.0],
    ]
  )
  out = render.render_mesh(
    verts,
    np.array([[0, 1, 2], [3, 4, 5]]),
    50.0,
    (15.0, 10.0),
    (h, w),
    background=bg,
  )
  assert out["mask"].any()
  np.testing.assert_array_equal(out["image"][~out["mask"]], bg[~out["mask"]])
  assert set(np.unique(out["face_index"])) == {-1, 0}
  with pytest.raises(ValueError, match="background"):
    render.render_mesh(
      verts,
      np.array([[0, 1, 2]]),
      50.0,
      (15.0, 10.0),
      (h, w),
      background=bg[:, :10],
    )


def test_lambert_shading_intensity():
  # A triangle facing the light gets full colour; edge-on gets ambient.
  verts = np.array([[0.0, 0.0, 2.0], [1.0, 0.0, 2.0], [0.0, 1.0, 2.0]])
  col = np.array([[200.0, 100.0, 50.0]])
  lit = render.lambert_shade(
    verts, np.array([[0, 1, 2]]), col, light_dir=(0, 0, -1), ambient=0.3
  )
  np.testing.assert_allclose(lit, col, rtol=1e-12)
  grazing = render.lambert_shade(
    verts, np.array([[0, 1, 2]]), col, light_dir=(1, 0, 0), ambient=0.3
  )
  np.testing.assert_allclose(grazing, 0.3 * col, rtol=1e-12)


def test_part_colors_and_side_view():
  weights = np.zeros((5, 3))
  weights[[0, 1], 0] = 1.0
  weights[2, 2] = 1.0
  weights[[3, 4], 1] = 1.0
  faces = np.array([[0, 1, 2], [2, 3, 4]])
  np.testing.assert_array_equal(
    render.dominant_face_parts(weights, faces), [0, 1]
  )
  palette = np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9]])
  np.testing.assert_array_equal(
    render.part_face_colors(weights, faces, palette), [[1, 2, 3], [4, 5, 6]]
  )
  assert len({tuple(c) for c in render.part_palette(24)}) == 24

  pts = np.array(
    [[1.0, 0.0, 5.0], [-1.0, 2.0, 5.0], [0.0, -2.0, 3.0], [0.0, 0.0, 7.0]]
  )
  side = render.side_view(pts)
  c = pts.mean(0)
  np.testing.assert_allclose(side.mean(0), c, atol=1e-12)
  np.testing.assert_allclose(side[:, 1], pts[:, 1])  # vertical kept
  # +90 deg about +y: offset (dx, dz) -> (dz, -dx).
  off = pts - c
  np.testing.assert_allclose(
    side - c, np.stack([off[:, 2], off[:, 1], -off[:, 0]], -1), atol=1e-12
  )


def test_body_render_is_fast_and_covers_body(smpl_model):
  model = smpl_model
  faces = np.asarray(model.faces)
  # Template (+y up, facing +z) turned to face the camera (y down).
  verts = np.asarray(model.v_template, np.float64) * [1.0, -1.0, -1.0]
  verts, focal, princpt = render.fit_camera(verts, (256, 256), 1000.0)
  colors = render.part_face_colors(np.asarray(model.lbs_weights), faces)
  best = np.inf
  for _ in range(3):
    t0 = time.perf_counter()
    out = render.render_mesh(
      verts, faces, focal, princpt, (256, 256), face_colors=colors
    )
    best = min(best, time.perf_counter() - t0)
  assert best < 1.0, f"render took {best:.3f} s"
  # The silhouette matches the projected vertex extent (T-pose fits the
  # image with a 10% margin on the limiting side).
  uv = render.project_points(verts, focal, princpt)
  rows, cols = np.nonzero(out["mask"])
  assert (
    abs(cols.min() - uv[:, 0].min()) < 2
    and abs(cols.max() - uv[:, 0].max()) < 2
  )
  assert (
    abs(rows.min() - uv[:, 1].min()) < 2
    and abs(rows.max() - uv[:, 1].max()) < 2
  )
  assert 0.05 < out["mask"].mean() < 0.5
  # Nearest visible surface is never closer than the nearest vertex.
  assert out["depth"][out["mask"]].min() >= verts[:, 2].min() - 1e-6
