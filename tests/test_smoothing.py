"""Tests of hybrik_jax.demo.smoothing against mmhuman3d 0.11.0's own filters.

Goldens: tests/fixtures/reference/smooth_goldens.npz, made by
``.refvenv/bin/python reference/make_smooth_goldens.py
tests/fixtures/reference/smooth_goldens.npz`` (mmhuman3d's OneEuroFilter,
Gaus1dFilter and SGFilter with the configs' defaults, float32 in and out).
Tolerance: ``rtol=1e-5, atol=1e-6`` (float32 rounding: mmhuman3d computes
oneeuro in float32 and rounds the scipy filters' float64 results to float32;
we compute in float64 and round once).

Jitter reduction, mean ||x[t+1] - x[t]|| before / after (printed by
test_jitter_reduction; equal for us and mmhuman3d to 1e-4 relative):

  case       oneeuro  gaus1d  savgol
  joints     1.297    6.920   1.100
  vertices   1.333    2.511   1.120
  rotations  1.602    7.017   1.532

(1 cm noise on ~0.3 m motion: the real motion dominates the frame-to-frame
displacement, hence the modest savgol ratios; gaus1d's large ratios come
partly from its 2-D zero-padded median, see the module docstring.)
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hybrik_jax.demo import smoothing

GOLDENS = (
  Path(__file__).resolve().parent / "fixtures/reference/smooth_goldens.npz"
)
RTOL, ATOL = 1e-5, 1e-6
KINDS = smoothing.KINDS


@pytest.fixture(scope="module")
def goldens():
  with np.load(GOLDENS, allow_pickle=False) as g:
    return {k: g[k] for k in g.files}


def _golden_pairs():
  with np.load(GOLDENS, allow_pickle=False) as g:
    keys = [k for k in g.files if k.startswith("out__")]
  return sorted(tuple(k.split("__")[1:]) for k in keys)


def _meta(goldens):
  return json.loads(str(goldens["meta"]))


# ----------------------------------------------------------------------------
# Equality with mmhuman3d.


def test_goldens_cover_every_filter_and_default(goldens):
  meta = _meta(goldens)
  assert meta["mmhuman3d"] == "0.11.0"
  for kind in KINDS:
    cfg = {k: v for k, v in meta["configs"][kind].items() if k != "type"}
    ours = {k: smoothing.DEFAULTS[kind][k] for k in cfg}
    assert ours == cfg, kind
  pairs = _golden_pairs()
  for kind in KINDS:
    assert ("joints", kind) in pairs and ("short7", kind) in pairs
  # mmhuman3d's own failures on short sequences (this module extends them).
  assert set(meta["errors"]) == {"short6__gaus1d", "single__savgol"}


@pytest.mark.parametrize("case,kind", _golden_pairs())
def test_matches_mmhuman3d(goldens, case, kind):
  x = goldens[f"in__{case}"]
  ref = goldens[f"out__{case}__{kind}"]
  y = smoothing.smooth(x, kind)
  assert y.dtype == np.float32 and y.shape == x.shape
  np.testing.assert_allclose(y, ref, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("case", ["joints", "vertices", "rotations"])
def test_jitter_reduction(goldens, case):
  x = goldens[f"in__{case}"]
  before = smoothing.mean_jitter(x)
  line = []
  for kind in KINDS:
    ours = before / smoothing.mean_jitter(smoothing.smooth(x, kind))
    ref = before / smoothing.mean_jitter(goldens[f"out__{case}__{kind}"])
    line.append(f"{kind} {ours:.4f} (mmhuman3d {ref:.4f})")
    assert ours == pytest.approx(ref, rel=1e-4), kind
    assert ours > 1.0, kind
  print(f"jitter before/after, {case}: " + ", ".join(line))


def test_single_frame_is_unchanged(goldens):
  x = goldens["in__single"]  # [1, 24, 3]
  for kind in KINDS:  # mmhuman3d: identity for oneeuro, gaus1d; savgol fails
    np.testing.assert_array_equal(smoothing.smooth(x, kind), x)


def test_short_sequences_where_mmhuman3d_fails(goldens):
  x = goldens["in__short6"]  # [6, 24, 3]; mmhuman3d's medfilt rejects w = 6
  np.testing.assert_array_equal(
    smoothing.smooth(x, "gaus1d"), smoothing.smooth(x, "gaus1d", window_size=5)
  )
  for T in (2, 3):  # savgol with window = T <= polyorder + 1: exact fit
    np.testing.assert_allclose(
      smoothing.smooth(x[:T], "savgol"), x[:T], 0, 1e-6
    )


def test_gaus1d_median_quirk(goldens):
  # mmhuman3d's medfilt(., 11) on a [K, T] slice is an 11 x 11 zero-padded
  # median: for [T, 1, C] (cameras) most of each window is padding -> 0.
  cams = goldens["in__cams"]  # [60, 1, 3]
  np.testing.assert_array_equal(goldens["out__cams__gaus1d"], 0.0)
  np.testing.assert_array_equal(smoothing.smooth(cams, "gaus1d"), 0.0)
  # The time-only variant keeps a constant sequence and smooths cameras.
  const = np.full((30, 24, 3), 2.5, np.float32)
  np.testing.assert_allclose(
    smoothing.smooth(const, "gaus1d", mmhuman3d_median=False), const, 1e-6
  )
  mm = smoothing.smooth(const, "gaus1d")  # corner medians (t, k < 5) are 0
  assert mm[0, 0, 0] < 1.0 and mm[15, 12, 0] == pytest.approx(2.5, abs=1e-6)
  y = smoothing.smooth(cams, "gaus1d", mmhuman3d_median=False)
  assert np.abs(y - cams).max() < 0.1  # 0.1-amplitude motion, sigma 4
  assert smoothing.mean_jitter(y) < smoothing.mean_jitter(cams)


# ----------------------------------------------------------------------------
# Rotations.


@pytest.mark.parametrize("kind", KINDS)
def test_smooth_rotations(goldens, kind):
  flat = goldens["in__rotations"]  # [60, 24, 9]
  R = flat.reshape(60, 24, 3, 3)
  out = smoothing.smooth_rotations(R, kind)
  assert out.shape == R.shape and out.dtype == np.float32
  o = out.astype(np.float64)
  eye = np.broadcast_to(np.eye(3), o.shape)
  np.testing.assert_allclose(o @ np.swapaxes(o, -1, -2), eye, atol=1e-5)
  np.testing.assert_allclose(np.linalg.det(o), 1.0, atol=1e-5)
  # = mmhuman3d's [T, J, 9] smoothing, then the nearest rotation.
  ref = goldens[f"out__rotations__{kind}"].reshape(R.shape)
  np.testing.assert_allclose(out, smoothing.project_to_so3(ref), atol=1e-5)
  # Smoothing moves the matrices towards the noise-free ones: less jitter.
  assert smoothing.mean_jitter(flat) > smoothing.mean_jitter(
    out.reshape(60, 24, 9)
  )


def test_project_to_so3_fixes_reflections_and_scale():
  rng = np.random.default_rng(1)
  m = rng.normal(size=(50, 3, 3))
  r = smoothing.project_to_so3(m)
  np.testing.assert_allclose(
    r @ np.swapaxes(r, -1, -2), np.broadcast_to(np.eye(3), r.shape), atol=1e-12
  )
  np.testing.assert_allclose(np.linalg.det(r), 1.0, atol=1e-12)
  q = smoothing.project_to_so3(r * 0.9)  # scaled rotation -> itself
  np.testing.assert_allclose(q, r, atol=1e-12)


# ----------------------------------------------------------------------------
# Shapes, units, tracks.


def test_shapes_and_dtypes():
  rng = np.random.default_rng(2)
  x = rng.normal(size=(20, 6)).cumsum(0)
  for kind in KINDS:
    y = smoothing.smooth(x, kind)  # [T, D] viewed as [T, 1, D]
    assert y.shape == x.shape and y.dtype == np.float64
    y1 = smoothing.smooth(x[:, 0], kind)  # [T]
    assert y1.shape == (20,)
    yi = smoothing.smooth(np.round(x * 10).astype(np.int32), kind)
    assert yi.dtype == np.float64
  # [T, A, B, C] is [T, A * B, C].
  x4 = rng.normal(size=(15, 4, 5, 3))
  np.testing.assert_allclose(
    smoothing.smooth(x4, "gaus1d"),
    smoothing.smooth(x4.reshape(15, 20, 3), "gaus1d").reshape(x4.shape),
  )


def test_units():
  rng = np.random.default_rng(3)
  x = rng.normal(size=(40, 10, 3)).cumsum(0) * 0.01  # metres
  for kind in ("gaus1d", "savgol"):  # commute with scaling
    np.testing.assert_allclose(
      smoothing.smooth(1000 * x, kind), 1000 * smoothing.smooth(x, kind), 1e-9
    )
  # oneeuro's cutoff depends on the speed in input units (documented).
  mm = smoothing.smooth(1000 * x, "oneeuro") / 1000
  assert np.abs(mm - smoothing.smooth(x, "oneeuro")).max() > 1e-3


def test_smooth_tracks():
  rng = np.random.default_rng(4)
  a = rng.normal(size=(25, 24, 3)).cumsum(0)
  b = rng.normal(size=(18, 24, 3)).cumsum(0)
  # Interleaved rows: frame-major order, track 0 in every frame, track 7 in
  # the first 18, one unassigned (-1) detection.
  rows, ids = [], []
  for t in range(25):
    rows.append(a[t])
    ids.append(0)
    if t < 18:
      rows.append(b[t])
      ids.append(7)
  rows.append(np.ones((24, 3)))
  ids.append(-1)
  values, ids = np.stack(rows), np.array(ids)
  out = smoothing.smooth_tracks(values, ids, "oneeuro")
  np.testing.assert_allclose(out[ids == 0], smoothing.smooth(a, "oneeuro"))
  np.testing.assert_allclose(out[ids == 7], smoothing.smooth(b, "oneeuro"))
  np.testing.assert_array_equal(out[ids == -1], 1.0)
  # Rotations per track.
  R = smoothing.project_to_so3(rng.normal(size=(10, 2, 3, 3)))
  tid = np.array([0, 1] * 5)
  outR = smoothing.smooth_tracks(R, tid, "savgol", rotations=True)
  np.testing.assert_allclose(
    outR[tid == 1], smoothing.smooth_rotations(R[tid == 1], "savgol")
  )


# ----------------------------------------------------------------------------
# Bad input.


@pytest.mark.parametrize(
  "call,match",
  [
    (
      lambda x: smoothing.smooth(x, "kalman"),
      "unknown smoothing kind 'kalman'",
    ),
    (lambda x: smoothing.smooth(x[:0], "savgol"), "T >= 1 frames"),
    (lambda x: smoothing.smooth(np.float32(1.0), "savgol"), "T >= 1 frames"),
    (
      lambda x: smoothing.smooth(np.where(x > 1.5, np.nan, x), "oneeuro"),
      r"non-finite values \(NaN/inf\) at frame",
    ),
    (
      lambda x: smoothing.smooth(x, "savgol", sigma=2),
      "savgol: unknown parameter.*sigma",
    ),
    (
      lambda x: smoothing.smooth(x, "savgol", window_size=0),
      "window_size must be an integer >= 1",
    ),
    (
      lambda x: smoothing.smooth(x, "gaus1d", sigma=-1.0),
      "sigma must be a number > 0",
    ),
    (
      lambda x: smoothing.smooth(x, "oneeuro", beta=float("inf")),
      "beta must be a number >= 0",
    ),
    (lambda x: smoothing.smooth(x.astype(str), "savgol"), "numeric array"),
    (
      lambda x: smoothing.smooth_rotations(x, "savgol"),
      r"rotmats must be \[T, J, 3, 3\]",
    ),
    (
      lambda x: smoothing.smooth_tracks(x, np.zeros(3, int)),
      r"track_ids must be \[10\] integers",
    ),
    (lambda x: smoothing.mean_jitter(x[:1]), "T >= 2"),
  ],
)
def test_bad_input(call, match):
  x = np.random.default_rng(5).normal(size=(10, 4, 3)).astype(np.float32)
  with pytest.raises(ValueError, match=match):
    call(x)


def test_bad_input_is_an_input_error():
  from hybrik_jax import errors

  with pytest.raises(errors.InputError):
    smoothing.smooth(np.zeros((0, 3)), "savgol")
