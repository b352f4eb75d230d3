"""Demo inputs: person boxes, image files and video frames.

Boxes are ``x, y, w, h`` in pixels (top-left corner + size), [4] float64.
Images and frames are [H, W, 3] uint8 BGR.

``--bbox-file`` formats (keys: image file names -- base name or path relative
to the input folder -- or frame indices for a video; values x, y, w, h in
pixels, top-left corner + size):

* JSON: ``{"000001.jpg": [x, y, w, h], "0": [x, y, w, h], ...}``
* text: one ``key x y w h`` per line (commas or whitespace; ``#`` comments).

Images / frames without an entry use ``--bbox`` if given, else the whole
image (a warning is printed).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from hybrik_jax import errors
from hybrik_jax.data import images

log = logging.getLogger(__name__)

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv", ".m4v")


class DemoError(errors.InputError, ValueError):
  """Bad input to the demo (reported by ``demo.py`` as one ``error:`` line)."""


# ----------------------------------------------------------------------------
# Boxes.


def parse_bbox(value: Any, what: str = "--bbox") -> np.ndarray:
  """Parses ``x,y,w,h`` (string or sequence) into a [4] float64 array."""
  if isinstance(value, str):
    parts = [p for p in re.split(r"[,\s]+", value.strip()) if p]
  else:
    parts = (
      list(value) if isinstance(value, (list, tuple, np.ndarray)) else [value]
    )
  try:
    box = np.asarray([float(p) for p in parts], dtype=np.float64)
  except (TypeError, ValueError):
    raise DemoError(
      f"{what}: expected 4 numbers x,y,w,h, got {value!r}"
    ) from None
  if box.shape != (4,) or not np.all(np.isfinite(box)):
    raise DemoError(f"{what}: expected 4 finite numbers x,y,w,h, got {value!r}")
  if box[2] <= 0 or box[3] <= 0:
    raise DemoError(
      f"{what}: box {box.tolist()} is empty (w and h must be > 0)"
    )
  return box


def check_bbox(
  box: np.ndarray, height: int, width: int, what: str
) -> np.ndarray:
  """Rejects a box that does not overlap the image (partial overlap is OK:
  the crop pads with zeros, like mmhuman3d)."""
  x, y, w, h = box
  if x >= width or y >= height or x + w <= 0 or y + h <= 0:
    raise DemoError(
      f"{what}: box x,y,w,h = {box.tolist()} lies outside the "
      f"{width}x{height} image"
    )
  return box


def whole_image_bbox(height: int, width: int) -> np.ndarray:
  """[4] xywh box covering the image."""
  return np.array([0.0, 0.0, float(width), float(height)])


def load_bbox_file(path: str | Path) -> dict[str, np.ndarray]:
  """Reads a ``--bbox-file`` (JSON or text, see the module docstring).

  Returns:
    key (str) -> [4] xywh box.
  """
  path = Path(path)
  if not path.is_file():
    raise DemoError(f"--bbox-file {path} does not exist")
  text = path.read_text()
  boxes = {}
  stripped = text.lstrip()
  if stripped.startswith("{"):
    try:
      data = json.loads(text)
    except json.JSONDecodeError as e:
      raise DemoError(f"--bbox-file {path}: invalid JSON ({e})") from None
    for key, value in data.items():
      boxes[str(key)] = parse_bbox(value, f"--bbox-file {path} entry {key!r}")
  else:
    for num, line in enumerate(text.splitlines(), 1):
      line = line.split("#", 1)[0].strip()
      if not line:
        continue
      parts = [p for p in re.split(r"[,\s]+", line) if p]
      if len(parts) != 5:
        raise DemoError(
          f"--bbox-file {path} line {num}: expected 'key x y w h', got {line!r}"
        )
      boxes[parts[0]] = parse_bbox(parts[1:], f"--bbox-file {path} line {num}")
  if not boxes:
    raise DemoError(f"--bbox-file {path} has no boxes")
  return boxes


def lookup_bbox(
  boxes: Mapping[str, np.ndarray] | None, keys: Sequence[str]
) -> np.ndarray | None:
  """The first of ``keys`` present in ``boxes`` (None if none)."""
  if boxes:
    for key in keys:
      if key in boxes:
        return boxes[key]
  return None


def bbox_for(
  boxes,
  keys: Sequence[str],
  default: np.ndarray | None,
  h: int,
  w: int,
  what: str,
  warned: list,
) -> np.ndarray:
  """The [4] xywh box of one ``h x w`` image / frame named ``what``.

  The first of ``keys`` in ``boxes`` (the ``--bbox-file``), else ``default``
  (``--bbox``), else the whole image; checked against the image. Warns once
  per run (``warned``, a list shared by the run's calls) when ``boxes`` is
  given but lacks the image.
  """
  box = lookup_bbox(boxes, keys)
  if box is None:
    if boxes is not None and not warned:
      log.warning(
        "%s has no --bbox-file entry: using %s",
        what,
        "--bbox" if default is not None else "the whole image",
      )
      warned.append(True)
    box = default if default is not None else whole_image_bbox(h, w)
  return check_bbox(np.asarray(box, np.float64), h, w, what)


# ----------------------------------------------------------------------------
# Images and videos.


def load_image(path: Path) -> np.ndarray:
  """[H, W, 3] uint8 BGR, or DemoError naming the file."""
  try:
    return images.read_image(path)
  except (OSError, ValueError):
    raise DemoError(f"cannot read image {path}") from None


def list_images(folder: Path) -> list[Path]:
  """Image files directly in ``folder`` (sorted), DemoError if none."""
  files = sorted(
    p
    for p in folder.iterdir()
    if p.is_file() and p.suffix.lower() in IMAGE_EXTS
  )
  if not files:
    raise DemoError(
      f"--input folder {folder} contains no images ({', '.join(IMAGE_EXTS)})"
    )
  return files


def iter_video(path: Path) -> Iterator[np.ndarray]:
  """The frames of a video, [H, W, 3] uint8 BGR each (stops at the first
  frame that cannot be read)."""
  cap = cv2.VideoCapture(str(path))
  try:
    while True:
      ok, frame = cap.read()
      if not ok:
        break
      yield frame
  finally:
    cap.release()


def video_info(path: Path) -> tuple[float, int]:
  """(frames per second, 25 if unknown; frame count, 0 if unknown), or
  DemoError if the video cannot be opened."""
  cap = cv2.VideoCapture(str(path))
  try:
    if not cap.isOpened():
      raise DemoError(f"cannot open video {path}")
    fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
  finally:
    cap.release()
  return (fps if fps > 0 else 25.0), count
