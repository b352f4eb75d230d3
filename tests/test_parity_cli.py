"""``parity.py`` against mmhuman3d's real PyTorch code (the reference venv).

Checkpoints are written by the reference venv itself (``reference/
run_hybrik.py save``: real ``torch.save`` and ``mmcv.runner.
save_checkpoint``), from the recipe state dict (tests/checkpoint_recipe.py).
The venv is built on first use (``scripts/setup_reference.sh``, ~1 min).
"""

from __future__ import annotations

import subprocess
import sys

import checkpoint_recipe
import numpy as np
import pytest
from helpers import REPO, subprocess_env

from hybrik_jax.interop import parity

RUNNER = REPO / "reference" / "run_hybrik.py"


@pytest.fixture(scope="module")
def checkpoints(refvenv, module_tmp, smpl_pkl):
  """{'torch', 'mmcv_adam', 'module'}: .pth files written by PyTorch."""
  base = module_tmp.mktemp("parity")
  state = base / "recipe_state.npz"
  np.savez(state, **checkpoint_recipe.full_state_dict(smpl_pkl))
  out = {}
  for fmt, extra in (
    ("torch", []),
    ("mmcv_adam", ["--perturb", "1"]),
    ("module", ["--perturb", "2"]),
  ):
    path = base / f"{fmt}.pth"
    subprocess.run(
      [
        str(refvenv / "bin" / "python"),
        str(RUNNER),
        "save",
        "--state",
        str(state),
        "--out",
        str(path),
        "--format",
        fmt,
        *extra,
      ],
      check=True,
      capture_output=True,
      cwd=REPO,
      timeout=600,
    )
    out[fmt] = path
  return out


def _parity(*args):
  return subprocess.run(
    [sys.executable, str(REPO / "parity.py"), *map(str, args)],
    capture_output=True,
    text=True,
    env=subprocess_env(),
    cwd=REPO,
    timeout=1200,
  )


ROWS = tuple(parity.FLOORS)  # the outputs parity.py compares


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["torch", "mmcv_adam", "module"])
def test_parity_holds_for_each_checkpoint_kind(checkpoints, fmt):
  proc = _parity(checkpoints[fmt], "--synthetic", 2)
  print(proc.stdout)
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  for name in ROWS:
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith(name))
    assert line.rstrip().endswith("yes"), line
  assert "parity holds on every output" in proc.stdout


@pytest.mark.slow
def test_a_mismatched_conversion_fails_loudly(checkpoints, tmp_path):
  converted = tmp_path / "conv"
  proc = subprocess.run(
    [
      sys.executable,
      str(REPO / "convert_torch_weights.py"),
      str(checkpoints["torch"]),
      str(converted),
    ],
    capture_output=True,
    text=True,
    env=subprocess_env(),
    timeout=600,
  )
  assert proc.returncode == 0, proc.stderr
  proc = _parity(
    checkpoints["mmcv_adam"], "--converted", converted, "--synthetic", 1
  )
  assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
  assert "sha256 differs" in proc.stdout
  assert "FAILED: backbone_features" in proc.stdout


@pytest.mark.slow
def test_without_a_reference_venv_the_error_says_how_to_build_it(
  checkpoints, tmp_path
):
  proc = _parity(checkpoints["torch"], "--refvenv", tmp_path / "none")
  assert proc.returncode == 2
  assert proc.stderr.strip().splitlines()[-1] == (
    f"error: no reference venv at {tmp_path / 'none'}: build it with "
    "`bash scripts/setup_reference.sh` (or pass --refvenv)"
  )


@pytest.fixture(scope="module")
def synthetic_test_split(module_tmp):
  """A synthetic HumanData test split (laid out like hybrik_pw3d_test.npz)."""
  from hybrik_jax.data import synthetic

  root = module_tmp.mktemp("synthetic")
  synthetic.generate(root, num=10, num_test=6, seed=3)
  return root / "synthetic_test.npz"


@pytest.mark.slow
def test_data_and_metrics_on_the_synthetic_test_split(
  checkpoints, synthetic_test_split
):
  proc = _parity(
    checkpoints["mmcv_adam"],
    "--data",
    synthetic_test_split,
    "--num",
    2,
    "--metrics",
  )
  print(proc.stdout)
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  lines = proc.stdout.splitlines()
  # The two test pipelines agree bit for bit on the network inputs.
  for key in parity.PIPELINE_KEYS:
    line = next(ln for ln in lines if ln.startswith(f"input {key} "))
    assert line.split()[2] == "0.000e+00", line
  for name in ROWS:
    line = next(ln for ln in lines if ln.startswith(name))
    assert line.rstrip().endswith("yes"), line
  # Each side's own evaluation code: MPJPE / PA-MPJPE / PVE within 0.01 mm.
  for metric in ("MPJPE", "PA-MPJPE", "PVE"):
    line = next(ln for ln in lines if ln.startswith(f"{metric} "))
    ref, ours, diff = (float(x) for x in line.split()[1:6:2])
    assert ref > 0 and abs(ref - ours) == pytest.approx(diff, abs=1.5e-3)
    assert diff <= parity.METRIC_TOLERANCE_MM, line
  assert "6 samples" in proc.stdout


def test_metrics_without_data_is_a_usage_error(checkpoints):
  proc = _parity(checkpoints["torch"], "--metrics")
  assert proc.returncode == 2, proc.stderr
  assert "--metrics needs --data" in proc.stderr


@pytest.mark.slow
def test_bench_reference_times_pytorch_in_the_same_run(refvenv):
  """bench/run_all.py --reference: the CPU line, the measured peaks and a
  PyTorch rate and speed-up on the rows it times (IK+SMPL only, --quick)."""
  proc = subprocess.run(
    [
      sys.executable,
      str(REPO / "bench" / "run_all.py"),
      "--quick",
      "--reference",
      "--skip",
      "infer,train,hrnet,input",
    ],
    capture_output=True,
    text=True,
    env=subprocess_env(),
    cwd=REPO,
    timeout=1200,
  )
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  out = proc.stdout
  assert "# CPU: " in out and "ISA: " in out
  assert "# XLA float32 peaks this run: GEMM" in out
  assert "# PyTorch float32 peaks (before / after): GEMM" in out
  rows = [ln for ln in out.splitlines() if ln.startswith("| IK+SMPL")]
  assert len(rows) == 2, out
  for row in rows:
    cells = [c.strip() for c in row.strip("|").split("|")]
    torch_rate, speedup = float(cells[8]), float(cells[9].rstrip("x"))
    assert torch_rate > 0
    assert speedup == pytest.approx(float(cells[4]) / torch_rate, rel=0.02)
