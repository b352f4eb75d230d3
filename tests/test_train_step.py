"""Data-parallel train step: 8 fake devices == the unsharded computation."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO

SCRIPT = Path(__file__).parent / "scripts" / "multidevice_step.py"


@pytest.mark.slow
def test_eight_device_step_equals_unsharded(tmp_path):
  env = dict(os.environ)
  env.pop("XLA_FLAGS", None)
  # The script imports hybrik_jax from this checkout, installed or not.
  env["PYTHONPATH"] = str(REPO)
  proc = subprocess.run(
    [sys.executable, str(SCRIPT), str(tmp_path)],
    capture_output=True,
    text=True,
    env=env,
    timeout=1500,
  )
  assert proc.returncode == 0, proc.stderr[-4000:]
  r = json.loads(proc.stdout.strip().splitlines()[-1])
  assert r["finite"] == 1.0 and r["step"] == 1
  # Same per-shard BatchNorm statistics and losses, averaged over devices.
  assert abs(r["loss"] - r["ref_loss"]) <= 1e-5 * max(1.0, abs(r["ref_loss"]))
  assert r["terms_diff"] <= 1e-5
  assert r["batch_stats_diff"] <= 1e-5
  # Averaged gradients agree to float32 summation-order noise.
  assert r["grad_scale"] > 1e-3
  assert r["grad_diff"] <= 1e-5 * max(1.0, r["grad_scale"])
  # Adam: |update| <= lr (1e-3) per weight; only near-zero-gradient weights
  # may differ, so the bulk must agree.
  assert r["params_moved"] > 5e-4
  assert r["params_diff"] <= 2.1e-3
  assert r["params_median_diff"] <= 1e-7
