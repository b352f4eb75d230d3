"""Where a benchmark row's time goes, by kind of XLA operation.

  python bench/profile_ops.py [--rows infer/1,infer/8,train_f32/8,ik_smpl/64]
      [--calls 3]

For each row it builds the program that ``bench/run_all.py`` times for that
row (same inputs, same model), traces ``--calls`` warm calls with
``jax.profiler`` and adds up the time of every XLA:CPU operation the trace
records (the hlo_op of each thunk), grouped by kind:

  conv forward              forward convolutions (YNNPACK or Eigen)
  conv input gradient       backward convolutions producing activations
  conv filter gradient      backward convolutions producing kernels (their
                            window spans the whole feature map)
  dot                       matmuls (YNNPACK fusions or dots)
  elementwise / reduction   XLA's loop and reduction fusions (BatchNorm,
                            ReLU, residual adds, the optimizer, IK, ...)
  copy / transpose, other   the rest

Convolution and dot FLOPs are counted from the shapes in the optimised HLO
(2 x output elements x the kernel's per-output volume), so each kind also
gets its GFLOP/s and its share of the XLA float32 GEMM peak measured at the
start. The trace records an operation once per thread that worked on it,
so "op ms" is CPU time (it exceeds the wall time when both cores work);
"wall ms" splits the untraced median time of a call by each kind's share of
that CPU time, and GFLOP/s is over that wall share. The profiler itself
slows the traced calls down, which is why wall time is timed untraced. The
machine's cores are shared: run it quiet.
"""

from __future__ import annotations

import collections
import glob
import math
import re
import sys
import tempfile
import time
from pathlib import Path

import jax
from absl import flags

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import bench_authors
import run_all

from hybrik_jax import cli

ROWS = (
  "infer/1",
  "infer/8",
  "train_f32/8",
  "ik_smpl/64",
  "ik_smpl/512",
  "hrnet_infer/1",
  "hrnet_infer/8",
  "hrnet_train/8",
)
KINDS = (
  "conv forward",
  "conv input gradient",
  "conv filter gradient",
  "dot",
  "elementwise / reduction",
  "copy / transpose",
  "other",
)

_INSTR = re.compile(
  r"^\s*(?:ROOT\s+)?%([\w.\-]+)\s*=\s*(\S+?\[[^\]]*\](?:\{[^}]*\})?|\([^=]*?\))"
  r"\s+([\w\-]+)\((.*)$"
)
_COMP = re.compile(r"^(?:ENTRY\s+)?%([\w.\-]+)\s.*\{\s*$")
_SHAPE = re.compile(r"\w+\[([\d,]*)\]")


def _dims(shape: str) -> list[int]:
  m = _SHAPE.match(shape)
  if not m or not m.group(1):
    return []
  return [int(d) for d in m.group(1).split(",")]


def parse_hlo(text: str) -> tuple[dict, dict]:
  """Instructions of an optimised HLO module and the computations' members.

  Returns ({name: (opcode, shape, operand names, rest of line)},
  {computation: [instruction names]}).
  """
  instrs, comps, current = {}, {}, None
  for line in text.splitlines():
    m = _COMP.match(line)
    if m and "=" not in line.split("{")[0]:
      current = m.group(1)
      comps[current] = []
      continue
    m = _INSTR.match(line)
    if not m:
      continue
    name, shape, opcode, rest = m.groups()
    operands = re.findall(r"%([\w.\-]+)", rest.split(")", 1)[0])
    instrs[name] = (opcode, shape, operands, rest)
    if current is not None:
      comps[current].append(name)
  return instrs, comps


def _conv_flops(instrs: dict, name: str) -> float:
  opcode, shape, operands, rest = instrs[name]
  labels = re.search(r"dim_labels=(\w+)_(\w+)->(\w+)", rest)
  if not labels or len(operands) < 2 or operands[1] not in instrs:
    return 0.0
  rhs = _dims(instrs[operands[1]][1])
  rhs_labels = labels.group(2)
  if len(rhs) != len(rhs_labels):
    return 0.0
  per_output = math.prod(rhs) / rhs[rhs_labels.index("o")]
  groups = re.search(r"feature_group_count=(\d+)", rest)
  per_output /= int(groups.group(1)) if groups else 1
  return 2.0 * math.prod(_dims(shape)) * per_output


def _dot_flops(instrs: dict, name: str) -> float:
  opcode, shape, operands, rest = instrs[name]
  contracting = re.search(r"lhs_contracting_dims=\{([\d,]*)\}", rest)
  if not contracting or not operands or operands[0] not in instrs:
    return 0.0
  lhs = _dims(instrs[operands[0]][1])
  k = math.prod(lhs[int(d)] for d in contracting.group(1).split(",") if d)
  return 2.0 * math.prod(_dims(shape)) * k


def _conv_kind(instrs: dict, name: str, source: str) -> str:
  """Forward, input gradient or filter gradient, from a convolution's shapes.

  A filter gradient's window spans the feature map (XLA writes it as a
  convolution of the activations with the output gradient, and may strip
  its metadata); otherwise backward ops are those JAX names
  ``transpose(jvp(...))``.
  """
  _, shape, _, rest = instrs[name]
  window = re.search(r"size=([\dx]+)", rest)
  win = math.prod(int(s) for s in window.group(1).split("x")) if window else 1
  out = _dims(shape)
  labels = re.search(r"->(\w+)", rest)
  spatial = (
    math.prod(out[i] for i, c in enumerate(labels.group(1)) if c.isdigit())
    if labels and len(labels.group(1)) == len(out)
    else 1
  )
  if win > spatial:
    return "conv filter gradient"
  if "transpose(" in rest or "transpose(" in source:
    return "conv input gradient"
  return "conv forward"


def classify(instrs: dict, comps: dict, name: str) -> tuple[str, float]:
  """(kind, FLOPs) of one executed operation."""
  if name not in instrs:
    return "other", 0.0
  opcode, _, _, rest = instrs[name]
  members = [name]
  if opcode == "fusion":
    called = re.search(r"calls=%([\w.\-]+)", rest)
    members = comps.get(called.group(1), []) if called else []
  convs = [m for m in members if instrs[m][0] == "convolution"]
  dots = [m for m in members if instrs[m][0] == "dot"]
  if convs:
    kind = _conv_kind(instrs, convs[0], rest)
    return kind, sum(_conv_flops(instrs, c) for c in convs)
  if dots:
    return "dot", sum(_dot_flops(instrs, d) for d in dots)
  if opcode == "fusion":
    if "copy" in name or "transpose" in name:
      return "copy / transpose", 0.0
    return "elementwise / reduction", 0.0
  if opcode in ("copy", "transpose"):
    return "copy / transpose", 0.0
  return "other", 0.0


def profile(fn, args, call, calls: int) -> tuple[dict, float, list]:
  """Per-kind (summed ms per call, GFLOP per call), traced wall ms per call
  and the operations by time: [(hlo op, ms per call, kind, source)].

  ``fn``/``args`` give the compiled program; ``call()`` runs it once.
  """
  instrs, comps = parse_hlo(fn.lower(*args).compile().as_text())
  jax.block_until_ready(call())
  jax.block_until_ready(call())
  with tempfile.TemporaryDirectory() as d:
    t0 = time.perf_counter()
    with jax.profiler.trace(d):
      for _ in range(calls):
        jax.block_until_ready(call())
    wall_ms = 1e3 * (time.perf_counter() - t0) / calls
    (pb,) = glob.glob(d + "/**/*.xplane.pb", recursive=True)
    data = jax.profiler.ProfileData.from_file(pb)
  ms = collections.Counter()
  flops = collections.Counter()
  per_op = collections.Counter()
  for plane in data.planes:
    for line in plane.lines:
      for event in line.events:
        op = dict(event.stats).get("hlo_op")
        if not op:
          continue
        kind, f = classify(instrs, comps, op)
        ms[kind] += event.duration_ns / 1e6 / calls
        flops[kind] += f / calls
        per_op[op] += event.duration_ns / 1e6 / calls
  top = [
    (op, t, classify(instrs, comps, op)[0], _source(instrs, op))
    for op, t in per_op.most_common()
  ]
  return {k: (ms[k], flops[k] / 1e9) for k in ms}, wall_ms, top


def _source(instrs: dict, name: str) -> str:
  """The JAX operation an HLO instruction came from (its metadata op_name)."""
  m = re.search(r'op_name="([^"]*)"', instrs.get(name, ("", "", "", ""))[3])
  return m.group(1).split("/", 1)[-1] if m else ""


def row_program(row: str):
  """(jitted function, args, call) of one run_all row; call() runs it."""
  if row not in ROWS:
    raise ValueError(f"unknown row {row!r}; choose from {', '.join(ROWS)}")
  what, batch = row.split("/")
  b = int(batch)
  if what == "ik_smpl":
    return run_all.ik_program(b)
  if what.startswith("hrnet"):
    variables = bench_authors.recipe_variables()
    if what == "hrnet_infer":
      return bench_authors.inference_program(variables, b)
    return bench_authors.train_program(variables, b)
  variables = jax.device_put(run_all._variables())  # pylint: disable=protected-access
  if what == "infer":
    return run_all.inference_program(variables, b)
  return run_all.train_program(variables, "float32", b)


def define_flags(fv: flags.FlagValues) -> None:
  flags.DEFINE_list(
    "rows",
    list(ROWS[:5]),
    f"Rows to profile ({', '.join(ROWS)}).",
    flag_values=fv,
  )
  flags.DEFINE_integer("calls", 3, "Traced calls per row.", flag_values=fv)
  flags.DEFINE_integer(
    "repeats", 10, "Untraced timed calls per row.", flag_values=fv
  )
  flags.DEFINE_integer(
    "top", 8, "Largest operations listed per row.", flag_values=fv
  )


def main(argv=None) -> None:
  args, _ = cli.parse(
    define_flags, argv, "python bench/profile_ops.py", __doc__, xla=True
  )
  for row in args.rows:
    if row not in ROWS:
      raise SystemExit(
        f"--rows: unknown row {row!r}; choose from {', '.join(ROWS)}"
      )
  # profile() compiles each program twice (once ahead of time for its HLO
  # text, once through jit to run it): a persistent compilation cache for
  # this run makes the second compile a cache hit (minutes for HRNet).
  cache = tempfile.TemporaryDirectory(prefix="profile_ops_cache_")
  jax.config.update("jax_compilation_cache_dir", cache.name)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
  print(f"# CPU: {run_all.cpu_description()}")
  peaks = run_all.xla_peaks()
  print(
    f"# XLA float32 peaks: GEMM {peaks['gemm']:.0f} GFLOP/s, "
    f"3x3 conv {peaks['conv3x3']:.0f} GFLOP/s; jax {jax.__version__}"
  )
  for row in args.rows:
    fn, fn_args, call = row_program(row)
    _, wall_s = run_all.timed(call, [], args.repeats)
    kinds, traced_ms, top = profile(fn, fn_args, call, args.calls)
    wall = 1e3 * wall_s
    total = sum(ms for ms, _ in kinds.values())
    print(
      f"\n## {row}: {wall:.1f} ms per call (median of {args.repeats}, "
      f"untraced); traced: {total:.1f} ms of operations per call "
      f"(summed over threads) in {traced_ms:.1f} ms"
    )
    print(
      "| kind | op ms per call | share | wall ms (share) | GFLOP | "
      "GFLOP/s | % GEMM |"
    )
    print("|---|---|---|---|---|---|---|")
    for kind in KINDS:
      if kind not in kinds:
        continue
      ms, gflop = kinds[kind]
      share = ms / total
      rate = gflop / (share * wall_s) if gflop else None
      print(
        f"| {kind} | {ms:.1f} | {100 * share:.0f}% | {share * wall:.1f} | "
        + (
          f"{gflop:.2f} | {rate:.0f} | {100 * rate / peaks['gemm']:.0f}% |"
          if rate
          else "| | |"
        ),
        flush=True,
      )
    print(f"\nlargest {args.top} operations of {row}:")
    print("| HLO op | kind | op ms per call | from |")
    print("|---|---|---|---|")
    for op, ms, kind, source in top[: args.top]:
      print(f"| {op} | {kind} | {ms:.2f} | {source[:90]} |")


if __name__ == "__main__":
  cli.run(main, huge_pages=True)
