"""Few-shot digits episodes: shapes, classes, determinism, errors."""

import jax
import numpy as np
import pytest
from sklearn.datasets import load_digits

from jaxopt_papers.data import episodes


@pytest.fixture(scope='module')
def pool():
  return episodes.load_fewshot_digits()


def test_pool_is_novel_digits_and_base_mean(pool):
  data = load_digits()
  x, y = data.data / 16.0, data.target
  assert pool.novel.shape == (5, 174, 64)
  for i, c in enumerate(episodes.NOVEL_CLASSES):
    np.testing.assert_allclose(pool.novel[i], x[y == c][:174], rtol=1e-6)
  np.testing.assert_allclose(
    pool.base_mean, x[y < 5].mean(0), rtol=1e-5, atol=1e-7
  )


def test_episodes_shapes_labels_and_classes(pool):
  tasks = episodes.sample_episodes(
    jax.random.key(0), pool, 6, ways=3, shots=2, queries=4
  )
  assert tasks.support.shape == (6, 3, 2, 64)
  assert tasks.query.shape == (6, 12, 64)
  np.testing.assert_array_equal(
    tasks.query_labels, np.tile(np.repeat(np.arange(3), 4), (6, 1))
  )
  novel = np.asarray(pool.novel)  # no duplicate rows within a class
  for e in range(6):
    classes = []
    for k in range(3):
      imgs = np.concatenate(
        [
          np.asarray(tasks.support[e, k]),
          np.asarray(tasks.query[e, 4 * k : 4 * (k + 1)]),
        ]
      )
      # Every image of episode class k comes from one novel class ...
      match = (imgs[:, None, None] == novel[None]).all(-1)  # [6, 5, 174]
      owners = np.flatnonzero(match.any(-1).all(0))
      assert len(owners) == 1
      classes.append(int(owners[0]))
      # ... and the shots + queries are distinct images of it.
      assert len(np.unique(match[:, owners[0]].argmax(-1))) == len(imgs)
    assert len(set(classes)) == 3  # distinct classes per episode


def test_episodes_follow_the_key(pool):
  kw = dict(ways=3, shots=2, queries=4)  # the shapes above: no recompile
  a = episodes.sample_episodes(jax.random.key(1), pool, 6, **kw)
  b = episodes.sample_episodes(jax.random.key(1), pool, 6, **kw)
  c = episodes.sample_episodes(jax.random.key(2), pool, 6, **kw)
  np.testing.assert_array_equal(a.support, b.support)
  assert not np.array_equal(a.support, c.support)


@pytest.mark.parametrize(
  'kwargs, name',
  [
    ({'ways': 6}, 'ways'),
    ({'shots': 0}, 'shots'),
    ({'queries': 174}, 'queries'),
    ({'num_episodes': 0}, 'num_episodes'),
  ],
)
def test_bad_arguments_raise(pool, kwargs, name):
  args = {'num_episodes': 2, **kwargs}
  with pytest.raises(ValueError, match=name):
    episodes.sample_episodes(
      jax.random.key(0), pool, args.pop('num_episodes'), **args
    )
