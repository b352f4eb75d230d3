"""Tests of hybrik_jax.data.images, the one image reader (BGR uint8)."""

from __future__ import annotations

import re

import cv2
import numpy as np
import pytest

from hybrik_jax.data import images
from hybrik_jax.demo import inputs as demo_inputs


def _random_bgr(h: int = 23, w: int = 31) -> np.ndarray:
  return np.random.default_rng(0).integers(0, 256, (h, w, 3), np.uint8)


def test_png_round_trip(tmp_path):
  """A PNG written by cv2 reads back as the very array (BGR, uint8)."""
  bgr = _random_bgr()  # [H, W, 3]
  path = tmp_path / "a.png"
  assert cv2.imwrite(str(path), bgr)
  for got in (
    images.read_image(path),
    images.read_image(str(path)),
    images.decode_image(path.read_bytes(), "a.png"),
  ):
    assert got.dtype == np.uint8 and got.shape == bgr.shape
    np.testing.assert_array_equal(got, bgr)


def test_same_pixels_as_imread(tmp_path):
  """Same result as ``cv2.imread(path, cv2.IMREAD_COLOR)`` (the demo's old
  reader): lossy JPEG, grayscale (-> 3 channels), alpha (dropped) and
  16-bit (-> 8 bits) files."""
  rng = np.random.default_rng(1)
  files = {
    "a.jpg": _random_bgr(),
    "gray.png": rng.integers(0, 256, (9, 13), np.uint8),
    "alpha.png": rng.integers(0, 256, (9, 13, 4), np.uint8),
    "deep.png": rng.integers(0, 65536, (9, 13, 3), np.uint16),
  }
  for name, array in files.items():
    path = tmp_path / name
    assert cv2.imwrite(str(path), array)
    got = images.read_image(path)
    assert got.dtype == np.uint8 and got.shape[2] == 3, name
    np.testing.assert_array_equal(
      got, cv2.imread(str(path), cv2.IMREAD_COLOR), err_msg=name
    )


def test_errors_name_the_file(tmp_path):
  missing = tmp_path / "missing.png"
  with pytest.raises(
    FileNotFoundError, match=re.escape(f"image file not found: {missing}")
  ):
    images.read_image(missing)
  bad = tmp_path / "notes.png"
  bad.write_text("not an image")
  with pytest.raises(ValueError, match=re.escape(f"cannot decode image {bad}")):
    images.read_image(bad)
  with pytest.raises(ValueError, match=r"cannot decode image record\[3\]"):
    images.decode_image(b"\x00" * 10, "record[3]")
  # The demo reports each (and a folder) as one DemoError naming the path.
  for path in (missing, bad, tmp_path):
    with pytest.raises(
      demo_inputs.DemoError, match=re.escape(f"cannot read image {path}") + "$"
    ):
      demo_inputs.load_image(path)
