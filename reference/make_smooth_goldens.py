"""Goldens of mmhuman3d 0.11.0's temporal smoothing filters.

Runs mmhuman3d's own ``OneEuroFilter`` (``'oneeuro'``), ``Gaus1dFilter``
(``'gaus1d'``) and ``SGFilter`` (``'savgol'``), built through its
``build_post_processing`` registry from the ``smooth_cfg`` of
``configs/_base_/post_processing/{kind}.py`` (the configs are not shipped in
the wheel: their values are written below and checked against the classes'
defaults), on fixed seeded float32 sequences, and saves inputs and outputs
for ``tests/test_smoothing.py``. Runs in the reference venv
(``scripts/setup_reference.sh`` builds ``.refvenv``)::

  .refvenv/bin/python reference/make_smooth_goldens.py \\
      tests/fixtures/reference/smooth_goldens.npz

npz keys (``allow_pickle=False``):

* ``in__{case}``: float32 input ``[T, K, C]``;
* ``out__{case}__{kind}``: mmhuman3d's float32 output (absent where
  mmhuman3d raises; ``meta`` records the error);
* ``meta``: a JSON string: mmhuman3d / numpy / scipy versions, the configs,
  the cases and the errors.

Cases (seed 0, ``numpy.random.default_rng``): ``joints`` [60, 24, 3] smooth
sinusoidal trajectories (metres, ~0.3 m motion) + 1 cm Gaussian noise;
``vertices`` [60, 50, 3] the same kind, 3 m in front of the camera;
``rotations`` [60, 24, 9] rotation matrices of smooth axis-angle trajectories
+ 0.05 rad noise (the ``[T, J, 9]`` layout of mmhuman3d's demo); ``cams``
[60, 1, 3]; ``short7`` [7, 24, 3], ``short6`` [6, 24, 3] and ``single``
[1, 24, 3] (the first frames of ``joints``), shorter than the window.
"""

from __future__ import annotations

import inspect
import json
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import refenv  # noqa: E402,F401  (before anything imports mmhuman3d)
import scipy  # noqa: E402
from scipy.spatial.transform import Rotation  # noqa: E402

# configs/_base_/post_processing/{oneeuro,gaus1d,savgol}.py of mmhuman3d
# v0.11.0: smooth_cfg = dict(type=..., ...).
SMOOTH_CFGS = {
  "oneeuro": {"type": "oneeuro", "min_cutoff": 0.004, "beta": 0.7},
  "gaus1d": {"type": "gaus1d", "window_size": 11, "sigma": 4},
  "savgol": {"type": "savgol", "window_size": 11, "polyorder": 2},
}
T = 60
FPS = 30.0


def trajectories(rng, T, shape, amp, offset, noise):
  """[T, *shape] ``offset + base + amp * sin(2 pi f t + phase)`` + noise."""
  t = np.arange(T)[:, None, None] / FPS  # [T, 1, 1] seconds
  base = rng.normal(0.0, 0.3, shape)
  a = amp * rng.uniform(0.3, 1.0, shape)
  f = rng.uniform(0.2, 1.5, shape)  # Hz
  phase = rng.uniform(0.0, 2 * np.pi, shape)
  clean = offset + base + a * np.sin(2 * np.pi * f * t + phase)
  return (clean + rng.normal(0.0, noise, clean.shape)).astype(np.float32)


def make_cases() -> dict[str, np.ndarray]:
  rng = np.random.default_rng(0)
  joints = trajectories(rng, T, (24, 3), 0.3, 0.0, 0.01)
  vertices = trajectories(rng, T, (50, 3), 0.3, np.array([0, 0, 3.0]), 0.01)
  rotvec = trajectories(rng, T, (24, 3), 0.6, 0.0, 0.05).astype(np.float64)
  rotations = Rotation.from_rotvec(rotvec.reshape(-1, 3)).as_matrix()
  rotations = rotations.reshape(T, 24, 9).astype(np.float32)
  cams = trajectories(rng, T, (1, 3), 0.1, np.array([0.9, 0.0, 0.1]), 0.01)
  return {
    "joints": joints,
    "vertices": vertices,
    "rotations": rotations,
    "cams": cams,
    "short7": joints[:7].copy(),
    "short6": joints[:6].copy(),
    "single": joints[:1].copy(),
  }


def main(argv: list[str]) -> int:
  if len(argv) != 1:
    print(__doc__.split("\n\n")[2], file=sys.stderr)
    return 2
  import mmhuman3d
  from mmhuman3d.core.post_processing import (
    Gaus1dFilter,
    OneEuroFilter,
    SGFilter,
    build_post_processing,
  )

  # The configs' values are the classes' defaults (checked).
  for cls, kind in (
    (OneEuroFilter, "oneeuro"),
    (Gaus1dFilter, "gaus1d"),
    (SGFilter, "savgol"),
  ):
    sig = inspect.signature(cls.__init__).parameters
    for k, v in SMOOTH_CFGS[kind].items():
      if k != "type":
        assert sig[k].default == v, (kind, k, sig[k].default, v)

  cases = make_cases()
  arrays: dict[str, np.ndarray] = {}
  failures: dict[str, str] = {}
  for case, x in cases.items():
    arrays[f"in__{case}"] = x
    for kind, cfg in SMOOTH_CFGS.items():
      f = build_post_processing(dict(cfg))
      try:
        with warnings.catch_warnings():
          warnings.simplefilter("ignore")  # medfilt's kernel > extent
          y = f(x.copy())
      except Exception as e:  # recorded: where mmhuman3d itself fails
        failures[f"{case}__{kind}"] = f"{type(e).__name__}: {e}"
        continue
      assert y.shape == x.shape and y.dtype == np.float32, (case, kind)
      arrays[f"out__{case}__{kind}"] = np.asarray(y)
  meta = {
    "mmhuman3d": mmhuman3d.__version__,
    "numpy": np.__version__,
    "scipy": scipy.__version__,
    "configs": SMOOTH_CFGS,
    "cases": {k: list(v.shape) for k, v in cases.items()},
    "errors": failures,
  }
  arrays["meta"] = np.array(json.dumps(meta, sort_keys=True))
  out = Path(argv[0])
  out.parent.mkdir(parents=True, exist_ok=True)
  np.savez_compressed(out, **arrays)
  print(json.dumps({"out": str(out), "bytes": out.stat().st_size, **meta}))
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
