"""Few-shot episodes from scikit-learn's bundled 8x8 digits.

The testbed of the transductive few-shot experiments: the digits 0-4 are
the *base* classes, used only for the mean feature that CL2N subtracts; the
digits 5-9 are the *novel* classes episodes are drawn from. Features are
the raw 64 grey levels divided by 16 (in [0, 1]); no network is trained.

:func:`load_fewshot_digits` keeps, for each novel class, its first
``min count`` (174) images in the dataset's order, so the pool is a dense
``[5, 174, 64]`` array and every episode has static shapes.
:func:`sample_episodes` draws ``E`` N-way K-shot episodes with ``Q`` queries
per class from a key (no NumPy randomness): for each episode a random
choice of ``ways`` novel classes in random order (episode class ``k`` is the
``k``-th drawn), and for each class ``shots + queries`` distinct images.

Example:
  >>> pool = load_fewshot_digits()
  >>> tasks = sample_episodes(jax.random.key(0), pool, 8, ways=5, shots=1,
  ...                         queries=15)
  >>> tasks.support.shape, tasks.query.shape, tasks.query_labels.shape
  ((8, 5, 1, 64), (8, 75, 64), (8, 75))
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike

from jaxopt_papers.core import checks
from jaxopt_papers.fewshot.slk import FewShotTasks

__all__ = [
  'BASE_CLASSES',
  'NOVEL_CLASSES',
  'FewShotPool',
  'load_fewshot_digits',
  'sample_episodes',
]

BASE_CLASSES = (0, 1, 2, 3, 4)
NOVEL_CLASSES = (5, 6, 7, 8, 9)


class FewShotPool(NamedTuple):
  """Novel-class images and the base-class mean feature."""

  novel: jax.Array  # [C, n, d] images of each novel class
  base_mean: jax.Array  # [d] mean of every base-class image


def load_fewshot_digits(dtype: DTypeLike = jnp.float32) -> FewShotPool:
  """The digits as a few-shot pool: novel 5-9, base mean from 0-4."""
  from sklearn.datasets import load_digits  # bundled; no download

  data = load_digits()
  x = np.asarray(data.data, np.float64) / 16.0
  y = np.asarray(data.target)
  base_mean = x[np.isin(y, BASE_CLASSES)].mean(0)
  per_class = [x[y == c] for c in NOVEL_CLASSES]
  n = min(len(p) for p in per_class)
  novel = np.stack([p[:n] for p in per_class])
  return FewShotPool(jnp.asarray(novel, dtype), jnp.asarray(base_mean, dtype))


def sample_episodes(
  key: jax.Array,
  pool: FewShotPool,
  num_episodes: int,
  *,
  ways: int = 5,
  shots: int = 1,
  queries: int = 15,
) -> FewShotTasks:
  """``num_episodes`` tasks drawn from ``pool`` with ``key``.

  Returns:
    :class:`jaxopt_papers.fewshot.slk.FewShotTasks` with ``support [E,
    ways, shots, d]``, ``query [E, ways * queries, d]`` (class-major),
    ``query_labels [E, ways * queries]`` (episode classes ``0 .. ways -
    1``) and the pool's ``base_mean``.

  Raises:
    ValueError: if a count is not a positive int, ``ways`` exceeds the
      novel classes or ``shots + queries`` the images per class.
  """
  checks.check_int('num_episodes', num_episodes)
  checks.check_int('ways', ways)
  checks.check_int('shots', shots)
  checks.check_int('queries', queries)
  num_classes, n, d = pool.novel.shape
  if ways > num_classes:
    raise ValueError(f'`ways` must be <= {num_classes}, got {ways}')
  if shots + queries > n:
    raise ValueError(
      f'`shots` + `queries` must be <= {n} images per class, got '
      f'{shots + queries}'
    )
  checks.check_key('key', key)
  support, query, labels = _sample(
    key, pool.novel, num_episodes, ways, shots, queries
  )
  return FewShotTasks(
    support=support,
    query=query,
    base_mean=pool.base_mean,
    query_labels=labels,
  )


@functools.partial(jax.jit, static_argnums=(2, 3, 4, 5))
def _sample(key, novel, num_episodes, ways, shots, queries):
  num_classes, n, d = novel.shape

  def one(k):
    k_class, k_img = jax.random.split(k)
    classes = jax.random.permutation(k_class, num_classes)[:ways]
    keys = jax.random.split(k_img, ways)
    idx = jax.vmap(lambda kk: jax.random.permutation(kk, n)[: shots + queries])(
      keys
    )  # [ways, shots + queries]
    images = novel[classes[:, None], idx]  # [ways, S + Q, d]
    support = images[:, :shots]
    query = images[:, shots:].reshape(ways * queries, d)
    labels = jnp.repeat(jnp.arange(ways, dtype=jnp.int32), queries)
    return support, query, labels

  return jax.vmap(one)(jax.random.split(key, num_episodes))
