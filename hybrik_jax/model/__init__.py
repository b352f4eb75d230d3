"""Flax HybrIK network: backbone (ResNet-34) + HybrIK head + IK/SMPL layer.

Public API:
  HybrIK                       the full flax.linen module
  ResNet34, HybrIKHead         its parts; backbones.BACKBONES the registry
  TorchBatchNorm               BatchNorm with PyTorch's running-var semantics
  init_variables(rng, smpl_model=None, init_shape=None, image_size=256,
                 model=None) -> variables
  attach_body_model(variables, smpl_model) -> variables
  predict(variables, images_nhwc, trans_inv, intrinsic_param, joint_root,
          depth_factor, *, dtype, precision, return_intermediates) -> dict

The PyTorch state_dict mapping lives in :mod:`hybrik_jax.interop.weight_mapping`.

The authors' (Jeff-sjtu/HybrIK) camera models: HRNetSMPLCam,
Simple3DPoseBaseSMPLCam (:mod:`hybrik_jax.model.hybrik_cam`, mapping in
:mod:`hybrik_jax.interop.authors_mapping`); HRNetW48 their backbone
(``config.model.backbone = 'hrnet_w48'``).
"""

from hybrik_jax.model.head import HybrIKHead, soft_argmax_3d, uvd_to_cam
from hybrik_jax.model.hrnet import HRNetW48
from hybrik_jax.model.hybrik import (
  OUTPUT_KEYS,
  HybrIK,
  attach_body_model,
  body_model_from_constants,
  count_params,
  init_variables,
  predict,
)
from hybrik_jax.model.hybrik_cam import HRNetSMPLCam, Simple3DPoseBaseSMPLCam
from hybrik_jax.model.resnet import ResNet34, TorchBatchNorm

__all__ = [
  "HybrIK",
  "HybrIKHead",
  "HRNetSMPLCam",
  "HRNetW48",
  "ResNet34",
  "Simple3DPoseBaseSMPLCam",
  "TorchBatchNorm",
  "OUTPUT_KEYS",
  "attach_body_model",
  "body_model_from_constants",
  "count_params",
  "init_variables",
  "predict",
  "soft_argmax_3d",
  "uvd_to_cam",
]
