"""mmhuman3d's optimiser: PyTorch Adam with mmcv's step decay by epoch."""

from __future__ import annotations

from collections.abc import Sequence

import optax


def step_decay_schedule(
  base_lr: float,
  steps_per_epoch: int,
  decay_epochs: Sequence[int],
  decay_factor: float,
) -> optax.Schedule:
  """mmcv ``StepLrUpdaterHook`` by epoch: lr x ``decay_factor`` at each epoch
  in ``decay_epochs`` (e.g. 1e-3 for epochs 0-179, 1e-4 to 239, then 1e-5)."""
  boundaries = {
    int(e) * int(steps_per_epoch): float(decay_factor) for e in decay_epochs
  }
  return optax.piecewise_constant_schedule(base_lr, boundaries)


def adam(
  schedule: optax.Schedule,
  b1: float,
  b2: float,
  eps: float,
  weight_decay: float = 0.0,
) -> optax.GradientTransformation:
  """PyTorch-equivalent Adam (eps added to sqrt(v_hat)), no clipping.

  ``weight_decay`` is torch Adam's: an L2 term added to the gradient before
  the moments (not AdamW's decoupled decay).
  """
  tx = optax.adam(schedule, b1=b1, b2=b2, eps=eps)
  if weight_decay:
    tx = optax.chain(optax.add_decayed_weights(weight_decay), tx)
  return tx
