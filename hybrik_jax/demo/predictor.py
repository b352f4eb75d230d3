"""HybrIK inference for the demo: checkpoint input size and the predictor.

:class:`Predictor` crops each image around its person box
(:func:`hybrik_jax.demo.camera.crop_image`), feeds the camera and root depth
priors of :mod:`hybrik_jax.demo.camera` to the jitted network and places the
predicted mesh in the camera frame (metres) as described in
:mod:`hybrik_jax.demo.placement`.

The network input size ``N`` is the checkpoint's training size: read from the
training run's ``config.json``, 256 for converted mmhuman3d checkpoints.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hybrik_jax.demo.camera import (
  DEFAULT_PERSON_HEIGHT_M,
  DEPTH_FACTOR_MM,
  Camera,
  crop_image,
  joint_root_prior,
)
from hybrik_jax.demo.inputs import DemoError
from hybrik_jax.demo.placement import (
  MIN_FIT_DEPTH_M,
  fit_translation,
  place_vertices,
  rest_pelvis,
  uvd_to_image,
)
from hybrik_jax.model import hybrik as hybrik_model

DEFAULT_IMAGE_SIZE = 256  # mmhuman3d's resnet34_hybrik_mixed input size.
DTYPES = ("float32", "bfloat16")


def compute_dtype(name: str):
  """The network's compute dtype for ``--dtype`` (float32 or bfloat16)."""
  import jax.numpy as jnp

  if name not in DTYPES:
    raise DemoError(f"--dtype must be one of {DTYPES}, got {name!r}")
  return jnp.bfloat16 if name == "bfloat16" else jnp.float32


PLACEMENTS = ("fit", "bbox")


def checkpoint_image_size(checkpoint: str | Path) -> int | None:
  """The training input size recorded next to a checkpoint, if any.

  Looks for the training run's ``config.json`` (``model.image_size``) in the
  checkpoint folder and up to two parents (run / checkpoints / step). Returns
  None when there is none (converted mmhuman3d checkpoints: 256).
  """
  path = Path(checkpoint).absolute()
  for folder in (path, path.parent, path.parent.parent):
    cfg = folder / "config.json"
    if cfg.is_file():
      try:
        size = json.loads(cfg.read_text())["model"]["image_size"]
        return int(size)
      except (ValueError, KeyError, TypeError):
        return None
  return None


def resolve_image_size(checkpoint: str | Path, image_size: int | None) -> int:
  """``--image-size`` checked against the checkpoint's training size."""
  trained = checkpoint_image_size(checkpoint)
  if image_size is None:
    image_size = trained or DEFAULT_IMAGE_SIZE
  elif trained is not None and int(image_size) != trained:
    raise DemoError(
      f"--image-size {image_size} differs from the size the "
      f"checkpoint {checkpoint} was trained at ({trained})"
    )
  image_size = int(image_size)
  if image_size < 32 or image_size % 32:
    raise DemoError(
      f"--image-size must be a positive multiple of 32, got {image_size}"
    )
  return image_size


class BatchedPredictor:
  """What every demo predictor shares: the variables on the device, the
  body model with its faces and part colours, and calls on a list of people
  cut into fixed-size batches (the last one padded, so one compilation
  serves a whole run). Subclasses implement ``_batch(images_bgr, bboxes,
  cameras)`` for at most ``batch_size`` people.
  """

  def __init__(
    self, variables: Mapping[str, Any], image_size: int, batch_size: int
  ):
    import jax

    from hybrik_jax import render

    if batch_size < 1:
      raise DemoError(f"--batch-size must be >= 1, got {batch_size}")
    self.variables = jax.device_put(dict(variables))
    self.body = hybrik_model.body_model_from_constants(
      jax.tree.map(np.asarray, dict(variables["constants"]["smpl"]))
    )
    self.faces = np.asarray(self.body.faces, np.int64)  # [F, 3]
    self.image_size = int(image_size)
    self.batch_size = int(batch_size)
    self.face_colors = render.part_face_colors(
      np.asarray(self.body.lbs_weights), self.faces
    )  # [F, 3]

  def __call__(
    self,
    images_bgr: Sequence[np.ndarray],
    bboxes: Sequence[np.ndarray],
    cameras: Sequence[Camera] | None = None,
  ) -> list[dict[str, np.ndarray]]:
    """Predicts and places the meshes of a list of people (any length)."""
    results = []
    for start in range(0, len(images_bgr), self.batch_size):
      sl = slice(start, start + self.batch_size)
      cams = None if cameras is None else cameras[sl]
      results.extend(self._batch(images_bgr[sl], bboxes[sl], cams))
    return results

  def _batch(self, images_bgr, bboxes, cameras):
    raise NotImplementedError


class Predictor(BatchedPredictor):
  """Jitted HybrIK inference on fixed-size batches + mesh placement.

  Args:
    variables: model variables with ``constants/smpl``
      (``checkpointing.load_inference_variables``).
    image_size: network input size N.
    batch_size: images per jitted call (the last batch is padded, so one
      compilation serves a whole run).
    person_height_m: metres spanned by the longer box side, for the root
      depth prior (:mod:`hybrik_jax.demo.camera`).
    placement: 'fit' (reprojection fit, default) or 'bbox' (depth prior),
      see :mod:`hybrik_jax.demo.placement`.
    precision: matmul / conv precision (None: the backend's default).
    dtype: 'float32' (default) or 'bfloat16': the network's convolutions
      and matmuls in bfloat16 (parameters, soft-argmax, IK and SMPL stay
      float32); opt-in, for CPUs with AVX512-BF16 / AMX and accelerators.
  """

  def __init__(
    self,
    variables: Mapping[str, Any],
    image_size: int,
    batch_size: int = 8,
    person_height_m: float = DEFAULT_PERSON_HEIGHT_M,
    placement: str = "fit",
    precision: str | None = None,
    dtype: str = "float32",
  ):
    if placement not in PLACEMENTS:
      raise DemoError(
        f"--placement must be one of {PLACEMENTS}, got {placement!r}"
      )
    super().__init__(variables, image_size, batch_size)  # checks batch_size
    if not person_height_m > 0:
      raise DemoError(f"--person-height must be > 0, got {person_height_m}")
    self._predict = functools.partial(
      hybrik_model.predict, precision=precision, dtype=compute_dtype(dtype)
    )
    self.person_height_m = float(person_height_m)
    self.placement = placement

  def _batch(self, images_bgr, bboxes, cameras):
    n, b, size = len(images_bgr), self.batch_size, self.image_size
    crops = np.zeros((b, size, size, 3), np.float32)
    # Padding rows keep the dummy camera; real rows are overwritten below.
    trans_inv, k_inv, joint_root, _ = hybrik_model.dummy_camera(b)
    for i, (img, box, cam) in enumerate(zip(images_bgr, bboxes, cameras)):
      crops[i], trans_inv[i] = crop_image(img, box, size)
      k_inv[i] = cam.k_inv
      joint_root[i] = joint_root_prior(cam, box, self.person_height_m)
    depth_factor = np.full((b, 1), DEPTH_FACTOR_MM, np.float32)
    out = self._predict(
      self.variables, crops, trans_inv, k_inv, joint_root, depth_factor
    )
    out = {k: np.asarray(v)[:n] for k, v in out.items()}
    t0 = rest_pelvis(self.body, out["pred_shape"])  # [n, 3]
    results = []
    for i in range(n):
      results.append(
        self._place(
          {k: v[i] for k, v in out.items()},
          t0[i],
          trans_inv[i],
          joint_root[i],
          bboxes[i],
          cameras[i],
        )
      )
    return results

  def _place(self, out, t0, trans_inv, joint_root_mm, bbox, camera):
    uvd = out["pred_uvd_jts"].reshape(29, 3)
    uv = uvd_to_image(uvd, trans_inv, self.image_size)  # [29, 2]
    joints24_rel = out["pred_xyz_jts_24_struct"].reshape(24, 3) * (
      DEPTH_FACTOR_MM / 1000.0
    )  # [24, 3] m, pelvis-relative
    z_prior = joint_root_mm[2] / 1000.0
    # Depth prior along the ray through the predicted 2D pelvis.
    pelvis_prior = (
      camera.k_inv
      @ np.array([uv[0, 0], uv[0, 1], 1.0])
      * (z_prior + uvd[0, 2] * DEPTH_FACTOR_MM / 1000.0)
    )
    placement, pelvis = "bbox", pelvis_prior
    verts = place_vertices(out["pred_vertices"], t0, pelvis)  # [V, 3]
    if self.placement == "fit":
      t = fit_translation(joints24_rel, uv[:24], camera)
      if np.all(np.isfinite(t)):
        fitted = place_vertices(out["pred_vertices"], t0, t)
        # A fit that puts part of the mesh behind the camera is rejected.
        if fitted[:, 2].min() > MIN_FIT_DEPTH_M:
          placement, pelvis, verts = "fit", t, fitted
    joints17 = np.asarray(self.body.J_regressor_extra, np.float64) @ verts
    return {
      "vertices": verts.astype(np.float32),
      "pose": out["pred_pose"].reshape(24, 3, 3),
      "betas": out["pred_shape"].reshape(-1),
      "phis": out["pred_phi"].reshape(23, 2),
      "xyz_24": (joints24_rel + pelvis).astype(np.float32),
      "xyz_17": joints17.astype(np.float32),
      "uvd": uvd.astype(np.float32),
      "uv": uv.astype(np.float32),
      "pelvis_cam": pelvis.astype(np.float32),
      "pelvis_prior": pelvis_prior.astype(np.float32),
      "placement_fit": np.asarray(placement == "fit"),
      "t0": np.asarray(t0, np.float32),
      "joint_root_mm": np.asarray(joint_root_mm, np.float32),
      "focal": np.float32(camera.focal),
      "princpt": np.asarray(camera.princpt, np.float32),
      "bbox_xywh": np.asarray(bbox, np.float32),
    }
