r"""Adversarial examples: PGD under L-infinity and L2, and FGSM.

Projected gradient descent on the input (Madry, Makelov, Schmidt, Tsipras,
Vladu, ICLR 2018). From the clean input :math:`x_0` (optionally a random
start :math:`x^{(0)} = x_0 + \delta_0`, :math:`\delta_0` uniform in the
ball), each of ``num_steps`` steps is

.. math::
  x^{(k+1)} = \Pi_{[\ell, u]}\Big(\Pi_{B_p(x_0, \epsilon)}\big(x^{(k)}
    \pm \alpha\, s_p(\nabla_x L(\theta, x^{(k)}, y))\big)\Big)

with :math:`s_\infty(g) = \mathrm{sign}(g)` and :math:`s_2(g) = g /
\|g\|_2` (per example), :math:`+` for an untargeted attack (ascend the
loss of the true label ``y``) and :math:`-` for a targeted one (descend the
loss of the target label passed as ``y``). :math:`\Pi_{B_\infty}` clips
each coordinate to :math:`[x_0 - \epsilon, x_0 + \epsilon]`;
:math:`\Pi_{B_2}` rescales :math:`\delta = x - x_0` by
:math:`\min(1, \epsilon/\|\delta\|_2)`; :math:`\Pi_{[\ell, u]}` clips to
the data range (``clip_min``, ``clip_max``). The arguments map as
:math:`\epsilon` = ``epsilon``, :math:`\alpha` = ``step_size``, :math:`p`
= ``norm``. FGSM (Goodfellow, Shlens, Szegedy, ICLR 2015) is one step of
size :math:`\epsilon` without a random start (:func:`fgsm`).

Conventions, chosen so the same functions serve centralized adversarial
training and federated clients (a client's batch inside ``vmap`` or
``jax.shard_map``):

* ``loss_fn(params, x, y) -> scalar`` must be a sum or mean of per-example
  losses (no coupling between examples, e.g. no batch statistics in
  training mode): then :math:`\nabla_x` of the scalar holds each example's
  own input gradient (up to the positive factor of a mean, which neither
  the sign nor the L2 normalization sees). The leading axis of ``x`` is the
  batch; norms are per example, over the other axes.
* The attack is a pure function of ``(loss_fn, params, x, y, key)``; the
  steps are one ``lax.fori_loop``; it jits, vmaps and runs inside
  ``shard_map``. Under ``shard_map`` each shard draws its random start
  from the key it is given: pass a per-shard key (``fold_in`` of the axis
  index) when starts must differ across shards, the same key when they need
  not.
* The result is ``stop_gradient``-ed: adversarial training differentiates
  the loss at the returned input, not through the attack (Madry et al.).
* The input gradient is computed at ``params`` as given (no gradient flows
  to ``params``).

Deviation from common PyTorch code: the L2 random start is uniform in the
ball (Gaussian direction, radius :math:`\epsilon U^{1/d}`), where some
libraries draw a Gaussian and renormalize to a fixed radius.
"""

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxopt_papers.core import checks

__all__ = ['NORMS', 'fgsm', 'pgd']

NORMS = ('linf', 'l2')
_TINY = 1e-12

LossFn = Callable[[Any, jax.Array, jax.Array], jax.Array]


def _per_example_norm(v: jax.Array) -> jax.Array:
  """``[B, 1, ..., 1]`` L2 norms over every axis but the leading one."""
  axes = tuple(range(1, v.ndim))
  return jnp.sqrt(jnp.sum(jnp.square(v), axis=axes, keepdims=True))


def _check(epsilon, step_size, num_steps, norm, clip_min, clip_max) -> None:
  checks.check_nonnegative('epsilon', epsilon)
  checks.check_int('num_steps', num_steps, minimum=0)
  if num_steps:
    checks.check_positive('step_size', step_size)
  checks.check_in('norm', norm, NORMS)
  checks.check_finite('clip_min', clip_min, allow_none=True)
  checks.check_finite('clip_max', clip_max, allow_none=True)
  if clip_min is not None and clip_max is not None and clip_min >= clip_max:
    raise ValueError(
      f'`clip_min` must be < `clip_max`, got {clip_min!r} >= {clip_max!r}'
    )


def _random_start(key, x, epsilon, norm):
  if norm == 'linf':
    return jax.random.uniform(
      key, x.shape, x.dtype, minval=-epsilon, maxval=epsilon
    )
  k_dir, k_rad = jax.random.split(key)
  direction = jax.random.normal(k_dir, x.shape, x.dtype)
  direction = direction / jnp.maximum(_per_example_norm(direction), _TINY)
  dim = max(1, x[0].size)
  radius = jax.random.uniform(
    k_rad, (x.shape[0],) + (1,) * (x.ndim - 1), x.dtype
  ) ** (1.0 / dim)
  return epsilon * radius * direction


def _project(x, x0, epsilon, norm, clip_min, clip_max):
  delta = x - x0
  if norm == 'linf':
    delta = jnp.clip(delta, -epsilon, epsilon)
  else:
    n = _per_example_norm(delta)
    delta = delta * jnp.minimum(1.0, epsilon / jnp.maximum(n, _TINY))
  x = x0 + delta
  if clip_min is not None or clip_max is not None:
    x = jnp.clip(x, clip_min, clip_max)
  return x


def pgd(
  loss_fn: LossFn,
  params: Any,
  x: jax.Array,
  y: Any,
  key: jax.Array | None = None,
  *,
  epsilon: float,
  step_size: float,
  num_steps: int,
  norm: str = 'linf',
  random_start: bool = True,
  clip_min: float | None = 0.0,
  clip_max: float | None = 1.0,
  targeted: bool = False,
) -> jax.Array:
  r"""Projected gradient attack; returns the adversarial inputs.

  Args:
    loss_fn: ``loss_fn(params, x, y) -> scalar``, a sum or mean of
      per-example losses (see the module docstring).
    params: The model's parameters (not differentiated).
    x: ``[B, ...]`` clean inputs :math:`x_0`, floating.
    y: Labels: the true ones (untargeted) or the targets (``targeted``).
    key: PRNG key for the random start; required when ``random_start``.
    epsilon: :math:`\epsilon \ge 0`, the ball's radius (static).
    step_size: :math:`\alpha > 0` (static; unused when ``num_steps=0``).
    num_steps: Static int >= 0; 0 returns the (random) start.
    norm: ``'linf'`` or ``'l2'`` (static).
    random_start: Start uniformly in the ball (Madry et al.) or at
      :math:`x_0`.
    clip_min, clip_max: The data range, or ``None`` for no bound.
    targeted: Descend the loss of ``y`` instead of ascending it.

  Returns:
    ``x_adv`` with ``x``'s shape and dtype, within the ball and the data
    range, under ``stop_gradient``.

  Raises:
    ValueError: naming the argument, for a negative or non-finite
      ``epsilon``, a ``step_size`` that is not > 0, a ``num_steps`` that is
      not an int >= 0, an unknown ``norm``, ``clip_min >= clip_max``, a
      missing ``key`` with ``random_start``, or a non-floating ``x``.
  """
  _check(epsilon, step_size, num_steps, norm, clip_min, clip_max)
  x = jnp.asarray(x)
  if not jnp.issubdtype(x.dtype, jnp.floating) or x.ndim < 1:
    raise ValueError(
      f'`x` must be a floating array with a batch axis, got {x.dtype} '
      f'of shape {x.shape}'
    )
  if random_start:
    if key is None:
      raise ValueError('`key` is required with random_start=True')
    checks.check_key('key', key)
  x0 = jax.lax.stop_gradient(x)
  params = jax.lax.stop_gradient(params)
  sign = -1.0 if targeted else 1.0
  grad_x = jax.grad(loss_fn, argnums=1)

  if random_start:
    start = _random_start(key, x0, epsilon, norm)
    x_adv = _project(x0 + start, x0, epsilon, norm, clip_min, clip_max)
  else:
    x_adv = x0

  def body(_, x_k):
    g = grad_x(params, x_k, y).astype(x_k.dtype)
    if norm == 'linf':
      direction = jnp.sign(g)
    else:
      direction = g / jnp.maximum(_per_example_norm(g), _TINY)
    x_k = x_k + sign * step_size * direction
    return _project(x_k, x0, epsilon, norm, clip_min, clip_max)

  x_adv = jax.lax.fori_loop(0, num_steps, body, x_adv)
  return jax.lax.stop_gradient(x_adv)


def fgsm(
  loss_fn: LossFn,
  params: Any,
  x: jax.Array,
  y: Any,
  *,
  epsilon: float,
  norm: str = 'linf',
  clip_min: float | None = 0.0,
  clip_max: float | None = 1.0,
  targeted: bool = False,
) -> jax.Array:
  r"""FGSM: one step of size :math:`\epsilon` from :math:`x_0`.

  :func:`pgd` with ``num_steps=1``, ``step_size=epsilon`` and no random
  start: :math:`x_0 + \epsilon\,\mathrm{sign}(\nabla_x L)` for ``'linf'``
  (Goodfellow et al.), :math:`x_0 + \epsilon\, g/\|g\|_2` for ``'l2'``
  (the fast gradient method), clipped to the data range. ``epsilon = 0``
  returns the clean inputs.
  """
  checks.check_nonnegative('epsilon', epsilon)
  return pgd(
    loss_fn,
    params,
    x,
    y,
    epsilon=epsilon,
    step_size=epsilon if epsilon > 0 else 1.0,
    num_steps=1,
    norm=norm,
    random_start=False,
    clip_min=clip_min,
    clip_max=clip_max,
    targeted=targeted,
  )
