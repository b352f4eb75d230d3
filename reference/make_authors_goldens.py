"""Goldens of the authors' HybrIK camera models, from the authors' own code.

Runs in the PyTorch reference venv (``scripts/setup_reference.sh`` builds
``.refvenv``; this script also needs ``easydict`` and ``PyYAML``) against a
checkout of Jeff-sjtu/HybrIK that is NOT part of this repository::

  .refvenv/bin/python reference/make_authors_goldens.py \\
      --authors-src /tmp/hybrik_src [--out tests/fixtures/authors] \\
      [--arch hrnet_w48_cam resnet34_cam] [--threads 2]

For each architecture (``HRNetSMPLCam`` from the config
``256x192_adam_lr1e-3-hrw48_cam_2x_w_pw3d_3dhp.yaml``, and
``Simple3DPoseBaseSMPLCam`` from ``..._res34_smpl_3d_cam_2x_mix_w_pw3d.yaml``):

1. builds the authors' model exactly as their ``builder.build_sppe(cfg.MODEL)``
   does, in a scratch folder holding the ``model_files/`` their constructors
   read (the synthetic SMPL model ``basicModel_neutral_lbs_10_207_0_v1.0.0.pkl``
   = tests/fixtures/smpl/SMPL_NEUTRAL.pkl.gz unzipped, the synthetic
   ``J_regressor_h36m.npy`` and ``h36m_mean_beta.npy`` of tests/fixtures) and
   ``hybrik/models/layers/hrnet/w48.yaml``. torchvision is not installed: a
   stub ``torchvision.models.resnet34`` returns an empty module (the ImageNet
   weights the ResNet model would load are replaced by the recipe anyway);
2. writes ``<arch>_keys.json`` (key, shape, dtype of its ``state_dict()``);
3. loads the recipe (``tests/authors_recipe.py``) with BatchNorm statistics
   mean 0 / var 1, then CALIBRATES them: every BatchNorm gets cumulative
   averaging (``momentum=None``), the backbone (+ the ResNet model's deconv
   stack) runs once in train mode on 8 calibration images, and the running
   statistics are saved to ``<arch>_bn_stats.npz``;
4. rebuilds the full recipe from those files (what the tests rebuild), loads
   it into a fresh model (strict), and runs the eval forward on 2 test
   images (different from the calibration ones), with ``bboxes`` and
   ``img_center`` as the authors' demo passes them: plain, without boxes,
   (HRNet) with ``flip_test=True`` and with ``decsigma.bias + 10`` (every
   update_scale weight 0: the regressed camera is kept);
5. repeats each case in float64 (same code; ``.double()``, the authors'
   explicit float32 constants mapped to float64, ``Tensor.float()`` keeping
   float64) to measure the reference's own float32 noise, and checks that
   outputs differ between the two images and between flip and no flip;
6. writes ``<arch>.npz`` (inputs, subsampled intermediates, outputs, ``meta``
   JSON with versions, commit, the float32-vs-float64 maxima and checks).

Flip test: the authors' ``flip_heatmap`` shifts with the in-place
``h[..., 1:] = h[..., 0:-1]``, whose CPU result depends on the SIMD width
and dtype. The goldens replace the method with the intended shift (the
right-hand side cloned first: ``new[x] = old[x - 1]``, ``new[0] = old[0]``);
``meta['flip_inplace_vs_intended']`` records how far the literal in-place
code lands from it on this machine.

``--demo`` instead writes ``demo_<arch>.npz`` only (the other files are
left as they are): the authors' image demo path (``scripts/demo_image.py``)
on a synthetic 640 x 480 picture with a tight box, using the committed
recipe + BatchNorm statistics: their ``SimpleTransform3DSMPLCam
.test_transform`` (crop, enlarged box, image centre), the forward with the
boxes (HRNet: ``flip_test=True`` as their demo, with the intended flip
shift), ``transl``, their focal ``1000 / 256 * box width``, and the pixel
positions of the mesh as their PyTorch3D renderer projects it (rotation by
180 degrees about z, ``PerspectiveCameras`` with NDC focal
``2 f / min(H, W)``: ``u = f X / Z + W / 2`` in continuous pixel
coordinates, stored as integer-centred ``u - 0.5``).

Exit status 0 on success (a JSON summary on stdout), 1 on a failed check.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import types
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "reference"))
sys.path.insert(0, str(REPO / "tests"))

import authors_model  # noqa: E402
import numpy as np  # noqa: E402
import refenv  # noqa: E402, F401  (stubs torchvision / pytorch3d)
import torch  # noqa: E402
from authors_model import (  # noqa: E402
  CONFIGS,
  FIXTURES,
  bn_modules,
  build_model,
  intended_flip_heatmap,
  load_cfg,
)
from authors_recipe import build_state_dict, normalise  # noqa: E402

NUM_CALIB = 8
NUM_TEST = 2
CALIB_SEED = 1000
TEST_SEED = 2000
# Subsampling of the stored intermediates (keeps each file < 2 MB).
HEATMAP_SUB = (
  slice(None),
  slice(None, None, 4),
  slice(None, None, 8),
  slice(None, None, 8),
)
FEAT_SUB = (slice(None), slice(None, None, 4))
VERT_SUB = 3  # every 3rd vertex
DEMO_SEED = 3000
DEMO_TIGHT_BOX = (130.0, 20.0, 350.0, 470.0)  # xyxy in the 640 x 480 image
COMMIT: str | None = None  # --authors-commit


class CheckError(RuntimeError):
  pass


# ---------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------


def _segment_mask(h, w, p0, p1, radius):
  yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
  p0 = np.asarray(p0, np.float32)
  d = np.asarray(p1, np.float32) - p0
  t = ((xx - p0[0]) * d[0] + (yy - p0[1]) * d[1]) / max(float(d @ d), 1e-6)
  t = np.clip(t, 0.0, 1.0)
  dist = np.hypot(xx - (p0[0] + t * d[0]), yy - (p0[1] + t * d[1]))
  return np.clip(radius + 0.5 - dist, 0.0, 1.0)


def person_image(seed: int, size: int = 256) -> np.ndarray:
  """A 0-1 RGB [size, size, 3] picture: smooth textured background and a
  stick-figure person with a random pose and clothing colours."""
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
  img = np.zeros((size, size, 3), np.float32)
  for c in range(3):
    base = rng.uniform(0.2, 0.8)
    gx, gy = rng.uniform(-0.3, 0.3, 2)
    waves = sum(
      rng.uniform(0.02, 0.08)
      * np.sin(
        2 * np.pi * (rng.uniform(1, 6) * xx + rng.uniform(1, 6) * yy)
        + rng.uniform(0, 2 * np.pi)
      )
      for _ in range(3)
    )
    img[..., c] = base + gx * (xx - 0.5) + gy * (yy - 0.5) + waves
  s = size / 256.0
  cx = size * rng.uniform(0.4, 0.6)
  pelvis = np.array([cx, size * rng.uniform(0.52, 0.6)])
  neck = pelvis + np.array([rng.uniform(-15, 15), -rng.uniform(70, 85)]) * s
  head = neck + np.array([rng.uniform(-8, 8), -22 * s])
  parts = [(pelvis, neck, 20 * s, rng.uniform(0, 1, 3))]  # torso
  limb_col = rng.uniform(0, 1, 3)
  for side in (-1, 1):  # arms from the shoulders, legs from the hips
    sh = neck + np.array([side * 22 * s, 6 * s])
    a1, a2 = rng.uniform(-2.6, 2.6, 2)
    el = sh + 45 * s * np.array([np.sin(a1), np.cos(a1)])
    wr = el + 40 * s * np.array([np.sin(a1 + a2 / 2), np.cos(a1 + a2 / 2)])
    parts += [(sh, el, 7 * s, limb_col), (el, wr, 6 * s, limb_col)]
    hip = pelvis + np.array([side * 12 * s, 0])
    b1, b2 = rng.uniform(-0.6, 0.6), rng.uniform(-0.2, 0.9)
    kn = hip + 55 * s * np.array([np.sin(b1), np.cos(b1)])
    an = kn + 52 * s * np.array(
      [np.sin(b1 - b2 * side), np.cos(b1 - b2 * side)]
    )
    leg_col = rng.uniform(0, 1, 3)
    parts += [(hip, kn, 10 * s, leg_col), (kn, an, 8 * s, leg_col)]
  parts.append((head, head + 0.01, 16 * s, rng.uniform(0.5, 0.9, 3)))
  for p0, p1, r, col in parts:
    m = _segment_mask(size, size, p0, p1, r)[..., None]
    shade = 0.85 + 0.15 * np.sin(0.1 * yy[..., None] * size)
    img = img * (1 - m) + m * col[None, None, :] * shade
  img += rng.normal(0, 0.02, img.shape).astype(np.float32)
  return np.clip(img, 0, 1).astype(np.float32)


def to_uint8(img: np.ndarray) -> np.ndarray:
  return np.round(img * 255.0).astype(np.uint8)


def make_inputs() -> dict[str, np.ndarray]:
  """2 test crops (uint8 RGB [N, 256, 256, 3]; the network input is
  ``authors_recipe.normalise`` of them) with boxes in a 640x480 image
  (non-square boxes, so the per-axis offset normalisation is exercised) and
  the image centre."""
  img = np.stack(
    [to_uint8(person_image(TEST_SEED + i)) for i in range(NUM_TEST)]
  )
  bboxes = np.array(
    [[150.0, 60.0, 406.0, 340.0], [300.0, 120.0, 520.0, 400.0]], np.float32
  )[:NUM_TEST]
  img_center = np.tile(np.array([[320.0, 240.0]], np.float32), (NUM_TEST, 1))
  return {"img_u8": img, "bboxes": bboxes, "img_center": img_center}


def calibration_images() -> np.ndarray:
  return normalise(
    np.stack([to_uint8(person_image(CALIB_SEED + i)) for i in range(NUM_CALIB)])
  )


# ---------------------------------------------------------------------------
# The authors' models (built and run by authors_model.py)
# ---------------------------------------------------------------------------


def load_recipe(model, state: dict[str, np.ndarray]) -> None:
  """A recipe (no ``smpl.*``: the model keeps its synthetic body model)."""
  authors_model.load_state(model, state, strict_keys=False)


def calibrate(model, arch: str, images: np.ndarray) -> dict[str, np.ndarray]:
  """BatchNorm running statistics = the calibration batch's statistics."""
  for m in bn_modules(model):
    m.reset_running_stats()
    m.momentum = None  # cumulative average
  model.train()
  with torch.no_grad():
    x = torch.from_numpy(images)
    if arch == "hrnet_w48_cam":
      model.preact(x)
    else:
      model.deconv_layers(model.preact(x))
  model.eval()
  for m in bn_modules(model):
    m.momentum = 0.1
  return {
    k: v.detach().numpy().astype(np.float32)
    for k, v in model.state_dict().items()
    if k.endswith(("running_mean", "running_var"))
  }


def run_case(model, arch, inputs, dtype, *, boxes=True, flip=False):
  """One eval forward; returns outputs + intermediates as numpy float64."""
  return authors_model.forward(
    model,
    arch,
    normalise(inputs["img_u8"]),
    dtype,
    bboxes=inputs["bboxes"] if boxes else None,
    img_center=inputs["img_center"] if boxes else None,
    flip=flip,
  )


def inplace_flip_gap(model, inputs) -> dict[str, float]:
  """How far the authors' literal in-place shift lands from the intended
  one (float32, this CPU)."""
  a = run_case(model, "hrnet_w48_cam", inputs, torch.float32, flip=True)
  with torch.no_grad():
    kw = {
      "bboxes": torch.from_numpy(inputs["bboxes"]),
      "img_center": torch.from_numpy(inputs["img_center"]),
    }
    b = model(
      torch.from_numpy(normalise(inputs["img_u8"])), flip_test=True, **kw
    )
  return {
    k: float(np.max(np.abs(a[k] - b[k].numpy())))
    for k in ("pred_uvd_jts", "transl", "pred_vertices")
  }


def _max_abs(a, b) -> float:
  return float(
    np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)))
  )


def check_distinct(res: dict, label: str, checks: dict) -> None:
  """Outputs must differ between the two test images."""
  for k, floor in (
    ("pred_uvd_jts", 0.02),
    ("pred_phi", 0.02),
    ("transl", 0.01),
  ):
    gap = _max_abs(res[k][0], res[k][1])
    checks[f"{label}: {k} image 0 vs 1"] = gap
    if gap < floor:
      raise CheckError(f"{label}: {k} differs by only {gap:.3g} between images")


def git_commit(authors_src: Path, given: str | None) -> str:
  if given:
    return given
  try:
    return subprocess.run(
      ["git", "-C", str(authors_src), "rev-parse", "HEAD"],
      capture_output=True,
      text=True,
      check=True,
    ).stdout.strip()
  except (OSError, subprocess.CalledProcessError):
    return (
      (authors_src / "COMMIT").read_text().strip()
      if (authors_src / "COMMIT").is_file()
      else "unknown"
    )


INTERMEDIATES = (
  "heatmap_logits",
  "backbone_features",
  "deconv_features",
  "img_feat",
)


def store(prefix: str, res: dict, out: dict) -> None:
  """Outputs as ``<prefix><key>``; the (unflipped, box-independent)
  intermediates once, from the ``eval_`` case."""
  for k, v in res.items():
    if k == "update_scale_calls":
      continue
    if k in INTERMEDIATES and prefix != "eval_":
      continue
    if k == "heatmap_logits":
      v = v[HEATMAP_SUB]
    elif k in ("backbone_features", "deconv_features"):
      v = v[FEAT_SUB]
      if k == "deconv_features":
        v = v[..., ::4, ::4]
    elif k == "pred_vertices":
      v = v[:, ::VERT_SUB]
    out[f"{prefix}{k}"] = v.astype(np.float32)


def make_arch(arch: str, authors_src: Path, out_dir: Path, work: Path) -> dict:
  model = build_model(authors_src, work, arch)
  keys = [
    {"key": k, "shape": list(v.shape), "dtype": str(v.numpy().dtype)}
    for k, v in model.state_dict().items()
  ]
  with open(out_dir / f"{arch}_keys.json", "w") as f:
    json.dump(keys, f, indent=0)
  load_recipe(model, build_state_dict(arch, bn_stats={}, keys=keys))
  stats = calibrate(model, arch, calibration_images())
  np.savez_compressed(out_dir / f"{arch}_bn_stats.npz", **stats)

  model = build_model(authors_src, work, arch)
  with np.load(out_dir / f"{arch}_bn_stats.npz", allow_pickle=False) as z:
    saved = {k: z[k] for k in z.files}
  load_recipe(model, build_state_dict(arch, saved, keys))  # as the tests do
  inputs = make_inputs()
  cases = {"eval_": {"boxes": True}, "nobox_": {"boxes": False}}
  if arch == "hrnet_w48_cam":
    cases["flip_"] = {"boxes": True, "flip": True}
  out = dict(inputs)
  noise, checks = {}, {}
  for prefix, kw in cases.items():
    r32 = run_case(model, arch, inputs, torch.float32, **kw)
    r64 = run_case(model, arch, inputs, torch.float64, **kw)
    store(prefix, r32, out)
    noise[prefix] = {
      k: _max_abs(r32[k], r64[k]) for k in r32 if k != "update_scale_calls"
    }
    checks[f"{prefix}update_scale"] = (
      r32["update_scale_calls"],
      r64["update_scale_calls"],
    )
    if arch == "hrnet_w48_cam" and r64["update_scale_calls"] != ["ok"]:
      raise CheckError(
        f"{prefix}: update_scale did not run: {r64['update_scale_calls']}"
      )
    check_distinct(r32, prefix, checks)
    if prefix == "eval_":
      base = r32
  if arch == "hrnet_w48_cam":
    flip_gap = _max_abs(out["flip_pred_uvd_jts"], base["pred_uvd_jts"])
    checks["flip vs no flip: pred_uvd_jts"] = flip_gap
    if flip_gap < 1e-3:
      raise CheckError("flip test gives the unflipped outputs")
    # update_scale with every weight 0: the authors' torch.inverse raises
    # and the regressed camera is kept.
    sd = model.state_dict()
    old = sd["decsigma.bias"].clone()
    with torch.no_grad():
      model.decsigma.bias.add_(10.0)
    r = run_case(model, arch, inputs, torch.float32, boxes=True)
    with torch.no_grad():
      model.decsigma.bias.copy_(old)
    checks["fallback_update_scale"] = r["update_scale_calls"]
    if not r["update_scale_calls"] or r["update_scale_calls"][0] == "ok":
      raise CheckError(
        f"fallback case: update_scale did not raise: {r['update_scale_calls']}"
      )
    if _max_abs(r["cam_scale"], r["pred_camera"]) != 0:
      raise CheckError("fallback case: cam_scale != pred_camera")
    for k in (
      "cam_scale",
      "cam_root",
      "transl",
      "pred_vertices",
      "pred_camera",
    ):
      v = r[k][:, ::VERT_SUB] if k == "pred_vertices" else r[k]
      out[f"fallback_{k}"] = v.astype(np.float32)
    out["fallback_decsigma_bias_delta"] = np.float32(10.0)
    checks["flip_inplace_vs_intended"] = inplace_flip_gap(model, inputs)
    checks["update_scale_refined_vs_regressed"] = _max_abs(
      base["cam_scale"], base["pred_camera"]
    )
  meta = {
    "arch": arch,
    "authors_commit": git_commit(authors_src, COMMIT),
    "config": CONFIGS[arch],
    "torch": torch.__version__,
    "numpy": np.__version__,
    "threads": torch.get_num_threads(),
    "machine": platform.machine(),
    "processor": platform.processor(),
    "vert_sub": VERT_SUB,
    "f32_vs_f64": noise,
    "checks": checks,
  }
  out["meta"] = np.array(json.dumps(meta))
  np.savez_compressed(out_dir / f"{arch}.npz", **out)
  return meta


def demo_image() -> np.ndarray:
  """[480, 640, 3] uint8 RGB: a person picture and a strip of another."""
  left = to_uint8(person_image(DEMO_SEED, 480))
  right = to_uint8(person_image(DEMO_SEED + 1, 480))[:, :160]
  return np.ascontiguousarray(np.concatenate([left, right], axis=1))


def make_demo(arch: str, authors_src: Path, out_dir: Path, work: Path) -> dict:
  """demo_<arch>.npz: the authors' demo_image.py path (module docstring)."""
  import importlib

  # hybrik.utils.presets' __init__ also imports the SMPL-X transform, which
  # builds an SMPL-X layer at import time (model files we do not have): load
  # the package without running it, then only the module the demo uses.
  import hybrik.utils
  from easydict import EasyDict

  presets = types.ModuleType("hybrik.utils.presets")
  presets.__path__ = [str(Path(hybrik.utils.__file__).parent / "presets")]
  sys.modules.setdefault("hybrik.utils.presets", presets)
  SimpleTransform3DSMPLCam = importlib.import_module(
    "hybrik.utils.presets.simple_transform_3d_smpl_cam"
  ).SimpleTransform3DSMPLCam

  cfg = load_cfg(authors_src, arch)
  model = build_model(authors_src, work, arch)
  keys = json.loads((out_dir / f"{arch}_keys.json").read_text())
  with np.load(out_dir / f"{arch}_bn_stats.npz", allow_pickle=False) as z:
    saved = {k: z[k] for k in z.files}
  load_recipe(model, build_state_dict(arch, saved, keys))
  bbox_3d_shape = [v * 1e-3 for v in cfg.MODEL.BBOX_3D_SHAPE]
  dummy_set = EasyDict(
    joint_pairs_17=None,
    joint_pairs_24=None,
    joint_pairs_29=None,
    bbox_3d_shape=bbox_3d_shape,
  )
  transformation = SimpleTransform3DSMPLCam(
    dummy_set,
    scale_factor=cfg.DATASET.SCALE_FACTOR,
    color_factor=cfg.DATASET.COLOR_FACTOR,
    occlusion=cfg.DATASET.OCCLUSION,
    input_size=cfg.MODEL.IMAGE_SIZE,
    output_size=cfg.MODEL.HEATMAP_SIZE,
    depth_dim=cfg.MODEL.EXTRA.DEPTH_DIM,
    bbox_3d_shape=bbox_3d_shape,
    rot=cfg.DATASET.ROT_FACTOR,
    sigma=cfg.MODEL.EXTRA.SIGMA,
    train=False,
    add_dpg=False,
    loss_type=cfg.LOSS["TYPE"],
  )
  image = demo_image()
  flip = arch == "hrnet_w48_cam"
  if flip:
    model.flip_heatmap = intended_flip_heatmap(model)
  pose_input, bbox, img_center = transformation.test_transform(
    image, list(DEMO_TIGHT_BOX)
  )
  with torch.no_grad():
    out = model(
      pose_input[None],
      flip_test=flip,
      bboxes=torch.from_numpy(np.array(bbox)).unsqueeze(0).float(),
      img_center=torch.from_numpy(img_center).unsqueeze(0).float(),
    )
  transl = out.transl.detach()[0].numpy().astype(np.float64)
  x1, y1, x2, y2 = bbox
  focal = 1000.0 / 256 * (x2 - x1)
  verts = out.pred_vertices.detach()[0].numpy().astype(np.float64)
  cam = verts + transl  # [V, 3]
  h, w = image.shape[:2]
  # PyTorch3D after the z rotation: pixel = centre + f * (X, Y) / Z.
  uv = focal * cam[:, :2] / cam[:, 2:3] + np.array([w / 2.0, h / 2.0])
  res = {
    "image_rgb": image,
    "tight_bbox_xyxy": np.asarray(DEMO_TIGHT_BOX, np.float64),
    "bbox_xyxy": np.asarray(bbox, np.float64),
    "img_center": np.asarray(img_center, np.float64),
    "pose_input": pose_input.numpy().transpose(1, 2, 0).astype(np.float32),
    "flip_test": np.asarray(flip),
    "transl": transl,
    "focal": np.float64(focal),
    "pred_vertices": verts[::VERT_SUB],
    "uv_vertices": (uv - 0.5)[::VERT_SUB],
    "pred_uvd_jts": out.pred_uvd_jts.detach()[0].numpy().astype(np.float64),
  }
  meta = {
    "arch": arch,
    "authors_commit": git_commit(authors_src, COMMIT),
    "torch": torch.__version__,
    "threads": torch.get_num_threads(),
    "vert_sub": VERT_SUB,
    "uv_convention": "integer pixel centres (PyTorch3D continuous - 0.5)",
  }
  res["meta"] = np.array(json.dumps(meta))
  np.savez_compressed(out_dir / f"demo_{arch}.npz", **res)
  span = uv.max(0) - uv.min(0)
  if not (
    np.all(np.isfinite(uv)) and np.all(span > 20) and cam[:, 2].min() > 0
  ):
    raise CheckError(f"demo {arch}: degenerate projection (span {span})")
  return {
    **meta,
    "focal": float(focal),
    "transl": transl.tolist(),
    "uv_span": span.tolist(),
  }


def main(argv=None) -> int:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--authors-src", type=Path, required=True)
  ap.add_argument("--out", type=Path, default=FIXTURES / "authors")
  ap.add_argument(
    "--arch", nargs="+", default=list(CONFIGS), choices=list(CONFIGS)
  )
  ap.add_argument("--threads", type=int, default=2)
  ap.add_argument(
    "--demo", action="store_true", help="write demo_<arch>.npz only"
  )
  ap.add_argument(
    "--authors-commit",
    help="commit of --authors-src (default: git rev-parse, or a COMMIT file)",
  )
  args = ap.parse_args(argv)
  global COMMIT
  COMMIT = args.authors_commit
  torch.set_num_threads(args.threads)
  torch.manual_seed(0)
  src = authors_model.use_authors_src(args.authors_src)
  authors_model.install_torchvision_models_stub()
  args.out.mkdir(parents=True, exist_ok=True)
  summary = {}
  with tempfile.TemporaryDirectory() as tmp:
    work = Path(tmp)
    authors_model.prepare_workdir(
      src, work, authors_model.fixture_model_files()
    )
    try:
      for arch in args.arch:
        make = make_demo if args.demo else make_arch
        summary[arch] = make(arch, src, args.out, work)
    except CheckError as e:
      print(f"make_authors_goldens: check failed: {e}", file=sys.stderr)
      return 1
  print(json.dumps(summary, indent=1))
  return 0


if __name__ == "__main__":
  sys.exit(main())
