"""Checkpoints move between topologies: a run trained on several devices is
evaluated on one, and resumed on another device count, bit-identically."""

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from helpers import subprocess_env, train_cmd, xla_cache

from hybrik_jax.train import checkpointing, loop

ROOT = Path(__file__).resolve().parents[1]

TINY = [
  "--config.model.image_size=64",
  "--config.data.synthetic.num_train=8",
  "--config.data.synthetic.num_test=2",
  "--config.eval_every_epochs=0",
  "--config.checkpoint_every_steps=1",
]


def _train(workdir, base, devices, per_device, max_steps):
  env = subprocess_env(devices)
  cmd = train_cmd(
    workdir,
    base / "data",
    xla_cache(),
    f"--config.per_device_batch_size={per_device}",
    f"--config.max_steps={max_steps}",
    *TINY,
  )
  proc = subprocess.run(
    cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=900
  )
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  assert f"{devices} local / {devices} global cpu device(s)" in proc.stdout
  return json.loads((workdir / "summary.json").read_text())


@pytest.fixture(scope="module")
def eight_device_run(module_tmp):
  """2 steps on 8 fake devices (global batch 8)."""
  base = module_tmp.mktemp("topology")
  return base, _train(base / "run8", base, 8, 1, 2)


@pytest.mark.slow
def test_multi_device_checkpoint_loads_on_one_device(eight_device_run):
  base, summary = eight_device_run
  variables = checkpointing.load_inference_variables(base / "run8")
  assert loop.params_digest(variables["params"]) == summary["params_sha256"]
  leaf = variables["params"]["head"]["fc1"]["kernel"]
  assert len(leaf.sharding.device_set) == 1
  assert np.isfinite(np.asarray(leaf)).all()


@pytest.mark.slow
def test_resume_on_another_device_count_restores_bit_identically(
  eight_device_run,
):
  base, summary = eight_device_run
  work = base / "run8to2"
  # The same global batch (8) on 2 devices.
  import shutil

  shutil.copytree(base / "run8", work)
  resumed = _train(work, base, 2, 4, 3)
  assert resumed["resumed_from"] == 2
  assert resumed["resumed_params_sha256"] == summary["params_sha256"]
  assert resumed["steps"] == 3 and resumed["global_batch"] == 8


def test_unreadable_checkpoint_message_says_why(tmp_path):
  step = tmp_path / "checkpoints" / "5" / "state"
  step.mkdir(parents=True)
  (step / "_METADATA").write_text("not json")
  with pytest.raises(checkpointing.CheckpointNotFoundError) as e:
    checkpointing.load_inference_variables(tmp_path)
  assert "5: " in str(e.value) and "Error" in str(e.value)
