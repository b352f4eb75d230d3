"""PyTorch ``state_dict`` <-> Flax variables of ``HybrIK`` (numpy, torch-free).

Name mapping (torch -> Flax, ``/`` separates Flax scopes)::

  backbone.conv1.weight                [O,I,7,7]  params/backbone/conv1/kernel [7,7,I,O]
  backbone.bn1.weight / .bias          [C]        params/backbone/bn1/{scale,bias}
  backbone.bn1.running_mean / _var     [C]        batch_stats/backbone/bn1/{mean,var}
  backbone.layerS.I.convK.weight                  params/backbone/layerS_I/convK/kernel
  backbone.layerS.I.bnK.*                         .../layerS_I/bnK/...
  backbone.layerS.0.downsample.0.weight           .../layerS_0/downsample_conv/kernel
  backbone.layerS.0.downsample.1.*                .../layerS_0/downsample_bn/...
  head.deconv_layers.{0,3,6}.weight    [I,O,4,4]  params/head/deconv_layers_{0,3,6}/kernel
                                                  [4,4,I,O], spatially FLIPPED (the
                                                  equivalent stride-1 conv over the
                                                  2x-dilated input)
  head.deconv_layers.{1,4,7}.*                    head/deconv_layers_{1,4,7} (BatchNorm)
  head.final_layer.weight / .bias      [1856,256,1,1] params/head/final_layer/{kernel,bias}
  head.{fc1,fc2,decshape,decphi}.weight [O,I]     params/head/<name>/kernel [I,O]
  head.{...}.bias                                 params/head/<name>/bias
  head.init_shape                      [10]       constants/init_shape

``*.num_batches_tracked`` (of a known BatchNorm) is dropped; ``smpl.*`` buffers
are accepted and ignored here (the body model is read from them by the
converter, or passed as ``smpl_model``). A ``module.`` prefix (DataParallel)
is stripped. Every missing, unexpected or mis-shaped entry is collected and
reported in ONE ``WeightMappingError``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from hybrik_jax import errors
from hybrik_jax.model import head as head_lib
from hybrik_jax.model import resnet

# Shapes of the head, read from the Flax modules (one source of truth).
HEAD_DECONV_DIM = tuple(head_lib.HybrIKHead.deconv_dim)
BACKBONE_OUT = resnet.RESNET34_OUT_FEATURES
NUM_HEATMAP_CHANNELS = (
  head_lib.HybrIKHead.num_joints * head_lib.HybrIKHead.depth_dim
)
NUM_BETAS = head_lib.HybrIKHead.num_betas
NUM_PHI = head_lib.HybrIKHead.num_twist * 2  # (cos, sin) per twist angle

_BN_TORCH_TO_FLAX = (
  ("weight", "params", "scale"),
  ("bias", "params", "bias"),
  ("running_mean", "batch_stats", "mean"),
  ("running_var", "batch_stats", "var"),
)


class WeightMappingError(errors.InputError, ValueError):
  """A state_dict does not fit HybrIK; ``problems`` lists every mismatch."""

  def __init__(self, problems: list[str], source: str = "state_dict"):
    self.problems = list(problems)
    msg = (
      f"{source}: {len(self.problems)} problem(s) mapping to HybrIK:\n  "
      + "\n  ".join(self.problems)
    )
    super().__init__(msg)


@dataclasses.dataclass(frozen=True)
class Entry:
  """One torch tensor <-> one Flax variable.

  Attributes:
    torch_key: state_dict key.
    collection: Flax collection ('params', 'batch_stats', 'constants').
    path: path inside the collection.
    kind: 'conv' (OIHW<->HWIO), 'deconv' (IOHW<->flipped HWIO), 'linear'
      ([O,I]<->[I,O]) or 'vector'.
    torch_shape: expected shape in the state_dict.
  """

  torch_key: str
  collection: str
  path: tuple[str, ...]
  kind: str
  torch_shape: tuple[int, ...]


def _bn_entries(
  torch_prefix: str, path: tuple[str, ...], channels: int
) -> Iterator[Entry]:
  for leaf, col, name in _BN_TORCH_TO_FLAX:
    yield Entry(
      f"{torch_prefix}.{leaf}", col, path + (name,), "vector", (channels,)
    )


def backbone_entries(
  prefix: str = "backbone.", scope: tuple[str, ...] = ("backbone",)
) -> list[Entry]:
  """ResNet-34 entries in torch registration order (torchvision names)."""
  out = [
    Entry(
      f"{prefix}conv1.weight",
      "params",
      scope + ("conv1", "kernel"),
      "conv",
      (64, 3, 7, 7),
    )
  ]
  out += _bn_entries(f"{prefix}bn1", scope + ("bn1",), 64)
  cin = 64
  for s, num_blocks in enumerate(resnet.RESNET34_STAGES):
    width = resnet.RESNET34_WIDTHS[s]
    for i in range(num_blocks):
      tp = f"{prefix}layer{s + 1}.{i}"
      fp = scope + (f"layer{s + 1}_{i}",)
      block_in = cin if i == 0 else width
      out.append(
        Entry(
          f"{tp}.conv1.weight",
          "params",
          fp + ("conv1", "kernel"),
          "conv",
          (width, block_in, 3, 3),
        )
      )
      out += _bn_entries(f"{tp}.bn1", fp + ("bn1",), width)
      out.append(
        Entry(
          f"{tp}.conv2.weight",
          "params",
          fp + ("conv2", "kernel"),
          "conv",
          (width, width, 3, 3),
        )
      )
      out += _bn_entries(f"{tp}.bn2", fp + ("bn2",), width)
      stride = resnet.RESNET34_STRIDES[s] if i == 0 else 1
      if i == 0 and (stride != 1 or block_in != width):
        out.append(
          Entry(
            f"{tp}.downsample.0.weight",
            "params",
            fp + ("downsample_conv", "kernel"),
            "conv",
            (width, block_in, 1, 1),
          )
        )
        out += _bn_entries(f"{tp}.downsample.1", fp + ("downsample_bn",), width)
    cin = width
  return out


def head_entries(
  prefix: str = "head.", scope: tuple[str, ...] = ("head",)
) -> list[Entry]:
  """HybrIKHead entries in torch registration order."""
  out = [
    Entry(
      f"{prefix}init_shape",
      "constants",
      ("init_shape",),
      "vector",
      (NUM_BETAS,),
    )
  ]
  cin = BACKBONE_OUT
  for i, cout in enumerate(HEAD_DECONV_DIM):
    out.append(
      Entry(
        f"{prefix}deconv_layers.{3 * i}.weight",
        "params",
        scope + (f"deconv_layers_{3 * i}", "kernel"),
        "deconv",
        (cin, cout, 4, 4),
      )
    )
    out += _bn_entries(
      f"{prefix}deconv_layers.{3 * i + 1}",
      scope + (f"deconv_layers_{3 * i + 1}",),
      cout,
    )
    cin = cout
  out.append(
    Entry(
      f"{prefix}final_layer.weight",
      "params",
      scope + ("final_layer", "kernel"),
      "conv",
      (NUM_HEATMAP_CHANNELS, cin, 1, 1),
    )
  )
  out.append(
    Entry(
      f"{prefix}final_layer.bias",
      "params",
      scope + ("final_layer", "bias"),
      "vector",
      (NUM_HEATMAP_CHANNELS,),
    )
  )
  for name, fin, fout in (
    ("fc1", BACKBONE_OUT, head_lib.FC_DIM),
    ("fc2", head_lib.FC_DIM, head_lib.FC_DIM),
    ("decshape", head_lib.FC_DIM, NUM_BETAS),
    ("decphi", head_lib.FC_DIM, NUM_PHI),
  ):
    out.append(
      Entry(
        f"{prefix}{name}.weight",
        "params",
        scope + (name, "kernel"),
        "linear",
        (fout, fin),
      )
    )
    out.append(
      Entry(
        f"{prefix}{name}.bias",
        "params",
        scope + (name, "bias"),
        "vector",
        (fout,),
      )
    )
  return out


def hybrik_entries() -> list[Entry]:
  """All mapped entries of an mmhuman3d HybrIK state_dict (245)."""
  return backbone_entries() + head_entries()


def _bn_prefixes(entries: list[Entry]) -> set[str]:
  return {
    e.torch_key[: -len(".running_mean")]
    for e in entries
    if e.torch_key.endswith(".running_mean")
  }


def torch_to_flax(kind: str, w: np.ndarray) -> np.ndarray:
  """Converts one torch-layout array to the Flax layout (float32, C order)."""
  w = np.asarray(w, dtype=np.float32)
  if kind == "conv":  # [O, I, kh, kw] -> [kh, kw, I, O]
    w = w.transpose(2, 3, 1, 0)
  elif kind == "deconv":  # [I, O, kh, kw] -> flipped [kh, kw, I, O]
    w = w[:, :, ::-1, ::-1].transpose(2, 3, 0, 1)
  elif kind == "linear":  # [O, I] -> [I, O]
    w = w.T
  return np.ascontiguousarray(w)


def flax_to_torch(kind: str, w: Any) -> np.ndarray:
  """Inverse of ``torch_to_flax``."""
  w = np.asarray(w, dtype=np.float32)
  if kind == "conv":
    w = w.transpose(3, 2, 0, 1)
  elif kind == "deconv":
    w = w.transpose(2, 3, 0, 1)[:, :, ::-1, ::-1]
  elif kind == "linear":
    w = w.T
  return np.ascontiguousarray(w)


def _set(tree: dict, path: tuple[str, ...], value: Any) -> None:
  for p in path[:-1]:
    tree = tree.setdefault(p, {})
  tree[path[-1]] = value


def _get(tree: Mapping, path: tuple[str, ...]) -> Any:
  for p in path:
    tree = tree[p]
  return tree


def strip_module_prefix(key: str) -> str:
  """``key`` without DataParallel's ``module.`` prefix(es)."""
  while key.startswith("module."):
    key = key[len("module.") :]
  return key


def _map(
  state_dict: Mapping[str, Any],
  entries: list[Entry],
  ignore_prefixes: tuple[str, ...],
  ignore_keys: tuple[str, ...],
  source: str,
) -> dict[str, dict]:
  """Maps ``state_dict`` onto ``entries``; raises one error for all problems."""
  sd = {strip_module_prefix(k): v for k, v in state_dict.items()}
  problems = []
  out: dict[str, dict] = {}
  known = {e.torch_key for e in entries}
  bn = _bn_prefixes(entries)
  for e in entries:
    if e.torch_key not in sd:
      problems.append(
        f"missing key {e.torch_key!r} (expected shape {list(e.torch_shape)})"
      )
      continue
    try:
      arr = np.asarray(sd[e.torch_key])
    except Exception as err:  # pylint: disable=broad-except
      problems.append(f"key {e.torch_key!r}: not an array ({err})")
      continue
    if tuple(arr.shape) != e.torch_shape:
      problems.append(
        f"key {e.torch_key!r}: shape {list(arr.shape)}, "
        f"expected {list(e.torch_shape)}"
      )
      continue
    if not np.issubdtype(arr.dtype, np.floating):
      problems.append(
        f"key {e.torch_key!r}: dtype {arr.dtype}, expected a floating type"
      )
      continue
    if not np.all(np.isfinite(arr)):
      problems.append(f"key {e.torch_key!r}: contains NaN/inf")
      continue
    _set(out.setdefault(e.collection, {}), e.path, torch_to_flax(e.kind, arr))
  for k in sd:
    if k in known or k in ignore_keys or k.startswith(ignore_prefixes):
      continue
    if (
      k.endswith(".num_batches_tracked")
      and k[: -len(".num_batches_tracked")] in bn
    ):
      continue
    problems.append(f"unexpected key {k!r} (shape {list(np.shape(sd[k]))})")
  if problems:
    raise WeightMappingError(problems, source)
  return out


def state_dict_to_variables(
  state_dict: Mapping[str, Any],
  smpl_model: Any = None,
  source: str = "state_dict",
) -> dict[str, dict]:
  """mmhuman3d HybrIK ``state_dict`` -> Flax variables of ``HybrIK``.

  Args:
    state_dict: key -> array (numpy, or anything ``np.asarray`` accepts), as
      in an mmhuman3d checkpoint's ``'state_dict'`` (optionally ``module.``
      prefixed). ``smpl.*`` entries are accepted and ignored.
    smpl_model: optional ``SMPLModel`` (with the H36M extra regressor) stored
      as ``constants/smpl``; without it attach one later with
      ``hybrik_jax.model.attach_body_model``.
    source: name of the file/object, used in error messages.

  Returns:
    {'params': {'backbone', 'head'}, 'batch_stats': {'backbone', 'head'},
     'constants': {'init_shape'[, 'smpl']}} of float32 numpy arrays.

  Raises:
    WeightMappingError: listing every missing / unexpected / mis-shaped key.
  """
  variables = _map(
    state_dict,
    hybrik_entries(),
    ignore_prefixes=("smpl.",),
    ignore_keys=(),
    source=source,
  )
  if smpl_model is not None:
    from hybrik_jax.model.hybrik import body_model_constants

    variables["constants"]["smpl"] = {
      k: np.asarray(v) for k, v in body_model_constants(smpl_model).items()
    }
  return variables


def variables_to_state_dict(variables: Mapping[str, Any]) -> dict[str, Any]:
  """Flax variables -> mmhuman3d ``backbone.*`` / ``head.*`` state_dict.

  Keys come in torch registration order; ``num_batches_tracked`` is emitted
  as int64 0 (Flax does not count batches). ``smpl.*`` is not emitted.
  """
  out: dict[str, Any] = {}
  bn = _bn_prefixes(hybrik_entries())
  for e in hybrik_entries():
    out[e.torch_key] = flax_to_torch(
      e.kind, _get(variables[e.collection], e.path)
    )
    if (
      e.torch_key.endswith(".running_var")
      and e.torch_key[: -len(".running_var")] in bn
    ):
      out[e.torch_key[: -len("running_var")] + "num_batches_tracked"] = (
        np.array(0, np.int64)
      )
  return out


def torchvision_resnet34_to_backbone(
  state_dict: Mapping[str, Any], source: str = "torchvision resnet34"
) -> dict[str, dict]:
  """torchvision ``resnet34`` ImageNet state_dict -> backbone variables.

  torchvision names equal mmhuman3d's ``backbone.*`` names without the
  prefix; ``fc.weight`` / ``fc.bias`` are ignored.

  Returns:
    {'params': <backbone params>, 'batch_stats': <backbone stats>} — the
    subtrees to put at ``variables[...]['backbone']`` (see
    ``load_pretrained_backbone``).
  """
  v = _map(
    state_dict,
    backbone_entries(prefix="", scope=()),
    ignore_prefixes=(),
    ignore_keys=("fc.weight", "fc.bias"),
    source=source,
  )
  return {"params": v["params"], "batch_stats": v["batch_stats"]}


def load_pretrained_backbone(
  variables: Mapping[str, Any], state_dict: Mapping[str, Any]
) -> dict[str, Any]:
  """Returns ``variables`` with the backbone replaced by torchvision weights."""
  bb = torchvision_resnet34_to_backbone(state_dict)
  out = {k: dict(v) for k, v in variables.items()}
  out["params"]["backbone"] = bb["params"]
  out["batch_stats"]["backbone"] = bb["batch_stats"]
  return out
