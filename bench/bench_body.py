"""Benchmarks the SMPL forward and HybrIK's forward (eval IK + skinning).

Usage:
  .venv/bin/python bench/bench_body.py [--batches 1,64,512] [--repeats 20]

Uses the synthetic SMPL model (tests/helpers.py's load_synthetic_body; same
array sizes as the real SMPL: 6890 vertices, 207 pose directions) and the
H36M regressor. Prints, per function and batch size: compile time (s), median
and best ms per batch over the repeats (jitted, warm, results blocked on) and
samples/s from the median.
The machine's cores are shared: "best" is the less load-sensitive figure.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from helpers import FIXTURES, load_synthetic_body

from hybrik_jax import cli
from hybrik_jax.smpl import hybrik_layer as hybrik
from hybrik_jax.smpl import lbs


def tile(x: np.ndarray, batch: int) -> jnp.ndarray:
  reps = -(-batch // x.shape[0])
  return jnp.asarray(np.concatenate([x] * reps, axis=0)[:batch])


def time_fn(fn, args, repeats: int) -> tuple[float, float, float]:
  """Returns (compile s, median ms per call, best ms per call)."""
  t0 = time.perf_counter()
  jax.block_until_ready(fn(*args))
  compile_s = time.perf_counter() - t0
  jax.block_until_ready(fn(*args))  # one more warm-up
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - t0)
  return compile_s, 1e3 * statistics.median(times), 1e3 * min(times)


def _row(
  name: str, batch: int, compile_s: float, ms: float, best: float
) -> None:
  print(
    f"{name:<24}{batch:>6}{compile_s:>11.2f}{ms:>11.2f}{best:>10.2f}"
    f"{1e3 * batch / ms:>12.0f}{1e3 * batch / best:>10.0f}",
    flush=True,
  )


def define_flags(fv: flags.FlagValues) -> None:
  flags.DEFINE_list(
    "batches", ["1", "64", "512"], "Batch sizes.", flag_values=fv
  )
  flags.DEFINE_integer("repeats", 20, "Timed calls per row.", flag_values=fv)


def main(argv=None) -> None:
  args, _ = cli.parse(
    define_flags, argv, "python bench/bench_body.py", __doc__, xla=True
  )
  batches = [int(b) for b in args.batches]

  model = load_synthetic_body()
  with np.load(FIXTURES / "golden_smpl.npz") as d:
    smpl_in = {
      k: d[k] for k in ("betas", "body_pose", "global_orient", "transl")
    }
  with np.load(FIXTURES / "golden_ik.npz") as d:
    ik_in = {k: d[k] for k in ("pose_skeleton_noisy", "betas", "phis")}

  fwd = jax.jit(lbs.forward)
  hyb = jax.jit(hybrik.hybrik_forward, static_argnames=("train",))

  print(
    f"jax {jax.__version__}, backend {jax.default_backend()}, "
    f"devices {jax.devices()}"
  )
  header = (
    f"{'function':<24}{'batch':>6}{'compile s':>11}"
    f"{'ms/batch':>11}{'best ms':>10}{'samples/s':>12}"
    f"{'best/s':>10}"
  )
  print(header)
  print("-" * len(header))
  for batch in batches:
    a = [model] + [
      tile(smpl_in[k], batch)
      for k in ("betas", "body_pose", "global_orient", "transl")
    ]
    _row("forward", batch, *time_fn(fwd, a, args.repeats))
    a = [
      model,
      tile(ik_in["pose_skeleton_noisy"], batch),
      tile(ik_in["betas"], batch),
      tile(ik_in["phis"], batch),
    ]
    _row("hybrik_forward (eval)", batch, *time_fn(hyb, a, args.repeats))


if __name__ == "__main__":
  cli.run(main, huge_pages=True)
