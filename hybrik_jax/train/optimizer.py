"""mmhuman3d's optimiser: PyTorch Adam with mmcv's step decay by epoch
(and the authors' per-parameter gradient clipping for their camera recipe)."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
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


def clip_norm_per_param(max_norm: float) -> optax.GradientTransformation:
  """Each parameter's gradient scaled to L2 norm <= ``max_norm`` on its own.

  The authors' training loop calls ``torch.nn.utils.clip_grad_norm_(param,
  max_norm)`` once per parameter tensor (not over all of them): ``g *
  min(1, max_norm / (|g| + 1e-6))`` for every leaf.
  """

  def update(updates, state, params=None):
    del params

    def clip(g):
      norm = jnp.sqrt(jnp.sum(jnp.square(g)))
      return g * jnp.minimum(max_norm / (norm + 1e-6), 1.0).astype(g.dtype)

    return jax.tree.map(clip, updates), state

  return optax.GradientTransformation(lambda _: optax.EmptyState(), update)


def adam(
  schedule: optax.Schedule,
  b1: float,
  b2: float,
  eps: float,
  weight_decay: float = 0.0,
  clip_per_param: float = 0.0,
) -> optax.GradientTransformation:
  """PyTorch-equivalent Adam (eps added to sqrt(v_hat)).

  ``weight_decay`` is torch Adam's: an L2 term added to the gradient before
  the moments (not AdamW's decoupled decay). ``clip_per_param`` > 0 first
  clips each parameter's gradient norm (:func:`clip_norm_per_param`; the
  authors' camera recipe: 5); 0 = no clipping (mmhuman3d).
  """
  tx = optax.adam(schedule, b1=b1, b2=b2, eps=eps)
  if weight_decay:
    tx = optax.chain(optax.add_decayed_weights(weight_decay), tx)
  if clip_per_param:
    tx = optax.chain(clip_norm_per_param(float(clip_per_param)), tx)
  return tx
