"""Metric parity with mmhuman3d's keypoint_mpjpe / vertice_pve / 3DPCK / AUC."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import golden

from hybrik_jax.eval import metrics


@pytest.fixture(scope="module")
def gm():
  return golden("golden_metrics.npz")


@pytest.fixture(scope="module")
def gx():
  return golden("golden_metrics_extra.npz")


@pytest.mark.parametrize("alignment", metrics.ALIGNMENTS)
def test_mpjpe_parity_float64(gm, alignment):
  """1e-4 mm in float64 (golden came from the float64 pred; README: <= 4.2e-5
  mm from storing it as float32 alone)."""
  with jax.enable_x64(True):
    out = metrics.keypoint_mpjpe(
      jnp.asarray(gm["pred"], jnp.float64),
      jnp.asarray(gm["gt"], jnp.float64),
      gm["mask"],
      alignment,
    )
    assert out.dtype == jnp.float64
  np.testing.assert_allclose(
    float(out), float(gm[f"mpjpe_{alignment}"]), atol=1e-4, rtol=0
  )


@pytest.mark.parametrize("alignment", metrics.ALIGNMENTS)
def test_mpjpe_parity_float32(gm, alignment):
  """float32 cannot resolve 1e-4 mm at ~650 mm (1 ulp = 6e-5): README rtol."""
  out = jax.jit(metrics.keypoint_mpjpe, static_argnums=3)(
    gm["pred"], gm["gt"], gm["mask"], alignment
  )
  np.testing.assert_allclose(
    float(out), float(gm[f"mpjpe_{alignment}"]), rtol=1e-6
  )


@pytest.mark.parametrize("alignment", metrics.ALIGNMENTS)
def test_pve_pck_auc_parity(gx, alignment):
  pve = metrics.vertice_pve(gx["pred_vertices"], gx["gt_vertices"], alignment)
  np.testing.assert_allclose(float(pve), gx[f"pve_{alignment}"], rtol=1e-5)
  for thr in (150, 50):
    pck = metrics.keypoint_3d_pck(
      gx["pred"], gx["gt"], gx["mask"], alignment, threshold=float(thr)
    )
    np.testing.assert_allclose(
      float(pck), gx[f"pck{thr}_{alignment}"], rtol=1e-5
    )
  auc = metrics.keypoint_3d_auc(gx["pred"], gx["gt"], gx["mask"], alignment)
  np.testing.assert_allclose(float(auc), gx[f"auc_{alignment}"], rtol=1e-5)


def test_procrustes_recovers_similarity_exactly():
  rng = np.random.default_rng(1)
  gt = rng.normal(size=(5, 14, 3)).astype(np.float32) * 300
  angle = rng.uniform(-np.pi, np.pi, 5)
  rot = np.stack(
    [
      [[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]]
      for a in angle
    ]
  ).astype(np.float32)
  pred = 0.7 * np.einsum("nij,nkj->nki", rot, gt) + np.float32(50)
  mask = np.ones((5, 14), bool)
  assert float(metrics.keypoint_mpjpe(pred, gt, mask, "none")) > 10
  assert float(metrics.keypoint_mpjpe(pred, gt, mask, "procrustes")) < 1e-3


def test_mask_selects_joints(gm):
  mask = np.zeros_like(gm["mask"])
  mask[:, :3] = True
  err = np.linalg.norm(gm["pred"] - gm["gt"], axis=-1)[:, :3].mean()
  np.testing.assert_allclose(
    float(metrics.keypoint_mpjpe(gm["pred"], gm["gt"], mask)), err, rtol=1e-5
  )


def test_bad_alignment_raises(gm):
  with pytest.raises(ValueError, match="alignment"):
    metrics.keypoint_mpjpe(gm["pred"], gm["gt"], gm["mask"], "affine")
