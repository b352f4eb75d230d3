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
