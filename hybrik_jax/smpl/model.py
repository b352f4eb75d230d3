"""The SMPL body model as an immutable pytree of arrays."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct


@struct.dataclass
class SMPLModel:
  """SMPL model arrays (metres; +y up in the template, smplx layouts).

  Attributes:
    v_template: [V, 3] rest-pose template vertices.
    shapedirs: [V, 3, NB] shape blend directions (NB = 10 kept betas).
    posedirs: [207, V*3] pose blend directions in smplx's layout: the
      official [V, 3, 207] array reshaped to [V*3, 207] and transposed.
    J_regressor: [24, V] dense joint regressor.
    lbs_weights: [V, 24] skinning weights.
    faces: [F, 3] int32 triangle indices.
    J_regressor_extra: [E, V] optional extra regressor (H36M-17) or None.
    gender: 'neutral' | 'male' | 'female' (static).
  """

  v_template: jax.Array
  shapedirs: jax.Array
  posedirs: jax.Array
  J_regressor: jax.Array
  lbs_weights: jax.Array
  faces: jax.Array
  J_regressor_extra: jax.Array | None = None
  gender: str = struct.field(pytree_node=False, default="neutral")

  @property
  def num_vertices(self) -> int:
    return self.v_template.shape[0]

  @property
  def num_betas(self) -> int:
    return self.shapedirs.shape[-1]

  @property
  def dtype(self):
    return self.v_template.dtype

  def with_extra_regressor(self, regressor) -> SMPLModel:
    """Returns a copy with ``J_regressor_extra`` set ([E, V])."""
    regressor = jnp.asarray(regressor, dtype=self.dtype)
    return self.replace(J_regressor_extra=regressor)
