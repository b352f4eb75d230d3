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
``--out`` (default: ``<checkpoint>/eval_<dataset>``).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from absl import app
from absl import flags
from absl import logging as absl_logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Config file (data root, image size, body model).",
    lock_config=False)
_CKPT = flags.DEFINE_string(
    "checkpoint", None,
    "Converted checkpoint folder, training run directory, or step folder.")
_DATA = flags.DEFINE_string("data", None, "HumanData test npz (optional).")
_IMAGE_ROOT = flags.DEFINE_string(
    "image_root", None, "Folder the --data image paths are relative to "
    "(default: the npz's folder).")
_DATASET_NAME = flags.DEFINE_string(
    "dataset_name", None, "Protocol for --data: pw3d | h36m | mpi_inf_3dhp.")
_METRICS = flags.DEFINE_list("metrics", ["pa-mpjpe", "mpjpe"],
                             "mmhuman3d metric names.")
_OUT = flags.DEFINE_string("out", None, "Output folder.")
_BATCH = flags.DEFINE_integer("batch_size", None, "Evaluation batch size.")


def _fail(msg: str):
  print(f"error: {msg}", file=sys.stderr)
  raise SystemExit(1)


def main(argv):
  del argv
  absl_logging.set_verbosity(absl_logging.WARNING)
  import numpy as np  # pylint: disable=g-import-not-at-top
  from hybrik_jax.train import checkpointing
  from hybrik_jax.eval import protocol as evaluation
  from hybrik_jax.train import loop as trainer  # pylint: disable=g-import-not-at-top

  config = _CONFIG.value
  ds = config.data.test
  if _DATA.value:
    data = Path(_DATA.value).absolute()
    if not data.exists():
      _fail(f"--data {data} does not exist")
    ds = ds.copy_and_resolve_references()
    ds.ann_file = str(data)
    ds.image_root = str(Path(_IMAGE_ROOT.value or data.parent).absolute())
    ds.name = data.stem
    if _DATASET_NAME.value:
      ds.dataset_name = _DATASET_NAME.value
  if _BATCH.value:
    config.data.eval_batch_size = _BATCH.value

  try:
    variables = checkpointing.load_inference_variables(_CKPT.value)
  except (checkpointing.CheckpointNotFoundError, OSError, ValueError) as e:
    _fail(str(e))
  try:
    result = evaluation.evaluate_dataset(
        config, variables, ds, model=trainer.build_model(config),
        metric_names=_METRICS.value)
  except (FileNotFoundError, ValueError) as e:
    _fail(str(e))

  out = Path(_OUT.value or Path(_CKPT.value) / f"eval_{ds.name}")
  out.mkdir(parents=True, exist_ok=True)
  report = {"checkpoint": os.path.abspath(_CKPT.value),
            "dataset": ds.name, "dataset_name": result["dataset_name"],
            "ann_file": str(ds.ann_file), "num_samples": result["num_samples"],
            "metrics_mm": result["metrics"]}
  (out / "metrics.json").write_text(json.dumps(report, indent=2))
  np.savez(out / "per_sample.npz", **result["per_sample"],
           **{f"pred_{k}": v for k, v in result["predictions"].items()})

  width = max(len(k) for k in result["metrics"])
  print(f"\n{ds.name} ({result['dataset_name']} protocol), "
        f"{result['num_samples']} samples")
  print(f"{'metric':<{width}}  value")
  for k, v in result["metrics"].items():
    unit = "%" if "PCK" in k or "AUC" in k else "mm"
    print(f"{k:<{width}}  {v:8.2f} {unit}")
  print(f"wrote {out / 'metrics.json'} and {out / 'per_sample.npz'}")


if __name__ == "__main__":
  from hybrik_jax import host_memory  # pylint: disable=g-import-not-at-top
  host_memory.reexec_with_huge_pages()  # see hybrik_jax/host_memory.py
  flags.mark_flags_as_required(["config", "checkpoint"])
  app.run(main)
