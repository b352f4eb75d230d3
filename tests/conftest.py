"""Shared pytest fixtures, built from the plain helpers in ``helpers.py``.

The helper names are imported here too, so ``from conftest import golden``
(etc.) keeps working; new code imports them from ``helpers``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from helpers import (  # noqa: F401
  FIXTURES,
  SMPL_DIR,
  TINY_NET_SIZE,
  golden,
  golden_train_batch,
  gunzip_to,
  load_synthetic_body,
  random_variables,
)


class ModuleTmp:
  """``tmp_path_factory.mktemp`` that remembers the folders it made."""

  def __init__(self, factory: pytest.TempPathFactory):
    self._factory = factory
    self.made: list[Path] = []

  def mktemp(self, name: str) -> Path:
    path = self._factory.mktemp(name)
    self.made.append(path)
    return path


@pytest.fixture(scope="module")
def module_tmp(request, tmp_path_factory) -> ModuleTmp:
  """Scratch folders for a test module's module-scoped fixtures, removed
  when the module ends if none of its tests failed (kept for inspection
  otherwise, as ``tmp_path_retention_policy = "failed"`` in pyproject.toml
  does for ``tmp_path``). The suite writes ~20 GB of checkpoints, runs and
  converted weights over a session; freed module by module, its peak stays
  at the largest module's (~5 GB, test_train_resume.py)."""
  failed_before = request.session.testsfailed
  tmp = ModuleTmp(tmp_path_factory)
  yield tmp
  if request.session.testsfailed == failed_before:
    for path in tmp.made:
      shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def refvenv() -> Path:
  """The PyTorch reference venv (built on first use, ~1 min)."""
  import subprocess

  from helpers import REPO

  venv = REPO / ".refvenv"
  if not (venv / "bin" / "python").exists():
    subprocess.run(
      ["bash", str(REPO / "scripts" / "setup_reference.sh")],
      check=True,
      cwd=REPO,
      timeout=1800,
    )
  return venv


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
def smpl_model():
  """The synthetic neutral SMPL model with the H36M-17 extra regressor."""
  return load_synthetic_body()


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory):
  """A small rendered synthetic dataset: 4 train + 2 test samples, 240x320."""
  from hybrik_jax.data import synthetic

  out = tmp_path_factory.mktemp("synthetic_small")
  synthetic.generate(out, 6, num_test=2, image_size=(240, 320), progress=False)
  return out


@pytest.fixture(scope="session")
def tiny_run_dir(tmp_path_factory, smpl_model):
  """A training-run directory (config.json + checkpoints/0) like train.py's."""
  import json

  import jax
  import optax

  from hybrik_jax.train import checkpointing
  from hybrik_jax.train import state as train_state

  run = tmp_path_factory.mktemp("run")
  state = train_state.TrainState.create(
    random_variables(smpl_model), optax.sgd(0.0), jax.random.PRNGKey(0)
  )
  ckpt = checkpointing.Checkpointer(run, keep=1, async_save=False)
  ckpt.save(0, state, {"epoch": 0})
  ckpt.close()
  (run / "config.json").write_text(
    json.dumps({"model": {"image_size": TINY_NET_SIZE}})
  )
  return run
