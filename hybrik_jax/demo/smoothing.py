"""Temporal smoothing of per-track sequences (video demo).

Three filters that reproduce mmhuman3d 0.11.0's
``mmhuman3d/core/post_processing/smooth/`` (``OneEuroFilter`` /
``'oneeuro'``, ``Gaus1dFilter`` / ``'gaus1d'``, ``SGFilter`` / ``'savgol'``)
to float32 rounding, with mmhuman3d's defaults (:data:`DEFAULTS`, the values
of ``configs/_base_/post_processing/{oneeuro,gaus1d,savgol}.py``, equal to
the classes' own defaults). Pinned by ``tests/test_smoothing.py`` against
goldens made by mmhuman3d itself (``reference/make_smooth_goldens.py``).

Conventions:

* Time is axis 0, one step per frame (frame rate plays no part: mmhuman3d's
  1€ filter uses a time step of 1, so its cutoffs are in cycles per frame).
  Sequences are one track's frames in order; frames where the track was not
  detected are simply absent (:func:`smooth_tracks`).
* mmhuman3d's filters take ``[T, K, C]`` (frames, joints / vertices,
  coordinates; its demo passes vertices ``[T, 6890, 3]``, rotation matrices
  as ``[T, J, 9]``). :func:`smooth` views any ``[T, ...]`` input that way:
  ``[T]`` as ``[T, 1, 1]``, ``[T, D]`` as ``[T, 1, D]``, ``[T, A, ..., C]``
  as ``[T, A * ..., C]``; the view only matters for ``gaus1d``'s median (see
  below). :func:`smooth_rotations` uses mmhuman3d's ``[T, J, 9]``.
* Computation is in float64; the result has the input's float dtype
  (float64 for integer input).

Units: ``savgol`` and ``gaus1d`` are units-agnostic (they commute with
scaling, ``f(c x) = c f(x)``; ``savgol`` is linear and also commutes with
shifts). ``oneeuro`` is NOT: its cutoff ``min_cutoff + beta * |dx/dt|``
adds a speed in the input's units per frame to a frequency, so the same
``beta`` smooths metres far more than millimetres or pixels (with the
defaults, a point moving 1 cm / frame gets cutoff 0.011 cycles / frame,
i.e. heavy smoothing and lag; one moving 5 px / frame gets 3.5, i.e. almost
none). mmhuman3d's demo applies it to metres and rotation-matrix entries.

The filters, for one trajectory ``x[t]`` (``t = 0 .. T-1``):

* ``oneeuro`` (Casiez et al. 2012, via VIBE): ``x_hat[0] = x[0]``,
  ``dx_hat[0] = 0``; for ``t >= 1``: ``dx = x[t] - x_hat[t-1]``,
  ``dx_hat[t] = a(d_cutoff) dx + (1 - a(d_cutoff)) dx_hat[t-1]``,
  ``x_hat[t] = a(c) x[t] + (1 - a(c)) x_hat[t-1]`` with
  ``c = min_cutoff + beta |dx_hat[t]|`` and ``a(f) = 2 pi f / (2 pi f + 1)``.
  Causal; T = 1 returns the input.
* ``gaus1d``: a median filter, then ``scipy.ndimage.gaussian_filter1d``
  along time (``sigma`` frames, mode ``'reflect'``, truncated at 4 sigma).
  mmhuman3d's median is ``scipy.signal.medfilt(a, w)`` on each ``[K, T]``
  slice with a scalar ``w``, which is a 2-D ``w x w`` median over time AND
  axis 1 (neighbouring joint / vertex indices), zero-padded at every edge.
  So it mixes neighbouring joints, pulls the first / last ``w // 2`` frames
  and joints towards 0 and returns 0 for ``[T, 1, C]`` input (e.g. cameras:
  most of each window is padding). This is reproduced by default
  (``mmhuman3d_median=True``); ``mmhuman3d_median=False`` is this module's
  own variant: a median over ``w`` frames of each trajectory, edges padded by
  repeating the first / last frame (no golden: not in mmhuman3d).
* ``savgol``: ``scipy.signal.savgol_filter`` along time (``mode='interp'``:
  the first / last ``w // 2`` frames take the least-squares polynomial of
  the first / last ``w`` frames).

Windows (as mmhuman3d): an even ``window_size`` is reduced by one, then the
window is clipped to T; ``savgol`` lowers ``polyorder`` to ``window - 1``
when needed (T <= polyorder), so T = 2, 3 return the input (exact fit), and
an even clipped window (T even, T < window) is used as is. Where mmhuman3d
fails, this module extends it: ``savgol`` with T = 1 (mmhuman3d asserts
``polyorder > 0``) returns the input; ``gaus1d`` with T even and below the
window (``medfilt`` rejects even kernels) uses the odd window ``T - 1``.
T = 0, non-finite values and unknown kinds / parameters raise
:class:`SmoothingError` (a ValueError).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from scipy import ndimage, signal

from hybrik_jax import errors

KINDS = ("oneeuro", "gaus1d", "savgol")

# mmhuman3d 0.11.0: configs/_base_/post_processing/{kind}.py (``smooth_cfg``),
# equal to the defaults of OneEuroFilter / Gaus1dFilter / SGFilter.__init__;
# oneeuro's d_cutoff is OneEuro's (mmhuman3d does not expose it).
DEFAULTS: Mapping[str, Mapping[str, float | int | bool]] = {
  "oneeuro": {"min_cutoff": 0.004, "beta": 0.7, "d_cutoff": 1.0},
  "gaus1d": {"window_size": 11, "sigma": 4, "mmhuman3d_median": True},
  "savgol": {"window_size": 11, "polyorder": 2},
}


class SmoothingError(errors.InputError, ValueError):
  """Bad input to the smoothing (names the argument and the problem)."""


# ----------------------------------------------------------------------------
# Checks.


def _params(kind: str, params: Mapping) -> dict:
  if kind not in KINDS:
    raise SmoothingError(
      f"unknown smoothing kind {kind!r}; choose one of {', '.join(KINDS)}"
    )
  unknown = sorted(set(params) - set(DEFAULTS[kind]))
  if unknown:
    raise SmoothingError(
      f"{kind}: unknown parameter(s) {', '.join(unknown)}; accepted: "
      f"{', '.join(DEFAULTS[kind])}"
    )
  p = {**DEFAULTS[kind], **params}

  def number(name, low, low_ok, integer=False):
    v = p[name]
    ok = isinstance(v, (int, float, np.integer, np.floating)) and not (
      isinstance(v, bool)
    )
    ok = ok and math.isfinite(v) and (v >= low if low_ok else v > low)
    if integer:
      ok = ok and float(v) == int(v)
    if not ok:
      what = "an integer" if integer else "a number"
      raise SmoothingError(
        f"{kind}: {name} must be {what} {'>=' if low_ok else '>'} {low}, "
        f"got {v!r}"
      )
    p[name] = int(v) if integer else float(v)

  if kind == "oneeuro":
    number("min_cutoff", 0.0, True)
    number("beta", 0.0, True)
    number("d_cutoff", 0.0, False)
  elif kind == "gaus1d":
    number("window_size", 1, True, integer=True)
    number("sigma", 0.0, False)
    p["mmhuman3d_median"] = bool(p["mmhuman3d_median"])
  else:
    number("window_size", 1, True, integer=True)
    number("polyorder", 0, True, integer=True)
  return p


def _as_sequence(x, name: str) -> np.ndarray:
  a = np.asarray(x)
  if not (np.issubdtype(a.dtype, np.floating) or a.dtype.kind in "iu"):
    raise SmoothingError(f"{name} must be a numeric array, got {a.dtype}")
  if a.ndim == 0 or a.shape[0] == 0:
    raise SmoothingError(
      f"{name} must be [T, ...] with T >= 1 frames, got shape {a.shape}"
    )
  finite = np.isfinite(a.reshape(a.shape[0], -1)).all(axis=1)  # [T]
  if not finite.all():
    bad = np.flatnonzero(~finite)
    raise SmoothingError(
      f"{name} has non-finite values (NaN/inf) at frame(s) "
      f"{bad[:10].tolist()}{' ...' if bad.size > 10 else ''} of {a.shape[0]}"
    )
  return a


def _odd_window(window_size: int, T: int) -> int:
  """mmhuman3d's window: even sizes minus one, then at most T."""
  w = window_size - 1 if window_size % 2 == 0 else window_size
  return min(w, T)


# ----------------------------------------------------------------------------
# The filters, on [T, K, C] float64.


def _oneeuro(x, min_cutoff, beta, d_cutoff):
  def alpha(cutoff):  # smoothing factor for a time step of 1 frame
    r = 2.0 * np.pi * cutoff
    return r / (r + 1.0)

  a_d = alpha(d_cutoff)
  out = np.empty_like(x)  # [T, K, C]
  out[0] = x_hat = x[0]
  dx_hat = np.zeros_like(x[0])  # [K, C]
  for t in range(1, x.shape[0]):  # inherently sequential
    dx_hat = a_d * (x[t] - x_hat) + (1.0 - a_d) * dx_hat
    a = alpha(min_cutoff + beta * np.abs(dx_hat))
    x_hat = a * x[t] + (1.0 - a) * x_hat
    out[t] = x_hat
  return out


def _gaus1d(x, window_size, sigma, mmhuman3d_median):
  T = x.shape[0]
  w = _odd_window(window_size, T)
  if w % 2 == 0:  # T even and < window: mmhuman3d's medfilt raises here
    w -= 1
  if mmhuman3d_median:  # medfilt(., w) on [K, T]: w x w, zero-padded
    med = ndimage.median_filter(x, size=(w, w, 1), mode="constant", cval=0.0)
  else:
    med = ndimage.median_filter(x, size=(w, 1, 1), mode="nearest")
  return ndimage.gaussian_filter1d(med, sigma, axis=0)  # [T, K, C]


def _savgol(x, window_size, polyorder):
  T = x.shape[0]
  w = _odd_window(window_size, T)
  if w == 1:  # T == 1 (mmhuman3d asserts): a 1-frame fit is the input
    return x.copy()
  return signal.savgol_filter(x, w, min(polyorder, w - 1), axis=0)


_FILTERS = {"oneeuro": _oneeuro, "gaus1d": _gaus1d, "savgol": _savgol}


# ----------------------------------------------------------------------------
# Public functions.


def smooth(x: np.ndarray, kind: str = "savgol", **params) -> np.ndarray:
  """Smooths a sequence along axis 0 as mmhuman3d's filter ``kind`` does.

  Args:
    x: [T, ...] one track's per-frame values (T >= 1), e.g. joints
      [T, 24, 3] or vertices [T, 6890, 3] (any units; see the module
      docstring for ``oneeuro``'s dependence on them).
    kind: ``'oneeuro'``, ``'gaus1d'`` or ``'savgol'``.
    **params: overrides of :data:`DEFAULTS` ``[kind]``.

  Returns:
    [T, ...] smoothed, the input's float dtype (float64 for integers).

  Raises:
    SmoothingError (a ValueError): unknown kind or parameter, a bad
      parameter value, T = 0, non-numeric or non-finite x.
  """
  p = _params(kind, params)
  a = _as_sequence(x, "x")
  dtype = a.dtype if np.issubdtype(a.dtype, np.floating) else np.float64
  T = a.shape[0]
  if a.ndim == 1:
    view = (T, 1, 1)
  elif a.ndim == 2:
    view = (T, 1, a.shape[1])
  else:
    view = (T, math.prod(a.shape[1:-1]), a.shape[-1])
  x3 = a.astype(np.float64).reshape(view)  # [T, K, C]
  return _FILTERS[kind](x3, **p).reshape(a.shape).astype(dtype)


def project_to_so3(m: np.ndarray) -> np.ndarray:
  """[..., 3, 3] nearest rotations (Frobenius) of matrices: ``U D V^T``.

  From the SVD ``m = U S V^T``, ``D = diag(1, 1, det(U V^T))`` makes the
  determinant +1. (A rank-deficient ``m`` has no unique nearest rotation;
  the SVD's choice is returned, still a rotation.)
  """
  m = np.asarray(m, np.float64)
  u, _, vt = np.linalg.svd(m)  # [..., 3, 3] each
  d = np.sign(np.linalg.det(u @ vt))  # [...], +-1
  u = np.concatenate([u[..., :2], u[..., 2:] * d[..., None, None]], axis=-1)
  return u @ vt


def smooth_rotations(
  rotmats: np.ndarray, kind: str = "savgol", **params
) -> np.ndarray:
  """Smooths rotation matrices, then projects them back onto SO(3).

  The 9 entries are smoothed as mmhuman3d's demo does (``[T, J, 9]``: the
  joints are the filters' K axis), then each matrix is replaced by its
  nearest rotation (:func:`project_to_so3`; mmhuman3d itself does not
  re-orthonormalise).

  Args:
    rotmats: [T, J, 3, 3] (or [T, 3, 3]) rotation matrices.
    kind, **params: as :func:`smooth`.

  Returns:
    same shape and float dtype, orthonormal with determinant +1.
  """
  r = _as_sequence(rotmats, "rotmats")
  if r.ndim not in (3, 4) or r.shape[-2:] != (3, 3):
    raise SmoothingError(
      f"rotmats must be [T, J, 3, 3] or [T, 3, 3], got shape {r.shape}"
    )
  dtype = r.dtype if np.issubdtype(r.dtype, np.floating) else np.float64
  T = r.shape[0]
  flat = r.astype(np.float64).reshape(T, -1, 9)  # [T, J, 9]
  m = smooth(flat, kind, **params).reshape(r.shape)  # [T, (J,) 3, 3]
  return project_to_so3(m).astype(dtype)


def smooth_tracks(
  values: np.ndarray,
  track_ids: np.ndarray,
  kind: str = "savgol",
  rotations: bool = False,
  **params,
) -> np.ndarray:
  """Smooths every track's sequence in a stack of per-detection values.

  Args:
    values: [N, ...] one row per detection, in time order (e.g. frame-major
      over a video).
    track_ids: [N] integer track id per row (e.g. from
      :mod:`hybrik_jax.demo.tracking`); rows with id < 0 are left as they
      are. Each track's rows, in order, are smoothed as one sequence (frames
      where the track was missing are skipped, not interpolated).
    kind, **params: as :func:`smooth`.
    rotations: values are rotation matrices [N, J, 3, 3]: use
      :func:`smooth_rotations`.

  Returns:
    [N, ...] smoothed values (float dtype of the input).
  """
  v = _as_sequence(values, "values")
  ids = np.asarray(track_ids)
  if ids.shape != (v.shape[0],) or ids.dtype.kind not in "iu":
    raise SmoothingError(
      f"track_ids must be [{v.shape[0]}] integers (one per row of values), "
      f"got {ids.dtype} {ids.shape}"
    )
  fn = smooth_rotations if rotations else smooth
  dtype = v.dtype if np.issubdtype(v.dtype, np.floating) else np.float64
  out = v.astype(dtype)
  for tid in np.unique(ids[ids >= 0]):
    rows = np.flatnonzero(ids == tid)
    out[rows] = fn(v[rows], kind, **params)
  return out


def mean_jitter(x: np.ndarray) -> float:
  """Mean frame-to-frame displacement ``mean ||x[t+1] - x[t]||``.

  The norm is over the last axis (coordinates), the mean over frames and
  the other axes. x: [T, ..., C] with T >= 2.
  """
  a = np.asarray(x, np.float64)
  if a.ndim < 2 or a.shape[0] < 2:
    raise SmoothingError(f"mean_jitter needs [T >= 2, ..., C], got {a.shape}")
  return float(np.linalg.norm(np.diff(a, axis=0), axis=-1).mean())
