"""Demo camera, root depth prior and network crop.

HybrIK is camera-free, but its uvd -> xyz step needs an inverse intrinsic
matrix and a root depth (mmhuman3d's dataset supplies both; a demo has to
choose them):

* Pinhole camera, OpenCV frame (x right, y down, z forward, metres). Focal
  length ``--focal`` in pixels, default ``max(H, W)`` of the image (a ~53
  degree field of view across the longer side; 3DPW's phone frames have
  f ~ max(H, W)); principal point at the image centre ``((W - 1) / 2,
  (H - 1) / 2)`` (pixel centres are integer coordinates).
* Crop exactly as mmhuman3d's test pipeline: the xywh box -> centre and
  square scale (aspect 1, x1.25 margin, rotation 0) -> ``N x N`` affine crop
  (``N`` = the checkpoint's training size, see
  :func:`hybrik_jax.demo.predictor.resolve_image_size`), bilinear, zero
  border, BGR -> RGB, ImageNet mean/std. ``trans_inv`` is the inverse affine.
* Root depth prior: the longer side of the person box is assumed to span
  ``--person-height`` metres (1.7 m), so ``z_root = focal * 1.7 / max(w, h)``;
  ``joint_root = z_root * K^-1 [c_x, c_y, 1]`` (mm, ``c`` = box centre) and
  ``depth_factor`` = 2000 mm. The network only uses ``joint_root[2]``.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from hybrik_jax.demo.inputs import DemoError

DEFAULT_PERSON_HEIGHT_M = 1.7
DEPTH_FACTOR_MM = 2000.0
BBOX_SCALE_FACTOR = 1.25


@dataclasses.dataclass(frozen=True)
class Camera:
  """Pinhole camera (pixels): ``u = f x / z + c_x``, ``v = f y / z + c_y``."""

  focal: float
  princpt: tuple[float, float]

  @property
  def k(self) -> np.ndarray:
    """[3, 3] float64 intrinsic matrix K."""
    return np.array(
      [
        [self.focal, 0.0, self.princpt[0]],
        [0.0, self.focal, self.princpt[1]],
        [0.0, 0.0, 1.0],
      ]
    )

  @property
  def k_inv(self) -> np.ndarray:
    """[3, 3] float64 K^-1 (the model's ``intrinsic_param``)."""
    return np.linalg.inv(self.k)


def default_camera(
  height: int, width: int, focal: float | None = None
) -> Camera:
  """The demo camera of an ``height x width`` image (module docstring)."""
  if focal is None:
    focal = float(max(height, width))
  if not (np.isfinite(focal) and focal > 0):
    raise DemoError(f"--focal must be a positive number of pixels, got {focal}")
  return Camera(float(focal), ((width - 1) / 2.0, (height - 1) / 2.0))


def root_depth_prior(
  camera: Camera,
  bbox_xywh: np.ndarray,
  person_height_m: float = DEFAULT_PERSON_HEIGHT_M,
) -> float:
  """``z_root = focal * person_height / max(w, h)`` (metres)."""
  return camera.focal * person_height_m / float(max(bbox_xywh[2], bbox_xywh[3]))


def joint_root_prior(
  camera: Camera,
  bbox_xywh: np.ndarray,
  person_height_m: float = DEFAULT_PERSON_HEIGHT_M,
) -> np.ndarray:
  """[3] root prior ``z_root K^-1 [c_x, c_y, 1]`` at the box centre (mm)."""
  z = root_depth_prior(camera, bbox_xywh, person_height_m)
  cx = bbox_xywh[0] + bbox_xywh[2] / 2.0
  cy = bbox_xywh[1] + bbox_xywh[3] / 2.0
  return camera.k_inv @ np.array([cx, cy, 1.0]) * z * 1000.0


def crop_image(
  image_bgr: np.ndarray, bbox_xywh: np.ndarray, image_size: int
) -> tuple[np.ndarray, np.ndarray]:
  """mmhuman3d's test crop of one image.

  Args:
    image_bgr: [H, W, 3] uint8 BGR.
    bbox_xywh: [4] person box (pixels).
    image_size: N, the network input size.

  Returns:
    (normalised RGB crop [N, N, 3] float32, trans_inv [2, 3] float32 crop ->
    image affine).
  """
  from hybrik_jax.data import annotations, transforms

  center, scale = annotations.box2cs(
    np.asarray(bbox_xywh, np.float64),
    aspect_ratio=1.0,
    bbox_scale_factor=BBOX_SCALE_FACTOR,
  )
  size = (int(image_size), int(image_size))
  trans = transforms.get_affine_transform(center, scale, 0.0, size)
  trans_inv = transforms.get_affine_transform(
    center, scale, 0.0, size, inv=True
  )
  crop = cv2.warpAffine(image_bgr, trans, size, flags=cv2.INTER_LINEAR)
  crop = transforms.normalize(crop.astype(np.float32))
  return crop.astype(np.float32), trans_inv.astype(np.float32)
