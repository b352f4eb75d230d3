"""Shared pytest fixtures: paths to the golden data copied from shared/fixtures."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SMPL_DIR = FIXTURES / "smpl"


def golden(name: str) -> dict[str, np.ndarray]:
  """Loads ``tests/fixtures/<name>`` (an npz) into a dict of numpy arrays."""
  with np.load(FIXTURES / name, allow_pickle=False) as d:
    return {k: d[k] for k in d.files}


def golden_train_batch(n: int, image_size: int = 256) -> dict[str, np.ndarray]:
  """A training batch of ``n`` samples cycling through golden_losses.npz's 4:
  NHWC images subsampled to ``image_size``, camera inputs and targets."""
  from hybrik_jax.train import step as train_step  # pylint: disable=g-import-not-at-top
  g = golden("golden_losses.npz")
  idx = np.arange(n) % 4
  stride = 256 // image_size
  batch = {"img": np.ascontiguousarray(np.transpose(
      g["img_nchw"], (0, 2, 3, 1))[idx, ::stride, ::stride])}
  for k in train_step.MODEL_INPUT_KEYS[1:] + train_step.TARGET_KEYS:
    batch[k] = g[k][idx]
  return batch


def gunzip_to(src: Path, dst: Path) -> Path:
  with gzip.open(src, "rb") as fi, open(dst, "wb") as fo:
    shutil.copyfileobj(fi, fo)
  return dst


@pytest.fixture(scope="session")
def smpl_dir(tmp_path_factory) -> Path:
  """A folder holding the synthetic SMPL_NEUTRAL.pkl (plain numpy pickle)."""
  d = tmp_path_factory.mktemp("smpl")
  gunzip_to(SMPL_DIR / "SMPL_NEUTRAL.pkl.gz", d / "SMPL_NEUTRAL.pkl")
  return d


@pytest.fixture(scope="session")
def smpl_pkl(smpl_dir) -> Path:
  return smpl_dir / "SMPL_NEUTRAL.pkl"


@pytest.fixture(scope="session")
def smpl_model(smpl_pkl):
  """The synthetic neutral SMPL model with the H36M-17 extra regressor."""
  from hybrik_jax import smpl  # pylint: disable=g-import-not-at-top
  return smpl.load_model(smpl_pkl,
                         extra_regressor=FIXTURES / "J_regressor_h36m.npy")


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory):
  """A small rendered synthetic dataset: 4 train + 2 test samples, 240x320."""
  from hybrik_jax.data import synthetic  # pylint: disable=g-import-not-at-top
  out = tmp_path_factory.mktemp("synthetic_small")
  synthetic.generate(out, 6, num_test=2, image_size=(240, 320),
                     progress=False)
  return out


TINY_NET_SIZE = 64  # input size of the tiny random-weight test checkpoint


def random_variables(body, net_size: int = TINY_NET_SIZE, seed: int = 0) -> dict:
  """HybrIK variables with seeded random weights (shapes via eval_shape)."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from hybrik_jax import assets  # pylint: disable=g-import-not-at-top
  from hybrik_jax.model import hybrik as hybrik_model  # pylint: disable=g-import-not-at-top
  model = hybrik_model.HybrIK()
  b = 1
  cam = hybrik_model.dummy_camera(b)
  shapes = jax.eval_shape(lambda: model.init(
      {"params": jax.random.PRNGKey(0)},
      jnp.zeros((b, net_size, net_size, 3)), *cam, train=False))
  rng = np.random.default_rng(seed)

  def fill(path, sd):
    name = path[-1].key
    names = [getattr(p, "key", "") for p in path]
    if name == "kernel":
      fan_in = np.prod(sd.shape[:-1])
      if len(sd.shape) == 2:  # dense: PyTorch's default init
        bound = np.sqrt(1.0 / fan_in) * (0.01 if "decshape" in names else 1)
      else:
        bound = np.sqrt(6.0 / fan_in)
      if "final_layer" in names:
        bound *= 40.0  # peaked heatmaps, as the recipe checkpoint does
      return rng.uniform(-bound, bound, sd.shape).astype(np.float32)
    if name in ("scale", "var"):
      return np.ones(sd.shape, np.float32)
    return np.zeros(sd.shape, np.float32)

  variables = jax.tree_util.tree_map_with_path(fill, shapes)
  variables = {k: dict(v) for k, v in variables.items()}
  variables["constants"]["init_shape"] = np.asarray(
      assets.load_h36m_mean_beta(), np.float32)
  return hybrik_model.attach_body_model(variables, body)


@pytest.fixture(scope="session")
def tiny_run_dir(tmp_path_factory):
  """A training-run directory (config.json + checkpoints/0) like train.py's."""
  import json  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  import optax  # pylint: disable=g-import-not-at-top
  from hybrik_jax.train import checkpointing
  from hybrik_jax.train import state as train_state  # pylint: disable=g-import-not-at-top
  from hybrik_jax import assets  # pylint: disable=g-import-not-at-top
  run = tmp_path_factory.mktemp("run")
  body = assets.load_synthetic_smpl()
  state = train_state.TrainState.create(random_variables(body),
                                        optax.sgd(0.0), jax.random.PRNGKey(0))
  ckpt = checkpointing.Checkpointer(run, keep=1, async_save=False)
  ckpt.save(0, state, {"epoch": 0})
  ckpt.close()
  (run / "config.json").write_text(
      json.dumps({"model": {"image_size": TINY_NET_SIZE}}))
  return run
