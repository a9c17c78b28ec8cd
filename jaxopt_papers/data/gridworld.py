r"""A goal-conditioned gridworld with distractor features, in pure JAX.

The on-policy RL testbed of the codebook-bottleneck paper (28): a tiny
navigation task ("go to the goal object") whose observation also holds
task-irrelevant random features, like the other objects an embodied agent
sees. Every function is pure and jittable, so whole rollouts run in
``lax.scan`` and batches of environments in ``vmap``.

* The grid is ``size x size``; the agent starts in the centre cell
  ``(size // 2, size // 2)``; the goal is one of the four corners, drawn
  uniformly at :meth:`GridWorld.reset`.
* Actions: ``0`` up (row - 1), ``1`` down, ``2`` left (column - 1),
  ``3`` right; moves into a wall leave the agent in place.
* Reward 1 on the step that reaches the goal, after which the episode is
  done (absorbing, reward 0); 0 otherwise. An episode lasts at most
  ``horizon`` steps, so the return is 1 if the goal is reached in time.
* Observation (:meth:`GridWorld.observe`): ``[onehot(goal, 4),
  onehot(row, size), onehot(column, size), distractors]`` with
  ``num_distractors`` fresh :math:`N(0, \sigma^2)` features per step
  (``distractor_std`` :math:`\sigma`), drawn from the key passed in.

Example:
  >>> env = GridWorld()
  >>> state = env.reset(jax.random.key(0))
  >>> obs = env.observe(state, jax.random.key(1))  # [4 + 2 * 5 + 8]
  >>> state, reward = env.step(state, 3)
"""

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxopt_papers.core import checks

__all__ = ['GridState', 'GridWorld', 'NUM_ACTIONS']

NUM_ACTIONS = 4
# (row, column) change of each action: up, down, left, right.
_MOVES = ((-1, 0), (1, 0), (0, -1), (0, 1))


class GridState(NamedTuple):
  """One environment's state (stack leaves for a batch)."""

  pos: jax.Array  # [2] int32 (row, column)
  goal: jax.Array  # int32 in {0..3}: the corner index
  done: jax.Array  # bool: the goal was reached


@jax.tree_util.register_static
@dataclasses.dataclass(frozen=True, kw_only=True)
class GridWorld:
  """The gridworld (see the module docstring); static and hashable.

  Attributes:
    size: Side of the grid, an int >= 3.
    horizon: Steps per episode (used by rollouts; an int >= 1).
    num_distractors: Random features appended to each observation (>= 0).
    distractor_std: Their standard deviation (>= 0).
  """

  size: int = 5
  horizon: int = 8
  num_distractors: int = 8
  distractor_std: float = 1.0

  def __post_init__(self):
    checks.check_int('size', self.size, minimum=3)
    checks.check_int('horizon', self.horizon)
    checks.check_int('num_distractors', self.num_distractors, minimum=0)
    checks.check_nonnegative('distractor_std', self.distractor_std)

  @property
  def obs_dim(self) -> int:
    return 4 + 2 * self.size + self.num_distractors

  def corners(self) -> jax.Array:
    """``[4, 2]`` goal cells: top-left, top-right, bottom-left, bottom-right."""
    e = self.size - 1
    return jnp.array([[0, 0], [0, e], [e, 0], [e, e]], jnp.int32)

  def reset(self, key: jax.Array) -> GridState:
    """The agent in the centre, a uniformly drawn corner as the goal."""
    c = self.size // 2
    return GridState(
      pos=jnp.array([c, c], jnp.int32),
      goal=jax.random.randint(key, (), 0, 4),
      done=jnp.zeros([], bool),
    )

  def step(self, state: GridState, action: jax.Array):
    """``(next_state, reward)``; a done state stays put with reward 0."""
    move = jnp.asarray(_MOVES, jnp.int32)[action]
    pos = jnp.clip(state.pos + move, 0, self.size - 1)
    pos = jnp.where(state.done, state.pos, pos)
    at_goal = jnp.all(pos == self.corners()[state.goal])
    reward = (at_goal & ~state.done).astype(jnp.float32)
    return GridState(pos, state.goal, state.done | at_goal), reward

  def observe(self, state: GridState, key: jax.Array) -> jax.Array:
    """``[obs_dim]`` float32 observation (fresh distractors from ``key``)."""
    noise = self.distractor_std * jax.random.normal(
      key, (self.num_distractors,)
    )
    return jnp.concatenate(
      [
        jax.nn.one_hot(state.goal, 4),
        jax.nn.one_hot(state.pos[0], self.size),
        jax.nn.one_hot(state.pos[1], self.size),
        noise,
      ]
    )

  def shortest_path(self, state: GridState) -> jax.Array:
    """Moves from ``state.pos`` to the goal (Manhattan distance)."""
    return jnp.sum(jnp.abs(state.pos - self.corners()[state.goal]))
