"""Demo inference with the authors' camera models (``hrnet_w48_cam``,
``resnet34_cam``): the network's own camera places the mesh.

Follows the authors' ``scripts/demo_image.py`` / ``demo_video.py``
(Jeff-sjtu/HybrIK):

* Crop (their ``SimpleTransform3DSMPLCam.test_transform``): the xyxy box ->
  float32 centre and square scale (aspect 1, x1.25), the same affine as
  mmhuman3d's, bilinear warp of the RGB image to 256 x 256, then
  ``(x / 255 - mean) / std`` per RGB channel with their constants
  (:mod:`hybrik_jax.data.authors_crop`). The enlarged box
  (``_center_scale_to_box``) and the image centre ``(W / 2, H / 2)`` go to
  the network, which turns its camera into ``transl`` (metres).
* Placement: camera-frame mesh ``pred_vertices + transl``, seen by a pinhole
  camera of focal ``1000 / 256 * w`` pixels (``w``: the enlarged box's width)
  with the principal point at the image centre (PyTorch3D's NDC origin,
  ``W / 2`` in continuous pixel coordinates = ``(W - 1) / 2`` with integer
  pixel centres, this project's convention). Each person therefore has their
  own focal length (``focal`` in the outputs); no ``--focal`` or person
  height is used.
* In the authors' code the mesh is relative to the H36M pelvis regressed
  from it while ``transl`` is the camera position of the SMPL root joint:
  ``vertices`` follow their demo (H36M pelvis at ``transl``), ``xyz_24`` are
  the SMPL joints with the root at ``transl`` (a few cm apart; kept as the
  authors draw it).

Flip test (``flip_test=True``, HRNet only, the authors' demo default): see
:mod:`hybrik_jax.model.hybrik_cam`.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import numpy as np

from hybrik_jax.data.authors_crop import authors_test_crop
from hybrik_jax.demo.camera import Camera
from hybrik_jax.demo.inputs import DemoError
from hybrik_jax.demo.placement import rest_pelvis, uvd_to_image
from hybrik_jax.demo.predictor import BatchedPredictor, compute_dtype

AUTHORS_IMAGE_SIZE = 256
AUTHORS_FOCAL_PER_CROP = 1000.0  # pixels of focal per 256-px crop width
DEPTH_FACTOR_M = 2.2  # the cam configs' BBOX_3D_SHAPE (2200 mm)


def authors_camera(box_xyxy: np.ndarray, height: int, width: int) -> Camera:
  """The authors' demo camera for one person: focal ``1000 / 256 * w``
  (``w`` the enlarged box width), principal point at the image centre."""
  focal = (
    AUTHORS_FOCAL_PER_CROP
    / AUTHORS_IMAGE_SIZE
    * float(box_xyxy[2] - box_xyxy[0])
  )
  return Camera(focal, ((width - 1) / 2.0, (height - 1) / 2.0))


class CamPredictor(BatchedPredictor):
  """Jitted inference of an authors' camera model + placement by its camera.

  Same call and result keys as :class:`hybrik_jax.demo.predictor.Predictor`
  (the ``cameras`` argument is ignored: each person gets the authors'
  camera, returned as ``focal`` / ``princpt``), plus ``transl`` [3] (m).

  Args:
    variables: converted variables with ``constants/smpl``.
    arch: 'hrnet_w48_cam' or 'resnet34_cam'.
    batch_size: people per jitted call (the last batch is padded).
    flip_test: the authors' flip test (HRNet only; their demo's default).
    precision: matmul / conv precision (None: default).
    dtype: 'float32' (default) or 'bfloat16' (as for ``Predictor``).
  """

  def __init__(
    self,
    variables: Mapping[str, Any],
    arch: str,
    batch_size: int = 8,
    flip_test: bool = False,
    precision: str | None = None,
    dtype: str = "float32",
  ):
    from hybrik_jax.model import hybrik_cam

    if arch not in hybrik_cam.MODELS:
      raise DemoError(f"not an authors' camera model: {arch!r}")
    if flip_test and arch != "hrnet_w48_cam":
      raise DemoError(
        f"--flip-test is defined for the HRNet camera model only, not {arch} "
        "(the authors' ResNet-34 flip test does not run)"
      )
    super().__init__(variables, AUTHORS_IMAGE_SIZE, batch_size)
    self.arch = arch
    self._predict = functools.partial(
      hybrik_cam.predict,
      arch=arch,
      flip_test=flip_test,
      precision=precision,
      dtype=compute_dtype(dtype),
    )

  def _batch(self, images_bgr, bboxes, cameras=None):
    del cameras  # each person gets the authors' camera
    n, b, size = len(images_bgr), self.batch_size, self.image_size
    crops = np.zeros((b, size, size, 3), np.float32)
    boxes = np.tile(np.array([0, 0, size, size], np.float32), (b, 1))
    centers = np.full((b, 2), size / 2.0, np.float32)
    trans_inv = np.zeros((n, 2, 3), np.float32)
    for i, (img, box) in enumerate(zip(images_bgr, bboxes)):
      crops[i], boxes[i], trans_inv[i] = authors_test_crop(img, box, size)
      h, w = img.shape[:2]
      centers[i] = (w * 0.5, h * 0.5)
    out = self._predict(self.variables, crops, boxes, centers)
    out = {k: np.asarray(v)[:n] for k, v in out.items()}
    t0 = rest_pelvis(self.body, out["pred_shape"])  # [n, 3]
    results = []
    for i in range(n):
      h, w = images_bgr[i].shape[:2]
      results.append(
        self._place(
          {k: v[i] for k, v in out.items()},
          t0[i],
          trans_inv[i],
          authors_camera(boxes[i], h, w),
          bboxes[i],
        )
      )
    return results

  def _place(self, out, t0, trans_inv, camera, bbox):
    uvd = out["pred_uvd_jts"].reshape(29, 3)
    uv = uvd_to_image(uvd, trans_inv, self.image_size)  # [29, 2]
    transl = out["transl"].reshape(3).astype(np.float64)  # [3] m
    verts = out["pred_vertices"].astype(np.float64) + transl  # [V, 3] m
    joints24 = (
      out["pred_xyz_jts_24_struct"].reshape(24, 3) * DEPTH_FACTOR_M + transl
    )  # [24, 3] m, SMPL root at transl
    joints17 = np.asarray(self.body.J_regressor_extra, np.float64) @ verts
    return {
      "vertices": verts.astype(np.float32),
      "pose": out["pred_theta_mats"].reshape(24, 3, 3),
      "betas": out["pred_shape"].reshape(-1),
      "phis": out["pred_phi"].reshape(23, 2),
      "xyz_24": joints24.astype(np.float32),
      "xyz_17": joints17.astype(np.float32),
      "uvd": uvd.astype(np.float32),
      "uv": uv.astype(np.float32),
      "pelvis_cam": transl.astype(np.float32),
      "pelvis_prior": transl.astype(np.float32),
      "placement_fit": np.asarray(False),
      "t0": np.asarray(t0, np.float32),
      "joint_root_mm": (transl * 1000.0).astype(np.float32),
      "focal": np.float32(camera.focal),
      "princpt": np.asarray(camera.princpt, np.float32),
      "bbox_xywh": np.asarray(bbox, np.float32),
      "transl": transl.astype(np.float32),
    }
