"""Flax HybrIK network (ResNet-34 + HybrIK head + IK/SMPL) and weight mapping.

Public API:
  HybrIK                       the full flax.linen module
  ResNet34, HybrIKHead         its parts
  TorchBatchNorm               BatchNorm with PyTorch's running-var semantics
  init_variables(rng, smpl_model=None, init_shape=None, image_size=256,
                 dtype=jnp.float32) -> variables
  attach_body_model(variables, smpl_model) -> variables
  predict(variables, images_nhwc, trans_inv, intrinsic_param, joint_root,
          depth_factor, *, dtype, precision, return_intermediates) -> dict
  state_dict_to_variables(state_dict, smpl_model=None) -> variables
  variables_to_state_dict(variables) -> dict
  torchvision_resnet34_to_backbone(state_dict) -> {'params', 'batch_stats'}
  WeightMappingError
"""

from hybrik_jax.model.head import HybrIKHead, soft_argmax_3d, uvd_to_cam
from hybrik_jax.model.hybrik import (HybrIK, OUTPUT_KEYS, attach_body_model,
                                     body_model_from_constants, count_params,
                                     init_variables, predict)
from hybrik_jax.model.resnet import ResNet34, TorchBatchNorm
from hybrik_jax.model.weight_mapping import (
    WeightMappingError, load_pretrained_backbone, state_dict_to_variables,
    torchvision_resnet34_to_backbone, variables_to_state_dict)

__all__ = [
    "HybrIK", "HybrIKHead", "ResNet34", "TorchBatchNorm", "OUTPUT_KEYS",
    "attach_body_model", "body_model_from_constants", "count_params",
    "init_variables", "predict", "soft_argmax_3d", "uvd_to_cam",
    "WeightMappingError", "load_pretrained_backbone", "state_dict_to_variables",
    "torchvision_resnet34_to_backbone", "variables_to_state_dict",
]
