"""Tests for the goal-conditioned gridworld."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxopt_papers.data import gridworld


def test_shortest_path_reaches_the_goal_once():
  env = gridworld.GridWorld(size=5, num_distractors=3)
  # goal 3 is the bottom-right corner: down, down, right, right
  state = env.reset(jax.random.key(0))._replace(goal=jnp.asarray(3))
  assert int(env.shortest_path(state)) == 4
  rewards = []
  for a in (1, 1, 3, 3, 3):
    state, r = env.step(state, a)
    rewards.append(float(r))
  assert rewards == [0.0, 0.0, 0.0, 1.0, 0.0]  # absorbing after the goal
  np.testing.assert_array_equal(state.pos, [4, 4])
  assert bool(state.done)


def test_walls_and_observation():
  env = gridworld.GridWorld(size=3, num_distractors=2, distractor_std=0.0)
  state = env.reset(jax.random.key(1))
  for _ in range(3):  # up, into the wall
    state, _ = env.step(state, 0)
  np.testing.assert_array_equal(state.pos, [0, 1])
  obs = env.observe(state, jax.random.key(2))
  assert obs.shape == (env.obs_dim,) == (4 + 6 + 2,)
  want = np.concatenate(
    [np.eye(4)[int(state.goal)], np.eye(3)[0], np.eye(3)[1], np.zeros(2)]
  )
  np.testing.assert_array_equal(obs, want)


def test_goals_uniform_and_jittable():
  env = gridworld.GridWorld()
  goals = jax.jit(jax.vmap(lambda k: env.reset(k).goal))(
    jax.random.split(jax.random.key(0), 4000)
  )
  np.testing.assert_allclose(np.bincount(goals) / 4000, 0.25, atol=0.03)


@pytest.mark.parametrize(
  'kwargs, name',
  [
    (dict(size=2), 'size'),
    (dict(horizon=0), 'horizon'),
    (dict(num_distractors=-1), 'num_distractors'),
    (dict(distractor_std=-1.0), 'distractor_std'),
  ],
)
def test_bad_arguments_raise(kwargs, name):
  with pytest.raises(ValueError, match=f'`{name}`'):
    gridworld.GridWorld(**kwargs)
