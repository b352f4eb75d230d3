"""One data-parallel train step on 8 fake CPU devices vs. the same maths
written without sharding. Run as a subprocess by tests/test_train_step.py
(XLA_FLAGS must be set before JAX starts). Prints one JSON line of errors.
"""

import os
import sys

os.environ["XLA_FLAGS"] = (
  os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
)

import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))

from helpers import (
  FIXTURES,
  golden_train_batch,
  load_synthetic_body,
  recipe_config,
)

from hybrik_jax import builders
from hybrik_jax.model import hybrik as hybrik_model
from hybrik_jax.train import losses
from hybrik_jax.train import state as train_state
from hybrik_jax.train import step as train_step

IMAGE = int(os.environ.get("MD_IMAGE", "64"))
N_DEV = 8


def main():
  assert jax.device_count() == N_DEV, jax.devices()
  body = load_synthetic_body()
  variables = hybrik_model.init_variables(
    jax.random.PRNGKey(0),
    body,
    FIXTURES / "h36m_mean_beta.npy",
    image_size=IMAGE,
  )
  cfg = recipe_config()
  tx, _ = builders.make_optimizer(cfg, steps_per_epoch=100)
  state0 = train_state.TrainState.create(variables, tx, jax.random.PRNGKey(7))

  # A global batch of 16 (2 per device) from the golden loss inputs, with a
  # COCO-like sample (all-zero camera => all-zero skeleton) in it.
  n = 2 * N_DEV
  batch = golden_train_batch(n, IMAGE)
  batch["img"] = (
    batch["img"] + np.linspace(0, 1, n, dtype=np.float32)[:, None, None, None]
  )
  batch["intrinsic_param"][5] = 0.0
  batch["joint_root"][5] = 0.0
  batch["target_smpl_weight"][5] = 0.0

  model = hybrik_model.HybrIK()
  mesh = train_step.make_mesh()
  step = train_step.make_train_step(model, mesh, builders.loss_weights(cfg))
  t = time.time()
  # The step donates its input state: give it a copy.
  new_state, metrics = step(
    train_step.replicate(jax.tree.map(jnp.copy, state0), mesh),
    train_step.shard_batch(batch, mesh),
  )
  jax.block_until_ready(metrics)
  t_sharded = time.time() - t

  # Reference: the same computation, one shard at a time, no collectives.
  shard = n // N_DEV
  step_rng = jax.random.fold_in(state0.rng, state0.step)

  @jax.jit
  def shard_grads(params, b, rng):
    def loss_fn(p):
      out, mut = model.apply(
        {
          "params": p,
          "batch_stats": state0.batch_stats,
          "constants": state0.constants,
        },
        *(b[k] for k in train_step.MODEL_INPUT_KEYS),
        train=True,
        mutable=["batch_stats"],
        rngs={"dropout": rng},
      )
      terms = losses.compute_losses(out, b, builders.loss_weights(cfg))
      return terms["loss"], (terms, mut["batch_stats"])

    return jax.grad(loss_fn, has_aux=True)(params)

  per = []
  for d in range(N_DEV):
    b = {k: v[d * shard : (d + 1) * shard] for k, v in batch.items()}
    per.append(shard_grads(state0.params, b, jax.random.fold_in(step_rng, d)))
  mean = lambda trees: jax.tree.map(lambda *x: sum(x) / len(x), *trees)
  ref_grads = mean([p[0] for p in per])
  ref_terms = mean([p[1][0] for p in per])
  ref_stats = mean([p[1][1] for p in per])
  updates, _ = tx.update(ref_grads, state0.opt_state, state0.params)
  ref_params = optax.apply_updates(state0.params, updates)

  def maxdiff(a, b):
    return float(
      max(
        jnp.max(jnp.abs(x - y))
        for x, y in zip(
          jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
        )
      )
    )

  def median_diff(a, b):
    return float(
      np.median(
        np.concatenate(
          [
            np.abs(np.ravel(x) - np.ravel(y))
            for x, y in zip(
              jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
            )
          ]
        )
      )
    )

  def maxabs(a):
    return float(max(jnp.max(jnp.abs(x)) for x in jax.tree_util.tree_leaves(a)))

  # Adam's first moment after one step is (1 - b1) * grad.
  sharded_grads = jax.tree.map(lambda m: m / 0.1, new_state.opt_state[0].mu)
  out = {
    "loss": float(metrics["loss"]),
    "ref_loss": float(ref_terms["loss"]),
    "terms_diff": maxdiff({k: metrics[k] for k in ref_terms}, ref_terms),
    "grad_diff": maxdiff(sharded_grads, ref_grads),
    "grad_scale": maxabs(ref_grads),
    "batch_stats_diff": maxdiff(new_state.batch_stats, ref_stats),
    # Adam's first step moves every weight by ~lr*sign(grad), so weights
    # whose gradient is ~0 may flip sign: compare the max with 2*lr and
    # the median with float noise.
    "params_diff": maxdiff(new_state.params, ref_params),
    "params_median_diff": median_diff(new_state.params, ref_params),
    "params_moved": maxdiff(new_state.params, state0.params),
    "finite": float(metrics["finite"]),
    "step": int(new_state.step),
    "sharded_step_s": t_sharded,
  }
  print(json.dumps(out))


if __name__ == "__main__":
  main()
