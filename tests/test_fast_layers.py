"""Layers rewritten for speed compute exactly what the plain versions compute.

* the stem max-pool's custom gradient routes each window's gradient to its
  first maximum in row-major order, as PyTorch's ``max_pool2d`` backward does
  (checked against an explicit loop, with many ties);
* ``PointwiseConv`` (a 1x1 conv as a matmul) equals ``flax.linen.Conv``;
* the convolution whose gradient materialises its operands on CPU
  (``model/convolution.py``) gives the same numbers as
  ``lax.conv_general_dilated``, bit for bit, and stops XLA's duplicated
  residual-stream chains (the transposes' operand counts);
* a training step whose gradients are not finite leaves the state untouched.
"""

import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from hybrik_jax.model import convolution, resnet
from hybrik_jax.model import head as head_lib


def _torch_max_pool_grad(x: np.ndarray, g: np.ndarray) -> np.ndarray:
  """``MaxPool2d(3, 2, padding=1)`` backward by its definition: each output's
  gradient goes to the first maximum of its window (row-major scan, -inf
  padding). x [B, H, W, C], g [B, h, w, C] -> [B, H, W, C]."""
  b, hh, ww, c = x.shape
  _, h, w, _ = g.shape
  gx = np.zeros_like(x, dtype=np.float64)
  for n in range(b):
    for ch in range(c):
      for a in range(h):
        for bb in range(w):
          best, arg = -np.inf, None
          for i in range(3):
            for j in range(3):
              r, s = 2 * a + i - 1, 2 * bb + j - 1
              if 0 <= r < hh and 0 <= s < ww and x[n, r, s, ch] > best:
                best, arg = x[n, r, s, ch], (r, s)
          gx[n, arg[0], arg[1], ch] += g[n, a, bb, ch]
  return gx


@pytest.mark.parametrize(
  "shape", [(2, 8, 6, 3), (1, 10, 12, 2), (2, 7, 9, 3), (1, 2, 2, 1)]
)
def test_max_pool_gradient_is_pytorchs_first_max_rule(shape):
  rng = np.random.default_rng(0)
  # Post-ReLU-like values on a coarse grid: many exact ties, zeros included.
  x = np.maximum(np.round(rng.standard_normal(shape) * 2) / 2, 0.0)
  x[0, 0, :2] = 1.5  # a tie inside the first window
  x = x.astype(np.float32)
  out = resnet.max_pool_3x3_s2(jnp.asarray(x))
  want_out = resnet._reduce_window_max_pool(jnp.asarray(x))  # pylint: disable=protected-access
  np.testing.assert_array_equal(np.asarray(out), np.asarray(want_out))
  g = rng.standard_normal(out.shape).astype(np.float32)
  got = jax.grad(lambda v: jnp.sum(resnet.max_pool_3x3_s2(v) * g))(
    jnp.asarray(x)
  )
  want = _torch_max_pool_grad(x, g)
  # Up to 4 windows may send their gradient to one input: float32 sums.
  np.testing.assert_allclose(np.asarray(got), want, rtol=0, atol=2e-6)
  # Every output's gradient lands somewhere exactly once.
  np.testing.assert_allclose(np.asarray(got).sum(), g.sum(), rtol=1e-5)


def test_max_pool_gradient_under_jit_and_large_shape():
  rng = np.random.default_rng(1)
  x = jnp.asarray(
    np.maximum(rng.standard_normal((2, 32, 32, 4)), 0), jnp.float32
  )
  g = jnp.asarray(rng.standard_normal((2, 16, 16, 4)), jnp.float32)

  def loss(fn):
    return jax.jit(jax.grad(lambda v: jnp.sum(fn(v) * g)))(x)

  fast = loss(resnet.max_pool_3x3_s2)
  ref = loss(resnet._reduce_window_max_pool)  # pylint: disable=protected-access
  np.testing.assert_allclose(
    np.asarray(fast), np.asarray(ref), rtol=0, atol=1e-6
  )


def test_pointwise_conv_equals_flax_conv():
  rng = np.random.default_rng(2)
  x = jnp.asarray(rng.standard_normal((2, 5, 6, 16)), jnp.float32)
  fast = head_lib.PointwiseConv(24)
  ref = nn.Conv(24, (1, 1), padding=((0, 0), (0, 0)), use_bias=True)
  variables = fast.init(jax.random.PRNGKey(0), x)
  params = variables["params"]
  assert params["kernel"].shape == (1, 1, 16, 24)
  assert params["bias"].shape == (24,)
  params = {
    "kernel": jnp.asarray(rng.standard_normal((1, 1, 16, 24)), jnp.float32),
    "bias": jnp.asarray(rng.standard_normal(24), jnp.float32),
  }
  y_fast = fast.apply({"params": params}, x)
  y_ref = ref.apply({"params": params}, x)
  assert y_fast.shape == (2, 5, 6, 24)
  np.testing.assert_allclose(
    np.asarray(y_fast), np.asarray(y_ref), rtol=1e-5, atol=1e-5
  )
  r = jnp.asarray(rng.standard_normal((2, 5, 6, 24)), jnp.float32)
  g_fast = jax.grad(
    lambda p, v: jnp.sum(fast.apply({"params": p}, v) * r), argnums=(0, 1)
  )(params, x)
  g_ref = jax.grad(
    lambda p, v: jnp.sum(ref.apply({"params": p}, v) * r), argnums=(0, 1)
  )(params, x)
  for a, b in zip(jax.tree.leaves(g_fast), jax.tree.leaves(g_ref)):
    np.testing.assert_allclose(
      np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-4
    )


def test_materialise_is_the_identity_bit_for_bit():
  special = [np.nan, -np.nan, np.inf, -np.inf, -0.0, 0.0, 1e-45, -3.5]
  for first in special:  # the predicate reads the first element
    x = np.array([first, *special, 2.0], np.float32).reshape(2, 5)
    got = jax.jit(convolution.materialise)(jnp.asarray(x))
    np.testing.assert_array_equal(
      np.asarray(got).view(np.int32), x.view(np.int32)
    )
  g = jax.grad(lambda v: jnp.sum(convolution.materialise(v) * 3.0))(
    jnp.ones((3, 2))
  )
  np.testing.assert_array_equal(np.asarray(g), np.full((3, 2), 3.0))
  # XLA keeps it as a conditional (a barrier would be removed on CPU).
  hlo = jax.jit(convolution.materialise).lower(jnp.ones((4,))).compile()
  assert "conditional(" in hlo.as_text()


def _residual_chain(conv):
  """Loss of a ResNet-like residual stream: blocks of conv-BN(batch
  statistics)-ReLU-conv-BN plus the stream, then ReLU. Returns f(ws, x)."""

  def bn(y):
    mean = y.mean((0, 1, 2))
    return (y - mean) * lax.rsqrt(y.var((0, 1, 2)) + 1e-5)

  def c(x, w):
    return conv(
      x, w, (1, 1), ((1, 1), (1, 1)), dimension_numbers=("NHWC", "HWIO", "NHWC")
    )

  def loss(ws, x):
    for w1, w2 in ws:
      y = bn(c(jax.nn.relu(bn(c(x, w1))), w2))
      x = jax.nn.relu(y + x)
    return jnp.sum(x * x)

  return loss


def _chain_inputs():
  """Six blocks' weights and a [4, 12, 12, 8] input."""
  rng = np.random.default_rng(0)
  ws = [
    tuple(
      jnp.asarray(0.1 * rng.standard_normal((3, 3, 8, 8)), jnp.float32)
      for _ in range(2)
    )
    for _ in range(6)
  ]
  return ws, jnp.asarray(rng.standard_normal((4, 12, 12, 8)), jnp.float32)


def _max_transpose_operands(fn, *args) -> int:
  hlo = jax.jit(fn).lower(*args).compile().as_text()
  fusions = re.findall(
    r"%transpose_copy_fusion\S* = \S+ fusion\(([^)]*)\)", hlo
  )
  assert fusions, "no transpose fusion: XLA:CPU's layouts changed"
  return max(len(operands.split(",")) for operands in fusions)


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="CPU-only path")
def test_materialised_convolution_gradient_is_exact_and_cuts_chains(
  monkeypatch,
):
  ws, x = _chain_inputs()
  plain = _residual_chain(lax.conv_general_dilated)
  ours = _residual_chain(convolution.conv_general_dilated)
  assert convolution.materialise_gradient_operands()
  value_and_grad = jax.jit(jax.value_and_grad(ours, argnums=(0, 1)))
  want = jax.jit(jax.value_and_grad(plain, argnums=(0, 1)))(ws, x)
  got = value_and_grad(ws, x)
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  # Inference (no gradient) is the plain program: no conditional in it.
  assert "conditional(" not in (jax.jit(ours).lower(ws, x).compile().as_text())
  # XLA:CPU on its own fuses the whole stream into the transposes before the
  # filter gradients (operands grow with depth); materialised, they stop at
  # each convolution.
  chained = _max_transpose_operands(jax.grad(plain), ws, x)
  cut = _max_transpose_operands(jax.grad(ours), ws, x)
  assert cut <= 8 < chained, (cut, chained)
  monkeypatch.setattr(convolution, "MATERIALISE_ON_CPU", False)
  assert _max_transpose_operands(jax.grad(ours), ws, x) == chained


def test_materialised_convolution_forward_mode_equals_lax():
  ws, x = _chain_inputs()
  rng = np.random.default_rng(1)
  tangents = jax.tree.map(
    lambda a: jnp.asarray(rng.standard_normal(a.shape), jnp.float32), (ws, x)
  )
  plain = _residual_chain(lax.conv_general_dilated)
  ours = _residual_chain(convolution.conv_general_dilated)
  want = jax.jit(lambda p, t: jax.jvp(plain, p, t))((ws, x), tangents)
  got = jax.jit(lambda p, t: jax.jvp(ours, p, t))((ws, x), tangents)
  for a, b in zip(got, want):  # lax's own rule: the same sums, bit for bit
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  # Only the weights differentiated (the image's tangent a symbolic zero).
  g = jax.grad(ours)(ws, x)
  want_g = jax.grad(plain)(ws, x)
  for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(want_g)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.slow
def test_non_finite_step_leaves_state_untouched(smpl_model):
  from conftest import TINY_NET_SIZE, golden_train_batch, random_variables

  from hybrik_jax.model import hybrik as hybrik_model
  from hybrik_jax.train import state as train_state
  from hybrik_jax.train import step as train_step

  variables = random_variables(smpl_model)
  from helpers import recipe_config

  from hybrik_jax import builders

  cfg = recipe_config()
  tx, _ = builders.make_optimizer(cfg, 100)
  step = jax.jit(
    train_step.make_per_device_step(
      hybrik_model.HybrIK(dropout_rate=0.0),
      builders.loss_weights(cfg),
      axis_name=None,
    )
  )
  state = train_state.TrainState.create(variables, tx, jax.random.PRNGKey(0))
  batch = golden_train_batch(2, TINY_NET_SIZE)

  good, m_good = step(state, batch)
  assert float(m_good["finite"]) == 1.0
  moved = jax.tree.leaves(
    jax.tree.map(
      lambda a, b: float(jnp.max(jnp.abs(a - b))), good.params, state.params
    )
  )
  assert max(moved) > 0.0

  bad_batch = dict(batch)
  bad_batch["img"] = np.full_like(batch["img"], np.nan)
  bad, m_bad = step(good, bad_batch)
  assert float(m_bad["finite"]) == 0.0
  assert int(bad.step) == int(good.step) + 1
  for name in ("params", "batch_stats", "opt_state"):
    for a, b in zip(
      jax.tree.leaves(getattr(bad, name)), jax.tree.leaves(getattr(good, name))
    ):
      np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
