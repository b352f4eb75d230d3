"""HybrIK's head: 3D heatmap volume, soft-argmax, shape/twist regressors.

Mirrors mmhuman3d's ``HybrIKHead`` (``mmhuman3d/models/heads/hybrik_head.py``)
in NHWC. Submodule names equal the PyTorch ``head.*`` names with ``.`` -> ``_``
(``deconv_layers_0`` is torch ``head.deconv_layers.0``, ...).

Transposed convolutions: ``ConvTranspose2d(k=4, stride=2, padding=1)`` equals a
stride-1 convolution over the input dilated by 2 (``input_dilation``) and padded
by ``k - 1 - p = 2`` on each side, with the torch kernel flipped in both spatial
axes and laid out ``(kh, kw, in, out)``. The flip happens once, in the weight
mapping (``weight_mapping.py``); the Flax kernel stored here is the equivalent
regular-convolution kernel.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from hybrik_jax.model import convolution
from hybrik_jax.model.resnet import TorchBatchNorm
from hybrik_jax.smpl import tables

Dtype = Any
Precision = Any

# uv of the heatmap (64 bins) -> crop pixels (256): hard-coded stride 4.
HEATMAP_STRIDE = 4
# Width of the global branch's two fully connected layers (fc1, fc2).
FC_DIM = 1024
# On CPU the final 1x1 convolution and the soft-argmax that reads its output
# run one sample at a time (``lax.map``): one image's logits [64, 64, 1856]
# (30 MB) stay in cache through the soft-argmax's passes (max, exp, sums),
# where the batch's [B, 64, 64, 1856] (243 MB at B = 8) streams from memory
# on every pass (BENCHMARKS.md). Accelerators keep the whole batch.
PER_SAMPLE_HEATMAPS_ON_CPU = True


def per_sample_heatmaps() -> bool:
  """Whether the heatmap layers run one sample at a time (see above)."""
  return PER_SAMPLE_HEATMAPS_ON_CPU and jax.default_backend() == "cpu"


def torch_linear_init(fan_in: int):
  """PyTorch's default ``nn.Linear`` init: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
  bound = 1.0 / fan_in**0.5

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return init


def soft_argmax_3d(
  logits: jax.Array, num_joints: int, depth_dim: int
) -> jax.Array:
  """Integral (soft-argmax) regression over per-joint 3D heatmap volumes.

  Equivalent to mmhuman3d's softmax over all D*H*W voxels of each joint
  followed by marginal expectations, but computed from one ``exp`` pass:
  ``e = exp(logits - max)``, marginals of ``e``, and one division by the
  per-joint total (the softmax normaliser). Computed in float32.

  Args:
    logits: [B, H, W, J*D] final-layer output, NHWC; channel = joint*D + depth
      (joint-major, depth-minor as in PyTorch).
    num_joints: J (29).
    depth_dim: D (64).

  Returns:
    [B, J, 3] (u, v, d) = (E[x]/W, E[y]/H, E[z]/D) - 0.5, in [-0.5, 0.5);
    x indexes W, y indexes H, z indexes D (bin indices 0..63, no half-bin).
  """
  b, h, w, c = logits.shape
  if c != num_joints * depth_dim:
    raise ValueError(
      f"heatmap logits have {c} channels, expected "
      f"{num_joints}*{depth_dim}={num_joints * depth_dim}"
    )
  x = logits.astype(jnp.float32).reshape(b, h, w, num_joints, depth_dim)
  peak = lax.stop_gradient(jnp.max(x, axis=(1, 2, 4), keepdims=True))
  e = jnp.exp(x - peak)  # [B, H, W, J, D], unnormalised softmax
  m_x = jnp.sum(e, axis=(1, 4))  # [B, W, J]
  m_y = jnp.sum(e, axis=(2, 4))  # [B, H, J]
  m_z = jnp.sum(e, axis=(1, 2))  # [B, J, D]
  total = jnp.sum(m_z, axis=-1)  # [B, J]
  ex = jnp.einsum(
    "bwj,w->bj",
    m_x,
    jnp.arange(w, dtype=jnp.float32),
    precision=lax.Precision.HIGHEST,
  )
  ey = jnp.einsum(
    "bhj,h->bj",
    m_y,
    jnp.arange(h, dtype=jnp.float32),
    precision=lax.Precision.HIGHEST,
  )
  ez = jnp.einsum(
    "bjd,d->bj",
    m_z,
    jnp.arange(depth_dim, dtype=jnp.float32),
    precision=lax.Precision.HIGHEST,
  )
  u = ex / total / w - 0.5
  v = ey / total / h - 0.5
  d = ez / total / depth_dim - 0.5
  return jnp.stack([u, v, d], axis=-1)  # [B, J, 3]


def uvd_to_cam(
  uvd: jax.Array,
  trans_inv: jax.Array,
  intrinsic_param: jax.Array,
  joint_root: jax.Array,
  depth_factor: jax.Array,
  heatmap_size: int = 64,
  return_relative: bool = True,
) -> jax.Array:
  """Back-projects normalised uvd to camera space (``HybrIKHead.uvd_to_cam``).

  Args:
    uvd: [B, J, 3] normalised (u, v, d) in [-0.5, 0.5).
    trans_inv: [B, 2, 3] affine crop pixels -> original image pixels.
    intrinsic_param: [B, 3, 3] the INVERSE camera matrix K^-1.
    joint_root: [B, 3] ground-truth root joint, camera frame (mm, or the
      unit of ``depth_factor``).
    depth_factor: [B, 1] depth range of the uvd volume (2000 mm).
    heatmap_size: heatmap bins along u and v (64); crop pixels = bins * 4.
    return_relative: subtract ``joint_root`` before scaling.

  Returns:
    [B, J, 3] (xyz - joint_root) / depth_factor (units of depth_factor).
    Computed with explicit float32 multiply-adds (no TF32/bf16 matmul).
  """
  uvd = uvd.astype(jnp.float32)
  trans_inv = trans_inv.astype(jnp.float32)
  kinv = intrinsic_param.astype(jnp.float32)
  joint_root = joint_root.astype(jnp.float32)
  depth_factor = depth_factor.astype(jnp.float32).reshape(-1, 1)  # [B, 1]
  scale = float(heatmap_size * HEATMAP_STRIDE)
  u_px = (uvd[..., 0] + 0.5) * scale  # [B, J] crop pixels
  v_px = (uvd[..., 1] + 0.5) * scale
  dz = uvd[..., 2] * depth_factor  # [B, J]
  t = trans_inv[:, None]  # [B, 1, 2, 3]
  u_img = t[..., 0, 0] * u_px + t[..., 0, 1] * v_px + t[..., 0, 2]  # [B, J]
  v_img = t[..., 1, 0] * u_px + t[..., 1, 1] * v_px + t[..., 1, 2]
  k = kinv[:, None]  # [B, 1, 3, 3]
  ray = jnp.stack(
    [
      k[..., i, 0] * u_img + k[..., i, 1] * v_img + k[..., i, 2]
      for i in range(3)
    ],
    axis=-1,
  )  # [B, J, 3]
  abs_z = dz + joint_root[:, 2:3]  # [B, J]
  xyz = ray * abs_z[..., None]  # [B, J, 3]
  if return_relative:
    xyz = xyz - joint_root[:, None, :]
  return xyz / depth_factor[:, :, None]


def conv_transpose_4x4_s2(
  x: jax.Array, kernel: jax.Array, precision: Precision = None
) -> jax.Array:
  """``ConvTranspose2d(k=4, stride=2, padding=1)`` by sub-pixel phases.

  With ``kernel`` [4, 4, Cin, Cout] the *equivalent regular-convolution*
  kernel (the torch kernel flipped in both spatial axes), the transposed
  convolution equals a stride-1 convolution of the input dilated by 2 and
  padded by 2. Output pixel (2m + r, 2n + s) only meets the kernel taps
  ``kernel[r::2, s::2]`` (2 x 2), applied to the undilated input padded by
  one pixel before (phase 0) or after (phase 1). Four small stride-1
  convolutions interleaved (depth-to-space) give the same sums without the
  75% zeros of the dilated input -- and, unlike XLA:CPU's input-dilated
  convolution, a fast backward pass.

  Args:
    x: [B, H, W, Cin] NHWC.
    kernel: [4, 4, Cin, Cout] (HWIO, equivalent-convolution layout).
    precision: ``lax.Precision`` of the convolutions.

  Returns:
    [B, 2H, 2W, Cout].
  """
  b, h, w, _ = x.shape
  pads = ((1, 0), (0, 1))  # phase 0: one pixel before; phase 1: after
  rows = []
  for r in (0, 1):
    cols = []
    for c in (0, 1):
      cols.append(
        convolution.conv_general_dilated(
          x,
          kernel[r::2, c::2],
          window_strides=(1, 1),
          padding=(pads[r], pads[c]),
          dimension_numbers=("NHWC", "HWIO", "NHWC"),
          precision=precision,
        )
      )  # [B, H, W, Cout]
    rows.append(jnp.stack(cols, axis=3))  # [B, H, W, 2 (c), Cout]
  y = jnp.stack(rows, axis=2)  # [B, H, 2 (r), W, 2 (c), Cout]
  return y.reshape(b, 2 * h, 2 * w, y.shape[-1])


class ConvTranspose4x4S2(nn.Module):
  """torch ``ConvTranspose2d(k=4, s=2, p=1, bias=False)`` (see
  :func:`conv_transpose_4x4_s2`). The ``kernel`` param is the equivalent
  regular-convolution kernel [4, 4, Cin, Cout] (weight_mapping flips the
  torch weight into it); init N(0, 0.001^2) as HybrIKHead._initialize."""

  features: int
  dtype: Dtype = jnp.float32
  precision: Precision = None

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel = self.param(
      "kernel",
      nn.initializers.normal(0.001),
      (4, 4, x.shape[-1], self.features),
      jnp.float32,
    )
    return conv_transpose_4x4_s2(
      x.astype(self.dtype), kernel.astype(self.dtype), self.precision
    )


class PointwiseConv(nn.Module):
  """A 1x1 convolution with bias (torch ``Conv2d(k=1)``) computed as one matmul.

  Same variables as ``nn.Conv(features, (1, 1))`` -- ``kernel`` [1, 1, Cin,
  Cout], ``bias`` [Cout] -- but evaluated as ``[B*H*W, Cin] @ [Cin, Cout]``.
  For the head's 256 -> 1856 layer over 64x64 pixels this matters on XLA:CPU:
  the convolution's weight gradient (a batch-as-feature convolution) ran at
  ~25 GFLOP/s, the matmul's (``x^T @ dy``) at ~190 GFLOP/s (BENCHMARKS.md).
  Init N(0, 0.001^2) / zeros, as ``HybrIKHead._initialize`` does for
  ``final_layer``. The output is float32
  (accumulated in float32) even for bfloat16 inputs: the soft-argmax that
  consumes it runs in float32.
  """

  features: int
  dtype: Dtype = jnp.float32
  precision: Precision = None

  @nn.compact
  def __call__(
    self,
    x: jax.Array,
    consume: Callable[[jax.Array], Any] | None = None,
    per_sample: bool = False,
  ) -> Any:
    """[B, ..., Cin] -> [B, ..., Cout] float32, or ``consume`` of that.

    ``consume`` (a pure function of the output, e.g. the soft-argmax) is
    applied to the output; with ``per_sample`` the convolution and
    ``consume`` run one sample at a time (``lax.map``; outputs stacked
    along a new leading batch axis), so that one sample's output can stay
    in cache for ``consume``.
    """
    cin = x.shape[-1]
    kernel = self.param(
      "kernel",
      nn.initializers.normal(0.001),
      (1, 1, cin, self.features),
      jnp.float32,
    )
    bias = self.param(
      "bias", nn.initializers.zeros, (self.features,), jnp.float32
    )
    kernel = kernel.astype(self.dtype).reshape(cin, self.features)

    def run(xs: jax.Array) -> Any:
      y = lax.dot_general(
        xs.astype(self.dtype).reshape(-1, cin),  # [b*H*W, Cin]
        kernel,
        (((1,), (0,)), ((), ())),
        precision=self.precision,
        preferred_element_type=jnp.float32,
      )  # [b*H*W, Cout]
      y = (y + bias).reshape(*xs.shape[:-1], self.features)  # float32
      return y if consume is None else consume(y)

    if not per_sample or x.shape[0] == 1:
      return run(x)
    out = lax.map(lambda xi: run(xi[None]), x)  # leaves [B, 1, ...]
    return jax.tree.map(lambda a: a[:, 0], out)


class HybrIKHead(nn.Module):
  """Deconv heatmap head + global shape/twist branch of HybrIK.

  Attributes:
    num_joints: heatmap joints (29).
    depth_dim: depth bins per joint (64).
    deconv_dim: channels of the three transposed convolutions.
    num_betas: shape coefficients (10).
    num_twist: twist angles (23), each as (cos, sin).
    dropout_rate: dropout after fc1 and fc2 (0.5; set 0 for determinism).
    dtype: compute dtype of the convolutions/dense layers (params float32).
    precision: ``lax.Precision`` of convolutions and dense layers.
  """

  num_joints: int = 29
  depth_dim: int = 64
  deconv_dim: Sequence[int] = (256, 256, 256)
  num_betas: int = tables.NUM_BETAS
  num_twist: int = 23
  dropout_rate: float = 0.5
  dtype: Dtype = jnp.float32
  precision: Precision = None

  @nn.compact
  def __call__(
    self,
    feature: jax.Array,
    init_shape: jax.Array,
    train: bool = False,
    with_logits: bool = True,
  ) -> dict[str, jax.Array]:
    """Runs the head.

    Args:
      feature: [B, h, w, 512] backbone (layer4) feature map, NHWC.
      init_shape: [num_betas] mean shape added to the shape regressor output.
      train: BatchNorm batch statistics and dropout (needs a 'dropout' rng).
      with_logits: return ``heatmap_logits`` (else the key is absent, and on
        CPU the [B, 8h, 8w, J*D] logits are never materialised whole: see
        ``PER_SAMPLE_HEATMAPS_ON_CPU``).

    Returns:
      dict with (all float32)
        pred_uvd_jts_29: [B, J, 3] normalised uvd in [-0.5, 0.5).
        pred_delta_shape: [B, 10]; pred_shape: [B, 10] (= delta + init_shape).
        pred_phi: [B, 23, 2] raw (cos, sin) twists (not normalised).
        maxvals: [B, J, 1] ones.
        deconv_features: [B, 8h, 8w, 256] deconv stack output (after ReLU).
        heatmap_logits: [B, 8h, 8w, J*D] final 1x1 conv output (float32;
          only ``with_logits``).
    """
    batch = feature.shape[0]
    x = feature.astype(self.dtype)
    for i, features in enumerate(self.deconv_dim):
      x = ConvTranspose4x4S2(
        features,
        dtype=self.dtype,
        precision=self.precision,
        name=f"deconv_layers_{3 * i}",
      )(x)
      x = TorchBatchNorm(
        use_running_average=not train,
        dtype=self.dtype,
        name=f"deconv_layers_{3 * i + 1}",
      )(x)
      x = nn.relu(x)
    deconv_features = x  # [B, 64, 64, 256]

    def heatmaps(logits):  # [b, 64, 64, J*D] float32
      uvd = soft_argmax_3d(logits, self.num_joints, self.depth_dim)
      return uvd, (logits if with_logits else None)

    uvd, logits = PointwiseConv(
      self.num_joints * self.depth_dim,
      dtype=self.dtype,
      precision=self.precision,
      name="final_layer",
    )(x, heatmaps, per_sample=per_sample_heatmaps())
    # uvd: [B, J, 3]; logits: [B, 64, 64, J*D] or None

    def dense(features, fan_in, name):
      return nn.Dense(
        features,
        dtype=self.dtype,
        param_dtype=jnp.float32,
        precision=self.precision,
        kernel_init=torch_linear_init(fan_in),
        bias_init=torch_linear_init(fan_in),
        name=name,
      )

    g = jnp.mean(feature.astype(jnp.float32), axis=(1, 2))  # [B, 512]
    g = g.astype(self.dtype)
    g = dense(FC_DIM, g.shape[-1], "fc1")(g)
    g = nn.Dropout(self.dropout_rate, deterministic=not train, name="drop1")(g)
    g = dense(FC_DIM, FC_DIM, "fc2")(g)
    g = nn.Dropout(self.dropout_rate, deterministic=not train, name="drop2")(g)
    delta_shape = dense(self.num_betas, FC_DIM, "decshape")(g).astype(
      jnp.float32
    )  # [B, 10]
    phi = dense(self.num_twist * 2, FC_DIM, "decphi")(g).astype(jnp.float32)
    pred_shape = delta_shape + init_shape.astype(jnp.float32)[None, :]
    return {
      "pred_uvd_jts_29": uvd,
      "pred_delta_shape": delta_shape,
      "pred_shape": pred_shape,
      "pred_phi": phi.reshape(batch, self.num_twist, 2),
      "maxvals": jnp.ones((batch, self.num_joints, 1), jnp.float32),
      "deconv_features": deconv_features,
    } | ({"heatmap_logits": logits} if with_logits else {})
