r"""Normalized LR+GD and the batch-perceptron limit of LR+GD (Tyurin, 2025).

On a linearly separable data set :math:`\{(a_i, y_i)\}_{i=1}^n`,
:math:`y_i \in \{-1, 1\}`, logistic regression with gradient descent
(LR+GD) minimises

.. math::
  f(\theta) = \frac{1}{n} \sum_{i=1}^n \log(1 + e^{-m_i}), \qquad
  m_i = y_i a_i^\top \theta, \qquad
  \nabla f(\theta) = -\frac{1}{n} \sum_{i=1}^n \sigma(-m_i)\, y_i a_i

with :math:`\theta_{t+1} = \theta_t - \gamma \nabla f(\theta_t)`. The paper
shows that as :math:`\gamma \to \infty`, :math:`\theta_t / \gamma \to u_t`,
the iterates of the *batch perceptron*

.. math::
  u_{t+1} = u_t + \frac{1}{n} \sum_{i=1}^n c_i\, y_i a_i, \qquad
  c_i = \mathbb{1}[m_i(u_t) < 0] + \tfrac12 \mathbb{1}[m_i(u_t) = 0]

(:func:`batch_perceptron`; :math:`c_i = \lim_{\gamma\to\infty}
\sigma(-\gamma\, m_i(u_t))`), that a larger :math:`\gamma` gives a higher
logistic loss but faster separation, and that this inherited iteration
complexity is suboptimal. Its fix, **Normalized LR+GD**, takes steps of
fixed length :math:`\gamma` along the negative gradient:

.. math::
  \theta_{t+1} = \theta_t - \gamma\,
    \frac{\nabla f(\theta_t)}{\|\nabla f(\theta_t)\|}

which, by the classic perceptron argument, separates the data within
about :math:`R^2/\mu^2` iterations (:math:`R = \max_i \|a_i\|`,
:math:`\mu` the max margin) whatever :math:`n`, once :math:`\gamma` is
not small: a step of fixed length :math:`\gamma` needs of order
:math:`1/\gamma` more steps when :math:`\gamma \ll R` (measured on the
experiment's synthetic set, :math:`R = 1`: 162, 17 and 2 iterations at
:math:`\gamma = 0.1, 1, 10`, against :math:`R^2/\mu^2 \approx 21`).

This module holds the algorithm: the optax transform
(:func:`normalized_lr_gd`, with the direction
:func:`scale_by_normalized_gradient`), usable on any model and any loss,
data-parallel over an ``axis_name``; and the logistic-regression pieces the
paper's experiments use: :func:`margins`, :func:`logistic_loss`,
:func:`logistic_grad`, :func:`batch_perceptron` and
:func:`first_separation_step`. Data sets live with the experiment
(``jaxopt_papers/experiments/normalized_lr_gd.py``).

**The normalizer.** We could read only the paper's abstract (its method
section was not available to us), which names the method but not its
normalizer. We follow the reading :math:`\nabla f / \|\nabla f\|_2` (the
Euclidean norm of the whole gradient, over every leaf of the pytree): it is
what "normalized" gradient descent usually means, each step then has length
exactly :math:`\gamma`, and the perceptron-style argument (progress of at
least :math:`\gamma \mu / R` per step along the max-margin direction) applies
to it. The other reading we considered, :math:`\gamma \nabla f / f`
(dividing by the loss), behaves worse on the experiment's synthetic set:
from :math:`\theta_0 = 0` it separates after 64, 8, 15 and 103 iterations at
:math:`\gamma = 1, 10, 100, 10^3` and not within 3000 at :math:`10^5`,
against 17, 2, 2, 2, 2 with the norm. If the paper divides by something
else, this module differs from it there.

Deviations and choices (none changes the paper's iteration in exact
arithmetic with ``eps=0``):

* **The norm is computed without under- or overflow**: the gradient is
  first divided by its largest entry :math:`s = \|g\|_\infty`, then
  normalized with ``optax.normalize_by_update_norm`` (which computes
  :math:`g / (\|g\|_2 + \epsilon)`) and ``eps / s``. Past separation
  :math:`\|\nabla f\|` decays like :math:`e^{-\min_i m_i}`, so squaring it
  underflows long before the gradient does (float32: entries below
  :math:`10^{-19}`). The result equals ``optax.normalize_by_update_norm(
  eps=eps)`` up to rounding.
* **A zero gradient gives a zero update** (no NaN), also with ``eps=0``:
  this happens only at an exact stationary point or once every
  :math:`\sigma(-m_i)` has underflowed to 0 (float64: all margins above
  about 745), i.e. long after the data are separated. A NaN or inf
  gradient gives a NaN update (it is not hidden), so
  ``optax.apply_if_finite`` and the run's health checks see it.
* ``eps`` (default 0, the paper's exact normalization) is optax's jitter:
  ``eps > 0`` shortens steps whose gradient norm is comparable to ``eps``.
* **Data parallelism**: with ``axis_name``, the gradient is averaged
  (``jax.lax.pmean``) over that axis *before* the norm is taken, so each
  device holding an equal share of the examples computes the full-batch
  direction (the mean over devices of per-device means is the global mean;
  ``psum`` would give the same direction, but ``pmean`` keeps ``eps`` on
  the scale of the single-device gradient).

References:
  Alexander Tyurin, `From Logistic Regression to the Perceptron Algorithm:
  Exploring Gradient Descent with Large Step Sizes
  <https://arxiv.org/abs/2412.08424>`_, AAAI 2025.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxopt_papers.core import checks

__all__ = [
  'ScaleByNormalizedGradientState',
  'batch_perceptron',
  'first_separation_step',
  'logistic_grad',
  'logistic_loss',
  'margins',
  'normalized_lr_gd',
  'scale_by_normalized_gradient',
]


class ScaleByNormalizedGradientState(NamedTuple):
  """State for :func:`scale_by_normalized_gradient` (it keeps none)."""


def scale_by_normalized_gradient(
  eps: jax.typing.ArrayLike = 0.0, *, axis_name: str | None = None
) -> optax.GradientTransformation:
  r"""The unit direction :math:`g / (\|g\|_2 + \epsilon)` of the gradient.

  With :math:`g` the (``axis_name``-averaged) gradient pytree and
  :math:`\epsilon` = ``eps``, returns :math:`g / (\|g\|_2 + \epsilon)`,
  :math:`\|g\|_2` the Euclidean norm over all leaves; a zero :math:`g`
  gives zeros. Computed as ``optax.normalize_by_update_norm(eps=eps / s)``
  on :math:`g / s`, :math:`s = \|g\|_\infty`, so the norm neither under-
  nor overflows. Each leaf keeps its dtype. :func:`normalized_lr_gd`
  multiplies the direction by :math:`-\gamma`.

  Args:
    eps: :math:`\epsilon \ge 0`, finite, added to the norm (injectable).
      0 (the default) is the paper's exact normalization.
    axis_name: Static. When given, ``update`` must run inside a
      ``jax.shard_map`` / ``vmap`` / ``pmap`` with that axis: the gradient
      is averaged over it (``jax.lax.pmean``) before normalizing.

  Returns:
    An :class:`optax.GradientTransformation` with an empty state.

  Raises:
    ValueError: at construction, for a number ``eps`` that is not finite
      and >= 0, or an ``axis_name`` that is not ``None`` or a non-empty
      str.
  """
  checks.check_hyperparameter(checks.check_nonnegative, 'eps', eps)
  if axis_name is not None:
    checks.check_mesh(None, axis_name)  # a non-empty str

  def init_fn(params):
    del params
    return ScaleByNormalizedGradientState()

  def update_fn(updates, state, params=None):
    del params
    if not jax.tree.leaves(updates):
      return updates, state
    if axis_name is not None:
      updates = jax.lax.pmean(updates, axis_name)
    # s = max |g_i| over the tree; 1 where it is 0 (then g = 0 and the
    # update is 0 / (0 + 1)) or NaN (then g holds a NaN, which propagates).
    s = optax.tree.norm(updates, ord='inf')
    ok = s > 0
    s = jnp.where(ok, s, jnp.ones_like(s))
    scaled = jax.tree.map(lambda g: g / s.astype(g.dtype), updates)
    jitter = jnp.where(ok, jnp.asarray(eps, s.dtype) / s, jnp.ones_like(s))
    unit, _ = optax.normalize_by_update_norm(eps=jitter).update(
      scaled, optax.EmptyState()
    )
    unit = jax.tree.map(lambda u, g: u.astype(g.dtype), unit, updates)
    return unit, state

  return optax.GradientTransformation(init_fn, update_fn)


def normalized_lr_gd(
  learning_rate: optax.ScalarOrSchedule,
  *,
  eps: jax.typing.ArrayLike = 0.0,
  axis_name: str | None = None,
) -> optax.GradientTransformationExtraArgs:
  r"""Normalized LR+GD: steps of length :math:`\gamma` along :math:`-\nabla f`.

  .. math::
    \theta_{t+1} = \theta_t - \gamma_t\,
      \frac{\nabla f(\theta_t)}{\|\nabla f(\theta_t)\|_2 + \epsilon}

  with :math:`\gamma_t` the ``learning_rate`` (the paper's constant step
  size :math:`\gamma`) and :math:`\epsilon` = ``eps`` (0: the paper). The
  paper applies it to the logistic loss (:func:`logistic_grad`); the
  transform takes any gradient pytree. See the module docstring for the
  normalizer we follow and the handling of a zero gradient.

  Args:
    learning_rate: :math:`\gamma`, a finite number > 0 or a schedule
      (injectable; jax arrays are not checked).
    eps: See :func:`scale_by_normalized_gradient` (injectable).
    axis_name: See :func:`scale_by_normalized_gradient` (static).

  Returns:
    ``optax.chain(scale_by_normalized_gradient(eps, axis_name=axis_name),
    optax.scale_by_learning_rate(learning_rate))``. With ``eps > 0`` and no
    ``axis_name`` this equals ``optax.chain(optax.normalize_by_update_norm(
    eps=eps), optax.scale(-learning_rate))`` up to rounding.

  Raises:
    ValueError: at construction, naming the argument, for a number
      ``learning_rate`` that is not finite and > 0, a number ``eps`` that
      is not finite and >= 0, or a bad ``axis_name``.

  Examples:
    >>> import jax, jax.numpy as jnp, optax
    >>> from jaxopt_papers.optim.normalized_lr_gd import normalized_lr_gd
    >>> tx = normalized_lr_gd(0.5)
    >>> params = {'w': jnp.array([3.0, 4.0])}
    >>> updates, _ = tx.update({'w': jnp.array([3.0, 4.0])}, tx.init(params))
    >>> updates['w']
    Array([-0.3, -0.4], dtype=float32)

  References:
    Alexander Tyurin, `From Logistic Regression to the Perceptron
    Algorithm: Exploring Gradient Descent with Large Step Sizes
    <https://arxiv.org/abs/2412.08424>`_, AAAI 2025.
  """
  checks.check_learning_rate('learning_rate', learning_rate)
  return optax.chain(
    scale_by_normalized_gradient(eps, axis_name=axis_name),
    optax.scale_by_learning_rate(learning_rate),
  )


# ------------------------------------------------- logistic regression pieces


def margins(
  theta: jax.Array, features: jax.Array, labels: jax.Array
) -> jax.Array:
  r"""``[n]`` margins :math:`m_i = y_i a_i^\top \theta`.

  Args:
    theta: ``[d]`` weights.
    features: ``[n, d]`` rows :math:`a_i`.
    labels: ``[n]`` labels :math:`y_i \in \{-1, 1\}`.
  """
  return labels * (features @ theta)


def logistic_loss(
  theta: jax.Array, features: jax.Array, labels: jax.Array
) -> jax.Array:
  r""":math:`f(\theta) = \frac1n \sum_i \log(1 + e^{-m_i})`.

  Computed with ``jax.nn.softplus(-m)``, exact for any margin (at
  :math:`m = -10^6` it is :math:`10^6`, not inf).
  """
  return jnp.mean(jax.nn.softplus(-margins(theta, features, labels)))


def logistic_grad(
  theta: jax.Array, features: jax.Array, labels: jax.Array
) -> jax.Array:
  r""":math:`\nabla f(\theta) = -\frac1n \sum_i \sigma(-m_i)\, y_i a_i`.

  Computed with ``jax.nn.sigmoid(-m)`` (no overflow at huge margins;
  exactly :math:`\frac12` at :math:`m_i = 0`). Equals
  ``jax.grad(logistic_loss)``.
  """
  m = margins(theta, features, labels)
  weights = jax.nn.sigmoid(-m) * labels / m.shape[0]
  return -(weights @ features)


def batch_perceptron(
  features: jax.Array,
  labels: jax.Array,
  num_steps: int,
  u0: jax.Array | None = None,
) -> jax.Array:
  r"""The batch perceptron, the :math:`\gamma \to \infty` limit of LR+GD.

  .. math::
    u_{t+1} = u_t + \frac1n \sum_i c_i\, y_i a_i, \qquad
    c_i = \mathbb{1}[m_i(u_t) < 0] + \tfrac12 \mathbb{1}[m_i(u_t) = 0]

  as one ``lax.scan``. From :math:`u_0 = 0` every :math:`c_i = \frac12`.
  LR+GD from :math:`\theta_0 = \gamma u_0` satisfies
  :math:`\theta_t / \gamma \to u_t` as :math:`\gamma \to \infty`.

  Args:
    features: ``[n, d]`` rows :math:`a_i`.
    labels: ``[n]`` labels in :math:`\{-1, 1\}`.
    num_steps: Static int >= 1, steps :math:`T`.
    u0: ``[d]`` start; zeros by default.

  Returns:
    ``[T + 1, d]``: :math:`u_0, \dots, u_T`.

  Raises:
    ValueError: if ``num_steps`` is not an int >= 1.
  """
  checks.check_int('num_steps', num_steps)
  n, d = features.shape
  u0 = jnp.zeros([d], features.dtype) if u0 is None else u0

  def step(u, _):
    m = margins(u, features, labels)
    c = jnp.where(m < 0, 1.0, jnp.where(m == 0, 0.5, 0.0)).astype(u.dtype)
    u_next = u + (c * labels / n) @ features
    return u_next, u_next

  _, us = jax.lax.scan(step, u0, None, length=num_steps)
  return jnp.concatenate([u0[None], us], axis=0)


def first_separation_step(min_margins: jax.Array) -> jax.Array:
  r"""First :math:`t` with :math:`\min_i m_i(\theta_t) > 0`, or -1.

  Args:
    min_margins: ``[T, ...]``: :math:`\min_i m_i(\theta_t)` for
      :math:`t = 0, \dots, T-1` (extra axes, e.g. a sweep over
      :math:`\gamma`, are kept).

  Returns:
    int32 ``[...]``: the first step whose iterate separates the data
    (0 when :math:`\theta_0` already does), -1 where none of the ``T``
    does.
  """
  separated = min_margins > 0
  first = jnp.argmax(separated, axis=0).astype(jnp.int32)
  return jnp.where(jnp.any(separated, axis=0), first, -1)
