"""Goldens of the authors' camera-model TRAINING targets and loss.

Runs in the PyTorch reference venv (``.refvenv``, as
``make_authors_goldens.py``, whose model set-up it reuses) against a
checkout of Jeff-sjtu/HybrIK that is NOT part of this repository::

  .refvenv/bin/python reference/make_cam_train_goldens.py \\
      --authors-src /tmp/hybrik_src [--out tests/fixtures/authors]

Writes ``cam_train.npz``:

* ``tgt_*``: the authors' own target code
  (``hybrik/utils/presets/simple_transform_3d_smpl_cam.py``:
  ``_integral_uvd_target_generator``, ``_integral_xyz_target_generator``,
  the weight products, ``calc_cam_scale_trans2``, ``target_uvd_29 *
  target_weight_29``; ``hybrik.utils.transforms.batch_rodrigues_numpy`` for
  ``target_theta``), run through their unbound methods on an object holding
  the attributes they read (``bbox_3d_shape`` (2200, 2200, 2200) mm,
  ``depth_factor2meter``, ``focal_length`` 1000), on ``NUM_TGT`` crop-space
  samples made from SMPL-structured skeletons (the train-mode IK joints of
  the recipe HRNet model on the test images, turned and placed in front of
  a camera, projected with their ``projection``, 0.5-px noise, some joints
  invisible). Two samples exercise the branches: one with a single visible
  joint (no camera: scale 0, error -1), one with 25-px noise (error > 70 mm:
  ``camera_valid`` 0).
* ``<arch>_out_*``: the train-mode outputs (``model.train()``, batch-
  statistic BatchNorm; ResNet dropout active) of each recipe model on the 2
  test images that the loss reads, and ``<arch>_tgt_*`` their targets
  (sample 0 from the target code above; sample 1 a sample without SMPL
  and with too few 3-D joints for the camera terms).
* ``<arch>_loss``: the authors' ``LaplaceLossDimSMPLCam`` with the
  HRNet-W48 yaml's ``LOSS.ELEMENTS`` (float32), ``<arch>_loss_f64`` the same
  in float64, ``<arch>_term_<name>`` each weighted term (float64; the
  criterion run with one weight at a time minus the run with all four
  weights 0, which leaves the camera terms), and ``<arch>_l1_loss`` their
  ``L1LossDimSMPLCam`` (float32).

Exit status 0 on success (a JSON summary on stdout).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "reference"))
sys.path.insert(0, str(REPO / "tests"))

import make_authors_goldens as mag  # noqa: E402  (refenv stubs on import)
import numpy as np  # noqa: E402
import torch  # noqa: E402
from authors_recipe import build_state_dict, normalise  # noqa: E402

BBOX_3D_SHAPE = (2200, 2200, 2200)  # the yaml's MODEL.BBOX_3D_SHAPE (mm)
FOCAL = 1000  # MODEL.FOCAL_LENGTH
IMG_RES = 256
NUM_TGT = 6
TGT_SEED = 4000
LOSS_TERMS = {
  "beta": "BETA_WEIGHT",
  "theta": "THETA_WEIGHT",
  "twist": "TWIST_WEIGHT",
  "uvd": "UVD24_WEIGHT",
}
OUT_KEYS = (
  "pred_shape",
  "pred_theta_mats",
  "pred_phi",
  "pred_uvd_jts",
  "pred_sigma",
  "cam_scale",
  "cam_trans",
  "pred_xyz_jts_29",
  "pred_xyz_jts_24_struct",
)


def _transform():
  """A ``SimpleTransform3DSMPLCam`` holding only the attributes its target
  methods read (``__init__`` needs a dataset object; not run)."""
  t = _transform_cls().__new__(_transform_cls())
  t.bbox_3d_shape = BBOX_3D_SHAPE
  b = BBOX_3D_SHAPE[2]
  t.depth_factor2meter = b if b < 500 else b * 1e-3
  t.focal_length = FOCAL
  return t


def _transform_cls():
  """``SimpleTransform3DSMPLCam`` without importing hybrik.utils.presets'
  ``__init__`` (its SMPL-X transform needs model files we do not have)."""
  import importlib
  import types

  import hybrik.utils

  presets = types.ModuleType("hybrik.utils.presets")
  presets.__path__ = [str(Path(hybrik.utils.__file__).parent / "presets")]
  sys.modules.setdefault("hybrik.utils.presets", presets)
  return importlib.import_module(
    "hybrik.utils.presets.simple_transform_3d_smpl_cam"
  ).SimpleTransform3DSMPLCam


def authors_targets(joints29, vis29, xyz24, pose) -> dict[str, np.ndarray]:
  """The SMPL branch of their ``__call__`` after the crop, on one sample.

  joints29 [29, 3] (u, v crop px, d mm root-relative), vis29 [29, 3],
  xyz24 [24, 3] mm root-relative, pose [24, 3] axis-angle."""
  from hybrik.utils.transforms import batch_rodrigues_numpy

  t = _transform()
  gt29 = np.zeros((29, 3, 2), np.float32)
  gt29[:, :, 0] = joints29
  gt29[:, :, 1] = vis29
  uvd29, w29 = t._integral_uvd_target_generator(gt29, 29, IMG_RES, IMG_RES)
  xyz, w24 = t._integral_xyz_target_generator(xyz24, vis29[:24, :], 24)
  w29 *= vis29.reshape(-1)
  w24 *= vis29[:24, :].reshape(-1)
  scale, trans, valid, err, _ = t.calc_cam_scale_trans2(
    xyz.reshape(-1, 3).copy(),
    uvd29.reshape(-1, 3)[:24].copy(),
    w29.reshape(-1, 3)[:24].copy(),
  )
  uvd29 = (uvd29 * w29).reshape(-1, 3)
  f32 = lambda x: np.asarray(x, np.float32)  # noqa: E731
  return {
    "target_uvd_29": f32(uvd29.reshape(-1)),
    "target_weight_29": f32(w29),
    "target_xyz_24": f32(xyz),
    "target_weight_24": f32(w24),
    "target_xyz_weight_24": f32(w24),
    "target_theta": f32(batch_rodrigues_numpy(pose).reshape(24 * 9)),
    "target_theta_weight": np.ones(24 * 9, np.float32),
    "camera_scale": f32([scale]),
    "camera_trans": f32(trans),
    "camera_valid": f32([valid]),
    "camera_error": f32([err]),
  }


def _rot(rng) -> np.ndarray:
  """A random rotation: a turn about the vertical axis and a small tilt."""
  a, b = rng.uniform(-np.pi, np.pi), rng.uniform(-0.3, 0.3)
  ry = np.array(
    [[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]]
  )
  rx = np.array(
    [[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]]
  )
  return rx @ ry


def make_samples(skeletons_m: np.ndarray) -> dict[str, np.ndarray]:
  """``NUM_TGT`` crop-space samples from [K, 29, 3] root-relative
  skeletons (metres): turned, put in front of a camera (scale 0.6-1.3,
  offset +-0.15 m), projected with the authors' ``projection``."""
  t = _transform()
  rng = np.random.default_rng(TGT_SEED)
  out = {k: [] for k in ("joints29", "vis29", "xyz24", "pose", "cam")}
  for i in range(NUM_TGT):
    sk = skeletons_m[i % len(skeletons_m)] @ _rot(rng).T  # [29, 3] m
    sk = sk - sk[:1]
    cam = np.array(
      [
        rng.uniform(0.6, 1.3),
        rng.uniform(-0.15, 0.15),
        rng.uniform(-0.15, 0.15),
      ]
    )
    uvd = t.projection(sk, cam, FOCAL)  # normalised u, v; d / 2200
    noise = 25.0 if i == NUM_TGT - 1 else 0.5
    px = (uvd[:, :2] + 0.5) * IMG_RES + rng.normal(0, noise, (29, 2))
    joints = np.concatenate([px, sk[:, 2:] * 1000.0], axis=1)  # d in mm
    vis = np.ones((29, 3))
    if i == NUM_TGT - 2:  # one visible joint: no camera
      vis[1:] = 0
    else:
      vis[rng.choice(29, 4, replace=False)] = 0
    out["joints29"].append(joints)
    out["vis29"].append(vis)
    out["xyz24"].append(sk[:24] * 1000.0)
    out["pose"].append(rng.normal(0, 0.3, (24, 3)))
    out["cam"].append(cam)
  return {k: np.asarray(v, np.float32) for k, v in out.items()}


def train_outputs(model, arch: str) -> dict[str, torch.Tensor]:
  model.train()
  torch.manual_seed(0)
  x = torch.from_numpy(normalise(mag.make_inputs()["img_u8"]))
  with torch.no_grad():
    out = model(x)
  model.eval()
  return {k: out[k].detach().clone() for k in OUT_KEYS if k in out}


def loss_targets(arch: str, samples, tgt_first) -> dict[str, np.ndarray]:
  """Targets of the 2 loss samples: 0 = target-code sample 0; 1 = a
  sample without SMPL and 1 visible joint (camera masked)."""
  rng = np.random.default_rng(TGT_SEED + 1 + (arch == "resnet34_cam"))
  t0 = tgt_first[0]
  t1 = tgt_first[NUM_TGT - 2]  # the single-joint sample
  tw0 = rng.normal(size=(23, 2))
  tw0 /= np.linalg.norm(tw0, axis=1, keepdims=True)
  tww0 = np.ones((23, 2))
  tww0[rng.choice(23, 3, replace=False)] = 0
  out = {}
  for k in t0:
    out[k] = np.stack([t0[k], t1[k]])
  out["target_theta_weight"][1] = 0
  out["target_beta"] = np.stack([rng.normal(0, 0.8, 10), np.zeros(10)]).astype(
    np.float32
  )
  out["target_smpl_weight"] = np.array([[1.0], [0.0]], np.float32)
  out["target_twist"] = np.stack([tw0, np.zeros((23, 2))]).astype(np.float32)
  out["target_twist_weight"] = np.stack([tww0, np.zeros((23, 2))]).astype(
    np.float32
  )
  return out


def run_criterion(cls_name, elements, out, tgt, dtype):
  from easydict import EasyDict
  from hybrik.models import criterion

  crit = getattr(criterion, cls_name)(ELEMENTS=elements)
  o = EasyDict({k: v.to(dtype) for k, v in out.items()})
  labels = {k: torch.from_numpy(v).to(dtype) for k, v in tgt.items()}
  with torch.no_grad():
    return float(crit(o, labels))


def make(authors_src: Path, out_dir: Path, work: Path) -> dict:
  res: dict[str, np.ndarray] = {}
  summary: dict = {}
  cfg = mag.load_cfg(authors_src, "hrnet_w48_cam")
  elements = dict(cfg.LOSS.ELEMENTS)
  summary["elements"] = elements
  models, outs = {}, {}
  for arch in mag.CONFIGS:
    m = mag.build_model(authors_src, work, arch)
    with np.load(out_dir / f"{arch}_bn_stats.npz", allow_pickle=False) as z:
      stats = {k: z[k] for k in z.files}
    with open(out_dir / f"{arch}_keys.json") as f:
      keys = json.load(f)
    mag.load_recipe(m, build_state_dict(arch, stats, keys))
    models[arch] = m
    outs[arch] = train_outputs(m, arch)
  # Skeletons: the HRNet model's IK joints (SMPL structure), 2.2 m units.
  o = outs["hrnet_w48_cam"]
  sk = o["pred_xyz_jts_29"].numpy().reshape(-1, 29, 3).astype(np.float64)
  sk[:, :24] = o["pred_xyz_jts_24_struct"].numpy().reshape(-1, 24, 3)
  samples = make_samples(sk * BBOX_3D_SHAPE[2] * 1e-3)
  tgts = [
    authors_targets(
      samples["joints29"][i],
      samples["vis29"][i],
      samples["xyz24"][i],
      samples["pose"][i],
    )
    for i in range(NUM_TGT)
  ]
  for k, v in samples.items():
    res[f"in_{k}"] = v
  for k in tgts[0]:
    res[f"tgt_{k}"] = np.stack([t[k] for t in tgts])
  summary["camera_valid"] = res["tgt_camera_valid"][:, 0].tolist()
  summary["camera_error_mm"] = res["tgt_camera_error"][:, 0].tolist()
  summary["camera_scale_vs_true"] = [
    float(a) for a in res["tgt_camera_scale"][:, 0] - samples["cam"][:, 0]
  ]
  zero = dict(elements, **{v: 0 for v in LOSS_TERMS.values()})
  for arch, out in outs.items():
    tgt = loss_targets(arch, samples, tgts)
    for k, v in out.items():
      res[f"{arch}_out_{k}"] = v.numpy().astype(np.float32)
    for k, v in tgt.items():
      res[f"{arch}_tgt_{k}"] = v.astype(np.float32)
    name = "LaplaceLossDimSMPLCam"
    res[f"{arch}_loss"] = np.float32(
      run_criterion(name, elements, out, tgt, torch.float32)
    )
    res[f"{arch}_loss_f64"] = np.float64(
      run_criterion(name, elements, out, tgt, torch.float64)
    )
    base = run_criterion(name, zero, out, tgt, torch.float64)
    no_trans = {k: v for k, v in out.items() if k != "cam_trans"}
    scale_only = run_criterion(name, zero, no_trans, tgt, torch.float64)
    res[f"{arch}_term_scale"] = np.float64(scale_only)
    if "cam_trans" in out:
      res[f"{arch}_term_trans"] = np.float64(base - scale_only)
    for term, key in LOSS_TERMS.items():
      one = dict(zero, **{key: elements[key]})
      res[f"{arch}_term_{term}"] = np.float64(
        run_criterion(name, one, out, tgt, torch.float64) - base
      )
    res[f"{arch}_l1_loss"] = np.float32(
      run_criterion("L1LossDimSMPLCam", elements, out, tgt, torch.float32)
    )
    summary[arch] = {
      k[len(arch) + 1 :]: float(v)
      for k, v in res.items()
      if k.startswith(arch) and np.ndim(v) == 0
    }
  meta = {
    "authors_commit": mag.git_commit(authors_src, mag.COMMIT),
    "config": mag.CONFIGS["hrnet_w48_cam"],
    "torch": torch.__version__,
    "numpy": np.__version__,
    "summary": summary,
  }
  res["meta"] = np.array(json.dumps(meta))
  np.savez_compressed(out_dir / "cam_train.npz", **res)
  return summary


def main(argv=None) -> int:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--authors-src", type=Path, required=True)
  ap.add_argument("--out", type=Path, default=mag.FIXTURES / "authors")
  ap.add_argument("--threads", type=int, default=2)
  ap.add_argument("--authors-commit")
  args = ap.parse_args(argv)
  mag.COMMIT = args.authors_commit
  torch.set_num_threads(args.threads)
  src = args.authors_src.resolve()
  sys.path.insert(0, str(src))
  mag.install_torchvision_models_stub()
  with tempfile.TemporaryDirectory() as tmp:
    work = Path(tmp)
    mag.prepare_workdir(src, work)
    summary = make(src, args.out, work)
  print(json.dumps(summary, indent=1))
  return 0


if __name__ == "__main__":
  sys.exit(main())
