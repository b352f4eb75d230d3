"""The one image reader: file or encoded bytes -> BGR uint8 [H, W, 3].

Decoding is ``cv2.imdecode(..., cv2.IMREAD_COLOR)``, the order of mmcv's
``imfrombytes(flag='color')`` (and of ``cv2.imread(path, cv2.IMREAD_COLOR)``,
which gives the same pixels): channels are BGR; grayscale images are
replicated to 3 channels, an alpha channel is dropped, 16-bit images are
scaled to 8 bits, and a JPEG's EXIF orientation is applied.

Used by the dataset sources (``hybrik_jax.data.sources``) and the demo
(``hybrik_jax.demo.inputs``).
"""

from __future__ import annotations

import os

import cv2
import numpy as np

from hybrik_jax import errors, storage


class ImageError(errors.InputError, ValueError):
  """An image file OpenCV cannot decode (names the file)."""


def decode_image(data: bytes, what: str) -> np.ndarray:
  """Decodes encoded image bytes (JPEG, PNG, ...).

  Args:
    data: the encoded file content.
    what: names the source in the error message (a path, a record index).

  Returns:
    [H, W, 3] uint8 BGR image (pixels).

  Raises:
    ValueError: ``cannot decode image <what>`` when the bytes are not an
      image OpenCV can decode.
  """
  image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
  if image is None:
    raise ImageError(f"cannot decode image {what}")
  return image  # [H, W, 3] uint8 BGR


def read_image(path: str | os.PathLike) -> np.ndarray:
  """Reads an image file.

  Args:
    path: the image file.

  Returns:
    [H, W, 3] uint8 BGR image (pixels).

  Raises:
    FileNotFoundError: ``image file not found: <path>``.
    ValueError: ``cannot decode image <path>`` (not an image).
    OSError: the file exists but cannot be read (a folder, no permission).
  """
  try:
    with storage.open_file(path, "rb") as f:
      data = f.read()
  except FileNotFoundError as e:
    raise errors.MissingInputError(f"image file not found: {path}") from e
  return decode_image(data, str(path))
