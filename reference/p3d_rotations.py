"""Rotation conversions standing in for ``pytorch3d.transforms`` (v0.7.4).

Runs in the reference venv only (needs torch); never imported by
``hybrik_jax``. pytorch3d has no build that installs beside a current CPU
torch, but mmhuman3d 0.11.0 (``mmhuman3d/utils/transforms.py``) uses exactly
these nine pure-torch conversions from it:

  axis_angle_to_matrix, axis_angle_to_quaternion, euler_angles_to_matrix,
  matrix_to_euler_angles, matrix_to_quaternion, matrix_to_rotation_6d,
  quaternion_to_axis_angle, quaternion_to_matrix, rotation_6d_to_matrix

Written for this project (not a copy of pytorch3d); every output is meant to
be bit-identical to pytorch3d v0.7.4 in float32 and float64, which
``tests/fixtures/reference/p3d_v0.7.4_rotations.npz`` (made by
``reference/make_p3d_golden.py``) checks. To stay bit-identical the
arithmetic is done in the same order as v0.7.4 (the same sums, products and
divisions on the same operands); the code around it is free. Conventions
(those of v0.7.4):

* quaternions are real part first, ``(w, x, y, z)``, shape ``(..., 4)``;
  matrices act on column vectors, shape ``(..., 3, 3)``.
* :func:`matrix_to_quaternion` does NOT standardise the sign: of the four
  candidate quaternions it returns the best-conditioned one (largest of
  ``sqrt(1 +- m00 +- m11 +- m22)``, first on ties), so ``w`` may be negative
  (v0.7.6 added ``w >= 0``; mmhuman3d 0.11.0's training used the old rule).
* axis-angle <-> quaternion switch to the Taylor series
  ``sin(t/2)/t ~ 1/2 - t^2/48`` for angles below ``1e-6``.
* :func:`quaternion_to_matrix` accepts non-unit quaternions (it scales by
  ``2 / |q|^2``).

Where v0.7.4 fills masked slices (``x[mask] = ...``, one-hot selection),
this uses ``torch.where`` / ``torch.gather`` with a harmless value in the
unused branch (no 0/0); outputs and gradients are the same, bit for bit
(the fixture holds input gradients too).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
  "axis_angle_to_matrix",
  "axis_angle_to_quaternion",
  "euler_angles_to_matrix",
  "matrix_to_euler_angles",
  "matrix_to_quaternion",
  "matrix_to_rotation_6d",
  "quaternion_to_axis_angle",
  "quaternion_to_matrix",
  "rotation_6d_to_matrix",
]

_AXES = "XYZ"
_SMALL_ANGLE = 1e-6  # below this, sin(t/2)/t uses its Taylor series


def _check_matrix(matrix: torch.Tensor) -> None:
  if matrix.dim() < 2 or matrix.shape[-2:] != (3, 3):
    raise ValueError(f"Invalid rotation matrix shape {tuple(matrix.shape)}.")


def _check_convention(convention: str) -> tuple[int, int, int]:
  """Axis indices of a 3-letter Euler convention such as ``"XYZ"``."""
  if len(convention) != 3:
    raise ValueError("Convention must have 3 letters.")
  for letter in convention:
    if letter not in _AXES:
      raise ValueError(f"Invalid letter {letter} in convention string.")
  a, b, c = (_AXES.index(letter) for letter in convention)
  if b in (a, c):
    raise ValueError(f"Invalid convention {convention}.")
  return a, b, c


# ----------------------------------------------------------------------------
# Quaternions <-> matrices


def quaternion_to_matrix(quaternions: torch.Tensor) -> torch.Tensor:
  """(..., 4) quaternions (any non-zero norm) -> (..., 3, 3) rotations."""
  w, x, y, z = quaternions.unbind(-1)
  s = 2.0 / (quaternions * quaternions).sum(-1)
  rows = (
    (1 - s * (y * y + z * z), s * (x * y - z * w), s * (x * z + y * w)),
    (s * (x * y + z * w), 1 - s * (x * x + z * z), s * (y * z - x * w)),
    (s * (x * z - y * w), s * (y * z + x * w), 1 - s * (x * x + y * y)),
  )
  flat = torch.stack([e for row in rows for e in row], -1)
  return flat.reshape(*quaternions.shape[:-1], 3, 3)


def _relu_sqrt(v: torch.Tensor) -> torch.Tensor:
  """sqrt(max(v, 0)) with a zero gradient wherever v <= 0 (or NaN)."""
  pos = v > 0
  return torch.where(pos, torch.sqrt(torch.where(pos, v, 1.0)), 0.0)


def matrix_to_quaternion(matrix: torch.Tensor) -> torch.Tensor:
  """(..., 3, 3) rotations -> (..., 4) quaternions, sign NOT standardised.

  From the diagonal, ``4 w^2 = 1 + tr``, ``4 x^2 = 1 + m00 - m11 - m22`` (and
  so on); 4 times each product of two components comes from the
  off-diagonal sums/differences. With ``d = 2 |c|`` for the component ``c``
  of largest magnitude, the quaternion is the row of those products for
  ``c`` divided by ``d`` (``d`` floored at 0.1, which never binds for the
  chosen row of a rotation).
  """
  _check_matrix(matrix)
  m = matrix.reshape(*matrix.shape[:-2], 9)
  m00, m01, m02, m10, m11, m12, m20, m21, m22 = m.unbind(-1)
  two_abs = _relu_sqrt(
    torch.stack(
      (
        1.0 + m00 + m11 + m22,
        1.0 + m00 - m11 - m22,
        1.0 - m00 + m11 - m22,
        1.0 - m00 - m11 + m22,
      ),
      -1,
    )
  )  # 2|w|, 2|x|, 2|y|, 2|z|
  # products[..., r, :] = 4 * q_r * (w, x, y, z); the diagonal is (2|q_r|)^2.
  sq = two_abs**2
  products = torch.stack(
    (
      torch.stack((sq[..., 0], m21 - m12, m02 - m20, m10 - m01), -1),
      torch.stack((m21 - m12, sq[..., 1], m10 + m01, m02 + m20), -1),
      torch.stack((m02 - m20, m10 + m01, sq[..., 2], m12 + m21), -1),
      torch.stack((m10 - m01, m20 + m02, m21 + m12, sq[..., 3]), -1),
    ),
    -2,
  )
  best = two_abs.argmax(-1, keepdim=True)  # first maximum on ties
  row = torch.gather(
    products, -2, best[..., None].expand(*best.shape, 4)
  ).squeeze(-2)
  floor = torch.tensor(0.1, dtype=two_abs.dtype, device=two_abs.device)
  denom = 2.0 * torch.gather(two_abs, -1, best).maximum(floor)
  return row / denom


# ----------------------------------------------------------------------------
# Axis-angle <-> quaternions / matrices


def _sin_half_over(half: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
  """sin(t/2) / t for angles t >= 0 given with t/2 (Taylor series below
  1e-6). Both are inputs so that, as in v0.7.4, each gradient reaches
  ``half`` and ``angles`` along the same paths (same summation order)."""
  small = angles.abs() < _SMALL_ANGLE
  exact = torch.sin(half) / torch.where(small, 1.0, angles)
  series = 0.5 - (angles * angles) / 48
  return torch.where(small, series, exact)


def axis_angle_to_quaternion(axis_angle: torch.Tensor) -> torch.Tensor:
  """(..., 3) rotation vectors (angle = norm, radians) -> (..., 4), w >= 0
  for angles up to pi."""
  angles = torch.linalg.vector_norm(axis_angle, dim=-1, keepdim=True)
  half = angles * 0.5
  return torch.cat(
    (torch.cos(half), axis_angle * _sin_half_over(half, angles)), -1
  )


def quaternion_to_axis_angle(quaternions: torch.Tensor) -> torch.Tensor:
  """(..., 4) quaternions -> (..., 3) rotation vectors.

  The angle is ``2 atan2(|xyz|, w)``, in [0, 2 pi] (a quaternion with w < 0
  gives an angle above pi; it is not wrapped)."""
  vec = quaternions[..., 1:]
  half = torch.atan2(
    torch.linalg.vector_norm(vec, dim=-1, keepdim=True), quaternions[..., :1]
  )
  return vec / _sin_half_over(half, 2 * half)


def axis_angle_to_matrix(axis_angle: torch.Tensor) -> torch.Tensor:
  """(..., 3) rotation vectors -> (..., 3, 3), via the quaternion."""
  return quaternion_to_matrix(axis_angle_to_quaternion(axis_angle))


# ----------------------------------------------------------------------------
# Euler angles


def _elementary(axis: int, angle: torch.Tensor) -> torch.Tensor:
  """Rotation by ``angle`` about one coordinate axis: (...) -> (..., 3, 3)."""
  c, s = torch.cos(angle), torch.sin(angle)
  one, zero = torch.ones_like(angle), torch.zeros_like(angle)
  # Row-major entries; the axis' own row/column is (0, .., 1, .., 0), the
  # other two indices (u, v) in cyclic order hold [[c, -s], [s, c]].
  u, v = (axis + 1) % 3, (axis + 2) % 3
  entries = [[zero] * 3 for _ in range(3)]
  entries[axis][axis] = one
  entries[u][u], entries[v][v] = c, c
  entries[u][v], entries[v][u] = -s, s
  flat = torch.stack([e for row in entries for e in row], -1)
  return flat.reshape(*angle.shape, 3, 3)


def euler_angles_to_matrix(
  euler_angles: torch.Tensor, convention: str
) -> torch.Tensor:
  """(..., 3) Euler angles (radians) -> (..., 3, 3) = R_a @ R_b @ R_c for
  ``convention = "abc"`` (intrinsic rotations, first letter outermost)."""
  if euler_angles.dim() == 0 or euler_angles.shape[-1] != 3:
    raise ValueError("Invalid input euler angles.")
  axes = _check_convention(convention)
  r = [_elementary(a, t) for a, t in zip(axes, euler_angles.unbind(-1))]
  return torch.matmul(torch.matmul(r[0], r[1]), r[2])


def _outer_angle(
  axis: int, middle: int, vec: torch.Tensor, last: bool, tait_bryan: bool
) -> torch.Tensor:
  """First (``last=False``, from a column) or third (``last=True``, from a
  row) Euler angle, from the two entries of ``vec`` (..., 3) that hold
  positive multiples of its sine and cosine."""
  nxt, prv = (axis + 1) % 3, (axis + 2) % 3
  # The two entries off the axis' own index; a row holds them in the
  # opposite order to a column.
  a, b = (nxt, prv) if last else (prv, nxt)
  cyclic = (middle - axis) % 3 == 1  # "XY", "YZ", "ZX"
  if last == cyclic:
    return torch.atan2(vec[..., a], vec[..., b])
  if tait_bryan:
    return torch.atan2(-vec[..., b], vec[..., a])
  return torch.atan2(vec[..., b], -vec[..., a])


def matrix_to_euler_angles(
  matrix: torch.Tensor, convention: str
) -> torch.Tensor:
  """(..., 3, 3) rotations -> (..., 3) Euler angles (radians), inverse of
  :func:`euler_angles_to_matrix`: the middle angle from ``asin`` (Tait-Bryan,
  in [-pi/2, pi/2]) or ``acos`` (proper Euler, in [0, pi]) of one entry, the
  outer ones from ``atan2``."""
  first, middle, last = _check_convention(convention)
  _check_matrix(matrix)
  tait_bryan = first != last
  if tait_bryan:
    sign = -1.0 if (first - last) in (-1, 2) else 1.0
    central = torch.asin(matrix[..., first, last] * sign)
  else:
    central = torch.acos(matrix[..., first, first])
  return torch.stack(
    (
      _outer_angle(first, middle, matrix[..., last], False, tait_bryan),
      central,
      _outer_angle(last, middle, matrix[..., first, :], True, tait_bryan),
    ),
    -1,
  )


# ----------------------------------------------------------------------------
# 6D representation (Zhou et al., CVPR 2019): the first two matrix rows.


def rotation_6d_to_matrix(d6: torch.Tensor) -> torch.Tensor:
  """(..., 6) -> (..., 3, 3) by Gram-Schmidt; the rows are b1, b2, b1 x b2."""
  a1, a2 = d6[..., :3], d6[..., 3:]
  b1 = F.normalize(a1, dim=-1)
  b2 = F.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
  return torch.stack((b1, b2, torch.linalg.cross(b1, b2, dim=-1)), -2)


def matrix_to_rotation_6d(matrix: torch.Tensor) -> torch.Tensor:
  """(..., 3, 3) -> (..., 6): the first two rows, a new tensor."""
  return matrix[..., :2, :].reshape(*matrix.shape[:-2], 6).clone()
