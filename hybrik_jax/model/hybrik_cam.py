"""The authors' HybrIK camera models: ``HRNetSMPLCam`` and
``Simple3DPoseBaseSMPLCam`` (ResNet-34), as Flax modules.

From Jeff-sjtu/HybrIK ``hybrik/models/HRNetWithCam.py`` and
``hybrik/models/simple3dposeSMPLWithCam.py`` (the model zoo's HRNet-W48 and
ResNet-34 "with predicted camera"), re-written for this project. The camera
conventions are in :mod:`hybrik_jax.model.cam_head`, the SMPL layer's
differences from mmhuman3d's in :mod:`hybrik_jax.model.authors_smpl`.

Variables::

  {'params':      {'backbone': {...}, 'head': {...}},
   'batch_stats': {'backbone': {...}[, 'head': {...}]},
   'constants':   {'init_shape': [10], 'init_cam': [1] (HRNet) | [3] (ResNet),
                   'smpl': {...}}}          # as HybrIK's (attach_body_model)

(:mod:`hybrik_jax.interop.authors_mapping` maps the authors' state_dicts.)

Inputs: ``images`` [B, 256, 256, 3] normalised RGB (NHWC; the authors' demo
normalises with ImageNet mean/std on 0-1 RGB). Optional ``bboxes`` [B, 4]
(x1, y1, x2, y2, image pixels) with ``img_center`` [B, 2] (image pixels):
the authors' demo passes both; without them HRNet assumes a crop centred on
the optical axis and the ResNet model subtracts its regressed xy offset.

Outputs (float32; the authors' key names; "units of df" = of
``depth_factor`` = 2.2 m):

  pred_uvd_jts [B, 87]            soft-argmax uvd in [-0.5, 0.5)
  pred_xyz_jts_29 [B, 87]         back-projected joints, root-relative (df)
  pred_xyz_jts_24 [B, 72]         its first 24 joints (df)
  pred_xyz_jts_24_struct [B, 72]  IK/SMPL joints, root-relative (df)
  pred_xyz_jts_17 [B, 51]         H36M joints from the mesh, H36M-pelvis-
                                  relative (df)
  pred_vertices [B, 6890, 3]      mesh, metres, minus the H36M pelvis
  pred_theta_mats [B, 216]        24 local rotation matrices (row-major)
  pred_shape, pred_delta_shape [B, 10], pred_phi [B, 23, 2] (unnormalised)
  pred_sigma, scores [B, 29, 1]   sigmoid uncertainty and 1 - sigma
  maxvals [B, 29, 1]              peak probability of each heatmap volume
  cam_scale [B, 1]                the scale used (HRNet eval: update_scale)
  cam_root [B, 3]                 root joint, camera frame, metres
  transl [B, 3]                   = cam_root (minus the root of the
                                  root-relative SMPL joints, i.e. 0): place
                                  ``pred_vertices + transl`` in the camera
                                  frame with focal 1000 px per 256-px crop
  pred_camera [B, 1]              HRNet: regressed scale (before update_scale)
  cam_trans [B, 2]                ResNet: regressed xy offset (metres)
  img_feat [B, 2048]              HRNet: pooled feature (unflipped pass)
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from hybrik_jax.model import backbones, cam_head
from hybrik_jax.model.authors_smpl import authors_hybrik, inverse_kinematics
from hybrik_jax.model.hybrik import attach_body_model, body_model_from_constants
from hybrik_jax.smpl import lbs, tables
from hybrik_jax.smpl.hybrik_layer import rest_joints29

Dtype = Any
Precision = Any

HRNET_INIT_CAM = (0.9,)
RESNET_INIT_CAM = (0.9, 0.0, 0.0)

OUTPUT_KEYS = (
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
  "scores",
  "maxvals",
  "cam_scale",
  "cam_root",
  "transl",
)


def update_scale(
  body,
  uvd: jax.Array,
  sigma: jax.Array,
  init_scale: jax.Array,
  pred_shape: jax.Array,
  pred_phi: jax.Array,
  offset: jax.Array | None,
  depth_factor: float,
  focal_length: float,
  input_size: float,
) -> jax.Array:
  """HRNetSMPLCam's eval-only camera-scale refinement (``update_scale``).

  Back-projects uvd with the regressed scale (camera root WITHOUT camDepth,
  as the authors' commented-out line leaves it), runs the naive IK on the
  root-relative skeleton, places the IK joints at that root and solves the
  weighted 1-D least squares of :func:`cam_head.solve_scale` with weights
  ``clamp_min(1 - 10 sigma, 0)`` on the 24 SMPL joints.

  Args:
    body: SMPLModel.
    uvd: [B, 29, 3]; sigma: [B, 29, 1]; init_scale: [B, 1, 1];
    pred_shape: [B, 10]; pred_phi: [B, 23, 2].
    offset: [B, 1, 2] box offset or None.

  Returns:
    [B, 1, 1] scale (``init_scale`` where the system is singular).
  """
  depth = cam_head.cam_depth(init_scale, focal_length, input_size)
  xyz = cam_head.back_project(
    uvd, depth, offset, None, depth_factor, focal_length, input_size
  )  # [B, 29, 3] units of depth_factor
  root = xyz[:, 0] * depth_factor  # [B, 3] metres (no camDepth)
  xyz = xyz - xyz[:, :1]
  rest = rest_joints29(body, pred_shape)  # [B, 29, 3]
  rot = inverse_kinematics(xyz * depth_factor, pred_phi, rest, naive=True)
  joints, _, _ = lbs.batch_rigid_transform(
    rot,
    rest[:, : tables.NUM_SMPL_JOINTS],
    tables.SMPL_PARENTS,
    tables.SMPL_LEVELS,
  )  # [B, 24, 3]
  joints = joints - joints[:, :1]
  joints = joints - joints[:, :1] + root[:, None, :]
  n = cam_head.NUM_SCALE_JOINTS
  uvd24 = uvd[:, :n]
  if offset is not None:
    uvd24 = jnp.concatenate([uvd24[..., :2] + offset, uvd24[..., 2:]], -1)
  weight = jnp.maximum(1.0 - sigma * cam_head.SIGMA_WEIGHT, 0.0)[:, :n]
  return cam_head.solve_scale(
    uvd24, joints, weight, init_scale, focal_length, input_size
  )


class _CamModel(nn.Module):
  """Shared camera / IK / SMPL tail of both models (not used directly)."""

  dtype: Dtype = jnp.float32
  precision: Precision = None
  focal_length: float = cam_head.FOCAL_LENGTH
  input_size: float = cam_head.INPUT_SIZE
  depth_factor: float = cam_head.DEPTH_FACTOR

  def _constants(self, cam_dim: int, init_cam) -> tuple[jax.Array, jax.Array]:
    init_shape = self.variable(
      "constants",
      "init_shape",
      lambda: jnp.zeros((cam_head.NUM_BETAS,), jnp.float32),
    ).value  # [10]
    init_c = self.variable(
      "constants", "init_cam", lambda: jnp.asarray(init_cam, jnp.float32)
    ).value  # [cam_dim]
    if init_c.shape != (cam_dim,):
      raise ValueError(f"constants/init_cam: {init_c.shape}, want ({cam_dim},)")
    return init_shape, init_c

  def _tail(
    self,
    *,
    uvd: jax.Array,
    maxvals: jax.Array,
    delta_shape: jax.Array,
    pred_shape: jax.Array,
    phi: jax.Array,
    pred_camera: jax.Array,
    sigma: jax.Array,
    bboxes: jax.Array | None,
    img_center: jax.Array | None,
    cam_trans: jax.Array | None,
    refine_scale: bool,
    train: bool,
    with_body_model: bool,
  ) -> dict[str, jax.Array]:
    batch = uvd.shape[0]
    df = self.depth_factor
    out = {
      "pred_uvd_jts": uvd.reshape(batch, -1),
      "pred_shape": pred_shape,
      "pred_delta_shape": delta_shape,
      "pred_phi": phi,
      "pred_sigma": sigma,
      "scores": 1.0 - sigma,
      "maxvals": maxvals,
    }
    has_body = self.has_variable("constants", "smpl")
    if with_body_model and not has_body and not self.is_initializing():
      raise ValueError(
        "variables['constants']['smpl'] is missing: attach the body model "
        "with hybrik_jax.model.attach_body_model(variables, smpl_model)"
      )
    run_body = with_body_model and has_body
    body = (
      body_model_from_constants(self.get_variable("constants", "smpl"))
      if run_body
      else None
    )
    offset = None
    if bboxes is not None:
      if img_center is None:
        raise ValueError("bboxes need img_center")
      offset = cam_head.bbox_center_offset(bboxes, img_center)  # [B, 1, 2]
    scale = pred_camera[:, :1][:, :, None]  # [B, 1, 1]
    if refine_scale and not train and run_body:
      scale = update_scale(
        body,
        uvd,
        sigma,
        scale,
        pred_shape,
        phi,
        offset,
        df,
        self.focal_length,
        self.input_size,
      )
    depth = cam_head.cam_depth(scale, self.focal_length, self.input_size)
    xyz = cam_head.back_project(
      uvd,
      depth,
      offset,
      cam_trans if bboxes is None else None,
      df,
      self.focal_length,
      self.input_size,
    )  # [B, 29, 3] units of df
    cam_root = xyz[:, 0] * df
    cam_root = cam_root.at[:, 2].add(depth[:, 0, 0])  # [B, 3] metres
    xyz = xyz - xyz[:, :1]
    out["pred_xyz_jts_29"] = xyz.reshape(batch, -1)
    out["pred_xyz_jts_24"] = xyz[:, :24].reshape(batch, 72)
    out["cam_scale"] = scale[:, 0]
    out["cam_root"] = cam_root
    if not run_body:
      return out
    smpl = authors_hybrik(body, xyz * df, pred_shape, phi, naive=train)
    out["pred_vertices"] = smpl["vertices"].astype(jnp.float32)
    out["pred_xyz_jts_24_struct"] = (smpl["joints"] / df).reshape(batch, 72)
    out["pred_xyz_jts_17"] = (smpl["joints_from_verts"] / df).reshape(batch, -1)
    out["pred_theta_mats"] = smpl["rot_mats"].reshape(batch, 24 * 9)
    out["transl"] = cam_root - smpl["joints"][:, 0]
    return out


class HRNetSMPLCam(_CamModel):
  """The authors' ``HRNetSMPLCam`` (HRNet-W48, predicted camera scale).

  Attributes:
    dtype: compute dtype of backbone and regressors (params, soft-argmax,
      camera, IK and SMPL are float32).
    precision: ``lax.Precision`` of convolutions / dense layers.
    focal_length: px for the ``input_size`` crop (1000).
    input_size: crop size in px (256).
    depth_factor: metres, ``BBOX_3D_SHAPE[2] / 1000`` (2.2).
    backbone: registry name (a module taking ``return_heatmap=True``).
  """

  backbone: str = "hrnet_w48"

  @nn.compact
  def __call__(
    self,
    images: jax.Array,
    bboxes: jax.Array | None = None,
    img_center: jax.Array | None = None,
    train: bool = False,
    flip_test: bool = False,
    with_body_model: bool = True,
    return_intermediates: bool = False,
  ) -> dict[str, jax.Array]:
    """Forward (see the module docstring for inputs and outputs).

    Args:
      images: [B, 256, 256, 3] normalised RGB.
      bboxes: optional [B, 4] boxes (x1, y1, x2, y2) px, with img_center.
      img_center: optional [B, 2] px.
      train: BatchNorm batch statistics (mutable=['batch_stats']) and the
        naive IK; no update_scale.
      flip_test: also run the width-flipped image and average as the
        authors do (eval only): heatmaps after the softmax (flipped logits
        mirrored, left/right swapped, shifted one pixel -- the intended
        shift, see ``cam_head.flip_heatmap_logits``), shape, phis (sin
        negated, pairs swapped), sigma (pairs swapped); the camera scale
        by the harmonic mean. ``pred_delta_shape`` and ``img_feat`` stay
        those of the unflipped pass.
      with_body_model: False skips update_scale, IK and SMPL.
      return_intermediates: add ``heatmap_logits`` [B, 64, 64, 1856]
        (float32) and ``backbone_features`` [B, 8, 8, 2048] (unflipped).
    """
    if flip_test and train:
      raise ValueError("flip_test is an eval-mode option")
    batch = images.shape[0]
    init_shape, init_cam = self._constants(1, HRNET_INIT_CAM)
    net = backbones.get_backbone(self.backbone)(
      dtype=self.dtype, precision=self.precision, name="backbone"
    )
    head = cam_head.HRNetCamHead(self.dtype, self.precision, name="head")
    x = images
    if flip_test:
      x = jnp.concatenate([images, images[:, :, ::-1]], axis=0)  # [2B, ...]
    logits, feat = net(x, train=train, return_heatmap=True)
    reg = head(feat)
    probs = cam_head.heatmap_probs(logits[:batch])  # [B, H, W, J, D]
    delta_shape = reg["delta_shape"][:batch]
    pred_shape = delta_shape + init_shape[None]
    phi = reg["phi"][:batch]
    pred_camera = reg["camera"][:batch] + init_cam[None]  # [B, 1]
    sigma = reg["sigma"][:batch]
    if flip_test:
      f_logits = cam_head.flip_heatmap_logits(logits[batch:])
      probs = (probs + cam_head.heatmap_probs(f_logits)) / 2
      f_shape = reg["delta_shape"][batch:] + init_shape[None]
      pred_shape = (pred_shape + f_shape) / 2
      phi = (phi + cam_head.flip_phi(reg["phi"][batch:])) / 2
      f_camera = reg["camera"][batch:] + init_cam[None]
      pred_camera = 2 / (1 / f_camera + 1 / pred_camera)
      sigma = (sigma + cam_head.flip_joint_values(reg["sigma"][batch:])) / 2
    uvd, maxvals = cam_head.integral_uvd(probs)
    out = self._tail(
      uvd=uvd,
      maxvals=maxvals,
      delta_shape=delta_shape,
      pred_shape=pred_shape,
      phi=phi,
      pred_camera=pred_camera,
      sigma=sigma,
      bboxes=bboxes,
      img_center=img_center,
      cam_trans=None,
      refine_scale=True,
      train=train,
      with_body_model=with_body_model,
    )
    out["pred_camera"] = pred_camera
    out["img_feat"] = reg["img_feat"][:batch]
    if return_intermediates:
      out["heatmap_logits"] = logits[:batch]
      out["backbone_features"] = feat[:batch]
    return out


class Simple3DPoseBaseSMPLCam(_CamModel):
  """The authors' ``Simple3DPoseBaseSMPLCam`` (ResNet-34, predicted camera
  scale + xy offset). Attributes as :class:`HRNetSMPLCam`, plus
  ``dropout_rate`` (0.5, after fc1 and fc2 in train mode).

  No flip test: the authors' version of it cannot run (``decsigma`` is fed
  the 512-d pooled feature instead of fc2's output and ``self.flip_sigma``
  does not exist), so there is nothing to match.
  """

  dropout_rate: float = 0.5
  backbone: str = "resnet34"

  @nn.compact
  def __call__(
    self,
    images: jax.Array,
    bboxes: jax.Array | None = None,
    img_center: jax.Array | None = None,
    train: bool = False,
    flip_test: bool = False,
    with_body_model: bool = True,
    return_intermediates: bool = False,
  ) -> dict[str, jax.Array]:
    """Forward; arguments as :meth:`HRNetSMPLCam.__call__` (``train`` also
    enables dropout: rng 'dropout'). Intermediates: ``backbone_features``
    [B, 8, 8, 512], ``deconv_features`` [B, 64, 64, 256],
    ``heatmap_logits`` [B, 64, 64, 1856]."""
    if flip_test:
      raise NotImplementedError(
        "flip test of Simple3DPoseBaseSMPLCam: the authors' implementation "
        "crashes (decsigma on the 512-d feature, missing flip_sigma); not "
        "defined here"
      )
    init_shape, init_cam = self._constants(3, RESNET_INIT_CAM)
    feature = backbones.get_backbone(self.backbone)(
      dtype=self.dtype, precision=self.precision, name="backbone"
    )(images, train=train)  # [B, 8, 8, 512]
    h = cam_head.ResNetCamHead(
      dropout_rate=self.dropout_rate,
      dtype=self.dtype,
      precision=self.precision,
      name="head",
    )(feature, train=train)
    probs = cam_head.heatmap_probs(h["heatmap_logits"])
    uvd, maxvals = cam_head.integral_uvd(probs)
    pred_camera = h["camera"] + init_cam[None]  # [B, 3]
    out = self._tail(
      uvd=uvd,
      maxvals=maxvals,
      delta_shape=h["delta_shape"],
      pred_shape=h["delta_shape"] + init_shape[None],
      phi=h["phi"],
      pred_camera=pred_camera,
      sigma=h["sigma"],
      bboxes=bboxes,
      img_center=img_center,
      cam_trans=pred_camera[:, None, 1:],
      refine_scale=False,
      train=train,
      with_body_model=with_body_model,
    )
    out["cam_trans"] = pred_camera[:, 1:]
    if return_intermediates:
      out["heatmap_logits"] = h["heatmap_logits"]
      out["deconv_features"] = h["deconv_features"]
      out["backbone_features"] = feature
    return out


MODELS = {
  "hrnet_w48_cam": HRNetSMPLCam,
  "resnet34_cam": Simple3DPoseBaseSMPLCam,
}


def make_model(arch: str, **kwargs) -> nn.Module:
  """The cam model for an architecture name (``authors_mapping``'s)."""
  try:
    return MODELS[arch](**kwargs)
  except KeyError:
    raise ValueError(
      f"unknown architecture {arch!r}; known: {sorted(MODELS)}"
    ) from None


def init_variables(
  rng: jax.Array,
  arch: str,
  smpl_model=None,
  init_shape: Any = None,
  image_size: int = 256,
  model: nn.Module | None = None,
) -> dict[str, Any]:
  """Fresh variables of ``make_model(arch)`` (PyTorch-style random init).

  Args:
    rng: PRNG key.
    arch: 'hrnet_w48_cam' or 'resnet34_cam'.
    smpl_model: body model (with the H36M regressor) for ``constants/smpl``.
    init_shape: [10] mean shape, or a path to an ``.npy`` of it (None =
      zeros).
    image_size: traced input size.
    model: the module to initialise (default ``make_model(arch)``).
  """
  model = make_model(arch) if model is None else model
  images = jnp.zeros((1, image_size, image_size, 3), jnp.float32)
  variables = jax.jit(functools.partial(model.init, train=False))(
    {"params": rng}, images
  )
  variables = {k: dict(v) for k, v in variables.items()}
  if init_shape is not None:
    if isinstance(init_shape, (str, bytes)) or hasattr(
      init_shape, "__fspath__"
    ):
      init_shape = np.load(init_shape, allow_pickle=False)
    variables["constants"]["init_shape"] = jnp.asarray(
      np.asarray(init_shape, np.float32).reshape(cam_head.NUM_BETAS)
    )
  if smpl_model is not None:
    variables = attach_body_model(variables, smpl_model)
  return variables


@functools.partial(
  jax.jit,
  static_argnames=(
    "arch",
    "flip_test",
    "dtype",
    "precision",
    "return_intermediates",
    "with_body_model",
  ),
)
def predict(
  variables: Mapping[str, Any],
  images: jax.Array,
  bboxes: jax.Array | None = None,
  img_center: jax.Array | None = None,
  *,
  arch: str,
  flip_test: bool = False,
  dtype: Dtype = jnp.float32,
  precision: Precision = None,
  return_intermediates: bool = False,
  with_body_model: bool = True,
) -> dict[str, jax.Array]:
  """Eval-mode forward of an authors' cam model (jitted).

  Args:
    variables: from ``authors_mapping.state_dict_to_variables`` (+ smpl).
    images: [B, 256, 256, 3] float32 normalised RGB, NHWC.
    bboxes: optional [B, 4] (x1, y1, x2, y2) px; img_center [B, 2] px.
    arch: 'hrnet_w48_cam' | 'resnet34_cam' (static).
    flip_test: HRNet's flip test (static).
    dtype, precision, return_intermediates, with_body_model: static.

  Returns:
    The output dict of the model (module docstring).
  """
  model = make_model(arch, dtype=dtype, precision=precision)
  return model.apply(
    variables,
    images,
    bboxes,
    img_center,
    train=False,
    flip_test=flip_test,
    return_intermediates=return_intermediates,
    with_body_model=with_body_model,
  )
