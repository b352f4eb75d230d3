"""mmhuman3d 0.11.0's HybrIK (PyTorch, CPU) as a command: the reference side
of the parity checks. Talks to its caller only through files.

Runs in the reference venv (``scripts/setup_reference.sh`` builds
``.refvenv``), never in the project's torch-free venv::

  .refvenv/bin/python reference/run_hybrik.py model --checkpoint CKPT.pth \\
      --inputs IN.npz --out OUT.npz [--dtype float32|float64] \\
      [--smpl SMPL.pkl [--h36m-regressor J_regressor_h36m.npy]] \\
      [--threads N] [--heatmap-stride S] [--trust-pickle]
  .refvenv/bin/python reference/run_hybrik.py data --checkpoint CKPT.pth \\
      --data FILE.npz [--image-root DIR] --dataset-name pw3d|h36m|mpi_inf_3dhp \\
      --out OUT.npz [--num N] [--metrics mpjpe,pa-mpjpe,pve] [--dtype ...]
  .refvenv/bin/python reference/run_hybrik.py save --state STATE.npz \\
      --out CKPT.pth --format torch|mmcv_adam|module [--perturb SEED]

Exit status 0 on success (one JSON summary line on stdout), 1 on bad input
(a one-line ``run_hybrik: error: ...`` on stderr; a checkpoint that does not
match the architecture names the missing/unexpected keys), 2 on a bad command
line.

``model``
  Builds mmhuman3d's own ``HybrIK_trainer`` as
  ``configs/hybrik/resnet34_hybrik_mixed.py`` does (``ResNet`` depth 34,
  ``out_indices=[3]``, ``norm_eval=False``; ``HybrIKHead`` with default
  arguments; ``HybrIKSMPL`` with the H36M extra regressor), loads the
  checkpoint, and runs the eval-mode forward under ``torch.no_grad()`` on the
  CPU: ``feats = backbone(img)[0]`` then ``head(feats, trans_inv,
  intrinsic_param, joint_root, depth_factor, smpl)`` exactly as
  ``HybrIK_trainer.forward_test`` calls them (neck is None). The head's
  hard-coded CUDA calls (``torch.cuda.comm.broadcast``,
  ``torch.cuda.FloatTensor``) are routed to the CPU; nothing else of
  mmhuman3d is changed.

  IN.npz (``allow_pickle=False``; any float dtype, cast to the run's dtype;
  N >= 1 samples; other keys are ignored, so golden_model.npz can be fed back
  in):

  ================= =============== ==========================================
  key               shape           meaning
  ================= =============== ==========================================
  img               [N,3,256,256]   the network input, already normalised
                                    (RGB, (x - mean) / std of
                                    img_norm_cfg), NCHW. ``img_nchw`` is
                                    accepted as an alias. H = W = 256: the
                                    head's 64x64x64 heatmap volume needs
                                    64x64 deconv maps.
  trans_inv         [N,2,3]         inverse affine crop transform: 256-px
                                    crop (u, v, 1) -> original image pixels
  intrinsic_param   [N,3,3]         the INVERSE camera matrix K^-1 (1/px)
  joint_root        [N,3]           root joint in camera coordinates, mm
  depth_factor      [N,1]           depth scale, mm (2000 = 2 m)
  ================= =============== ==========================================

  OUT.npz (every array in the run's dtype, float32 or float64; units as
  mmhuman3d returns them):

  ============================ =============== ================================
  key                          shape           meaning
  ============================ =============== ================================
  pred_uvd_jts                 [N,87]          29 joints (u, v, d) in [-0.5,
                                               0.5] (soft-argmax of heatmaps)
  pred_xyz_jts_24              [N,72]          24 joints from uvd, camera
                                               frame, root-relative, in units
                                               of depth_factor
  pred_xyz_jts_24_struct       [N,72]          24 SMPL joints after the IK
                                               (metres / 2, root-relative)
  pred_xyz_jts_17              [N,51]          17 H36M joints from vertices
                                               (metres / 2, root-relative)
  pred_vertices                [N,6890,3]      mesh, metres, body-model
                                               frame: not root-relative (the
                                               pelvis keeps its rest-pose
                                               position J_regressor[0] @
                                               v_shaped)
  pred_pose                    [N,24,3,3]      rotation matrices of the IK
  pred_shape                   [N,10]          betas (init_shape + delta)
  pred_delta_shape             [N,10]          betas - head.init_shape
  pred_phi                     [N,23,2]        twist (cos, sin), unnormalised
  maxvals                      [N,29,1]        ones (softmax normalisation)
  backbone_features            [N,512,8,8]     ResNet-34 layer4 output
  deconv_features              [N,256,h,w]     deconv stack output (after the
                                               last ReLU), h = w = 64 / S
  heatmap_logits               [N,1856,h,w]    final 1x1 conv output (29 joints
                                               x 64 depth bins), before the
                                               softmax, h = w = 64 / S
  meta                         0-d str         JSON: versions, dtype, threads,
                                               checkpoint kind, keys loaded,
                                               body-model source, timings
  ============================ =============== ================================

  S is ``--heatmap-stride`` (default 1: full maps; 8 gives golden_model.npz's
  ``heatmap_logits_sample``; maps are ``[..., ::S, ::S]``).

  Checkpoints (``torch.load(..., weights_only=True)``; ``--trust-pickle``
  allows arbitrary pickles, only for files you trust): (a) mmcv
  ``save_checkpoint`` containers (``{'meta', 'state_dict'[, 'optimizer']}``),
  (b) a bare state_dict, (c) either with DataParallel ``module.`` key
  prefixes. Keys are matched strictly against the model's state_dict (names
  and shapes; every missing and unexpected key is named), with one
  exception: ``smpl.tpose_joints``, a buffer that mmhuman3d added in 2023
  (absent from the released 2022 checkpoint), may be missing; the model then
  keeps the value it computes itself (J_regressor @ v_template).

  Body model: mmhuman3d builds ``HybrIKSMPL`` from an SMPL model file, and the
  checkpoint also holds that body model as ``smpl.*`` buffers. By default a
  plain-numpy SMPL pickle (``SMPL_NEUTRAL.pkl``: ``v_template``,
  ``shapedirs``, ``posedirs`` [V,3,207], dense ``J_regressor``, ``weights``,
  ``f``, ``kintree_table``, ``J``) and ``J_regressor_h36m.npy`` are written
  to a temporary folder FROM THE CHECKPOINT'S OWN ``smpl.*`` buffers, so the
  layer built from them holds exactly the checkpoint's body model (checked:
  ``meta.smpl_rebuild_mismatch`` lists any buffer that differs, expected
  empty), and then the whole state_dict is loaded. With ``--smpl PATH`` (a
  plain-numpy pickle, ``.pkl`` or ``.pkl.gz``, or a folder holding
  ``SMPL_NEUTRAL.pkl``) the layer is built from that file and the H36M
  regressor (``--h36m-regressor``, default ``J_regressor_h36m.npy`` next to
  the SMPL file or one folder up, mmhuman3d's ``data/body_models`` layout),
  and the checkpoint's ``smpl.*`` entries are ignored (``meta`` lists them,
  and which differ from the file's).

  ``--dtype float64`` runs the same code in float64, to measure the
  reference's own float32 noise: weights are loaded, then cast with
  ``model.double()``; ``HybrIKSMPL.dtype`` and ``HybrIKHead.smpl_dtype`` are
  float64; the default dtype is float64 during the forward (the IK's SVD
  branch builds ``torch.eye(3)`` in it); ``torch.cuda.FloatTensor`` is routed
  to ``torch.DoubleTensor``; inputs are cast to float64. The head ends with
  ``.float()`` on vertices, struct joints, H36M joints and poses; in a
  float64 run those casts leave float64 tensors as they are (so every output
  is a float64 result; ``maxvals`` is made float32 by the head and is exactly
  1). ``--threads N`` sets ``torch.set_num_threads`` (default 2, as the
  golden fixtures; 1 thread changes float32 logits by ~3e-6 and pred_pose
  by ~2e-4, see /work/shared/fixtures/README.md).

``data``
  mmhuman3d's own test data path on a HumanData file: a
  ``HybrIKHumanImageDataset`` (``test_mode=True``) with the config's
  ``test_pipeline`` (``test_hp3d_pipeline``'s joint map for mpi_inf_3dhp),
  built on mmhuman3d's folder layout made of links in a temporary folder
  (``preprocessed_datasets/<file>``, ``datasets/<dataset_name>`` ->
  ``--image-root``, default the file's folder). The first ``--num`` samples
  (0: all) are collated in batches of ``--batch-size`` with mmcv's
  ``collate`` and run through ``HybrIK_trainer.forward_test`` (the path
  ``tools/test.py`` takes; ``Tensor.cuda`` is the identity). OUT.npz holds
  ``input_<k>`` (the pipeline's img [N,3,256,256], trans_inv,
  intrinsic_param, joint_root, depth_factor [N,1], bbox), ``sample_idx``,
  ``test_<k>`` (forward_test's xyz_17, smpl_pose, smpl_beta, vertices,
  xyz_24) and, without ``--metrics``, the head's outputs with
  ``backbone_features`` and ``heatmap_logits`` as in ``model``. With
  ``--metrics`` (the whole file: ``--num 0``), the dataset's own
  ``evaluate()`` runs on the forward_test results; ``meta`` holds its
  ``metrics_mm``. PVE builds mmhuman3d's ``GenderedSMPL`` from the same
  SMPL file as the model (all three genders point at it).

``save``
  Reads a state_dict stored as an npz (checkpoint key names -> arrays, e.g.
  from ``tests/checkpoint_recipe.py`` ``full_state_dict``), optionally
  perturbs it (``--perturb SEED``: every floating array except ``smpl.*`` and
  ``*num_batches_tracked`` is multiplied by ``1 + 0.01 * U(-1, 1)``, drawn
  from ``numpy.random.default_rng(SEED)`` in key order, computed in float64
  and cast back), and writes it with the real ``torch.save``:

  * ``torch``: ``{'meta': {...}, 'state_dict': OrderedDict}`` (mmcv's
    container; no optimizer);
  * ``module``: a bare state_dict with DataParallel ``module.`` prefixes;
  * ``mmcv_adam``: ``mmcv.runner.save_checkpoint(model, OUT, optimizer=adam,
    meta=...)`` on the real ``HybrIK_trainer`` after loading the (perturbed)
    state as ``model`` does and taking ONE real ``torch.optim.Adam`` step
    (lr 1e-3, the config's; betas/eps default) on the dummy loss
    ``0.5 * sum(p**2)`` over all parameters (no forward pass, so BatchNorm
    statistics and the ``smpl.*`` buffers are unchanged). The file therefore
    holds the POST-STEP weights (every parameter moved by
    ``-lr * p / (|p| + eps)``, about -1e-3 * sign(p)) plus the Adam state: a
    parity check must compare against whatever the file holds (run ``model``
    on the file), not against STATE.

Reproducibility: two runs on one machine give the same bits (and ``model``
gives the bits of the fixture procedure that made golden_model.npz, run on
the same machine). Across CPUs float32 results can differ in the last bits:
on this project's machines the ResNet backbone reproduces golden_model.npz
bit for bit, but the head's ConvTranspose2d kernels round differently
(deconv features <= 6e-8, logits ~2e-6, pred_pose ~2e-4, the size of the
reference's own float32 noise; /work/shared/fixtures/README.md "Tolerances
observed"). The float64 run here reproduces that README's float32-vs-float64
figures against the stored float32 golden file.

Only this script's own glue is new; every numeric operation is mmhuman3d's,
smplx's or torch's.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import gzip
import json
import os
import pickle
import platform
import re
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Mapping
from pathlib import Path

warnings.filterwarnings("ignore")  # mmcv 1.x's deprecation notices
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import refenv  # noqa: E402  (before anything imports mmhuman3d)
import torch  # noqa: E402

ARCHITECTURE = "resnet34_hybrik_mixed"
IMG_SIZE = 256
INPUT_SHAPES = {  # trailing shapes after N
  "img": (3, IMG_SIZE, IMG_SIZE),
  "trans_inv": (2, 3),
  "intrinsic_param": (3, 3),
  "joint_root": (3,),
  "depth_factor": (1,),
}
INPUT_ALIASES = {"img": ("img", "img_nchw")}
# smpl.* buffers the SMPL pickle is written from (all must be present when
# the body model comes from the checkpoint).
SMPL_SOURCE_KEYS = (
  "smpl.v_template",
  "smpl.shapedirs",
  "smpl.posedirs",
  "smpl.J_regressor",
  "smpl.lbs_weights",
  "smpl.faces_tensor",
  "smpl.parents",
  "smpl.joints_regressor_extra",
)
# Buffers of the checkpoint that the layer built from the pickle must
# reproduce exactly (children_map follows from parents).
SMPL_REBUILT_KEYS = SMPL_SOURCE_KEYS + ("smpl.children_map",)
# May be missing from a checkpoint (added to mmhuman3d in 2023).
OPTIONAL_KEYS = ("smpl.tpose_joints",)
ADAM_LR = 1e-3
PERTURB_REL = 0.01


class RunError(Exception):
  """Bad input: reported as one line, exit status 1."""


# -----------------------------------------------------------------------------
# Checkpoints
# -----------------------------------------------------------------------------


def read_checkpoint(path: Path, trust_pickle: bool = False):
  """Reads a .pth: (state_dict with plain keys, description dict)."""
  if not path.is_file():
    raise RunError(f"checkpoint not found: {path}")
  try:
    obj = torch.load(path, map_location="cpu", weights_only=not trust_pickle)
  except pickle.UnpicklingError as e:
    lines = [
      re.sub(r"\x1b\[[0-9;]*m", "", l).strip() for l in str(e).splitlines()
    ]
    why = [l for l in lines if "Unsupported" in l] or [l for l in lines if l]
    raise RunError(
      f"{path}: not loadable with weights_only=True "
      f"({why[0] if why else 'pickle error'}); pass --trust-pickle if you "
      "trust the file"
    ) from e
  except Exception as e:
    raise RunError(f"{path}: not a torch checkpoint: {e}") from e
  info = {"has_meta": False, "has_optimizer": False, "module_prefix": False}
  if not isinstance(obj, Mapping):
    raise RunError(f"{path}: holds a {type(obj).__name__}, not a state_dict")
  if "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
    kind = "mmcv"
    info["has_meta"] = "meta" in obj
    info["has_optimizer"] = "optimizer" in obj
    info["container_keys"] = sorted(map(str, obj))
    state = obj["state_dict"]
  else:
    kind = "state_dict"
    state = obj
  bad = [str(k) for k, v in state.items() if not torch.is_tensor(v)]
  if bad or not state:
    top = sorted(map(str, obj))[:8]
    raise RunError(
      f"{path}: no state_dict found (top-level keys {top}"
      + (f"; non-tensor entries {bad[:5]}" if bad else "")
      + ")"
    )
  keys = list(state)
  if all(k.startswith("module.") for k in keys):
    state = collections.OrderedDict(
      (k[len("module.") :], v) for k, v in state.items()
    )
    info["module_prefix"] = True
  info["kind"] = kind + ("+module" if info["module_prefix"] else "")
  if info["has_optimizer"]:
    info["kind"] += "+optimizer"
  return collections.OrderedDict(state), info


def _name_keys(keys: list[str], limit: int = 30) -> str:
  shown = ", ".join(keys[:limit])
  return shown + (f" (+{len(keys) - limit} more)" if len(keys) > limit else "")


def check_keys(
  model_state: Mapping, state: Mapping, ignore_smpl: bool
) -> tuple[dict, list[str], list[str]]:
  """Strict name/shape matching; returns (to_load, allowed_missing, ignored).

  Raises RunError naming every missing, unexpected or mis-shaped key.
  """
  ignored = [k for k in state if ignore_smpl and k.startswith("smpl.")]
  skip = set(ignored)
  missing, allowed = [], []
  for k in model_state:
    if k in state or (ignore_smpl and k.startswith("smpl.")):
      continue
    (allowed if k in OPTIONAL_KEYS else missing).append(k)
  unexpected = [k for k in state if k not in model_state and k not in skip]
  shapes = [
    f"{k} {list(state[k].shape)} (model: {list(model_state[k].shape)})"
    for k in state
    if k in model_state
    and k not in skip
    and tuple(state[k].shape) != tuple(model_state[k].shape)
  ]
  problems = []
  if missing:
    problems.append(f"missing keys: {_name_keys(missing)}")
  if unexpected:
    problems.append(f"unexpected keys: {_name_keys(unexpected)}")
  if shapes:
    problems.append(f"shape mismatches: {_name_keys(shapes)}")
  if problems:
    raise RunError(
      f"checkpoint does not match mmhuman3d's HybrIK ({ARCHITECTURE}): "
      + "; ".join(problems)
    )
  to_load = {k: v for k, v in state.items() if k not in skip}
  return to_load, allowed, ignored


# -----------------------------------------------------------------------------
# Body-model files
# -----------------------------------------------------------------------------


def write_smpl_from_state(state: Mapping, folder: Path) -> tuple[Path, Path]:
  """Writes smpl/SMPL_NEUTRAL.pkl and J_regressor_h36m.npy from smpl.*.

  The pickle is the plain-numpy layout smplx reads (no chumpy, dense
  J_regressor). smplx builds ``posedirs`` as ``reshape(pkl, [-1, 207]).T``,
  so the buffer [207, V*3] is stored back as ``buffer.T`` reshaped [V,3,207];
  ``kintree_table`` row 0 holds the first 24 parents (smplx resets the root
  to -1 itself; HybrIKSMPL appends the 5 leaves).
  """
  absent = [k for k in SMPL_SOURCE_KEYS if k not in state]
  if absent:
    raise RunError(
      "checkpoint lacks the smpl.* buffers the body model is built from "
      f"(pass --smpl SMPL.pkl to use a model file instead): missing keys: "
      f"{_name_keys(absent)}"
    )
  a = {k: state[k].detach().cpu().numpy() for k in SMPL_SOURCE_KEYS}
  v_template = a["smpl.v_template"]
  nv = v_template.shape[0]
  posedirs = a["smpl.posedirs"]
  if posedirs.ndim != 2 or posedirs.shape[1] != nv * 3:
    raise RunError(
      f"smpl.posedirs {list(posedirs.shape)} is not [P, {nv * 3}] "
      f"(V = {nv} from smpl.v_template)"
    )
  j_regressor = a["smpl.J_regressor"]
  parents = a["smpl.parents"].astype(np.int64)
  nj = j_regressor.shape[0]
  kintree = np.stack([parents[:nj], np.arange(nj, dtype=np.int64)])
  kintree[0, 0] = -1
  model = {
    "v_template": v_template,
    "shapedirs": a["smpl.shapedirs"],
    "posedirs": np.ascontiguousarray(posedirs.T.reshape(nv, 3, -1)),
    "J_regressor": j_regressor,
    "weights": a["smpl.lbs_weights"],
    "f": a["smpl.faces_tensor"].astype(np.uint32),
    "kintree_table": kintree,
    "J": j_regressor.astype(np.float64) @ v_template.astype(np.float64),
    "bs_style": "lbs",
    "bs_type": "lrotmin",
  }
  (folder / "smpl").mkdir(parents=True, exist_ok=True)
  smpl_file = folder / "smpl" / "SMPL_NEUTRAL.pkl"
  with open(smpl_file, "wb") as f:
    pickle.dump(model, f, protocol=2)
  h36m_file = folder / "J_regressor_h36m.npy"
  np.save(h36m_file, a["smpl.joints_regressor_extra"])
  return smpl_file, h36m_file


def resolve_smpl_file(
  smpl: Path, h36m: Path | None, folder: Path
) -> tuple[Path, Path]:
  """The --smpl model file (gunzipped into folder if .gz) and H36M file."""
  if smpl.is_dir():
    smpl = smpl / "SMPL_NEUTRAL.pkl"
  if not smpl.is_file():
    raise RunError(f"SMPL model file not found: {smpl}")
  if smpl.suffix == ".gz":
    target = folder / "smpl" / smpl.name[: -len(".gz")]
    target.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(smpl, "rb") as src, open(target, "wb") as dst:
      shutil.copyfileobj(src, dst)
    model_file = target
  else:
    model_file = smpl
  if h36m is None:
    for cand in (
      smpl.parent / "J_regressor_h36m.npy",
      smpl.parent.parent / "J_regressor_h36m.npy",
    ):
      if cand.is_file():
        h36m = cand
        break
    else:
      raise RunError(
        f"no J_regressor_h36m.npy next to {smpl} or one folder up; pass "
        "--h36m-regressor"
      )
  if not h36m.is_file():
    raise RunError(f"H36M regressor not found: {h36m}")
  return model_file, h36m


# -----------------------------------------------------------------------------
# The model
# -----------------------------------------------------------------------------


def route_cuda_to_cpu(dtype: torch.dtype) -> None:
  """HybrIKHead.forward broadcasts arange(64) with torch.cuda.comm and casts
  it with torch.cuda.FloatTensor: on the CPU, identity and the CPU type of
  the run's dtype."""
  import torch.cuda.comm

  torch.cuda.comm.broadcast = lambda tensor, devices=None: [tensor]
  torch.cuda.FloatTensor = (
    torch.DoubleTensor if dtype == torch.float64 else torch.FloatTensor
  )


def build_model(smpl_file: Path, h36m_file: Path, mean_beta_file: Path):
  """mmhuman3d's HybrIK_trainer as resnet34_hybrik_mixed.py configures it."""
  from mmhuman3d.models.architectures.hybrik import HybrIK_trainer

  cfg = dict(
    backbone=dict(
      type="ResNet",
      depth=34,
      out_indices=[3],
      norm_eval=False,
      init_cfg=dict(type="Pretrained", checkpoint="torchvision://resnet34"),
    ),
    head=dict(type="HybrIKHead", smpl_mean_params=str(mean_beta_file)),
    body_model=dict(
      type="HybrIKSMPL",
      model_path=str(smpl_file),
      extra_joints_regressor=str(h36m_file),
    ),
    loss_beta=dict(type="MSELoss", loss_weight=1),
    loss_theta=dict(type="MSELoss", loss_weight=0.01),
    loss_twist=dict(type="MSELoss", loss_weight=0.2),
    loss_uvd=dict(type="L1Loss", loss_weight=1),
  )
  # smplx prints a notice about 10 shape components on stdout.
  with contextlib.redirect_stdout(sys.stderr):
    model = HybrIK_trainer(**cfg)
  return model.eval()  # init_weights() is never called (no download)


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
  return (
    a.shape == b.shape
    and a.dtype == b.dtype
    and bool(torch.equal(a.cpu(), b.cpu()))
  )


def load_model(
  state: Mapping,
  folder: Path,
  smpl: Path | None = None,
  h36m: Path | None = None,
):
  """Builds the model with its body model, loads ``state`` strictly.

  Returns (model, info dict for meta).
  """
  info = {}
  if smpl is None:
    smpl_file, h36m_file = write_smpl_from_state(state, folder)
    info["smpl_source"] = "checkpoint smpl.* buffers"
  else:
    smpl_file, h36m_file = resolve_smpl_file(smpl, h36m, folder)
    info["smpl_source"] = str(smpl)
    info["h36m_regressor"] = str(h36m_file)
  mean_beta = folder / "init_shape.npy"  # overwritten by head.init_shape
  init = state.get("head.init_shape")
  np.save(
    mean_beta,
    np.zeros(10) if init is None else init.detach().cpu().numpy(),
  )
  info["smpl_file"] = str(smpl_file)  # the SMPL pickle the layer was built from
  model = build_model(smpl_file, h36m_file, mean_beta)
  model_state = model.state_dict()
  to_load, allowed, ignored = check_keys(model_state, state, smpl is not None)
  if smpl is None:
    info["smpl_rebuild_mismatch"] = [
      k for k in SMPL_REBUILT_KEYS if not _same(model_state[k], state[k])
    ]
    if info["smpl_rebuild_mismatch"]:
      print(
        "run_hybrik: warning: the layer built from the checkpoint's SMPL "
        f"differs in {info['smpl_rebuild_mismatch']}; the checkpoint's "
        "values are loaded over them",
        file=sys.stderr,
      )
  else:
    info["smpl_buffers_ignored"] = ignored
    info["smpl_differs_from_checkpoint"] = [
      k
      for k in ignored
      if k in model_state and not _same(model_state[k], state[k])
    ]
  result = model.load_state_dict(to_load, strict=False)
  leftover = set(result.missing_keys) - set(allowed)
  if smpl is not None:
    leftover = {k for k in leftover if not k.startswith("smpl.")}
  if leftover or result.unexpected_keys:  # check_keys should have caught it
    raise RunError(
      f"load_state_dict: missing {sorted(leftover)}, unexpected "
      f"{result.unexpected_keys}"
    )
  info["n_keys_loaded"] = len(to_load)
  info["missing_allowed"] = allowed
  return model, info


@contextlib.contextmanager
def float64_run(active: bool):
  """Default dtype float64, and Tensor.float() keeping float64 tensors."""
  if not active:
    yield
    return
  prev = torch.get_default_dtype()
  orig_float = torch.Tensor.float

  def keep_float64(self, *args, **kwargs):
    if self.dtype == torch.float64:
      return self
    return orig_float(self, *args, **kwargs)

  torch.set_default_dtype(torch.float64)
  torch.Tensor.float = keep_float64
  try:
    yield
  finally:
    torch.Tensor.float = orig_float
    torch.set_default_dtype(prev)


def read_inputs(path: Path, np_dtype) -> tuple[dict, dict]:
  """IN.npz -> validated arrays in the run's dtype, and their input dtypes."""
  if not path.is_file():
    raise RunError(f"inputs not found: {path}")
  try:
    npz = np.load(path, allow_pickle=False)
  except Exception as e:
    raise RunError(f"{path}: not an npz file: {e}") from e
  arrays, dtypes = {}, {}
  with npz:
    for name, tail in INPUT_SHAPES.items():
      found = [a for a in INPUT_ALIASES.get(name, (name,)) if a in npz.files]
      if not found:
        raise RunError(f"{path}: missing input {name!r} (has {npz.files})")
      x = npz[found[0]]
      if x.dtype.kind != "f":
        raise RunError(f"{path}: {found[0]} has dtype {x.dtype}, not float")
      if x.ndim != len(tail) + 1 or tuple(x.shape[1:]) != tail:
        raise RunError(
          f"{path}: {found[0]} has shape {list(x.shape)}, want "
          f"[N, {', '.join(map(str, tail))}]"
        )
      if not np.isfinite(x).all():
        raise RunError(f"{path}: {found[0]} holds non-finite values")
      arrays[name] = np.ascontiguousarray(x, dtype=np_dtype)
      dtypes[name] = str(x.dtype)
  n = {name: x.shape[0] for name, x in arrays.items()}
  if len(set(n.values())) != 1 or arrays["img"].shape[0] == 0:
    raise RunError(f"{path}: inconsistent or empty batch sizes {n}")
  return arrays, dtypes


def versions() -> dict:
  import mmcv
  import mmhuman3d
  import smplx

  smplx_version = getattr(smplx, "__version__", None)
  if smplx_version is None:
    from importlib import metadata

    smplx_version = metadata.version("smplx")
  return {
    "torch": torch.__version__,
    "mmhuman3d": mmhuman3d.__version__,
    "mmcv": mmcv.__version__,
    "mmcv_reported_to_mmhuman3d": refenv.MMCV_SPOOFED_VERSION,
    "smplx": smplx_version,
    "numpy": np.__version__,
    "python": platform.python_version(),
    "pytorch3d_rotations": "reference/p3d_rotations.py (v0.7.4)"
    if refenv.PYTORCH3D_STUBBED
    else "pytorch3d",
  }


def start_run(args) -> tuple[bool, type]:
  """Threads and the CUDA routing of a ``model``/``data`` run; returns
  (float64 run?, numpy dtype of the outputs)."""
  f64 = args.dtype == "float64"
  torch.set_num_threads(args.threads)
  route_cuda_to_cpu(torch.float64 if f64 else torch.float32)
  return f64, (np.float64 if f64 else np.float32)


def set_run_dtype(model, f64: bool) -> None:
  """Eval mode; in a float64 run also the weights and the body-model dtypes
  (``HybrIKSMPL.dtype`` and ``HybrIKHead.smpl_dtype`` are hard-coded)."""
  if f64:
    model.double()
    model.smpl.dtype = torch.float64
    model.head.smpl_dtype = torch.float64
  model.eval()


def write_outputs(out: Path, arrays: Mapping, meta: Mapping) -> None:
  """OUT.npz with ``meta`` as a JSON string, written atomically."""
  out.parent.mkdir(parents=True, exist_ok=True)
  part = out.with_name(out.name + ".part.npz")
  np.savez(part, **arrays, meta=np.array(json.dumps(meta)))
  os.replace(part, out)


def cmd_model(args) -> dict:
  t_start = time.perf_counter()
  f64, np_dtype = start_run(args)
  inputs, input_dtypes = read_inputs(args.inputs, np_dtype)
  state, ck_info = read_checkpoint(args.checkpoint, args.trust_pickle)
  with tempfile.TemporaryDirectory(prefix="run_hybrik_") as tmp:
    model, load_info = load_model(state, Path(tmp), args.smpl, args.h36m)
  set_run_dtype(model, f64)
  t_built = time.perf_counter()

  captured = {}
  hooks = [
    model.head.deconv_layers.register_forward_hook(
      lambda m, i, o: captured.__setitem__("deconv_features", o)
    ),
    model.head.final_layer.register_forward_hook(
      lambda m, i, o: captured.__setitem__("heatmap_logits", o)
    ),
  ]
  t = {k: torch.from_numpy(v) for k, v in inputs.items()}
  with torch.no_grad(), float64_run(f64):
    feats = model.backbone(t["img"])[0]
    out = model.head(
      feats,
      t["trans_inv"],
      t["intrinsic_param"],
      t["joint_root"],
      t["depth_factor"],
      model.smpl,
    )
  for h in hooks:
    h.remove()
  t_forward = time.perf_counter()

  s = args.heatmap_stride
  result = {k: v for k, v in out.items()}
  result["backbone_features"] = feats
  result["deconv_features"] = captured["deconv_features"][..., ::s, ::s]
  result["heatmap_logits"] = captured["heatmap_logits"][..., ::s, ::s]
  arrays = {
    k: np.array(v.detach().cpu().numpy(), dtype=np_dtype, order="C")
    for k, v in result.items()
  }
  meta = {
    "tool": "reference/run_hybrik.py model",
    "architecture": ARCHITECTURE,
    **versions(),
    "dtype": args.dtype,
    "threads": torch.get_num_threads(),
    "checkpoint": str(args.checkpoint),
    "checkpoint_kind": ck_info["kind"],
    "checkpoint_info": ck_info,
    "n_keys_in_checkpoint": len(state),
    **load_info,
    "inputs": str(args.inputs),
    "input_dtypes": input_dtypes,
    "batch": int(inputs["img"].shape[0]),
    "heatmap_stride": s,
    "float64_head_casts": "kept float64" if f64 else None,
    "seconds_build": round(t_built - t_start, 3),
    "seconds_forward": round(t_forward - t_built, 3),
  }
  write_outputs(args.out, arrays, meta)
  return {
    "out": str(args.out),
    "keys": sorted(arrays),
    "n_keys_loaded": load_info["n_keys_loaded"],
    "checkpoint_kind": ck_info["kind"],
    "dtype": args.dtype,
    "seconds_forward": meta["seconds_forward"],
  }


# -----------------------------------------------------------------------------
# data: mmhuman3d's test pipeline, forward_test and evaluate on a HumanData file
# -----------------------------------------------------------------------------

# resnet34_hybrik_mixed.py: HumanData indices of the 17 evaluated joints
# (h36m_idxs; hp3d_idxs for the MPI-INF-3DHP test pipeline) and of the 29
# HybrIK joints, and the image normalisation.
H36M_IDXS = [148, 145, 4, 7, 144, 5, 8, 150, 146, 152, 147, 16, 18, 20, 17]
H36M_IDXS += [19, 21]
HP3D_IDXS = [147, 146, 17, 19, 21, 16, 18, 20, 144, 5, 8, 145, 4, 7, 148]
HP3D_IDXS += [150, 152]
HYBRIK29_IDXS = [*range(15), 22, *range(16, 22), 66, 71, 15, 68, 73, 60, 63]
IMG_NORM = dict(
  mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], to_rgb=True
)
DATA_KEYS = [
  "trans_inv",
  "intrinsic_param",
  "joint_root",
  "depth_factor",
  "target_uvd_29",
  "target_xyz_24",
  "target_weight_24",
  "target_weight_29",
  "target_xyz_17",
  "target_weight_17",
  "target_theta",
  "target_beta",
  "target_smpl_weight",
  "target_theta_weight",
  "target_twist",
  "target_twist_weight",
  "bbox",
  "sample_idx",
]
# Pipeline outputs saved as input_<key> (the network's inputs and the box).
PIPELINE_KEYS = (
  "img",
  "trans_inv",
  "intrinsic_param",
  "joint_root",
  "depth_factor",
  "bbox",
)
# forward_test's result keys (what evaluate() and PVE read) saved as test_<k>.
TEST_KEYS = ("xyz_17", "smpl_pose", "smpl_beta", "vertices", "xyz_24")


def test_pipeline(dataset_name: str) -> list:
  """The config's test_pipeline (test_hp3d_pipeline for mpi_inf_3dhp)."""
  idxs17 = HP3D_IDXS if dataset_name == "mpi_inf_3dhp" else H36M_IDXS
  maps = [
    dict(
      keypoints=[
        "keypoints3d17",
        "keypoints3d17_vis",
        "keypoints3d17_relative",
      ],
      keypoints_index=idxs17,
    ),
    dict(
      keypoints=["keypoints3d", "keypoints3d_vis", "keypoints3d_relative"],
      keypoints_index=HYBRIK29_IDXS,
    ),
  ]
  return [
    dict(type="LoadImageFromFile"),
    dict(type="NewKeypointsSelection", maps=maps),
    dict(type="HybrIKAffine", img_res=IMG_SIZE),
    dict(type="GenerateHybrIKTarget", img_res=IMG_SIZE, test_mode=True),
    dict(type="Normalize", **IMG_NORM),
    dict(type="ImageToTensor", keys=["img"]),
    dict(
      type="Collect",
      keys=["img", *DATA_KEYS],
      meta_keys=["center", "scale", "rotation", "image_path"],
    ),
  ]


def build_dataset(args, folder: Path, smpl_file: Path | None):
  """HybrIKHumanImageDataset on mmhuman3d's folder layout, made of links:
  FOLDER/preprocessed_datasets/<file> and FOLDER/datasets/<dataset_name>."""
  from mmhuman3d.data.datasets import build_dataset as mm_build_dataset

  if not args.data.is_file():
    raise RunError(f"HumanData file not found: {args.data}")
  image_root = args.image_root or args.data.parent
  if not image_root.is_dir():
    raise RunError(f"image root not found: {image_root}")
  (folder / "preprocessed_datasets").mkdir(parents=True)
  (folder / "datasets").mkdir()
  (folder / "preprocessed_datasets" / args.data.name).symlink_to(
    args.data.resolve()
  )
  (folder / "datasets" / args.dataset_name).symlink_to(image_root.resolve())
  body_model = None
  if smpl_file is not None:  # GenderedSMPL reads SMPL_{NEUTRAL,MALE,FEMALE}
    bm = folder / "body_models"
    bm.mkdir()
    for g in ("NEUTRAL", "MALE", "FEMALE"):
      (bm / f"SMPL_{g}.pkl").symlink_to(smpl_file.resolve())
    body_model = dict(type="GenderedSMPL", model_path=str(bm))
  cfg = dict(
    type="HybrIKHumanImageDataset",
    dataset_name=args.dataset_name,
    data_prefix=str(folder),
    pipeline=test_pipeline(args.dataset_name),
    ann_file=args.data.name,
    test_mode=True,
    body_model=body_model,
  )
  # HumanData prints a notice per unknown key on stdout.
  with contextlib.redirect_stdout(sys.stderr):
    try:
      return mm_build_dataset(cfg)
    except Exception as e:
      raise RunError(f"{args.data}: mmhuman3d cannot load it: {e}") from e


def cmd_data(args) -> dict:
  from mmcv.parallel import collate

  t_start = time.perf_counter()
  f64, np_dtype = start_run(args)
  torch.Tensor.cuda = lambda self, *a, **k: self  # forward_test's .cuda()
  metrics = [m for m in (args.metrics or "").split(",") if m]
  state, ck_info = read_checkpoint(args.checkpoint, args.trust_pickle)
  with tempfile.TemporaryDirectory(prefix="run_hybrik_") as tmp:
    folder = Path(tmp)
    model, load_info = load_model(state, folder / "model", args.smpl, args.h36m)
    smpl_file = Path(load_info["smpl_file"]) if "pve" in metrics else None
    dataset = build_dataset(args, folder / "root", smpl_file)
    n_data = len(dataset)
    n = n_data if args.num == 0 else min(args.num, n_data)
    if metrics and n != n_data:
      raise RunError("--metrics evaluates the whole file: use --num 0")
    set_run_dtype(model, f64)
    t_built = time.perf_counter()

    captured = {}
    hooks = [
      model.backbone.register_forward_hook(
        lambda m, i, o: captured.__setitem__("backbone_features", o[0])
      ),
      model.head.final_layer.register_forward_hook(
        lambda m, i, o: captured.__setitem__("heatmap_logits", o)
      ),
      model.head.register_forward_hook(
        lambda m, i, o: captured.__setitem__("head", o)
      ),
    ]
    keep_head = not metrics  # per-output comparison on a few samples
    saved = collections.defaultdict(list)
    outputs = []
    s = args.heatmap_stride
    for start in range(0, n, args.batch_size):
      items = [
        dataset[i] for i in range(start, min(n, start + args.batch_size))
      ]
      batch = collate(items, samples_per_gpu=len(items))
      batch["img_metas"] = batch["img_metas"].data[0]
      if f64:
        batch = {
          k: v.double() if torch.is_tensor(v) and v.is_floating_point() else v
          for k, v in batch.items()
        }
      with torch.no_grad(), float64_run(f64):
        out = model(**batch)  # eval mode: HybrIK_trainer.forward_test
      outputs.append(out)
      for k in PIPELINE_KEYS:
        v = batch[k]
        v = v[:, None] if k == "depth_factor" and v.ndim == 1 else v
        saved[f"input_{k}"].append(v.detach().numpy())
      saved["sample_idx"].append(np.asarray(batch["sample_idx"]))
      for k in TEST_KEYS:
        saved[f"test_{k}"].append(np.asarray(out[k]))
      if keep_head:
        head = captured["head"]
        for k, v in head.items():
          saved[k].append(v.detach().numpy())
        saved["backbone_features"].append(
          captured["backbone_features"].detach().numpy()
        )
        saved["heatmap_logits"].append(
          captured["heatmap_logits"][..., ::s, ::s].detach().numpy()
        )
    for h in hooks:
      h.remove()
    t_forward = time.perf_counter()
    results = {}
    if metrics:
      with contextlib.redirect_stdout(sys.stderr):
        results = dataset.evaluate(outputs, str(folder), metric=metrics)
      results = {k: float(v) for k, v in results.items()}
  arrays = {}
  for k, parts in saved.items():
    a = np.concatenate(parts)
    if k != "sample_idx" and a.dtype.kind == "f" and not k.startswith("input_"):
      a = a.astype(np_dtype)
    arrays[k] = a
  meta = {
    "tool": "reference/run_hybrik.py data",
    "architecture": ARCHITECTURE,
    **versions(),
    "dtype": args.dtype,
    "threads": torch.get_num_threads(),
    "checkpoint": str(args.checkpoint),
    "checkpoint_kind": ck_info["kind"],
    **load_info,
    "data": str(args.data),
    "dataset_name": args.dataset_name,
    "num_samples": n,
    "num_in_file": n_data,
    "metrics_mm": results,
    "heatmap_stride": s,
    "seconds_build": round(t_built - t_start, 3),
    "seconds_forward": round(t_forward - t_built, 3),
  }
  write_outputs(args.out, arrays, meta)
  return {
    "out": str(args.out),
    "num_samples": n,
    "metrics_mm": results,
    "dtype": args.dtype,
    "seconds_forward": meta["seconds_forward"],
  }


# -----------------------------------------------------------------------------
# save
# -----------------------------------------------------------------------------


def read_state_npz(path: Path) -> collections.OrderedDict:
  if not path.is_file():
    raise RunError(f"state npz not found: {path}")
  try:
    with np.load(path, allow_pickle=False) as npz:
      return collections.OrderedDict((k, npz[k]) for k in npz.files)
  except Exception as e:
    raise RunError(f"{path}: not an npz of arrays: {e}") from e


def perturb(state: Mapping, seed: int) -> tuple[dict, int]:
  """x * (1 + 0.01 * U(-1, 1)) for the floating non-smpl.* arrays."""
  rng = np.random.default_rng(seed)
  out, n = collections.OrderedDict(), 0
  for k, v in state.items():
    if (
      v.dtype.kind == "f"
      and not k.startswith("smpl.")
      and not k.endswith("num_batches_tracked")
    ):
      u = rng.uniform(-1.0, 1.0, v.shape)
      v = (v.astype(np.float64) * (1.0 + PERTURB_REL * u)).astype(v.dtype)
      n += 1
    out[k] = v
  return out, n


def cmd_save(args) -> dict:
  state = read_state_npz(args.state)
  n_perturbed = 0
  if args.perturb is not None:
    state, n_perturbed = perturb(state, args.perturb)
  tensors = collections.OrderedDict(
    (k, torch.from_numpy(np.array(v, order="C"))) for k, v in state.items()
  )
  meta = {
    "mmhuman3d_version": versions()["mmhuman3d"],
    "note": "written by reference/run_hybrik.py save --format "
    f"{args.format} from {args.state.name}"
    + (f", perturbed (seed {args.perturb})" if n_perturbed else ""),
  }
  args.out.parent.mkdir(parents=True, exist_ok=True)
  summary = {"out": str(args.out), "format": args.format}
  if args.format == "torch":
    torch.save({"meta": meta, "state_dict": tensors}, args.out)
  elif args.format == "module":
    torch.save(
      collections.OrderedDict(("module." + k, v) for k, v in tensors.items()),
      args.out,
    )
  else:  # mmcv_adam
    from mmcv.runner import save_checkpoint

    route_cuda_to_cpu(torch.float32)
    with tempfile.TemporaryDirectory(prefix="run_hybrik_") as tmp:
      model, _ = load_model(tensors, Path(tmp))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=ADAM_LR)
    loss = 0.5 * sum((p * p).sum() for p in params)
    opt.zero_grad()
    loss.backward()
    opt.step()
    meta["note"] += (
      "; one Adam step (lr 1e-3) on 0.5*sum(p**2) taken before saving: the "
      "weights are the post-step ones"
    )
    save_checkpoint(model, str(args.out), optimizer=opt, meta=meta)
    summary["adam_steps"] = 1
    summary["n_params"] = len(params)
  summary["n_keys"] = len(tensors)
  summary["n_perturbed"] = n_perturbed
  return summary


# -----------------------------------------------------------------------------
# CLI
# -----------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
  ap = argparse.ArgumentParser(
    prog="run_hybrik.py",
    description="mmhuman3d 0.11.0's HybrIK on CPU (the parity reference).",
  )
  sub = ap.add_subparsers(dest="command", required=True)
  m = sub.add_parser("model", help="run the eval-mode forward")
  m.add_argument("--checkpoint", type=Path, required=True)
  m.add_argument("--inputs", type=Path, required=True)
  m.add_argument("--out", type=Path, required=True)
  m.add_argument("--dtype", choices=["float32", "float64"], default="float32")
  m.add_argument("--smpl", type=Path, default=None)
  m.add_argument("--h36m-regressor", dest="h36m", type=Path, default=None)
  m.add_argument("--threads", type=int, default=2)
  m.add_argument(
    "--heatmap-stride", type=int, default=1, choices=[1, 2, 4, 8, 16]
  )
  m.add_argument("--trust-pickle", action="store_true")
  d = sub.add_parser(
    "data", help="test pipeline + forward_test (+ evaluate) on HumanData"
  )
  d.add_argument("--checkpoint", type=Path, required=True)
  d.add_argument("--data", type=Path, required=True)
  d.add_argument("--image-root", dest="image_root", type=Path, default=None)
  d.add_argument(
    "--dataset-name",
    dest="dataset_name",
    choices=["pw3d", "h36m", "mpi_inf_3dhp"],
    required=True,
  )
  d.add_argument("--num", type=int, default=0, help="first N samples; 0: all")
  d.add_argument("--batch-size", dest="batch_size", type=int, default=32)
  d.add_argument("--metrics", default="", help="e.g. mpjpe,pa-mpjpe,pve")
  d.add_argument("--out", type=Path, required=True)
  d.add_argument("--dtype", choices=["float32", "float64"], default="float32")
  d.add_argument("--smpl", type=Path, default=None)
  d.add_argument("--h36m-regressor", dest="h36m", type=Path, default=None)
  d.add_argument("--threads", type=int, default=2)
  d.add_argument(
    "--heatmap-stride", type=int, default=1, choices=[1, 2, 4, 8, 16]
  )
  d.add_argument("--trust-pickle", action="store_true")
  s = sub.add_parser("save", help="write a state npz as a .pth")
  s.add_argument("--state", type=Path, required=True)
  s.add_argument("--out", type=Path, required=True)
  s.add_argument(
    "--format", choices=["torch", "mmcv_adam", "module"], required=True
  )
  s.add_argument("--perturb", type=int, default=None, metavar="SEED")
  return ap


def main(argv: list[str] | None = None) -> int:
  args = parser().parse_args(argv)
  if args.command in ("model", "data") and args.threads < 1:
    parser().error("--threads must be >= 1")
  try:
    command = {"model": cmd_model, "data": cmd_data, "save": cmd_save}
    summary = command[args.command](args)
  except RunError as e:
    print(f"run_hybrik: error: {e}", file=sys.stderr)
    return 1
  print(json.dumps(summary))
  return 0


if __name__ == "__main__":
  sys.exit(main())
