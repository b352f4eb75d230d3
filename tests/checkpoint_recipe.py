"""Numpy rebuild of the recipe checkpoint (tests/fixtures/CHECKPOINT_RECIPE.md).

The recipe fills the 205 ``backbone.*`` / ``head.*`` tensors (except
``num_batches_tracked`` and ``head.init_shape``) with a closed-form integer
hash; ``num_batches_tracked`` is 0 and ``head.init_shape`` is
``h36m_mean_beta.npy`` as float32. ``smpl.*`` buffers are not rebuilt here.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

FIXTURES = Path(__file__).resolve().parent / "fixtures"

_M32 = np.uint64(0xFFFFFFFF)


def load_checkpoint_keys() -> list[dict]:
  """checkpoint_keys.json: [{'key', 'shape', 'dtype', 'recipe'}, ...]."""
  with open(FIXTURES / "checkpoint_keys.json") as f:
    return json.load(f)


def recipe_keys(entries: list[dict]) -> list[str]:
  """The sorted list L of recipe-filled keys (205)."""
  return sorted(
    e["key"]
    for e in entries
    if e["key"].startswith(("backbone.", "head."))
    and not e["key"].endswith("num_batches_tracked")
    and e["key"] != "head.init_shape"
  )


def recipe_uniform(n: int, k: int) -> np.ndarray:
  """u in [0, 1) (float64) for elements 0..n-1 of key number k."""
  i = np.arange(n, dtype=np.uint64)
  h = (i * np.uint64(2654435761) + np.uint64((k + 1) * 97531)) & _M32
  h ^= h >> np.uint64(15)
  h = (h * np.uint64(2246822519)) & _M32
  h ^= h >> np.uint64(13)
  h = (h * np.uint64(3266489917)) & _M32
  h ^= h >> np.uint64(16)
  return h.astype(np.float64) / 2.0**32


def recipe_tensor(
  key: str, shape: tuple[int, ...], k: int, all_keys: set[str]
) -> np.ndarray:
  """Value of recipe key number ``k`` (float32, torch layout)."""
  n = int(np.prod(shape)) if shape else 1
  u = recipe_uniform(n, k)
  prefix, leaf = key.rsplit(".", 1)
  if leaf == "running_var":
    v = 0.5 + u
  elif leaf == "running_mean":
    v = 0.2 * (u - 0.5)
  elif leaf == "weight" and prefix + ".running_mean" in all_keys:
    v = 0.5 + 0.1 * (u - 0.5)
  elif leaf == "bias":
    v = 0.2 * (u - 0.5)
  elif len(shape) >= 2:
    b = np.sqrt(6.0 / np.prod(shape[1:]))
    if key == "head.final_layer.weight":
      b = b * 40
    v = b * (2.0 * u - 1.0)
  else:
    raise ValueError(f"no recipe rule for {key!r} {shape}")
  return v.astype(np.float32).reshape(shape)


def build_recipe_state_dict() -> dict[str, np.ndarray]:
  """All ``backbone.*`` / ``head.*`` entries of the recipe checkpoint.

  Returns:
    key -> numpy array with checkpoint_keys.json's shape and dtype (the 205
    recipe tensors, ``num_batches_tracked`` int64 0, ``head.init_shape``).
  """
  entries = load_checkpoint_keys()
  all_keys = {e["key"] for e in entries}
  index = {key: k for k, key in enumerate(recipe_keys(entries))}
  out = {}
  for e in entries:
    key, shape = e["key"], tuple(e["shape"])
    if key.startswith("smpl."):
      continue
    if key in index:
      out[key] = recipe_tensor(key, shape, index[key], all_keys)
    elif key.endswith("num_batches_tracked"):
      out[key] = np.zeros(shape, np.int64)
    elif key == "head.init_shape":
      out[key] = np.load(
        FIXTURES / "h36m_mean_beta.npy", allow_pickle=False
      ).astype(np.float32)
    else:
      raise ValueError(f"checkpoint_keys.json: unhandled key {key!r}")
  return out
