"""Construction-time checks of hyperparameters, shared by every paper.

Each raises ``ValueError`` with the argument's name in backticks, which is
what the contract suite matches. Values are Python/NumPy scalars (static
dataclass fields), never traced arrays.
"""

import math
import numbers
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh

__all__ = [
  'as_key',
  'check_callable',
  'check_hyperparameter',
  'check_key',
  'check_learning_rate',
  'check_finite',
  'check_fraction',
  'check_in',
  'check_int',
  'check_interval',
  'check_mesh',
  'check_nonnegative',
  'check_positive',
  'check_probability',
  'check_transform',
  'is_real',
]


def is_real(value: Any) -> bool:
  """A Python or NumPy real number, not a bool (hashable: a static field)."""
  return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_positive(name: str, value: Any, *, allow_none: bool = False) -> None:
  """``value`` is a finite real number > 0 (or ``None`` if allowed)."""
  if value is None and allow_none:
    return
  if not (is_real(value) and math.isfinite(value) and value > 0):
    extra = 'None or ' if allow_none else ''
    raise ValueError(
      f'`{name}` must be {extra}a finite number > 0, got {value!r}'
    )


def check_nonnegative(name: str, value: Any) -> None:
  """``value`` is a finite real number >= 0."""
  if not (is_real(value) and math.isfinite(value) and value >= 0):
    raise ValueError(f'`{name}` must be a finite number >= 0, got {value!r}')


def check_finite(name: str, value: Any, *, allow_none: bool = False) -> None:
  """``value`` is a finite real number of any sign (or ``None`` if allowed)."""
  if value is None and allow_none:
    return
  if not (is_real(value) and math.isfinite(value)):
    extra = 'None or ' if allow_none else ''
    raise ValueError(f'`{name}` must be {extra}a finite number, got {value!r}')


def check_interval(
  name: str,
  value: Any,
  low: float,
  high: float,
  *,
  low_open: bool = False,
  high_open: bool = False,
) -> None:
  """``value`` is a real number in the interval from ``low`` to ``high``.

  The ends are closed unless ``low_open`` / ``high_open``; the message
  writes the interval as ``(0, 1]``, ``[0, 1)``, ...
  """
  ok = is_real(value) and not math.isnan(value)
  if ok:
    ok = (value > low if low_open else value >= low) and (
      value < high if high_open else value <= high
    )
  if not ok:
    interval = (
      f'{"(" if low_open else "["}{low:g}, {high:g}{")" if high_open else "]"}'
    )
    raise ValueError(f'`{name}` must be in {interval}, got {value!r}')


def check_fraction(name: str, value: Any) -> None:
  """``value`` is a real number strictly between 0 and 1 (a test split, a
  failure probability ``delta``, a contraction factor)."""
  check_interval(name, value, 0.0, 1.0, low_open=True, high_open=True)


def check_probability(
  name: str, value: Any, *, allow_zero: bool = False
) -> None:
  """``value`` is a probability in ``(0, 1]`` (``[0, 1]`` if allowed)."""
  check_interval(name, value, 0.0, 1.0, low_open=not allow_zero)


def check_callable(name: str, value: Any, *, allow_none: bool = False) -> None:
  """``value`` is callable (or ``None`` if allowed)."""
  if value is None and allow_none:
    return
  if not callable(value):
    extra = 'None or ' if allow_none else ''
    raise ValueError(f'`{name}` must be {extra}callable, got {value!r}')


def check_transform(name: str, value: Any) -> None:
  """``value`` is an ``optax.GradientTransformation``."""
  if not isinstance(value, optax.GradientTransformation):
    raise ValueError(
      f'`{name}` must be an optax.GradientTransformation, got {value!r}'
    )


def check_int(
  name: str, value: Any, *, minimum: int = 1, allow_none: bool = False
) -> None:
  """``value`` is a Python or NumPy int (not a bool) ``>= minimum``."""
  if value is None and allow_none:
    return
  is_int = isinstance(value, int | np.integer) and not isinstance(value, bool)
  if not is_int or value < minimum:
    extra = 'None or ' if allow_none else ''
    raise ValueError(
      f'`{name}` must be {extra}an int >= {minimum}, got {value!r}'
    )


def check_in(name: str, value: Any, options: tuple[Any, ...]) -> None:
  """``value`` is one of ``options``."""
  if value not in options:
    raise ValueError(f'`{name}` must be one of {options}, got {value!r}')


def check_mesh(mesh: Mesh | None, axis_name: str) -> None:
  """``axis_name`` is a non-empty str and, with a mesh, one of its axes."""
  if not isinstance(axis_name, str) or not axis_name:
    raise ValueError(f'`axis_name` must be a non-empty str, got {axis_name!r}')
  if mesh is not None and axis_name not in mesh.axis_names:
    raise ValueError(
      f'`axis_name` {axis_name!r} is not an axis of `mesh` {mesh.axis_names}'
    )


def _concrete_scalar(value: Any) -> Any:
  """A JAX/NumPy 0-d array as a Python number; tracers and others as given."""
  if isinstance(value, jax.core.Tracer):
    return value
  if isinstance(value, jax.Array | np.ndarray) and value.ndim == 0:
    if _is_real_dtype(value.dtype):
      return value.item()
  return value


def _is_real_dtype(dtype) -> bool:
  # jnp.issubdtype knows bfloat16 and the float8 types as floating.
  return jnp.issubdtype(dtype, jnp.integer) or jnp.issubdtype(
    dtype, jnp.floating
  )


def check_hyperparameter(check, name: str, value: Any, *args, **kwargs) -> None:
  """``check(name, value, ...)`` for an injectable hyperparameter.

  ``optax.inject_hyperparams`` calls a factory with its hyperparameters as
  JAX arrays, traced inside ``jit``: a concrete 0-d array is checked as the
  number it holds, a traced one is accepted as it is (its value is unknown at
  construction). Python and NumPy numbers are checked as usual.
  """
  value = _concrete_scalar(value)
  if isinstance(value, jax.core.Tracer):
    return
  check(name, value, *args, **kwargs)


def check_learning_rate(name: str, value: Any) -> None:
  """A schedule (callable), or an injectable number that is finite and > 0."""
  if callable(value):
    return
  check_hyperparameter(check_positive, name, value)


def check_key(name: str, key: Any, *, allow_seed: bool = False) -> None:
  """One PRNG key: typed (``jax.random.key``) or raw ``uint32[2]``.

  With ``allow_seed`` (a transform's ``key`` argument, as ``optax``'s
  ``noisy_sgd``), an int seed is accepted too, also as the 0-d int array
  ``inject_hyperparams`` makes of it.
  """
  if allow_seed and isinstance(key, numbers.Integral):
    if not isinstance(key, bool):
      return
  dtype = getattr(key, 'dtype', None)
  shape = np.shape(key) if dtype is not None else None
  if dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
    if shape == ():
      return
  elif dtype == np.uint32 and shape == (2,):
    return
  elif allow_seed and dtype is not None and shape == ():
    if np.issubdtype(dtype, np.integer):
      return
  got = f'{dtype}{list(shape)}' if dtype is not None else repr(key)
  seed = 'an int seed or ' if allow_seed else ''
  raise ValueError(
    f'`{name}` must be {seed}one PRNG key from jax.random.key(seed), got {got}'
  )


def as_key(key: Any) -> jax.Array:
  """The typed key of what :func:`check_key` accepts (same bits)."""
  if isinstance(key, numbers.Integral):
    return jax.random.key(int(key))
  if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
    return key
  if np.shape(key) == (2,):  # a raw uint32[2] key
    return jax.random.wrap_key_data(key)
  return jax.random.key(key)  # an int seed as a 0-d array
