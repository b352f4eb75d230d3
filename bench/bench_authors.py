"""HRNet-W48 camera model rows of ``bench/run_all.py`` (issue #15).

The authors' ``HRNetSMPLCam`` (Jeff-sjtu/HybrIK) in hybrik-jax
(:mod:`hybrik_jax.model.hybrik_cam`) with the recipe weights of
``tests/authors_recipe.py``: eval-mode inference at batch 1 and 8 (boxes and
image centre given, no flip test) and the train step at batch 8. With
``--reference --authors-src DIR`` the authors' own PyTorch code is timed
on the same inputs in the same run (``reference/bench_authors.py`` in the
reference venv; their code is not part of this repository, so without
``--authors-src`` the PyTorch column of these rows stays empty).
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ARCH = "hrnet_w48_cam"
IMAGE_SIZE = 256
# bench/reference row names (see run_all.TORCH_ROWS).
TORCH_ROWS = {
  ("hrnet_infer", 1): "hrnet_infer/1",
  ("hrnet_infer", 8): "hrnet_infer/8",
  ("hrnet_train", 8): "hrnet_train/8",
}


def authors_batch(n: int, seed: int = 0) -> dict[str, np.ndarray]:
  """A deterministic input batch + the labels the authors' loss reads.

  ``img`` [n, 256, 256, 3] normalised NHWC; ``bboxes`` [n, 4] x1 y1 x2 y2
  px in a 640 x 480 frame; ``img_center`` [n, 2] px; ``target_uvd_29``
  [n, 87] in [-0.5, 0.5); ``target_theta`` [n, 216] identity rotations;
  ``target_twist`` [n, 23, 2] unit (cos, sin); weights 1;
  ``camera_scale`` [n, 1]; ``camera_trans`` [n, 2] metres.
  """
  rng = np.random.default_rng(seed)
  f32 = np.float32
  ang = rng.uniform(-np.pi, np.pi, size=(n, 23))
  return {
    "img": rng.normal(size=(n, IMAGE_SIZE, IMAGE_SIZE, 3)).astype(f32),
    "bboxes": np.tile(np.array([[200.0, 100.0, 456.0, 356.0]], f32), (n, 1)),
    "img_center": np.tile(np.array([[320.0, 240.0]], f32), (n, 1)),
    "target_uvd_29": rng.uniform(-0.5, 0.5, size=(n, 87)).astype(f32),
    "target_weight_29": np.ones((n, 87), f32),
    "target_beta": rng.normal(size=(n, 10)).astype(f32),
    "target_theta": np.tile(np.eye(3, dtype=f32).reshape(1, 9), (n, 24)),
    "target_theta_weight": np.ones((n, 216), f32),
    "target_smpl_weight": np.ones((n, 1), f32),
    "target_twist": np.stack([np.cos(ang), np.sin(ang)], -1).astype(f32),
    "target_twist_weight": np.ones((n, 23, 2), f32),
    "target_xyz_weight_24": np.ones((n, 72), f32),
    "camera_scale": np.full((n, 1), 0.9, f32),
    "camera_trans": rng.normal(scale=0.05, size=(n, 2)).astype(f32),
  }


def recipe_variables():
  """hybrik-jax variables of the recipe HRNet-W48 camera model."""
  from authors_recipe import build_state_dict
  from helpers import load_synthetic_body

  from hybrik_jax.interop import authors_mapping as am

  return jax.device_put(
    am.state_dict_to_variables(
      build_state_dict(ARCH), smpl_model=load_synthetic_body(), source=ARCH
    )
  )


def inference_program(variables, batch: int):
  """(predict, args, call) of eval-mode inference on ``batch`` images."""
  from hybrik_jax.model import hybrik_cam

  fn = jax.jit(functools.partial(hybrik_cam.predict, arch=ARCH))
  data = authors_batch(batch)
  args = [variables] + [
    jnp.asarray(data[k]) for k in ("img", "bboxes", "img_center")
  ]
  return fn, args, lambda: fn(*args)


def train_program(variables, batch: int = 8):
  """One train step of ``configs/hrnet_w48_cam.py`` (forward in train mode,
  their Laplace loss, backward, Adam with per-parameter clipping) at
  ``batch`` per device, 256 px.

  Returns (step, args, call) as ``run_all.train_program``: ``step(*args)``
  is the program, ``call()`` runs one step carrying the donated state.
  """
  from configs import hrnet_w48_cam
  from hybrik_jax import builders
  from hybrik_jax.train import step as train_step

  config = hrnet_w48_cam.get_config()
  task = builders.train_task(config)
  tx, _ = builders.make_optimizer(config, 1000)
  mesh = train_step.make_mesh()
  step = train_step.make_train_step(
    builders.build_model(config), mesh, builders.loss_weights(config), task
  )
  data = authors_batch(batch * jax.device_count())
  keys = (*task.input_keys, *task.target_keys)
  sharded = train_step.shard_batch({k: data[k] for k in keys}, mesh)
  from run_all import step_program  # run_all imports this module

  return step_program(step, tx, mesh, variables, sharded)


def bench_inference(table, variables, repeats, timed, flops_of):
  for b in (1, 8):
    fn, args, _ = inference_program(variables, b)
    c, s = timed(fn, args, repeats)
    table.add(
      "HRNet-W48-cam inference (f32)",
      b,
      c,
      s,
      unit="img/s",
      key=("hrnet_infer", b),
      flops=flops_of(fn, args),
    )


def bench_train(table, variables, repeats, timed, flops_of, batch: int = 8):
  """The train step of :func:`train_program` at ``batch`` per device."""
  step, args, call = train_program(variables, batch)
  flops = flops_of(step, args)
  del args
  c, s = timed(call, [], repeats)
  table.add(
    f"HRNet-W48-cam train step f32 ({jax.device_count()} device(s))",
    batch * jax.device_count(),
    c,
    s,
    unit="img/s",
    key=("hrnet_train", batch),
    flops=flops,
  )


def reference_timings(authors_src: Path, repeats: int) -> dict:
  """One run of reference/bench_authors.py in the reference venv."""
  python = ROOT / ".refvenv" / "bin" / "python"
  with tempfile.TemporaryDirectory(prefix="bench_authors_") as tmp:
    tmp = Path(tmp)
    np.savez(tmp / "batch.npz", **authors_batch(8))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = tmp / "torch.json"
    subprocess.run(
      [
        str(python),
        str(ROOT / "reference" / "bench_authors.py"),
        "--authors-src",
        str(authors_src),
        "--batch",
        str(tmp / "batch.npz"),
        "--out",
        str(out),
        "--repeats",
        str(repeats),
      ],
      check=True,
      capture_output=True,
      text=True,
      env=env,
    )
    return json.loads(out.read_text())
