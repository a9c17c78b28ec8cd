r"""Synthetic preference games for self-play alignment (SPPO, paper 31).

Two testbeds, both defined in code (no downloads):

* **The tabular game** (:func:`tabular_game`): one prompt, three responses,
  the intransitive preference :math:`P = \frac12 + A` with the skew matrix
  :data:`RPS_A` (a biased rock-paper-scissors). Its Nash (von Neumann)
  policy is :data:`TABULAR_NASH` = (0.5, 0.125, 0.375). A tabular policy is
  a ``[num_prompts, 3]`` logit table (:func:`tabular_logits`) and the
  preference oracle reads the matrix (:func:`matrix_preference`).
* **Token sequences** (:class:`PreferenceTask`, :func:`make_task`): prompts
  are ``[L]`` token sequences, responses ``[T]`` token sequences over a
  vocabulary of ``V`` tokens (``V^T`` of them, enumerable for exact
  evaluation with :func:`all_responses` / :func:`preference_matrices`).
  Each response has a feature :math:`\phi(y) = \sum_t m_t E_{t, y_t} \in
  \mathbb{R}^d` and each prompt a skew-symmetric matrix
  :math:`S(x) = s\sum_i (W_{i,x_i} - W_{i,x_i}^\top)` and a direction
  :math:`r(x) = \rho\sum_i R_{i, x_i}`; the preference is

  .. math::
    P(y \succ y' \mid x) = \sigma\big(\phi(y)^\top S(x)\,\phi(y')
      + r(x)^\top(\phi(y) - \phi(y'))\big),

  a general (skew-symmetric-bilinear plus Bradley-Terry) preference:
  :math:`P(y \succ y') + P(y' \succ y) = 1`, :math:`P(y \succ y) = \frac12`,
  intransitive for :math:`s > 0` and Bradley-Terry (transitive) for
  :math:`s = 0`.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_papers.core import checks

__all__ = [
  'RPS_A',
  'TABULAR_NASH',
  'PreferenceTask',
  'all_responses',
  'make_task',
  'matrix_preference',
  'preference',
  'preference_fn',
  'preference_matrices',
  'tabular_game',
  'tabular_logits',
]

RPS_A = np.array([[0.0, 0.3, -0.1], [-0.3, 0.0, 0.4], [0.1, -0.4, 0.0]])
TABULAR_NASH = np.array([0.5, 0.125, 0.375])


def tabular_game(dtype=jnp.float32) -> jax.Array:
  """``[3, 3]`` preference matrix ``P = 1/2 + A`` of the tabular game."""
  return jnp.asarray(0.5 + RPS_A, dtype)


def tabular_logits(
  params: jax.Array, prompt: jax.Array, response: jax.Array
) -> jax.Array:
  """A tabular policy for :class:`~jaxopt_papers.alignment.sppo.SPPO`.

  ``params [num_prompts, N]`` logits; ``prompt = [prompt_id]``; returns the
  prompt's row, broadcast to ``[T, N]`` (every response position sees the
  same distribution; use ``T = 1``).
  """
  row = params[prompt[0]]
  return jnp.broadcast_to(row, (response.shape[0], row.shape[-1]))


def matrix_preference(pref: jax.Array):
  """``preference_fn`` reading ``pref [num_prompts, N, N]`` (``T = 1``)."""
  pref = jnp.asarray(pref)

  def fn(prompt, y_a, m_a, y_b, m_b):
    del m_a, m_b
    return pref[prompt[0], y_a[0], y_b[0]]

  return fn


class PreferenceTask(NamedTuple):
  """Prompts and the parameters of the intransitive preference oracle."""

  prompts: jax.Array  # [n, L] int32
  embed: jax.Array  # [T, V, d] response-token features E
  skew: jax.Array  # [L, V, d, d] W (the skew part is s (W - W^T))
  reward: jax.Array  # [L, V, d] R (the Bradley-Terry direction)
  intransitive_scale: jax.Array  # s, scalar
  transitive_scale: jax.Array  # rho, scalar


def make_task(
  key: jax.Array,
  *,
  num_prompts: int = 8,
  prompt_length: int = 2,
  response_length: int = 3,
  vocab_size: int = 4,
  dim: int = 4,
  intransitive_scale: float = 2.0,
  transitive_scale: float = 0.0,
) -> PreferenceTask:
  """Draws prompts and an oracle (Gaussian ``E``, ``W``, ``R``).

  Prompt tokens are uniform over the ``vocab_size`` tokens; ``E`` has
  entries ``N(0, 1/T)`` (so a feature has unit scale per coordinate),
  ``W`` and ``R`` ``N(0, 1/L)``.
  """
  for name, value in (
    ('num_prompts', num_prompts),
    ('prompt_length', prompt_length),
    ('response_length', response_length),
    ('dim', dim),
  ):
    checks.check_int(name, value)
  checks.check_int('vocab_size', vocab_size, minimum=2)
  checks.check_nonnegative('intransitive_scale', intransitive_scale)
  checks.check_nonnegative('transitive_scale', transitive_scale)
  kp, ke, kw, kr = jax.random.split(key, 4)
  t, v, l_ = response_length, vocab_size, prompt_length
  return PreferenceTask(
    prompts=jax.random.randint(kp, (num_prompts, l_), 0, v, jnp.int32),
    embed=jax.random.normal(ke, (t, v, dim)) / np.sqrt(t),
    skew=jax.random.normal(kw, (l_, v, dim, dim)) / np.sqrt(l_),
    reward=jax.random.normal(kr, (l_, v, dim)) / np.sqrt(l_),
    intransitive_scale=jnp.asarray(intransitive_scale, jnp.float32),
    transitive_scale=jnp.asarray(transitive_scale, jnp.float32),
  )


def _feature(task: PreferenceTask, y: jax.Array, m: jax.Array) -> jax.Array:
  rows = task.embed[jnp.arange(y.shape[0]), y]  # [T, d]
  return jnp.sum(m[:, None].astype(rows.dtype) * rows, axis=0)


def preference(
  task: PreferenceTask,
  prompt: jax.Array,
  y_a: jax.Array,
  m_a: jax.Array,
  y_b: jax.Array,
  m_b: jax.Array,
) -> jax.Array:
  """:math:`P(y_a \\succ y_b \\mid x)` of the task's oracle (a scalar)."""
  pos = jnp.arange(prompt.shape[0])
  w = jnp.sum(task.skew[pos, prompt], axis=0)  # [d, d]
  r = task.transitive_scale * jnp.sum(task.reward[pos, prompt], axis=0)
  fa, fb = _feature(task, y_a, m_a), _feature(task, y_b, m_b)
  # phi_a^T s (W - W^T) phi_b + r^T (phi_a - phi_b), written as a difference
  # of the same two terms so that z(a, b) = -z(b, a) and z(a, a) = 0 exactly.
  z = task.intransitive_scale * (fa @ w @ fb - fb @ w @ fa) + (r @ fa - r @ fb)
  return jax.nn.sigmoid(z)


def preference_fn(task: PreferenceTask):
  """``preference_fn(prompt, y_a, m_a, y_b, m_b)`` closed over ``task``."""

  def fn(prompt, y_a, m_a, y_b, m_b):
    return preference(task, prompt, y_a, m_a, y_b, m_b)

  return fn


def all_responses(vocab_size: int, response_length: int) -> jax.Array:
  """Every response ``[V^T, T]`` in lexicographic order (first token
  slowest)."""
  checks.check_int('vocab_size', vocab_size, minimum=2)
  checks.check_int('response_length', response_length)
  grids = np.meshgrid(*[np.arange(vocab_size)] * response_length, indexing='ij')
  return jnp.asarray(np.stack([g.ravel() for g in grids], -1), jnp.int32)


def preference_matrices(task: PreferenceTask) -> jax.Array:
  """``[n, N, N]`` exact :math:`P(y_i \\succ y_j \\mid x)` over every
  response (no padding), for each prompt."""
  t, v = task.embed.shape[:2]
  return _matrices(task, all_responses(v, t))


@jax.jit
def _matrices(task: PreferenceTask, ys: jax.Array) -> jax.Array:
  ms = jnp.ones_like(ys)

  def one(prompt):
    return jax.vmap(
      lambda ya, ma: jax.vmap(
        lambda yb, mb: preference(task, prompt, ya, ma, yb, mb)
      )(ys, ms)
    )(ys, ms)

  return jax.vmap(one)(task.prompts)
