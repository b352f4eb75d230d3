"""HybrIK data layer: HumanData files, per-sample annotations, transforms.

- :mod:`hybrik_jax.data.human_data`: safe reader/writer of mmhuman3d HumanData
  ``.npz`` files (:func:`load_human_data`, :func:`save_human_data`).
- :mod:`hybrik_jax.data.annotations`: :class:`HybrIKAnnotations`, the
  per-sample dicts of ``HybrIKHumanImageDataset.load_annotations``.
- :mod:`hybrik_jax.data.transforms`: the train/test pipelines
  (:func:`train_sample`, :func:`test_sample`, :func:`sample_draws`).
- :mod:`hybrik_jax.data.conventions`: HumanData-190 index tables.
"""

from hybrik_jax.data.annotations import HybrIKAnnotations, box2cs, xyxy2xywh
from hybrik_jax.data.human_data import (
  HumanData,
  HumanDataError,
  load_human_data,
  save_human_data,
)
from hybrik_jax.data.transforms import (
  DEFAULT_CONFIG,
  Draws,
  TransformConfig,
  identity_draws,
  sample_draws,
  test_sample,
  train_sample,
)

__all__ = [
  "DEFAULT_CONFIG",
  "Draws",
  "HumanData",
  "HumanDataError",
  "HybrIKAnnotations",
  "TransformConfig",
  "box2cs",
  "identity_draws",
  "load_human_data",
  "sample_draws",
  "save_human_data",
  "test_sample",
  "train_sample",
  "xyxy2xywh",
]
