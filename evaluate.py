"""Evaluate HybrIK with mmhuman3d's protocol (3DPW, H36M, MPI-INF-3DHP).

  # the released mmhuman3d model, converted (see README):
  python evaluate.py --config configs/mixed.py --checkpoint converted/hybrik
  # expected on hybrik_pw3d_test.npz: MPJPE 81.08 mm, PA-MPJPE 49.02 mm

  # a training run (its newest checkpoint), on the synthetic test split:
  python evaluate.py --config configs/synthetic.py --checkpoint runs/synthetic

``--data FILE`` evaluates another HumanData test npz (``--image-root`` is
the folder its image paths are relative to; ``--dataset-name`` picks the
protocol: pw3d | h36m | mpi_inf_3dhp). Writes ``metrics.json`` and
``per_sample.npz`` (per-sample MPJPE / PA-MPJPE in mm, predictions) to
``--out`` (default: ``<checkpoint>/eval_<dataset>``). Flags follow
:mod:`hybrik_jax.cli` (``--image-root`` == ``--image_root``).
"""

from __future__ import annotations

import io
import json
import sys

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
    "Protocol for --data (default: the config's test set's).",
    flag_values=fv,
  )
  flags.DEFINE_list(
    "metrics",
    ["pa-mpjpe", "mpjpe"],
    "mmhuman3d metric names: pa-mpjpe, mpjpe, pve, 3dpck, "
    "pa-3dpck, 3dauc, pa-3dauc.",
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


def _fail(msg: str) -> int:
  print(f"error: {msg}", file=sys.stderr)
  return 1


def main(argv=None) -> int:
  fv, _ = cli.parse(define_flags, argv, "python evaluate.py", __doc__, xla=True)
  from absl import logging as absl_logging

  absl_logging.set_verbosity(absl_logging.WARNING)
  import numpy as np

  from hybrik_jax import builders, storage
  from hybrik_jax.eval import protocol
  from hybrik_jax.train import checkpointing

  config = fv.config
  ds = config.data.test
  if fv.data:
    data = storage.path(fv.data)
    if not data.exists():
      return _fail(f"--data {data} does not exist")
    ds = ds.copy_and_resolve_references()
    ds.ann_file = str(data)
    ds.image_root = str(storage.path(fv.image_root or data.parent))
    ds.name = data.stem
    if fv.dataset_name:
      ds.dataset_name = fv.dataset_name
  if fv.batch_size:
    config.data.eval_batch_size = fv.batch_size

  try:
    variables = checkpointing.load_inference_variables(fv.checkpoint)
  except (checkpointing.CheckpointNotFoundError, OSError, ValueError) as e:
    return _fail(str(e))
  try:
    result = protocol.evaluate_dataset(
      variables,
      builders.make_eval_data(config, ds),
      model=builders.build_model(config),
      metric_names=fv.metrics,
    )
  except (FileNotFoundError, ValueError) as e:
    return _fail(str(e))

  checkpoint = storage.path(fv.checkpoint)
  out = storage.path(fv.out or checkpoint / f"eval_{ds.name}")
  out.mkdir(parents=True, exist_ok=True)
  report = {
    "checkpoint": str(checkpoint),
    "dataset": ds.name,
    "dataset_name": result["dataset_name"],
    "ann_file": str(ds.ann_file),
    "num_samples": result["num_samples"],
    "metrics_mm": result["metrics"],
  }
  (out / "metrics.json").write_text(json.dumps(report, indent=2))
  buf = io.BytesIO()
  np.savez(
    buf,
    **result["per_sample"],
    **{f"pred_{k}": v for k, v in result["predictions"].items()},
  )
  storage.write_bytes(out / "per_sample.npz", buf.getvalue())

  width = max(len(k) for k in result["metrics"])
  print(
    f"\n{ds.name} ({result['dataset_name']} protocol), "
    f"{result['num_samples']} samples"
  )
  print(f"{'metric':<{width}}  value")
  for k, v in result["metrics"].items():
    unit = "%" if "PCK" in k or "AUC" in k else "mm"
    print(f"{k:<{width}}  {v:8.2f} {unit}")
  print(f"wrote {out / 'metrics.json'} and {out / 'per_sample.npz'}")
  return 0


if __name__ == "__main__":
  cli.run(main, huge_pages=True)
