"""Times the original authors' HRNet-W48 camera model (Jeff-sjtu/HybrIK's own
PyTorch code) on this CPU: the PyTorch column of ``bench/run_all.py``'s
HRNet rows. Runs in the reference venv, against a checkout of their code
that is not part of this repository::

  .refvenv/bin/python reference/bench_authors.py --authors-src DIR \\
      --batch BATCH.npz --out OUT.json [--threads 2] [--repeats 5] \\
      [--skip infer,train]

The model is ``HRNetSMPLCam`` built from their
``256x192_adam_lr1e-3-hrw48_cam_2x_w_pw3d_3dhp.yaml`` with the recipe
weights of ``tests/authors_recipe.py`` (as ``make_authors_goldens.py``).
BATCH.npz: ``img`` [B, 256, 256, 3] normalised NHWC, ``bboxes`` [B, 4],
``img_center`` [B, 2] and the training labels their
``LaplaceLossDimSMPLCam`` reads (``target_*``, ``camera_scale``,
``camera_trans``), tiled to each batch size.

Rows (milliseconds per call, median of ``--repeats`` after one warm-up):

* ``hrnet_infer/B``: the eval forward with boxes and image centre, no flip
  test, under ``torch.no_grad()``, B = 1, 8;
* ``hrnet_train/8``: train-mode forward (images only, as their
  ``scripts/train_smpl_cam.py`` calls it), their ``LaplaceLossDimSMPLCam``
  with the config's weights, backward, ``torch.optim.Adam`` (lr 1e-3) step.

Writes ``{"torch": version, "threads": N, "ms": {row: ms}}``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import authors_model as ref  # noqa: E402
import bench_torch  # noqa: E402  (median_ms, tile)
import make_authors_goldens as mag  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from authors_recipe import build_state_dict  # noqa: E402

ARCH = "hrnet_w48_cam"
LABELS = (
  "target_uvd_29",
  "target_weight_29",
  "target_beta",
  "target_theta",
  "target_theta_weight",
  "target_smpl_weight",
  "target_twist",
  "target_twist_weight",
  "target_xyz_weight_24",
  "camera_scale",
  "camera_trans",
)


def main(argv=None) -> int:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--authors-src", type=Path, required=True)
  ap.add_argument("--batch", type=Path, required=True)
  ap.add_argument("--out", type=Path, required=True)
  ap.add_argument("--threads", type=int, default=2)
  ap.add_argument("--repeats", type=int, default=5)
  ap.add_argument("--skip", default="", help="rows to skip: infer,train")
  args = ap.parse_args(argv)
  skip = set(filter(None, args.skip.split(",")))
  torch.set_num_threads(args.threads)
  src = ref.use_authors_src(args.authors_src)
  ref.install_torchvision_models_stub()
  with np.load(args.batch) as f:
    data = {k: f[k] for k in f.files}
  ms, reps = {}, args.repeats
  with tempfile.TemporaryDirectory(prefix="bench_authors_") as tmp:
    work = Path(tmp)
    ref.prepare_workdir(src, work, ref.fixture_model_files())
    cfg = ref.load_cfg(src, ARCH)
    model = ref.build_model(src, work, ARCH)
    # The committed recipe + BatchNorm statistics (authors_recipe defaults).
    mag.load_recipe(model, build_state_dict(ARCH))
  img_nchw = np.transpose(data["img"], (0, 3, 1, 2))

  def inputs(b):
    return (
      bench_torch.tile(img_nchw, b),
      bench_torch.tile(data["bboxes"], b),
      bench_torch.tile(data["img_center"], b),
    )

  if "infer" not in skip:
    model.eval()
    for b in (1, 8):
      x, boxes, centers = inputs(b)

      def infer(x=x, boxes=boxes, centers=centers):
        with torch.no_grad():
          model(x, flip_test=False, bboxes=boxes, img_center=centers)

      ms[f"hrnet_infer/{b}"] = bench_torch.median_ms(infer, reps)

  if "train" not in skip:
    from hybrik.models.criterion import LaplaceLossDimSMPLCam

    criterion = LaplaceLossDimSMPLCam(cfg.LOSS.ELEMENTS)
    model.train()
    opt = torch.optim.Adam(
      [p for p in model.parameters() if p.requires_grad], lr=1e-3
    )
    b = 8
    x, _, _ = inputs(b)
    labels = {k: bench_torch.tile(data[k], b) for k in LABELS}

    def train_step():
      out = model(x)  # their train script passes no boxes
      loss = criterion(out, labels)
      opt.zero_grad()
      loss.backward()
      opt.step()

    ms["hrnet_train/8"] = bench_torch.median_ms(train_step, reps)
    model.eval()
  result = {
    "torch": torch.__version__,
    "threads": torch.get_num_threads(),
    "ms": ms,
  }
  args.out.write_text(json.dumps(result, indent=1))
  print(json.dumps(result))
  return 0


if __name__ == "__main__":
  sys.exit(main())
