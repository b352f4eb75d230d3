"""Goldens of the authors' evaluation protocol, from the authors' own code.

Runs in the PyTorch reference venv against a checkout of Jeff-sjtu/HybrIK
that is NOT part of this repository (as ``make_authors_goldens.py``)::

  .refvenv/bin/python reference/make_authors_eval_goldens.py \\
      --authors-src /tmp/hybrik_src [--data tests/fixtures/authors/eval]

``--data`` holds a tiny synthetic test set written by hybrik-jax's
generator (``synthetic_test.npz``: 3DPW layout, metres;
``synthetic_train.npz``: H36M layout, mm; ``images/``). For each
architecture (the recipe checkpoints of ``tests/authors_recipe.py``) and each
file, this does what the authors' ``scripts/validate_smpl_cam.py`` does:

1. the samples' boxes, image paths and ground truth as mmhuman3d's
   ``HybrIKHumanImageDataset`` reads the HumanData file (``data_infos``:
   ``bbox`` x1 y1 x2 y2, ``joint_relative_17`` at ``h36m_idxs``) -- the
   fields the authors' json annotations carry;
2. the image read as their datasets do (``cv2.imread`` + BGR -> RGB), their
   ``SimpleTransform3DSMPLCam`` crop with the box enlargement of their test
   set (``scale_mult`` 1.25 for ``PW3D``, 1 for ``H36mSMPL``; the eval
   branch of their ``__call__`` crops as ``test_transform``), the model's
   eval forward with ``bboxes`` and ``img_center`` (and, HRNet, also with
   ``flip_test=True``, the intended flip shift as in the other goldens);
3. their own ``PW3D.evaluate_xyz_17`` / ``H36mSMPL.evaluate_xyz_17`` (called
   on a stand-in holding the ``db`` fields they read) on
   ``pred_xyz_jts_17``; MPJPE / PA-MPJPE parsed from their summary line.

Writes ``<out>/eval_goldens.npz``: per case ``<case>/xyz_17`` [N, 17, 3],
``<case>/mpjpe``, ``<case>/pa_mpjpe`` (mm), ``<case>/bboxes`` (the
enlarged boxes given to the network), ``<case>/xyz_17_f64_noise`` (max
|float32 - float64| of ``xyz_17``: the same forward in float64, as
``make_authors_goldens.py`` measures it) and ``meta`` JSON. Exit 0, or 1
when a check fails (outputs must differ between images).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import json
import re
import sys
import tempfile
import types
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "reference"))
sys.path.insert(0, str(REPO / "tests"))

import authors_model as ref  # noqa: E402
import cv2  # noqa: E402
import make_authors_goldens as mag  # noqa: E402
import numpy as np  # noqa: E402
import run_hybrik  # noqa: E402
import torch  # noqa: E402
from authors_recipe import build_state_dict  # noqa: E402

SRC: Path = Path()  # --authors-src
FILES = {"pw3d": "synthetic_test.npz", "h36m": "synthetic_train.npz"}
SCALE_MULT = {"pw3d": 1.25, "h36m": 1.0}


def import_authors_modules():
  """The authors' transform and dataset classes without running the
  packages' ``__init__`` (it builds an SMPL-X layer from files we lack and
  needs joblib / pycocotools, used only to read their json)."""
  import hybrik
  import hybrik.utils

  for name in ("joblib", "pycocotools", "pycocotools.coco"):
    stub = types.ModuleType(name)
    stub.COCO = None
    sys.modules.setdefault(name, stub)
  presets = types.ModuleType("hybrik.utils.presets")
  presets.__path__ = [str(Path(hybrik.utils.__file__).parent / "presets")]
  sys.modules.setdefault("hybrik.utils.presets", presets)
  cam = importlib.import_module(
    "hybrik.utils.presets.simple_transform_3d_smpl_cam"
  )
  presets.SimpleTransform3DSMPLCam = cam.SimpleTransform3DSMPLCam
  presets.SimpleTransform3DSMPL = None  # named by the datasets, unused
  datasets = types.ModuleType("hybrik.datasets")
  datasets.__path__ = [str(SRC / "hybrik" / "datasets")]
  sys.modules.setdefault("hybrik.datasets", datasets)
  pw3d = importlib.import_module("hybrik.datasets.pw3d")
  h36m = importlib.import_module("hybrik.datasets.h36m_smpl")
  return cam.SimpleTransform3DSMPLCam, {
    "pw3d": pw3d.PW3D,
    "h36m": h36m.H36mSMPL,
  }


def read_samples(data: Path, dataset_name: str, folder: Path) -> list[dict]:
  """mmhuman3d's ``data_infos`` of one HumanData file."""
  args = types.SimpleNamespace(
    data=data / FILES[dataset_name], image_root=data, dataset_name=dataset_name
  )
  dataset = run_hybrik.build_dataset(args, folder, None)
  idxs = run_hybrik.H36M_IDXS
  return [
    {
      "image_path": info["image_path"],
      "bbox": [float(v) for v in info["bbox"][:4]],
      "joint_relative_17": np.asarray(info["joint_relative_17"])[idxs],
    }
    for info in dataset.data_infos
  ]


def authors_metrics(dataset_cls, dataset_name, bbox_3d_shape, samples, xyz17):
  """Their ``evaluate_xyz_17`` on a stand-in dataset; (MPJPE, PA-MPJPE)."""
  n = len(samples)
  stand_in = types.SimpleNamespace(
    EVAL_JOINTS=dataset_cls.EVAL_JOINTS,
    root_idx_17=0,
    bbox_3d_shape=bbox_3d_shape,
    # H36M groups errors by the action in the image name.
    action_name=["Directions"] * 16,
    protocol=2,
    db={
      "img_id": np.arange(n),
      "bbox": np.array([s["bbox"] for s in samples]),
      "root_cam": np.zeros((n, 3)),
      "joint_relative_17": np.stack([s["joint_relative_17"] for s in samples]),
      "img_path": np.array(
        [f"s_09_act_02_subact_01/{i}.jpg" for i in range(n)]
      ),
    },
  )
  preds = {i: {"xyz_17": xyz17[i]} for i in range(n)}
  buf = io.StringIO()
  with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(buf):
    dataset_cls.evaluate_xyz_17(stand_in, preds, str(Path(tmp) / "res.json"))
  text = buf.getvalue()
  m = re.search(r"PA-MPJPE: ([0-9.]+) \| MPJPE: ([0-9.]+)", text)
  if m is None:
    raise mag.CheckError(f"cannot parse their summary: {text!r}")
  return float(m.group(2)), float(m.group(1))


def run_arch(arch, transform_cls, classes, data, folder, out) -> dict:
  cfg = ref.load_cfg(SRC, arch)
  model = ref.build_model(SRC, folder / "work", arch)
  # The committed recipe + BatchNorm statistics (authors_recipe defaults).
  mag.load_recipe(model, build_state_dict(arch))
  model.flip_heatmap = ref.intended_flip_heatmap(model)
  bbox_3d_shape_m = [v * 1e-3 for v in cfg.MODEL.BBOX_3D_SHAPE]
  summary = {}
  for dataset_name in FILES:
    samples = read_samples(
      data, dataset_name, folder / f"{arch}_{dataset_name}"
    )
    transform = transform_cls(
      types.SimpleNamespace(
        joint_pairs_17=None,
        joint_pairs_24=None,
        joint_pairs_29=None,
        bbox_3d_shape=bbox_3d_shape_m,
      ),
      scale_factor=0,
      color_factor=0,
      occlusion=False,
      input_size=cfg.MODEL.IMAGE_SIZE,
      output_size=cfg.MODEL.HEATMAP_SIZE,
      depth_dim=cfg.MODEL.EXTRA.DEPTH_DIM,
      bbox_3d_shape=bbox_3d_shape_m,
      rot=0,
      sigma=cfg.MODEL.EXTRA.SIGMA,
      train=False,
      add_dpg=False,
      loss_type=cfg.LOSS["TYPE"],
      scale_mult=SCALE_MULT[dataset_name],
    )
    inputs, boxes, centers = [], [], []
    for s in samples:
      img = cv2.cvtColor(cv2.imread(s["image_path"]), cv2.COLOR_BGR2RGB)
      inp, box, center = transform.test_transform(img, s["bbox"])
      inputs.append(inp)
      boxes.append(torch.Tensor(box))
      centers.append(torch.from_numpy(center).float())
    # Their H36M dataset keeps BBOX_3D_SHAPE in mm, PW3D in metres.
    shape = (
      bbox_3d_shape_m if dataset_name == "pw3d" else cfg.MODEL.BBOX_3D_SHAPE
    )
    flips = (False, True) if arch == "hrnet_w48_cam" else (False,)
    for flip in flips:
      with torch.no_grad():
        o = model(
          torch.stack(inputs),
          flip_test=flip,
          bboxes=torch.stack(boxes),
          img_center=torch.stack(centers),
        )
      xyz17 = o.pred_xyz_jts_17.reshape(len(samples), 17, 3).numpy()
      # The reference's own float32 noise on these inputs (float64 run).
      with ref.precision(model, torch.float64), torch.no_grad():
        o64 = model(
          torch.stack(inputs).double(),
          flip_test=flip,
          bboxes=torch.stack(boxes).double(),
          img_center=torch.stack(centers).double(),
        )
      noise = float(
        np.abs(
          o64.pred_xyz_jts_17.reshape(len(samples), 17, 3).numpy() - xyz17
        ).max()
      )
      spread = float(np.abs(xyz17 - xyz17[:1]).max())
      if spread < 1e-3:
        raise mag.CheckError(
          f"{arch} {dataset_name}: same joints for all images"
        )
      mpjpe, pa = authors_metrics(
        classes[dataset_name], dataset_name, shape, samples, xyz17
      )
      case = f"{arch}_{dataset_name}" + ("_flip" if flip else "")
      out[f"{case}/xyz_17"] = xyz17
      out[f"{case}/mpjpe"] = np.float64(mpjpe)
      out[f"{case}/pa_mpjpe"] = np.float64(pa)
      out[f"{case}/bboxes"] = torch.stack(boxes).numpy()
      out[f"{case}/xyz_17_f64_noise"] = np.float64(noise)
      summary[case] = {
        "mpjpe": mpjpe,
        "pa_mpjpe": pa,
        "spread": spread,
        "xyz_17_f64_noise": noise,
      }
  return summary


def main(argv=None) -> int:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--authors-src", type=Path, required=True)
  ap.add_argument(
    "--data", type=Path, default=ref.FIXTURES / "authors" / "eval"
  )
  ap.add_argument("--out", type=Path, default=None)
  ap.add_argument("--threads", type=int, default=2)
  ap.add_argument("--authors-commit", default=None)
  args = ap.parse_args(argv)
  torch.set_num_threads(args.threads)
  global SRC
  SRC = ref.use_authors_src(args.authors_src)
  ref.install_torchvision_models_stub()
  transform_cls, classes = import_authors_modules()
  out_dir = args.out or args.data
  out, summary = {}, {}
  with tempfile.TemporaryDirectory() as tmp:
    folder = Path(tmp)
    ref.prepare_workdir(SRC, folder / "work", ref.fixture_model_files())
    try:
      for arch in ref.CONFIGS:
        summary.update(
          run_arch(
            arch, transform_cls, classes, args.data.resolve(), folder, out
          )
        )
    except mag.CheckError as e:
      print(f"make_authors_eval_goldens: {e}", file=sys.stderr)
      return 1
  meta = {
    "authors_commit": mag.git_commit(SRC, args.authors_commit),
    "torch": torch.__version__,
    "threads": torch.get_num_threads(),
    "scale_mult": SCALE_MULT,
    "files": FILES,
    "metrics_mm": summary,
  }
  out["meta"] = np.array(json.dumps(meta))
  np.savez_compressed(out_dir / "eval_goldens.npz", **out)
  print(json.dumps(summary, indent=1))
  return 0


if __name__ == "__main__":
  sys.exit(main())
