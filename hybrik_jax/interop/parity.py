"""hybrik-jax against mmhuman3d's own PyTorch HybrIK, on the same inputs.

The PyTorch side runs in a separate venv (``scripts/setup_reference.sh``
builds ``.refvenv``; this package never imports torch): ``parity.py`` writes
the network inputs to an ``.npz``, runs ``reference/run_hybrik.py model`` in
that venv twice (float32, and float64 to measure the reference's own float32
noise on these inputs) and compares every output with hybrik-jax's.

A row passes when ``max |jax - torch_f32| <= tolerance``, where the
tolerance is the larger of a floor per tensor (the float32 parity
tolerances measured on the golden fixtures: ``tests/fixtures/README.md``,
"Tolerances observed") and ``NOISE_FACTOR`` times the reference's own
float32 noise on these inputs, ``max |torch_f32 - torch_f64|`` (rotations
of a badly conditioned skeleton are noisier than any fixed floor).

The original authors' camera models (Jeff-sjtu/HybrIK's ``HRNetSMPLCam``
and ``Simple3DPoseBaseSMPLCam``, :data:`AUTHORS_ARCHS`) are compared the
same way against their own code, run by ``reference/run_authors.py model``
(both dtypes in one process) from a checkout of it that is not part of
this repository (``authors_src``); their floors are the per-tensor
tolerances of ``tests/test_authors_models.py`` (:data:`AUTHORS_FLOORS`) and
their noise factor :data:`AUTHORS_NOISE_FACTOR`, so that on the golden
fixtures' inputs the tolerance is exactly the tests' one.

Inputs (all float32; the network's conventions, see
:func:`hybrik_jax.model.hybrik.predict`): ``img`` [N, H, W, 3] normalised
RGB (NHWC here, NCHW for torch), ``trans_inv`` [N, 2, 3] crop -> image
affine (pixels), ``intrinsic_param`` [N, 3, 3] K^-1, ``joint_root`` [N, 3]
(mm, camera frame), ``depth_factor`` [N, 1] (mm).
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hybrik_jax import errors

REPO = Path(__file__).resolve().parents[2]
RUNNER = REPO / "reference" / "run_hybrik.py"
AUTHORS_RUNNER = REPO / "reference" / "run_authors.py"
DEFAULT_REFVENV = REPO / ".refvenv"
AUTHORS_ARCHS = ("hrnet_w48_cam", "resnet34_cam")

# Float32 parity floors per output (units of the output: heatmap logits,
# normalised uvd, metres for xyz/vertices, rotation-matrix entries).
FLOORS = {
  "backbone_features": 1e-5,
  "heatmap_logits": 1e-4,
  "pred_uvd_jts": 1e-5,
  "pred_xyz_jts_24": 1e-5,
  "pred_xyz_jts_24_struct": 1e-4,
  "pred_xyz_jts_17": 1e-4,
  "pred_vertices": 2e-4,
  "pred_pose": 2e-3,
  "pred_shape": 1e-5,
  "pred_phi": 1e-5,
}
NOISE_FACTOR = 10.0

# The authors' camera models: per-tensor float32 floors = the atol of
# tests/test_authors_models.py (3-8x the reference's float32-vs-float64
# noise on the golden inputs, tests/fixtures/authors/README.md "Tolerances
# observed"; units of each output: features / logits, normalised uvd, units
# of the 2.2 m depth factor for xyz, metres for vertices / camera, rotation
# entries). None: the architecture has no such output.
# fmt: off
_AUTHORS_FLOOR_ROWS = {
  # key:                   (HRNet,  ResNet-34)
  "backbone_features":      (5e-4,   2.5e-4),
  "deconv_features":        (None,   2e-4),
  "heatmap_logits":         (6e-4,   6e-4),
  "img_feat":               (4e-5,   None),
  "pred_uvd_jts":           (5e-5,   4e-5),
  "pred_sigma":             (1e-5,   1e-5),
  "maxvals":                (6e-5,   6e-5),
  "pred_camera":            (1e-5,   None),
  "cam_trans":              (None,   1e-5),
  "cam_scale":              (6e-5,   1e-5),
  "cam_root":               (2e-4,   2e-5),
  "transl":                 (2e-4,   2e-5),
  "pred_xyz_jts_29":        (5e-5,   4e-5),
  "pred_xyz_jts_24":        (5e-5,   4e-5),
  "pred_xyz_jts_24_struct": (1e-4,   3e-5),
  "pred_xyz_jts_17":        (1e-4,   3e-5),
  "pred_vertices":          (2.5e-4, 8e-5),
  "pred_theta_mats":        (3e-3,   2e-3),
  "pred_shape":             (2e-5,   1e-5),
  "pred_delta_shape":       (2e-5,   1e-5),
  "pred_phi":               (3e-5,   1e-5),
}
# fmt: on
AUTHORS_FLOORS = {
  arch: {k: v[i] for k, v in _AUTHORS_FLOOR_ROWS.items() if v[i] is not None}
  for i, arch in enumerate(AUTHORS_ARCHS)
}
# The floors are >= 3x the reference's noise on the goldens' inputs, so 3x
# the noise measured on the compared inputs changes the tolerance only where
# those inputs make the reference noisier than the goldens' did.
AUTHORS_NOISE_FACTOR = 3.0
# The two test pipelines (``--data``): the network inputs and the box must
# agree bit for bit (same OpenCV release on both sides, see
# reference/requirements.txt). Units: normalised image values, pixels, 1/px,
# mm.
PIPELINE_KEYS = (
  "img",
  "trans_inv",
  "intrinsic_param",
  "joint_root",
  "depth_factor",
  "bbox",
)
# ``--metrics``: largest allowed |mmhuman3d - hybrik-jax| per metric, mm.
METRIC_TOLERANCE_MM = 0.01
# Outputs that are NHWC in hybrik-jax and NCHW in PyTorch.
_NCHW = ("backbone_features", "deconv_features", "heatmap_logits")


class ReferenceError(errors.InputError, RuntimeError):
  """The reference venv is missing or the PyTorch run failed (its message
  is the reference's last error line)."""


@dataclasses.dataclass(frozen=True)
class Row:
  """One compared output."""

  name: str
  max_abs_err: float  # max |jax - torch float32|
  ref_noise: float  # max |torch float32 - torch float64|
  tolerance: float

  @property
  def ok(self) -> bool:
    return bool(np.isfinite(self.max_abs_err)) and (
      self.max_abs_err <= self.tolerance
    )


def _smooth_images(rng, n: int, image_size: int) -> np.ndarray:
  """[n, S, S, 3] float32: N(0, 1) on an 8 x 8 grid, bicubically upsampled."""
  import cv2

  imgs = []
  for _ in range(n):
    coarse = rng.normal(0.0, 1.0, (8, 8, 3)).astype(np.float32)
    imgs.append(
      cv2.resize(
        coarse, (image_size, image_size), interpolation=cv2.INTER_CUBIC
      )
    )
  return np.stack(imgs).astype(np.float32)


def checkpoint_architecture(path: Path) -> str | None:
  """CKPT's HybrIK architecture from its keys
  (:func:`hybrik_jax.interop.convert.detect_architecture`), None if none."""
  from hybrik_jax.interop import convert, torch_format

  obj = torch_format.load_torch_checkpoint(str(path))
  state_dict, _ = convert.extract_state_dict(obj, str(path))
  return convert.detect_architecture(state_dict)


def synthetic_inputs(n: int, image_size: int = 256, seed: int = 0) -> dict:
  """Smooth random images and plausible cameras (module docstring's keys).

  Images: Gaussian noise on an 8 x 8 grid, bicubically upsampled (so the
  network sees image-like low frequencies), in normalised units. Cameras:
  f = 1000 px, principal point (500, 500), a random person box whose crop
  gives ``trans_inv``, the root 3-6 m in front of the camera.
  """
  from hybrik_jax.data import annotations, transforms

  rng = np.random.default_rng(seed)
  imgs = _smooth_images(rng, n, image_size)
  k = np.array([[1000.0, 0, 500.0], [0, 1000.0, 500.0], [0, 0, 1]])
  trans_inv = []
  for _ in range(n):
    w, h = rng.uniform(150, 400), rng.uniform(300, 600)
    x, y = rng.uniform(0, 1000 - w), rng.uniform(0, 1000 - h)
    center, scale = annotations.box2cs(
      np.array([x, y, w, h]), aspect_ratio=1.0, bbox_scale_factor=1.25
    )
    size = (image_size, image_size)
    trans_inv.append(
      transforms.get_affine_transform(center, scale, 0.0, size, inv=True)
    )
  root = np.stack(
    [
      rng.uniform(-500, 500, n),
      rng.uniform(-500, 500, n),
      rng.uniform(3000, 6000, n),
    ],
    axis=1,
  )
  return {
    "img": imgs,  # [N, S, S, 3]
    "trans_inv": np.stack(trans_inv).astype(np.float32),  # [N, 2, 3]
    "intrinsic_param": np.tile(np.linalg.inv(k), (n, 1, 1)).astype(
      np.float32
    ),  # [N, 3, 3]
    "joint_root": root.astype(np.float32),  # [N, 3] mm
    "depth_factor": np.full((n, 1), 2000.0, np.float32),  # [N, 1] mm
  }


def image_inputs(
  paths: Sequence[Path], bbox_xywh: np.ndarray | None, image_size: int = 256
) -> dict:
  """Images cropped as mmhuman3d's test pipeline does (the demo's crop and
  camera: :mod:`hybrik_jax.demo.camera`), from ``bbox_xywh`` or the whole
  image."""
  from hybrik_jax.demo import camera as camera_lib
  from hybrik_jax.demo import inputs as demo_inputs

  out = {k: [] for k in ("img", "trans_inv", "intrinsic_param", "joint_root")}
  for path in paths:
    image = demo_inputs.load_image(Path(path))
    h, w = image.shape[:2]
    box = (
      demo_inputs.whole_image_bbox(h, w)
      if bbox_xywh is None
      else np.asarray(bbox_xywh, np.float64)
    )
    cam = camera_lib.default_camera(h, w)
    crop, trans_inv = camera_lib.crop_image(image, box, image_size)
    out["img"].append(crop)
    out["trans_inv"].append(trans_inv)
    out["intrinsic_param"].append(cam.k_inv.astype(np.float32))
    out["joint_root"].append(
      camera_lib.joint_root_prior(cam, box).astype(np.float32)
    )
  res = {k: np.stack(v).astype(np.float32) for k, v in out.items()}
  res["depth_factor"] = np.full(
    (len(paths), 1), camera_lib.DEPTH_FACTOR_MM, np.float32
  )
  return res


def authors_synthetic_inputs(
  n: int, image_size: int = 256, seed: int = 0
) -> dict:
  """Inputs of the authors' camera models: :func:`synthetic_inputs`' smooth
  random images, and per image a random person box (150-400 x 300-600 px)
  in a 1000 x 1000 picture, enlarged as the authors' demo enlarges it
  (:func:`hybrik_jax.data.authors_crop.authors_center_scale`: square,
  x1.25).

  Returns ``img`` [N, S, S, 3] float32 (normalised RGB, NHWC), ``bboxes``
  [N, 4] (x1, y1, x2, y2 px, the enlarged box) and ``img_center`` [N, 2]
  (500, 500) px, as their demo passes them to the network.
  """
  from hybrik_jax.data import authors_crop

  rng = np.random.default_rng(seed)
  imgs = _smooth_images(rng, n, image_size)
  boxes = []
  for _ in range(n):
    w, h = rng.uniform(150, 400), rng.uniform(300, 600)
    x, y = rng.uniform(0, 1000 - w), rng.uniform(0, 1000 - h)
    center, scale = authors_crop.authors_center_scale(np.array([x, y, w, h]))
    sw, sh = float(scale[0]), float(scale[1])
    x1, y1 = float(center[0]) - sw * 0.5, float(center[1]) - sh * 0.5
    boxes.append([x1, y1, x1 + sw, y1 + sh])
  return {
    "img": imgs,
    "bboxes": np.asarray(boxes, np.float32),
    "img_center": np.full((n, 2), 500.0, np.float32),
  }


def authors_image_inputs(
  paths: Sequence[Path], bbox_xywh: np.ndarray | None, image_size: int = 256
) -> dict:
  """Images cropped as the authors' demo crops them
  (:func:`hybrik_jax.data.authors_crop.authors_test_crop`, the box or the
  whole image), with the enlarged box and the image centre (W / 2, H / 2):
  :func:`authors_synthetic_inputs`' keys."""
  from hybrik_jax.data import authors_crop
  from hybrik_jax.demo import inputs as demo_inputs

  out = {k: [] for k in ("img", "bboxes", "img_center")}
  for path in paths:
    image = demo_inputs.load_image(Path(path))
    h, w = image.shape[:2]
    box = (
      demo_inputs.whole_image_bbox(h, w)
      if bbox_xywh is None
      else np.asarray(bbox_xywh, np.float64)
    )
    crop, box_xyxy, _ = authors_crop.authors_test_crop(image, box, image_size)
    out["img"].append(crop)
    out["bboxes"].append(box_xyxy)
    out["img_center"].append(np.array([w * 0.5, h * 0.5], np.float32))
  return {k: np.stack(v).astype(np.float32) for k, v in out.items()}


def data_inputs(
  ann_file: str,
  image_root: str,
  num: int,
  dataset_name: str | None = None,
  image_size: int = 256,
) -> tuple[dict, str]:
  """The first ``num`` samples of a HumanData test file through hybrik-jax's
  test pipeline (:func:`hybrik_jax.data.transforms.test_sample`, the mixed
  recipe's normalisation).

  Returns (inputs, dataset type): the module docstring's keys plus ``bbox``
  [N, 4] (x1, y1, x2, y2 px of the square crop box) and ``sample_idx`` [N].
  """
  from hybrik_jax.data import sources, transforms

  src = sources.NpzSource(
    Path(ann_file).stem, ann_file, image_root, dataset_name, test_mode=True
  )
  n = min(num, len(src)) if num > 0 else len(src)
  config = transforms.TransformConfig(img_res=image_size)
  samples = [transforms.test_sample(*src[j], config) for j in range(n)]
  keys = PIPELINE_KEYS + ("sample_idx",)
  return {k: np.stack([s[k] for s in samples]) for k in keys}, (
    src.dataset_type
  )


def run_jax(
  variables: Mapping[str, Any], inputs: Mapping[str, np.ndarray], precision
) -> dict[str, np.ndarray]:
  """hybrik-jax's outputs (with backbone features and heatmap logits)."""
  import jax

  from hybrik_jax.model import hybrik

  out = hybrik.predict(
    variables,
    inputs["img"],
    inputs["trans_inv"],
    inputs["intrinsic_param"],
    inputs["joint_root"],
    inputs["depth_factor"],
    precision=precision,
    return_intermediates=True,
  )
  return {k: np.asarray(v) for k, v in jax.device_get(out).items()}


def run_jax_authors(
  variables: Mapping[str, Any],
  inputs: Mapping[str, np.ndarray],
  arch: str,
  flip_test: bool,
  precision,
) -> dict[str, np.ndarray]:
  """hybrik-jax's authors' model (:func:`hybrik_jax.model.hybrik_cam.predict`)
  with the backbone intermediates (of the unflipped pass)."""
  import jax

  from hybrik_jax.model import hybrik_cam

  out = hybrik_cam.predict(
    variables,
    inputs["img"],
    inputs["bboxes"],
    inputs["img_center"],
    arch=arch,
    flip_test=flip_test,
    precision=precision,
    return_intermediates=True,
  )
  return {k: np.asarray(v) for k, v in jax.device_get(out).items()}


def run_reference_authors(
  checkpoint: Path,
  arch: str,
  inputs: Mapping[str, np.ndarray],
  authors_src: Path,
  flip_test: bool = False,
  refvenv: Path = DEFAULT_REFVENV,
  threads: int = 2,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict]:
  """The authors' own model on ``inputs`` (``reference/run_authors.py
  model`` in the reference venv, float32 and float64 in one process).

  Returns (float32 outputs, float64 outputs, meta).
  """
  import json

  python = Path(refvenv) / "bin" / "python"
  if not python.exists():
    raise ReferenceError(
      f"no reference venv at {refvenv}: build it with "
      "`bash scripts/setup_reference.sh` (or pass --refvenv)"
    )
  with tempfile.TemporaryDirectory(prefix="hybrik_jax_parity_") as tmp:
    src, dst = Path(tmp) / "inputs.npz", Path(tmp) / "outputs.npz"
    np.savez(
      src,
      img=np.ascontiguousarray(np.transpose(inputs["img"], (0, 3, 1, 2))),
      bboxes=inputs["bboxes"],
      img_center=inputs["img_center"],
    )
    cmd = [str(python), str(AUTHORS_RUNNER), "model"]
    cmd += ["--checkpoint", str(checkpoint), "--arch", arch]
    cmd += ["--authors-src", str(authors_src), "--inputs", str(src)]
    cmd += ["--out", str(dst), "--dtype", "float32", "float64"]
    cmd += ["--threads", str(threads)] + (["--flip-test"] if flip_test else [])
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp)
    if proc.returncode != 0:
      lines = (proc.stderr or proc.stdout).strip().splitlines()
      errs = [ln for ln in lines if "error" in ln.lower()]
      raise ReferenceError(
        f"the authors' PyTorch model failed on {checkpoint}: "
        + ((errs or lines)[-1] if lines else f"exit {proc.returncode}")
      )
    with np.load(dst, allow_pickle=False) as f:
      outs = {"float32": {}, "float64": {}}
      for k in f.files:
        if "/" in k:
          dtype, name = k.split("/", 1)
          outs[dtype][name] = f[k]
      meta = json.loads(str(f["meta"]))
  return outs["float32"], outs["float64"], meta


def run_reference(
  checkpoint: Path,
  inputs: Mapping[str, np.ndarray],
  dtype: str,
  refvenv: Path = DEFAULT_REFVENV,
  smpl: Path | None = None,
  threads: int = 2,
) -> dict[str, np.ndarray]:
  """mmhuman3d's outputs on ``inputs`` (``reference/run_hybrik.py model`` in
  the reference venv)."""
  python = Path(refvenv) / "bin" / "python"
  if not python.exists():
    raise ReferenceError(
      f"no reference venv at {refvenv}: build it with "
      "`bash scripts/setup_reference.sh` (or pass --refvenv)"
    )
  with tempfile.TemporaryDirectory(prefix="hybrik_jax_parity_") as tmp:
    src, dst = Path(tmp) / "inputs.npz", Path(tmp) / "outputs.npz"
    torch_inputs = dict(inputs)
    torch_inputs["img"] = np.ascontiguousarray(
      np.transpose(inputs["img"], (0, 3, 1, 2))
    )  # [N, 3, H, W]
    np.savez(src, **torch_inputs)
    cmd = [
      str(python),
      str(RUNNER),
      "model",
      "--checkpoint",
      str(checkpoint),
      "--inputs",
      str(src),
      "--out",
      str(dst),
      "--dtype",
      dtype,
      "--threads",
      str(threads),
    ]
    if smpl is not None:
      cmd += ["--smpl", str(smpl)]
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
      lines = (proc.stderr or proc.stdout).strip().splitlines()
      raise ReferenceError(
        f"the PyTorch reference failed on {checkpoint} ({dtype}): "
        + (lines[-1] if lines else f"exit status {proc.returncode}")
      )
    with np.load(dst, allow_pickle=False) as f:
      return {k: f[k] for k in f.files}


def run_reference_data(
  checkpoint: Path,
  ann_file: str,
  image_root: str,
  dataset_name: str,
  dtype: str,
  num: int = 0,
  metrics: Sequence[str] = (),
  refvenv: Path = DEFAULT_REFVENV,
  smpl: Path | None = None,
  threads: int = 2,
) -> tuple[dict[str, np.ndarray], dict]:
  """mmhuman3d's test pipeline, ``forward_test`` (and, with ``metrics``,
  its dataset's ``evaluate``) on a HumanData file (``reference/run_hybrik.py
  data``). ``num`` 0 is the whole file.

  Returns (arrays, meta): ``input_<key>`` (pipeline outputs, NCHW image),
  ``sample_idx``, the head's outputs with ``backbone_features`` and
  ``heatmap_logits`` (without ``metrics``), ``test_<key>`` (forward_test's
  results); meta['metrics_mm'] holds mmhuman3d's metrics.
  """
  import json

  extra = ["--data", str(ann_file), "--image-root", str(image_root)]
  extra += ["--dataset-name", dataset_name, "--num", str(num)]
  if metrics:
    extra += ["--metrics", ",".join(metrics)]
  out = _run_runner("data", checkpoint, extra, dtype, refvenv, smpl, threads)
  meta = json.loads(str(out.pop("meta")))
  return out, meta


def _run_runner(
  command: str,
  checkpoint: Path,
  extra: Sequence[str],
  dtype: str,
  refvenv: Path,
  smpl: Path | None,
  threads: int,
) -> dict[str, np.ndarray]:
  python = Path(refvenv) / "bin" / "python"
  if not python.exists():
    raise ReferenceError(
      f"no reference venv at {refvenv}: build it with "
      "`bash scripts/setup_reference.sh` (or pass --refvenv)"
    )
  with tempfile.TemporaryDirectory(prefix="hybrik_jax_parity_") as tmp:
    dst = Path(tmp) / "outputs.npz"
    cmd = [str(python), str(RUNNER), command, "--checkpoint", str(checkpoint)]
    cmd += [*extra, "--out", str(dst), "--dtype", dtype]
    cmd += ["--threads", str(threads)]
    if smpl is not None:
      cmd += ["--smpl", str(smpl)]
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp)
    if proc.returncode != 0:
      lines = (proc.stderr or proc.stdout).strip().splitlines()
      errs = [ln for ln in lines if "error" in ln.lower()]
      raise ReferenceError(
        f"the PyTorch reference failed on {checkpoint} ({dtype}): "
        + ((errs or lines)[-1] if lines else f"exit {proc.returncode}")
      )
    with np.load(dst, allow_pickle=False) as f:
      return {k: f[k] for k in f.files}


def compare_pipelines(
  ours: Mapping[str, np.ndarray], ref: Mapping[str, np.ndarray]
) -> list[Row]:
  """One :class:`Row` per pipeline output (tolerance 0: bit for bit)."""
  if not np.array_equal(ours["sample_idx"], ref["sample_idx"]):
    raise ReferenceError(
      f"the pipelines took other samples: {ours['sample_idx'][:8]} vs "
      f"{ref['sample_idx'][:8]}"
    )
  rows = []
  for k in PIPELINE_KEYS:
    a = np.asarray(ours[k], np.float64)
    b = np.asarray(ref[f"input_{k}"], np.float64)
    if k == "img":
      b = np.transpose(b, (0, 2, 3, 1))  # NCHW -> NHWC
    b = b.reshape(a.shape) if b.size == a.size else b
    if a.shape != b.shape:
      raise ReferenceError(f"input {k}: hybrik-jax {a.shape} vs {b.shape}")
    err = float(np.max(np.abs(a - b))) if a.size else 0.0
    rows.append(Row(f"input {k}", err, 0.0, 0.0))
  return rows


def jax_metrics(
  variables: Mapping[str, Any],
  ann_file: str,
  image_root: str,
  dataset_name: str | None,
  metrics: Sequence[str],
  precision: str = "highest",
  batch_size: int = 32,
) -> dict[str, float]:
  """hybrik-jax's metrics (mm) on the whole file, as ``evaluate.py``
  computes them (:func:`hybrik_jax.eval.protocol.evaluate_dataset`), with
  the mixed recipe's model values (256 px, mmhuman3d's normalisation)."""
  from configs import mixed
  from hybrik_jax import builders
  from hybrik_jax.eval import protocol

  config = mixed.get_config()
  config.model.precision = precision
  config.data.worker_count = 0
  config.data.eval_batch_size = batch_size
  ds = mixed.dataset(Path(ann_file).stem, str(ann_file), str(image_root))
  ds.dataset_name = dataset_name  # None: the file's own 'config' entry
  result = protocol.evaluate_dataset(
    variables,
    builders.make_eval_data(config, ds),
    model=builders.build_model(config),
    metric_names=metrics,
    progress=False,
  )
  return result["metrics"]


def format_metrics(
  ref: Mapping[str, float], ours: Mapping[str, float]
) -> tuple[str, list[str]]:
  """The metrics side by side; and the names beyond METRIC_TOLERANCE_MM."""
  head = f"{'metric':<10} {'mmhuman3d':>12} {'hybrik-jax':>12} {'diff':>10}"
  lines, bad = [head, "-" * len(head)], []
  for k, v in ref.items():
    diff = abs(ours.get(k, float("nan")) - v)
    if not diff <= METRIC_TOLERANCE_MM:
      bad.append(k)
    lines.append(
      f"{k:<10} {v:>9.3f} mm {ours.get(k, float('nan')):>9.3f} mm "
      f"{diff:>7.4f} mm  {'yes' if k not in bad else 'NO'}"
    )
  return "\n".join(lines), bad


def _as_jax_layout(name: str, value: np.ndarray) -> np.ndarray:
  if name in _NCHW and value.ndim == 4:
    return np.transpose(value, (0, 2, 3, 1))
  return value


def compare(
  jax_out: Mapping[str, np.ndarray],
  ref32: Mapping[str, np.ndarray],
  ref64: Mapping[str, np.ndarray],
  names: Sequence[str] | None = None,
  *,
  floors: Mapping[str, float] = FLOORS,
  noise_factor: float = NOISE_FACTOR,
  reference: str = "mmhuman3d",
) -> list[Row]:
  """One :class:`Row` per output in ``names`` (default: those of
  ``floors``); tolerance ``max(floors[name], noise_factor * noise)``.

  Raises:
    ReferenceError: an output is missing on one side or has another shape.
  """
  rows = []
  for name in tuple(floors) if names is None else names:
    for side, out in (("hybrik-jax", jax_out), (reference, ref32)):
      if name not in out:
        raise ReferenceError(f"{side} returned no {name!r}")
    a = np.asarray(jax_out[name], np.float64)
    b = _as_jax_layout(name, np.asarray(ref32[name], np.float64))
    c = _as_jax_layout(name, np.asarray(ref64[name], np.float64))
    if a.size != b.size or b.shape != c.shape:
      raise ReferenceError(
        f"{name}: hybrik-jax {a.shape} vs {reference} {b.shape} / {c.shape}"
      )
    a = a.reshape(b.shape)
    err = float(np.max(np.abs(a - b))) if a.size else 0.0
    noise = float(np.max(np.abs(b - c))) if b.size else 0.0
    tol = max(floors.get(name, 1e-5), noise_factor * noise)
    rows.append(Row(name, err, noise, tol))
  return rows


def format_table(rows: Sequence[Row]) -> str:
  """The rows as a plain-text table."""
  head = f"{'output':<24} {'max |jax-torch|':>16} {'torch f32-f64':>14} "
  head += f"{'tolerance':>10}  ok"
  lines = [head, "-" * len(head)]
  for r in rows:
    lines.append(
      f"{r.name:<24} {r.max_abs_err:>16.3e} {r.ref_noise:>14.3e} "
      f"{r.tolerance:>10.1e}  {'yes' if r.ok else 'NO'}"
    )
  return "\n".join(lines)
