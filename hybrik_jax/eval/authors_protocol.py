"""The original HybrIK authors' evaluation protocol, for their camera models.

What the authors' ``scripts/validate_smpl_cam.py`` (Jeff-sjtu/HybrIK) does
with ``HRNetSMPLCam`` / ``Simple3DPoseBaseSMPLCam`` on 3DPW and Human3.6M,
run here on mmhuman3d's HumanData test files (``hybrik_pw3d_test.npz``,
``hybrik_h36m_valid_protocol2.npz``: converted from the authors' own json
annotations, so boxes and ground truth are theirs):

* Input: each sample's stored box (x1, y1, x2, y2 px), cropped with
  :func:`hybrik_jax.data.authors_crop.authors_test_crop`: square box times
  1.25 for 3DPW (their ``PW3D`` uses the transform's default) and times 1
  for H36M (their ``H36mSMPL`` passes ``scale_mult=1``), 256 x 256, their
  pixel normalisation. The network gets the enlarged box and the image
  centre ``(W / 2, H / 2)``; ``flip_test`` (HRNet only) is their option.
* Prediction: ``pred_xyz_jts_17`` (H36M-17 joints regressed from the
  predicted mesh, in units of the 2.2 m depth box, ``BBOX_3D_SHAPE``
  2200 mm), times 2.2 m (3DPW, GT in metres) or 2200 mm (H36M, GT in mm),
  both made relative to joint 0 (pelvis).
* 3DPW (``PW3D.evaluate_xyz_17``): the 14 LSP joints are selected, then
  PA-MPJPE aligns the 14 (similarity transform); errors in mm.
* H36M (``H36mSMPL.evaluate_xyz_17``, protocol 2): the similarity
  transform is fitted on all 17 joints, then the 14 are selected.

Differences from mmhuman3d's protocol (:mod:`hybrik_jax.eval.protocol`):
the crop and pixel normalisation, the 2.2 m (not 2 m) depth box, the H36M
box not enlarged, PA on 17 joints for H36M, flip test available; both score
the same 14 joints with the same ground truth. MPI-INF-3DHP is not in the
authors' validation script and is refused; so are PCK/AUC/PVE.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from hybrik_jax import errors
from hybrik_jax.data import authors_crop
from hybrik_jax.eval import metrics as metrics_lib
from hybrik_jax.eval import protocol

DEPTH_BOX_M = 2.2  # the camera configs' BBOX_3D_SHAPE (2200 mm)
# Box enlargement of their test sets' transform.
SCALE_MULT = {"pw3d": 1.25, "h36m": 1.0}
PROTOCOLS = tuple(SCALE_MULT)
ALLOWED_METRICS = ("mpjpe", "pa-mpjpe")
IMAGE_SIZE = 256
# Architectures with a flip test (the ResNet-34 camera model's crashes in
# the authors' code and is not defined here).
FLIP_TEST_ARCHS = ("hrnet_w48_cam",)


def keypoint_errors(
  pred_xyz_17: np.ndarray,
  gt_joint_relative: np.ndarray,
  dataset_name: str,
  depth_box_m: float = DEPTH_BOX_M,
) -> dict[str, np.ndarray]:
  """Per-sample, per-joint errors of the authors' ``evaluate_xyz_17``.

  Args:
    pred_xyz_17: [N, 17, 3] predicted H36M joints, units of the depth box.
    gt_joint_relative: [N, 17, 3] GT H36M joints (``h36m_idxs`` of the
      HumanData-190 layout): metres for 3DPW, millimetres for H36M.
    dataset_name: 'pw3d' or 'h36m'.
    depth_box_m: the model's depth box (2.2 m, their ``BBOX_3D_SHAPE``).

  Returns:
    {'mpjpe': [N, 14], 'pa_mpjpe': [N, 14]} in millimetres.
  """
  if dataset_name not in PROTOCOLS:
    raise errors.ConfigError(
      f"the authors' protocol covers {PROTOCOLS}, not {dataset_name!r}"
    )
  pred = np.asarray(pred_xyz_17, np.float64)
  gt = np.asarray(gt_joint_relative, np.float64)
  if pred.shape != gt.shape or pred.shape[1:] != (17, 3):
    raise ValueError(
      f"expected pred and gt of shape [N, 17, 3], got "
      f"{pred.shape} and {gt.shape}"
    )
  to_mm = 1000.0 if dataset_name == "pw3d" else 1.0  # GT unit -> mm
  pred = pred * (depth_box_m * 1000.0 / to_mm)  # GT units
  pred = pred - pred[:, :1]
  gt = gt - gt[:, :1]
  lsp = list(protocol.LSP14_FROM_H36M)
  if dataset_name == "pw3d":  # select, then align the 14
    pred, gt = pred[:, lsp], gt[:, lsp]
    pred_pa = np.asarray(
      metrics_lib.align(jnp.asarray(pred), jnp.asarray(gt), "procrustes")
    )
  else:  # align on 17, then select
    pred_pa = np.asarray(
      metrics_lib.align(jnp.asarray(pred), jnp.asarray(gt), "procrustes")
    )[:, lsp]
    pred, gt = pred[:, lsp], gt[:, lsp]
  return {
    "mpjpe": np.linalg.norm(pred - gt, axis=-1) * to_mm,  # [N, 14]
    "pa_mpjpe": np.linalg.norm(pred_pa - gt, axis=-1) * to_mm,
  }


def _sample_input(source, j: int, scale_mult: float, image_size: int):
  """(crop [N, N, 3], box [4], img_center [2]) of sample ``j``."""
  annotation, image = source[j]  # image: [H, W, 3] uint8 BGR
  x1, y1, x2, y2 = (float(v) for v in np.asarray(annotation["bbox"])[:4])
  crop, box, _ = authors_crop.authors_test_crop(
    image, np.array([x1, y1, x2 - x1, y2 - y1]), image_size, scale_mult
  )
  h, w = image.shape[:2]
  return crop, box, np.array([w * 0.5, h * 0.5], np.float32)


def run_inference(
  variables,
  source,
  model,
  dataset_name: str,
  batch_size: int,
  image_size: int = IMAGE_SIZE,
  flip_test: bool = False,
  progress: bool = True,
  desc: str = "eval",
  workers: int = 4,
) -> dict[str, np.ndarray]:
  """The camera model over every sample of ``source``, in order.

  Args:
    model: an ``HRNetSMPLCam`` / ``Simple3DPoseBaseSMPLCam`` module
      (:mod:`hybrik_jax.model.hybrik_cam`).

  Batches are padded to ``batch_size`` (one compiled shape); images are
  read and cropped by ``workers`` threads.

  Returns:
    {'xyz_17': [N, 17, 3] H36M joints (units of the depth box),
    'smpl_beta': [N, 10], 'transl': [N, 3] camera translation (metres)}.
  """
  from tqdm import tqdm

  n = len(source)
  scale_mult = SCALE_MULT[dataset_name]
  variables = jax.device_put(variables)
  keys = ("pred_xyz_jts_17", "pred_shape", "transl")

  @jax.jit
  def forward(variables, images, boxes, centers):
    out = model.apply(
      variables, images, boxes, centers, train=False, flip_test=flip_test
    )
    return {k: out[k] for k in keys}

  chunks = {k: [] for k in keys}
  with concurrent.futures.ThreadPoolExecutor(workers) as pool:
    starts = range(0, n, batch_size)
    for start in tqdm(
      starts, desc=desc, disable=not progress, unit="batch", leave=False
    ):
      idx = list(range(start, min(n, start + batch_size)))
      rows = list(
        pool.map(
          lambda j: _sample_input(source, j, scale_mult, image_size), idx
        )
      )
      pad = batch_size - len(rows)  # one compiled shape: repeat the last
      rows += [rows[-1]] * pad
      crops, boxes, centers = (np.stack(c) for c in zip(*rows, strict=True))
      out = forward(
        variables,
        jnp.asarray(crops),  # [B, N, N, 3]
        jnp.asarray(boxes),  # [B, 4]
        jnp.asarray(centers),  # [B, 2]
      )
      for k in keys:
        chunks[k].append(np.asarray(out[k])[: len(idx)])
  res = {k: np.concatenate(v) for k, v in chunks.items()}
  return {
    "xyz_17": res["pred_xyz_jts_17"].reshape(n, 17, 3),
    "smpl_beta": res["pred_shape"].reshape(n, -1),
    "transl": res["transl"].reshape(n, 3),
  }


def evaluate_dataset(
  variables,
  source,
  arch: str,
  dataset_name: str,
  name: str,
  batch_size: int,
  metric_names: Sequence[str] | None = None,
  flip_test: bool = False,
  progress: bool = True,
  model=None,
  image_size: int = IMAGE_SIZE,
) -> dict:
  """The authors' protocol over one test source (``NpzSource``/tfds).

  ``model`` defaults to ``hybrik_cam.make_model(arch)`` (a conversion of
  their checkpoint: 256 px, 2.2 m depth box); a training run passes its
  own (``builders.build_model``) and ``image_size``.

  Returns the same dict as :func:`hybrik_jax.eval.protocol.evaluate_dataset`
  (metrics in mm keyed 'MPJPE' / 'PA-MPJPE', per-sample errors,
  predictions, skipped samples).
  """
  names = tuple(metric_names or ("pa-mpjpe", "mpjpe"))
  bad = [m for m in names if m not in ALLOWED_METRICS]
  if bad:
    raise errors.ConfigError(
      f"metric(s) {bad} are not part of the authors' protocol; choose "
      f"from {ALLOWED_METRICS}"
    )
  if dataset_name not in PROTOCOLS:
    raise errors.ConfigError(
      f"{name}: the authors' protocol covers {PROTOCOLS} (their "
      f"validate_smpl_cam.py), not {dataset_name!r}"
    )
  if flip_test and arch not in FLIP_TEST_ARCHS:
    raise errors.ConfigError(
      f"--flip_test is defined for {FLIP_TEST_ARCHS} only, not {arch} (the "
      "authors' ResNet-34 camera model's flip test crashes in their code)"
    )
  n = len(source)
  if n == 0:
    raise errors.InputError(f"{name}: no samples to evaluate")
  if model is None:
    from hybrik_jax.model import hybrik_cam

    model = hybrik_cam.make_model(arch)
  pred = run_inference(
    variables,
    source,
    model,
    dataset_name,
    batch_size,
    image_size=image_size,
    flip_test=flip_test,
    progress=progress,
    desc=f"eval {name}",
  )
  gt = np.stack(
    [
      protocol.gt_joints_17(source.annotation(i), dataset_name)
      for i in range(n)
    ]
  )
  err = keypoint_errors(
    pred["xyz_17"], gt, dataset_name, float(model.depth_factor)
  )
  table = {"mpjpe": "MPJPE", "pa-mpjpe": "PA-MPJPE"}
  key = {"mpjpe": "mpjpe", "pa-mpjpe": "pa_mpjpe"}
  metrics = {table[m]: float(err[key[m]].mean()) for m in names}
  per = {k: v.mean(-1) for k, v in err.items()}
  per["sample_idx"] = np.asarray(getattr(source, "indices", np.arange(n)))
  return {
    "metrics": metrics,
    "per_sample": per,
    "num_samples": n,
    "dataset_name": dataset_name,
    "predictions": pred,
    "skipped_samples": [
      (int(i), str(reason))
      for i, reason in sorted(getattr(source, "skipped", {}).items())
    ],
  }
