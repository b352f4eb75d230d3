"""A/B of XLA:CPU options on inference: one subprocess per option set.

  python bench/bench_xla_flags.py [--repeats 10] [--batches 1,8]
      [--sets baseline,onednn,xnn_...]

Each option set runs in its own process (XLA reads ``XLA_FLAGS`` once) and
times ``predict`` (float32, 256 px, random weights) at each batch, plus one
3x3 convolution (batch 8, 32x32x128 -> 128, NHWC). Prints a table: option
set, ms per batch (the best of ``--repeats`` calls after warm-up: the least
disturbed by other load on a shared machine; the sets run in ``--rounds``
alternating rounds and keep their best round), the ratio to the
baseline in the same run, and whether the option visibly reached the
compiler (the optimised HLO of ``predict`` names a oneDNN / XNNPACK
custom call or fusion kind), plus the largest difference of the outputs from
the baseline's (parity is not negotiable: a faster option that moves an
output is wrong).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# name -> XLA_FLAGS added to the environment's.
OPTION_SETS = {
  "baseline": "",
  # convolutions and dots leave YNNPACK (the default) for XLA's own kernels
  "no_xnnpack": "--xla_cpu_use_xnnpack=false",
  "onednn": "--xla_cpu_use_onednn=true",
  "onednn_fusions": "--xla_cpu_use_onednn=true "
  "--xla_cpu_experimental_onednn_fusion_type=dot,eltwise",
  "xnn_fusions": "--xla_cpu_experimental_xnn_fusion_type=dot,eltwise,reduce",
  "xnn_graph_greedy": "--xla_cpu_experimental_xnn_graph_fusion_mode="
  "XNN_GRAPH_FUSION_MODE_GREEDY",
  "ynn_fusions": "--xla_cpu_experimental_ynn_fusion_type=dot,eltwise,reduce",
  # oneDNN custom calls (XLA's oneDNN rewriter for matmuls/convolutions)
  "onednn_custom_call": "--xla_cpu_use_onednn=true "
  "--xla_cpu_experimental_onednn_custom_call=true",
}
# Words in the optimised HLO that show an option reached the compiler.
MARKERS = ("onednn", "xnn_fusion", "ynn_fusion", "custom_call_target")

CHILD = r"""
import json, os, sys, time
import numpy as np
sys.path.insert(0, {root!r}); sys.path.insert(0, {tests!r})
import jax
from helpers import FIXTURES, load_synthetic_body
from hybrik_jax.model import hybrik
batches = {batches!r}
repeats = {repeats!r}
body = load_synthetic_body()
variables = hybrik.init_variables(
  jax.random.PRNGKey(0), body, FIXTURES / "h36m_mean_beta.npy", image_size=256
)
res = {{"ms": {{}}, "outputs": {{}}}}
rng = np.random.default_rng(0)
for b in batches:
  img = rng.normal(size=(b, 256, 256, 3)).astype(np.float32)
  ti = np.tile(np.array([[[4.0, 0, 100], [0, 4.0, 50]]], np.float32), (b, 1, 1))
  k = np.linalg.inv(np.array([[1000.0, 0, 500], [0, 1000, 500], [0, 0, 1]]))
  kinv = np.tile(k[None], (b, 1, 1)).astype(np.float32)
  root = np.tile(np.array([[0, 0, 5000.0]], np.float32), (b, 1))
  depth = np.full((b, 1), 2000.0, np.float32)
  args = (variables, img, ti, kinv, root, depth)
  if b == batches[0]:
    hlo = hybrik.predict.lower(*args).compile().as_text().lower()
    res["markers"] = sorted({{m for m in {markers!r} if m in hlo}})
  out = jax.block_until_ready(hybrik.predict(*args))
  jax.block_until_ready(hybrik.predict(*args))
  ts = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(hybrik.predict(*args))
    ts.append(time.perf_counter() - t0)
  res["ms"][f"predict/{{b}}"] = 1e3 * float(np.min(ts))
  for key in ("pred_uvd_jts", "pred_vertices", "pred_pose"):
    np.save(os.path.join({tmp!r}, f"{{key}}_{{b}}.npy"), np.asarray(out[key]))
x = rng.normal(size=(8, 32, 32, 128)).astype(np.float32)
w = rng.normal(size=(3, 3, 128, 128)).astype(np.float32)
conv = jax.jit(lambda x, w: jax.lax.conv_general_dilated(
  x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")))
jax.block_until_ready(conv(x, w))
ts = []
for _ in range(repeats):
  t0 = time.perf_counter()
  jax.block_until_ready(conv(x, w))
  ts.append(time.perf_counter() - t0)
res["ms"]["conv3x3/8"] = 1e3 * float(np.min(ts))
print("RESULT " + json.dumps(res))
"""


def run_set(name, flags, batches, repeats, tmp):
  env = dict(os.environ)
  env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " " + flags).strip()
  env["PYTHONPATH"] = str(ROOT)
  code = CHILD.format(
    root=str(ROOT),
    tests=str(ROOT / "tests"),
    batches=tuple(batches),
    repeats=repeats,
    markers=MARKERS,
    tmp=str(tmp),
  )
  proc = subprocess.run(
    [sys.executable, "-c", code], capture_output=True, text=True, env=env
  )
  lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
  if proc.returncode != 0 or not lines:
    err = (proc.stderr.strip().splitlines() or ["?"])[-1]
    return {"error": err[:160]}
  return json.loads(lines[-1][len("RESULT ") :])


def main() -> int:
  import argparse
  import tempfile

  import numpy as np

  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--repeats", type=int, default=10)
  ap.add_argument("--batches", default="1,8")
  ap.add_argument(
    "--rounds", type=int, default=2, help="alternating rounds (best kept)"
  )
  ap.add_argument("--sets", default=",".join(OPTION_SETS))
  args = ap.parse_args()
  batches = [int(b) for b in args.batches.split(",")]
  names = args.sets.split(",")
  if "baseline" not in names:
    names.insert(0, "baseline")
  sys.path.insert(0, str(ROOT / "bench"))
  from run_all import cpu_description

  print(f"# CPU: {cpu_description()}")
  results, outs = {}, {}
  with tempfile.TemporaryDirectory() as base:
    for round_ in range(args.rounds):  # sets alternate; best of the rounds
      for name in names:
        tmp = Path(base) / name
        tmp.mkdir(exist_ok=True)
        r = run_set(name, OPTION_SETS[name], batches, args.repeats, tmp)
        print(f"# round {round_}, {name}: {r}", flush=True)
        prev = results.get(name)
        if prev is None or "error" in prev:
          results[name] = r
        elif "error" not in r:
          prev["ms"] = {k: min(v, r["ms"][k]) for k, v in prev["ms"].items()}
        outs[name] = {p.stem: np.load(p) for p in tmp.glob("*.npy")}
  base = results["baseline"]["ms"]
  cols = list(base)
  print(
    "| option set | "
    + " | ".join(f"{c} ms" for c in cols)
    + " | "
    + " | ".join(f"{c} ratio" for c in cols)
    + " | reached XLA | max |out - baseline| |"
  )
  print("|" + "---|" * (2 + 2 * len(cols) + 1))
  for name in names:
    r = results[name]
    if "error" in r:
      print(f"| {name} | failed: {r['error']} |")
      continue
    diff = max(
      (
        float(np.max(np.abs(outs[name][k] - outs["baseline"][k])))
        for k in outs["baseline"]
        if k in outs[name]
      ),
      default=float("nan"),
    )
    print(
      f"| {name} | "
      + " | ".join(f"{r['ms'][c]:.1f}" for c in cols)
      + " | "
      + " | ".join(f"{base[c] / r['ms'][c]:.2f}x" for c in cols)
      + f" | {', '.join(r.get('markers', [])) or 'no'} | {diff:.1e} |"
    )
  return 0


if __name__ == "__main__":
  sys.exit(main())
