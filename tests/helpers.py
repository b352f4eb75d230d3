"""Plain helpers shared by the tests and the benchmarks (no pytest fixtures).

Import as ``from helpers import ...``: pytest puts ``tests/`` on ``sys.path``
(rootdir conftest), and ``bench/*.py`` and ``tests/scripts/*.py`` insert it
themselves. ``tests/conftest.py`` builds its fixtures from these.

The synthetic body model is loaded one way only, :func:`load_synthetic_body`
(the package's copy in ``hybrik_jax/assets``). The fixture files
``tests/fixtures/smpl/SMPL_NEUTRAL*.pkl.gz`` hold the same model in the three
pickle formats (plain, chumpy, Python-2 legacy; the plain one is
byte-identical to the package's copy); they are inputs of the format tests in
``test_smpl_io.py`` and of the ``smpl_dir`` / ``smpl_pkl`` fixtures, not a
second way to get the model.
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SMPL_DIR = FIXTURES / "smpl"

TINY_NET_SIZE = 64  # input size of the tiny random-weight test checkpoint


def golden(name: str) -> dict[str, np.ndarray]:
  """Loads ``tests/fixtures/<name>`` (an npz) into a dict of numpy arrays."""
  with np.load(FIXTURES / name, allow_pickle=False) as d:
    return {k: d[k] for k in d.files}


def golden_train_batch(n: int, image_size: int = 256) -> dict[str, np.ndarray]:
  """A training batch of ``n`` samples cycling through golden_losses.npz's 4:
  NHWC images subsampled to ``image_size``, camera inputs and targets."""
  from hybrik_jax.train import step as train_step

  g = golden("golden_losses.npz")
  idx = np.arange(n) % 4
  stride = 256 // image_size
  batch = {
    "img": np.ascontiguousarray(
      np.transpose(g["img_nchw"], (0, 2, 3, 1))[idx, ::stride, ::stride]
    )
  }
  for k in train_step.MODEL_INPUT_KEYS[1:] + train_step.TARGET_KEYS:
    batch[k] = g[k][idx]
  return batch


def gunzip_to(src: Path, dst: Path) -> Path:
  with gzip.open(src, "rb") as fi, open(dst, "wb") as fo:
    shutil.copyfileobj(fi, fo)
  return dst


def load_synthetic_body(h36m_regressor: bool = True):
  """The synthetic neutral SMPL model, as every test and benchmark loads it.

  Args:
    h36m_regressor: attach the synthetic H36M regressor as
      ``J_regressor_extra`` [17, 6890] (what HybrIK needs); False gives the
      bare model (``J_regressor_extra`` None).

  Returns:
    :class:`hybrik_jax.smpl.SMPLModel` (6890 vertices, metres, +y up), arrays
    float32 (float64 when jax x64 is on at load time).
  """
  from hybrik_jax import assets

  if h36m_regressor:
    return assets.load_synthetic_smpl()
  from hybrik_jax.smpl import load_model

  return load_model(assets.synthetic_smpl_path())


def random_variables(
  body, net_size: int = TINY_NET_SIZE, seed: int = 0
) -> dict:
  """HybrIK variables with seeded random weights (shapes via eval_shape)."""
  import jax
  import jax.numpy as jnp

  from hybrik_jax import assets
  from hybrik_jax.model import hybrik as hybrik_model

  model = hybrik_model.HybrIK()
  b = 1
  cam = hybrik_model.dummy_camera(b)
  shapes = jax.eval_shape(
    lambda: model.init(
      {"params": jax.random.PRNGKey(0)},
      jnp.zeros((b, net_size, net_size, 3)),
      *cam,
      train=False,
    )
  )
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
    assets.load_h36m_mean_beta(), np.float32
  )
  return hybrik_model.attach_body_model(variables, body)


REPO = Path(__file__).resolve().parents[1]


def load_demo_cli():
  """``demo.py`` as a module (its ``main(argv)`` runs the CLI in-process)."""
  import importlib.util

  spec = importlib.util.spec_from_file_location("demo_cli", REPO / "demo.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def load_config(path: Path):
  """``get_config()`` of a config file (e.g. ``REPO / "configs/mixed.py"``)."""
  import importlib.util
  import sys

  if str(REPO) not in sys.path:  # configs/synthetic.py imports configs.mixed
    sys.path.insert(0, str(REPO))
  spec = importlib.util.spec_from_file_location(f"_cfg_{path.stem}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def recipe_config():
  """``configs/mixed.py``'s config (the mmhuman3d recipe)."""
  return load_config(REPO / "configs" / "mixed.py")


def recipe_loss_weights() -> dict[str, float]:
  """The recipe's loss weights (beta 1, theta 0.01, twist 0.2, uvd 1)."""
  from hybrik_jax import builders

  return builders.loss_weights(recipe_config())


_XLA_CACHE: list = []


def xla_cache() -> Path:
  """One persistent XLA compilation cache for every ``train.py`` /
  ``evaluate.py`` subprocess of this test session (``--jax_cache_dir``):
  runs of the same program (size, batch, device count) compile it once,
  as train.py's own cache does for reruns. Removed when pytest exits."""
  if not _XLA_CACHE:
    import atexit
    import shutil
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="hybrik_jax_test_xla_"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    _XLA_CACHE.append(path)
  return _XLA_CACHE[0]


def train_cmd(workdir, data_root, cache, *overrides: str) -> list[str]:
  """``python train.py`` on the synthetic config with ``overrides``."""
  import sys

  return [
    sys.executable,
    str(REPO / "train.py"),
    "--config",
    str(REPO / "configs" / "synthetic.py"),
    "--workdir",
    str(workdir),
    f"--config.data.root={data_root}",
    f"--jax_cache_dir={cache}",
    *overrides,
  ]


def subprocess_env(devices: int | None = None) -> dict[str, str]:
  """Environment for an entry point in a subprocess: no huge-page re-exec,
  and ``devices`` fake CPU devices (None: pytest's XLA_FLAGS dropped)."""
  import os

  env = dict(os.environ, HYBRIK_JAX_HUGEPAGES="0")
  env.pop("XLA_FLAGS", None)
  if devices is not None:
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
  return env


def eval_config(data_root):
  """``configs/synthetic.py`` at 64 px for in-process evaluation of its test
  split in ``data_root`` (4 images per batch, no worker processes)."""
  config = load_config(REPO / "configs" / "synthetic.py")
  config.model.image_size = 64
  config.data.root = str(data_root)
  config.data.worker_count = 0
  config.data.eval_batch_size = 4
  return config
