"""The synthetic preference games: skew symmetry, Nash, enumeration."""

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_papers.alignment import sppo
from jaxopt_papers.data import preferences


def test_tabular_game_nash_is_unexploitable():
  pref = np.asarray(preferences.tabular_game(jnp.float32), np.float64)
  np.testing.assert_allclose(pref + pref.T, 1.0)
  nash = preferences.TABULAR_NASH
  # Every response wins exactly 1/2 against the Nash policy.
  np.testing.assert_allclose(pref @ nash, 0.5, atol=1e-7)
  assert (
    abs(float(sppo.exploitability(jnp.asarray(nash), jnp.asarray(pref)))) < 1e-7
  )
  # Uniform 1/15, best pure 1/10 (the card's numbers).
  np.testing.assert_allclose(
    sppo.exploitability(jnp.full(3, 1 / 3), pref), 1 / 15, rtol=1e-5
  )
  pure = sppo.exploitability(jnp.eye(3), jnp.asarray(pref)[None])
  np.testing.assert_allclose(pure.min(), 0.1, rtol=1e-5)


def test_task_oracle_is_a_general_preference():
  task = preferences.make_task(
    jax.random.key(0),
    num_prompts=3,
    prompt_length=2,
    response_length=2,
    vocab_size=3,
    dim=3,
  )
  pref = np.asarray(preferences.preference_matrices(task))  # [3, 9, 9]
  ys = np.asarray(preferences.all_responses(3, 2))
  assert ys.shape == (9, 2) and len({tuple(y) for y in ys}) == 9
  np.testing.assert_allclose(pref + pref.transpose(0, 2, 1), 1.0, atol=1e-6)
  np.testing.assert_allclose(
    np.diagonal(pref, axis1=1, axis2=2), 0.5, atol=1e-7
  )
  one = preferences.preference(
    task,
    task.prompts[1],
    jnp.asarray(ys[4]),
    jnp.ones(2),
    jnp.asarray(ys[7]),
    jnp.ones(2),
  )
  np.testing.assert_allclose(one, pref[1, 4, 7], rtol=1e-6)
  # Intransitive: for some prompts no pure response is unexploitable (no
  # Condorcet winner; here prompts 1 and 2, measured 0.17).
  pure = np.max(pref, axis=1) - 0.5  # exploitability of each pure response
  assert (pure.min(-1)[1:] > 0.1).all()
  # Without the skew part it is Bradley-Terry: a pure winner exists.
  bt = task._replace(
    intransitive_scale=jnp.asarray(0.0), transitive_scale=jnp.asarray(1.0)
  )
  pref_bt = np.asarray(preferences.preference_matrices(bt))
  np.testing.assert_allclose(
    (np.max(pref_bt, axis=1) - 0.5).min(-1), 0.0, atol=1e-7
  )
