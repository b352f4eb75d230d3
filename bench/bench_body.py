"""Benchmarks the SMPL forward and HybrIK's forward (eval IK + skinning).

Usage:
  .venv/bin/python bench/bench_body.py [--batches 1,64,512] [--repeats 20]

Uses the synthetic SMPL model of tests/fixtures (same array sizes as the real
SMPL: 6890 vertices, 207 pose directions) and the H36M regressor. Prints, per
function and batch size: compile time (s), median and best ms per batch over
the repeats (jitted, warm, results blocked on) and samples/s from the median.
The machine's cores are shared: "best" is the less load-sensitive figure.
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hybrik_jax import smpl  # pylint: disable=g-import-not-at-top
from hybrik_jax.smpl import hybrik_layer as hybrik  # pylint: disable=g-import-not-at-top
from hybrik_jax.smpl import lbs  # pylint: disable=g-import-not-at-top

FIXTURES = ROOT / "tests" / "fixtures"


def load_model() -> smpl.SMPLModel:
  """The synthetic neutral model with the H36M regressor attached."""
  with tempfile.TemporaryDirectory() as tmp:
    pkl = Path(tmp) / "SMPL_NEUTRAL.pkl"
    with gzip.open(FIXTURES / "smpl" / "SMPL_NEUTRAL.pkl.gz", "rb") as fi, \
        open(pkl, "wb") as fo:
      shutil.copyfileobj(fi, fo)
    return smpl.load_model(
        pkl, extra_regressor=FIXTURES / "J_regressor_h36m.npy")


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


def _row(name: str, batch: int, compile_s: float, ms: float, best: float
         ) -> None:
  print(f"{name:<24}{batch:>6}{compile_s:>11.2f}{ms:>11.2f}{best:>10.2f}"
        f"{1e3 * batch / ms:>12.0f}{1e3 * batch / best:>10.0f}", flush=True)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--batches", default="1,64,512")
  parser.add_argument("--repeats", type=int, default=20)
  args = parser.parse_args()
  batches = [int(b) for b in args.batches.split(",")]

  model = load_model()
  with np.load(FIXTURES / "golden_smpl.npz") as d:
    smpl_in = {k: d[k] for k in ("betas", "body_pose", "global_orient",
                                 "transl")}
  with np.load(FIXTURES / "golden_ik.npz") as d:
    ik_in = {k: d[k] for k in ("pose_skeleton_noisy", "betas", "phis")}

  fwd = jax.jit(lbs.forward)
  hyb = jax.jit(hybrik.hybrik_forward, static_argnames=("train",))

  print(f"jax {jax.__version__}, backend {jax.default_backend()}, "
        f"devices {jax.devices()}")
  header = (f"{'function':<24}{'batch':>6}{'compile s':>11}"
            f"{'ms/batch':>11}{'best ms':>10}{'samples/s':>12}"
            f"{'best/s':>10}")
  print(header)
  print("-" * len(header))
  for batch in batches:
    a = [model] + [tile(smpl_in[k], batch)
                   for k in ("betas", "body_pose", "global_orient", "transl")]
    _row("forward", batch, *time_fn(fwd, a, args.repeats))
    a = [model, tile(ik_in["pose_skeleton_noisy"], batch),
         tile(ik_in["betas"], batch), tile(ik_in["phis"], batch)]
    _row("hybrik_forward (eval)", batch, *time_fn(hyb, a, args.repeats))


if __name__ == "__main__":
  from hybrik_jax import host_memory  # pylint: disable=g-import-not-at-top
  host_memory.reexec_with_huge_pages()  # see hybrik_jax/host_memory.py
  main()
