"""Numpy rebuild of the recipe checkpoint (tests/fixtures/CHECKPOINT_RECIPE.md).

The recipe fills the 205 ``backbone.*`` / ``head.*`` tensors (except
``num_batches_tracked`` and ``head.init_shape``) with a closed-form integer
hash; ``num_batches_tracked`` is 0 and ``head.init_shape`` is
``h36m_mean_beta.npy`` as float32. ``smpl.*`` buffers are not rebuilt here.
"""

from __future__ import annotations

import collections
import json
from pathlib import Path

import numpy as np

from hybrik_jax.smpl import io as smpl_io
from hybrik_jax.smpl import tables

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


# -----------------------------------------------------------------------------
# Whole checkpoints as mmhuman3d writes them.
# -----------------------------------------------------------------------------


def smpl_buffers(smpl_pkl: Path) -> dict[str, np.ndarray]:
  """smpl.* buffers as mmhuman3d's HybrIKSMPL registers them (float32)."""
  raw = smpl_io.load_raw_dict(smpl_pkl)
  nv = raw["v_template"].shape[0]
  f32 = lambda x: np.ascontiguousarray(x, dtype=np.float32)
  return {
    "smpl.shapedirs": f32(raw["shapedirs"][:, :, :10]),
    "smpl.vertex_joint_selector.extra_joints_idxs": np.arange(
      100, 121, dtype=np.int64
    ),
    "smpl.faces_tensor": np.asarray(raw["f"], np.int64),
    "smpl.v_template": f32(raw["v_template"]),
    "smpl.J_regressor": f32(raw["J_regressor"]),
    "smpl.posedirs": f32(np.asarray(raw["posedirs"]).reshape(nv * 3, 207).T),
    "smpl.parents": np.asarray(tables.HYBRIK_PARENTS, np.int64),
    "smpl.lbs_weights": f32(raw["weights"]),
    "smpl.joints_regressor_extra": f32(
      np.load(FIXTURES / "J_regressor_h36m.npy")
    ),
    "smpl.tpose_joints": np.zeros((1, 24, 3), np.float32),
    "smpl.children_map": np.asarray(tables.HYBRIK_CHILDREN, np.int64),
  }


def full_state_dict(smpl_pkl: Path) -> dict[str, np.ndarray]:
  """The recipe checkpoint's state_dict in checkpoint_keys.json order."""
  values = build_recipe_state_dict()
  values.update(smpl_buffers(smpl_pkl))
  keys = [e["key"] for e in load_checkpoint_keys()]
  assert set(keys) == set(values)
  for e in load_checkpoint_keys():
    assert list(values[e["key"]].shape) == e["shape"], e["key"]
    assert values[e["key"]].dtype == np.dtype(e["dtype"]), e["key"]
  return {k: values[k] for k in keys}


def mmcv_container(
  state_dict: dict[str, np.ndarray], prefix: str = "", optimizer: bool = False
) -> dict:
  """{'meta', 'state_dict'[, 'optimizer']} as mmcv's save_checkpoint writes."""
  sd = collections.OrderedDict((prefix + k, v) for k, v in state_dict.items())
  sd._metadata = collections.OrderedDict(  # pylint: disable=protected-access
    [("", {"version": 1}), ("backbone", {"version": 1})]
  )
  obj = {
    "meta": {
      "mmhuman3d_version": "0.11.0",
      "mmcv_version": "1.5.3",
      "config": "model = dict(type='HybridIK')\n" * 3,
      "env_info": "sys.platform: linux",
      "seed": 0,
      "epoch": 100,
      "iter": 123400,
      "time": "Fri Feb 11 12:00:00 2022",
      "hook_msgs": {"last_ckpt": "work_dirs/epoch_100.pth"},
    },
    "state_dict": sd,
  }
  if optimizer:
    obj["optimizer"] = {
      "state": {0: {"step": 3, "exp_avg": np.ones(4, np.float32)}},
      "param_groups": [{"lr": 1e-3, "params": [0]}],
    }
  return obj
