"""SMPL body model in jax.numpy: loading, forward, and HybrIK's IK forward.

Public API:
  load_model(path_or_dir, gender='neutral', extra_regressor=None) -> SMPLModel
  forward(model, betas, body_pose, global_orient, transl=None) -> dict
  hybrik_forward(model, pose_skeleton, betas, phis, train=False,
                 leaf_thetas=None) -> dict
"""

from hybrik_jax.smpl import tables
from hybrik_jax.smpl.hybrik_layer import hybrik_forward
from hybrik_jax.smpl.io import SMPLLoadError, load_model
from hybrik_jax.smpl.lbs import forward
from hybrik_jax.smpl.model import SMPLModel

__all__ = [
  "SMPLModel",
  "SMPLLoadError",
  "forward",
  "hybrik_forward",
  "load_model",
  "tables",
]
