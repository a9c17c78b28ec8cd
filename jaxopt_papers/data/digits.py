"""scikit-learn's bundled 8x8 digits, split and sharded from a key.

1797 grey-level 8x8 images of the digits 0-9 (64 features with values 0-16),
shipped inside scikit-learn (``sklearn.datasets.load_digits``: no download).
:func:`load_digits` permutes them with ``jax.random`` (no NumPy randomness),
splits off a test set and standardizes every feature with the training
set's mean and standard deviation (constant features are only centered), or
(``scale='unit'``) divides the grey levels by 16 into [0, 1], the data range
an adversarial attack clips to, or (``scale='sphere'``) then divides every
row by its L2 norm (inputs on the unit sphere, as over-parameterized
convergence theory assumes).
:func:`split_shards` cuts the training set into disjoint equal shards, one
per worker or client (IID; the remainder is dropped).

Example:
  >>> data = load_digits(jax.random.key(0))
  >>> xs, ys = split_shards((data.x_train, data.y_train), 4)
  >>> xs.shape, ys.shape
  ((4, 359, 64), (4, 359))
"""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike

from jaxopt_papers.core import checks

__all__ = [
  'NUM_CLASSES',
  'NUM_FEATURES',
  'SCALES',
  'Digits',
  'load_digits',
  'split_shards',
]

NUM_FEATURES = 64
NUM_CLASSES = 10


SCALES = ('standardize', 'unit', 'sphere')


class Digits(NamedTuple):
  """A train/test split of the digits (features scaled by ``load_digits``)."""

  x_train: jax.Array  # [n_train, 64] float
  y_train: jax.Array  # [n_train] int32 labels in 0..9
  x_test: jax.Array  # [n_test, 64] float
  y_test: jax.Array  # [n_test] int32


def load_digits(
  key: jax.Array,
  *,
  test_fraction: float = 0.2,
  dtype: DTypeLike = jnp.float32,
  scale: str = 'standardize',
) -> Digits:
  """The digits, permuted by ``key``, split and scaled.

  Args:
    key: PRNG key of the permutation (the split is a function of it only).
    test_fraction: Fraction of the 1797 images held out, in [0, 1); the
      test set has ``round(1797 * test_fraction)`` images.
    dtype: Float dtype of the features.
    scale: ``'standardize'`` (each feature by the training set's mean and
      standard deviation), ``'unit'`` (grey levels / 16, in [0, 1]) or
      ``'sphere'`` (``'unit'``, then each row divided by its L2 norm).

  Raises:
    ValueError: if ``test_fraction`` is not in [0, 1) or ``scale`` is not
      one of :data:`SCALES`.
  """
  checks.check_interval(
    'test_fraction', test_fraction, 0.0, 1.0, high_open=True
  )
  checks.check_in('scale', scale, SCALES)
  from sklearn import datasets  # bundled with scikit-learn, no download

  raw = datasets.load_digits()
  x = np.asarray(raw.data, np.float64)
  y = np.asarray(raw.target, np.int32)
  perm = np.asarray(jax.random.permutation(key, x.shape[0]))
  x, y = x[perm], y[perm]
  n_test = round(x.shape[0] * test_fraction)
  n_train = x.shape[0] - n_test
  if scale in ('unit', 'sphere'):
    x = x / 16.0
    if scale == 'sphere':  # no digit image is blank: every norm is > 0
      x = x / np.linalg.norm(x, axis=1, keepdims=True)
  else:
    mean = x[:n_train].mean(axis=0)
    std = x[:n_train].std(axis=0)
    x = (x - mean[None, :]) / np.where(std > 0, std, 1.0)[None, :]
  x = jnp.asarray(x, dtype)
  y = jnp.asarray(y)
  return Digits(x[:n_train], y[:n_train], x[n_train:], y[n_train:])


def split_shards(tree: Any, num_shards: int) -> Any:
  """Cuts every leaf's leading axis into ``num_shards`` disjoint equal shards.

  Shard ``k`` holds rows ``k * m ... (k + 1) * m - 1`` with ``m = n //
  num_shards``; the last ``n % num_shards`` rows are dropped. Returns the
  tree with leaves ``[num_shards, m, ...]``.

  Raises:
    ValueError: if ``num_shards`` is not an int >= 1, the leaves disagree on
      their leading size, or there are fewer rows than shards.
  """
  checks.check_int('num_shards', num_shards)
  sizes = {jnp.shape(x)[0] for x in jax.tree.leaves(tree)}
  if len(sizes) != 1:
    raise ValueError(f'leaves have different leading sizes {sorted(sizes)}')
  (n,) = sizes
  m = n // num_shards
  if m == 0:
    raise ValueError(f'{n} rows cannot fill `num_shards`={num_shards} shards')
  return jax.tree.map(
    lambda x: x[: m * num_shards].reshape(num_shards, m, *x.shape[1:]), tree
  )
