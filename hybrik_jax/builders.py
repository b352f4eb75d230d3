"""Config -> objects: the one place a training/eval config is turned into a
model, body model, variables, loaders and an optimiser.

Everything ``train.py`` and ``evaluate.py`` build from ``configs/*.py``
comes from here, so each config value has exactly one reader (checked by
``tests/test_configs.py``). The rest of the package takes plain arguments.

Paths in a config are absolute, relative to ``config.data.root``, or
``package://NAME`` for a file shipped in ``hybrik_jax/assets`` (the synthetic
body model).
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import jax
import jax.numpy as jnp
import optax
from etils.epath import Path

from hybrik_jax import errors
from hybrik_jax.data import pipeline, transforms
from hybrik_jax.interop import authors_mapping, convert
from hybrik_jax.model import hybrik as hybrik_model

log = logging.getLogger(__name__)

PACKAGE_PREFIX = "package://"

_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
PRECISIONS = ("default", "high", "highest")
# config.model.arch: mmhuman3d's HybrIK (the default when the config has no
# ``arch``) or one of the authors' camera models; the names the converter
# records in report.json (interop.convert.ARCHITECTURES).
MMHUMAN3D_ARCH = convert.MMHUMAN3D_RESNET34
CAM_ARCHS = authors_mapping.ARCHITECTURES


def precision(name: str) -> str | None:
  """A ``lax.Precision`` name for the network's matmuls and convolutions, or
  None for the backend's default (``'default'``)."""
  if name not in PRECISIONS:
    raise errors.ConfigError(
      f"config.model.precision={name!r}; choose from {PRECISIONS}"
    )
  return None if name == "default" else name


def resolve_path(config, rel: str) -> Path:
  """Absolute path of a config path (see the module docstring)."""
  if rel.startswith(PACKAGE_PREFIX):
    from hybrik_jax import assets

    return assets.ASSETS_DIR / rel[len(PACKAGE_PREFIX) :]
  return _under(config.data.root, rel)


def _under(root: str, rel: str) -> Path:
  """``rel`` if it is absolute or remote (``gs://…``), else ``root/rel``."""
  p = Path(rel)
  return p if p.is_absolute() else Path(root) / p


# -----------------------------------------------------------------------------
# Model, body model, variables.
# -----------------------------------------------------------------------------


def model_arch(config) -> str:
  """``config.model.arch`` (absent: mmhuman3d's model), checked."""
  arch = config.model.get("arch", MMHUMAN3D_ARCH)
  if arch not in (MMHUMAN3D_ARCH, *CAM_ARCHS):
    raise errors.ConfigError(
      f"config.model.arch={arch!r}; choose from {[MMHUMAN3D_ARCH, *CAM_ARCHS]}"
    )
  return arch


def is_cam_model(config) -> bool:
  """Whether the config trains one of the authors' camera models."""
  return model_arch(config) in CAM_ARCHS


def build_model(config):
  """The network per ``config.model``: ``HybrIK`` (backbone, dtype,
  precision, dropout) or, for ``arch`` 'hrnet_w48_cam' / 'resnet34_cam',
  the authors' camera model (backbone, dtype, precision, dropout for the
  ResNet one, depth factor = ``bbox_3d_shape`` / 1000 m)."""
  name = config.model.dtype
  if name not in _DTYPES:
    raise errors.ConfigError(
      f"config.model.dtype={name!r}; choose from {sorted(_DTYPES)}"
    )
  arch = model_arch(config)
  if arch in CAM_ARCHS:
    from hybrik_jax.model import hybrik_cam

    kwargs = {}
    if arch == "resnet34_cam":
      kwargs["dropout_rate"] = config.model.get(
        "dropout", hybrik_cam.Simple3DPoseBaseSMPLCam.dropout_rate
      )
    return hybrik_cam.make_model(
      arch,
      dtype=_DTYPES[name],
      precision=precision(config.model.precision),
      backbone=config.model.backbone,
      depth_factor=float(config.model.bbox_3d_shape) * 1e-3,
      **kwargs,
    )
  return hybrik_model.HybrIK(
    dtype=_DTYPES[name],
    precision=precision(config.model.precision),
    dropout_rate=config.model.dropout,
    backbone=config.model.backbone,
  )


def load_body_model(config):
  """The SMPL model of ``config.body_model`` with its H36M-17 regressor."""
  from hybrik_jax import smpl

  bm = config.body_model
  return smpl.load_model(
    resolve_path(config, bm.path),
    gender=bm.gender,
    extra_regressor=resolve_path(config, bm.extra_regressor),
  )


def initial_variables(config, model, rng: jax.Array) -> dict:
  """Random init + ImageNet backbone (``model.backbone_init``, if set) +
  mean shape and body model in ``constants``."""
  if is_cam_model(config):
    if config.model.backbone_init:
      raise errors.ConfigError(
        f"config.model.backbone_init={config.model.backbone_init!r}: "
        "initialising the authors' camera models from a pretrained backbone "
        "(their pose_hrnet_w48_256x192.pth) is not implemented; use '' "
        "(random init) or convert a full checkpoint with "
        "convert_torch_weights.py"
      )
    from hybrik_jax.model import hybrik_cam

    return hybrik_cam.init_variables(
      rng,
      model_arch(config),
      smpl_model=load_body_model(config),
      init_shape=resolve_path(config, config.body_model.mean_beta),
      image_size=transform_config(config).img_res,
      model=model,
    )
  variables = hybrik_model.init_variables(
    rng,
    smpl_model=load_body_model(config),
    init_shape=resolve_path(config, config.body_model.mean_beta),
    image_size=transform_config(config).img_res,
    model=model,
  )
  if config.model.backbone_init:
    path = resolve_path(config, config.model.backbone_init)
    if not path.exists():
      raise errors.MissingInputError(
        f"backbone init file {path} (config.model.backbone_init) not found: "
        "put torchvision's resnet34-b627a593.pth there, or train from "
        "scratch with --config.model.backbone_init=''"
      )
    from hybrik_jax.interop import torch_format, weight_mapping

    variables = weight_mapping.load_pretrained_backbone(
      variables, torch_format.load_torch_checkpoint(path)
    )
    variables = jax.tree.map(jnp.asarray, variables)
    log.info("initialised the backbone from %s", path)
  return variables


# -----------------------------------------------------------------------------
# Data.
# -----------------------------------------------------------------------------


def transform_config(config) -> transforms.TransformConfig:
  """mmhuman3d's transform parameters from ``config.augment``,
  ``config.normalize`` and the input size ``config.model.image_size``."""
  # config.augment's fields are TransformConfig's augmentation fields, by name.
  fields = {f.name for f in dataclasses.fields(transforms.TransformConfig)}
  augment = {k: _augment_value(v) for k, v in config.augment.items()}
  unknown = sorted(set(augment) - fields)
  if unknown:
    raise errors.ConfigError(f"config.augment has unknown fields {unknown}")
  norm = config.normalize
  targets = {}
  if is_cam_model(config):  # the authors' camera-model targets
    targets = {
      "targets": "authors_cam",
      "bbox_3d_shape": float(config.model.bbox_3d_shape),
    }
  return transforms.TransformConfig(
    img_res=int(config.model.image_size),
    mean=tuple(norm.mean),
    std=tuple(norm.std),
    to_rgb=bool(norm.to_rgb),
    **augment,
    **targets,
  )


def _augment_value(v):
  """A config.augment value as TransformConfig takes it: a bool stays, a
  sequence becomes a tuple of floats, anything else a float."""
  if isinstance(v, bool):
    return v
  if isinstance(v, (tuple, list)):
    return tuple(float(x) for x in v)
  return float(v)


def dataset_spec(
  config, ds, split: str, weight: float = 1.0
) -> pipeline.DatasetSpec:
  """One ``config.data`` dataset entry -> DatasetSpec (npz or tfds), with the
  bad-sample policy ``config.data.bad_samples`` ('fail' when unset)."""
  from hybrik_jax.data import sample_checks

  data = config.data
  bad_samples = sample_checks.check_policy(data.get("bad_samples", "fail"))
  if data.source == "tfds":
    return pipeline.DatasetSpec(
      name=ds.name,
      ann_file=f"hybrik_data/{ds.name}",
      image_root=data.tfds_data_dir,
      weight=weight,
      source="tfds",
      split=split,
      dataset_name=ds.dataset_name,
      bad_samples=bad_samples,
    )
  if data.source != "npz":
    raise errors.ConfigError(
      f"config.data.source={data.source!r}; choose 'npz' or 'tfds'"
    )
  ann = _under(data.root, ds.ann_file)
  if not ann.exists():
    raise errors.MissingInputError(
      f"dataset '{ds.name}': annotation file {ann} not found (config "
      f"data.root={data.root!r}, ann_file={ds.ann_file!r})"
    )
  return pipeline.DatasetSpec(
    name=ds.name,
    ann_file=str(ann),
    image_root=str(_under(data.root, ds.image_root)),
    weight=weight,
    source="npz",
    split=split,
    dataset_name=ds.dataset_name,
    bad_samples=bad_samples,
  )


def ensure_data(config) -> None:
  """Renders the synthetic dataset into ``data.root`` if the config has a
  ``data.synthetic`` section with ``generate=True`` and a split is missing.

  Several processes (multi-host): process 0 renders, the others wait for it
  (``data.root`` must then be shared by the hosts).
  """
  syn = config.data.get("synthetic")
  if syn is None or not syn.generate:
    return
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils

    if jax.process_index() == 0:
      _generate_if_missing(config, syn)
    multihost_utils.sync_global_devices("hybrik_jax.builders.ensure_data")
  else:
    _generate_if_missing(config, syn)


def _generate_if_missing(config, syn) -> None:
  root = Path(config.data.root)
  files = [root / d.ann_file for d in config.data.train]
  files += [root / config.data.val.ann_file, root / config.data.test.ann_file]
  if all(f.exists() for f in files):
    return
  from hybrik_jax.data import synthetic

  n_test = int(syn.num_test)
  log.info(
    "generating the synthetic dataset in %s (%d train + %d test)",
    root,
    syn.num_train,
    n_test,
  )
  synthetic.generate(
    root, num=int(syn.num_train) + n_test, num_test=n_test, seed=int(syn.seed)
  )


def make_train_loader(config, global_batch: int, seed: int):
  """(loader, steps_per_epoch) over the config's weighted training mix."""
  ensure_data(config)
  specs = [
    dataset_spec(config, d, "train", weight=d.weight) for d in config.data.train
  ]
  return pipeline.make_train_loader(
    specs,
    seed=seed,
    global_batch=global_batch,
    worker_count=int(config.data.worker_count),
    transform_config=transform_config(config),
  )


@dataclasses.dataclass
class EvalData:
  """One evaluation dataset, ready to iterate once.

  Attributes:
    name: the config entry's name (file stems, progress bars).
    dataset_name: protocol ('pw3d', 'h36m', 'mpi_inf_3dhp', ...).
    source: random access to ``(annotation, image)`` by sample index.
    loader: sequential batches covering every sample once (padded).
    num_steps: batches in ``loader``.
  """

  name: str
  dataset_name: str
  source: Any
  loader: Any
  num_steps: int


def make_eval_source(config, ds) -> tuple[Any, str]:
  """(random-access test source, protocol name) of one ``config.data``
  entry (``val``/``test`` or one built by ``evaluate.py --data``)."""
  if not Path(ds.ann_file).is_absolute():  # the config's own data
    ensure_data(config)
  source = dataset_spec(config, ds, "test").make_source(test_mode=True)
  # An npz file's own 'config' entry decides (and must agree with a name
  # given); pre-cropped records carry none.
  return source, getattr(source, "dataset_type", None) or ds.dataset_name


def make_eval_data(config, ds) -> EvalData:
  """The evaluation loader over one ``config.data`` entry (``val``/``test``
  or one built by ``evaluate.py --data``)."""
  source, dataset_name = make_eval_source(config, ds)
  loader, num_steps = pipeline.make_eval_loader(
    source,
    global_batch=int(config.data.eval_batch_size),
    worker_count=int(config.data.worker_count),
    transform_config=transform_config(config),
  )
  return EvalData(
    name=ds.name,
    dataset_name=dataset_name,
    source=source,
    loader=loader,
    num_steps=num_steps,
  )


# -----------------------------------------------------------------------------
# Optimisation.
# -----------------------------------------------------------------------------


def make_optimizer(
  config, steps_per_epoch: int
) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """(Adam, its learning-rate schedule) per ``config.optimizer`` and
  ``config.lr_schedule`` (decay epochs converted to steps)."""
  from hybrik_jax.train import optimizer

  opt, sched = config.optimizer, config.lr_schedule
  schedule = optimizer.step_decay_schedule(
    opt.lr, steps_per_epoch, sched.decay_epochs, sched.decay_factor
  )
  tx = optimizer.adam(
    schedule,
    b1=opt.b1,
    b2=opt.b2,
    eps=opt.eps,
    weight_decay=opt.weight_decay,
    # The authors' camera recipe clips each parameter's gradient (5).
    clip_per_param=float(opt.get("clip_norm_per_param", 0.0)),
  )
  return tx, schedule


def train_task(config):
  """What the train step feeds the model and how it is scored
  (:class:`hybrik_jax.train.step.Task`): mmhuman3d's four losses, or for
  the authors' camera models the images alone and ``config.loss.type``
  ('laplace': their ``LaplaceLossDimSMPLCam``, 'l1': ``L1LossDimSMPLCam``).
  """
  from hybrik_jax.train import step

  if not is_cam_model(config):
    return step.MMHUMAN3D_TASK
  from hybrik_jax.train import cam_losses

  loss_type = config.loss.type
  if loss_type not in cam_losses.LOSSES:
    raise errors.ConfigError(
      f"config.loss.type={loss_type!r}; choose from {sorted(cam_losses.LOSSES)}"
    )
  return step.Task(
    input_keys=("img",),
    target_keys=cam_losses.TARGET_KEYS,
    loss_fn=cam_losses.get_loss(loss_type),
  )


def loss_weights(config) -> dict[str, float]:
  """``config.loss_weights`` as a plain dict (``losses.LOSS_TERMS`` keys)."""
  from hybrik_jax.train import losses

  w = config.loss_weights
  unknown = sorted(set(w.keys()) - set(losses.LOSS_TERMS))
  if unknown:
    raise errors.ConfigError(
      f"config.loss_weights has unknown terms {unknown}; the "
      f"losses are {losses.LOSS_TERMS}"
    )
  return {k: float(w[k]) for k in losses.LOSS_TERMS}
