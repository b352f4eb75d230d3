"""bench/profile_ops.py: operations classified and FLOPs counted right.

The profile of each benchmark row (BENCHMARKS.md, "Where the time goes")
rests on two things checked here on small programs with known answers: the
kind each executed XLA operation is put under (forward convolution, input
and filter gradients, dot) and the FLOPs counted from the optimised HLO's
shapes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import profile_ops  # noqa: E402

B, H, CI, CO = 2, 16, 8, 16


def _conv(x, w, stride=1):
  return jax.lax.conv_general_dilated(
    x,
    w,
    (stride, stride),
    ((1, 1), (1, 1)),
    dimension_numbers=("NHWC", "HWIO", "NHWC"),
  )


def _profile(fn, *args):
  fn = jax.jit(fn)
  kinds, traced_ms, top = profile_ops.profile(
    fn, list(args), lambda: fn(*args), calls=1
  )
  return kinds, traced_ms, top


@pytest.fixture(scope="module")
def arrays():
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(B, H, H, CI)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(3, 3, CI, CO)), jnp.float32)
  return x, w


def test_forward_convolution_and_dot_flops(arrays):
  x, w = arrays
  m = jnp.ones((CO, 32), jnp.float32)

  def fn(x, w, m):
    y = jax.nn.relu(_conv(x, w))  # [B, H, H, CO]
    return y.reshape(-1, CO) @ m  # [B*H*H, 32]

  kinds, traced_ms, top = _profile(fn, x, w, m)
  conv_flops = 2 * B * H * H * CO * 9 * CI
  dot_flops = 2 * B * H * H * CO * 32
  assert kinds["conv forward"][1] == pytest.approx(conv_flops / 1e9)
  assert kinds["dot"][1] == pytest.approx(dot_flops / 1e9)
  assert "conv filter gradient" not in kinds
  assert traced_ms > 0
  assert all(ms >= 0 for ms, _ in kinds.values())
  assert {kind for _, _, kind, _ in top} <= set(profile_ops.KINDS)


@pytest.mark.parametrize("stride", [1, 2])
def test_gradients_are_split_into_input_and_filter(arrays, stride):
  x, w = arrays

  def loss(x, w):
    return jnp.sum(_conv(x, w, stride) ** 2)

  kinds, _, _ = _profile(jax.grad(loss, argnums=(0, 1)), x, w)
  out = H // stride
  flops = 2 * B * out * out * CO * 9 * CI / 1e9  # each of the three convs
  assert kinds["conv forward"][1] == pytest.approx(flops)
  assert kinds["conv filter gradient"][1] == pytest.approx(flops)
  # The input gradient of a strided convolution runs over the dilated
  # output gradient: XLA counts the zeros it multiplies.
  assert kinds["conv input gradient"][1] >= flops * (1 - 1e-6)


def test_unknown_row_is_refused():
  with pytest.raises(ValueError, match="unknown row"):
    profile_ops.row_program("infer/x")
