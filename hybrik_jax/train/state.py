"""The training state: everything a train step reads and writes, as a pytree."""

from __future__ import annotations

from typing import Any

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
  def create(
    cls, variables: dict, tx: optax.GradientTransformation, rng: jax.Array
  ) -> TrainState:
    params = variables["params"]
    return cls(
      step=jnp.zeros((), jnp.int32),
      params=params,
      batch_stats=variables.get("batch_stats", {}),
      constants=variables.get("constants", {}),
      opt_state=tx.init(params),
      rng=rng,
      tx=tx,
    )

  @property
  def variables(self) -> dict:
    return {
      "params": self.params,
      "batch_stats": self.batch_stats,
      "constants": self.constants,
    }
