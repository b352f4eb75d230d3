"""All benchmarks in one table: python bench/run_all.py [--reference]

Rows: IK+SMPL (``hybrik_forward``, eval) at batch 64/512; full-model
inference (``predict``) at batch 1/8/32; the data-parallel train step
(forward, backward, Adam) at per-device batch 8 and 32 in float32 and
bfloat16; the authors' HRNet-W48 camera model (``bench/bench_authors.py``):
inference at batch 1/8 and its train step at batch 8; the input pipeline (images/s per worker, pre-cropped records vs
full frames). Each figure is the median of ``--repeats`` timed calls after
warm-up; compile times are the first call.

The header names the CPU (model and vector ISA: AVX2 / AVX-512 / AMX) and
the peaks measured in the same run: XLA's float32 GEMM (2048^2 ``jnp.dot``)
and 3x3 convolution (batch 8, 32x32x128 -> 128, NHWC) throughput. Each row
gives its GFLOP/s (FLOPs from XLA's cost analysis of the compiled program)
and that as a fraction of the XLA GEMM peak.

``--reference`` times mmhuman3d 0.11.0's own PyTorch code on the same
machine in the same run (``reference/bench_torch.py`` in the reference
venv, ``scripts/setup_reference.sh``; 2 threads): once before and once
after the JAX rows. The PyTorch column is the rate from the mean of the two
timings, the speed-up is the JAX rate over it, and the header lists both
timings and torch's own GEMM / 3x3-conv peaks. Without ``--reference`` the
PyTorch columns stay empty (no figures typed in from elsewhere). The HRNet
rows' PyTorch column is the authors' own code (``reference/bench_authors.py``)
and needs ``--authors-src`` (a checkout of Jeff-sjtu/HybrIK; not part of
this repository).

``--quick`` runs fewer repeats and only the first train batch (smoke test).
Multi-device data parallelism on CPU (fake devices share the 2 cores):

  XLA_FLAGS=--xla_force_host_platform_device_count=8 python bench/run_all.py \\
      --skip ik,infer,input --train-batches 2 --train-image-size 64 \\
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

import bench_authors
import bench_body
from helpers import (
  FIXTURES,
  golden_train_batch,
  load_synthetic_body,
  recipe_config,
)

from hybrik_jax import builders, cli
from hybrik_jax.model import hybrik as hybrik_model
from hybrik_jax.smpl import hybrik_layer, lbs
from hybrik_jax.train import state as train_state
from hybrik_jax.train import step as train_step

# Same-run speed-up targets over mmhuman3d's PyTorch code (issue "Ahead of
# PyTorch on every CPU").
TARGET = {
  ("ik_smpl", 64): 8.0,
  ("ik_smpl", 512): 6.0,
  ("infer", 1): 1.5,
  ("infer", 8): 1.5,
  ("train_f32", 8): 1.6,
}
# bench_torch.py row names.
TORCH_ROWS = {
  ("ik_smpl", 64): "ik_smpl/64",
  ("ik_smpl", 512): "ik_smpl/512",
  ("infer", 1): "infer/1",
  ("infer", 8): "infer/8",
  ("train_f32", 8): "train_f32/8",
  **bench_authors.TORCH_ROWS,
}
REFVENV = ROOT / ".refvenv"


def cpu_description() -> str:
  """CPU model, cores and vector ISA (from /proc/cpuinfo, as lscpu)."""
  model, flags = None, set()
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        key, _, value = line.partition(":")
        if key.strip() == "model name" and model is None:
          model = value.strip()
        elif key.strip() == "flags" and not flags:
          flags = set(value.split())
  except OSError:
    pass
  isa = []
  if "avx2" in flags:
    isa.append("AVX2")
  avx512 = sorted(f for f in flags if f.startswith("avx512"))
  if avx512:
    isa.append("AVX-512 (" + " ".join(f[6:] for f in avx512) + ")")
  amx = sorted(f for f in flags if f.startswith("amx"))
  if amx:
    isa.append("AMX (" + " ".join(f[4:] for f in amx) + ")")
  model = model or platform.processor() or platform.machine()
  return f"{model}, {os.cpu_count()} cores, ISA: {' + '.join(isa) or '?'}"


def xla_peaks(repeats: int = 10) -> dict[str, float]:
  """XLA:CPU float32 GEMM and 3x3-convolution throughput, GFLOP/s."""
  n = 2048
  rng = np.random.default_rng(0)
  a = jnp.asarray(rng.normal(size=(n, n)), jnp.float32)
  b = jnp.asarray(rng.normal(size=(n, n)), jnp.float32)
  dot = jax.jit(lambda x, y: jnp.dot(x, y, precision="highest"))
  _, gemm_s = timed(dot, [a, b], repeats)
  x = jnp.asarray(rng.normal(size=(8, 32, 32, 128)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(3, 3, 128, 128)), jnp.float32)
  conv = jax.jit(
    lambda x, w: jax.lax.conv_general_dilated(
      x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
  )
  _, conv_s = timed(conv, [x, w], repeats)
  return {
    "gemm": 2 * n**3 / gemm_s / 1e9,
    "conv3x3": 2 * 8 * 32 * 32 * 128 * 128 * 9 / conv_s / 1e9,
  }


def flops_of(fn, args) -> float | None:
  """FLOPs of one call from XLA's cost analysis (None if unavailable)."""
  try:
    jitted = fn if hasattr(fn, "lower") else jax.jit(fn)
    cost = jitted.lower(*args).compile().cost_analysis()
  except Exception:  # e.g. a Python wrapper around several programs
    return None
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else None
  flops = (cost or {}).get("flops")
  return float(flops) if flops and flops > 0 else None


def reference_timings(repeats: int, skip: set[str]) -> dict:
  """One run of reference/bench_torch.py in the reference venv."""
  import json
  import subprocess
  import tempfile

  import checkpoint_recipe
  from helpers import SMPL_DIR, golden, gunzip_to

  python = REFVENV / "bin" / "python"
  if not python.exists():
    raise cli.UsageError(
      f"--reference: no reference venv at {REFVENV}; build it with "
      "`bash scripts/setup_reference.sh`"
    )
  with tempfile.TemporaryDirectory(prefix="bench_reference_") as tmp:
    tmp = Path(tmp)
    smpl = gunzip_to(SMPL_DIR / "SMPL_NEUTRAL.pkl.gz", tmp / "SMPL.pkl")
    np.savez(tmp / "state.npz", **checkpoint_recipe.full_state_dict(smpl))
    g = golden("golden_ik.npz")
    np.savez(
      tmp / "ik.npz",
      pose_skeleton=g["pose_skeleton_noisy"],
      betas=g["betas"],
      phis=g["phis"],
    )
    np.savez(tmp / "batch.npz", **golden_train_batch(8))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run = lambda *cmd: subprocess.run(  # noqa: E731
      [str(python), *map(str, cmd)],
      check=True,
      capture_output=True,
      text=True,
      env=env,
    )
    ckpt = tmp / "recipe.pth"
    run(
      ROOT / "reference" / "run_hybrik.py",
      "save",
      "--state",
      tmp / "state.npz",
      "--out",
      ckpt,
      "--format",
      "torch",
    )
    out = tmp / "torch.json"
    run(
      ROOT / "reference" / "bench_torch.py",
      "--checkpoint",
      ckpt,
      "--ik",
      tmp / "ik.npz",
      "--batch",
      tmp / "batch.npz",
      "--out",
      out,
      "--repeats",
      repeats,
      "--skip",
      ",".join(sorted(skip & {"ik", "infer", "train"})),
    )
    return json.loads(out.read_text())


def timed(fn, args, repeats):
  """(compile s, median s per call) via ``bench_body.time_fn``."""
  compile_s, median_ms, _ = bench_body.time_fn(fn, args, repeats)
  return compile_s, median_ms / 1e3


class Table:
  """The printed table; ``torch`` holds bench_torch.py's timings (ms per
  call, one dict per run) when ``--reference`` is on."""

  def __init__(self, gemm_peak: float, torch_runs=()):
    self.rows = []
    self.gemm_peak = gemm_peak
    self.torch_runs = list(torch_runs)
    self.pending = []  # rows printed once the "after" PyTorch run is in

  def add(
    self, stage, batch, compile_s, sec, unit="samples/s", key=None, flops=None
  ):
    self.rows.append(
      dict(
        stage=stage,
        batch=batch,
        compile_s=compile_s,
        ms=1e3 * sec,
        rate=batch / sec,
        unit=unit,
        key=key,
        gflops=flops / sec / 1e9 if flops else None,
      )
    )
    print(f"  measured: {stage}, batch {batch}: {1e3 * sec:.1f} ms", flush=True)

  def torch_rate(self, row) -> float | None:
    name = TORCH_ROWS.get(row["key"])
    ms = [r["ms"][name] for r in self.torch_runs if name in r.get("ms", {})]
    return row["batch"] / (np.mean(ms) / 1e3) if ms else None

  @staticmethod
  def header():
    return (
      f"| {'stage':<34} | {'batch':>5} | {'compile s':>9} | "
      f"{'ms/batch':>9} | {'rate':>8} | {'unit':<9} | {'GFLOP/s':>7} | "
      f"{'% GEMM':>6} | {'PyTorch':>7} | {'speed-up':>8} | {'target':>6} | "
      f"{'met':>4} |"
    )

  def print_all(self):
    print(self.header())
    widths = (36, 7, 11, 11, 10, 11, 9, 8, 9, 10, 8, 6)
    print("|" + "|".join("-" * w for w in widths) + "|")
    for r in self.rows:
      fmt = lambda x, f: f"{x:{f}}" if x is not None else ""  # noqa: E731
      torch = self.torch_rate(r)
      sp = r["rate"] / torch if torch else None
      tgt = TARGET.get(r["key"])
      frac = (
        100 * r["gflops"] / self.gemm_peak
        if r["gflops"] and self.gemm_peak
        else None
      )
      print(
        f"| {r['stage']:<34} | {r['batch']:>5} | "
        f"{fmt(r['compile_s'], '9.1f'):>9} | {r['ms']:>9.1f} | "
        f"{r['rate']:>8.1f} | {r['unit']:<9} | "
        f"{fmt(r['gflops'], '7.1f'):>7} | "
        f"{(fmt(frac, '5.0f') + '%') if frac is not None else '':>6} | "
        f"{fmt(torch, '7.1f'):>7} | "
        f"{(fmt(sp, '7.2f') + 'x') if sp else '':>8} | "
        f"{(fmt(tgt, '.1f') + 'x') if tgt else '':>6} | "
        f"{('yes' if sp >= tgt else 'NO') if sp and tgt else '':>4} |",
        flush=True,
      )


def ik_program(batch: int):
  """(hybrik_forward jitted, args, call): eval IK + SMPL on ``batch``
  skeletons of the IK golden (tiled), synthetic body model."""
  model = load_synthetic_body()
  with np.load(FIXTURES / "golden_ik.npz") as d:
    args = [model] + [
      bench_body.tile(d[k], batch)
      for k in ("pose_skeleton_noisy", "betas", "phis")
    ]
  fn = jax.jit(hybrik_layer.hybrik_forward, static_argnames=("train",))
  return fn, args, lambda: fn(*args)


def bench_ik(table, repeats):
  for b in (64, 512):
    fn, args, _ = ik_program(b)
    c, s = timed(fn, args, repeats)
    table.add(
      "IK+SMPL hybrik_forward (eval)",
      b,
      c,
      s,
      key=("ik_smpl", b),
      flops=_unchunked_flops(hybrik_layer.hybrik_forward, args, b),
    )


def _unchunked_flops(fn, args, batch: int) -> float | None:
  """FLOPs of ``fn`` with the SMPL mesh in one chunk of ``batch`` samples.

  On CPU the mesh runs over chunks of ``lbs.CPU_CHUNK`` samples in a loop,
  and XLA's cost analysis counts a loop body once: the chunked program
  reports the FLOPs of one chunk. The same computation traced unchunked is
  counted whole.
  """
  saved = lbs.CPU_CHUNK
  lbs.CPU_CHUNK = max(batch, saved)
  try:
    # A new function object: jit's trace cache would return the chunked one.
    return flops_of(jax.jit(lambda *a: fn(*a)), args)  # pylint: disable=unnecessary-lambda
  finally:
    lbs.CPU_CHUNK = saved


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


def inference_program(variables, batch: int):
  """(predict, args, call): float32 inference on ``batch`` random 256 px
  images with a fixed camera."""
  img = np.random.default_rng(batch).normal(size=(batch, 256, 256, 3))
  args = [variables, img.astype(np.float32), *_camera(batch)]
  return hybrik_model.predict, args, lambda: hybrik_model.predict(*args)


def bench_inference(table, variables, repeats, batches=(1, 8, 32)):
  variables = jax.device_put(variables)
  for b in batches:
    fn, args, _ = inference_program(variables, b)
    c, s = timed(fn, args, repeats)
    table.add(
      "inference predict (f32)",
      b,
      c,
      s,
      unit="img/s",
      key=("infer", b),
      flops=flops_of(fn, args),
    )


def train_program(variables, dtype: str, batch: int, image_size: int = 256):
  """One train step of the mmhuman3d recipe on ``batch`` images per device.

  Returns (step, args, call): ``step(*args)`` is the compiled program (for
  FLOPs and HLO; ``args`` hold their own copy of the state) and ``call()``
  runs one step, carrying the donated state from call to call.
  """
  cfg = recipe_config()
  tx, _ = builders.make_optimizer(cfg, 1000)
  mesh = train_step.make_mesh()
  model = hybrik_model.HybrIK(dtype=jnp.dtype(dtype))
  step = train_step.make_train_step(model, mesh, builders.loss_weights(cfg))
  gb = batch * jax.device_count()
  data = train_step.shard_batch(golden_train_batch(gb, image_size), mesh)
  return step_program(step, tx, mesh, variables, data)


def step_program(step, tx, mesh, variables, data):
  """(step, args, call) for a train step: ``args`` = [a fresh state,
  ``data``] for lowering, ``call()`` runs one step on ``data`` carrying
  the state (the step donates it, so each holds its own copy)."""

  def new_state():
    return train_step.replicate(
      train_state.TrainState.create(
        jax.tree.map(jnp.copy, variables), tx, jax.random.PRNGKey(1)
      ),
      mesh,
    )

  box = {"state": new_state()}

  def call():
    box["state"], metrics = step(box["state"], data)
    return metrics

  return step, [new_state(), data], call


def bench_train(
  table,
  variables,
  repeats,
  batches=(8, 32),
  dtypes=("float32", "bfloat16"),
  image_size=256,
):
  n = jax.device_count()
  for dtype in dtypes:
    for b in batches:
      step, args, call = train_program(variables, dtype, b, image_size)
      flops = flops_of(step, args)
      del args
      c, s = timed(call, [], repeats)
      tag = "f32" if dtype == "float32" else "bf16"
      size = "" if image_size == 256 else f", {image_size} px"
      table.add(
        f"train step {tag} ({n} device(s){size})",
        b * n,
        c,
        s,
        unit="img/s",
        key=(f"train_{tag}", b) if image_size == 256 else None,
        flops=flops,
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
  flags.DEFINE_bool(
    "reference",
    False,
    "Time mmhuman3d's PyTorch code in the same run (reference venv).",
    flag_values=fv,
  )
  flags.DEFINE_list(
    "skip", [], "Sections to skip: ik,infer,train,hrnet,input.", flag_values=fv
  )
  flags.DEFINE_string(
    "authors_src",
    os.environ.get("HYBRIK_AUTHORS_SRC"),
    "A checkout of the authors' HybrIK (Jeff-sjtu/HybrIK; env "
    "HYBRIK_AUTHORS_SRC): with --reference, their HRNet-W48 camera model is "
    "timed beside the hrnet rows.",
    flag_values=fv,
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
  print(f"# CPU: {cpu_description()}")
  peaks = xla_peaks()
  print(
    f"# XLA float32 peaks this run: GEMM 2048^2 {peaks['gemm']:.0f} GFLOP/s, "
    f"3x3 conv (b8 32x32x128) {peaks['conv3x3']:.0f} GFLOP/s"
  )
  reps = 2 if args.quick else args.repeats
  torch_runs = []
  authors = args.reference and args.authors_src and "hrnet" not in skip

  def reference_run(when):
    print(f"# timing mmhuman3d's PyTorch code ({when} the JAX rows) ...")
    run = reference_timings(reps, skip)
    if authors:
      print(f"# timing the authors' PyTorch HRNet ({when} the JAX rows) ...")
      hr = bench_authors.reference_timings(Path(args.authors_src), reps)
      run["ms"].update(hr["ms"])
    torch_runs.append(run)

  if args.reference:
    reference_run("before")
  table = Table(peaks["gemm"], torch_runs)
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
  if "hrnet" not in skip:
    hr_vars = bench_authors.recipe_variables()
    bench_authors.bench_inference(table, hr_vars, reps, timed, flops_of)
    bench_authors.bench_train(table, hr_vars, reps, timed, flops_of)
    del hr_vars
  if "input" not in skip:
    bench_input(table, 50 if args.quick else 200)
  if args.reference:
    reference_run("after")
    first = torch_runs[0]
    print(
      f"# PyTorch {first['torch']}, {first['threads']} threads, mmhuman3d "
      f"0.11.0 (reference/bench_torch.py)"
      + (
        " and the authors' HybrIK (reference/bench_authors.py)"
        if authors
        else ""
      )
      + "; ms before / after the JAX rows: "
      + ", ".join(
        f"{k} {first['ms'][k]:.1f} / {torch_runs[1]['ms'].get(k, 0):.1f}"
        for k in first["ms"]
      )
    )
    print(
      "# PyTorch float32 peaks (before / after): GEMM "
      + " / ".join(f"{r['gflops']['gemm']:.0f}" for r in torch_runs)
      + " GFLOP/s, 3x3 conv channels-last "
      + " / ".join(f"{r['gflops']['conv3x3']:.0f}" for r in torch_runs)
      + " GFLOP/s"
    )
  print()
  table.print_all()


if __name__ == "__main__":
  cli.run(main, huge_pages=True)
