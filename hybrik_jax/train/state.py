"""Training state and optimiser (mmhuman3d: Adam, step decay by epoch)."""

from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp
import optax
from flax import struct


@struct.dataclass
class TrainState:
  """Everything a training step reads and writes; a pytree.

  Attributes:
    step: int32 scalar, number of optimiser updates applied so far.
    params: trainable Flax params ({'backbone', 'head'}).
    batch_stats: BatchNorm running statistics.
    constants: non-trainable arrays (``init_shape`` and the SMPL body model),
      kept in the checkpoint so it is self-contained.
    opt_state: optax state of ``tx``.
    rng: base PRNG key; step ``s`` on device ``d`` uses
      ``fold_in(fold_in(rng, s), d)`` for dropout.
    tx: the optax transformation (static).
  """
  step: jax.Array
  params: Any
  batch_stats: Any
  constants: Any
  opt_state: Any
  rng: jax.Array
  tx: optax.GradientTransformation = struct.field(pytree_node=False)

  @classmethod
  def create(cls, variables: dict, tx: optax.GradientTransformation,
             rng: jax.Array) -> "TrainState":
    params = variables["params"]
    return cls(step=jnp.zeros((), jnp.int32), params=params,
               batch_stats=variables.get("batch_stats", {}),
               constants=variables.get("constants", {}),
               opt_state=tx.init(params), rng=rng, tx=tx)

  @property
  def variables(self) -> dict:
    return {"params": self.params, "batch_stats": self.batch_stats,
            "constants": self.constants}


def step_decay_schedule(base_lr: float, steps_per_epoch: int,
                        decay_epochs: Sequence[int],
                        decay_factor: float) -> optax.Schedule:
  """mmcv ``StepLrUpdaterHook`` by epoch: lr x ``decay_factor`` at each epoch
  in ``decay_epochs`` (e.g. 1e-3 for epochs 0-179, 1e-4 to 239, then 1e-5)."""
  boundaries = {int(e) * int(steps_per_epoch): float(decay_factor)
                for e in decay_epochs}
  return optax.piecewise_constant_schedule(base_lr, boundaries)


def make_optimizer(config, steps_per_epoch: int
                   ) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """PyTorch-equivalent Adam (eps added to sqrt(v_hat)), no clipping."""
  opt = config.optimizer
  schedule = step_decay_schedule(opt.lr, steps_per_epoch,
                                 config.lr_schedule.decay_epochs,
                                 config.lr_schedule.decay_factor)
  if opt.weight_decay:
    # torch Adam's weight_decay is L2 added to the gradient (not AdamW).
    tx = optax.chain(optax.add_decayed_weights(opt.weight_decay),
                     optax.adam(schedule, b1=opt.b1, b2=opt.b2, eps=opt.eps))
  else:
    tx = optax.adam(schedule, b1=opt.b1, b2=opt.b2, eps=opt.eps)
  return tx, schedule
