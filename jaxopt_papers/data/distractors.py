r"""A synthetic goal-conditioned task with distractors (codebook testbed).

The CPU stand-in for "find the goal object among other objects" of the
codebook-bottleneck paper (28): the input holds a goal and an observation
in which the goal-relevant latents are mixed with larger, task-irrelevant
distractor latents. A representation is *selective* when the label can be
read from it but the distractors cannot (a linear probe's :math:`R^2`).

Built from a key (no downloads). With ``G = num_goals``, ``d = obs_dim``,
``m = num_distractors``:

* mixing matrices :math:`M_r \in \mathbb R^{G \times d}`,
  :math:`M_d \in \mathbb R^{m \times d}` with i.i.d.
  :math:`N(0, 1/(G + m))` entries, shared by the train and test splits;
* per example: a goal :math:`g` uniform in ``{0..G-1}``, relevant latents
  :math:`z_r \sim N(0, I_G)`, distractors
  :math:`z_d \sim N(0, \sigma_d^2 I_m)` (``distractor_std``
  :math:`\sigma_d`, default 2), and the observation
  :math:`o = z_r M_r + z_d M_d + \epsilon`,
  :math:`\epsilon \sim N(0, \nu^2 I_d)` (``noise_std`` :math:`\nu`);
* input :math:`x = [\mathrm{onehot}(g), o] \in \mathbb R^{G + d}`;
* label: the tertile of :math:`z_r[g]` under :math:`N(0, 1)` (``0`` below
  :math:`\Phi^{-1}(1/3)`, ``2`` above :math:`\Phi^{-1}(2/3)`, else ``1``),
  so the classes are balanced.

Only the goal's relevant latent matters; the other ``G - 1`` relevant
latents and all distractors are nuisance, and the distractors dominate
the observation's variance.

Example:
  >>> task = distractor_task(jax.random.key(0), 2048, 1024)
  >>> task.train.inputs.shape                     # [2048, 68]
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import DTypeLike

from jaxopt_papers.core import checks

__all__ = [
  'TERTILE',
  'DistractorSplit',
  'DistractorTask',
  'distractor_task',
  'sample_split',
]

# Phi^{-1}(2/3): the N(0, 1) tertiles are -TERTILE and TERTILE.
TERTILE = 0.4307272992954576


class DistractorSplit(NamedTuple):
  """One split of :func:`distractor_task` (``n`` examples)."""

  inputs: jax.Array  # [n, G + d]: one-hot goal, then the observation
  labels: jax.Array  # [n] int32 in {0, 1, 2}
  goals: jax.Array  # [n] int32 in {0..G-1}
  relevant: jax.Array  # [n, G] z_r
  distractors: jax.Array  # [n, m] z_d


class DistractorTask(NamedTuple):
  """Train and test splits drawn with the same mixing matrices."""

  train: DistractorSplit
  test: DistractorSplit
  mix_relevant: jax.Array  # [G, d] M_r
  mix_distractors: jax.Array  # [m, d] M_d


def sample_split(
  key: jax.Array,
  n: int,
  mix_relevant: jax.Array,
  mix_distractors: jax.Array,
  *,
  distractor_std: float = 2.0,
  noise_std: float = 0.5,
) -> DistractorSplit:
  """``n`` fresh examples with given mixing matrices (e.g. a task's).

  For training on a fresh batch every step; ``distractor_std`` and
  ``noise_std`` as :func:`distractor_task` (not validated here: the
  function is traced inside training loops).
  """
  mix_r, mix_d = mix_relevant, mix_distractors
  dtype = mix_r.dtype
  num_goals, d = mix_r.shape
  m = mix_d.shape[0]
  k_g, k_z = jax.random.split(key)
  goals = jax.random.randint(k_g, (n,), 0, num_goals)
  # One normal draw for every latent and the noise (fewer RNG calls
  # compile faster): columns [z_r | z_d / distractor_std | eps / noise_std].
  z = jax.random.normal(k_z, (n, num_goals + m + d), dtype)
  z_r = z[:, :num_goals]
  z_d = distractor_std * z[:, num_goals : num_goals + m]
  obs = z_r @ mix_r + z_d @ mix_d + noise_std * z[:, num_goals + m :]
  target = jnp.take_along_axis(z_r, goals[:, None], axis=1)[:, 0]
  labels = (target > -TERTILE).astype(jnp.int32) + (target > TERTILE)
  inputs = jnp.concatenate(
    [jax.nn.one_hot(goals, num_goals, dtype=dtype), obs], axis=1
  )
  return DistractorSplit(inputs, labels.astype(jnp.int32), goals, z_r, z_d)


def distractor_task(
  key: jax.Array,
  num_train: int = 2048,
  num_test: int = 1024,
  *,
  num_goals: int = 4,
  obs_dim: int = 64,
  num_distractors: int = 16,
  distractor_std: float = 2.0,
  noise_std: float = 0.5,
  dtype: DTypeLike = jnp.float32,
) -> DistractorTask:
  """Draws the task (see the module docstring); vmappable over ``key``.

  Args:
    key: PRNG key (mixing matrices and both splits).
    num_train: Training examples (static int >= 1).
    num_test: Test examples (static int >= 1).
    num_goals: ``G``, goals and relevant latents (static int >= 2).
    obs_dim: ``d``, observation width (static int >= 1).
    num_distractors: ``m``, distractor latents (static int >= 1).
    distractor_std: Standard deviation of each distractor (>= 0).
    noise_std: Observation noise standard deviation (>= 0).
    dtype: Floating dtype of the arrays.

  Returns:
    A :class:`DistractorTask`.
  """
  checks.check_int('num_train', num_train)
  checks.check_int('num_test', num_test)
  checks.check_int('num_goals', num_goals, minimum=2)
  checks.check_int('obs_dim', obs_dim)
  checks.check_int('num_distractors', num_distractors)
  checks.check_nonnegative('distractor_std', distractor_std)
  checks.check_nonnegative('noise_std', noise_std)
  k_mix, k_train, k_test = jax.random.split(key, 3)
  scale = (num_goals + num_distractors) ** -0.5
  mix = scale * jax.random.normal(
    k_mix, (num_goals + num_distractors, obs_dim), dtype
  )
  mix_r, mix_d = mix[:num_goals], mix[num_goals:]
  kw = dict(distractor_std=distractor_std, noise_std=noise_std)
  return DistractorTask(
    train=sample_split(k_train, num_train, mix_r, mix_d, **kw),
    test=sample_split(k_test, num_test, mix_r, mix_d, **kw),
    mix_relevant=mix_r,
    mix_distractors=mix_d,
  )
