"""Heads and camera maths of the authors' HybrIK camera models.

Jeff-sjtu/HybrIK ``HRNetSMPLCam`` (``hybrik/models/HRNetWithCam.py``) and
``Simple3DPoseBaseSMPLCam`` (``simple3dposeSMPLWithCam.py``), read and
re-written for this project. Conventions (the authors'):

* Heatmaps: logits [B, H, W, J*D] NHWC (channel = joint * D + depth, the
  torch ``reshape(B, J, D, H, W)``), a softmax over all D*H*W voxels of each
  joint, marginal expectations: ``uvd = (E[x]/W, E[y]/H, E[z]/D) - 0.5``,
  in [-0.5, 0.5) (x indexes W, bins 0..W-1, no half-bin). ``maxvals`` is the
  largest probability of each joint's volume.
* Camera: the network regresses a scale ``s`` (``pred_camera[:, 0]``, added to
  ``init_cam`` 0.9); the root depth is ``camDepth = f / (256 s + 1e-9)``
  metres with ``f = FOCAL_LENGTH = 1000`` px for the 256-px crop. A joint
  with normalised (u, v, d) sits at ``z = d * depth_factor + camDepth``
  metres (``depth_factor`` = ``BBOX_3D_SHAPE[2] / 1000`` = 2.2 for the model
  zoo) and ``(x, y) = ((u, v) + offset) * 256 / f * z``. ``offset`` is the
  box centre relative to ``img_center`` divided per axis by the box width
  (x) and height (y) when boxes are given; without boxes HRNet uses no
  offset and the ResNet model subtracts its regressed ``cam_trans`` (metres)
  from (x, y) instead.
* ``cam_root`` = the root joint (metres, camera frame, z including
  camDepth); joints are made root-relative in units of ``depth_factor``
  before the IK, whose skeleton is that times ``depth_factor`` (metres).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from hybrik_jax.data import conventions
from hybrik_jax.model.head import (
  FC_DIM,
  ConvTranspose4x4S2,
  PointwiseConv,
  torch_linear_init,
)
from hybrik_jax.model.resnet import TorchBatchNorm

Dtype = Any
Precision = Any

NUM_JOINTS = 29
DEPTH_DIM = 64
NUM_TWIST = 23
NUM_BETAS = 10
FOCAL_LENGTH = 1000.0  # px, for the 256-px crop (config MODEL.FOCAL_LENGTH)
INPUT_SIZE = 256.0  # px (hard-coded self.input_size)
DEPTH_FACTOR = 2.2  # metres: MODEL.BBOX_3D_SHAPE[2] * 1e-3 of both configs
# Weight of a joint in update_scale: clamp_min(1 - SIGMA_WEIGHT * sigma, 0).
SIGMA_WEIGHT = 10.0
NUM_SCALE_JOINTS = 24  # update_scale uses the 24 SMPL joints

# Left/right pairs (index pairs swapped by a horizontal flip): mmhuman3d's
# get_flip_pairs('smpl') / ('hybrik_29'), the same tables as the authors'.
JOINT_PAIRS_24 = conventions.SMPL_FLIP_PAIRS
JOINT_PAIRS_29 = conventions.HYBRIK29_FLIP_PAIRS


def flip_permutation(num: int, pairs, offset: int = 0) -> np.ndarray:
  """Index array p with p[a] = b, p[b] = a for (a - offset, b - offset) in
  ``pairs`` and p[k] = k otherwise (``x[:, p]`` swaps the pairs)."""
  perm = np.arange(num)
  for a, b in pairs:
    perm[a - offset], perm[b - offset] = b - offset, a - offset
  return perm


def heatmap_probs(
  logits: jax.Array, num_joints: int = NUM_JOINTS, depth_dim: int = DEPTH_DIM
) -> jax.Array:
  """Per-joint softmax over the D*H*W voxels (``norm_heatmap('softmax')``).

  Args:
    logits: [B, H, W, J*D] (channel = joint * D + depth).

  Returns:
    [B, H, W, J, D] float32 probabilities, summing to 1 per (B, J).
  """
  b, h, w, c = logits.shape
  if c != num_joints * depth_dim:
    raise ValueError(
      f"heatmap logits: {c} channels, expected {num_joints * depth_dim}"
    )
  x = logits.astype(jnp.float32).reshape(b, h, w, num_joints, depth_dim)
  x = x - jax.lax.stop_gradient(jnp.max(x, axis=(1, 2, 4), keepdims=True))
  e = jnp.exp(x)
  return e / jnp.sum(e, axis=(1, 2, 4), keepdims=True)


def integral_uvd(probs: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Soft-argmax of normalised volumes [B, H, W, J, D].

  Returns:
    uvd [B, J, 3] in [-0.5, 0.5) (the authors' normalisation) and maxvals
    [B, J, 1] (largest probability per joint).
  """
  _, h, w, _, d = probs.shape
  hi = jax.lax.Precision.HIGHEST
  m_x = jnp.sum(probs, axis=(1, 4))  # [B, W, J]
  m_y = jnp.sum(probs, axis=(2, 4))  # [B, H, J]
  m_z = jnp.sum(probs, axis=(1, 2))  # [B, J, D]
  ex = jnp.einsum(
    "bwj,w->bj", m_x, jnp.arange(w, dtype=jnp.float32), precision=hi
  )
  ey = jnp.einsum(
    "bhj,h->bj", m_y, jnp.arange(h, dtype=jnp.float32), precision=hi
  )
  ez = jnp.einsum(
    "bjd,d->bj", m_z, jnp.arange(d, dtype=jnp.float32), precision=hi
  )
  uvd = jnp.stack([ex / w - 0.5, ey / h - 0.5, ez / d - 0.5], axis=-1)
  maxvals = jnp.max(probs, axis=(1, 2, 4))[..., None]  # [B, J, 1]
  return uvd, maxvals


def flip_heatmap_logits(
  logits: jax.Array,
  num_joints: int = NUM_JOINTS,
  depth_dim: int = DEPTH_DIM,
  shift: bool = True,
) -> jax.Array:
  """``flip_heatmap`` of the authors with the INTENDED one-pixel shift.

  Mirrors the width axis, swaps the left/right joint channels
  (:data:`JOINT_PAIRS_29`) and, with ``shift``, moves every column one pixel
  right: ``new[x] = old[x - 1]`` for x >= 1, ``new[0] = old[0]``. (The
  authors write ``h[..., 1:] = h[..., 0:-1]`` in place; PyTorch on CPU
  copies overlapping slices in SIMD-width chunks, so their result depends on
  the CPU and on the dtype. This is what that line means to do.)

  Args:
    logits: [B, H, W, J*D] logits of the FLIPPED image.

  Returns:
    [B, H, W, J*D], aligned with the unflipped image.
  """
  b, h, w, c = logits.shape
  x = logits.reshape(b, h, w, num_joints, depth_dim)[:, :, ::-1]
  x = x[:, :, :, flip_permutation(num_joints, JOINT_PAIRS_29)]
  if shift:
    x = jnp.concatenate([x[:, :, :1], x[:, :, :-1]], axis=2)
  return x.reshape(b, h, w, c)


def flip_phi(phi: jax.Array) -> jax.Array:
  """Twists of a flipped image -> unflipped: sin negated, left/right swapped
  (``JOINT_PAIRS_24`` minus one: phis index joints 1..23). [B, 23, 2]."""
  phi = phi * jnp.asarray([1.0, -1.0], phi.dtype)
  return phi[:, flip_permutation(NUM_TWIST, JOINT_PAIRS_24, offset=1)]


def flip_joint_values(x: jax.Array) -> jax.Array:
  """Per-joint values (e.g. sigma [B, 29, 1]) with left/right swapped."""
  return x[:, flip_permutation(x.shape[1], JOINT_PAIRS_29)]


def bbox_center_offset(bboxes: jax.Array, img_center: jax.Array) -> jax.Array:
  """Box centre relative to ``img_center``, per axis in box sizes.

  Args:
    bboxes: [B, 4] (x1, y1, x2, y2) image pixels.
    img_center: [B, 2] (cx, cy) image pixels.

  Returns:
    [B, 1, 2]: ((x1 + x2)/2 - cx) / (x2 - x1), ((y1 + y2)/2 - cy) / (y2 - y1).
  """
  bboxes = bboxes.astype(jnp.float32)
  img_center = img_center.astype(jnp.float32)
  cx = (bboxes[:, 0] + bboxes[:, 2]) * 0.5 - img_center[:, 0]
  cy = (bboxes[:, 1] + bboxes[:, 3]) * 0.5 - img_center[:, 1]
  cx = cx / (bboxes[:, 2] - bboxes[:, 0])
  cy = cy / (bboxes[:, 3] - bboxes[:, 1])
  return jnp.stack([cx, cy], axis=1)[:, None, :]


def cam_depth(
  scale: jax.Array,
  focal_length: float = FOCAL_LENGTH,
  input_size: float = INPUT_SIZE,
) -> jax.Array:
  """``camDepth = f / (input_size * s + 1e-9)`` (metres); any shape."""
  return focal_length / (input_size * scale + 1e-9)


def back_project(
  uvd: jax.Array,
  depth: jax.Array,
  offset: jax.Array | None = None,
  cam_trans: jax.Array | None = None,
  depth_factor: float = DEPTH_FACTOR,
  focal_length: float = FOCAL_LENGTH,
  input_size: float = INPUT_SIZE,
) -> jax.Array:
  """uvd -> camera-frame joints in units of ``depth_factor`` (not relative).

  Args:
    uvd: [B, J, 3] normalised.
    depth: [B, 1, 1] root depth (camDepth, metres).
    offset: optional [B, 1, 2] box-centre offset (``bbox_center_offset``).
    cam_trans: optional [B, 1, 2] metres subtracted from (x, y) (ResNet
      model without boxes).

  Returns:
    [B, J, 3]: z = d; (x, y) = ((u, v) + offset) * input_size / f *
    (d * depth_factor + depth) [- cam_trans], then / depth_factor.
  """
  uv = uvd[..., :2]
  if offset is not None:
    uv = uv + offset
  z = uvd[..., 2:]
  xy = (uv * input_size / focal_length) * (z * depth_factor + depth)
  if cam_trans is not None:
    xy = xy - cam_trans
  return jnp.concatenate([xy / depth_factor, z], axis=-1)


def solve_scale(
  uvd24: jax.Array,
  xyz24: jax.Array,
  weight: jax.Array,
  init_scale: jax.Array,
  focal_length: float = FOCAL_LENGTH,
  input_size: float = INPUT_SIZE,
) -> jax.Array:
  """The 1-D weighted least squares of ``update_scale`` for 1/s.

  Minimises sum_k w_k^2 [(u_k r - bx_k)^2 + (v_k r - by_k)^2] with
  ``bx = X - input_size * u / f * Z`` (and y alike), r = 1/s:
  ``r = sum(A b) / sum(A^2)`` with ``A = [w u; w v]``, ``b = [w bx; w by]``.

  Fallback (the authors' ``try: ... except RuntimeError: pass``): where
  sum(A^2) == 0 -- every weight zero, their ``torch.inverse`` raises -- the
  regressed ``init_scale`` is kept. That is per sample here; in the authors'
  batched call one singular sample makes the whole batch fall back (the same
  at batch size 1, their demo). A non-finite or zero r (a scale the
  reference would return as inf/NaN) also keeps ``init_scale``.

  Args:
    uvd24: [B, 24, 3] normalised uvd (with the box offset added to u, v).
    xyz24: [B, 24, 3] IK joints placed at the camera root (metres).
    weight: [B, 24, 1] per-joint weights.
    init_scale: [B, 1, 1] regressed scale.

  Returns:
    [B, 1, 1] scale.
  """
  w = weight[..., 0]  # [B, 24]
  u, v = uvd24[..., 0], uvd24[..., 1]
  a = jnp.concatenate([u * w, v * w], axis=1)  # [B, 48]
  bx = (xyz24[..., 0] - input_size * u / focal_length * xyz24[..., 2]) * w
  by = (xyz24[..., 1] - input_size * v / focal_length * xyz24[..., 2]) * w
  b = jnp.concatenate([bx, by], axis=1)  # [B, 48]
  ata = jnp.sum(a * a, axis=1)  # [B]
  ok = ata != 0
  inv = 1.0 / jnp.where(ok, ata, 1.0)
  r = jnp.sum((a * inv[:, None]) * b, axis=1)  # [B]
  ok = ok & jnp.isfinite(r) & (r != 0)
  scale = 1.0 / jnp.where(ok, r, 1.0)
  return jnp.where(ok[:, None, None], scale[:, None, None], init_scale)


def _dense(features: int, fan_in: int, name: str, dtype, precision):
  return nn.Dense(
    features,
    dtype=dtype,
    param_dtype=jnp.float32,
    precision=precision,
    kernel_init=torch_linear_init(fan_in),
    bias_init=torch_linear_init(fan_in),
    name=name,
  )


def regressors(
  g: jax.Array, fan_in: int, cam_dim: int, dtype, precision
) -> dict[str, jax.Array]:
  """``decshape``, ``decphi``, ``deccam``, ``decsigma`` on a feature vector.

  Creates the four Dense layers in the calling (compact) module.

  Args:
    g: [B, F] feature (compute dtype).
    fan_in: F (for PyTorch's default init bounds).
    cam_dim: outputs of ``deccam`` (1: HRNet scale; 3: ResNet scale + xy).

  Returns:
    dict (float32): ``delta_shape`` [B, 10], ``phi`` [B, 23, 2], ``camera``
    [B, cam_dim] (raw, before ``init_cam``), ``sigma`` [B, 29, 1] (after the
    sigmoid).
  """
  out = {}
  for name, key, n in (
    ("decshape", "delta_shape", NUM_BETAS),
    ("decphi", "phi", NUM_TWIST * 2),
    ("deccam", "camera", cam_dim),
    ("decsigma", "sigma", NUM_JOINTS),
  ):
    out[key] = _dense(n, fan_in, name, dtype, precision)(g).astype(jnp.float32)
  b = g.shape[0]
  out["phi"] = out["phi"].reshape(b, NUM_TWIST, 2)
  out["sigma"] = jax.nn.sigmoid(out["sigma"]).reshape(b, NUM_JOINTS, 1)
  return out


class HRNetCamHead(nn.Module):
  """HRNetSMPLCam's regressors on the average-pooled 2048-d feature."""

  dtype: Dtype = jnp.float32
  precision: Precision = None

  @nn.compact
  def __call__(self, feature_map: jax.Array) -> dict[str, jax.Array]:
    """[B, h, w, 2048] -> :func:`regressors` outputs + ``img_feat`` [B, 2048]."""
    g = jnp.mean(feature_map.astype(jnp.float32), axis=(1, 2))  # [B, 2048]
    out = regressors(
      g.astype(self.dtype), g.shape[-1], 1, self.dtype, self.precision
    )
    out["img_feat"] = g
    return out


class ResNetCamHead(nn.Module):
  """Simple3DPoseBaseSMPLCam's head: deconvs + 1x1 heatmap layer, and the
  pooled fc1 -> dropout -> fc2 -> dropout -> regressors branch.

  Children are named like the torch modules (``deconv_layers_{0..7}``,
  ``final_layer``, ``fc1``, ``fc2``, ``dec*``), as mmhuman3d's head.

  Attributes:
    deconv_dim: channels of the three transposed convolutions.
    dropout_rate: dropout after fc1 and fc2 (0.5).
  """

  num_joints: int = NUM_JOINTS
  depth_dim: int = DEPTH_DIM
  deconv_dim: tuple[int, ...] = (256, 256, 256)
  dropout_rate: float = 0.5
  dtype: Dtype = jnp.float32
  precision: Precision = None

  @nn.compact
  def __call__(
    self, feature: jax.Array, train: bool = False
  ) -> dict[str, jax.Array]:
    """[B, h, w, 512] layer4 map -> dict: ``heatmap_logits`` [B, 8h, 8w,
    J*D] float32, ``deconv_features`` [B, 8h, 8w, 256], and the regressors'
    outputs (``camera`` [B, 3])."""
    x = feature.astype(self.dtype)
    for i, features in enumerate(self.deconv_dim):
      x = ConvTranspose4x4S2(
        features, self.dtype, self.precision, name=f"deconv_layers_{3 * i}"
      )(x)
      x = TorchBatchNorm(
        use_running_average=not train,
        dtype=self.dtype,
        name=f"deconv_layers_{3 * i + 1}",
      )(x)
      x = nn.relu(x)
    logits = PointwiseConv(
      self.num_joints * self.depth_dim,
      dtype=self.dtype,
      precision=self.precision,
      name="final_layer",
    )(x)
    g = jnp.mean(feature.astype(jnp.float32), axis=(1, 2))  # [B, 512]
    g = g.astype(self.dtype)
    g = _dense(FC_DIM, g.shape[-1], "fc1", self.dtype, self.precision)(g)
    g = nn.Dropout(self.dropout_rate, deterministic=not train, name="drop1")(g)
    g = _dense(FC_DIM, FC_DIM, "fc2", self.dtype, self.precision)(g)
    g = nn.Dropout(self.dropout_rate, deterministic=not train, name="drop2")(g)
    out = regressors(g, FC_DIM, 3, self.dtype, self.precision)
    out["heatmap_logits"] = logits
    out["deconv_features"] = x
    return out
