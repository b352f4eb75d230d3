"""The training step: a pure function (state, batch) -> (state, metrics).

Data parallelism is a per-device SPMD program (``jax.shard_map`` over a 1-D
device mesh, axis ``'data'``), the modern form of the ``pmap`` recipe:

* every device runs the forward/backward on its shard of the global batch,
  so BatchNorm normalises with *per-device* batch statistics, exactly like
  mmhuman3d under DDP (``broadcast_buffers=False``);
* gradients are averaged over devices (DDP's all-reduce mean), then Adam
  updates replicated parameters;
* BN running averages are averaged over devices so that the state stays
  replicated (DDP keeps each GPU's own and saves rank 0's: a documented,
  evaluation-only difference);
* a step whose loss or gradients are not finite leaves the state untouched
  and reports ``finite = 0`` so the loop can stop with the last good state.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from hybrik_jax.train import losses as losses_lib
from hybrik_jax.train.state import TrainState

AXIS = "data"
MODEL_INPUT_KEYS = (
  "img",
  "trans_inv",
  "intrinsic_param",
  "joint_root",
  "depth_factor",
)
TARGET_KEYS = (
  "target_uvd_29",
  "target_weight_29",
  "target_beta",
  "target_smpl_weight",
  "target_theta",
  "target_theta_weight",
  "target_twist",
  "target_twist_weight",
)


@dataclasses.dataclass(frozen=True)
class Task:
  """What a train step feeds the model and scores it with.

  Attributes:
    input_keys: batch keys passed positionally to ``model.apply``.
    target_keys: batch keys handed to ``loss_fn`` as its targets.
    loss_fn: ``(predictions, targets, loss_weights) -> {'loss', 'loss_*'}``
      (scalars; every entry becomes a metric).
  """

  input_keys: tuple[str, ...]
  target_keys: tuple[str, ...]
  loss_fn: Callable[..., dict]


# mmhuman3d's HybrIK (configs/mixed.py): camera inputs + its four losses.
MMHUMAN3D_TASK = Task(MODEL_INPUT_KEYS, TARGET_KEYS, losses_lib.compute_losses)


def _tree_all_finite(tree) -> jax.Array:
  leaves = jax.tree_util.tree_leaves(tree)
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


def make_per_device_step(
  model,
  loss_weights: Mapping[str, float],
  axis_name: str | None = AXIS,
  task: Task = MMHUMAN3D_TASK,
) -> Callable[[TrainState, dict], tuple]:
  """Returns ``step(state, local_batch) -> (state, metrics)``.

  With ``axis_name`` set the function must run inside a mapped context
  (shard_map / vmap with that axis name) and averages across it; with None
  it is the plain single-device step.

  Args:
    model: a ``hybrik_jax.model.HybrIK`` module (or an authors' camera
      model of :mod:`hybrik_jax.model.hybrik_cam` with its ``task``).
    loss_weights: {'beta', 'theta', 'twist', 'uvd'} (``config.loss_weights``).
    axis_name: device axis to average gradients / stats over.
    task: model inputs, targets and loss (default: mmhuman3d's).
  """

  def pmean(x):
    return x if axis_name is None else jax.lax.pmean(x, axis_name)

  def step(state: TrainState, batch: dict) -> tuple[TrainState, dict]:
    rng = jax.random.fold_in(state.rng, state.step)
    if axis_name is not None:
      rng = jax.random.fold_in(rng, jax.lax.axis_index(axis_name))

    def loss_fn(params):
      variables = {
        "params": params,
        "batch_stats": state.batch_stats,
        "constants": state.constants,
      }
      out, mutated = model.apply(
        variables,
        *(batch[k] for k in task.input_keys),
        train=True,
        mutable=["batch_stats"],
        rngs={"dropout": rng},
      )
      terms = task.loss_fn(
        out, {k: batch[k] for k in task.target_keys}, loss_weights
      )
      return terms["loss"], (terms, mutated["batch_stats"])

    grads, (terms, new_batch_stats) = jax.grad(loss_fn, has_aux=True)(
      state.params
    )
    grads = pmean(grads)
    new_batch_stats = pmean(new_batch_stats)
    terms = pmean(terms)
    finite = jnp.logical_and(_tree_all_finite(terms), _tree_all_finite(grads))

    def keep(params, opt_state):
      return params, opt_state, state.batch_stats, jnp.array(False)

    def apply_update(params, opt_state):
      updates, new_opt_state = state.tx.update(grads, opt_state, params)
      new_params = optax.apply_updates(params, updates)
      # A finite gradient can still give a non-finite update (e.g. a NaN
      # learning rate): such a step is dropped like a non-finite gradient.
      ok = _tree_all_finite(new_params)
      return jax.lax.cond(
        ok,
        lambda: (new_params, new_opt_state, new_batch_stats, ok),
        lambda: keep(params, opt_state),
      )

    # A branch rather than jnp.where over params and both Adam moments (three
    # extra full passes over 27.6M weights, ~60 ms in the CPU profile).
    params, opt_state, batch_stats, updated = jax.lax.cond(
      finite, apply_update, keep, state.params, state.opt_state
    )
    finite = jnp.logical_and(finite, updated)
    new_state = state.replace(
      step=state.step + 1,
      params=params,
      batch_stats=batch_stats,
      opt_state=opt_state,
    )
    metrics = dict(terms)
    metrics["grad_norm"] = optax.tree.norm(grads)
    metrics["finite"] = finite.astype(jnp.float32)
    return new_state, metrics

  return step


def make_mesh(devices=None) -> Mesh:
  """A 1-D ``'data'`` mesh over ``devices`` (default: all devices)."""
  devices = jax.devices() if devices is None else devices
  return Mesh(np.asarray(devices), (AXIS,))


def make_train_step(
  model,
  mesh: Mesh,
  loss_weights: Mapping[str, float],
  task: Task = MMHUMAN3D_TASK,
):
  """The jitted, data-parallel train step over ``mesh``.

  Returns ``step(state, batch) -> (state, metrics)`` where ``state`` is
  replicated and every leaf of ``batch`` is a global array of leading size
  ``per_device_batch * mesh.size`` sharded along ``'data'`` (see
  :func:`shard_batch`). ``state`` is donated.
  """
  per_device = make_per_device_step(model, loss_weights, AXIS, task)
  # check_vma=False: the out-specs P() claim the new state and the metrics
  # are replicated, which shard_map cannot prove because they come out of
  # per-device computations. They are replicated by construction: every
  # value that leaves ``per_device`` is a function of pmean-ed quantities
  # (gradients, BN statistics, loss terms) and of the replicated input state
  # only (the per-device dropout key never reaches an output), so all
  # devices hold bit-identical copies. tests/test_train_step.py checks one
  # 8-device step against the unsharded computation.
  sharded = jax.shard_map(
    per_device,
    mesh=mesh,
    in_specs=(P(), P(AXIS)),
    out_specs=(P(), P()),
    check_vma=False,
  )
  return jax.jit(sharded, donate_argnums=(0,))


def replicate(tree: Any, mesh: Mesh) -> Any:
  """Places ``tree`` fully replicated on ``mesh``."""
  return jax.device_put(tree, NamedSharding(mesh, P()))


def shard_batch(local_batch: Mapping[str, Any], mesh: Mesh) -> dict:
  """Host-local numpy batch -> global arrays sharded along ``'data'``.

  On one host this is a device_put; on several hosts each host passes its
  own slice and the global batch is their concatenation in process order.
  """
  sharding = NamedSharding(mesh, P(AXIS))
  return {
    k: jax.make_array_from_process_local_data(sharding, v)
    for k, v in local_batch.items()
  }
