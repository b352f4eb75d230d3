"""Package data: the synthetic ("capsule body") SMPL model and its regressors.

These are NOT the licensed SMPL files: the body model is synthetic (6890
vertices, 13668 faces, real SMPL kinematic tree; metres, +y up in the
template; see ``tests/fixtures/README.md``). They let the demos, the synthetic
dataset and the tests run on machines without licensed data.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

ASSETS_DIR = Path(__file__).resolve().parent


def synthetic_smpl_path() -> Path:
  """Path of the synthetic neutral SMPL model (plain numpy pickle, gzipped)."""
  return ASSETS_DIR / "SMPL_NEUTRAL.pkl.gz"


def h36m_regressor_path() -> Path:
  """Path of the synthetic H36M joint regressor ``.npy`` [17, 6890]."""
  return ASSETS_DIR / "J_regressor_h36m.npy"


def h36m_mean_beta_path() -> Path:
  """Path of ``h36m_mean_beta.npy`` [10] (the HybrIK head's ``init_shape``)."""
  return ASSETS_DIR / "h36m_mean_beta.npy"


def load_h36m_mean_beta() -> np.ndarray:
  """The [10] float64 mean shape used as the head's ``init_shape``."""
  return np.load(h36m_mean_beta_path(), allow_pickle=False)


def load_synthetic_smpl(dtype=None):
  """Loads the synthetic SMPL model with the H36M-17 extra regressor.

  Args:
    dtype: floating dtype of the arrays (default float32, float64 under x64).

  Returns:
    :class:`hybrik_jax.smpl.SMPLModel` with ``J_regressor_extra`` [17, 6890].
  """
  from hybrik_jax.smpl import load_model  # Lazy: keeps this module light.

  return load_model(
    synthetic_smpl_path(), extra_regressor=h36m_regressor_path(), dtype=dtype
  )
