"""Converts HybrIK / torchvision ResNet-34 checkpoints for hybrik-jax.

Three HybrIK architectures are recognised from the checkpoint's keys
(:func:`detect_architecture`; recorded as ``report.json``'s
``architecture`` so ``evaluate.py`` / ``demo.py`` build the right model):

* ``mmhuman3d_resnet34``: mmhuman3d's ``resnet34_hybrik_mixed``
  (``backbone.*`` / ``head.*``; :mod:`hybrik_jax.interop.weight_mapping`);
* ``hrnet_w48_cam`` / ``resnet34_cam``: the original authors' camera models
  ``HRNetSMPLCam`` / ``Simple3DPoseBaseSMPLCam`` (``preact.*`` + ``dec*``;
  :mod:`hybrik_jax.interop.authors_mapping`), bare state_dicts or wrapped
  as the authors' demo unwraps them (``{'model': state_dict}``, only when
  the container is exactly a ``dict``).

Output folder of :func:`convert_checkpoint` (written to a temporary sibling
folder and renamed at the end, so an error never leaves a partial folder):

* ``variables/``: an orbax ``StandardCheckpointer`` checkpoint of the Flax
  variables made by
  :func:`hybrik_jax.interop.weight_mapping.state_dict_to_variables` (numpy leaves); read it back with :func:`load_converted`.
* ``smpl_neutral.npz``: the neutral SMPL model carried by the checkpoint's
  ``smpl.*`` buffers, under the official SMPL pickle key names
  (``v_template [V,3]``, ``shapedirs [V,3,10]``, ``posedirs [V,3,207]``,
  ``J_regressor [24,V]``, ``weights [V,24]``, ``f [F,3]`` uint32,
  ``kintree_table [2,24]`` int64 with the root's parent stored as 4294967295,
  ``J_regressor_extra [17,V]`` = the H36M regressor), float32 as stored in the
  checkpoint; metres. Inference then needs no separate SMPL download.
* ``report.json``: source file name and sha256, checkpoint ``meta`` fields,
  tensor counts (mapped / ignored), parameter totals, hybrik-jax version,
  ``architecture``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from typing import Any

import numpy as np

import hybrik_jax
from hybrik_jax import errors, storage
from hybrik_jax.interop import authors_mapping, torch_format, weight_mapping
from hybrik_jax.smpl import tables

__all__ = [
  "ConversionError",
  "MMHUMAN3D_RESNET34",
  "ARCHITECTURES",
  "detect_architecture",
  "architecture_of",
  "VARIABLES_DIR",
  "SMPL_NPZ",
  "REPORT_JSON",
  "extract_state_dict",
  "smpl_arrays_from_state_dict",
  "convert_checkpoint",
  "convert_torchvision_resnet34",
  "load_converted",
  "load_report",
]

VARIABLES_DIR = "variables"
MMHUMAN3D_RESNET34 = "mmhuman3d_resnet34"
ARCHITECTURES = (MMHUMAN3D_RESNET34, *authors_mapping.ARCHITECTURES)
SMPL_NPZ = "smpl_neutral.npz"
REPORT_JSON = "report.json"

# Root parent in the official kintree_table (uint32 -1 stored as int64).
_KINTREE_ROOT = 4294967295

# `meta` fields copied into report.json when they are scalars or short strings.
_META_FIELDS = (
  "mmhuman3d_version",
  "mmcv_version",
  "epoch",
  "iter",
  "time",
  "seed",
  "exp_name",
)

_SMPL_REQUIRED = (
  "smpl.v_template",
  "smpl.shapedirs",
  "smpl.posedirs",
  "smpl.J_regressor",
  "smpl.lbs_weights",
  "smpl.faces_tensor",
  "smpl.parents",
)


class ConversionError(errors.InputError, ValueError):
  """The checkpoint cannot be converted (wrong content, bad output folder)."""


# -----------------------------------------------------------------------------
# State dict handling.
# -----------------------------------------------------------------------------


def extract_state_dict(
  obj: Any, source: str = "<checkpoint>"
) -> tuple[dict[str, np.ndarray], bool]:
  """Finds the state_dict in a loaded checkpoint and strips ``module.``.

  Args:
    obj: what :func:`hybrik_jax.interop.torch_format.load_torch_checkpoint` returned:
      an mmcv container ``{'meta', 'state_dict', ...}``, the authors'
      ``{'model': state_dict}`` (a plain dict) or a bare state_dict.
    source: file name for error messages.

  Returns:
    ``(state_dict, stripped)``: keys without DataParallel's ``module.``
    prefix, values numpy arrays; ``stripped`` tells whether any key had one.

  Raises:
    ConversionError: no state_dict, a non-tensor value, or two keys that are
      equal once the prefix is stripped.
  """
  if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
    raw = obj["state_dict"]
  elif type(obj) is dict and isinstance(obj.get("model"), Mapping):
    # The authors' demo: ``if type(save_dict) == dict: save_dict['model']``
    # (a state_dict saved as such is an OrderedDict and is used as it is).
    raw = obj["model"]
  elif (
    isinstance(obj, Mapping)
    and obj
    and all(isinstance(v, np.ndarray) for v in obj.values())
  ):
    raw = obj  # a bare state_dict (e.g. torchvision's released weights).
  else:
    what = (
      f"a dict with keys {sorted(map(str, obj))[:8]}"
      if isinstance(obj, Mapping)
      else type(obj).__name__
    )
    raise ConversionError(
      f"{source}: no 'state_dict' in the checkpoint (found {what}); expected "
      "an mmhuman3d/mmcv checkpoint, the authors' {'model': state_dict} or a "
      "bare state_dict"
    )
  state_dict: dict[str, np.ndarray] = {}
  stripped = False
  for key, value in raw.items():
    if not isinstance(key, str):
      raise ConversionError(f"{source}: state_dict key {key!r} is not a string")
    if not isinstance(value, np.ndarray):
      raise ConversionError(
        f"{source}: state_dict entry '{key}' is a "
        f"{type(value).__name__}, not a tensor"
      )
    new_key = weight_mapping.strip_module_prefix(key)
    stripped |= new_key != key
    if new_key in state_dict:
      raise ConversionError(
        f"{source}: keys '{key}' and '{new_key}' collide "
        "once the 'module.' prefix is stripped"
      )
    state_dict[new_key] = value
  return state_dict, stripped


def detect_architecture(state_dict: Mapping[str, Any]) -> str | None:
  """The HybrIK architecture of a (``module.``-free) state_dict's keys.

  Returns one of :data:`ARCHITECTURES` (the authors' camera models by
  :func:`hybrik_jax.interop.authors_mapping.detect_architecture`; mmhuman3d's
  by its ``backbone.*`` + ``head.*`` keys), or None. Only distinctive keys
  are looked at; the full key check belongs to the weight mappings.
  """
  arch = authors_mapping.detect_architecture(state_dict.keys())
  if arch is not None:
    return arch
  keys = list(state_dict)
  if any(k.startswith("backbone.") for k in keys) and any(
    k.startswith("head.") for k in keys
  ):
    return MMHUMAN3D_RESNET34
  return None


def architecture_of(report: Mapping[str, Any]) -> str:
  """``report.json``'s architecture (conversions written before it was
  recorded were all mmhuman3d's)."""
  arch = report.get("architecture", MMHUMAN3D_RESNET34)
  if arch not in ARCHITECTURES:
    raise ConversionError(
      f"report.json names architecture {arch!r}; this hybrik-jax knows "
      f"{list(ARCHITECTURES)}"
    )
  return arch


def _check_hybrik_architecture(
  state_dict: Mapping[str, np.ndarray], source: str
) -> None:
  """Early, readable refusal of checkpoints of another architecture."""
  keys = list(state_dict)
  if not any(k.startswith(("backbone.", "head.")) for k in keys):
    if "conv1.weight" in state_dict and "fc.weight" in state_dict:
      raise ConversionError(
        f"{source}: this is a bare torchvision ResNet state_dict, not an "
        "mmhuman3d HybrIK checkpoint (use --torchvision to convert it as "
        "backbone initialisation)"
      )
    if any(k.startswith("preact.") for k in keys):
      raise ConversionError(
        f"{source}: an upstream HybrIK checkpoint (preact.* keys) that is "
        "neither of the authors' camera models (a deccam / decsigma camera "
        "head with preact.stage4.* for HRNetSMPLCam or preact.layer4.* for "
        "Simple3DPoseBaseSMPLCam): supported are those two and mmhuman3d's "
        "resnet34_hybrik_mixed"
      )
    raise ConversionError(
      f"{source}: no backbone.*/head.* keys; not an mmhuman3d HybrIK "
      f"checkpoint (first keys: {keys[:5]})"
    )
  bottleneck = [
    k for k in keys if re.fullmatch(r"backbone\.layer\d\.\d+\.conv3\.weight", k)
  ]
  if bottleneck:
    raise ConversionError(
      f"{source}: the backbone has Bottleneck blocks ('{bottleneck[0]}'): a "
      "ResNet-50/101/152 checkpoint; hybrik-jax implements "
      "resnet34_hybrik_mixed (ResNet-34 BasicBlocks)"
    )
  if "head.deccam.weight" in state_dict:
    raise ConversionError(
      f"{source}: head has 'deccam' (upstream HybrIK SMPLCam model), which "
      "is not the resnet34_hybrik_mixed architecture"
    )


def _is_ignored(key: str) -> bool:
  return key.startswith("smpl.") or key.endswith("num_batches_tracked")


def smpl_arrays_from_state_dict(
  state_dict: Mapping[str, np.ndarray], source: str = "<checkpoint>"
) -> dict[str, np.ndarray] | None:
  """The checkpoint's ``smpl.*`` buffers in the official SMPL key layout.

  Args:
    state_dict: module-prefix-free state dict (numpy).
    source: file name for error messages.

  Returns:
    ``None`` if the checkpoint has no ``smpl.*`` buffers at all, else a dict
    with ``v_template [V,3]``, ``shapedirs [V,3,NB]``, ``posedirs [V,3,207]``
    (the checkpoint stores smplx's ``[207, V*3]`` = transpose of the official
    array reshaped to ``[V*3, 207]``), ``J_regressor [24,V]``,
    ``weights [V,24]``, ``f [F,3]`` uint32, ``kintree_table [2,24]`` int64
    (row 0 the parents with -1 stored as 4294967295, row 1 ``0..23``) and,
    when present, ``J_regressor_extra [E,V]`` from
    ``smpl.joints_regressor_extra`` (mmhuman3d) or ``smpl.J_regressor_h36m``
    (the authors'). Floats keep the checkpoint's dtype.

  Raises:
    ConversionError: some SMPL buffers present but not all, or a shape that
      does not fit the others (message names the key and shapes).
  """
  present = [k for k in _SMPL_REQUIRED if k in state_dict]
  if not present:
    return None
  missing = [k for k in _SMPL_REQUIRED if k not in state_dict]
  if missing:
    raise ConversionError(
      f"{source}: incomplete SMPL buffers: missing {missing}"
    )

  def get(key: str, ndim: int) -> np.ndarray:
    value = state_dict[key]
    if value.ndim != ndim:
      raise ConversionError(
        f"{source}: '{key}' has shape {list(value.shape)}, "
        f"expected {ndim} dimensions"
      )
    return value

  v_template = get("smpl.v_template", 2)  # [V, 3]
  num_verts = v_template.shape[0]

  def expect(key: str, value: np.ndarray, shape: tuple) -> np.ndarray:
    if tuple(value.shape) != shape:
      raise ConversionError(
        f"{source}: '{key}' has shape {list(value.shape)}, expected "
        f"{list(shape)} (V = {num_verts} vertices from smpl.v_template)"
      )
    return value

  expect("smpl.v_template", v_template, (num_verts, 3))
  shapedirs = get("smpl.shapedirs", 3)  # [V, 3, NB]
  expect("smpl.shapedirs", shapedirs, (num_verts, 3, shapedirs.shape[2]))
  posedirs = expect(
    "smpl.posedirs", get("smpl.posedirs", 2), (207, num_verts * 3)
  )  # [207, V*3]
  j_regressor = expect(
    "smpl.J_regressor", get("smpl.J_regressor", 2), (24, num_verts)
  )
  weights = expect(
    "smpl.lbs_weights", get("smpl.lbs_weights", 2), (num_verts, 24)
  )
  faces = get("smpl.faces_tensor", 2)  # [F, 3]
  expect("smpl.faces_tensor", faces, (faces.shape[0], 3))
  if faces.size and (faces.min() < 0 or faces.max() >= num_verts):
    raise ConversionError(
      f"{source}: 'smpl.faces_tensor' indexes vertices outside [0, {num_verts})"
    )
  parents = get("smpl.parents", 1)
  if parents.shape[0] < 24:
    raise ConversionError(
      f"{source}: 'smpl.parents' has shape {list(parents.shape)}, expected "
      "at least 24 entries"
    )
  parents24 = parents[:24].astype(np.int64)
  if parents24.tolist() != list(tables.SMPL_PARENTS):
    raise ConversionError(
      f"{source}: 'smpl.parents'[:24] = {parents24.tolist()} is not the SMPL "
      "kinematic tree"
    )
  kintree = np.stack(
    [
      np.where(parents24 < 0, _KINTREE_ROOT, parents24),
      np.arange(24, dtype=np.int64),
    ]
  ).astype(np.int64)
  out = {
    "v_template": np.ascontiguousarray(v_template),
    "shapedirs": np.ascontiguousarray(shapedirs),
    # [207, V*3] -> [V*3, 207] -> [V, 3, 207]
    "posedirs": np.ascontiguousarray(posedirs.T.reshape(num_verts, 3, 207)),
    "J_regressor": np.ascontiguousarray(j_regressor),
    "weights": np.ascontiguousarray(weights),
    "f": faces.astype(np.uint32),
    "kintree_table": kintree,  # [2, 24]
  }
  for key in ("smpl.joints_regressor_extra", "smpl.J_regressor_h36m"):
    if key in state_dict:
      extra = get(key, 2)
      out["J_regressor_extra"] = np.ascontiguousarray(
        expect(key, extra, (extra.shape[0], num_verts))
      )
      break
  return out


# -----------------------------------------------------------------------------
# Output folder handling.
# -----------------------------------------------------------------------------


def file_sha256(path: str) -> str:
  digest = hashlib.sha256()
  with storage.open_file(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


def _check_out_dir(out_dir: str, overwrite: bool) -> None:
  """Refuses an ``out_dir`` whose contents replacing it would lose.

  An empty folder is used; a previous conversion (``report.json`` and
  nothing but the converter's outputs) is replaced only with ``overwrite``;
  any other non-empty folder is refused, ``overwrite`` or not.
  """
  folder = storage.path(out_dir)
  if not folder.exists():
    return
  if not folder.is_dir():
    raise ConversionError(f"{out_dir}: exists and is not a folder")
  entries = sorted(p.name for p in folder.iterdir())
  if not entries:
    return
  outputs = {VARIABLES_DIR, REPORT_JSON, SMPL_NPZ}
  previous = REPORT_JSON in entries and set(entries) <= outputs
  if not previous:
    shown = ", ".join(entries[:5]) + (" ..." if len(entries) > 5 else "")
    raise ConversionError(
      f"{out_dir}: folder holds files that are not a previous conversion "
      f"({shown}); choose another output folder (--overwrite replaces only "
      f"a folder this converter wrote)"
    )
  if not overwrite:
    raise ConversionError(
      f"{out_dir}: holds a previous conversion "
      "(pass overwrite=True / --overwrite to replace it)"
    )


def _to_numpy_tree(tree: Any) -> Any:
  if isinstance(tree, Mapping):
    return {str(k): _to_numpy_tree(v) for k, v in tree.items()}
  return np.asarray(tree)


def _leaves(tree: Any):
  if isinstance(tree, Mapping):
    for v in tree.values():
      yield from _leaves(v)
  else:
    yield tree


def _count(tree: Any) -> tuple[int, int]:
  """(number of arrays, number of scalars) in a nested dict of arrays."""
  leaves = list(_leaves(tree))
  return len(leaves), int(sum(int(np.size(x)) for x in leaves))


def _json_safe(value: Any) -> Any:
  if isinstance(value, (str, bool, int, float)) or value is None:
    return value
  if isinstance(value, np.generic):
    return value.item()
  if isinstance(value, np.ndarray) and value.size == 1:
    return value.reshape(()).item()
  return None


def _write_output(
  out_dir: str,
  overwrite: bool,
  variables: Any,
  report: dict,
  smpl: dict[str, np.ndarray] | None,
) -> None:
  """Writes everything into a temporary sibling folder, then renames it.

  A remote ``out_dir`` (``gs://…``, where folders cannot be renamed) is
  written locally first and then uploaded, after removing the previous
  conversion that ``_check_out_dir`` allowed to be replaced.
  """
  if storage.is_remote(out_dir):
    with tempfile.TemporaryDirectory(prefix="hybrik_jax_convert_") as local:
      local_out = os.path.join(local, "out")
      _write_output(local_out, False, variables, report, smpl)
      _check_out_dir(out_dir, overwrite)
      remote = storage.path(out_dir)
      if remote.exists():
        remote.rmtree()
      storage.upload_dir(local_out, remote)
    return
  import orbax.checkpoint as ocp

  out_dir = os.path.abspath(out_dir)
  parent = os.path.dirname(out_dir)
  os.makedirs(parent, exist_ok=True)
  tmp = tempfile.mkdtemp(
    prefix=f".{os.path.basename(out_dir)}.tmp-", dir=parent
  )
  old = None
  try:
    with ocp.StandardCheckpointer() as checkpointer:
      checkpointer.save(
        os.path.join(tmp, VARIABLES_DIR), _to_numpy_tree(variables)
      )
      checkpointer.wait_until_finished()
    if smpl is not None:
      np.savez(os.path.join(tmp, SMPL_NPZ), **smpl)
    with open(os.path.join(tmp, REPORT_JSON), "w") as f:
      json.dump(report, f, indent=2, sort_keys=True)
      f.write("\n")
    if os.path.exists(out_dir):
      _check_out_dir(out_dir, overwrite)  # unchanged since the first check?
      old = tempfile.mkdtemp(
        prefix=f".{os.path.basename(out_dir)}.old-", dir=parent
      )
      os.rename(out_dir, os.path.join(old, "replaced"))
    os.rename(tmp, out_dir)
    tmp = None
  finally:
    if tmp is not None:
      shutil.rmtree(tmp, ignore_errors=True)
    if old is not None:
      shutil.rmtree(old, ignore_errors=True)


def _base_report(ckpt_path: str, kind: str) -> dict:
  return {
    "kind": kind,
    "hybrik_jax_version": hybrik_jax.__version__,
    "source": {
      "file": os.path.basename(ckpt_path),
      "sha256": file_sha256(ckpt_path),
      "bytes": storage.path(ckpt_path).stat().length,
    },
    "variables_dir": VARIABLES_DIR,
  }


def _variables_summary(variables: Mapping[str, Any]) -> dict:
  per_collection = {}
  for name, tree in variables.items():
    arrays, scalars = _count(tree)
    per_collection[name] = {"arrays": arrays, "scalars": scalars}
  arrays, scalars = _count(variables)
  return {
    "collections": per_collection,
    "arrays": arrays,
    "scalars": scalars,
    "params": per_collection.get("params", {}).get("scalars", 0),
  }


# -----------------------------------------------------------------------------
# Public API.
# -----------------------------------------------------------------------------


def convert_checkpoint(
  ckpt_path: str | os.PathLike,
  out_dir: str | os.PathLike,
  *,
  overwrite: bool = False,
) -> dict:
  """Converts an mmhuman3d ``resnet34_hybrik_mixed`` checkpoint or one of
  the authors' camera models (see the module docstring).

  Args:
    ckpt_path: the ``.pth`` written by mmcv (``{'meta', 'state_dict',
      ['optimizer']}``), the authors' ``{'model': ...}`` dict, or a bare
      state_dict; ``module.`` prefixes are stripped.
    out_dir: output folder (see the module docstring for its content).
    overwrite: replace ``out_dir`` if it holds a previous conversion (a
      folder holding anything else is always refused).

  Returns:
    The report (also written to ``out_dir/report.json``).

  Raises:
    hybrik_jax.interop.torch_format.CheckpointFormatError: unreadable file.
    hybrik_jax.safe_pickle.UnsafePickleError: the pickle names a forbidden
      global (nothing was executed).
    ConversionError: no state_dict, another architecture, bad SMPL buffers,
      non-empty ``out_dir`` without ``overwrite``.
    hybrik_jax.interop.weight_mapping.WeightMappingError: missing, unexpected
      or mis-shaped keys.
  """

  ckpt_path = os.fspath(ckpt_path)
  out_dir = os.fspath(out_dir)
  _check_out_dir(out_dir, overwrite)
  obj = torch_format.load_torch_checkpoint(ckpt_path)
  state_dict, stripped = extract_state_dict(obj, ckpt_path)
  arch = detect_architecture(state_dict)
  if arch not in authors_mapping.ARCHITECTURES:
    _check_hybrik_architecture(state_dict, ckpt_path)
    arch = MMHUMAN3D_RESNET34
    variables = weight_mapping.state_dict_to_variables(
      state_dict, source=ckpt_path
    )
    kind = "mmhuman3d_hybrik_resnet34"
  else:
    variables = authors_mapping.state_dict_to_variables(
      state_dict, arch=arch, source=ckpt_path
    )
    kind = f"authors_hybrik_{arch}"
  smpl = smpl_arrays_from_state_dict(state_dict, ckpt_path)

  ignored = [k for k in state_dict if _is_ignored(k)]
  report = _base_report(ckpt_path, kind)
  report["architecture"] = arch
  meta = obj.get("meta") if isinstance(obj, Mapping) else None
  if isinstance(meta, Mapping):
    report["meta"] = {k: _json_safe(meta[k]) for k in _META_FIELDS if k in meta}
    report["meta_keys"] = sorted(str(k) for k in meta)
  report["container_keys"] = (
    sorted(str(k) for k in obj) if isinstance(obj, Mapping) else None
  )
  report["module_prefix_stripped"] = stripped
  report["tensors"] = {
    "total": len(state_dict),
    "mapped": len(state_dict) - len(ignored),
    "ignored": len(ignored),
    "ignored_smpl": sum(k.startswith("smpl.") for k in ignored),
    "ignored_num_batches_tracked": sum(
      k.endswith("num_batches_tracked") for k in ignored
    ),
  }
  report["variables"] = _variables_summary(variables)
  report["smpl_neutral"] = (
    None
    if smpl is None
    else {
      "file": SMPL_NPZ,
      "num_vertices": int(smpl["v_template"].shape[0]),
      "num_faces": int(smpl["f"].shape[0]),
      "num_betas": int(smpl["shapedirs"].shape[2]),
      "has_J_regressor_extra": "J_regressor_extra" in smpl,
    }
  )
  _write_output(out_dir, overwrite, variables, report, smpl)
  return report


def convert_torchvision_resnet34(
  pth_path: str | os.PathLike,
  out_dir: str | os.PathLike,
  *,
  overwrite: bool = False,
) -> dict:
  """Converts torchvision's ImageNet ResNet-34 weights (backbone init).

  Args:
    pth_path: a torchvision ``resnet34-*.pth`` (bare state_dict with
      ``conv1``, ``bn1``, ``layer1..4``, ``fc``; ``fc`` is dropped by the
      mapping), zip or legacy torch.save format.
    out_dir: output folder: ``variables/`` (orbax, the backbone's variables as
      returned by ``weight_mapping.torchvision_resnet34_to_backbone``) and
      ``report.json``.
    overwrite: replace ``out_dir`` if it holds a previous conversion (a
      folder holding anything else is always refused).

  Returns:
    The report (also written to ``out_dir/report.json``).

  Raises:
    The same errors as :func:`convert_checkpoint`.
  """

  pth_path = os.fspath(pth_path)
  out_dir = os.fspath(out_dir)
  _check_out_dir(out_dir, overwrite)
  obj = torch_format.load_torch_checkpoint(pth_path)
  state_dict, stripped = extract_state_dict(obj, pth_path)
  if any(k.startswith(("backbone.", "head.")) for k in state_dict):
    raise ConversionError(
      f"{pth_path}: this is a full HybrIK checkpoint (backbone.*/head.* "
      "keys), not torchvision ResNet weights; convert it without "
      "--torchvision"
    )
  variables = weight_mapping.torchvision_resnet34_to_backbone(
    state_dict, source=pth_path
  )
  report = _base_report(pth_path, "torchvision_resnet34")
  report["module_prefix_stripped"] = stripped
  ignored = [
    k
    for k in state_dict
    if k.startswith("fc.") or k.endswith("num_batches_tracked")
  ]
  report["tensors"] = {
    "total": len(state_dict),
    "mapped": len(state_dict) - len(ignored),
    "ignored": len(ignored),
  }
  report["variables"] = _variables_summary(variables)
  report["smpl_neutral"] = None
  _write_output(out_dir, overwrite, variables, report, None)
  return report


def load_converted(out_dir: str | os.PathLike) -> dict:
  """Reads the variables written by :func:`convert_checkpoint`.

  Args:
    out_dir: a folder written by this module.

  Returns:
    The Flax variables (nested dicts of numpy arrays), e.g.
    ``{'params': ..., 'batch_stats': ...}`` as the weight mapping made them.

  Raises:
    ConversionError: the folder has no converted variables.
  """
  import orbax.checkpoint as ocp

  path = storage.path(out_dir) / VARIABLES_DIR
  if not path.is_dir():
    raise ConversionError(
      f"{out_dir}: no '{VARIABLES_DIR}/' checkpoint here; "
      "run convert_torch_weights.py first"
    )
  with ocp.StandardCheckpointer() as checkpointer:
    return checkpointer.restore(path)


def load_report(out_dir: str | os.PathLike) -> dict:
  """Reads ``report.json`` from a converted folder.

  Raises:
    ConversionError: the folder has no (readable) ``report.json``.
  """
  path = storage.path(out_dir) / REPORT_JSON
  if not path.exists():
    raise ConversionError(
      f"{out_dir}: no {REPORT_JSON}; not a folder written by "
      "convert_torch_weights.py (convert the checkpoint again)"
    )
  try:
    return json.loads(path.read_text())
  except ValueError as e:
    raise ConversionError(f"{path}: not valid JSON ({e})") from e
