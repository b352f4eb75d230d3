"""HRNet-W48 backbone of the authors' HybrIK (``HRNetSMPLCam``), NHWC Flax.

The network of Jeff-sjtu/HybrIK ``hybrik/models/layers/hrnet/hrnet.py``
(``PoseHighResolutionNet`` built from ``w48.yaml`` with ``generate_feat=True``
and ``generate_hm=True``), written for this project from that description:

* stem: two 3x3 stride-2 convolutions (3 -> 64 -> 64) with BN + ReLU, then
  ``layer1`` = four Bottlenecks (64 planes, 256 out): input / 4.
* stages 2, 3, 4 (1, 4 and 3 ``HighResolutionModule``s; 2, 3, 4 branches of
  48, 96, 192, 384 channels at strides 4, 8, 16, 32; four BasicBlocks per
  branch and module). Each module runs its branches, then fuses: output
  branch i is ``relu(sum_j f_ij(x_j))`` summed in order j = 0, 1, ..., with
  f_ii the identity, f_ij (j > i) a 1x1 conv + BN + nearest upsampling by
  ``2**(j-i)`` and f_ij (j < i) ``i-j`` stride-2 3x3 conv + BN steps (ReLU
  between them, not after the last). Stage 4's last module keeps all four
  outputs (``multi_scale_output = generate_feat = True``).
* transitions between stages: a new branch = stride-2 3x3 conv + BN + ReLU
  of the previous stage's LAST branch output. (An existing branch whose
  width changed would also be fed the last branch in the authors' forward;
  W48 has no such branch -- only ``transition1_0`` on layer1's single
  output.)
* heatmap layer ``final_layer``: a 1x1 conv with bias, 48 -> 29*64, on the
  stride-4 branch: [B, H/4, W/4, 1856] logits (float32 even in bfloat16;
  channel = joint * 64 + depth, as the torch ``reshape(B, 29, 64, H, W)``).
* feature head (the HRNet classification head): ``incre_modules`` (one
  Bottleneck per branch: 48, 96, 192, 384 -> 128, 256, 512, 1024), the
  running sum ``y = incre_{i+1}(x_{i+1}) + downsamp_i(y)`` with stride-2 3x3
  conv (with bias) + BN + ReLU ``downsamp_modules``, then ``final_feat_layer``
  (1x1 conv with bias 1024 -> 2048, BN, ReLU): [B, H/32, W/32, 2048].
  ``HRNetSMPLCam`` average-pools it to the 2048-d ``img_feat``.

BatchNorm, convolution padding, dtype and precision handling are those of
:mod:`hybrik_jax.model.resnet` (``TorchBatchNorm``, ``torch_conv``: explicit
symmetric ``k // 2`` padding, params float32, compute in ``dtype``). Every
BatchNorm of the authors' file has eps 1e-5 and momentum 0.1 (the fuse and
transition ones use PyTorch's defaults, which are the same).

Flax scopes mirror the torch module names (the mapping is
:mod:`hybrik_jax.interop.authors_mapping`):

  torch ``conv1`` / ``bn1`` / ``conv2`` / ``bn2``  -> same names
  ``layer1.B.*`` (Bottleneck)                      -> ``layer1_B/*``
  ``transitionT.I.{0,1}`` (existing branch)        -> ``transitionT_I/{conv,bn}``
  ``transitionT.I.K.{0,1}`` (new branch, step K)   -> ``transitionT_I_K/{conv,bn}``
  ``stageS.M.branches.I.B.*`` (BasicBlock)         -> ``stageS_M/branches_I_B/*``
  ``stageS.M.fuse_layers.I.J.{0,1}`` (J > I)       -> ``stageS_M/fuse_layers_I_J/{conv,bn}``
  ``stageS.M.fuse_layers.I.J.K.{0,1}`` (J < I)     -> ``stageS_M/fuse_layers_I_J_K/{conv,bn}``
  ``incre_modules.I.0.*`` (Bottleneck)             -> ``incre_modules_I/*``
  ``downsamp_modules.I.{0,1}``                     -> ``downsamp_modules_I/{conv,bn}``
  ``final_feat_layer.{0,1}``                       -> ``final_feat_layer/{conv,bn}``
  ``final_layer``                                  -> ``final_layer`` (kernel [1,1,48,1856])

and inside a Bottleneck ``conv1..3``, ``bn1..3``, ``downsample.0`` ->
``downsample_conv``, ``downsample.1`` -> ``downsample_bn`` (as ResNet).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from hybrik_jax.model.head import PointwiseConv
from hybrik_jax.model.resnet import BasicBlock, TorchBatchNorm, torch_conv

Dtype = Any
Precision = Any

# w48.yaml (HybrIK's copy): stem width, layer1, stages 2-4.
STEM_WIDTH = 64
LAYER1_BLOCKS = 4
LAYER1_PLANES = 64
BOTTLENECK_EXPANSION = 4
W48_STAGES = (
  # (num_modules, blocks per branch, branch widths)
  (1, (4, 4), (48, 96)),
  (4, (4, 4, 4), (48, 96, 192)),
  (3, (4, 4, 4, 4), (48, 96, 192, 384)),
)
# A shallow variant (same stem, layer1, widths, branches, fuse layers and
# heads; one module of one BasicBlock per branch in stages 2-4, 9 blocks
# instead of 104): registered as 'hrnet_w48_shallow' for smoke tests and CPU
# runs, where the full network takes minutes to compile. Not the authors'.
W48_SHALLOW_STAGES = (
  (1, (1, 1), (48, 96)),
  (1, (1, 1, 1), (48, 96, 192)),
  (1, (1, 1, 1, 1), (48, 96, 192, 384)),
)
# The classification ("feature") head: Bottleneck planes per branch (x4 out).
HEAD_PLANES = (32, 64, 128, 256)
FEATURE_DIM = 2048
# HybrIK's heatmap: 29 joints x 64 depth bins.
NUM_JOINTS = 29
DEPTH_DIM = 64


class ConvBN(nn.Module):
  """``Sequential(Conv2d, BatchNorm2d[, ReLU])``: children ``conv``, ``bn``.

  Attributes:
    features: output channels.
    kernel: square kernel size (padding ``kernel // 2``).
    stride: convolution stride.
    conv_bias: the convolution has a bias (the feature head's convs do).
    relu: apply ReLU after the BatchNorm.
    train: BatchNorm batch statistics.
  """

  features: int
  kernel: int = 3
  stride: int = 1
  conv_bias: bool = False
  relu: bool = True
  train: bool = False
  dtype: Dtype = jnp.float32
  precision: Precision = None

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = torch_conv(
      self.features,
      self.kernel,
      self.stride,
      name="conv",
      dtype=self.dtype,
      precision=self.precision,
      use_bias=self.conv_bias,
    )(x)
    x = TorchBatchNorm(
      use_running_average=not self.train, dtype=self.dtype, name="bn"
    )(x)
    return nn.relu(x) if self.relu else x


class Bottleneck(nn.Module):
  """HRNet's Bottleneck (1x1, 3x3 with the stride, 1x1 x4; BN after each).

  Attributes:
    planes: width of the inner convolutions (output = planes * 4).
    stride: stride of the 3x3 convolution (and of the projection).
    downsample: add the 1x1 conv + BN projection on the identity path.
    train: BatchNorm batch statistics.
  """

  planes: int
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
    out_features = self.planes * BOTTLENECK_EXPANSION
    out = nn.relu(bn("bn1")(conv(self.planes, 1, 1, "conv1")(x)))
    out = nn.relu(bn("bn2")(conv(self.planes, 3, self.stride, "conv2")(out)))
    out = bn("bn3")(conv(out_features, 1, 1, "conv3")(out))
    identity = x
    if self.downsample:
      identity = conv(out_features, 1, self.stride, "downsample_conv")(x)
      identity = bn("downsample_bn")(identity)
    return nn.relu(out + identity.astype(out.dtype))


def upsample_nearest(x: jax.Array, factor: int) -> jax.Array:
  """``nn.Upsample(scale_factor=factor, mode='nearest')``. [B,H,W,C] ->
  [B, H*factor, W*factor, C] (each pixel repeated factor x factor times)."""
  if factor == 1:
    return x
  b, h, w, c = x.shape
  y = jnp.broadcast_to(x[:, :, None, :, None, :], (b, h, factor, w, factor, c))
  return y.reshape(b, h * factor, w * factor, c)


class HighResolutionModule(nn.Module):
  """One multi-branch HRNet module: per-branch BasicBlocks, then fusion.

  Attributes:
    widths: channels of each branch (stride 4 * 2**i for branch i).
    num_blocks: BasicBlocks per branch.
    multi_scale_output: return every fused branch (else only branch 0).
    train: BatchNorm batch statistics.
  """

  widths: Sequence[int]
  num_blocks: Sequence[int]
  multi_scale_output: bool = True
  train: bool = False
  dtype: Dtype = jnp.float32
  precision: Precision = None

  @nn.compact
  def __call__(self, xs: Sequence[jax.Array]) -> list[jax.Array]:
    n = len(self.widths)
    if len(xs) != n:
      raise ValueError(f"expected {n} branch inputs, got {len(xs)}")
    kw = dict(train=self.train, dtype=self.dtype, precision=self.precision)
    xs = list(xs)
    for i in range(n):
      for b in range(self.num_blocks[i]):
        xs[i] = BasicBlock(
          features=self.widths[i], name=f"branches_{i}_{b}", **kw
        )(xs[i])
    if n == 1:
      return xs
    fused = []
    for i in range(n if self.multi_scale_output else 1):
      y = None
      for j in range(n):
        if j == i:
          t = xs[j]
        elif j > i:
          t = ConvBN(
            self.widths[i], 1, 1, relu=False, name=f"fuse_layers_{i}_{j}", **kw
          )(xs[j])
          t = upsample_nearest(t, 2 ** (j - i))
        else:
          t = xs[j]
          for k in range(i - j):
            last = k == i - j - 1
            t = ConvBN(
              self.widths[i] if last else self.widths[j],
              3,
              2,
              relu=not last,
              name=f"fuse_layers_{i}_{j}_{k}",
              **kw,
            )(t)
        y = t if y is None else y + t
      fused.append(nn.relu(y))
    return fused


class HRNetW48(nn.Module):
  """HybrIK's HRNet-W48 (``PoseHighResolutionNet``, w48.yaml), NHWC.

  Input ``[B, H, W, 3]`` normalised RGB (H, W multiples of 32; 256 x 256 for
  HybrIK). Two ways to call it:

  * ``return_heatmap=False`` (the backbone registry's contract, what
    ``HybrIK(backbone='hrnet_w48')`` gets): the feature-head map
    ``[B, H/32, W/32, 2048]`` (``final_feat_layer`` output, after ReLU).
  * ``return_heatmap=True`` (``HRNetSMPLCam``): a tuple
    ``(heatmap_logits [B, H/4, W/4, 29*64] float32, features [B, H/32,
    W/32, 2048])``.

  Attributes:
    stages: (num_modules, blocks per branch, widths) of stages 2, 3, 4.
    head_planes: Bottleneck planes of the feature head per branch.
    feature_dim: channels of ``final_feat_layer``.
    num_joints, depth_dim: heatmap volume (channels = num_joints*depth_dim).
    dtype: compute dtype (params stay float32).
    precision: ``lax.Precision`` of the convolutions.
  """

  stages: Sequence[Any] = W48_STAGES
  head_planes: Sequence[int] = HEAD_PLANES
  feature_dim: int = FEATURE_DIM
  num_joints: int = NUM_JOINTS
  depth_dim: int = DEPTH_DIM
  dtype: Dtype = jnp.float32
  precision: Precision = None

  @nn.compact
  def __call__(
    self, x: jax.Array, train: bool = False, return_heatmap: bool = False
  ):
    kw = dict(train=train, dtype=self.dtype, precision=self.precision)
    conv = lambda f, k, s, name: torch_conv(  # noqa: E731
      f, k, s, name=name, dtype=self.dtype, precision=self.precision
    )
    bn = lambda name: TorchBatchNorm(  # noqa: E731
      use_running_average=not train, dtype=self.dtype, name=name
    )
    x = x.astype(self.dtype)
    x = nn.relu(bn("bn1")(conv(STEM_WIDTH, 3, 2, "conv1")(x)))  # [B,H/2,W/2,64]
    x = nn.relu(bn("bn2")(conv(STEM_WIDTH, 3, 2, "conv2")(x)))  # [B,H/4,W/4,64]
    for b in range(LAYER1_BLOCKS):
      x = Bottleneck(
        LAYER1_PLANES, downsample=(b == 0), name=f"layer1_{b}", **kw
      )(x)  # [B, H/4, W/4, 256]

    prev_widths = [LAYER1_PLANES * BOTTLENECK_EXPANSION]
    ys = [x]
    for s, (num_modules, num_blocks, widths) in enumerate(self.stages):
      t = s + 1  # transition{t} precedes stage{t + 1}
      xs = []
      for i, width in enumerate(widths):
        if i < len(prev_widths):
          if width != prev_widths[i]:
            # The authors' forward feeds such a transition the LAST branch
            # output (identical for transition1, whose only input is layer1).
            xs.append(
              ConvBN(width, 3, 1, name=f"transition{t}_{i}", **kw)(ys[-1])
            )
          else:
            xs.append(ys[i])
        else:
          h = ys[-1]
          steps = i + 1 - len(prev_widths)
          for k in range(steps):
            out = width if k == steps - 1 else prev_widths[-1]
            h = ConvBN(out, 3, 2, name=f"transition{t}_{i}_{k}", **kw)(h)
          xs.append(h)
      for m in range(num_modules):
        xs = HighResolutionModule(
          widths=tuple(widths),
          num_blocks=tuple(num_blocks),
          multi_scale_output=True,
          name=f"stage{s + 2}_{m}",
          **kw,
        )(xs)
      ys = xs
      prev_widths = list(widths)
    # ys: [B, H/4, W/4, 48], [B, H/8, W/8, 96], [B, H/16, W/16, 192],
    #     [B, H/32, W/32, 384]

    heatmap = None
    if return_heatmap:
      heatmap = PointwiseConv(
        self.num_joints * self.depth_dim,
        dtype=self.dtype,
        precision=self.precision,
        name="final_layer",
      )(ys[0])  # [B, H/4, W/4, J*D] float32

    y = None
    for i, branch in enumerate(ys):
      planes = self.head_planes[i]
      inc = Bottleneck(
        planes,
        downsample=branch.shape[-1] != planes * BOTTLENECK_EXPANSION,
        name=f"incre_modules_{i}",
        **kw,
      )(branch)
      if y is None:
        y = inc
      else:
        y = inc + ConvBN(
          planes * BOTTLENECK_EXPANSION,
          3,
          2,
          conv_bias=True,
          name=f"downsamp_modules_{i - 1}",
          **kw,
        )(y)
    feat = ConvBN(
      self.feature_dim, 1, 1, conv_bias=True, name="final_feat_layer", **kw
    )(y)  # [B, H/32, W/32, 2048]
    if return_heatmap:
      return heatmap, feat
    return feat


class HRNetW48Shallow(HRNetW48):
  """:class:`HRNetW48` with :data:`W48_SHALLOW_STAGES` (not a model-zoo
  network: fast-compiling smoke tests of the HRNet code path)."""

  stages: Sequence[Any] = W48_SHALLOW_STAGES
