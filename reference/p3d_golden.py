"""Golden outputs of pytorch3d v0.7.4's rotation conversions, and the check
that reference/p3d_rotations.py reproduces them bit for bit.

Runs in the reference venv (``scripts/setup_reference.sh``), never in the
project's torch-free venv. Two modes:

``make``: how ``tests/fixtures/reference/p3d_v0.7.4_rotations.npz`` was made.
  The original file is not part of this repository; extract it from a
  pytorch3d checkout (e.g. the search tool's ``fetch`` of
  facebookresearch/pytorch3d) into a folder outside the repository::

    git -C <pytorch3d git dir> show \\
      v0.7.4:pytorch3d/transforms/rotation_conversions.py > /tmp/p3d/rc.py
    .refvenv/bin/python reference/p3d_golden.py make /tmp/p3d/rc.py \\
      tests/fixtures/reference/p3d_v0.7.4_rotations.npz

  (v0.7.4 = commit 297020a4b1d7492190cb4a909cafbd2c81a12cb5, file blob
  b5f73bf5b55089143ca1a5c7fe930c5b36716171.) The file's one relative import
  (``from ..common.datatypes import Device``) is satisfied by a stand-in
  package; nothing else of pytorch3d is needed. The inputs come from a
  seeded numpy generator (``check`` reports whether they still regenerate).

``check``: runs :mod:`p3d_rotations` on the fixture's inputs and compares,
  printing one JSON object (``{"cases": {...}, "bit_identical": bool}``)::

    .refvenv/bin/python reference/p3d_golden.py check \\
      tests/fixtures/reference/p3d_v0.7.4_rotations.npz

What is stored, for each case (a function, with an Euler convention where it
takes one) and each of float32 and float64:

* ``in__<input>``: the inputs, float64 only, shape ``(2, n, ...)`` (two batch
  dimensions); the float32 run uses ``torch.from_numpy(x).to(float32)``.
* ``<case>__<dtype>__out``: the function's output on them;
  ``<case>__<dtype>__grad``: the gradient w.r.t. the input of
  ``sum(out * u)`` with the upstream gradient ``u = linspace(-1, 1,
  out.numel())`` in the output's shape and dtype (non-finite gradients are
  kept as they are);
* ``<case>__<dtype>__single_out``: the output for the unbatched input
  ``x[0, 0]`` (no batch dimensions).

The inputs cover generic random values and edge cases: zero rotation, angles
below and around the 1e-6 Taylor switch, angles at and near pi and beyond,
180-degree rotations (ties between the quaternion candidates), non-unit and
zero quaternions, non-orthogonal (noisy) matrices and a reflection, gimbal
lock, degenerate 6D vectors.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import sys
import types
from pathlib import Path

import numpy as np
import torch

SEED = 20240514
DTYPES = {"float32": torch.float32, "float64": torch.float64}
CONVENTIONS = (
  "XYZ XZY YXZ YZX ZXY ZYX "  # Tait-Bryan
  "XYX XZX YXY YZY ZXZ ZYZ"  # proper Euler
).split()
# case name -> (function name, extra positional args, input key)
CASES: dict[str, tuple[str, tuple, str]] = {
  "quaternion_to_matrix": ("quaternion_to_matrix", (), "quaternion"),
  "quaternion_to_axis_angle": ("quaternion_to_axis_angle", (), "quaternion"),
  "axis_angle_to_quaternion": ("axis_angle_to_quaternion", (), "axis_angle"),
  "axis_angle_to_matrix": ("axis_angle_to_matrix", (), "axis_angle"),
  "matrix_to_quaternion": ("matrix_to_quaternion", (), "matrix"),
  "matrix_to_rotation_6d": ("matrix_to_rotation_6d", (), "matrix"),
  "rotation_6d_to_matrix": ("rotation_6d_to_matrix", (), "d6"),
}
for _c in CONVENTIONS:
  CASES[f"euler_angles_to_matrix_{_c}"] = (
    "euler_angles_to_matrix",
    (_c,),
    "euler",
  )
  CASES[f"matrix_to_euler_angles_{_c}"] = (
    "matrix_to_euler_angles",
    (_c,),
    "matrix_euler",
  )
FUNCTIONS = sorted({fn for fn, _, _ in CASES.values()})


# ----------------------------------------------------------------------------
# Inputs (float64 numpy, shape (2, n, ...))


def _unit(v: np.ndarray) -> np.ndarray:
  return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _quat_to_rotmat(q: np.ndarray) -> np.ndarray:
  """Unit quaternions (w, x, y, z) -> rotation matrices (for making data)."""
  w, x, y, z = np.moveaxis(q, -1, 0)
  return np.stack(
    [
      [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
      [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
      [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ]
  ).transpose(2, 0, 1)


def _axis_angle_rotmat(axis, angle: float) -> np.ndarray:
  a = _unit(np.asarray(axis, np.float64))
  h = 0.5 * angle
  return _quat_to_rotmat(np.concatenate([[np.cos(h)], np.sin(h) * a])[None])[0]


def _two_batch(x: np.ndarray) -> np.ndarray:
  if len(x) % 2:
    x = np.concatenate([x, x[:1]])
  return np.ascontiguousarray(x.reshape(2, len(x) // 2, *x.shape[1:]))


def make_inputs() -> dict[str, np.ndarray]:
  rng = np.random.default_rng(SEED)
  pi = np.pi

  # Axis-angle: generic, tiny (around the 1e-6 switch), near/at pi, beyond.
  angles = np.concatenate(
    [
      rng.uniform(0.0, pi, 10),
      [0.0, 1e-12, 1e-9, 1e-7, 5e-7, 9.99e-7, 1e-6, 1.001e-6, 1e-5, 1e-3],
      [pi - 1e-3, pi - 1e-6, pi - 1e-7, pi, pi + 1e-7, pi + 1e-3],
      [1.5 * pi, 2 * pi - 1e-6, 2 * pi, 3.5 * pi],
    ]
  )
  aa = _unit(rng.normal(size=(len(angles), 3))) * angles[:, None]
  aa = np.concatenate(
    [aa, [[pi, 0, 0], [0, -pi, 0], [0, 0, 1e-8], [-1e-7, 2e-7, 0.0]]]
  )

  # Quaternions: unit with either sign of w, non-unit, identity, w = 0,
  # tiny vector part, all zero.
  q_unit = _unit(rng.normal(size=(10, 4)))
  q = np.concatenate(
    [
      q_unit,
      rng.normal(size=(6, 4)) * rng.uniform(0.1, 3.0, (6, 1)),
      [[1, 0, 0, 0], [-1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, -1]],
      [[0, 0.6, 0, 0.8], [1, 1e-8, 0, 0], [-1, 0, 2e-9, 0]],
      [[1, 3e-7, -2e-7, 1e-7], [1e-9, 1, 0, 0], [0, 0, 0, 0]],
    ]
  )

  # Rotation matrices: random, identity, 90/120/180-degree rotations (ties
  # between the candidate quaternions), near pi, tiny, noisy, a reflection.
  r_rand = _quat_to_rotmat(_unit(rng.normal(size=(10, 4))))
  special = [
    np.eye(3),
    np.diag([1.0, -1, -1]),
    np.diag([-1.0, 1, -1]),
    np.diag([-1.0, -1, 1]),
    _axis_angle_rotmat([1, 1, 0], pi),
    _axis_angle_rotmat([1, 0, 0], pi / 2),
    _axis_angle_rotmat([0, 1, 0], pi / 2),
    _axis_angle_rotmat([0, 0, 1], -pi / 2),
    np.array([[0.0, 0, 1], [1, 0, 0], [0, 1, 0]]),  # 120 deg about (1,1,1)
    _axis_angle_rotmat([0.3, -0.5, 0.8], pi - 1e-6),
    _axis_angle_rotmat([0.3, -0.5, 0.8], pi - 1e-3),
    _axis_angle_rotmat([-0.2, 0.9, 0.1], 1e-7),
    -np.eye(3),
  ]
  noisy = r_rand[:6] + rng.normal(scale=1e-3, size=(6, 3, 3))
  mats = np.concatenate([r_rand, np.stack(special), noisy])

  # Euler angles: generic, gimbal lock (middle 0, +-pi/2, pi), zero, large.
  euler = np.concatenate(
    [
      rng.uniform(-pi, pi, (8, 3)),
      [[0.3, pi / 2, -0.7], [1.1, -pi / 2, 0.4], [0.5, 0.0, 0.2]],
      [[-0.4, pi, 0.9], [0, 0, 0], [4 * pi, -3.2 * pi, 2.5 * pi]],
    ]
  )
  mats_euler = np.concatenate(
    [r_rand[:6], np.stack(special[:9]), noisy[:3], np.stack(special[-1:])]
  )

  # 6D: random, from rotations, degenerate (zero, parallel, below the
  # normalisation eps) and large.
  d6 = np.concatenate(
    [
      rng.normal(size=(8, 6)),
      r_rand[:4, :2].reshape(4, 6),
      [[0, 0, 0, 1, 2, 3], [1, 2, 3, 0, 0, 0], [1, 2, 3, 2, 4, 6]],
      [[1e-13, 0, 0, 0, 1, 0], [1e3, -2e3, 5e2, 1e-3, 4e3, 0]],
    ]
  )
  data = {
    "axis_angle": aa,
    "quaternion": q,
    "matrix": mats,
    "matrix_euler": mats_euler,
    "euler": euler,
    "d6": d6,
  }
  return {k: _two_batch(np.asarray(v, np.float64)) for k, v in data.items()}


# ----------------------------------------------------------------------------
# Evaluation (the same code for the original and for the shim)


def evaluate(fn, args: tuple, x64: np.ndarray, dtype: torch.dtype):
  """Output, input gradient (upstream linspace(-1, 1)) and unbatched output."""
  x = torch.from_numpy(x64).to(dtype).requires_grad_(True)
  out = fn(x, *args)
  u = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).reshape(out.shape)
  (grad,) = torch.autograd.grad((out * u).sum(), x)
  with torch.no_grad():
    single = fn(torch.from_numpy(x64[0, 0]).to(dtype), *args)
  return out.detach().numpy(), grad.numpy(), single.numpy()


def run_all(module, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  results = {}
  for case, (fn_name, args, key) in CASES.items():
    fn = getattr(module, fn_name)
    for dname, dtype in DTYPES.items():
      out, grad, single = evaluate(fn, args, inputs[key], dtype)
      results[f"{case}__{dname}__out"] = out
      results[f"{case}__{dname}__grad"] = grad
      results[f"{case}__{dname}__single_out"] = single
  return results


def load_original(path: Path) -> types.ModuleType:
  """Loads v0.7.4's rotation_conversions.py from ``path`` as
  ``p3d_original.transforms.rotation_conversions``, with a stand-in for the
  ``..common.datatypes`` module it imports ``Device`` from."""
  for name in (
    "p3d_original",
    "p3d_original.common",
    "p3d_original.transforms",
  ):
    pkg = types.ModuleType(name)
    pkg.__path__ = []
    sys.modules[name] = pkg
  datatypes = types.ModuleType("p3d_original.common.datatypes")
  datatypes.Device = str | torch.device
  sys.modules[datatypes.__name__] = datatypes
  name = "p3d_original.transforms.rotation_conversions"
  spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(spec)
  sys.modules[name] = module
  spec.loader.exec_module(module)
  return module


def _bits_equal(a: np.ndarray, b: np.ndarray) -> bool:
  return (
    a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
  )


def _compare(got: np.ndarray, want: np.ndarray) -> dict:
  res = {"bits": _bits_equal(got, want)}
  if got.shape != want.shape or got.dtype != want.dtype:
    res["mismatch"] = f"{got.dtype}{got.shape} vs {want.dtype}{want.shape}"
    return res
  res["array_equal"] = bool(np.array_equal(got, want, equal_nan=True))
  if not res["array_equal"]:
    both = np.isfinite(got) & np.isfinite(want)
    res["allclose"] = bool(
      np.allclose(got, want, rtol=1e-6, atol=1e-6, equal_nan=True)
    )
    res["max_abs_diff"] = float(np.max(np.abs(got - want)[both], initial=0.0))
    res["want_abs_max"] = float(np.max(np.abs(want)[both], initial=0.0))
    res["size"] = int(want.size)
    res["n_differ"] = int(
      np.sum(~((got == want) | (np.isnan(got) & np.isnan(want))))
    )
  return res


# ----------------------------------------------------------------------------
# Commands


def cmd_make(reference: Path, out: Path) -> None:
  original = load_original(reference)
  inputs = make_inputs()
  results = run_all(original, inputs)
  meta = {
    "source": "pytorch3d v0.7.4 pytorch3d/transforms/rotation_conversions.py",
    "source_sha256": hashlib.sha256(reference.read_bytes()).hexdigest(),
    "torch": torch.__version__,
    "numpy": np.__version__,
    "seed": SEED,
    "upstream_grad": "linspace(-1, 1, out.numel()) in out's shape and dtype",
  }
  arrays = {f"in__{k}": v for k, v in inputs.items()}
  arrays.update(results)
  arrays["meta"] = np.array(json.dumps(meta, sort_keys=True))
  out.parent.mkdir(parents=True, exist_ok=True)
  np.savez_compressed(out, **arrays)
  print(f"wrote {out}: {len(arrays)} arrays, {out.stat().st_size} bytes")


def cmd_check(golden: Path) -> bool:
  here = Path(__file__).resolve().parent
  sys.path.insert(0, str(here))
  import p3d_rotations

  with np.load(golden, allow_pickle=False) as f:
    g = {k: f[k] for k in f.files}
  stored_inputs = {
    k[len("in__") :]: v for k, v in g.items() if k.startswith("in__")
  }
  regenerated = make_inputs()
  inputs_match = all(
    _bits_equal(regenerated[k], stored_inputs[k]) for k in stored_inputs
  ) and set(regenerated) == set(stored_inputs)
  got = run_all(p3d_rotations, stored_inputs)
  cases = {k: _compare(got[k], g[k]) for k in sorted(got)}
  missing = sorted(
    k for k in g if k != "meta" and not k.startswith("in__") and k not in got
  )
  report = {
    "meta": json.loads(str(g["meta"])),
    "torch": torch.__version__,
    "functions": FUNCTIONS,
    "inputs_regenerate": inputs_match,
    "missing": missing,
    "n_compared": len(cases),
    "bit_identical": all(c["bits"] for c in cases.values()) and not missing,
    "not_bit_identical": {k: c for k, c in cases.items() if not c["bits"]},
  }
  print(json.dumps(report, indent=1, sort_keys=True))
  return report["bit_identical"]


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  sub = p.add_subparsers(dest="cmd", required=True)
  m = sub.add_parser("make", help="compute the golden file from the original")
  m.add_argument("reference", type=Path, help="v0.7.4 rotation_conversions.py")
  m.add_argument("out", type=Path, help="the .npz to write")
  c = sub.add_parser("check", help="compare reference/p3d_rotations.py")
  c.add_argument("golden", type=Path, help="the .npz written by make")
  a = p.parse_args(argv)
  if a.cmd == "make":
    cmd_make(a.reference.resolve(), a.out)
    return 0
  return 0 if cmd_check(a.golden) else 1


if __name__ == "__main__":
  sys.exit(main())
