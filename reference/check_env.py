"""Smoke check of the reference venv: mmhuman3d 0.11.0's HybrIK imports
through reference/refenv.py's stubs and its head builds on CPU.

Runs in the reference venv (``scripts/setup_reference.sh``)::

  .refvenv/bin/python reference/check_env.py [SMPL_MEAN_PARAMS.npy]

Prints one JSON object: versions, which stubs are active, whether
``mmhuman3d.utils.transforms`` uses :mod:`p3d_rotations`, that a pytorch3d
placeholder refuses to be constructed, and the HybrIK head's state_dict
(``[[key, shape, dtype], ...]``, keys prefixed ``head.`` as in the
architecture's checkpoints). The mean-shape file defaults to zeros.
"""

from __future__ import annotations

import json
import sys
import tempfile
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")  # mmcv 1.x's deprecation notices
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import p3d_rotations  # noqa: E402
import refenv  # noqa: E402  (before anything imports mmhuman3d)
import torch  # noqa: E402


def _placeholder_refuses() -> bool:
  from pytorch3d.structures import Meshes

  try:
    Meshes()
  except RuntimeError:
    return True
  return False


def main(argv: list[str]) -> dict:
  import mmcv
  import mmhuman3d
  import mmhuman3d.models.architectures.hybrik as hybrik
  import mmhuman3d.utils.transforms as mm_transforms
  import torchvision
  from mmhuman3d.models.heads.builder import build_head

  with tempfile.TemporaryDirectory() as tmp:
    if argv:
      mean_params = argv[0]
    else:
      mean_params = str(Path(tmp) / "mean_beta.npy")
      np.save(mean_params, np.zeros(10, np.float32))
    head = build_head(dict(type="HybrIKHead", smpl_mean_params=mean_params))
  head.eval()
  state = [
    [f"head.{k}", list(v.shape), str(v.dtype).removeprefix("torch.")]
    for k, v in head.state_dict().items()
  ]
  return {
    "torch": torch.__version__,
    "mmcv": mmcv.__version__,
    "mmcv_spoofed_for_mmhuman3d": refenv.MMCV_SPOOFED_VERSION,
    "mmhuman3d": mmhuman3d.__version__,
    "torchvision_stubbed": refenv.TORCHVISION_STUBBED,
    "torchvision": torchvision.__version__,
    "pytorch3d_stubbed": refenv.PYTORCH3D_STUBBED,
    "placeholder_refuses": _placeholder_refuses(),
    "rotations_from_shim": all(
      getattr(mm_transforms, name) is getattr(p3d_rotations, name)
      for name in p3d_rotations.__all__
    ),
    "architecture": hybrik.HybrIK_trainer.__name__,
    "head_class": type(head).__name__,
    "head_device": str(next(head.parameters()).device),
    "head_init_shape": head.init_shape.tolist(),
    "head_state_dict": state,
  }


if __name__ == "__main__":
  print(json.dumps(main(sys.argv[1:])))
