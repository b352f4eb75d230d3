"""Builds loaders from a training config (``configs/*.py``).

Keeps config plumbing out of the pipeline: ``config.data`` entries become
:class:`~hybrik_jax.data.pipeline.DatasetSpec`s, ``config.augment`` and
``config.normalize`` a :class:`~hybrik_jax.data.transforms.TransformConfig`.
The synthetic config generates its dataset on first use.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from hybrik_jax.data import pipeline
from hybrik_jax.data import transforms

log = logging.getLogger(__name__)


def transform_config(config) -> transforms.TransformConfig:
  aug, norm = config.augment, config.normalize
  return transforms.TransformConfig(
      img_res=int(config.model.image_size),
      dpg_prob=aug.dpg_prob, rot_factor=aug.rot_factor,
      scale_factor=aug.scale_factor, rot_prob=aug.rot_prob,
      occlusion_prob=aug.occlusion_prob, flip_prob=aug.flip_prob,
      noise_factor=aug.noise_factor, mean=tuple(norm.mean),
      std=tuple(norm.std), to_rgb=bool(norm.to_rgb))


def dataset_spec(config, ds, split: str = "train") -> pipeline.DatasetSpec:
  """One ``config.data`` dataset entry -> DatasetSpec (npz or tfds)."""
  root = Path(config.data.root)
  if config.data.source == "tfds":
    return pipeline.DatasetSpec(
        name=ds.name, ann_file=f"hybrik_data/{ds.name}",
        image_root=config.data.tfds_data_dir, weight=ds.weight,
        source="tfds", split=split, dataset_name=ds.dataset_name)
  ann = root / ds.ann_file
  if not ann.exists():
    raise FileNotFoundError(
        f"dataset '{ds.name}': annotation file {ann} not found (config "
        f"data.root={config.data.root!r}, ann_file={ds.ann_file!r})")
  return pipeline.DatasetSpec(
      name=ds.name, ann_file=str(ann), image_root=str(root / ds.image_root),
      weight=ds.weight, source="npz", split=split,
      dataset_name=ds.dataset_name)


def ensure_data(config) -> None:
  """Generates the synthetic dataset if the config asks for it and it is
  missing (``data.generate_if_missing``)."""
  if not config.data.get("generate_if_missing", False):
    return
  root = Path(config.data.root)
  files = [root / d.ann_file for d in config.data.train] + [
      root / config.data.val.ann_file]
  if all(f.exists() for f in files):
    return
  from hybrik_jax.data import synthetic  # pylint: disable=g-import-not-at-top
  n_test = int(config.data.num_test)
  log.info("generating the synthetic dataset in %s (%d train + %d test)",
           root, config.data.num_train, n_test)
  synthetic.generate(root, num=int(config.data.num_train) + n_test,
                     num_test=n_test, seed=int(config.seed))


def make_train_loader(config, global_batch: int):
  """(loader, steps_per_epoch) over the config's training mix."""
  ensure_data(config)
  specs = [dataset_spec(config, d, "train") for d in config.data.train]
  return pipeline.make_train_loader(
      specs, seed=int(config.seed), global_batch=global_batch,
      worker_count=int(config.data.worker_count),
      transform_config=transform_config(config))


def make_eval_loader(config, ds, global_batch: int):
  """(loader, num_steps) over one evaluation dataset entry."""
  ensure_data(config)
  return pipeline.make_eval_loader(
      dataset_spec(config, ds, "test"), global_batch=global_batch,
      worker_count=int(config.data.worker_count),
      transform_config=transform_config(config))
