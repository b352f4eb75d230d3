"""The full HybrIK network: ResNet-34 -> HybrIKHead -> uvd->camera -> IK + SMPL.

Equivalent to mmhuman3d's ``HybrIK_trainer`` forward (``resnet34_hybrik_mixed``).

Variables layout (``flax.linen`` collections)::

  {'params':      {'backbone': {...}, 'head': {...}},          # trainable
   'batch_stats': {'backbone': {...}, 'head': {...}},          # BN running stats
   'constants':   {'init_shape': [10],                         # h36m mean beta
                   'smpl': {'v_template', 'shapedirs', 'posedirs',
                            'J_regressor', 'lbs_weights', 'faces',
                            'J_regressor_extra'}}}             # body model

so ``predict(variables, ...)`` needs nothing else. ``constants`` is never
trained (exclude it from the optimizer: only ``variables['params']`` is).

Camera inputs follow mmhuman3d's dataset: ``trans_inv [B,2,3]`` (crop ->
image affine), ``intrinsic_param [B,3,3]`` = K^-1, ``joint_root [B,3]`` in mm,
``depth_factor [B,1]`` in mm (2000 = a 2 m box). Images are NHWC float32,
normalised RGB (ImageNet mean/std in 0-255 units).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from hybrik_jax.model import backbones
from hybrik_jax.model.head import HEATMAP_STRIDE, HybrIKHead, uvd_to_cam
from hybrik_jax.smpl import tables
from hybrik_jax.smpl.model import SMPLModel

Dtype = Any
Precision = Any

NUM_JOINTS = HybrIKHead.num_joints
NUM_BETAS = tables.NUM_BETAS
# Depth box of the head in metres: pose_skeleton = xyz (units of 2 m) * 2.
DEPTH_BOX_M = 2.0

SMPL_CONSTANT_KEYS = (
  "v_template",
  "shapedirs",
  "posedirs",
  "J_regressor",
  "lbs_weights",
  "faces",
  "J_regressor_extra",
)

OUTPUT_KEYS = (
  "pred_uvd_jts",
  "pred_xyz_jts_24",
  "pred_xyz_jts_24_struct",
  "pred_xyz_jts_17",
  "pred_vertices",
  "pred_pose",
  "pred_shape",
  "pred_delta_shape",
  "pred_phi",
  "maxvals",
)


class HybrIK(nn.Module):
  """HybrIK (mmhuman3d ``HybrIK_trainer``) as one Flax module.

  Attributes:
    dtype: compute dtype of backbone and head (e.g. ``jnp.bfloat16``); params,
      soft-argmax, uvd->camera, IK and SMPL are always float32.
    precision: ``lax.Precision`` of convolutions / dense layers (None = the
      backend default; on GPU/TPU pass ``'highest'`` for float32 parity).
    dropout_rate: dropout of the head's global branch (0.5).
    backbone: name in :data:`hybrik_jax.model.backbones.BACKBONES`.
  """

  dtype: Dtype = jnp.float32
  precision: Precision = None
  dropout_rate: float = 0.5
  backbone: str = "resnet34"

  @nn.compact
  def __call__(
    self,
    images: jax.Array,
    trans_inv: jax.Array,
    intrinsic_param: jax.Array,
    joint_root: jax.Array,
    depth_factor: jax.Array,
    train: bool = False,
    return_intermediates: bool = False,
    with_body_model: bool = True,
  ) -> dict[str, jax.Array]:
    """Full forward.

    Args:
      images: [B, 256, 256, 3] normalised RGB, NHWC.
      trans_inv: [B, 2, 3] crop -> original-image affine.
      intrinsic_param: [B, 3, 3] inverse camera matrix K^-1.
      joint_root: [B, 3] root joint in the camera frame, mm.
      depth_factor: [B, 1] mm (2000).
      train: BatchNorm batch statistics (mutable=['batch_stats']), dropout
        (rng 'dropout') and mmhuman3d's train-mode IK branch.
      return_intermediates: also return ``backbone_features [B,8,8,512]``,
        ``deconv_features [B,64,64,256]`` (NHWC, compute dtype),
        ``heatmap_logits [B,64,64,1856]`` (NHWC, float32) and
        ``pred_xyz_jts_29 [B,29,3]``.
      with_body_model: run IK + SMPL; False stops after the head (no
        pred_vertices / pred_pose / pred_xyz_jts_24_struct / pred_xyz_jts_17;
        ``constants/smpl`` is then not needed).

    Returns:
      mmhuman3d's output dict (float32): pred_uvd_jts [B,87],
      pred_xyz_jts_24 [B,72] and pred_xyz_jts_24_struct [B,72] (pelvis-relative,
      units of 2 m), pred_xyz_jts_17 [B,51] (H36M, from vertices, H36M-pelvis-
      relative, units of 2 m), pred_vertices [B,6890,3] (metres),
      pred_pose [B,24,3,3], pred_shape / pred_delta_shape [B,10],
      pred_phi [B,23,2], maxvals [B,29,1].
    """
    batch = images.shape[0]
    init_shape = self.variable(
      "constants", "init_shape", lambda: jnp.zeros((NUM_BETAS,), jnp.float32)
    ).value  # [10]

    backbone = backbones.get_backbone(self.backbone)
    feature = backbone(
      dtype=self.dtype, precision=self.precision, name="backbone"
    )(images, train=train)  # [B, 8, 8, 512]
    head = HybrIKHead(
      dtype=self.dtype,
      precision=self.precision,
      dropout_rate=self.dropout_rate,
      name="head",
    )
    h = head(feature, init_shape, train=train, with_logits=return_intermediates)

    uvd = h["pred_uvd_jts_29"]  # [B, 29, 3]
    # uvd spans the crop: (u + 0.5) * image width = crop pixels (64 * 4 =
    # 256 for the recipe; other square input sizes scale the same way).
    xyz_29 = uvd_to_cam(
      uvd,
      trans_inv,
      intrinsic_param,
      joint_root,
      depth_factor,
      heatmap_size=images.shape[2] // HEATMAP_STRIDE,
    )
    # xyz_29: [B, 29, 3] in units of depth_factor
    xyz_29 = xyz_29 - xyz_29[:, :1, :]

    out = {
      "pred_uvd_jts": uvd.reshape(batch, NUM_JOINTS * 3),
      "pred_xyz_jts_24": xyz_29[:, :24, :].reshape(batch, 72),
      "pred_shape": h["pred_shape"],
      "pred_delta_shape": h["pred_delta_shape"],
      "pred_phi": h["pred_phi"],
      "maxvals": h["maxvals"],
    }
    if return_intermediates:
      out["backbone_features"] = feature
      out["deconv_features"] = h["deconv_features"]
      out["heatmap_logits"] = h["heatmap_logits"]
      out["pred_xyz_jts_29"] = xyz_29

    if not with_body_model:
      return out
    if not self.has_variable("constants", "smpl"):
      if self.is_initializing():
        return out  # the body model is attached after init (init_variables)
      raise ValueError(
        "variables['constants']['smpl'] is missing: attach the body model "
        "with hybrik_jax.model.attach_body_model(variables, smpl_model)"
      )
    body = body_model_from_constants(self.get_variable("constants", "smpl"))

    from hybrik_jax.smpl import hybrik_forward

    smpl_out = hybrik_forward(
      body,
      xyz_29.astype(jnp.float32) * DEPTH_BOX_M,
      h["pred_shape"].astype(jnp.float32),
      h["pred_phi"].astype(jnp.float32),
      train=train,
    )
    out["pred_vertices"] = smpl_out["vertices"].astype(jnp.float32)
    out["pred_xyz_jts_24_struct"] = (
      smpl_out["joints"].astype(jnp.float32) / DEPTH_BOX_M
    ).reshape(batch, 72)
    out["pred_xyz_jts_17"] = (
      smpl_out["joints_from_verts"].astype(jnp.float32) / DEPTH_BOX_M
    ).reshape(batch, -1)
    out["pred_pose"] = (
      smpl_out["poses"].astype(jnp.float32).reshape(batch, 24, 3, 3)
    )
    return out


def body_model_from_constants(smpl: Mapping[str, Any]) -> SMPLModel:
  """Rebuilds the ``SMPLModel`` stored in ``variables['constants']['smpl']``."""
  missing = [k for k in SMPL_CONSTANT_KEYS if k not in smpl]
  if missing:
    raise ValueError(f"variables['constants']['smpl'] lacks {missing}")
  return SMPLModel(**{k: smpl[k] for k in SMPL_CONSTANT_KEYS})


def body_model_constants(smpl_model: SMPLModel) -> dict[str, Any]:
  """The ``constants/smpl`` entry for ``smpl_model`` (float32 arrays)."""
  if smpl_model.J_regressor_extra is None:
    raise ValueError(
      "HybrIK needs the H36M joint regressor for pred_xyz_jts_17: load the "
      "body model with extra_regressor='J_regressor_h36m.npy'"
    )
  out = {}
  for k in SMPL_CONSTANT_KEYS:
    v = getattr(smpl_model, k)
    out[k] = jnp.asarray(v, jnp.int32 if k == "faces" else jnp.float32)
  return out


def attach_body_model(
  variables: Mapping[str, Any], smpl_model: SMPLModel
) -> dict[str, Any]:
  """Returns a copy of ``variables`` whose ``constants/smpl`` is ``smpl_model``.

  The body model must carry ``J_regressor_extra`` (H36M-17 regressor,
  ``J_regressor_h36m.npy``). Other collections are shared, not copied.
  """
  variables = dict(variables)
  constants = dict(variables.get("constants", {}))
  constants["smpl"] = body_model_constants(smpl_model)
  variables["constants"] = constants
  return variables


def init_variables(
  rng: jax.Array,
  smpl_model: SMPLModel | None = None,
  init_shape: Any = None,
  image_size: int = 256,
  dtype: Dtype = jnp.float32,
  model: HybrIK | None = None,
) -> dict[str, Any]:
  """Fresh variables of ``HybrIK`` (PyTorch-style random init).

  Args:
    rng: PRNG key for parameter init.
    smpl_model: body model to store in ``constants/smpl`` (with the H36M
      extra regressor); None leaves it out (attach later).
    init_shape: [10] mean shape (``h36m_mean_beta.npy`` values, or a path to
      it); None = zeros.
    image_size: input resolution used to trace the init (params do not depend
      on it).
    dtype: compute dtype used while tracing (params are float32 regardless).
    model: the module to initialise (default ``HybrIK(dtype=dtype)``); pass
      it to initialise another backbone.

  Returns:
    {'params', 'batch_stats', 'constants'} as plain nested dicts.
  """
  model = HybrIK(dtype=dtype) if model is None else model
  b = 1
  images = jnp.zeros((b, image_size, image_size, 3), jnp.float32)
  cam = dummy_camera(b)
  variables = jax.jit(functools.partial(model.init, train=False))(
    {"params": rng}, images, *cam
  )
  variables = {k: dict(v) for k, v in variables.items()}
  if init_shape is not None:
    if isinstance(init_shape, (str, bytes)) or hasattr(
      init_shape, "__fspath__"
    ):
      init_shape = np.load(init_shape, allow_pickle=False)
    init_shape = jnp.asarray(np.asarray(init_shape, np.float32).reshape(-1))
    if init_shape.shape != (NUM_BETAS,):
      raise ValueError(
        f"init_shape must have {NUM_BETAS} entries, got "
        f"shape {init_shape.shape}"
      )
    variables["constants"]["init_shape"] = init_shape
  if smpl_model is not None:
    variables = attach_body_model(variables, smpl_model)
  return variables


def dummy_camera(b: int) -> tuple[np.ndarray, ...]:
  """Camera inputs for tracing or timing the network, float32 numpy.

  Identity crop affine ``trans_inv [b, 2, 3]``, ``K^-1 = I [b, 3, 3]``, root
  5 m in front of the camera ``joint_root [b, 3]`` (mm), ``depth_factor
  [b, 1]`` = 2000 mm. The outputs are meaningless as a pose; only shapes and
  dtypes matter.
  """
  trans_inv = np.tile(
    np.array([[1, 0, 0], [0, 1, 0]], np.float32), (b, 1, 1)
  )  # [b, 2, 3]
  kinv = np.tile(np.eye(3, dtype=np.float32), (b, 1, 1))  # [b, 3, 3]
  joint_root = np.tile(np.array([[0, 0, 5000]], np.float32), (b, 1))  # [b, 3]
  depth_factor = np.full((b, 1), 2000, np.float32)  # [b, 1]
  return trans_inv, kinv, joint_root, depth_factor


@functools.partial(
  jax.jit,
  static_argnames=(
    "dtype",
    "precision",
    "return_intermediates",
    "with_body_model",
    "backbone",
  ),
)
def predict(
  variables: Mapping[str, Any],
  images: jax.Array,
  trans_inv: jax.Array,
  intrinsic_param: jax.Array,
  joint_root: jax.Array,
  depth_factor: jax.Array,
  *,
  dtype: Dtype = jnp.float32,
  precision: Precision = None,
  return_intermediates: bool = False,
  with_body_model: bool = True,
  backbone: str = "resnet34",
) -> dict[str, jax.Array]:
  """Eval-mode HybrIK forward (running BN stats, no dropout, eval IK). Jitted.

  Args:
    variables: {'params', 'batch_stats', 'constants': {'init_shape', 'smpl'}}
      (e.g. from ``weight_mapping.state_dict_to_variables`` or
      ``init_variables``). Numpy trees are copied to the device on every
      call: ``jax.device_put(variables)`` once when predicting repeatedly.
    images: [B, 256, 256, 3] float32 normalised RGB, NHWC.
    trans_inv: [B, 2, 3] crop -> image affine.
    intrinsic_param: [B, 3, 3] K^-1.
    joint_root: [B, 3] root joint, camera frame, mm.
    depth_factor: [B, 1] mm.
    dtype: compute dtype (static); bfloat16 keeps params/IK/SMPL in float32.
    precision: conv/dense precision (static); None = backend default.
    return_intermediates: add backbone/deconv/heatmap features (static).
    with_body_model: run IK + SMPL (static); False stops after the head.
    backbone: registered backbone name (static), as in ``HybrIK.backbone``.

  Returns:
    The output dict of ``HybrIK.__call__`` (mmhuman3d keys).
  """
  model = HybrIK(dtype=dtype, precision=precision, backbone=backbone)
  return model.apply(
    variables,
    images,
    trans_inv,
    intrinsic_param,
    joint_root,
    depth_factor,
    train=False,
    return_intermediates=return_intermediates,
    with_body_model=with_body_model,
  )


def count_params(params: Mapping[str, Any]) -> int:
  """Number of scalars in a params tree (27,589,816 for HybrIK)."""
  return int(sum(np.prod(x.shape) for x in jax.tree_util.tree_leaves(params)))
