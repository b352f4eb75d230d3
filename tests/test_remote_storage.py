"""A ``gs://`` workdir, data and converter output, end to end, on a fake bucket.

Each entry point runs as a subprocess under ``tests/scripts/fake_gcs.py``,
which serves ``gs://BUCKET/KEY`` from ``<bucket_root>/BUCKET/KEY`` for
:mod:`etils.epath` and for orbax's TensorStore arrays. The subprocesses run
in an empty folder: anything written there (``gs:/…`` made local by
``pathlib``/``open``) is a path that bypassed :mod:`hybrik_jax.storage`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import checkpoint_recipe
import numpy as np
import pytest
import torch_writer as tw
from helpers import REPO, subprocess_env, xla_cache

FAKE_GCS = REPO / "tests" / "scripts" / "fake_gcs.py"

TINY = [
  "--config.model.image_size=64",
  "--config.per_device_batch_size=2",
  "--config.num_epochs=1",
  "--config.checkpoint_every_steps=1",
  "--config.log_every_steps=1",
  "--config.eval_every_epochs=1",
  "--config.eval_at_start=false",
]


def _run(base: Path, entry: str, *args: str) -> subprocess.CompletedProcess:
  cmd = [
    sys.executable,
    str(FAKE_GCS),
    str(base / "bucket_root"),
    str(REPO / entry),
    *args,
  ]
  proc = subprocess.run(
    cmd,
    capture_output=True,
    text=True,
    env=subprocess_env(),
    cwd=base / "cwd",
    timeout=900,
  )
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  return proc


def _train(base: Path, max_steps: int) -> dict:
  _run(
    base,
    "train.py",
    "--config",
    str(REPO / "configs" / "synthetic.py"),
    "--workdir",
    "gs://bkt/run",
    "--config.data.root=gs://bkt/data",
    f"--jax_cache_dir={xla_cache()}",
    f"--config.max_steps={max_steps}",
    *TINY,
  )
  return json.loads((base / "bucket_root/bkt/run/summary.json").read_text())


@pytest.fixture(scope="module")
def bucket(module_tmp):
  """Tiny synthetic data uploaded to gs://bkt/data, then a 2-step run and its
  resume to step 4 in gs://bkt/run."""
  base = module_tmp.mktemp("gcs")
  (base / "cwd").mkdir()
  data = base / "bucket_root" / "bkt" / "data"
  subprocess.run(
    [
      sys.executable,
      "-m",
      "hybrik_jax.data.synthetic",
      "--num=12",
      "--num_test=4",
      f"--out={data}",
      "--no_progress",
    ],
    check=True,
    capture_output=True,
    cwd=REPO,
    env=subprocess_env(),
    timeout=300,
  )
  first = _train(base, 2)
  second = _train(base, 4)
  return base, first, second


@pytest.mark.slow
def test_train_resume_evaluate_on_a_bucket(bucket):
  base, first, second = bucket
  run = base / "bucket_root" / "bkt" / "run"
  # Resumed through the bucket, bit-identically.
  assert first["steps"] == 2 and second["steps"] == 4
  assert second["resumed_from"] == 2
  assert second["resumed_params_sha256"] == first["params_sha256"]
  # Every file of the run is in the bucket.
  assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
    "2",
    "3",
    "4",
  ]
  for name in ("config.json", "summary.json", "train_curves.png"):
    assert (run / name).stat().st_size > 0, name
  history = [
    json.loads(line)
    for line in (run / "history.jsonl").read_text().splitlines()
  ]
  # Both runs' rows: train steps 1-4, validation after each run's last step.
  assert [r["step"] for r in history if "train/loss" in r] == [1, 2, 3, 4]
  val = [r for r in history if "val/PA-MPJPE" in r]
  assert [r["step"] for r in val] == [2, 4]
  events = list((run / "tensorboard").glob("events.out.tfevents.*"))
  assert len(events) == 2 and all(e.stat().st_size > 0 for e in events)

  proc = _run(
    base,
    "evaluate.py",
    "--config",
    str(REPO / "configs" / "synthetic.py"),
    "--config.model.image_size=64",
    "--checkpoint",
    "gs://bkt/run",
    "--data",
    "gs://bkt/data/synthetic_test.npz",
    "--dataset_name=pw3d",
  )
  assert "gs://bkt/run/eval_synthetic_test/metrics.json" in proc.stdout
  report = json.loads(
    (run / "eval_synthetic_test" / "metrics.json").read_text()
  )
  assert report["checkpoint"] == "gs://bkt/run"
  assert report["ann_file"] == "gs://bkt/data/synthetic_test.npz"
  # The evaluator scores the step-4 checkpoint as the run's own validation.
  np.testing.assert_allclose(
    report["metrics_mm"]["PA-MPJPE"], val[-1]["val/PA-MPJPE"], rtol=1e-6
  )
  np.testing.assert_allclose(
    report["metrics_mm"]["MPJPE"], val[-1]["val/MPJPE"], rtol=1e-6
  )
  with np.load(run / "eval_synthetic_test" / "per_sample.npz") as f:
    assert f["mpjpe"].shape == (4,)
  # Nothing bypassed the storage layer.
  assert list((base / "cwd").iterdir()) == []


@pytest.mark.slow
def test_convert_to_a_bucket(tmp_path, smpl_pkl):
  """The converter reads its checkpoint from and writes to the bucket;
  ``--overwrite`` replaces the previous conversion there."""
  (tmp_path / "cwd").mkdir()
  src = tmp_path / "bucket_root" / "bkt" / "ckpt.pth"
  src.parent.mkdir(parents=True)
  state_dict = checkpoint_recipe.full_state_dict(smpl_pkl)
  tw.save(checkpoint_recipe.mmcv_container(state_dict), src)
  args = ("gs://bkt/ckpt.pth", "gs://bkt/converted")
  _run(tmp_path, "convert_torch_weights.py", *args)
  out = tmp_path / "bucket_root" / "bkt" / "converted"
  assert sorted(p.name for p in out.iterdir()) == [
    "report.json",
    "smpl_neutral.npz",
    "variables",
  ]
  report = json.loads((out / "report.json").read_text())
  assert report["source"]["bytes"] == src.stat().st_size
  first = (out / "smpl_neutral.npz").read_bytes()
  _run(tmp_path, "convert_torch_weights.py", *args, "--overwrite")
  assert (out / "smpl_neutral.npz").read_bytes() == first
  assert list((tmp_path / "cwd").iterdir()) == []

  # The converted variables load from the bucket for inference.
  sys.path.insert(0, str(FAKE_GCS.parent))
  try:
    import fake_gcs
  finally:
    sys.path.pop(0)
  from hybrik_jax.train import checkpointing

  with fake_gcs.fake_gcs(str(tmp_path / "bucket_root")):
    variables = checkpointing.load_inference_variables("gs://bkt/converted")
  w = variables["params"]["backbone"]["conv1"]["kernel"]
  # torch [O, I, kh, kw] -> flax [kh, kw, I, O]
  np.testing.assert_array_equal(
    np.asarray(w), state_dict["backbone.conv1.weight"].transpose(2, 3, 1, 0)
  )
