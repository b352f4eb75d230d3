"""Layers rewritten for speed compute exactly what the plain versions compute.

* the stem max-pool's custom gradient routes each window's gradient to its
  first maximum in row-major order, as PyTorch's ``max_pool2d`` backward does
  (checked against an explicit loop, with many ties);
* ``PointwiseConv`` (a 1x1 conv as a matmul) equals ``flax.linen.Conv``;
* a training step whose gradients are not finite leaves the state untouched.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hybrik_jax.model import head as head_lib
from hybrik_jax.model import resnet


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
