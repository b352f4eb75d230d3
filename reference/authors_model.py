"""The authors' HybrIK camera models (Jeff-sjtu/HybrIK), built and run on CPU.

Runs in the PyTorch reference venv only (``scripts/setup_reference.sh``);
never imported by ``hybrik_jax``. Shared by ``make_authors_goldens.py`` (the
golden fixtures) and ``run_authors.py`` (the reference side of
``parity.py`` for the authors' checkpoints). None of the authors' code is in
this repository: every function takes a checkout of it (``authors_src``,
holding ``hybrik/`` and ``configs/``), put on ``sys.path`` by
:func:`use_authors_src`.

* :func:`prepare_workdir`: a scratch folder holding the ``model_files/``
  their constructors read by relative path
  (``basicModel_neutral_lbs_10_207_0_v1.0.0.pkl``, ``J_regressor_h36m.npy``,
  ``h36m_mean_beta.npy``) and a link to ``hybrik/`` (for
  ``hybrik/models/layers/hrnet/w48.yaml``); the files come from a mapping
  name -> writer (:func:`fixture_model_files`: the synthetic SMPL of
  tests/fixtures; :func:`model_files_from_state`: a checkpoint's own
  ``smpl.*`` buffers and ``init_shape``).
* :func:`build_model`: ``builder.build_sppe(cfg.MODEL)`` from the config of
  :data:`CONFIGS`, as their demo does, in eval mode.
* :func:`forward`: one eval forward with ``bboxes`` / ``img_center`` as their
  demo passes them (optional), ``flip_test`` with the intended flip shift
  (:func:`intended_flip_heatmap`), float32 or float64 (:func:`precision`),
  returning their outputs plus the backbone intermediates of the unflipped
  pass.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import pickle
import shutil
import sys
import types
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"
CONFIGS = {
  "hrnet_w48_cam": "configs/256x192_adam_lr1e-3-hrw48_cam_2x_w_pw3d_3dhp.yaml",
  "resnet34_cam": "configs/256x192_adam_lr1e-3-res34_smpl_3d_cam_2x_mix_w_pw3d.yaml",
}
SMPL_PKL = "basicModel_neutral_lbs_10_207_0_v1.0.0.pkl"
H36M_REGRESSOR = "J_regressor_h36m.npy"
MEAN_BETA = "h36m_mean_beta.npy"
# The authors' SMPL_layer buffers a plain-numpy SMPL pickle is written from.
SMPL_STATE_KEYS = (
  "smpl.faces_tensor",
  "smpl.v_template",
  "smpl.shapedirs",
  "smpl.posedirs",
  "smpl.J_regressor",
  "smpl.J_regressor_h36m",
  "smpl.parents",
  "smpl.lbs_weights",
)
# The model's outputs kept by :func:`forward` (those it returns).
OUT_KEYS = (
  "pred_uvd_jts",
  "pred_xyz_jts_29",
  "pred_xyz_jts_24",
  "pred_xyz_jts_24_struct",
  "pred_xyz_jts_17",
  "pred_vertices",
  "pred_theta_mats",
  "pred_shape",
  "pred_delta_shape",
  "pred_phi",
  "pred_sigma",
  "maxvals",
  "cam_scale",
  "cam_root",
  "transl",
  "pred_camera",
  "cam_trans",
  "img_feat",
)


class AuthorsSourceError(RuntimeError):
  """The checkout of the authors' code is missing or incomplete."""


def use_authors_src(authors_src: Path) -> Path:
  """Checks the checkout and puts it first on ``sys.path``."""
  src = Path(authors_src).resolve()
  need = [src / "hybrik" / "models" / "builder.py"]
  need += [src / c for c in CONFIGS.values()]
  absent = [str(p.relative_to(src)) for p in need if not p.is_file()]
  if absent:
    raise AuthorsSourceError(
      f"{src} is not a checkout of Jeff-sjtu/HybrIK (missing "
      + ", ".join(absent)
      + ")"
    )
  if str(src) not in sys.path:
    sys.path.insert(0, str(src))
  return src


def install_torchvision_models_stub() -> None:
  """``torchvision.models.resnet34(pretrained=True)``: an empty module (the
  ResNet model copies whatever matches from it -- nothing; the checkpoint
  or recipe replaces every weight anyway). Refuses a real torchvision, which
  would download ImageNet weights."""
  import refenv  # noqa: F401  (the torchvision / pytorch3d stubs)
  import torchvision

  tm = getattr(torchvision, "models", None)
  if tm is None:
    tm = types.ModuleType("torchvision.models")
    sys.modules["torchvision.models"] = tm
    torchvision.models = tm
  if hasattr(tm, "resnet34") and not getattr(tm, "_authors_stub", False):
    raise SystemExit(
      "a real torchvision is installed; its resnet34(pretrained=True) "
      "would download ImageNet weights. Run in the reference venv "
      "(refenv's torchvision stub)."
    )
  for name in ("resnet18", "resnet34", "resnet50", "resnet101"):
    setattr(tm, name, lambda pretrained=False, **kw: torch.nn.Module())
  tm._authors_stub = True


# ---------------------------------------------------------------------------
# model_files/
# ---------------------------------------------------------------------------

Writer = Callable[[Path], None]


def fixture_model_files() -> dict[str, Writer]:
  """The synthetic SMPL model of tests/fixtures (what the goldens use)."""

  def smpl(dst: Path) -> None:
    with gzip.open(FIXTURES / "smpl" / "SMPL_NEUTRAL.pkl.gz", "rb") as fi:
      with open(dst, "wb") as fo:
        shutil.copyfileobj(fi, fo)

  return {
    SMPL_PKL: smpl,
    H36M_REGRESSOR: lambda dst: shutil.copy(FIXTURES / H36M_REGRESSOR, dst),
    MEAN_BETA: lambda dst: shutil.copy(FIXTURES / MEAN_BETA, dst),
  }


def model_files_from_state(state: Mapping[str, torch.Tensor]) -> dict:
  """``model_files/`` written from a checkpoint's own buffers, so the model
  is built with the body model the checkpoint carries (its ``smpl.*``;
  loading the state_dict afterwards sets the same values again).

  The pickle is the plain-numpy layout ``SMPL_layer`` reads: its
  ``posedirs`` buffer [207, V*3] is ``reshape(pkl, [-1, 207]).T``, so it is
  stored back as ``buffer.T`` reshaped [V, 3, 207]; ``kintree_table`` row 0
  holds the first 24 parents (the layer appends the 5 leaves itself).

  Raises:
    KeyError: a buffer is missing (the message names them).
  """
  absent = [k for k in SMPL_STATE_KEYS + ("init_shape",) if k not in state]
  if absent:
    raise KeyError(
      "the checkpoint lacks the buffers the authors' model is built from: "
      + ", ".join(absent)
    )
  a = {k: state[k].detach().cpu().numpy() for k in SMPL_STATE_KEYS}
  v_template = a["smpl.v_template"]
  nv = v_template.shape[0]
  parents = a["smpl.parents"].astype(np.int64)[:24]
  kintree = np.stack([parents, np.arange(24, dtype=np.int64)])
  model = {
    "v_template": v_template,
    "shapedirs": a["smpl.shapedirs"],
    "posedirs": np.ascontiguousarray(a["smpl.posedirs"].T.reshape(nv, 3, -1)),
    "J_regressor": a["smpl.J_regressor"],
    "weights": a["smpl.lbs_weights"],
    "f": a["smpl.faces_tensor"].astype(np.int64),
    "kintree_table": kintree,
  }

  def smpl(dst: Path) -> None:
    with open(dst, "wb") as f:
      pickle.dump(model, f, protocol=2)

  init_shape = state["init_shape"].detach().cpu().numpy()
  return {
    SMPL_PKL: smpl,
    H36M_REGRESSOR: lambda dst: np.save(dst, a["smpl.J_regressor_h36m"]),
    MEAN_BETA: lambda dst: np.save(dst, init_shape),
  }


def prepare_workdir(
  authors_src: Path, work: Path, files: Mapping[str, Writer]
) -> None:
  """``work/model_files/*`` (from ``files``) and ``work/hybrik`` -> the
  checkout's package (relative paths of their constructors)."""
  (work / "model_files").mkdir(parents=True, exist_ok=True)
  for name, write in files.items():
    write(work / "model_files" / name)
  link = work / "hybrik"
  if not link.exists():
    link.symlink_to(Path(authors_src) / "hybrik")


def load_cfg(authors_src: Path, arch: str):
  import yaml
  from easydict import EasyDict

  with open(Path(authors_src) / CONFIGS[arch]) as f:
    return EasyDict(yaml.load(f, Loader=yaml.FullLoader))


def build_model(authors_src: Path, work: Path, arch: str):
  """``builder.build_sppe(cfg.MODEL)`` run from ``work`` (relative paths);
  eval mode."""
  from hybrik.models import builder

  cfg = load_cfg(authors_src, arch)
  cwd = os.getcwd()
  os.chdir(work)
  try:
    with contextlib.redirect_stdout(sys.stderr):
      model = builder.build_sppe(cfg.MODEL)
  finally:
    os.chdir(cwd)
  return model.eval()


def load_state(model, state: Mapping, strict_keys: bool = True) -> None:
  """Loads ``state`` (numpy arrays or tensors) over the model's own
  state_dict: with ``strict_keys`` every key of the model must be given
  (else keys absent from ``state``, e.g. a recipe's ``smpl.*``, keep the
  model's values); unexpected keys always raise."""
  full = {k: v.clone() for k, v in model.state_dict().items()}
  for k, v in state.items():
    full[k] = v if torch.is_tensor(v) else torch.from_numpy(np.array(v))
  if strict_keys:
    missing = sorted(set(model.state_dict()) - set(state))
    if missing:
      raise RuntimeError(f"missing keys: {', '.join(missing[:30])}")
  model.load_state_dict(full, strict=True)


def bn_modules(module):
  return [m for m in module.modules() if isinstance(m, torch.nn.BatchNorm2d)]


# ---------------------------------------------------------------------------
# The forward
# ---------------------------------------------------------------------------


def intended_flip_heatmap(model):
  """``flip_heatmap`` with the intended shift (RHS cloned before the copy:
  ``new[x] = old[x - 1]``, ``new[0] = old[0]``). The authors' in-place
  ``h[..., 1:] = h[..., 0:-1]`` depends on the CPU's SIMD width."""

  def flip_heatmap(heatmaps, shift=True):
    heatmaps = heatmaps.flip(dims=(4,))
    for a, b in model.joint_pairs_29:
      idx = torch.tensor((a, b))
      heatmaps[:, idx] = heatmaps[:, torch.tensor((b, a))]
    if shift:
      heatmaps[..., 1:] = heatmaps[..., :-1].clone()
    return heatmaps

  return flip_heatmap


class _Float64Torch(types.ModuleType):
  """``torch`` for the authors' modules in a float64 run: ``torch.float32``
  (their explicit dtypes of arange / zeros) reads float64."""

  def __init__(self):
    super().__init__("torch")

  def __getattr__(self, name):
    if name == "float32":
      return torch.float64
    return getattr(torch, name)


@contextlib.contextmanager
def precision(model, dtype):
  """float32: nothing. float64: the model in float64, default dtype float64,
  ``torch.float32`` of the authors' modules -> float64, ``Tensor.float()``
  keeping float64 tensors (restored afterwards, weights cast back)."""
  if dtype == torch.float32:
    yield model
    return
  import hybrik.models.HRNetWithCam as hr
  import hybrik.models.layers.smpl.lbs as lbs
  import hybrik.models.simple3dposeSMPLWithCam as rn

  mods = (hr, rn, lbs)
  saved = [m.torch for m in mods]
  orig_float = torch.Tensor.float
  prev = torch.get_default_dtype()

  def keep64(self, *a, **k):
    return self if self.dtype == torch.float64 else orig_float(self, *a, **k)

  model.double()
  model.smpl_dtype = torch.float64
  model.smpl.dtype = torch.float64
  for m in mods:
    m.torch = _Float64Torch()
  torch.Tensor.float = keep64
  torch.set_default_dtype(torch.float64)
  try:
    yield model
  finally:
    torch.set_default_dtype(prev)
    torch.Tensor.float = orig_float
    for m, t in zip(mods, saved, strict=True):
      m.torch = t
    model.float()
    model.smpl_dtype = torch.float32
    model.smpl.dtype = torch.float32


def watched_modules(model, arch: str) -> dict:
  """The intermediates :func:`forward` captures (first call = unflipped)."""
  if arch == "hrnet_w48_cam":
    return {
      "backbone_features": model.preact.final_feat_layer,
      "heatmap_logits": model.preact.final_layer,
    }
  return {
    "backbone_features": model.preact,
    "deconv_features": model.deconv_layers,
    "heatmap_logits": model.final_layer,
  }


def forward(
  model,
  arch: str,
  images: np.ndarray,
  dtype,
  *,
  bboxes: np.ndarray | None = None,
  img_center: np.ndarray | None = None,
  flip: bool = False,
) -> dict:
  """One eval forward under ``torch.no_grad()``.

  Args:
    images: [N, 3, 256, 256] the network input (normalised RGB), NCHW.
    dtype: torch.float32 or torch.float64 (:func:`precision`).
    bboxes: optional [N, 4] x1, y1, x2, y2 (px), with ``img_center`` [N, 2].
    flip: ``flip_test=True`` with the intended flip shift (HRNet).

  Returns:
    :data:`OUT_KEYS` the model returns and the intermediates of
    :func:`watched_modules` (the first, unflipped, call), numpy float64;
    ``update_scale_calls`` (HRNet): 'ok' or 'raised: ...' per call of
    ``update_scale`` (their ``try/except RuntimeError`` swallows a raise).
  """
  captured = {}

  def keep_first(name):
    def hook(module, args, output):  # returns None: the output is unchanged
      captured.setdefault(name, output.detach().clone())

    return hook

  watched = watched_modules(model, arch)
  hooks = [m.register_forward_hook(keep_first(k)) for k, m in watched.items()]
  calls = []
  if arch == "hrnet_w48_cam":
    orig = type(model).update_scale.__get__(model)

    def update_scale(*a, **k):
      try:
        r = orig(*a, **k)
      except RuntimeError as e:
        calls.append(f"raised: {str(e).splitlines()[0]}")
        raise
      calls.append("ok")
      return r

    model.update_scale = update_scale
    model.flip_heatmap = intended_flip_heatmap(model)
  kwargs = {}
  if bboxes is not None:
    kwargs = {
      "bboxes": torch.from_numpy(np.asarray(bboxes)).to(dtype),
      "img_center": torch.from_numpy(np.asarray(img_center)).to(dtype),
    }
  try:
    with precision(model, dtype), torch.no_grad():
      x = torch.from_numpy(np.ascontiguousarray(images)).to(dtype)
      out = model(x, flip_test=flip, **kwargs)
  finally:
    for h in hooks:
      h.remove()
    model.__dict__.pop("update_scale", None)
    model.__dict__.pop("flip_heatmap", None)
  res = {
    k: out[k].detach().numpy().astype(np.float64) for k in OUT_KEYS if k in out
  }
  for k, v in captured.items():
    res[k] = v.numpy().astype(np.float64)
  res["update_scale_calls"] = calls
  return res
