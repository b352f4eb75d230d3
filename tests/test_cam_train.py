"""Training pieces of the authors' camera recipe against their own code.

Goldens: tests/fixtures/authors/cam_train.npz, made by
``reference/make_cam_train_goldens.py`` (the authors' target methods of
``SimpleTransform3DSMPLCam`` and their ``LaplaceLossDimSMPLCam`` /
``L1LossDimSMPLCam`` on the train-mode outputs of their recipe models).
"""

from __future__ import annotations

import json

import jax.numpy as jnp
import numpy as np
import pytest
from helpers import golden

from hybrik_jax.data import cam_targets
from hybrik_jax.train import cam_losses

ARCHS = ("hrnet_w48_cam", "resnet34_cam")


@pytest.fixture(scope="module")
def gold():
  return golden("authors/cam_train.npz")


def _recipe_weights(g) -> dict[str, float]:
  el = json.loads(str(g["meta"]))["summary"]["elements"]
  return {
    "beta": el["BETA_WEIGHT"],
    "theta": el["THETA_WEIGHT"],
    "twist": el["TWIST_WEIGHT"],
    "uvd": el["UVD24_WEIGHT"],
  }


def test_targets_match_authors(gold):
  """uvd/xyz/theta targets and the camera (calc_cam_scale_trans2) equal the
  authors' on 6 samples, the no-camera and invalid-camera branches
  included."""
  g = gold
  n = g["in_joints29"].shape[0]
  valid = []
  for i in range(n):
    got = cam_targets.smpl_targets(
      g["in_joints29"][i],
      g["in_vis29"][i],
      g["in_xyz24"][i],
      g["in_pose"][i],
      img_res=256,
    )
    for k, v in got.items():
      want = g[f"tgt_{k}"][i]
      assert v.shape == want.shape and v.dtype == np.float32, k
      atol = 1e-3 if k == "camera_error" else 1e-6
      np.testing.assert_allclose(v, want, rtol=1e-6, atol=atol, err_msg=k)
    valid.append(float(got["camera_valid"][0]))
  # Both branches were exercised: valid cameras and rejected ones.
  assert 0.0 in valid and 1.0 in valid
  assert g["tgt_camera_error"][-2, 0] == -1  # the single-joint sample
  assert g["tgt_camera_scale"][-2, 0] == 0


def test_camera_recovers_a_known_camera(gold):
  """With 0.5-px noise the solved scale is within 1% of the camera the
  golden samples were projected with."""
  g = gold
  for i in range(4):
    got = cam_targets.smpl_targets(
      g["in_joints29"][i],
      g["in_vis29"][i],
      g["in_xyz24"][i],
      g["in_pose"][i],
      256,
    )
    np.testing.assert_allclose(
      got["camera_scale"][0], g["in_cam"][i, 0], rtol=1e-2
    )
    np.testing.assert_allclose(
      got["camera_trans"], g["in_cam"][i, 1:], atol=5e-3
    )


def test_rodrigues_is_a_rotation():
  """Up to the authors' +1e-8 inside the norm (axis not exactly unit)."""
  rng = np.random.default_rng(0)
  r = cam_targets.rodrigues_matrices(rng.normal(size=(24, 3)))
  np.testing.assert_allclose(
    r @ np.swapaxes(r, 1, 2), np.eye(3)[None].repeat(24, 0), atol=1e-7
  )
  np.testing.assert_allclose(np.linalg.det(r), 1.0, atol=1e-7)


def _inputs(g, arch):
  pre_o, pre_t = f"{arch}_out_", f"{arch}_tgt_"
  out = {
    k[len(pre_o) :]: jnp.asarray(v) for k, v in g.items() if k.startswith(pre_o)
  }
  tgt = {
    k[len(pre_t) :]: jnp.asarray(v) for k, v in g.items() if k.startswith(pre_t)
  }
  return out, tgt


@pytest.mark.parametrize("arch", ARCHS)
def test_laplace_loss_matches_authors(gold, arch):
  """Total (float32) and every term (vs float64) within rtol 1e-5."""
  out, tgt = _inputs(gold, arch)
  terms = cam_losses.laplace_losses(out, tgt, _recipe_weights(gold))
  want_total = float(gold[f"{arch}_loss"])
  print(arch, {k: float(v) for k, v in terms.items()})
  np.testing.assert_allclose(float(terms["loss"]), want_total, rtol=1e-5)
  np.testing.assert_allclose(
    float(terms["loss"]), float(gold[f"{arch}_loss_f64"]), rtol=1e-5
  )
  names = ["beta", "theta", "twist", "uvd", "scale"]
  if arch == "resnet34_cam":
    names.append("trans")
  else:
    assert "loss_trans" not in terms  # HRNet regresses no xy offset
  for name in names:
    want = float(gold[f"{arch}_term_{name}"])
    got = float(terms[f"loss_{name}"])
    assert want != 0, name
    np.testing.assert_allclose(got, want, rtol=1e-5, err_msg=name)
  assert set(terms) == {"loss"} | {f"loss_{n}" for n in names}


@pytest.mark.parametrize("arch", ARCHS)
def test_l1_loss_matches_authors(gold, arch):
  out, tgt = _inputs(gold, arch)
  terms = cam_losses.l1_losses(out, tgt, _recipe_weights(gold))
  np.testing.assert_allclose(
    float(terms["loss"]), float(gold[f"{arch}_l1_loss"]), rtol=1e-5
  )


def test_camera_terms_are_masked_by_xyz_weight(gold):
  """Sample 1 of the goldens has <= 3 xyz weights: changing its camera
  prediction changes nothing; sample 0's does."""
  out, tgt = _inputs(gold, "resnet34_cam")
  w = cam_losses.camera_weight(tgt["target_xyz_weight_24"])
  np.testing.assert_array_equal(np.asarray(w)[:, 0], [1.0, 0.0])
  base = cam_losses.laplace_losses(out, tgt, _recipe_weights(gold))
  for i, changes in ((1, False), (0, True)):
    o = dict(out)
    o["cam_scale"] = out["cam_scale"].at[i].add(0.5)
    o["cam_trans"] = out["cam_trans"].at[i].add(0.5)
    t = cam_losses.laplace_losses(o, tgt, _recipe_weights(gold))
    for k in ("loss_scale", "loss_trans"):
      assert (float(t[k]) != float(base[k])) == changes, (i, k)


def test_zero_uvd_weights_sum_not_divided():
  """All-zero uvd weights: the authors return the (zero) sum, not 0/0."""
  b = 2
  pred = jnp.zeros((b, 29, 3))
  sigma = jnp.full((b, 29, 1), 0.1)
  v = cam_losses.weighted_laplace(
    pred, sigma, pred + 0.1, jnp.zeros((b, 29, 3))
  )
  assert float(v) == 0.0


@pytest.fixture(scope="module")
def human_data(module_tmp):
  from test_human_data import make_human_data

  from hybrik_jax.data.annotations import HybrIKAnnotations
  from hybrik_jax.data.human_data import save_human_data

  tmp = module_tmp.mktemp("cam_hd")
  out = {}
  for kind in ("h36m", "pw3d"):  # mm / metres
    save_human_data(tmp / f"{kind}.npz", make_human_data(kind, seed=3))
    out[kind] = HybrIKAnnotations(tmp / f"{kind}.npz", kind)
  return out


def test_train_transform_makes_camera_targets(human_data):
  """``targets='authors_cam'`` in the train transform: a consistent camera
  for a rotated crop (the xyz joints turn with it), the same targets from
  mm and metre data, rotation-matrix theta; the mmhuman3d keys keep their
  shapes otherwise."""
  import dataclasses

  from test_human_data import H, W

  from hybrik_jax.data import transforms as T

  cfg = T.TransformConfig(targets="authors_cam")
  img = (np.random.default_rng(4).random((H, W, 3)) * 255).astype(np.uint8)
  outs = {}
  for kind, ann in human_data.items():
    for rot_u in (0.2, 0.9):  # rotation -33 deg / none
      d = dataclasses.replace(
        T.identity_draws(), rot_randn=-1.1, rot_u=rot_u, scale_randn=-0.4
      )
      outs[kind, rot_u] = T.train_sample(ann[1], img, d, cfg, return_meta=True)
  a, b = outs["h36m", 0.2], outs["h36m", 0.9]
  assert a["meta"]["rotation"] == pytest.approx(-33.0)
  assert b["meta"]["rotation"] == 0.0
  for o in outs.values():
    assert o["target_theta"].shape == (216,)
    assert o["camera_valid"][0] == 1.0 and 0 < o["camera_error"][0] < 20
    assert o["target_uvd_29"].shape == (87,)
  # The camera does not depend on the crop rotation (xyz turned with it).
  np.testing.assert_allclose(a["camera_scale"], b["camera_scale"], rtol=1e-5)
  np.testing.assert_allclose(a["camera_error"], b["camera_error"], atol=1e-3)
  np.testing.assert_allclose(
    np.linalg.norm(a["camera_trans"]),
    np.linalg.norm(b["camera_trans"]),
    rtol=1e-4,
  )
  # Without turning the xyz joints the fit is far worse.
  xyz_unrot = b["target_xyz_24"].reshape(24, 3)
  _, _, _, err = cam_targets.camera_scale_trans(
    xyz_unrot,
    a["target_uvd_29"].reshape(29, 3)[:24],
    a["target_weight_29"].reshape(29, 3)[:24],
  )
  assert err > 5 * a["camera_error"][0]
  # mm (h36m layout) and metre (3DPW layout) data give the same targets.
  for k in cam_targets.non_smpl_targets():
    np.testing.assert_allclose(
      outs["h36m", 0.2][k],
      outs["pw3d", 0.2][k],
      rtol=1e-4,
      atol=1e-5,
      err_msg=k,
    )
  # theta: rotation matrices of the crop-rotated pose.
  r = a["target_theta"].reshape(24, 3, 3)
  np.testing.assert_allclose(
    r @ np.swapaxes(r, 1, 2), np.eye(3)[None].repeat(24, 0), atol=1e-6
  )


# The recipe at a smoke-test size: 64-px crops, 2 images per step, the
# shallow HRNet-W48 (same code path, 9 instead of 104 blocks: the full
# network alone takes ~4 min to compile on 2 cores), 8 synthetic samples.
SMOKE = (
  "--config.model.image_size=64",
  "--config.model.backbone=hrnet_w48_shallow",
  "--config.per_device_batch_size=2",
  "--config.data.synthetic.num_train=8",
  "--config.data.synthetic.num_test=2",
  "--config.max_steps=6",
  "--config.log_every_steps=1",
  "--config.checkpoint_every_steps=3",
)


@pytest.mark.slow
def test_hrnet_cam_recipe_trains_end_to_end(tmp_path):
  """``train.py --config configs/hrnet_w48_cam.py:synthetic``: every loss
  term logged and finite, the loss falls, checkpoints are written and
  reload into the camera model (bit-identical parameters, finite
  outputs), and the run is recognised as the authors' architecture."""
  import subprocess
  import sys

  import jax
  from helpers import REPO, subprocess_env, xla_cache

  from hybrik_jax.model import hybrik_cam
  from hybrik_jax.train import checkpointing, loop

  work = tmp_path / "run"
  cmd = [
    sys.executable,
    str(REPO / "train.py"),
    "--config",
    f"{REPO / 'configs' / 'hrnet_w48_cam.py'}:synthetic",
    "--workdir",
    str(work),
    f"--config.data.root={tmp_path / 'data'}",
    f"--jax_cache_dir={xla_cache()}",
    *SMOKE,
  ]
  proc = subprocess.run(
    cmd, env=subprocess_env(), capture_output=True, text=True, timeout=600
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  hist = [json.loads(line) for line in (work / "history.jsonl").open()]
  rows = [r for r in hist if "train/loss" in r]
  assert [r["step"] for r in rows] == list(range(1, 7))
  terms = ("beta", "theta", "twist", "uvd", "scale")
  for r in rows:
    parts = [r[f"train/loss_{t}"] for t in terms]
    assert all(np.isfinite(parts)), r
    assert r["train/loss"] == pytest.approx(sum(parts), rel=1e-5, abs=1e-6)
    assert "train/loss_trans" not in r  # HRNet regresses no xy offset
  losses = [r["train/loss"] for r in rows]
  print("losses", losses)
  assert np.mean(losses[-3:]) < losses[0], losses
  assert (work / "train_curves.png").stat().st_size > 0
  # Checkpoints every 3 steps and at the epoch end (4 steps of 2 of 8
  # samples); the newest reloads bit for bit.
  steps = sorted(int(p.name) for p in (work / "checkpoints").iterdir())
  assert steps == [3, 4, 6], steps
  variables, info = checkpointing.load_inference_checkpoint(work)
  assert info["step"] == 6 and info["architecture"] == "hrnet_w48_cam"
  summary = json.loads((work / "summary.json").read_text())
  assert loop.params_digest(variables["params"]) == summary["params_sha256"]
  model = hybrik_cam.HRNetSMPLCam(backbone="hrnet_w48_shallow")
  img = np.random.default_rng(0).normal(size=(1, 64, 64, 3)).astype(np.float32)
  out = jax.jit(lambda v, x: model.apply(v, x))(variables, img)
  for k in ("pred_vertices", "transl", "cam_scale", "pred_uvd_jts"):
    assert np.all(np.isfinite(np.asarray(out[k]))), k
  # evaluate.py knows the run is an authors' model and scores it with their
  # protocol, with the run's own network (shallow backbone, 64 px).
  ev = subprocess.run(
    [
      sys.executable,
      str(REPO / "evaluate.py"),
      "--config",
      f"{REPO / 'configs' / 'hrnet_w48_cam.py'}:synthetic",
      "--checkpoint",
      str(work),
      f"--config.data.root={tmp_path / 'data'}",
      "--out",
      str(tmp_path / "eval"),
    ],
    env=subprocess_env(),
    capture_output=True,
    text=True,
    timeout=600,
  )
  assert ev.returncode == 0, ev.stderr[-2000:]
  report = json.loads((tmp_path / "eval" / "metrics.json").read_text())
  assert report["architecture"] == "hrnet_w48_cam"
  assert report["protocol"].startswith("authors") and report["step"] == 6
  assert report["num_samples"] > 0
  for k in ("MPJPE", "PA-MPJPE"):
    assert np.isfinite(report["metrics_mm"][k]) and report["metrics_mm"][k] > 0


def test_train_transform_non_smpl_sample_has_no_camera(tmp_path):
  """COCO (2-D only) through ``targets='authors_cam'``: mmhuman3d's uvd
  targets, zero rotation-matrix theta and no camera (xyz weight 0, so the
  camera losses skip the sample)."""
  from test_human_data import H, W, make_human_data

  from hybrik_jax.data import transforms as T
  from hybrik_jax.data.annotations import HybrIKAnnotations
  from hybrik_jax.data.human_data import save_human_data

  save_human_data(tmp_path / "coco.npz", make_human_data("coco", seed=3))
  ann = HybrIKAnnotations(tmp_path / "coco.npz", "coco")[0]
  img = np.zeros((H, W, 3), np.uint8)
  cam = T.train_sample(
    ann, img, T.identity_draws(), T.TransformConfig(targets="authors_cam")
  )
  base = T.train_sample(ann, img, T.identity_draws())
  np.testing.assert_array_equal(cam["target_uvd_29"], base["target_uvd_29"])
  assert np.any(cam["target_weight_29"] > 0)
  assert cam["target_theta"].shape == (216,) and not np.any(cam["target_theta"])
  assert not np.any(cam["target_xyz_weight_24"])
  assert cam["camera_error"][0] == -1 and cam["camera_scale"][0] == 0
  # Batches mix SMPL and non-SMPL samples: the same keys and shapes.
  assert set(cam) >= set(cam_targets.non_smpl_targets())
