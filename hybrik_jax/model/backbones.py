"""Backbone registry: ``config.model.backbone`` name -> Flax module class.

A backbone maps ``[B, H, W, 3]`` normalised RGB (NHWC) to a ``[B, H/32,
W/32, C]`` feature map; the head infers ``C``. Every class takes ``dtype``
and ``precision`` attributes and ``__call__(images, train)``. Add a backbone
by writing its module and one line here (its PyTorch weight mapping, if
any, goes in ``hybrik_jax/interop/weight_mapping.py``).
"""

from __future__ import annotations

import flax.linen as nn

from hybrik_jax import errors
from hybrik_jax.model import hrnet, resnet

BACKBONES: dict[str, type[nn.Module]] = {
  "resnet34": resnet.ResNet34,
  "hrnet_w48": hrnet.HRNetW48,
  "hrnet_w48_shallow": hrnet.HRNetW48Shallow,  # smoke tests (hrnet.py)
}


def get_backbone(name: str) -> type[nn.Module]:
  """The backbone class registered as ``name``."""
  try:
    return BACKBONES[name]
  except KeyError:
    raise errors.ConfigError(
      f"config.model.backbone: unknown backbone {name!r}; registered: {sorted(BACKBONES)}"
    ) from None
