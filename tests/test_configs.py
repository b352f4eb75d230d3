"""Every config value is read, and a ``--config.x=y`` override changes what
the code builds.

``test_every_config_leaf_is_read`` records which fields of the synthetic
config the code reads during a tiny real run (train with validation, then
test-set evaluation and a tfds spec) and fails on any leaf of any file in
``configs/`` that nothing read: a value that silently does nothing.
"""

from __future__ import annotations

from pathlib import Path

import jax
import ml_collections
import numpy as np
import pytest
from absl import flags
from helpers import load_config

from hybrik_jax import builders, cli

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").glob("[!_]*.py"))


def _parse(*overrides: str, config: str = "synthetic.py"):
  """The config as an entry point sees it after ``--config FILE overrides``."""

  def define(fv: flags.FlagValues) -> None:
    cli.define_config_file(fv, "config", lock_config=False)

  fv, _ = cli.parse(
    define, ["--config", str(ROOT / "configs" / config), *overrides], "test", ""
  )
  return fv.config


def _walk(node, path: str, out: dict):
  """id(ConfigDict) -> dotted path; list entries collapse to ``[]``."""
  if isinstance(node, ml_collections.ConfigDict):
    out[id(node)] = path
    for k in node.keys():
      _walk(node._fields[k], f"{path}.{k}" if path else k, out)  # pylint: disable=protected-access
  elif isinstance(node, (list, tuple)):
    for item in node:
      if isinstance(item, ml_collections.ConfigDict):
        _walk(item, path + "[]", out)
  return out


def _leaves(node, path: str = "") -> set[str]:
  if isinstance(node, ml_collections.ConfigDict):
    out = set()
    for k in node.keys():
      out |= _leaves(node._fields[k], f"{path}.{k}" if path else k)  # pylint: disable=protected-access
    return out
  if (
    isinstance(node, (list, tuple))
    and node
    and all(isinstance(i, ml_collections.ConfigDict) for i in node)
  ):
    return set().union(*(_leaves(i, path + "[]") for i in node))
  return {path}


class _ReadRecorder:
  """Records ``ConfigDict`` field reads (attribute, item, ``get``) by path."""

  def __init__(self, config, monkeypatch):
    self.paths = _walk(config, "", {})
    self.read: set[str] = set()
    original = ml_collections.ConfigDict.__getitem__
    recorder = self

    def getitem(cfg, key):
      base = recorder.paths.get(id(cfg))
      if base is not None:
        recorder.read.add(f"{base}.{key}" if base else key)
      return original(cfg, key)

    monkeypatch.setattr(ml_collections.ConfigDict, "__getitem__", getitem)


@pytest.mark.slow
def test_every_config_leaf_is_read(tmp_path, monkeypatch):
  from hybrik_jax.eval import protocol
  from hybrik_jax.train import loop

  config = _parse(
    "--config.model.image_size=64",
    "--config.per_device_batch_size=2",
    "--config.data.synthetic.num_train=4",
    "--config.data.synthetic.num_test=2",
    "--config.num_epochs=1",
    "--config.max_steps=2",
    "--config.log_every_steps=1",
    "--config.eval_every_epochs=1",
    "--config.data.eval_batch_size=2",
    f"--config.data.root={tmp_path / 'data'}",
  )
  rec = _ReadRecorder(config, monkeypatch)
  summary = loop.train_and_evaluate(config, tmp_path / "run")
  assert summary["steps"] == 2 and "PA-MPJPE" in summary["val"]
  # The test split, as evaluate.py reads it.
  variables = jax.device_get(
    loop.checkpointing.load_inference_variables(tmp_path / "run")
  )
  result = protocol.evaluate_dataset(
    variables,
    builders.make_eval_data(config, config.data.test),
    model=builders.build_model(config),
    progress=False,
  )
  assert result["num_samples"] == 2
  # The pre-cropped source reads its own folder.
  config.data.source = "tfds"
  builders.dataset_spec(config, config.data.train[0], "train")
  # The authors' camera recipe: what its builders read beyond the above
  # (its run is tests/test_cam_train.py's slow test).
  cam = load_config(ROOT / "configs" / "hrnet_w48_cam.py")
  rec_cam = _ReadRecorder(cam, monkeypatch)
  builders.build_model(cam)
  builders.transform_config(cam)
  builders.train_task(cam)
  builders.make_optimizer(cam, 10)
  builders.loss_weights(cam)
  read = rec.read | rec_cam.read

  for path in CONFIGS:
    unread = sorted(_leaves(load_config(path)) - read)
    assert not unread, (
      f"{path.name}: config values that no code reads: {unread}"
    )


def test_the_recorder_sees_an_unread_leaf(monkeypatch):
  config = load_config(ROOT / "configs" / "synthetic.py")
  config.data.made_up_setting = 3
  rec = _ReadRecorder(config, monkeypatch)
  builders.transform_config(config)
  assert "augment.dpg_prob" in rec.read and "model.image_size" in rec.read
  assert "data.made_up_setting" in _leaves(config) - rec.read


def test_configs_load_and_are_the_recipe():
  mixed = load_config(ROOT / "configs" / "mixed.py")
  assert [(d.name, d.weight) for d in mixed.data.train] == [
    ("h36m", 0.4),
    ("mpi_inf_3dhp", 0.1),
    ("coco", 0.5),
  ]
  assert mixed.optimizer.lr == 1e-3 and mixed.num_epochs == 400
  assert tuple(mixed.lr_schedule.decay_epochs) == (180, 240)
  assert builders.loss_weights(mixed) == {
    "beta": 1.0,
    "theta": 0.01,
    "twist": 0.2,
    "uvd": 1.0,
  }
  assert "weight" not in mixed.data.val and "weight" not in mixed.data.test
  syn = load_config(ROOT / "configs" / "synthetic.py")
  assert syn.data.synthetic.generate and syn.model.image_size == 128


def test_hrnet_cam_config_is_the_authors_recipe():
  """configs/hrnet_w48_cam.py builds the authors' HRNet camera model, loss,
  targets, augmentation and optimiser (values of their yaml and
  train_smpl_cam.py)."""
  from hybrik_jax.model import hybrik_cam
  from hybrik_jax.train import cam_losses

  c = load_config(ROOT / "configs" / "hrnet_w48_cam.py")
  model = builders.build_model(c)
  assert isinstance(model, hybrik_cam.HRNetSMPLCam)
  assert model.backbone == "hrnet_w48" and model.depth_factor == 2.2
  assert builders.train_task(c).loss_fn is cam_losses.laplace_losses
  assert builders.loss_weights(c) == {
    "beta": 1.0,
    "theta": 0.01,
    "twist": 1.0,
    "uvd": 1.0,
  }
  t = builders.transform_config(c)
  assert (t.img_res, t.targets, t.bbox_3d_shape) == (256, "authors_cam", 2200)
  assert (t.rot_factor, t.scale_factor, t.flip_prob) == (30, 0.3, 0.25)
  assert (t.dpg_prob, t.occlusion_prob, t.noise_factor) == (0, 1, 0.2)
  assert t.occlusion_area == (0, 0.3) and t.occlusion_ratio == (0.5, 2)
  assert t.noise_clip
  np.testing.assert_allclose(t.mean, np.array([0.406, 0.457, 0.480]) * 255)
  np.testing.assert_allclose(t.std, np.array([0.225, 0.224, 0.229]) * 255)
  assert [(d.name, d.weight) for d in c.data.train] == [
    ("h36m", 0.3),
    ("coco", 0.4),
    ("mpi_inf_3dhp", 0.1),
    ("pw3d_train", 0.2),
  ]
  assert c.per_device_batch_size == 36 and c.eval_every_epochs == 0
  # Their epochs (2 x the largest set) are 2 of ours: 60/80 of 200.
  lr = builders.make_optimizer(c, steps_per_epoch=10)[1]
  assert [float(lr(s)) for s in (1199, 1200, 1599, 1600, 3999)] == (
    pytest.approx([1e-3, 1e-4, 1e-4, 1e-5, 1e-5])
  )
  assert c.num_epochs == 400
  # Each parameter's gradient is clipped to norm 5 on its own, before Adam.
  from hybrik_jax.train import optimizer

  tx, _ = builders.make_optimizer(c, steps_per_epoch=10)
  first = tx.init({"w": np.zeros(2, np.float32)})[0]
  assert type(first).__name__ == "EmptyState"  # chain(clip, adam), not adam
  grads = {"a": np.full(4, 10.0, np.float32), "b": np.array([0.3, 0.4])}
  out, _ = optimizer.clip_norm_per_param(5.0).update(grads, None)
  np.testing.assert_allclose(np.linalg.norm(out["a"]), 5.0, rtol=1e-6)
  np.testing.assert_allclose(out["b"], grads["b"], rtol=1e-6)  # norm 0.5
  # The explicit synthetic variant (--config FILE:synthetic).
  syn = _parse(config="hrnet_w48_cam.py:synthetic")
  assert syn.model.arch == "hrnet_w48_cam" and syn.model.image_size == 128
  assert syn.data.synthetic.generate and syn.body_model.path.startswith(
    builders.PACKAGE_PREFIX
  )
  with pytest.raises(cli.UsageError, match="unknown variant"):
    _parse(config="hrnet_w48_cam.py:other")


CAM_OVERRIDES = {
  "loss.type=l1": lambda c: builders.train_task(c).loss_fn,
  "model.bbox_3d_shape=2000": lambda c: _transforms(c).bbox_3d_shape,
  "model.arch=resnet34_cam": lambda c: type(_model(c)),
  "optimizer.clip_norm_per_param=0.0": lambda c: type(
    builders.make_optimizer(c, 10)[0].init({"w": np.zeros(2)})[0]
  ),
  "augment.noise_clip=False": lambda c: _transforms(c).noise_clip,
  "augment.occlusion_area=(0.,0.7)": lambda c: _transforms(c).occlusion_area,
  "augment.occlusion_ratio=(0.3,3.)": lambda c: _transforms(c).occlusion_ratio,
}


@pytest.mark.parametrize("override", sorted(CAM_OVERRIDES))
def test_cam_override_changes_what_is_built(override):
  observe = CAM_OVERRIDES[override]
  cfg = "hrnet_w48_cam.py"
  base = observe(_parse(config=cfg))
  assert base != observe(_parse("--config." + override, config=cfg)), override


def _adam_update(config) -> np.ndarray:
  tx, _ = builders.make_optimizer(config, steps_per_epoch=10)
  params = {"w": np.ones(3, np.float32)}
  grads = {"w": np.array([0.5, -1.0, 2.0], np.float32)}
  updates, _ = tx.update(grads, tx.init(params), params)
  return np.asarray(updates["w"])


def _spec_source(config) -> str:
  try:
    return builders.dataset_spec(config, config.data.train[0], "train").source
  except FileNotFoundError:  # npz: the annotation file is checked first
    return "npz (not rendered yet)"


def _transforms(c):
  return builders.transform_config(c)


def _model(c):
  return builders.build_model(c)


def _lr_at(step):
  return lambda c: float(builders.make_optimizer(c, 10)[1](step))


# A documented --config override and what it must change.
OVERRIDES = {
  "model.image_size=96": lambda c: _transforms(c).img_res,
  "model.dtype=bfloat16": lambda c: _model(c).dtype,
  "model.dropout=0.1": lambda c: _model(c).dropout_rate,
  "model.backbone=resnet50": lambda c: _model(c).backbone,
  "model.precision=highest": lambda c: _model(c).precision,
  "normalize.to_rgb=False": lambda c: _transforms(c).to_rgb,
  "normalize.mean=(0.,0.,0.)": lambda c: _transforms(c).mean,
  "normalize.std=(1.,1.,1.)": lambda c: _transforms(c).std,
  "loss_weights.uvd=2.0": builders.loss_weights,
  "loss_weights.theta=0.5": builders.loss_weights,
  "optimizer.lr=0.01": _adam_update,
  "optimizer.eps=0.5": _adam_update,
  "optimizer.weight_decay=1.0": _adam_update,
  "lr_schedule.decay_epochs=(1,)": _lr_at(15),
  "lr_schedule.decay_factor=0.5": _lr_at(95),
  "data.source=tfds": _spec_source,
  "data.root=/elsewhere": lambda c: builders.resolve_path(c, "x.npz"),
  "body_model.path=package://other.pkl": lambda c: builders.resolve_path(
    c, c.body_model.path
  ),
}
# Every augmentation field reaches the transforms under its own name.
for _field, _value in (
  ("dpg_prob", 0.0),
  ("rot_factor", 10.0),
  ("scale_factor", 0.1),
  ("rot_prob", 0.1),
  ("occlusion_prob", 0.0),
  ("flip_prob", 0.0),
  ("noise_factor", 0.0),
):
  OVERRIDES[f"augment.{_field}={_value}"] = lambda c, f=_field: getattr(
    _transforms(c), f
  )


@pytest.mark.parametrize("override", sorted(OVERRIDES))
def test_override_changes_what_is_built(override):
  observe = OVERRIDES[override]
  base, changed = observe(_parse()), observe(_parse("--config." + override))
  if isinstance(base, np.ndarray):
    assert not np.array_equal(base, changed), override
  else:
    assert base != changed, override


def test_bad_override_is_a_usage_error():
  with pytest.raises(cli.UsageError, match="no field"):
    _parse("--config.model.not_a_field=1")
  config = _parse()
  config.loss_weights.extra = 1.0
  with pytest.raises(ValueError, match="unknown terms"):
    builders.loss_weights(config)
