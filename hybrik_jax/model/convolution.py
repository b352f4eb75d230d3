"""The 2-D convolution every hybrik-jax model layer calls.

Forward it is ``lax.conv_general_dilated``, unchanged, and so is every
program that does not differentiate it (inference). On CPU, when it is
differentiated, the convolution's input ``x`` [B, H, W, Cin] and the
output's cotangent ``dy`` [B, H', W', Cout] are *materialised* first (see
:func:`materialise`): each is computed once, in its NHWC layout, into a
buffer of its own, and the gradient convolutions read those. (A custom JVP:
lax's own rule with the operands passed through a conditional, so forward
mode works too and reverse mode transposes it.)

Why: XLA:CPU computes a filter gradient as a convolution over the batch,
laying ``x`` out as [Cin, H, W, B] and ``dy`` as [H, W, B, Cout], and it
fuses the elementwise producers of those operands into the transposes,
duplicating them. A residual stream (``x_n = relu(bn(conv(..)) + x_{n-1})``)
is elementwise all the way back to the start of its stage, so the transpose
before one layer's filter gradient recomputes every block of the stream
before it, reading each block's tensors with a stride of H*W*C: 2.3 ns per
element in mmhuman3d's ResNet-34 (up to 12 operands), 676 ns in HRNet-W48
(256 operands, 51 of them full feature maps; 58% of its train step). With
the operands materialised the chain stops at every convolution.

Values are unchanged: the same operations on the same numbers; only where
XLA may fuse changes. Accelerators keep XLA's own choice
(``MATERIALISE_ON_CPU``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax
from jax.custom_derivatives import SymbolicZero

MATERIALISE_ON_CPU = True


def materialise_gradient_operands() -> bool:
  """Whether convolution gradients materialise their operands (see above)."""
  return MATERIALISE_ON_CPU and jax.default_backend() == "cpu"


def _always_true(x: jax.Array) -> jax.Array:
  """A boolean XLA cannot fold: ``v == v or v != v`` of one element of ``x``
  (true for every float, NaN included)."""
  v = x.reshape(-1)[0]
  return (v == v) | (v != v)  # noqa: PLR0124


def _through(pred: jax.Array, x: jax.Array) -> jax.Array:
  """``x`` through a conditional on ``pred`` (always true): a boundary XLA
  does not fuse across. The never-taken branch differs from the identity so
  that the conditional is not simplified away; both are linear, so JAX can
  transpose it (the cotangent is materialised the same way)."""
  return lax.cond(pred, lambda a: a, jnp.negative, x)


def materialise(x: jax.Array) -> jax.Array:
  """``x``, computed into a buffer of its own: XLA fuses nothing across it.

  ``lax.optimization_barrier`` would say this, but XLA:CPU removes barriers
  before it fuses; a conditional it keeps (see :func:`_through`).
  """
  return _through(_always_true(x), x)


def conv_general_dilated(lhs: jax.Array, rhs: jax.Array, *args, **kwargs):
  """``lax.conv_general_dilated`` (same signature), with the gradient
  described in the module docstring on CPU. Differentiable in both modes
  (``jax.grad``, ``jax.jvp``)."""

  def conv(x, w):
    return lax.conv_general_dilated(x, w, *args, **kwargs)

  if not materialise_gradient_operands():
    return conv(lhs, rhs)

  @jax.custom_jvp
  def f(x, w):
    return conv(x, w)

  def f_jvp(primals, tangents):
    x, w = primals
    dx, dw = tangents
    pred = _always_true(x)
    x = _through(pred, x)  # [B, H, W, Cin]: the filter gradient's operand
    y = conv(x, w)
    # lax's own rule, conv(dx, w) + conv(x, dw), without the zero terms.
    terms = [conv(dx, w)] if not isinstance(dx, SymbolicZero) else []
    if not isinstance(dw, SymbolicZero):
      terms.append(conv(x, dw))
    if not terms:
      return y, SymbolicZero(jax.typeof(y).to_tangent_aval())
    dy = terms[0] if len(terms) == 1 else terms[0] + terms[1]
    # Reverse mode transposes this conditional into the one that
    # materialises the output's cotangent [B, H', W', Cout].
    return y, _through(pred, dy)

  f.defjvp(f_jvp, symbolic_zeros=True)
  return f(lhs, rhs)
