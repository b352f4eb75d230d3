"""mmhuman3d's HybrIK evaluation protocol (``HybrIKHumanImageDataset.evaluate``).

Predictions are ``pred_xyz_jts_17`` ([N, 17, 3], H36M-17 joints regressed
from the predicted mesh, root-relative, in units of the 2 m depth box).
Ground truth is each sample's ``joint_relative_17`` (HumanData-190 layout)
picked at the dataset's index list. Per dataset:

* ``pw3d``: factor 1000 (GT in metres): pred x 2000/1000, both made
  root-relative (joint 0), x 1000 -> mm, then the 14 LSP joints
  ``[6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13, 8, 10]``.
* ``h36m`` (and any other SMPL dataset): factor 1 (GT in mm): pred x 2000,
  root-relative, same 14 joints.
* ``mpi_inf_3dhp``: factor 1; GT picked with ``hp3d_idxs`` and reordered by
  ``[14, 11, 12, 13, 8, 9, 10, 15, 1, 16, 0, 5, 6, 7, 2, 3, 4]``; all 17
  joints are scored.

Metric names follow mmhuman3d's config strings: ``mpjpe``, ``pa-mpjpe``,
``3dpck``, ``pa-3dpck``, ``3dauc``, ``pa-3dauc`` (results keyed upper-case,
e.g. ``'PA-MPJPE'``); ``pve`` is computed from meshes (see :func:`pve`).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np

from hybrik_jax import errors
from hybrik_jax.eval import metrics as metrics_lib

LSP14_FROM_H36M = (6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13, 8, 10)
HP3D_JOINT_MAPPER = (14, 11, 12, 13, 8, 9, 10, 15, 1, 16, 0, 5, 6, 7, 2, 3, 4)
DEPTH_BOX_MM = 2000.0
# Datasets with an evaluation protocol (mmhuman3d's HybrIK evaluate()).
PROTOCOLS = ("pw3d", "h36m", "mpi_inf_3dhp")
ALLOWED_METRICS = (
  "mpjpe",
  "pa-mpjpe",
  "3dpck",
  "pa-3dpck",
  "3dauc",
  "pa-3dauc",
  "pve",
)


def protocol_keypoints(
  pred_xyz_17: np.ndarray, gt_joint_relative: np.ndarray, dataset_name: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Applies the per-dataset scaling, root alignment and joint selection.

  Args:
    pred_xyz_17: [N, 17, 3] predicted H36M joints, units of the 2 m box.
    gt_joint_relative: [N, 17, 3] GT joints already selected from the
      HumanData-190 layout (``h36m_idxs``, or ``hp3d_idxs`` for 3DHP), in
      metres for 3DPW and millimetres otherwise.
    dataset_name: 'pw3d', 'h36m', 'mpi_inf_3dhp', or another SMPL dataset
      (treated like h36m).

  Returns:
    pred [N, K, 3] mm, gt [N, K, 3] mm, mask [N, K] bool.
  """
  pred = np.asarray(pred_xyz_17, np.float64)
  gt = np.asarray(gt_joint_relative, np.float64)
  if pred.shape != gt.shape or pred.shape[1:] != (17, 3):
    raise ValueError(
      f"expected pred and gt of shape [N, 17, 3], got "
      f"{pred.shape} and {gt.shape}"
    )
  factor = 1000.0 if dataset_name == "pw3d" else 1.0
  pred = pred * (DEPTH_BOX_MM / factor)
  if dataset_name == "mpi_inf_3dhp":
    gt = gt[:, HP3D_JOINT_MAPPER, :]
  pred = (pred - pred[:, :1]) * factor
  gt = (gt - gt[:, :1]) * factor
  if dataset_name != "mpi_inf_3dhp":
    pred = pred[:, LSP14_FROM_H36M, :]
    gt = gt[:, LSP14_FROM_H36M, :]
  mask = np.ones(gt.shape[:2], bool)
  return pred, gt, mask


_KEYPOINT_METRICS = {
  "mpjpe": ("none", "mpjpe"),
  "pa-mpjpe": ("procrustes", "mpjpe"),
  "3dpck": ("none", "pck"),
  "pa-3dpck": ("procrustes", "pck"),
  "3dauc": ("none", "auc"),
  "pa-3dauc": ("procrustes", "auc"),
}


def keypoint_metrics(
  pred_mm: np.ndarray,
  gt_mm: np.ndarray,
  mask: np.ndarray,
  names: Sequence[str] = ("pa-mpjpe", "mpjpe"),
) -> dict[str, float]:
  """Keypoint metrics (mm / %) keyed like mmhuman3d (``'PA-MPJPE'``, ...)."""
  out = {}
  for name in names:
    if name == "pve":
      continue
    if name not in _KEYPOINT_METRICS:
      raise ValueError(
        f"metric {name!r} is not supported; choose from {ALLOWED_METRICS}"
      )
    alignment, kind = _KEYPOINT_METRICS[name]
    fn = {
      "mpjpe": metrics_lib.keypoint_mpjpe,
      "pck": metrics_lib.keypoint_3d_pck,
      "auc": metrics_lib.keypoint_3d_auc,
    }[kind]
    out[name.upper()] = float(
      fn(jnp.asarray(pred_mm), jnp.asarray(gt_mm), jnp.asarray(mask), alignment)
    )
  return out


def per_sample_errors(
  pred_mm: np.ndarray, gt_mm: np.ndarray
) -> dict[str, np.ndarray]:
  """Per-sample MPJPE and PA-MPJPE ([N], mm) for error analysis."""
  return {
    "mpjpe": np.asarray(
      metrics_lib.per_point_errors(
        jnp.asarray(pred_mm), jnp.asarray(gt_mm), "none"
      )
    ).mean(-1),
    "pa_mpjpe": np.asarray(
      metrics_lib.per_point_errors(
        jnp.asarray(pred_mm), jnp.asarray(gt_mm), "procrustes"
      )
    ).mean(-1),
  }


def pve(pred_vertices_m: np.ndarray, gt_vertices_m: np.ndarray) -> float:
  """Per-vertex error in mm (mmhuman3d ``_report_pve``: no alignment)."""
  return float(
    metrics_lib.vertice_pve(
      jnp.asarray(pred_vertices_m) * 1000.0, jnp.asarray(gt_vertices_m) * 1000.0
    )
  )


def gt_joints_17(annotation: dict, dataset_name: str) -> np.ndarray:
  """GT [17, 3] from a test annotation's ``joint_relative_17`` (190 layout).

  H36M order (``h36m_idxs``) for SMPL datasets; ``hp3d_idxs`` for 3DHP.
  """
  from hybrik_jax.data import conventions

  idxs = (
    conventions.HP3D_TEST_IDXS
    if dataset_name == "mpi_inf_3dhp"
    else conventions.H36M_IDXS
  )
  return np.asarray(annotation["joint_relative_17"], np.float64)[list(idxs)]


def run_inference(
  variables,
  loader,
  num_steps: int,
  model=None,
  keys: Sequence[str] = ("pred_xyz_jts_17",),
  progress: bool = True,
  desc: str = "eval",
) -> dict[str, np.ndarray]:
  """Eval-mode forward over an eval loader; returns arrays ordered by
  ``sample_idx`` (padding rows dropped), plus ``sample_idx``.

  On several hosts each runs its slice of every batch (the loader's host
  shard) and the rows of all hosts are gathered, so every host returns the
  whole test set, as one host would.
  """
  import jax
  from tqdm import tqdm

  from hybrik_jax.model import hybrik as hybrik_model

  if model is None:
    model = hybrik_model.HybrIK()
  variables = jax.device_put(variables)
  chunks = {k: [] for k in (*keys, "valid", "sample_idx")}
  for _ in tqdm(
    range(num_steps), desc=desc, disable=not progress, unit="batch", leave=False
  ):
    batch = next(loader)
    out = hybrik_model.predict(
      variables,
      batch["img"],
      batch["trans_inv"],
      batch["intrinsic_param"],
      batch["joint_root"],
      batch["depth_factor"],
      dtype=model.dtype,
      precision=model.precision,
      backbone=model.backbone,
    )
    for k in keys:
      chunks[k].append(np.asarray(out[k]))
    chunks["valid"].append(np.asarray(batch["valid"], bool).reshape(-1))
    chunks["sample_idx"].append(np.asarray(batch["sample_idx"]).reshape(-1))
  rows = {k: np.concatenate(v) for k, v in chunks.items()}  # host's rows
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils

    # Every host ran the same number of equal-sized batches: concatenate.
    rows = {
      k: np.asarray(multihost_utils.process_allgather(v, tiled=True))
      for k, v in rows.items()
    }
  valid = rows.pop("valid")
  rows = {k: v[valid] for k, v in rows.items()}
  order = np.argsort(rows["sample_idx"], kind="stable")
  return {k: v[order] for k, v in rows.items()}


def evaluate_dataset(
  variables,
  data,
  model=None,
  metric_names: Sequence[str] | None = None,
  progress: bool = True,
) -> dict:
  """Runs the model over one test dataset with mmhuman3d's protocol.

  Args:
    variables: model variables incl. ``constants`` (body model).
    data: a :class:`hybrik_jax.builders.EvalData` (source + loader + protocol
      name); its loader is consumed and closed.
    model: the ``HybrIK`` module (its compute dtype and backbone); default
      ``HybrIK()``.
    metric_names: mmhuman3d metric strings; default ('pa-mpjpe', 'mpjpe').

  Returns:
    {'metrics': {'MPJPE': ..., 'PA-MPJPE': ...} (mm), 'per_sample':
    {'sample_idx', 'mpjpe', 'pa_mpjpe'}, 'num_samples': N (samples
    evaluated), 'dataset_name': ..., 'predictions': {...},
    'skipped_samples': [(index, reason), ...]}. ``sample_idx`` and the
    skipped indices are indices in the annotation file; samples left out by
    ``config.data.bad_samples='skip'`` are in ``skipped_samples`` only (an
    empty list when none was).
  """
  names = tuple(metric_names or ("pa-mpjpe", "mpjpe"))
  for n in names:
    if n not in ALLOWED_METRICS:
      data.loader.close()
      raise errors.ConfigError(
        f"metric {n!r} is not supported; choose from {ALLOWED_METRICS}"
      )
  if data.dataset_name not in PROTOCOLS:
    data.loader.close()
    raise errors.ConfigError(
      f"{data.name}: no evaluation protocol for dataset type "
      f"{data.dataset_name!r}; choose from {PROTOCOLS}"
    )
  source, loader, num_steps = data.source, data.loader, data.num_steps
  keys = ("pred_xyz_jts_17", "pred_pose", "pred_shape")
  try:
    res = run_inference(
      variables,
      loader,
      num_steps,
      model=model,
      keys=keys,
      progress=progress,
      desc=f"eval {data.name}",
    )
  finally:
    loader.close()
  n = len(source)
  # File index of each source sample (a 'skip' source leaves some out).
  expected = np.asarray(getattr(source, "indices", np.arange(n)))
  if len(res["sample_idx"]) != n or not np.array_equal(
    res["sample_idx"], expected
  ):
    raise RuntimeError(
      f"evaluation covered {len(res['sample_idx'])} of {n} samples"
    )
  dataset_name = data.dataset_name
  gt = np.stack(
    [gt_joints_17(source.annotation(i), dataset_name) for i in range(n)]
  )
  pred17 = res["pred_xyz_jts_17"].reshape(n, 17, 3)
  pred_mm, gt_mm, mask = protocol_keypoints(pred17, gt, dataset_name)
  out_metrics = keypoint_metrics(pred_mm, gt_mm, mask, names)
  if "pve" in names:
    out_metrics["PVE"] = _pve_from_predictions(
      variables,
      res["pred_pose"],
      res["pred_shape"],
      [source.annotation(i) for i in range(n)],
    )
  per = per_sample_errors(pred_mm, gt_mm)
  per["sample_idx"] = res["sample_idx"]
  return {
    "metrics": out_metrics,
    "per_sample": per,
    "num_samples": n,
    "dataset_name": dataset_name,
    "predictions": {
      "xyz_17": pred17,
      "smpl_pose": res["pred_pose"],
      "smpl_beta": res["pred_shape"],
    },
    "skipped_samples": [
      (int(i), str(reason))
      for i, reason in sorted(getattr(source, "skipped", {}).items())
    ],
  }


def _pve_from_predictions(
  variables, pred_pose, pred_shape, annotations
) -> float:
  """mmhuman3d ``_report_pve``: neutral body model for pred and GT, mm."""
  from hybrik_jax import smpl
  from hybrik_jax.model import hybrik as hybrik_model

  body = hybrik_model.body_model_from_constants(variables["constants"]["smpl"])
  pred = smpl.forward(
    body,
    jnp.asarray(pred_shape),
    jnp.asarray(pred_pose[:, 1:]),
    jnp.asarray(pred_pose[:, :1]),
  )["vertices"]
  gt_pose = np.stack(
    [np.asarray(a["pose"], np.float32).reshape(24, 3) for a in annotations]
  )
  gt_beta = np.stack([np.asarray(a["beta"], np.float32) for a in annotations])
  gt = smpl.forward(
    body,
    jnp.asarray(gt_beta),
    jnp.asarray(gt_pose[:, 1:]),
    jnp.asarray(gt_pose[:, 0]),
  )["vertices"]
  return pve(np.asarray(pred), np.asarray(gt))
