"""Evaluate HybrIK with mmhuman3d's protocol (3DPW, H36M, MPI-INF-3DHP), or
the original authors' camera models with the authors' protocol.

  # the released mmhuman3d model, converted (see README):
  python evaluate.py --config configs/mixed.py --checkpoint converted/hybrik
  # expected on hybrik_pw3d_test.npz: MPJPE 81.08 mm, PA-MPJPE 49.02 mm

  # a training run (its newest checkpoint), on the synthetic test split:
  python evaluate.py --config configs/synthetic.py --checkpoint runs/synthetic

A training run's checkpoint is evaluated with the run's own model values
(input size, backbone, body model, normalisation: its ``config.json``); a
``--config.*`` flag that contradicts them is refused. ``--data FILE``
evaluates another HumanData test npz (``--image-root`` is the folder its
image paths are relative to); the file's own ``config`` entry picks the
protocol (pw3d | h36m | mpi_inf_3dhp), ``--dataset-name`` names it for a
file without one and must agree otherwise. Writes ``metrics.json`` and
``per_sample.npz`` (per-sample MPJPE / PA-MPJPE in mm, predictions) to
``--out`` (default: ``<checkpoint>/eval_<dataset>``).

A conversion of the authors' HRNet-W48 / ResNet-34 camera checkpoints
(``report.json`` names the architecture) is evaluated with their
``validate_smpl_cam.py`` protocol on 3DPW / H36M files
(:mod:`hybrik_jax.eval.authors_protocol`: their crop, 2.2 m depth box, PA on
17 joints for H36M); ``--flip_test`` is their HRNet flip test::

  python evaluate.py --config configs/mixed.py \
      --checkpoint converted/hrnet_w48_cam --flip_test

Flags follow
:mod:`hybrik_jax.cli` (``--image-root`` == ``--image_root``).
"""

from __future__ import annotations

import io
import json
import math

from absl import flags

from hybrik_jax import cli


def define_flags(fv: flags.FlagValues) -> None:
  cli.define_config_file(
    fv,
    "Config file (data root, image size, body model, test set).",
    lock_config=False,
  )
  flags.DEFINE_string(
    "checkpoint",
    None,
    "Converted checkpoint folder, training run directory, or step folder.",
    flag_values=fv,
  )
  flags.DEFINE_string(
    "data", None, "HumanData test npz (optional).", flag_values=fv
  )
  flags.DEFINE_string(
    "image_root",
    None,
    "Folder the --data image paths are relative to "
    "(default: the npz's folder).",
    flag_values=fv,
  )
  flags.DEFINE_enum(
    "dataset_name",
    None,
    ["pw3d", "h36m", "mpi_inf_3dhp"],
    "Protocol for --data: the file's own HumanData 'config' entry decides; "
    "give it for a file without one (a contradiction is an error).",
    flag_values=fv,
  )
  flags.DEFINE_list(
    "metrics",
    ["pa-mpjpe", "mpjpe"],
    "mmhuman3d metric names: pa-mpjpe, mpjpe, pve, 3dpck, "
    "pa-3dpck, 3dauc, pa-3dauc.",
    flag_values=fv,
  )
  flags.DEFINE_bool(
    "flip_test",
    False,
    "The authors' flip test (their HRNet-W48 camera model only).",
    flag_values=fv,
  )
  flags.DEFINE_string("out", None, "Output folder.", flag_values=fv)
  flags.DEFINE_integer(
    "batch_size",
    None,
    "Evaluation batch size (config.data.eval_batch_size).",
    flag_values=fv,
  )
  flags.mark_flags_as_required(["config", "checkpoint"], flag_values=fv)


def _json_safe(value):
  """Non-finite floats as null (JSON has no NaN)."""
  if isinstance(value, dict):
    return {k: _json_safe(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_json_safe(v) for v in value]
  if isinstance(value, float) and not math.isfinite(value):
    return None
  return value


def main(argv=None) -> int:
  fv, _ = cli.parse(define_flags, argv, "python evaluate.py", __doc__, xla=True)
  from absl import logging as absl_logging

  absl_logging.set_verbosity(absl_logging.WARNING)
  import numpy as np
  from ml_collections import config_flags

  from hybrik_jax import builders, errors, storage
  from hybrik_jax.eval import authors_protocol, protocol
  from hybrik_jax.interop import convert
  from hybrik_jax.train import checkpointing, run_config

  config = fv.config
  # A training run's own values for the model (input size, backbone, body
  # model, normalisation); a --config.* flag that contradicts them is refused.
  run = run_config.find_for_checkpoint(fv.checkpoint)
  if run is not None:
    run_config.apply_run_config(
      config, run[1], run[0], config_flags.get_override_values(fv["config"])
    )
  ds = config.data.test
  if fv.data:
    data = storage.path(fv.data)
    if not data.exists():
      raise errors.MissingInputError(f"--data {data} does not exist")
    ds = ds.copy_and_resolve_references()
    ds.ann_file = str(data)
    ds.image_root = str(storage.path(fv.image_root or data.parent))
    ds.name = data.stem
    # The file's own 'config' entry decides; --dataset_name must agree.
    ds.dataset_name = fv.dataset_name
  if fv.batch_size:
    config.data.eval_batch_size = fv.batch_size

  variables, ckpt = checkpointing.load_inference_checkpoint(fv.checkpoint)
  arch = ckpt["architecture"]
  if fv.flip_test and arch not in authors_protocol.FLIP_TEST_ARCHS:
    raise errors.ConfigError(
      f"--flip_test is defined for {authors_protocol.FLIP_TEST_ARCHS} only, "
      f"not for {fv.checkpoint} ({arch}): mmhuman3d's protocol has no flip "
      "test and the authors' ResNet-34 camera model's crashes in their code"
    )
  if arch == convert.MMHUMAN3D_RESNET34:
    result = protocol.evaluate_dataset(
      variables,
      builders.make_eval_data(config, ds),
      model=builders.build_model(config),
      metric_names=fv.metrics,
    )
  else:
    # The authors' model: their crop and protocol (authors_protocol).
    source, dataset_name = builders.make_eval_source(config, ds)
    if not hasattr(source, "image_path"):
      raise errors.ConfigError(
        f"{ds.name}: the authors' protocol crops the full images; give an "
        "npz test file (--data), not pre-cropped records"
      )
    result = authors_protocol.evaluate_dataset(
      variables,
      source,
      arch,
      dataset_name,
      ds.name,
      batch_size=int(config.data.eval_batch_size),
      metric_names=fv.metrics,
      flip_test=fv.flip_test,
      # A training run's own network (backbone, input size, depth box); a
      # conversion is the authors' model at 256 px.
      model=builders.build_model(config) if run is not None else None,
      image_size=int(config.model.image_size)
      if run is not None
      else authors_protocol.IMAGE_SIZE,
    )

  checkpoint = storage.path(fv.checkpoint)
  out = storage.path(fv.out or checkpoint / f"eval_{ds.name}")
  out.mkdir(parents=True, exist_ok=True)
  outputs = (out / "metrics.json", out / "per_sample.npz")
  replaced = [p.name for p in outputs if p.exists()]
  if replaced:
    print(f"warning: replacing {', '.join(replaced)} in {out}", flush=True)
  report = {
    "checkpoint": str(checkpoint),
    "checkpoint_step_dir": ckpt["path"],
    "step": ckpt["step"],
    "config_sha256": run_config.config_sha256(config),
    "run_config": str(run[0]) if run is not None else None,
    "dataset": ds.name,
    "dataset_name": result["dataset_name"],
    "architecture": arch,
    "protocol": "mmhuman3d"
    if arch == convert.MMHUMAN3D_RESNET34
    else "authors (validate_smpl_cam.py)",
    "flip_test": bool(fv.flip_test),
    "ann_file": str(ds.ann_file),
    "num_samples": result["num_samples"],
    "skipped_samples": [
      {"index": int(i), "reason": r} for i, r in result["skipped_samples"]
    ],
    "metrics_mm": result["metrics"],
  }
  outputs[0].write_text(
    json.dumps(_json_safe(report), indent=2, allow_nan=False)
  )
  buf = io.BytesIO()
  np.savez(
    buf,
    **result["per_sample"],
    **{f"pred_{k}": v for k, v in result["predictions"].items()},
  )
  storage.write_bytes(outputs[1], buf.getvalue())

  width = max(len(k) for k in result["metrics"])
  print(
    f"\n{ds.name} ({result['dataset_name']} protocol"
    + (
      ""
      if arch == convert.MMHUMAN3D_RESNET34
      else ", the authors' validate_smpl_cam.py"
      + (", flip test" if fv.flip_test else "")
    )
    + "), "
    f"{result['num_samples']} samples"
    + (
      f" ({len(result['skipped_samples'])} bad ones skipped)"
      if result["skipped_samples"]
      else ""
    )
  )
  if ckpt["step"] is not None:
    print(f"checkpoint: step {ckpt['step']} ({ckpt['path']})")
  print(f"{'metric':<{width}}  value")
  for k, v in result["metrics"].items():
    unit = "%" if "PCK" in k or "AUC" in k else "mm"
    print(f"{k:<{width}}  {v:8.2f} {unit}")
  print(f"wrote {outputs[0]} and {outputs[1]}")
  return 0


if __name__ == "__main__":
  cli.run(main, huge_pages=True)
