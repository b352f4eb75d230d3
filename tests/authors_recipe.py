"""Recipe checkpoints of the authors' HybrIK camera models (numpy only).

Used by ``reference/make_authors_goldens.py`` (in the PyTorch reference venv,
to build the authors' own models) and by ``tests/test_authors_models.py``
(to rebuild the same state_dict without torch). Needs numpy alone: no
hybrik_jax, no torch.

A recipe state_dict has the keys, shapes and dtypes of the authors' model
(``tests/fixtures/authors/<arch>_keys.json``, written from the model's own
``state_dict()``), without ``smpl.*`` (the body model is the synthetic one).
Every tensor is a closed-form function of its key and shape, except the
BatchNorm running statistics, which were measured on calibration images by
the golden script (``<arch>_bn_stats.npz``; random statistics would make
every image give the same outputs):

* ``u`` = a 32-bit integer hash of (element index, crc32(key)), top 24 bits
  as a float32 in [0, 1) (:func:`recipe_uniform`).
* BatchNorm ``weight`` = 1 + 0.2 (u - 0.5), ``bias`` = 0.1 (u - 0.5);
  ``running_mean`` / ``running_var`` from the stats file;
  ``num_batches_tracked`` = 0.
* convolution / linear weights [O, I, ...] = bound (2u - 1) with
  bound = sqrt(3 / fan_in) (variance 1 / fan_in; fan_in = prod(shape[1:])),
  times :data:`GAIN` for the listed keys (the heatmap layer is made peaky:
  a flat softmax over 262,144 voxels would put every joint at the centre).
  Other biases = 0.1 (u - 0.5), with the :data:`BIAS` exceptions.
* ``init_shape`` = ``h36m_mean_beta.npy`` (float32), ``init_cam`` = the
  model's own (0.9 | 0.9, 0, 0).
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np

FIXTURES = Path(__file__).resolve().parent / "fixtures"
AUTHORS = FIXTURES / "authors"

ARCHS = ("hrnet_w48_cam", "resnet34_cam")
INIT_CAM = {"hrnet_w48_cam": (0.9,), "resnet34_cam": (0.9, 0.0, 0.0)}

# Weight multipliers (see the module docstring).
GAIN = {
  "preact.final_layer.weight": 0.4,
  "final_layer.weight": 4.0,
  "deccam.weight": 0.5,
  "decsigma.weight": 2.0,
}
# Biases as lo + (hi - lo) u instead of 0.1 (u - 0.5): decsigma gives sigmas
# on both sides of 0.1 (update_scale's weight clamp_min(1 - 10 sigma, 0)).
BIAS = {"decsigma.bias": (-4.0, -1.5), "deccam.bias": (-0.05, 0.05)}


# The authors' test_transform normalisation: 0-1 RGB, (x - mean) / std per
# channel with their constants (the mean is ImageNet's in BGR order).
PIXEL_MEAN = np.array([0.406, 0.457, 0.480], np.float32)
PIXEL_STD = np.array([0.225, 0.224, 0.229], np.float32)


def normalise(img_u8: np.ndarray) -> np.ndarray:
  """uint8 RGB [N, H, W, 3] -> the network input [N, 3, H, W] float32."""
  x = img_u8.astype(np.float32) / np.float32(255.0)
  return ((x - PIXEL_MEAN) / PIXEL_STD).transpose(0, 3, 1, 2).copy()


def keys_file(arch: str) -> Path:
  return AUTHORS / f"{arch}_keys.json"


def stats_file(arch: str) -> Path:
  return AUTHORS / f"{arch}_bn_stats.npz"


def load_keys(arch: str) -> list[dict]:
  """[{'key', 'shape', 'dtype'}, ...] of the authors' state_dict (incl. smpl.*)."""
  with open(keys_file(arch)) as f:
    return json.load(f)


def recipe_uniform(n: int, key: str) -> np.ndarray:
  """float32 u in [0, 1) for elements 0..n-1 of ``key`` (exact, portable)."""
  seed = np.uint32(zlib.crc32(key.encode("utf-8")))
  i = np.arange(n, dtype=np.uint32)
  with np.errstate(over="ignore"):
    h = i * np.uint32(2654435761) + seed
    h ^= h >> np.uint32(15)
    h *= np.uint32(2246822519)
    h ^= h >> np.uint32(13)
    h *= np.uint32(3266489917)
    h ^= h >> np.uint32(16)
  return (h >> np.uint32(8)).astype(np.float32) * np.float32(2.0**-24)


def is_bn(key: str, all_keys: set[str]) -> bool:
  """``key`` belongs to a BatchNorm (its prefix has a running_mean)."""
  return key.rsplit(".", 1)[0] + ".running_mean" in all_keys


def recipe_tensor(key: str, shape: tuple[int, ...], all_keys: set[str]):
  """The recipe value of a non-statistics, non-buffer key (float32)."""
  n = int(np.prod(shape)) if shape else 1
  u = recipe_uniform(n, key)
  leaf = key.rsplit(".", 1)[-1]
  if is_bn(key, all_keys) and leaf == "weight":
    v = np.float32(1.0) + np.float32(0.2) * (u - np.float32(0.5))
  elif leaf == "bias" and key in BIAS:
    lo, hi = BIAS[key]
    v = np.float32(lo) + np.float32(hi - lo) * u
  elif leaf == "bias":
    v = np.float32(0.1) * (u - np.float32(0.5))
  elif len(shape) >= 2:
    bound = np.float32(np.sqrt(3.0 / np.prod(shape[1:])) * GAIN.get(key, 1.0))
    v = bound * (np.float32(2.0) * u - np.float32(1.0))
  else:
    raise ValueError(f"no recipe rule for {key!r} {shape}")
  return v.astype(np.float32).reshape(shape)


def build_state_dict(
  arch: str,
  bn_stats: dict[str, np.ndarray] | None = None,
  keys: list[dict] | None = None,
) -> dict[str, np.ndarray]:
  """The recipe state_dict of ``arch`` (without ``smpl.*``), torch layout.

  Args:
    arch: 'hrnet_w48_cam' or 'resnet34_cam'.
    bn_stats: key -> running_mean / running_var (default: the stats file);
      the golden script passes {} before calibrating (then mean 0, var 1).
    keys: the key list (default: the keys file).
  """
  keys = load_keys(arch) if keys is None else keys
  if bn_stats is None:
    with np.load(stats_file(arch), allow_pickle=False) as z:
      bn_stats = {k: z[k] for k in z.files}
  all_keys = {e["key"] for e in keys}
  out = {}
  for e in keys:
    key, shape = e["key"], tuple(e["shape"])
    leaf = key.rsplit(".", 1)[-1]
    if key.startswith("smpl."):
      continue
    if leaf == "num_batches_tracked":
      out[key] = np.zeros(shape, np.int64)
    elif leaf in ("running_mean", "running_var"):
      if key in bn_stats:
        out[key] = np.asarray(bn_stats[key], np.float32).reshape(shape)
      else:
        fill = 0.0 if leaf == "running_mean" else 1.0
        out[key] = np.full(shape, fill, np.float32)
    elif key == "init_shape":
      out[key] = np.load(
        FIXTURES / "h36m_mean_beta.npy", allow_pickle=False
      ).astype(np.float32)
    elif key == "init_cam":
      out[key] = np.asarray(INIT_CAM[arch], np.float32)
    else:
      out[key] = recipe_tensor(key, shape, all_keys)
    if list(out[key].shape) != list(shape) or str(out[key].dtype) != e["dtype"]:
      raise ValueError(
        f"{key}: built {out[key].shape} {out[key].dtype}, want {e}"
      )
  return out
