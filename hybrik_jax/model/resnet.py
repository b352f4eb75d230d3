"""ResNet-34 backbone (torchvision layout) and a PyTorch-exact BatchNorm.

Written with ``flax.linen`` rather than NNX: linen's explicit variable
collections (``params`` / ``batch_stats`` / ``mutable=[...]``) map one-to-one
onto a PyTorch ``state_dict`` (parameters vs. running-statistics buffers), the
functional ``apply`` keeps the train/eval switch a plain argument, and it is the
style of the reference JAX vision code bases (big_vision, scenic, the Flax
ImageNet example) that this project follows.

Layout is NHWC. Every convolution pads explicitly and symmetrically with
``k // 2`` (never ``'SAME'``, which pads asymmetrically for stride 2 in XLA and
breaks parity with PyTorch); the stem max-pool pads with ``-inf``.

Module names mirror the PyTorch names so that the weight mapping is obvious:

  torch ``backbone.conv1``                   -> ``backbone/conv1``
  torch ``backbone.bn1``                     -> ``backbone/bn1``
  torch ``backbone.layer2.0.conv1``          -> ``backbone/layer2_0/conv1``
  torch ``backbone.layer2.0.downsample.0``   -> ``backbone/layer2_0/downsample_conv``
  torch ``backbone.layer2.0.downsample.1``   -> ``backbone/layer2_0/downsample_bn``
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from hybrik_jax.model import convolution

Dtype = Any
Precision = Any

# torchvision ResNet-34: BasicBlocks per stage, stage widths, stage strides.
RESNET34_STAGES = (3, 4, 6, 3)
RESNET34_WIDTHS = (64, 128, 256, 512)
# Channels of the last stage (layer4), the head's input.
RESNET34_OUT_FEATURES = RESNET34_WIDTHS[-1]
RESNET34_STRIDES = (1, 2, 2, 2)

BN_EPSILON = 1e-5
# Flax convention: running = momentum * running + (1 - momentum) * batch, i.e.
# Flax's momentum is PyTorch's (1 - momentum) = 1 - 0.1.
BN_MOMENTUM = 0.9


class TorchBatchNorm(nn.Module):
  """BatchNorm over the last (channel) axis, numerically like ``nn.BatchNorm2d``.

  Differences from ``flax.linen.BatchNorm`` that matter for parity:
    * In training mode PyTorch normalises with the *biased* batch variance but
      updates ``running_var`` with the *unbiased* one (``n / (n - 1)``); Flax's
      BatchNorm uses the biased variance for both. This module follows PyTorch.
    * In eval mode the affine transform is folded into one scale and one shift
      per channel (``x * a + b``), as PyTorch's CPU inference kernel does.
  Batch statistics are always computed in float32, whatever ``dtype`` is.

  Variables: ``params/{scale, bias}`` ([C], torch ``weight``/``bias``) and
  ``batch_stats/{mean, var}`` ([C], torch ``running_mean``/``running_var``).

  Attributes:
    use_running_average: eval mode (normalise with the running statistics).
    momentum: Flax keep factor of the running averages (0.9 = torch 0.1).
    epsilon: added to the variance (torch ``eps``).
    dtype: compute/output dtype (params and statistics stay float32).
    axis_name: optional mapped axis to average batch statistics over
      (``pmap``/``shard_map``); None = statistics of the local batch.
  """

  use_running_average: bool = True
  momentum: float = BN_MOMENTUM
  epsilon: float = BN_EPSILON
  dtype: Dtype = jnp.float32
  axis_name: str | None = None

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    features = x.shape[-1]
    scale = self.param("scale", nn.initializers.ones, (features,), jnp.float32)
    bias = self.param("bias", nn.initializers.zeros, (features,), jnp.float32)
    ra_mean = self.variable(
      "batch_stats", "mean", lambda: jnp.zeros((features,), jnp.float32)
    )
    ra_var = self.variable(
      "batch_stats", "var", lambda: jnp.ones((features,), jnp.float32)
    )

    if self.use_running_average:
      inv = scale * lax.rsqrt(ra_var.value + self.epsilon)  # [C]
      shift = bias - ra_mean.value * inv  # [C]
      y = x.astype(self.dtype) * inv.astype(self.dtype) + shift.astype(
        self.dtype
      )
      return y

    reduce_axes = tuple(range(x.ndim - 1))
    xf = x.astype(jnp.float32)
    n = 1
    for a in reduce_axes:
      n *= x.shape[a]
    mean = jnp.mean(xf, axis=reduce_axes)  # [C]
    if self.axis_name is not None:
      mean = lax.pmean(mean, self.axis_name)
    var = jnp.mean(jnp.square(xf - mean), axis=reduce_axes)  # biased, [C]
    if self.axis_name is not None:
      var = lax.pmean(var, self.axis_name)
      n = n * lax.psum(1, self.axis_name)
    if not self.is_initializing():
      unbiased = var * (n / jnp.maximum(n - 1, 1))
      ra_mean.value = (
        self.momentum * ra_mean.value + (1.0 - self.momentum) * mean
      )
      ra_var.value = (
        self.momentum * ra_var.value + (1.0 - self.momentum) * unbiased
      )
    y = (xf - mean) * lax.rsqrt(var + self.epsilon) * scale + bias
    return y.astype(self.dtype)


def torch_conv(
  features: int,
  kernel: int,
  stride: int = 1,
  *,
  name: str,
  dtype: Dtype,
  precision: Precision,
  use_bias: bool = False,
) -> nn.Conv:
  """A ``nn.Conv`` padded like PyTorch's ``Conv2d(k, stride, padding=k//2)``."""
  pad = kernel // 2
  return nn.Conv(
    features,
    (kernel, kernel),
    strides=(stride, stride),
    padding=((pad, pad), (pad, pad)),
    use_bias=use_bias,
    dtype=dtype,
    param_dtype=jnp.float32,
    precision=precision,
    kernel_init=nn.initializers.variance_scaling(2.0, "fan_out", "normal"),
    conv_general_dilated=convolution.conv_general_dilated,
    name=name,
  )


def _reduce_window_max_pool(x: jax.Array) -> jax.Array:
  """``nn.MaxPool2d(3, stride=2, padding=1)`` as one reduce_window. [B,H,W,C]."""
  # A Python scalar init keeps this the differentiable reduce_window_max.
  return lax.reduce_window(
    x,
    -jnp.inf,
    lax.max,
    window_dimensions=(1, 3, 3, 1),
    window_strides=(1, 2, 2, 1),
    padding=((0, 0), (1, 1), (1, 1), (0, 0)),
  )


def _pool_taps(x: jax.Array, h: int, w: int) -> list[list[jax.Array]]:
  """The 3x3 window taps of a stride-2 pool over ``x`` padded by one -inf.

  ``taps[i][j]`` is [B, h, w, C]: element (a, b) is padded-x at
  (2a + i, 2b + j), i.e. original pixel (2a + i - 1, 2b + j - 1).
  """
  xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=-jnp.inf)
  return [
    [xp[:, i : i + 2 * h - 1 : 2, j : j + 2 * w - 1 : 2, :] for j in range(3)]
    for i in range(3)
  ]


def _shift_next(a: jax.Array, axis: int) -> jax.Array:
  """``a[k + 1]`` along ``axis`` with a zero row appended at the end."""
  pad = [(0, 0)] * a.ndim
  pad[axis] = (0, 1)
  return jnp.pad(lax.slice_in_dim(a, 1, a.shape[axis], axis=axis), pad)


@jax.custom_vjp
def _max_pool_even(x: jax.Array) -> jax.Array:
  return _reduce_window_max_pool(x)


def _max_pool_even_fwd(x):
  out = _reduce_window_max_pool(x)
  return out, (x, out)


def _max_pool_even_bwd(res, g):
  """Routes each output gradient to the FIRST maximum of its window in
  row-major order (PyTorch's argmax rule), written as elementwise masks plus a
  depth-to-space interleave instead of XLA's select-and-scatter (4x faster on
  XLA:CPU: 34 vs 140 ms at [8, 128, 128, 64]).

  With H = 2h, input row r = 2a - 1 + i is reached by window row a through
  tap i. So even rows r = 2a take tap 1 of window a; odd rows r = 2a + 1 take
  tap 2 of window a plus tap 0 of window a + 1. Columns likewise.
  """
  x, out = res  # [B, 2h, 2w, C], [B, h, w, C]
  b, hh, ww, c = x.shape
  h, w = hh // 2, ww // 2
  taps = _pool_taps(x, h, w)
  taken = jnp.zeros(out.shape, bool)
  contrib = [[None] * 3 for _ in range(3)]  # gradient share of each tap
  for i in range(3):
    for j in range(3):
      first = jnp.logical_and(taps[i][j] == out, jnp.logical_not(taken))
      taken = jnp.logical_or(taken, first)
      contrib[i][j] = jnp.where(first, g, jnp.zeros((), g.dtype))

  def by_parity(t, parity, axis):  # combine taps t[0..2] for rows/cols
    return t[1] if parity == 0 else t[2] + _shift_next(t[0], axis)

  phases = []
  for rp in (0, 1):
    rows = [
      by_parity([contrib[0][j], contrib[1][j], contrib[2][j]], rp, 1)
      for j in range(3)
    ]  # per column tap, [B, h, w, C]
    phases.append(
      jnp.stack([by_parity(rows, cp, 2) for cp in (0, 1)], axis=3)
    )  # [B, h, w, 2 (col parity), C]
  gx = jnp.stack(phases, axis=2)  # [B, h, 2 (row parity), w, 2, C]
  return (gx.reshape(b, hh, ww, c),)


_max_pool_even.defvjp(_max_pool_even_fwd, _max_pool_even_bwd)


def max_pool_3x3_s2(x: jax.Array) -> jax.Array:
  """``nn.MaxPool2d(3, stride=2, padding=1)``: pads with -inf. [B,H,W,C].

  For even H and W the gradient uses :func:`_max_pool_even_bwd` (same
  first-maximum rule as PyTorch, faster on CPU); odd sizes fall back to the
  select-and-scatter gradient of ``lax.reduce_window``.
  """
  if x.shape[1] % 2 == 0 and x.shape[2] % 2 == 0:
    return _max_pool_even(x)
  return _reduce_window_max_pool(x)


class BasicBlock(nn.Module):
  """torchvision BasicBlock ("pytorch" style: the stride sits on conv1).

  Attributes:
    features: output channels.
    stride: stride of conv1 (and of the 1x1 downsample when present).
    downsample: add the 1x1 conv + BN projection on the identity path.
    train: BatchNorm in training mode (batch statistics).
  """

  features: int
  stride: int = 1
  downsample: bool = False
  train: bool = False
  dtype: Dtype = jnp.float32
  precision: Precision = None

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    bn = lambda name: TorchBatchNorm(  # noqa: E731
      use_running_average=not self.train, dtype=self.dtype, name=name
    )
    conv = lambda f, k, s, name: torch_conv(  # noqa: E731
      f, k, s, name=name, dtype=self.dtype, precision=self.precision
    )
    out = conv(self.features, 3, self.stride, "conv1")(x)
    out = nn.relu(bn("bn1")(out))
    out = conv(self.features, 3, 1, "conv2")(out)
    out = bn("bn2")(out)
    identity = x
    if self.downsample:
      identity = conv(self.features, 1, self.stride, "downsample_conv")(x)
      identity = bn("downsample_bn")(identity)
    return nn.relu(out + identity.astype(out.dtype))


class ResNet34(nn.Module):
  """mmhuman3d/torchvision ResNet-34 returning the layer4 feature map.

  Input ``[B, H, W, 3]`` normalised RGB (NHWC); output ``[B, H/32, W/32, 512]``
  (``[B, 8, 8, 512]`` for 256x256 images). No global pool, no fc.

  Attributes:
    stage_sizes: BasicBlocks per stage.
    dtype: compute dtype (params stay float32).
    precision: ``lax.Precision`` of convolutions (None = backend default).
  """

  stage_sizes: Sequence[int] = RESNET34_STAGES
  dtype: Dtype = jnp.float32
  precision: Precision = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    x = x.astype(self.dtype)
    x = torch_conv(
      64, 7, 2, name="conv1", dtype=self.dtype, precision=self.precision
    )(x)  # [B, H/2, W/2, 64]
    x = TorchBatchNorm(
      use_running_average=not train, dtype=self.dtype, name="bn1"
    )(x)
    x = nn.relu(x)
    x = max_pool_3x3_s2(x)  # [B, H/4, W/4, 64]
    in_features = 64
    for stage, num_blocks in enumerate(self.stage_sizes):
      features = RESNET34_WIDTHS[stage]
      for block in range(num_blocks):
        stride = RESNET34_STRIDES[stage] if block == 0 else 1
        x = BasicBlock(
          features=features,
          stride=stride,
          downsample=(block == 0 and (stride != 1 or in_features != features)),
          train=train,
          dtype=self.dtype,
          precision=self.precision,
          name=f"layer{stage + 1}_{block}",
        )(x)
        in_features = features
    return x  # [B, H/32, W/32, 512]
