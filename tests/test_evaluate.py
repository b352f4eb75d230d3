"""evaluate.py end to end on a tiny synthetic test set, the protocol, errors."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_NET_SIZE

from hybrik_jax.eval import protocol as evaluation

ROOT = Path(__file__).resolve().parents[1]


def _evaluate(args, timeout=600):
  return subprocess.run(
    [
      sys.executable,
      str(ROOT / "evaluate.py"),
      "--config",
      str(ROOT / "configs" / "synthetic.py"),
      f"--config.model.image_size={TINY_NET_SIZE}",
      *args,
    ],
    capture_output=True,
    text=True,
    cwd=ROOT,
    timeout=timeout,
  )


def test_evaluate_cli_on_synthetic_test_split(
  tiny_run_dir, synthetic_dir, tmp_path
):
  out = tmp_path / "eval"
  proc = _evaluate(
    [
      "--checkpoint",
      str(tiny_run_dir),
      f"--config.data.root={synthetic_dir}",
      "--metrics",
      "pa-mpjpe,mpjpe,pve,3dpck",
      "--out",
      str(out),
      "--batch_size",
      "1",
    ]
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  report = json.loads((out / "metrics.json").read_text())
  assert report["num_samples"] == 2 and report["dataset_name"] == "pw3d"
  m = report["metrics_mm"]
  assert set(m) == {"PA-MPJPE", "MPJPE", "PVE", "3DPCK"}
  assert all(np.isfinite(v) for v in m.values())
  assert 0 < m["PA-MPJPE"] < m["MPJPE"]
  per = np.load(out / "per_sample.npz")
  np.testing.assert_array_equal(per["sample_idx"], [0, 1])
  # The headline numbers are the means of the per-sample errors.
  np.testing.assert_allclose(per["mpjpe"].mean(), m["MPJPE"], rtol=1e-4)
  np.testing.assert_allclose(per["pa_mpjpe"].mean(), m["PA-MPJPE"], rtol=1e-4)
  assert per["pred_xyz_17"].shape == (2, 17, 3)
  assert "PA-MPJPE" in proc.stdout and "MPJPE" in proc.stdout


@pytest.mark.parametrize(
  "args, message",
  [
    (["--checkpoint", "/nonexistent/ckpt"], "does not exist"),
    (["--data", "/nonexistent/test.npz"], "does not exist"),
  ],
)
def test_evaluate_cli_errors(tiny_run_dir, args, message):
  if args[0] == "--data":
    args = ["--checkpoint", str(tiny_run_dir)] + args
  proc = _evaluate(args)
  assert proc.returncode == 2
  assert message in proc.stderr
  assert "Traceback" not in proc.stderr


def test_evaluate_cli_rejects_a_folder_without_checkpoints(tmp_path):
  proc = _evaluate(["--checkpoint", str(tmp_path)])
  assert proc.returncode == 2
  assert "neither a converted checkpoint" in proc.stderr


def test_protocol_pw3d_scaling_root_and_joint_selection():
  rng = np.random.default_rng(0)
  gt_m = rng.normal(size=(3, 17, 3)) * 0.3  # metres (3DPW)
  pred = gt_m / 2.0  # units of the 2 m box
  pred_mm, gt_mm, mask = evaluation.protocol_keypoints(pred, gt_m, "pw3d")
  assert pred_mm.shape == (3, 14, 3) and mask.all()
  np.testing.assert_allclose(pred_mm, gt_mm, atol=1e-9)
  want = (gt_m - gt_m[:, :1]) * 1000.0
  np.testing.assert_allclose(
    gt_mm, want[:, evaluation.LSP14_FROM_H36M], atol=1e-9
  )


def test_protocol_h36m_and_3dhp():
  rng = np.random.default_rng(1)
  gt_mm_in = rng.normal(size=(2, 17, 3)) * 300  # millimetres
  p, g, _ = evaluation.protocol_keypoints(gt_mm_in / 2000.0, gt_mm_in, "h36m")
  np.testing.assert_allclose(p, g, atol=1e-9)
  assert p.shape == (2, 14, 3)
  # 3DHP: GT is reordered to H36M order, all 17 joints scored.
  h36m_order = gt_mm_in[:, evaluation.HP3D_JOINT_MAPPER]
  p, g, _ = evaluation.protocol_keypoints(
    h36m_order / 2000.0, gt_mm_in, "mpi_inf_3dhp"
  )
  assert p.shape == (2, 17, 3)
  np.testing.assert_allclose(p, g, atol=1e-9)


def test_keypoint_metrics_names_and_errors():
  rng = np.random.default_rng(2)
  gt = rng.normal(size=(4, 14, 3)) * 100
  pred = gt + rng.normal(size=gt.shape) * 10
  mask = np.ones((4, 14), bool)
  out = evaluation.keypoint_metrics(
    pred, gt, mask, ("mpjpe", "pa-mpjpe", "3dauc")
  )
  assert set(out) == {"MPJPE", "PA-MPJPE", "3DAUC"}
  np.testing.assert_allclose(
    out["MPJPE"], np.linalg.norm(pred - gt, axis=-1).mean(), rtol=1e-5
  )
  with pytest.raises(ValueError, match="not supported"):
    evaluation.keypoint_metrics(pred, gt, mask, ("foo",))
