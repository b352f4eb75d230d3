"""Authors' HybrIK checkpoints (Jeff-sjtu/HybrIK) <-> Flax variables.

Two architectures of the authors' model zoo, told apart by their keys
(:func:`detect_architecture`):

* ``hrnet_w48_cam``: ``HRNetSMPLCam`` (``hybrik/models/HRNetWithCam.py``):
  ``preact.*`` = HRNet-W48 (:mod:`hybrik_jax.model.hrnet`) with its heatmap
  ``preact.final_layer``; ``decshape`` / ``decphi`` / ``deccam`` /
  ``decsigma`` (Linear on the 2048-d pooled feature); buffers ``init_shape``
  [10], ``init_cam`` [1].
* ``resnet34_cam``: ``Simple3DPoseBaseSMPLCam``
  (``hybrik/models/simple3dposeSMPLWithCam.py``): ``preact.*`` = a
  torchvision-layout ResNet-34 (the same names and tensors as mmhuman3d's
  ``backbone.*``); ``deconv_layers.{0..8}``, ``final_layer``, ``fc1``,
  ``fc2``, ``decshape``, ``decphi``, ``deccam`` (3 outputs), ``decsigma``;
  buffers ``init_shape`` [10], ``init_cam`` [3].

Both carry the body model as ``smpl.*`` buffers (the authors' ``SMPL_layer``:
``faces_tensor``, ``v_template``, ``shapedirs``, ``posedirs`` [207, V*3],
``J_regressor``, ``J_regressor_h36m``, ``children_map``, ``parents``,
``lbs_weights``); :func:`body_model_from_state_dict` rebuilds an
``SMPLModel`` from them. Checkpoints come bare or with DataParallel
``module.`` prefixes (stripped).

Flax layout (see :mod:`hybrik_jax.model.hybrik_cam`)::

  preact.<...>          params|batch_stats / backbone / <hrnet or resnet path>
  deconv_layers.{0,3,6} params/head/deconv_layers_{0,3,6}/kernel (flipped)
  deconv_layers.{1,4,7} params|batch_stats/head/deconv_layers_{1,4,7}
  final_layer           params/head/final_layer (ResNet-34-cam only; the
                        HRNet's is preact.final_layer -> backbone/final_layer)
  fc1, fc2, dec*        params/head/<name>/{kernel [I,O], bias}
  init_shape, init_cam  constants/init_shape [10], constants/init_cam [1|3]

The rules (transposes, the transposed-convolution flip, BatchNorm names) are
those of :mod:`hybrik_jax.interop.weight_mapping`, whose ``Entry`` table and
``_map`` checker are reused: every missing, unexpected, mis-shaped or
non-finite entry is reported in one ``WeightMappingError``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from hybrik_jax.interop import weight_mapping as wm
from hybrik_jax.interop.weight_mapping import Entry
from hybrik_jax.model import hrnet

HRNET_W48_CAM = "hrnet_w48_cam"
RESNET34_CAM = "resnet34_cam"
ARCHITECTURES = (HRNET_W48_CAM, RESNET34_CAM)

NUM_BETAS = 10
NUM_PHI = 23 * 2
NUM_SIGMA = 29
CAM_DIM = {HRNET_W48_CAM: 1, RESNET34_CAM: 3}
FEATURE_DIM = {HRNET_W48_CAM: hrnet.FEATURE_DIM, RESNET34_CAM: 1024}

# Buffers of the authors' SMPL_layer (all ignored by the weight mapping).
SMPL_BUFFERS = (
  "faces_tensor",
  "v_template",
  "shapedirs",
  "posedirs",
  "J_regressor",
  "J_regressor_h36m",
  "children_map",
  "parents",
  "lbs_weights",
)


def _conv(tk: str, path: tuple[str, ...], cout: int, cin: int, k: int):
  return Entry(tk, "params", path + ("kernel",), "conv", (cout, cin, k, k))


def _conv_bn(
  tp: str,
  fp: tuple[str, ...],
  cout: int,
  cin: int,
  k: int,
  conv_bias: bool = False,
) -> list[Entry]:
  """``tp.0`` conv (+bias) and ``tp.1`` BN -> ``fp/conv``, ``fp/bn``."""
  out = [_conv(f"{tp}.0.weight", fp + ("conv",), cout, cin, k)]
  if conv_bias:
    out.append(
      Entry(f"{tp}.0.bias", "params", fp + ("conv", "bias"), "vector", (cout,))
    )
  return out + list(wm._bn_entries(f"{tp}.1", fp + ("bn",), cout))


def _basic_block(tp: str, fp: tuple[str, ...], width: int) -> list[Entry]:
  out = [_conv(f"{tp}.conv1.weight", fp + ("conv1",), width, width, 3)]
  out += wm._bn_entries(f"{tp}.bn1", fp + ("bn1",), width)
  out.append(_conv(f"{tp}.conv2.weight", fp + ("conv2",), width, width, 3))
  out += wm._bn_entries(f"{tp}.bn2", fp + ("bn2",), width)
  return out


def _bottleneck(
  tp: str, fp: tuple[str, ...], cin: int, planes: int
) -> list[Entry]:
  cout = planes * hrnet.BOTTLENECK_EXPANSION
  out = [_conv(f"{tp}.conv1.weight", fp + ("conv1",), planes, cin, 1)]
  out += wm._bn_entries(f"{tp}.bn1", fp + ("bn1",), planes)
  out.append(_conv(f"{tp}.conv2.weight", fp + ("conv2",), planes, planes, 3))
  out += wm._bn_entries(f"{tp}.bn2", fp + ("bn2",), planes)
  out.append(_conv(f"{tp}.conv3.weight", fp + ("conv3",), cout, planes, 1))
  out += wm._bn_entries(f"{tp}.bn3", fp + ("bn3",), cout)
  if cin != cout:
    out.append(
      _conv(
        f"{tp}.downsample.0.weight", fp + ("downsample_conv",), cout, cin, 1
      )
    )
    out += wm._bn_entries(f"{tp}.downsample.1", fp + ("downsample_bn",), cout)
  return out


def hrnet_entries(
  prefix: str = "preact.", scope: tuple[str, ...] = ("backbone",)
) -> list[Entry]:
  """HRNet-W48 (with heatmap ``final_layer``) entries, torch module order."""
  p, s = prefix, scope
  out = [_conv(f"{p}conv1.weight", s + ("conv1",), hrnet.STEM_WIDTH, 3, 3)]
  out += wm._bn_entries(f"{p}bn1", s + ("bn1",), hrnet.STEM_WIDTH)
  out.append(
    _conv(
      f"{p}conv2.weight", s + ("conv2",), hrnet.STEM_WIDTH, hrnet.STEM_WIDTH, 3
    )
  )
  out += wm._bn_entries(f"{p}bn2", s + ("bn2",), hrnet.STEM_WIDTH)
  cin = hrnet.STEM_WIDTH
  for b in range(hrnet.LAYER1_BLOCKS):
    out += _bottleneck(
      f"{p}layer1.{b}", s + (f"layer1_{b}",), cin, hrnet.LAYER1_PLANES
    )
    cin = hrnet.LAYER1_PLANES * hrnet.BOTTLENECK_EXPANSION
  prev = [cin]
  for st, (num_modules, num_blocks, widths) in enumerate(hrnet.W48_STAGES):
    t = st + 1
    for i, width in enumerate(widths):
      if i < len(prev):
        if width != prev[i]:
          out += _conv_bn(
            f"{p}transition{t}.{i}",
            s + (f"transition{t}_{i}",),
            width,
            prev[-1],
            3,
          )
      else:
        steps = i + 1 - len(prev)
        for k in range(steps):
          cout = width if k == steps - 1 else prev[-1]
          out += _conv_bn(
            f"{p}transition{t}.{i}.{k}",
            s + (f"transition{t}_{i}_{k}",),
            cout,
            prev[-1],
            3,
          )
    n = len(widths)
    for m in range(num_modules):
      tp = f"{p}stage{st + 2}.{m}"
      fp = s + (f"stage{st + 2}_{m}",)
      for i in range(n):
        for b in range(num_blocks[i]):
          out += _basic_block(
            f"{tp}.branches.{i}.{b}", fp + (f"branches_{i}_{b}",), widths[i]
          )
      for i in range(n):
        for j in range(n):
          if j > i:
            out += _conv_bn(
              f"{tp}.fuse_layers.{i}.{j}",
              fp + (f"fuse_layers_{i}_{j}",),
              widths[i],
              widths[j],
              1,
            )
          elif j < i:
            for k in range(i - j):
              cout = widths[i] if k == i - j - 1 else widths[j]
              out += _conv_bn(
                f"{tp}.fuse_layers.{i}.{j}.{k}",
                fp + (f"fuse_layers_{i}_{j}_{k}",),
                cout,
                widths[j],
                3,
              )
    prev = list(widths)
  heat = hrnet.NUM_JOINTS * hrnet.DEPTH_DIM
  out.append(
    _conv(f"{p}final_layer.weight", s + ("final_layer",), heat, prev[0], 1)
  )
  out.append(
    Entry(
      f"{p}final_layer.bias",
      "params",
      s + ("final_layer", "bias"),
      "vector",
      (heat,),
    )
  )
  for i, width in enumerate(prev):
    out += _bottleneck(
      f"{p}incre_modules.{i}.0",
      s + (f"incre_modules_{i}",),
      width,
      hrnet.HEAD_PLANES[i],
    )
  for i in range(len(prev) - 1):
    out += _conv_bn(
      f"{p}downsamp_modules.{i}",
      s + (f"downsamp_modules_{i}",),
      hrnet.HEAD_PLANES[i + 1] * hrnet.BOTTLENECK_EXPANSION,
      hrnet.HEAD_PLANES[i] * hrnet.BOTTLENECK_EXPANSION,
      3,
      conv_bias=True,
    )
  out += _conv_bn(
    f"{p}final_feat_layer",
    s + ("final_feat_layer",),
    hrnet.FEATURE_DIM,
    hrnet.HEAD_PLANES[-1] * hrnet.BOTTLENECK_EXPANSION,
    1,
    conv_bias=True,
  )
  return out


def _linear(name: str, fin: int, fout: int, scope: tuple[str, ...]):
  return [
    Entry(
      f"{name}.weight",
      "params",
      scope + (name, "kernel"),
      "linear",
      (fout, fin),
    ),
    Entry(f"{name}.bias", "params", scope + (name, "bias"), "vector", (fout,)),
  ]


def _constants(arch: str) -> list[Entry]:
  return [
    Entry("init_shape", "constants", ("init_shape",), "vector", (NUM_BETAS,)),
    Entry("init_cam", "constants", ("init_cam",), "vector", (CAM_DIM[arch],)),
  ]


def _decoders(arch: str, scope: tuple[str, ...]) -> list[Entry]:
  fin = FEATURE_DIM[arch]
  out = []
  for name, fout in (
    ("decshape", NUM_BETAS),
    ("decphi", NUM_PHI),
    ("deccam", CAM_DIM[arch]),
    ("decsigma", NUM_SIGMA),
  ):
    out += _linear(name, fin, fout, scope)
  return out


def hrnet_cam_entries() -> list[Entry]:
  """Every mapped entry of an ``HRNetSMPLCam`` state_dict."""
  return (
    hrnet_entries()
    + _constants(HRNET_W48_CAM)
    + _decoders(HRNET_W48_CAM, ("head",))
  )


def resnet_cam_entries() -> list[Entry]:
  """Every mapped entry of a ``Simple3DPoseBaseSMPLCam`` (ResNet-34) one."""
  backbone = wm.backbone_entries(prefix="preact.", scope=("backbone",))
  # The deconv stack, final layer, fc1/fc2 are named as mmhuman3d's head
  # without the "head." prefix; init_shape is replaced by _constants.
  head = [
    e
    for e in wm.head_entries(prefix="", scope=("head",))
    if e.collection != "constants"
  ]
  return (
    backbone
    + _constants(RESNET34_CAM)
    + head
    + _decoders(RESNET34_CAM, ("head",))[-4:]
  )


def entries(arch: str) -> list[Entry]:
  """The entry table of ``arch`` (one of :data:`ARCHITECTURES`)."""
  if arch == HRNET_W48_CAM:
    return hrnet_cam_entries()
  if arch == RESNET34_CAM:
    return resnet_cam_entries()
  raise ValueError(f"unknown architecture {arch!r}; known: {ARCHITECTURES}")


def detect_architecture(keys) -> str | None:
  """``hrnet_w48_cam`` / ``resnet34_cam`` from a state_dict's keys, else None.

  Looks at a few distinctive keys only (``module.`` prefixes stripped): a
  camera head (``deccam`` / ``decsigma``) and the backbone's last stage
  (HRNet ``preact.stage4.*``, ResNet ``preact.layer4.*``), so a checkpoint
  with a few missing or extra keys is still recognised and gets the full
  key check of :func:`state_dict_to_variables`.
  """
  ks = {wm.strip_module_prefix(k) for k in keys}
  if not ks & {"deccam.weight", "deccam.bias", "decsigma.weight"}:
    return None  # no camera head (e.g. their camera-free ResNet model)
  if any(k.startswith("preact.stage4.") for k in ks):
    return HRNET_W48_CAM
  if any(k.startswith("preact.layer4.") for k in ks):
    return RESNET34_CAM
  return None


def state_dict_to_variables(
  state_dict: Mapping[str, Any],
  arch: str | None = None,
  smpl_model: Any = None,
  source: str = "state_dict",
) -> dict[str, dict]:
  """Authors' ``state_dict`` -> Flax variables of the matching cam model.

  Args:
    state_dict: key -> array (numpy or anything ``np.asarray`` takes);
      ``smpl.*`` buffers are accepted and ignored here.
    arch: :data:`HRNET_W48_CAM` or :data:`RESNET34_CAM`; None detects it.
    smpl_model: optional ``SMPLModel`` (with the H36M regressor) stored as
      ``constants/smpl``; see :func:`body_model_from_state_dict`.
    source: name used in error messages.

  Returns:
    {'params': {'backbone', 'head'}, 'batch_stats': {'backbone'[, 'head']},
     'constants': {'init_shape', 'init_cam'[, 'smpl']}} (float32 numpy).

  Raises:
    WeightMappingError: every missing / unexpected / mis-shaped key.
  """
  if arch is None:
    arch = detect_architecture(state_dict.keys())
    if arch is None:
      raise wm.WeightMappingError(
        [
          "not an authors' HybrIK camera model (HRNetSMPLCam or "
          "Simple3DPoseBaseSMPLCam): no deccam/decsigma + preact keys"
        ],
        source,
      )
  variables = wm._map(  # pylint: disable=protected-access
    state_dict,
    entries(arch),
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


def variables_to_state_dict(
  variables: Mapping[str, Any], arch: str
) -> dict[str, np.ndarray]:
  """Inverse of :func:`state_dict_to_variables` (no ``smpl.*``; BN
  ``num_batches_tracked`` emitted as int64 0)."""
  out = {}
  for e in entries(arch):
    out[e.torch_key] = wm.flax_to_torch(
      e.kind, wm._get(variables[e.collection], e.path)
    )
    if e.torch_key.endswith(".running_var"):
      out[e.torch_key[: -len("running_var")] + "num_batches_tracked"] = (
        np.array(0, np.int64)
      )
  return out


def body_model_from_state_dict(state_dict: Mapping[str, Any]):
  """The ``SMPLModel`` held in an authors' checkpoint's ``smpl.*`` buffers.

  ``posedirs`` is stored [207, V*3] as smplx/the authors lay it out;
  ``J_regressor_h36m`` becomes ``J_regressor_extra``. float32.

  Raises:
    WeightMappingError: naming the missing buffers.
  """
  from hybrik_jax.smpl.model import SMPLModel

  sd = {wm.strip_module_prefix(k): v for k, v in state_dict.items()}
  need = (
    "v_template",
    "shapedirs",
    "posedirs",
    "J_regressor",
    "J_regressor_h36m",
    "lbs_weights",
    "faces_tensor",
  )
  missing = [f"missing key 'smpl.{k}'" for k in need if f"smpl.{k}" not in sd]
  if missing:
    raise wm.WeightMappingError(missing, "smpl.* buffers")
  f32 = lambda k: np.asarray(sd[f"smpl.{k}"], np.float32)  # noqa: E731
  return SMPLModel(
    v_template=f32("v_template"),
    shapedirs=f32("shapedirs"),
    posedirs=f32("posedirs"),
    J_regressor=f32("J_regressor"),
    lbs_weights=f32("lbs_weights"),
    faces=np.asarray(sd["smpl.faces_tensor"], np.int32),
    J_regressor_extra=f32("J_regressor_h36m"),
  )
