"""Where batch-1 inference time goes: ``predict`` split into its stages.

Usage:
  .venv/bin/python bench/profile_predict.py [--batch 1] [--repeats 30]

Times, each as its own jitted function on warm inputs (median and best ms of
``--repeats`` calls): the ResNet-34 backbone; the head's three transposed
convolutions (with BatchNorm + ReLU); the whole head (adds the 256 -> 1856
1x1 convolution, the soft-argmax and the global branch); the body model
(uvd -> camera, IK, SMPL); and ``predict`` end to end. Also counts the FLOPs
of the two largest layers and the minor page faults per ``predict`` call.
The sum of the stages is close to ``predict``: XLA:CPU runs one stage at a
time at batch 1, so the stages are the profile.
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import bench_body
import run_all

from hybrik_jax import cli
from hybrik_jax.model import hybrik as hybrik_model
from hybrik_jax.model.head import HybrIKHead
from hybrik_jax.model.resnet import ResNet34
from hybrik_jax.smpl import hybrik_layer as hybrik_smpl


def define_flags(fv: flags.FlagValues) -> None:
  flags.DEFINE_integer("batch", 1, "Batch size.", flag_values=fv)
  flags.DEFINE_integer("repeats", 30, "Timed calls per row.", flag_values=fv)


def main(argv=None):
  args, _ = cli.parse(
    define_flags, argv, "python bench/profile_predict.py", __doc__, xla=True
  )
  b = args.batch
  variables = jax.device_put(run_all._variables())  # pylint: disable=protected-access
  images = jnp.asarray(
    np.random.default_rng(0).normal(size=(b, 256, 256, 3)), jnp.float32
  )
  camera = run_all._camera(b)  # pylint: disable=protected-access

  backbone, head = ResNet34(), HybrIKHead()
  bb_vars = {
    "params": variables["params"]["backbone"],
    "batch_stats": variables["batch_stats"]["backbone"],
  }
  head_vars = {
    "params": variables["params"]["head"],
    "batch_stats": variables["batch_stats"]["head"],
  }
  init_shape = variables["constants"]["init_shape"]
  run_backbone = jax.jit(backbone.apply)
  feature = run_backbone(bb_vars, images)  # [B, 8, 8, 512]
  run_deconvs = jax.jit(
    lambda v, f: head.apply(v, f, init_shape)["deconv_features"]
  )
  run_head = jax.jit(
    lambda v, f: {
      k: o
      for k, o in head.apply(v, f, init_shape).items()
      if k in ("pred_uvd_jts_29", "pred_shape", "pred_phi")
    }
  )
  h = run_head(head_vars, feature)
  body = hybrik_model.body_model_from_constants(variables["constants"]["smpl"])

  def body_stage(body, uvd, shape, phi, trans_inv, kinv, root, depth):
    xyz = hybrik_model.uvd_to_cam(uvd, trans_inv, kinv, root, depth)
    xyz = xyz - xyz[:, :1]
    return hybrik_smpl.hybrik_forward(
      body, xyz * hybrik_model.DEPTH_BOX_M, shape, phi
    )

  run_body = jax.jit(body_stage)
  full_args = [variables, np.asarray(images), *camera]

  stages = [
    ("backbone (ResNet-34)", run_backbone, [bb_vars, images]),
    ("head: 3 transposed convs + BN/ReLU", run_deconvs, [head_vars, feature]),
    ("head: all (+1x1 conv, soft-argmax, fc)", run_head, [head_vars, feature]),
    (
      "uvd->camera + IK + SMPL",
      run_body,
      [body, h["pred_uvd_jts_29"], h["pred_shape"], h["pred_phi"], *camera],
    ),
    ("predict (end to end)", hybrik_model.predict, full_args),
  ]
  print(
    f"# predict stages at batch {b}, jax {jax.__version__} "
    f"({jax.default_backend()}), {args.repeats} calls each"
  )
  print("| stage | median ms | best ms |")
  print("|---|---|---|")
  for name, fn, fn_args in stages:
    _, med, best = bench_body.time_fn(fn, fn_args, args.repeats)
    print(f"| {name} | {med:.1f} | {best:.1f} |", flush=True)

  pixels = b * 64 * 64
  print(
    f"# final 1x1 conv: {2 * pixels * 256 * 1856 / 1e9:.2f} GFLOP; "
    f"last transposed conv: {2 * pixels * 256 * 256 * 4 / 1e9:.2f} GFLOP"
  )
  before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
  for _ in range(10):
    jax.block_until_ready(hybrik_model.predict(*full_args))
  faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 10
  print(f"# minor page faults per predict call: {faults:.0f}")


if __name__ == "__main__":
  cli.run(main, huge_pages=True)
