"""Demo inputs: person boxes, image files and video frames.

Boxes are ``x, y, w, h`` in pixels (top-left corner + size), [4] float64.
Images and frames are [H, W, 3] uint8 BGR.

``--bbox-file`` formats (keys: image file names -- base name or path relative
to the input folder -- or frame indices for a video; values x, y, w, h in
pixels, top-left corner + size):

* JSON: ``{"000001.jpg": [x, y, w, h], "0": [x, y, w, h], ...}``; several
  people: a list of boxes, ``{"0": [[x, y, w, h], [x, y, w, h]], "1": [],
  ...}`` (``[]``: nobody in that frame / image).
* text: one ``key x y w h`` per line (commas or whitespace; ``#`` comments);
  several people: one line per box, the key repeated.

A file with a list of boxes (JSON) or a repeated key (text) anywhere is a
*multi-person* box file (:func:`is_multi_person`): every entry is then a
list of people (a single ``[x, y, w, h]`` is one person), videos are
tracked, and images / frames without an entry have nobody in them (or the
``--bbox`` box, if given; a warning is printed once). Otherwise (one box per
key), images / frames without an entry use ``--bbox`` if given, else the
whole image (a warning is printed).

Videos are decoded in a background thread (:class:`FrameReader`).
"""

from __future__ import annotations

import json
import logging
import queue
import re
import threading
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


def _is_box_list(value: Any) -> bool:
  """A JSON value that lists boxes (``[]`` or ``[[x, y, w, h], ...]``)."""
  return isinstance(value, list) and all(
    isinstance(v, (list, tuple)) for v in value
  )


def load_bbox_file(path: str | Path) -> dict[str, np.ndarray]:
  """Reads a ``--bbox-file`` (JSON or text, see the module docstring).

  Returns:
    key (str) -> [4] xywh box, or [N, 4] boxes (N >= 0) for a JSON list of
    boxes or a text key given on several lines.
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
      what = f"--bbox-file {path} entry {key!r}"
      if _is_box_list(value):
        boxes[str(key)] = np.asarray(
          [parse_bbox(v, f"{what} box {i}") for i, v in enumerate(value)],
          np.float64,
        ).reshape(-1, 4)
      else:
        boxes[str(key)] = parse_bbox(value, what)
  else:
    lists: dict[str, list[np.ndarray]] = {}
    for num, line in enumerate(text.splitlines(), 1):
      line = line.split("#", 1)[0].strip()
      if not line:
        continue
      parts = [p for p in re.split(r"[,\s]+", line) if p]
      if len(parts) != 5:
        raise DemoError(
          f"--bbox-file {path} line {num}: expected 'key x y w h', got {line!r}"
        )
      lists.setdefault(parts[0], []).append(
        parse_bbox(parts[1:], f"--bbox-file {path} line {num}")
      )
    for key, found in lists.items():
      boxes[key] = found[0] if len(found) == 1 else np.stack(found)
  if not boxes:
    raise DemoError(f"--bbox-file {path} has no boxes")
  return boxes


def is_multi_person(boxes: Mapping[str, np.ndarray] | None) -> bool:
  """Whether a loaded ``--bbox-file`` lists several boxes per key anywhere
  (a JSON list of boxes, a repeated text key)."""
  return boxes is not None and any(np.ndim(v) == 2 for v in boxes.values())


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


def people_for(
  boxes,
  keys: Sequence[str],
  default: np.ndarray | None,
  h: int,
  w: int,
  what: str,
  warned: list,
) -> np.ndarray:
  """The [N, 4] xywh boxes of the people in one image / frame (multi-person
  box file, see the module docstring).

  The first of ``keys`` in ``boxes`` (one box or a list), else ``default``
  (``--bbox``) as one person, else nobody (N = 0); each box checked against
  the image. Warns once per run (``warned``) about a missing entry.
  """
  entry = lookup_bbox(boxes, keys)
  if entry is None:
    if not warned:
      log.warning(
        "%s has no --bbox-file entry: %s",
        what,
        "using --bbox" if default is not None else "no person there",
      )
      warned.append(True)
    entry = default if default is not None else np.zeros((0, 4))
  entry = np.asarray(entry, np.float64).reshape(-1, 4)
  for box in entry:
    check_bbox(box, h, w, what)
  return entry


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


DEFAULT_QUEUE_FRAMES = 8  # decoded frames waiting for the main thread


class _Failure:
  """An exception raised in the decoding thread, handed to the consumer."""

  def __init__(self, error: BaseException):
    self.error = error


_END = object()


class FrameReader:
  """A video's frames, decoded in a background thread.

  Iterating yields ``(index, [H, W, 3] uint8 BGR frame)`` from index 0 up to
  the first frame that cannot be read. A daemon thread decodes ahead into a
  bounded queue (``queue_frames`` frames, so memory stays bounded whatever
  the video's length). A decoding error is raised in the consumer at the
  point it happened. :meth:`close` (called by ``with`` and when the
  iteration ends, also by an exception or ``KeyboardInterrupt`` in the
  consumer) stops the thread and waits for it; the thread never blocks on a
  full queue for more than ``POLL_S`` seconds without checking for that.

  Use::

    with FrameReader(path) as reader:
      for index, frame in reader:
        ...
  """

  POLL_S = 0.05

  def __init__(
    self, path: str | Path, queue_frames: int = DEFAULT_QUEUE_FRAMES
  ):
    if queue_frames < 1:
      raise ValueError(f"queue_frames must be >= 1, got {queue_frames}")
    self.path = Path(path)
    self._queue: queue.Queue = queue.Queue(maxsize=int(queue_frames))
    self._stop = threading.Event()
    self._thread = threading.Thread(
      target=self._decode, name=f"decode {self.path.name}", daemon=True
    )
    self._thread.start()

  def _put(self, item) -> bool:
    """Queues ``item`` unless stopped first (returns whether it was put)."""
    while not self._stop.is_set():
      try:
        self._queue.put(item, timeout=self.POLL_S)
        return True
      except queue.Full:
        continue
    return False

  def _decode(self) -> None:
    try:
      cap = cv2.VideoCapture(str(self.path))
      try:
        if not cap.isOpened():
          raise DemoError(f"cannot open video {self.path}")
        index = 0
        while not self._stop.is_set():
          ok, frame = cap.read()
          if not ok:
            break
          if not self._put((index, frame)):
            return
          index += 1
      finally:
        cap.release()
    except BaseException as e:  # noqa: BLE001 - re-raised in the consumer
      self._put(_Failure(e))
      return
    self._put(_END)

  def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
    try:
      while True:
        try:
          item = self._queue.get(timeout=self.POLL_S)
        except queue.Empty:
          if not self._thread.is_alive() and self._queue.empty():
            return  # stopped by close()
          continue
        if item is _END:
          return
        if isinstance(item, _Failure):
          raise item.error
        yield item
    finally:
      self.close()

  def close(self) -> None:
    """Stops the decoding thread and waits for it (idempotent)."""
    self._stop.set()
    while True:  # free a slot for a thread blocked in put
      try:
        self._queue.get_nowait()
      except queue.Empty:
        break
    self._thread.join()

  @property
  def alive(self) -> bool:
    """Whether the decoding thread still runs."""
    return self._thread.is_alive()

  def __enter__(self) -> FrameReader:
    return self

  def __exit__(self, *exc) -> None:
    self.close()


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
