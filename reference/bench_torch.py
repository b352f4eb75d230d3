"""Times mmhuman3d 0.11.0's PyTorch HybrIK on this CPU (the reference column
of ``bench/run_all.py --reference``). Runs in the reference venv only::

  .refvenv/bin/python reference/bench_torch.py --checkpoint CKPT.pth \\
      --ik IK.npz --batch BATCH.npz --out OUT.json [--threads 2] [--repeats 5]

IK.npz: ``pose_skeleton`` [B, 29, 3], ``betas`` [B, 10], ``phis`` [B, 23, 2]
(tiled to each IK batch). BATCH.npz: a training batch as hybrik-jax's
``tests/helpers.golden_train_batch`` makes it (NHWC ``img``, the camera
inputs and the ``target_*`` arrays), tiled to each batch size.

Rows (the same work as hybrik-jax's rows of the same name; milliseconds per
call, median of ``--repeats`` calls after one warm-up call):

* ``ik_smpl/B``: ``HybrIKSMPL.forward`` (IK + SMPL, eval branch,
  ``return_verts=True``) under ``torch.no_grad()``, B = 64, 512;
* ``infer/B``: the eval-mode forward (backbone, head, body model) under
  ``torch.no_grad()``, B = 1, 8;
* ``train_f32/B``: one training step in train mode: forward, mmhuman3d's
  own ``compute_losses`` (beta, theta, twist, uvd with the config's
  weights), backward, ``torch.optim.Adam`` (lr 1e-3) step, B = 8;
* ``gemm``: ``torch.mm`` of two 2048 x 2048 float32 matrices (GFLOP/s);
* ``conv3x3``: ``F.conv2d`` 3 x 3, stride 1, pad 1, batch 8, 32 x 32 x 128
  -> 128 channels, channels-last (oneDNN's favourite layout) (GFLOP/s).

Writes one JSON object: ``{"torch": version, "threads": N, "ms": {row:
ms}, "gflops": {"gemm": ..., "conv3x3": ...}}``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import run_hybrik  # noqa: E402  (installs the reference venv's stubs)
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

TRAIN_TARGETS = (
  "target_uvd_29",
  "target_weight_29",
  "target_beta",
  "target_theta",
  "target_theta_weight",
  "target_smpl_weight",
  "target_twist",
  "target_twist_weight",
)
CAMERA = ("trans_inv", "intrinsic_param", "joint_root", "depth_factor")


def median_ms(fn, repeats: int) -> float:
  fn()  # warm-up
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t0)
  return 1e3 * float(np.median(times))


def tile(x: np.ndarray, n: int) -> torch.Tensor:
  reps = -(-n // x.shape[0])
  return torch.from_numpy(np.ascontiguousarray(np.concatenate([x] * reps)[:n]))


def main(argv=None) -> int:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--checkpoint", type=Path, required=True)
  ap.add_argument("--ik", type=Path, required=True)
  ap.add_argument("--batch", type=Path, required=True)
  ap.add_argument("--out", type=Path, required=True)
  ap.add_argument("--threads", type=int, default=2)
  ap.add_argument("--repeats", type=int, default=5)
  ap.add_argument("--skip", default="", help="rows to skip: ik,infer,train")
  args = ap.parse_args(argv)
  skip = set(filter(None, args.skip.split(",")))
  torch.set_num_threads(args.threads)
  run_hybrik.route_cuda_to_cpu(torch.float32)
  state, _ = run_hybrik.read_checkpoint(args.checkpoint)
  with tempfile.TemporaryDirectory(prefix="bench_torch_") as tmp:
    model, _ = run_hybrik.load_model(state, Path(tmp))
  model.eval()
  ms, reps = {}, args.repeats

  if "ik" not in skip:
    with np.load(args.ik) as f:
      ik = {k: f[k] for k in ("pose_skeleton", "betas", "phis")}
    for b in (64, 512):
      sk, be, ph = (tile(ik[k], b) for k in ("pose_skeleton", "betas", "phis"))

      def ik_smpl(sk=sk, be=be, ph=ph):
        with torch.no_grad():
          model.smpl(
            pose_skeleton=sk,
            betas=be,
            phis=ph,
            global_orient=None,
            return_verts=True,
          )

      ms[f"ik_smpl/{b}"] = median_ms(ik_smpl, max(reps, 10))

  with np.load(args.batch) as f:
    data = {k: f[k] for k in f.files}
  img_nchw = np.transpose(data["img"], (0, 3, 1, 2))

  def inputs(b):
    return tile(img_nchw, b), [tile(data[k], b) for k in CAMERA]

  if "infer" not in skip:
    for b in (1, 8):
      img, cam = inputs(b)

      def infer(img=img, cam=cam):
        with torch.no_grad():
          feats = model.backbone(img)[0]
          model.head(feats, *cam, model.smpl)

      ms[f"infer/{b}"] = median_ms(infer, reps)

  if "train" not in skip:
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=1e-3)
    b = 8
    img, cam = inputs(b)
    targets = {k: tile(data[k], b) for k in TRAIN_TARGETS}

    def train_step():
      feats = model.backbone(img)[0]
      preds = model.head(feats, *cam, model.smpl)
      losses = model.compute_losses(preds, targets)
      loss = sum(losses.values())
      opt.zero_grad()
      loss.backward()
      opt.step()

    ms[f"train_f32/{b}"] = median_ms(train_step, reps)
    model.eval()

  gflops = {}
  n = 2048
  a, c = torch.randn(n, n), torch.randn(n, n)
  gflops["gemm"] = 2 * n**3 / median_ms(lambda: torch.mm(a, c), 10) / 1e6
  x = torch.randn(8, 128, 32, 32).to(memory_format=torch.channels_last)
  w = torch.randn(128, 128, 3, 3).to(memory_format=torch.channels_last)
  flops = 2 * 8 * 32 * 32 * 128 * 128 * 9
  with torch.no_grad():
    t = median_ms(lambda: F.conv2d(x, w, padding=1), 10)
  gflops["conv3x3"] = flops / t / 1e6
  result = {
    "torch": torch.__version__,
    "threads": torch.get_num_threads(),
    "ms": ms,
    "gflops": gflops,
  }
  args.out.write_text(json.dumps(result, indent=1))
  print(json.dumps(result))
  return 0


if __name__ == "__main__":
  sys.exit(main())
