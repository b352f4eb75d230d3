"""All benchmarks in one table (issue "Speed"): python bench/run_all.py

Rows: IK+SMPL (``hybrik_forward``, eval) at batch 64/512; full-model
inference (``predict``) at batch 1/8/32; the data-parallel train step
(forward, backward, Adam) at per-device batch 8 and 32 in float32 and
bfloat16; the input pipeline (images/s per worker, pre-cropped records vs
full frames). Each figure is the median of ``--repeats`` timed calls after
warm-up; compile times are the first call. The header names the machine and
versions; the PyTorch column is mmhuman3d 0.11.0 / torch 2.13 CPU on this
2-core machine type (from the issue), where measured.

``--quick`` runs fewer repeats and only the first train batch (smoke test).
Multi-device data parallelism on CPU (fake devices share the 2 cores):

  XLA_FLAGS=--xla_force_host_platform_device_count=8 python bench/run_all.py \
      --skip ik,infer,input --train-batches 2 --train-image-size 64 \
      --train-dtypes float32
"""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))

import bench_body
from helpers import (
  FIXTURES,
  golden_train_batch,
  load_synthetic_body,
  recipe_config,
)

from hybrik_jax import builders, cli
from hybrik_jax.model import hybrik as hybrik_model
from hybrik_jax.train import state as train_state
from hybrik_jax.train import step as train_step

# mmhuman3d 0.11.0, torch 2.13 CPU, 2 threads, this machine type.
TORCH = {
  ("ik_smpl", 64): 748.0,
  ("ik_smpl", 512): 1601.0,
  ("infer", 1): 7.3,
  ("infer", 8): 5.7,
  ("train_f32", 8): 1.9,
}
TARGET = {
  ("ik_smpl", 64): 10.0,
  ("ik_smpl", 512): 3.0,
  ("infer", 1): 1.2,
  ("infer", 8): 1.2,
  ("train_f32", 8): 1.2,
}


def timed(fn, args, repeats):
  """(compile s, median s per call) via ``bench_body.time_fn``."""
  compile_s, median_ms, _ = bench_body.time_fn(fn, args, repeats)
  return compile_s, median_ms / 1e3


class Table:
  def __init__(self):
    self.rows = []

  def add(self, stage, batch, compile_s, sec, unit="samples/s", key=None):
    rate = batch / sec
    torch = TORCH.get(key) if key else None
    speedup = rate / torch if torch else None
    target = TARGET.get(key) if key else None
    self.rows.append(
      (stage, batch, compile_s, 1e3 * sec, rate, unit, torch, speedup, target)
    )
    self.print_row(self.rows[-1])

  @staticmethod
  def header():
    return (
      f"| {'stage':<34} | {'batch':>5} | {'compile s':>9} | "
      f"{'ms/batch':>9} | {'rate':>9} | {'unit':<10} | "
      f"{'PyTorch':>7} | {'speed-up':>8} | {'target':>6} | {'met':>4} |"
    )

  @staticmethod
  def print_row(r):
    stage, batch, c, ms, rate, unit, torch, sp, tgt = r
    fmt = lambda x, f: f"{x:{f}}" if x is not None else ""
    print(
      f"| {stage:<34} | {batch:>5} | {fmt(c, '9.1f')} | {ms:>9.1f} | "
      f"{rate:>9.1f} | {unit:<10} | {fmt(torch, '7.1f'):>7} | "
      f"{(fmt(sp, '7.2f') + 'x') if sp else '':>8} | "
      f"{(fmt(tgt, '.1f') + 'x') if tgt else '':>6} | "
      f"{('yes' if sp >= tgt else 'NO') if sp and tgt else '':>4} |",
      flush=True,
    )


def bench_ik(table, repeats):
  model = load_synthetic_body()
  with np.load(FIXTURES / "golden_ik.npz") as d:
    ik_in = {k: d[k] for k in ("pose_skeleton_noisy", "betas", "phis")}
  from hybrik_jax.smpl import hybrik_layer as hybrik

  fn = jax.jit(hybrik.hybrik_forward, static_argnames=("train",))
  for b in (64, 512):
    args = [model] + [
      bench_body.tile(ik_in[k], b)
      for k in ("pose_skeleton_noisy", "betas", "phis")
    ]
    c, s = timed(fn, args, repeats)
    table.add("IK+SMPL hybrik_forward (eval)", b, c, s, key=("ik_smpl", b))


def _variables(image_size=256):
  body = load_synthetic_body()
  return hybrik_model.init_variables(
    jax.random.PRNGKey(0),
    body,
    FIXTURES / "h36m_mean_beta.npy",
    image_size=image_size,
  )


def _camera(b):
  trans_inv = np.tile(
    np.array([[[4.0, 0, 100], [0, 4.0, 50]]], np.float32), (b, 1, 1)
  )
  kinv = np.tile(
    np.linalg.inv(
      np.array([[1000.0, 0, 500], [0, 1000, 500], [0, 0, 1]], np.float32)
    )[None],
    (b, 1, 1),
  ).astype(np.float32)
  root = np.tile(np.array([[0, 0, 5000.0]], np.float32), (b, 1))
  depth = np.full((b, 1), 2000.0, np.float32)
  return trans_inv, kinv, root, depth


def bench_inference(table, variables, repeats, batches=(1, 8, 32)):
  variables = jax.device_put(variables)
  rng = np.random.default_rng(0)
  for b in batches:
    img = rng.normal(size=(b, 256, 256, 3)).astype(np.float32)
    args = [variables, img, *_camera(b)]
    c, s = timed(hybrik_model.predict, args, repeats)
    table.add(
      "inference predict (f32)", b, c, s, unit="img/s", key=("infer", b)
    )


def bench_train(
  table,
  variables,
  repeats,
  batches=(8, 32),
  dtypes=("float32", "bfloat16"),
  image_size=256,
):
  cfg = recipe_config()
  tx, _ = builders.make_optimizer(cfg, 1000)
  mesh = train_step.make_mesh()
  n = jax.device_count()
  for dtype in dtypes:
    model = hybrik_model.HybrIK(dtype=jnp.dtype(dtype))
    step = train_step.make_train_step(model, mesh, builders.loss_weights(cfg))
    for b in batches:
      gb = b * n
      batch = train_step.shard_batch(golden_train_batch(gb, image_size), mesh)
      # The step donates its state: give it its own copy of the variables.
      state = train_step.replicate(
        train_state.TrainState.create(
          jax.tree.map(jnp.copy, variables), tx, jax.random.PRNGKey(1)
        ),
        mesh,
      )
      box = {"state": state}

      def run(bt):
        box["state"], m = step(box["state"], bt)
        return m

      c, s = timed(run, [batch], repeats)
      tag = "f32" if dtype == "float32" else "bf16"
      size = "" if image_size == 256 else f", {image_size} px"
      table.add(
        f"train step {tag} ({n} device(s){size})",
        gb,
        c,
        s,
        unit="img/s",
        key=(f"train_{tag}", b) if image_size == 256 else None,
      )


def bench_input(table, samples):
  import tempfile

  import bench_input

  work = tempfile.mkdtemp(prefix="bench_all_input_")
  specs = bench_input.prepare_datasets(work, 32, (1080, 1920))
  for name, spec in specs.items():
    r = bench_input.time_one_process(spec, samples)
    table.add(
      f"input: {name}, 1 worker", 1, None, r["total_ms"] / 1e3, unit="img/s"
    )


def define_flags(fv: flags.FlagValues) -> None:
  flags.DEFINE_integer("repeats", 5, "Timed calls per row.", flag_values=fv)
  flags.DEFINE_bool("quick", False, "2 repeats, fewer rows.", flag_values=fv)
  flags.DEFINE_list(
    "skip", [], "Sections to skip: ik,infer,train,input.", flag_values=fv
  )
  flags.DEFINE_string(
    "train_batches",
    "8,32",
    "Per-device batch sizes of the train-step rows.",
    flag_values=fv,
  )
  flags.DEFINE_integer(
    "train_image_size", 256, "Train-step input size.", flag_values=fv
  )
  flags.DEFINE_string(
    "train_dtypes",
    "float32,bfloat16",
    "Compute dtypes of the train-step rows.",
    flag_values=fv,
  )


def main(argv=None):
  args, _ = cli.parse(
    define_flags, argv, "python bench/run_all.py", __doc__, xla=True
  )
  skip = set(args.skip)
  import cv2
  import flax

  print(f"# hybrik-jax benchmarks, {time.strftime('%Y-%m-%d')}")
  print(
    f"# machine: {platform.machine()} {platform.processor() or ''}, "
    f"{os.cpu_count()} CPUs; backend {jax.default_backend()}, "
    f"devices {[str(d) for d in jax.devices()]}"
  )
  print(
    f"# python {platform.python_version()}, jax {jax.__version__}, "
    f"flax {flax.__version__}, numpy {np.__version__}, opencv "
    f"{cv2.__version__}"
  )
  tunables = os.environ.get("GLIBC_TUNABLES", "")
  print(
    f"# host malloc: glibc huge pages "
    f"{'on' if 'glibc.malloc.hugetlb=1' in tunables else 'off'} "
    f"(hybrik_jax/host_memory.py; HYBRIK_JAX_HUGEPAGES=0 turns it off)"
  )
  print(Table.header())
  print(
    "|" + "|".join("-" * w for w in (36, 7, 11, 11, 11, 12, 9, 10, 8, 6)) + "|"
  )
  table = Table()
  reps = 2 if args.quick else args.repeats
  if "ik" not in skip:
    bench_ik(table, max(reps, 10))
  if not {"infer", "train"} <= skip:
    variables = _variables(args.train_image_size)
  if "infer" not in skip:
    bench_inference(table, variables, reps)
  if "train" not in skip:
    batches = tuple(int(b) for b in args.train_batches.split(","))
    bench_train(
      table,
      variables,
      reps,
      batches=batches[:1] if args.quick else batches,
      dtypes=tuple(args.train_dtypes.split(",")),
      image_size=args.train_image_size,
    )
  if "input" not in skip:
    bench_input(table, 50 if args.quick else 200)


if __name__ == "__main__":
  cli.run(main, huge_pages=True)
