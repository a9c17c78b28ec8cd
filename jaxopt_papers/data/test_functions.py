r"""Global-optimization test functions as pytree callables.

Each function is a frozen dataclass registered as a pytree: the shift
:math:`b` and the optional rotation :math:`R` are array leaves and the shape
constants are static, so a function can be passed as the ``data`` argument of
a jitted solver step, and two functions of the same kind and dimension share
one compilation. A function evaluates one point ``x`` of shape ``[d]`` at
:math:`f(R(x - b))` (or :math:`f(x - b)` without rotation); batch with
``jax.vmap``. Since :math:`f(0)` is the global minimum of both base functions,
the global minimiser is :math:`b` for every shift and rotation.

Example:
  >>> f = rotated(shifted_rastrigin(20), random_rotation(jax.random.key(0), 20))
  >>> jax.vmap(f)(x)          # x: [N, 20] -> [N]
  >>> f(f.minimizer) == f.minimum
"""

import dataclasses
import math

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike, DTypeLike

__all__ = [
  'Ackley',
  'Rastrigin',
  'random_rotation',
  'rotated',
  'shifted_ackley',
  'shifted_rastrigin',
]


def _transform(
  x: jax.Array, shift: jax.Array, rotation: jax.Array | None
) -> jax.Array:
  """Returns ``R (x - b)`` (or ``x - b``), checking shapes at trace time."""
  x = jnp.asarray(x)
  if x.shape != shift.shape:
    raise ValueError(
      f'expected one point of shape {shift.shape}, got shape {x.shape}; '
      'batch with jax.vmap'
    )
  v = x - shift
  if rotation is not None:
    v = rotation @ v
  return v


class _ShiftedMinimum:
  """Properties of a function whose global minimum 0 sits at ``shift``."""

  shift: jax.Array

  @property
  def dim(self) -> int:
    return self.shift.shape[-1]

  @property
  def minimizer(self) -> jax.Array:
    """``[d]`` the global minimiser (the shift)."""
    return self.shift

  @property
  def minimum(self) -> jax.Array:
    """The global minimum value, 0."""
    return jnp.zeros([], self.shift.dtype)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Rastrigin(_ShiftedMinimum):
  r"""Shifted (and optionally rotated) Rastrigin function.

  .. math::
    f(x) = c \sum_{j=1}^d \left[v_j^2 + A\,(1 - \cos 2\pi v_j)\right],
    \qquad v = R(x - b),

  with :math:`c = 1/d` when ``normalize`` else :math:`c = 1`. Global minimum
  :math:`f(b) = 0`; local minima near every integer lattice point of
  :math:`v`.

  * ``amplitude=10, normalize=True``: the CBXpy form
    :math:`\frac1d\sum[(x_j - b_j)^2 - 10\cos 2\pi(x_j - b_j) + 10]`.
  * ``amplitude=2.5, normalize=False``: the form of the official MATLAB code
    of Riedl et al., :math:`\|v\|^2 + 2.5\sum(1 - \cos 2\pi v_j)`.

  The normalisation matters for CBO: the weights are
  :math:`\exp(-\alpha f)`, so dividing ``f`` by ``d`` divides the effective
  ``alpha`` by ``d``.

  Attributes:
    shift: ``[d]`` the global minimiser :math:`b`.
    rotation: ``None`` or a ``[d, d]`` orthogonal matrix :math:`R`.
    amplitude: Static :math:`A` (10 in CBXpy, 2.5 in the MATLAB code).
    normalize: Static; divide by ``d`` (CBXpy) or not (MATLAB).
  """

  shift: jax.Array
  rotation: jax.Array | None = None
  amplitude: float = dataclasses.field(default=10.0, metadata={'static': True})
  normalize: bool = dataclasses.field(default=True, metadata={'static': True})

  def __call__(self, x: ArrayLike) -> jax.Array:
    v = _transform(x, self.shift, self.rotation)
    terms = v * v + self.amplitude * (1.0 - jnp.cos(2.0 * jnp.pi * v))
    total = jnp.sum(terms)
    return total / self.dim if self.normalize else total


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Ackley(_ShiftedMinimum):
  r"""Shifted (and optionally rotated) Ackley function.

  .. math::
    f(x) = -a \exp\Big(-b \sqrt{\tfrac1d \textstyle\sum_j v_j^2}\Big)
      - \exp\Big(\tfrac1d \textstyle\sum_j \cos(c\, v_j)\Big) + a + e,
    \qquad v = R(x - b_{\text{shift}}),

  with the usual :math:`a = 20, b = 0.2, c = 2\pi` (the form of the official
  MATLAB code and of CBXpy). Global minimum :math:`f(b_{\text{shift}}) = 0`
  (up to rounding of :math:`a + e`). Not differentiable at the minimiser
  (:math:`\sqrt{\cdot}` at 0): fine for derivative-free solvers, and the
  gradient there is NaN.

  Attributes:
    shift: ``[d]`` the global minimiser.
    rotation: ``None`` or a ``[d, d]`` orthogonal matrix.
    a: Static depth of the outer well.
    b: Static decay rate of the outer well.
    c: Static frequency of the ripples.
  """

  shift: jax.Array
  rotation: jax.Array | None = None
  a: float = dataclasses.field(default=20.0, metadata={'static': True})
  b: float = dataclasses.field(default=0.2, metadata={'static': True})
  c: float = dataclasses.field(default=2.0 * math.pi, metadata={'static': True})

  def __call__(self, x: ArrayLike) -> jax.Array:
    v = _transform(x, self.shift, self.rotation)
    radius = jnp.sqrt(jnp.mean(v * v))
    ripple = jnp.mean(jnp.cos(self.c * v))
    return (
      -self.a * jnp.exp(-self.b * radius) - jnp.exp(ripple) + self.a + math.e
    )


def _shift_vector(dim: int, shift: ArrayLike, dtype: DTypeLike | None):
  if dim < 1:
    raise ValueError(f'`dim` must be >= 1, got {dim!r}')
  shift = jnp.asarray(shift, dtype)
  if not jnp.issubdtype(shift.dtype, jnp.floating):
    shift = shift.astype(jnp.result_type(float))
  if shift.ndim > 1 or shift.size not in (1, dim):
    raise ValueError(
      f'`shift` must be a scalar or have shape [{dim}], got {shift.shape}'
    )
  return jnp.broadcast_to(shift, (dim,))


def shifted_rastrigin(
  dim: int,
  shift: ArrayLike = 1.0,
  *,
  amplitude: float = 10.0,
  normalize: bool = True,
  dtype: DTypeLike | None = None,
) -> Rastrigin:
  """Returns the Rastrigin function on R^dim, minimised at ``shift``.

  Args:
    dim: Dimension ``d >= 1``.
    shift: Scalar (every coordinate) or ``[d]`` minimiser ``b``.
    amplitude: ``A``; 10 for CBXpy, 2.5 for the official MATLAB code.
    normalize: Divide by ``d`` (CBXpy) or not (MATLAB).
    dtype: Float dtype of the shift; default float dtype if ``None``.
  """
  return Rastrigin(
    shift=_shift_vector(dim, shift, dtype),
    amplitude=float(amplitude),
    normalize=bool(normalize),
  )


def shifted_ackley(
  dim: int, shift: ArrayLike = 1.0, *, dtype: DTypeLike | None = None
) -> Ackley:
  """Returns the Ackley function on R^dim, minimised at ``shift``."""
  return Ackley(shift=_shift_vector(dim, shift, dtype))


def random_rotation(
  key: jax.Array, dim: int, dtype: DTypeLike | None = None
) -> jax.Array:
  """Returns a ``[dim, dim]`` rotation drawn from the Haar measure on SO(d).

  QR of a standard Gaussian matrix, with the signs of ``diag(R)`` moved into
  ``Q`` (which makes ``Q`` Haar on O(d)) and the first column negated when
  ``det Q = -1``.
  """
  if dim < 1:
    raise ValueError(f'`dim` must be >= 1, got {dim!r}')
  g = jax.random.normal(key, (dim, dim), dtype or jnp.result_type(float))
  q, r = jnp.linalg.qr(g)
  q = q * jnp.sign(jnp.diagonal(r))[None, :]
  sign = jnp.sign(jnp.linalg.det(q))
  flip = jnp.ones([dim], q.dtype).at[0].set(sign)
  return q * flip[None, :]


def rotated(fn: Rastrigin | Ackley, rotation: ArrayLike) -> Rastrigin | Ackley:
  """Returns ``fn`` evaluated at ``R (x - b)`` with ``R = rotation``.

  Args:
    fn: A test function of this module (any existing rotation is replaced).
    rotation: ``[d, d]`` orthogonal matrix, e.g. from :func:`random_rotation`.
  """
  rotation = jnp.asarray(rotation, fn.shift.dtype)
  if rotation.shape != (fn.dim, fn.dim):
    raise ValueError(
      f'`rotation` must have shape [{fn.dim}, {fn.dim}], got {rotation.shape}'
    )
  return dataclasses.replace(fn, rotation=rotation)
