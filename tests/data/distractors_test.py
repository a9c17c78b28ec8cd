"""Tests for the goal-conditioned task with distractors."""

import jax
import numpy as np
import pytest

from jaxopt_papers.data import distractors


def test_task_shapes_labels_and_mixing():
  task = jax.jit(
    lambda k: distractors.distractor_task(
      k, 3000, 50, num_goals=3, obs_dim=12, num_distractors=5
    )
  )(jax.random.key(0))
  tr = task.train
  assert tr.inputs.shape == (3000, 3 + 12)
  assert tr.distractors.shape == (3000, 5) and tr.relevant.shape == (3000, 3)
  assert task.test.inputs.shape == (50, 15)
  goals = np.asarray(tr.goals)
  np.testing.assert_array_equal(np.asarray(tr.inputs[:, :3]), np.eye(3)[goals])
  # the label is the N(0, 1) tertile of the goal's latent (balanced)
  target = np.asarray(tr.relevant)[np.arange(3000), goals]
  t = distractors.TERTILE
  want = (target > -t).astype(int) + (target > t)
  np.testing.assert_array_equal(tr.labels, want)
  np.testing.assert_allclose(np.bincount(want) / 3000, 1 / 3, atol=0.04)
  np.testing.assert_allclose(np.asarray(tr.distractors).std(), 2.0, rtol=0.05)
  # observation = z_r M_r + z_d M_d + noise (std 0.5)
  obs = np.asarray(tr.inputs[:, 3:])
  clean = np.asarray(tr.relevant) @ np.asarray(task.mix_relevant) + np.asarray(
    tr.distractors
  ) @ np.asarray(task.mix_distractors)
  np.testing.assert_allclose((obs - clean).std(), 0.5, rtol=0.05)


def test_same_key_same_task_and_vmappable():
  f = lambda k: distractors.distractor_task(k, 8, 4, obs_dim=6)
  keys = jax.random.split(jax.random.key(3), 2)
  many = jax.jit(jax.vmap(f))(keys)
  assert many.train.inputs.shape == (2, 8, 4 + 6)
  one = jax.jit(f)(keys[1])
  np.testing.assert_allclose(one.train.inputs, many.train.inputs[1], rtol=1e-6)


@pytest.mark.parametrize(
  'kwargs, name',
  [
    (dict(num_train=0), 'num_train'),
    (dict(num_goals=1), 'num_goals'),
    (dict(distractor_std=-1.0), 'distractor_std'),
    (dict(noise_std=float('nan')), 'noise_std'),
  ],
)
def test_bad_arguments_raise(kwargs, name):
  with pytest.raises(ValueError, match=f'`{name}`'):
    distractors.distractor_task(jax.random.key(0), **kwargs)
