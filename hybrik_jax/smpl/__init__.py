"""SMPL body model in jax.numpy: loading, forward, and HybrIK's IK forward.

Public API:
  load_model(path_or_dir, gender='neutral', extra_regressor=None) -> SMPLModel
  forward(model, betas, body_pose, global_orient, transl=None) -> dict
  hybrik_forward(model, pose_skeleton, betas, phis, train=False,
                 leaf_thetas=None) -> dict
"""

from hybrik_jax.smpl.model import SMPLModel
from hybrik_jax.smpl import tables

_LAZY = {
    "load_model": "hybrik_jax.smpl.io",
    "SMPLLoadError": "hybrik_jax.smpl.io",
    "forward": "hybrik_jax.smpl.lbs",
    "hybrik_forward": "hybrik_jax.smpl.hybrik",
}


def __getattr__(name):
  import importlib
  if name in _LAZY:
    return getattr(importlib.import_module(_LAZY[name]), name)
  raise AttributeError(f"module 'hybrik_jax.smpl' has no attribute {name!r}")


__all__ = ["SMPLModel", "tables", *_LAZY]
