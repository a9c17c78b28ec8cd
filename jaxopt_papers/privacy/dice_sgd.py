r"""DiceSGD: differentially private SGD with clipped error feedback.

DP-SGD with per-example clipping (DPSGD-GC) moves along the mean of the
*clipped* per-example gradients, a biased direction: with a clipping
threshold below the typical gradient norm it converges to a point that is
not a stationary point of the loss, whatever the step count. DiceSGD keeps
the clipping error :math:`e` (the mean of :math:`g_i - \operatorname{clip}
(g_i, C_1)`) in a hidden buffer and feeds it back, clipped at a second
threshold :math:`C_2`, so the bias is compensated over time while every
released update still has bounded sensitivity.

:func:`scale_by_dice` takes *per-example* gradients with a leading batch
axis (from ``jax.vmap(jax.grad(loss), in_axes=(None, 0))``), like
:func:`optax.contrib.differentially_private_aggregate`, and returns the
noisy privatized direction; :func:`dice_sgd` and :func:`dice_adam` chain it
with SGD and Adam (the paper's Algorithms 2 and 3).

Privacy statement. The protected unit is one example (one row of the
training set); neighbouring datasets differ by adding or removing one row
(the relation of the Poisson-subsampled Gaussian mechanism that
:mod:`jaxopt_papers.privacy.accounting` accounts for), and :math:`\delta`
is the accountant's. What is released is the sequence of parameters (every
update); the error buffer :math:`e` is data-dependent *hidden* state: never
log, export or publish it (it is in the optimizer state, so a checkpoint of
the state is as sensitive as the data). The accountant of this project
accounts for the Gaussian mechanism of DP-SGD only. DiceSGD's guarantee
comes from the paper's algorithm-specific Rényi-DP analysis; the authors'
code turns it into the rule "DiceSGD with the noise of DP-SGD inflated by
:math:`\sqrt{1 + 2 C_2 / C_1}` (both in sum units) has DP-SGD's (ε, δ)",
which :func:`dice_noise_multiplier` computes and ``variant='official'``
applies. This module does not re-derive that analysis (the authors' README
lists an update of the noise calculation as a to-do).

References:
  Zhang, Bu, Wu, Hong, `Differentially Private SGD Without Clipping Bias:
  An Error-Feedback Approach <https://arxiv.org/abs/2311.14632>`_, ICLR 2024.
"""

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxopt_papers.core import checks

__all__ = [
  'DiceState',
  'dice_adam',
  'dice_noise_multiplier',
  'dice_sgd',
  'scale_by_dice',
]

_VARIANTS = ('paper', 'official')
# The authors' code adds this to the error norm before dividing by it.
_OFFICIAL_NORM_EPS = 1e-6


class DiceState(NamedTuple):
  """State for :func:`scale_by_dice`.

  ``error`` is data-dependent hidden state (see the module's privacy
  statement): keep it out of logs and published checkpoints.
  """

  count: jax.Array  # shape=(), int32: steps taken
  # Typed PRNG key. As in optax.contrib.differentially_private_aggregate,
  # each step splits it into a new key (stored) and one key per leaf.
  rng_key: jax.Array
  # e_t, the clipping-error buffer: params-shaped, the params' dtype. Mean
  # units (one step's direction) for variant='paper', sum units (times the
  # batch size) for variant='official'.
  error: optax.Updates


def dice_noise_multiplier(
  dpsgd_noise_multiplier: float,
  l2_norm_clip: float,
  error_clip: float,
  *,
  batch_size: float = 1.0,
) -> float:
  r"""The authors' calibration of DiceSGD's noise from DP-SGD's.

  For a DP-SGD noise multiplier :math:`\sigma` (noise std on the sum of
  clipped per-example gradients :math:`\sigma C_1`) that gives (ε, δ) at a
  sampling rate and step count (e.g. from
  :func:`jaxopt_papers.privacy.accounting.calibrate_noise`), the authors'
  code gives DiceSGD the noise std :math:`\sigma C_1 \sqrt{1 + 2 C_2^{sum}
  / C_1}` on the sum, where :math:`C_2^{sum}` is the error threshold in sum
  units. This returns the multiplier to pass as ``noise_multiplier`` to
  ``variant='paper'`` (whose ``error_clip`` is in mean units, so
  :math:`C_2^{sum} = B\,C_2` with ``batch_size`` :math:`B`, the divisor of
  the sum): :math:`\sigma \sqrt{1 + 2 B C_2 / C_1}`. With the default
  ``batch_size=1`` it is the factor ``variant='official'`` applies itself.

  The rule is the authors' (their README lists an update of the DP noise
  calculation as a to-do); the project's accountant does not verify it.

  Raises:
    ValueError: naming the argument, for a negative or non-finite
      ``dpsgd_noise_multiplier`` or ``error_clip``, or a non-positive
      ``l2_norm_clip`` or ``batch_size``.
  """
  checks.check_nonnegative('dpsgd_noise_multiplier', dpsgd_noise_multiplier)
  checks.check_positive('l2_norm_clip', l2_norm_clip)
  checks.check_nonnegative('error_clip', error_clip)
  checks.check_positive('batch_size', batch_size)
  ratio = batch_size * error_clip / l2_norm_clip
  return float(dpsgd_noise_multiplier * math.sqrt(1.0 + 2.0 * ratio))


def _compute_dtype(dtype):
  return jnp.promote_types(dtype, jnp.float32)


def _batch_size(leaves) -> int:
  """The common leading (batch) size of the per-example gradients."""
  sizes = {jnp.shape(x)[0] if jnp.ndim(x) else None for x in leaves}
  if None in sizes or len(sizes) != 1:
    shapes = [jnp.shape(x) for x in leaves]
    raise ValueError(
      'scale_by_dice expects per-example gradients: every leaf of `updates` '
      f'needs the same leading batch axis, got leaf shapes {shapes}'
    )
  return sizes.pop()


def _broadcast(v: jax.Array, x: jax.Array) -> jax.Array:
  """``v`` of shape ``[B]`` as ``[B, 1, ..., 1]`` against ``x``."""
  return v.reshape(v.shape + (1,) * (x.ndim - 1))


def scale_by_dice(
  l2_norm_clip: jax.typing.ArrayLike,
  error_clip: jax.typing.ArrayLike,
  noise_multiplier: jax.typing.ArrayLike,
  *,
  key: jax.Array | int = 0,
  variant: str = 'paper',
  expected_batch_size: float | None = None,
  axis_name: str | None = None,
) -> optax.GradientTransformationExtraArgs:
  r"""Clipped, error-fed-back, noised aggregate of per-example gradients.

  Let :math:`g_i` be the per-example gradients of a batch (the leading axis
  of ``updates``, rows with ``example_mask`` false dropped),
  :math:`\operatorname{clip}(v, C) = v \min(1, C / \|v\|)` with the global
  norm over the whole pytree, :math:`C_1, C_2, \sigma` the arguments
  ``l2_norm_clip``, ``error_clip``, ``noise_multiplier`` and :math:`B` the
  divisor (``expected_batch_size``, or the number of rows). With
  ``variant='paper'`` (the paper's Algorithm 2, mean units), at step
  :math:`t`:

  .. math::
    \begin{align*}
      c_t &= \textstyle\sum_i \operatorname{clip}(g_i, C_1), \qquad
        u_t = \textstyle\sum_i g_i \\
      v_t &= c_t / B + \operatorname{clip}(e_t, C_2) \\
      \text{output} &= v_t + w_t, \qquad
        w_t \sim \mathcal{N}\bigl(0, (\sigma C_1 / B)^2 I\bigr) \\
      e_{t+1} &= e_t + (u_t - c_t) / B - \operatorname{clip}(e_t, C_2),
        \qquad e_0 = 0
    \end{align*}

  (the noise is not fed back). :func:`dice_sgd` then steps
  :math:`\theta_{t+1} = \theta_t - \eta(v_t + w_t)`. The noise is drawn on
  the sum and divided by :math:`B`, exactly as
  :func:`optax.contrib.differentially_private_aggregate` does: with
  :math:`C_2 = 0` the output equals that transform's for the same key, bit
  for bit (DP-SGD with clipping).

  ``variant='official'`` follows the authors' released code
  (``PrivacyEngine_Dice``): the buffer lives in sum units, ``error_clip``
  :math:`C_2` is a sum-units threshold (the code's ``error_max_grad_norm``
  times ``max_grad_norm``), and with :math:`r = C_2 / (\|e_t\| + 10^{-6})`,
  :math:`a = \min(r, 1)`:

  .. math::
    \begin{align*}
      \text{output} &= \bigl(c_t + a\,e_t + \sigma C_1
        \sqrt{1 + 2 C_2 / C_1}\; z_t\bigr) / B, \qquad z_t \sim
        \mathcal{N}(0, I) \\
      e_{t+1} &= \min(r, 1 - a)\, e_t + (u_t - c_t)
    \end{align*}

  The kept fraction :math:`\min(r, 1 - a)` equals the paper's :math:`1 - a`
  while :math:`\|e\| \le 2 C_2`, and beyond it keeps :math:`a e`, whose norm
  is :math:`C_2`: the buffer stays bounded even when :math:`C_2` is below
  the clipping bias (where the paper's buffer grows linearly). The noise is
  the authors' calibration (:func:`dice_noise_multiplier`), so pass DP-SGD's
  multiplier as ``noise_multiplier``. A paper-variant run with :math:`C_2`
  equals an official one with :math:`B C_2` while :math:`\|e\| \le 2 C_2`,
  up to the :math:`10^{-6}` and the noise.

  Per-example clipping never divides by a zero norm (a zero row stays
  zero, no NaN); a NaN or inf gradient is not hidden: it reaches the output
  and the buffer. ``apply_if_finite`` cannot wrap this transform (its skip
  returns zeros shaped like the per-example input); test the gradients or
  the loss yourself.

  Padded batches (Poisson sampling with a static ``max_batch_size``, e.g.
  ``privacy.sampling.poisson_batch``, which returns ``(indices, mask)``):
  pass the mask as the ``update`` keyword ``example_mask`` (bool ``[rows]``):
  masked-out rows are dropped from both sums (even a NaN in them), and set
  ``expected_batch_size`` to :math:`q N`, the data-independent divisor the
  Poisson accountant assumes (dividing a noisy sum by a public constant is
  post-processing; dividing by the realized batch size would not be).
  Without a mask, padding rows must be exactly zero: a zero row contributes
  nothing to either sum. Size the padding with
  ``sampling.max_batch_size_for``: on overflow the sampler keeps a random
  subset, which the plain Poisson ε does not cover (record
  ``sampling.poisson_sample``'s ``num_sampled``, as the experiment does).

  Data parallel (``axis_name``, inside ``jax.shard_map`` or a named
  ``vmap``): each device holds a shard of the rows; :math:`c_t`,
  :math:`u_t` and the row count are summed over the axis (``psum``), the
  buffer is replicated and the noise is drawn once from the replicated key
  (the same draw on every device, never one per device), so 1 and N devices
  give the same result up to summation order.

  Args:
    l2_norm_clip: :math:`C_1 > 0`, finite, the per-example clipping
      threshold (injectable). For no clipping pass a huge finite value
      (e.g. ``float(jnp.finfo(jnp.float32).max)``, as optax's tests do).
    error_clip: :math:`C_2 \ge 0`, finite, the error-feedback threshold
      (injectable). Mean units for ``'paper'`` (the paper recommends
      :math:`C_2 \ge C_1`; it must exceed the clipping bias at the optimum,
      :math:`\|\frac1B \sum_i (g_i - \operatorname{clip}(g_i, C_1))\|`, or
      the iterates stall short of it), sum units for ``'official'``.
      :math:`C_2 = 0` is DP-SGD with clipping.
    noise_multiplier: :math:`\sigma \ge 0` (injectable): the noise std on
      the sum over :math:`C_1` (optax's units), multiplied by
      :math:`\sqrt{1 + 2 C_2 / C_1}` for ``'official'``.
    key: ``jax.random.key`` or int seed of the noise (static under
      ``inject_hyperparams``). The default 0 is for tests: give every
      private training run its own fresh key (two runs with one key draw
      the same noise).
    variant: ``'paper'`` (Algorithm 2, default) or ``'official'``.
    expected_batch_size: :math:`B`, the divisor of the sums; ``None`` (the
      default, optax's convention) divides by the number of rows (over all
      devices with ``axis_name``). Static.
    axis_name: Mesh or ``vmap`` axis to sum over; ``None`` on one device.

  Returns:
    :class:`optax.GradientTransformationExtraArgs` whose ``update(updates,
    state, params=None, *, example_mask=None)`` takes per-example gradients
    (every leaf ``[rows, *param_shape]``) and returns the params-shaped
    direction in each param's dtype, with state :class:`DiceState`.
    ``init`` takes the params (no batch axis). It must come first in a
    chain; :class:`optax.MultiSteps` and ``apply_every`` do not apply.

  Raises:
    ValueError: at construction, naming the argument, for an
      ``l2_norm_clip`` that is not finite and > 0, an ``error_clip`` or
      ``noise_multiplier`` that is not finite and >= 0 (numbers; traced
      injected values are not checked), a bad ``key``, an unknown
      ``variant``, an ``expected_batch_size`` that is not None or > 0, or an
      empty ``axis_name``; at ``update`` (trace time) for leaves without a
      common leading batch axis or a mask of another length.

  Examples:
    >>> import jax, jax.numpy as jnp, optax
    >>> from jaxopt_papers.privacy.dice_sgd import dice_sgd
    >>> loss = lambda w, x, y: 0.5 * (x @ w - y) ** 2
    >>> x, y = jnp.ones((8, 3)), jnp.arange(8.0)
    >>> w = jnp.zeros(3)
    >>> tx = dice_sgd(0.1, l2_norm_clip=1.0, error_clip=1.0,
    ...               noise_multiplier=1.0, key=0)
    >>> state = tx.init(w)
    >>> grads = jax.vmap(jax.grad(loss), (None, 0, 0))(w, x, y)  # [8, 3]
    >>> updates, state = tx.update(grads, state, w)
    >>> w = optax.apply_updates(w, updates)

  References:
    Zhang, Bu, Wu, Hong, `Differentially Private SGD Without Clipping Bias:
    An Error-Feedback Approach <https://arxiv.org/abs/2311.14632>`_, ICLR
    2024.

  .. note:: Deviations and choices.

    * **Noise units.** The paper writes :math:`w_t \sim \mathcal{N}(0,
      \sigma_1^2 I)` on the mean; here :math:`\sigma_1 = \sigma C_1 / B`
      (optax's and the authors' code's units: std :math:`\sigma C_1` on the
      sum), so ``noise_multiplier`` is comparable with DP-SGD's.
    * **Keys.** The key is split every step as optax's
      ``differentially_private_aggregate`` does (new key stored, one key
      per leaf), not folded with the step count, so that :math:`C_2 = 0`
      reproduces that transform draw for draw.
    * **'official' units.** In the released code (fastDP with
      ``loss_reduction='mean'``) the unclipped part comes from the gradient
      of the *mean* loss while the clipped part is the *sum* of clipped
      per-example gradients, so its buffer mixes units. We keep the code's
      bounded update, its :math:`10^{-6}`, its sum units and its noise,
      with a consistent :math:`u_t = \sum_i g_i`. Its thresholds are in
      sum units: ``error_clip`` :math:`C_2` cancels a mean clipping bias of
      at most :math:`C_2 / B`, so the code's default :math:`C_2 = C_1`
      (ratio 1) leaves most of the bias in place when :math:`B` is large
      (on the 1-D problem of the tests, :math:`B = 5`, :math:`C_1 = C_2 =
      1` stops at 0.5; :math:`C_2 = 5` reaches the optimum). The code's
      first step sets :math:`e_1 = u_0 - c_0` without feedback, which is
      what :math:`e_0 = 0` gives here.
    * **Dtypes.** Norms, sums and noise are computed in
      ``promote_types(dtype, float32)``; the output and the buffer are cast
      to each leaf's dtype.
  """
  checks.check_hyperparameter(
    checks.check_positive, 'l2_norm_clip', l2_norm_clip
  )
  checks.check_hyperparameter(
    checks.check_nonnegative, 'error_clip', error_clip
  )
  checks.check_hyperparameter(
    checks.check_nonnegative, 'noise_multiplier', noise_multiplier
  )
  checks.check_key('key', key, allow_seed=True)
  checks.check_in('variant', variant, _VARIANTS)
  checks.check_positive(
    'expected_batch_size', expected_batch_size, allow_none=True
  )
  if axis_name is not None:
    checks.check_mesh(None, axis_name)
  rng_key = checks.as_key(key)
  official = variant == 'official'

  def init_fn(params):
    return DiceState(
      count=jnp.zeros([], jnp.int32),
      rng_key=rng_key,
      error=optax.tree.zeros_like(params),
    )

  def update_fn(updates, state, params=None, *, example_mask=None, **extra):
    del params, extra
    leaves, treedef = jax.tree.flatten(updates)
    count = optax.safe_increment(state.count)
    if not leaves:
      return updates, state._replace(count=count)
    rows = _batch_size(leaves)
    errors = treedef.flatten_up_to(state.error)
    cdtypes = [_compute_dtype(g.dtype) for g in leaves]
    grads = [g.astype(d) for g, d in zip(leaves, cdtypes, strict=True)]
    if example_mask is not None:
      if jnp.shape(example_mask) != (rows,):
        raise ValueError(
          f'`example_mask` must have shape ({rows},) (one flag per row of '
          f'the per-example gradients), got {jnp.shape(example_mask)}'
        )
      keep = jnp.asarray(example_mask, bool)
      grads = [jnp.where(_broadcast(keep, g), g, 0) for g in grads]

    # Per-example global norms and clip factors min(1, C1 / ||g_i||), with
    # no 0 / 0 at a zero row (optax's per_example_global_norm_clip).
    norms = jax.vmap(optax.tree.norm)(grads)
    c1 = jnp.asarray(l2_norm_clip)
    factors = jnp.nan_to_num(jnp.minimum(c1 / norms, 1.0), nan=1.0)
    clipped = [jnp.tensordot(factors.astype(g.dtype), g, [0, 0]) for g in grads]
    # The clipping error sum_i (g_i - clip(g_i)) as sum_i (1 - f_i) g_i:
    # exactly zero when nothing is clipped.
    residual = [
      jnp.tensordot((1.0 - factors).astype(g.dtype), g, [0, 0]) for g in grads
    ]
    num_rows = rows
    if axis_name is not None:
      clipped = jax.lax.psum(clipped, axis_name)
      residual = jax.lax.psum(residual, axis_name)
      num_rows = rows * jax.lax.psum(1, axis_name)
    divisor = num_rows if expected_batch_size is None else expected_batch_size

    # Feedback factor a = min(1, C2 / ||e||) (paper: 1 at e = 0).
    e = [x.astype(d) for x, d in zip(errors, cdtypes, strict=True)]
    e_norm = optax.tree.norm(e)
    c2 = jnp.asarray(error_clip)
    sigma = jnp.asarray(noise_multiplier)
    if official:
      r = c2 / (e_norm + _OFFICIAL_NORM_EPS)
      a = jnp.minimum(r, 1.0)
      kept = jnp.minimum(r, 1.0 - a)
      inflation = jnp.sqrt(1.0 + 2.0 * c2 / c1)
      noise_std = jnp.where(sigma > 0, sigma * c1 * inflation, 0.0)
    else:
      a = jnp.where(e_norm > c2, c2 / jnp.where(e_norm > c2, e_norm, 1.0), 1.0)
      # As optax computes it (Python floats stay Python floats).
      noise_std = l2_norm_clip * noise_multiplier

    new_key, *rngs = jax.random.split(state.rng_key, len(leaves) + 1)
    out, new_errors = [], []
    for cs, res, ek, k, leaf, old in zip(
      clipped, residual, e, rngs, leaves, errors, strict=True
    ):
      noise = noise_std * jax.random.normal(k, cs.shape, cs.dtype)
      if official:
        direction = (cs + a.astype(cs.dtype) * ek + noise) / divisor
        new_e = kept.astype(cs.dtype) * ek + res
      else:
        fed = a.astype(cs.dtype) * ek
        direction = (cs + noise) / divisor + fed
        new_e = ek + res / divisor - fed
      out.append(direction.astype(leaf.dtype))
      new_errors.append(new_e.astype(old.dtype))
    new_state = DiceState(
      count=count,
      rng_key=new_key,
      error=jax.tree.unflatten(treedef, new_errors),
    )
    return jax.tree.unflatten(treedef, out), new_state

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def dice_sgd(
  learning_rate: optax.ScalarOrSchedule,
  l2_norm_clip: jax.typing.ArrayLike,
  error_clip: jax.typing.ArrayLike,
  noise_multiplier: jax.typing.ArrayLike,
  *,
  key: jax.Array | int = 0,
  variant: str = 'paper',
  expected_batch_size: float | None = None,
  axis_name: str | None = None,
) -> optax.GradientTransformationExtraArgs:
  r"""DiceSGD (the paper's Algorithm 2): :func:`scale_by_dice`, then SGD.

  :math:`\theta_{t+1} = \theta_t - \eta_t (v_t + w_t)` with the direction
  :math:`v_t + w_t` of :func:`scale_by_dice` (see it for every argument and
  the privacy statement). ``update`` takes per-example gradients (leading
  batch axis) and the optional keyword ``example_mask``.

  Args:
    learning_rate: :math:`\eta`, a finite number > 0 or a schedule
      (injectable). The authors' scripts use 0.1 (SGD) for fine-tuning.
    l2_norm_clip: See :func:`scale_by_dice`.
    error_clip: See :func:`scale_by_dice`.
    noise_multiplier: See :func:`scale_by_dice`.
    key: See :func:`scale_by_dice`.
    variant: See :func:`scale_by_dice`.
    expected_batch_size: See :func:`scale_by_dice`.
    axis_name: See :func:`scale_by_dice`.

  Returns:
    ``optax.chain(scale_by_dice(...), optax.scale_by_learning_rate(
    learning_rate))``.

  Raises:
    ValueError: naming the argument, for a number ``learning_rate`` that is
      not finite and > 0, or anything :func:`scale_by_dice` refuses.

  References:
    Zhang, Bu, Wu, Hong, `Differentially Private SGD Without Clipping Bias:
    An Error-Feedback Approach <https://arxiv.org/abs/2311.14632>`_, ICLR
    2024.
  """
  checks.check_learning_rate('learning_rate', learning_rate)
  return optax.chain(
    scale_by_dice(
      l2_norm_clip,
      error_clip,
      noise_multiplier,
      key=key,
      variant=variant,
      expected_batch_size=expected_batch_size,
      axis_name=axis_name,
    ),
    optax.scale_by_learning_rate(learning_rate),
  )


def dice_adam(
  learning_rate: optax.ScalarOrSchedule,
  l2_norm_clip: jax.typing.ArrayLike,
  error_clip: jax.typing.ArrayLike,
  noise_multiplier: jax.typing.ArrayLike,
  *,
  key: jax.Array | int = 0,
  b1: jax.typing.ArrayLike = 0.9,
  b2: jax.typing.ArrayLike = 0.999,
  eps: jax.typing.ArrayLike = 1e-8,
  variant: str = 'paper',
  expected_batch_size: float | None = None,
  axis_name: str | None = None,
) -> optax.GradientTransformationExtraArgs:
  r"""DiceAdam (the paper's Algorithm 3): Adam on DiceSGD's noisy direction.

  Adam's moments are computed from the privatized direction :math:`v_t +
  w_t` of :func:`scale_by_dice` only (post-processing: the privacy
  statement is :func:`scale_by_dice`'s); the error buffer is the same as in
  :func:`dice_sgd`.

  Args:
    learning_rate: :math:`\eta`, a finite number > 0 or a schedule
      (injectable).
    l2_norm_clip: See :func:`scale_by_dice`.
    error_clip: See :func:`scale_by_dice`.
    noise_multiplier: See :func:`scale_by_dice`.
    key: See :func:`scale_by_dice`.
    b1: Adam's :math:`\beta_1` in [0, 1) (injectable).
    b2: Adam's :math:`\beta_2` in [0, 1) (injectable).
    eps: Adam's :math:`\epsilon` >= 0 (injectable).
    variant: See :func:`scale_by_dice`.
    expected_batch_size: See :func:`scale_by_dice`.
    axis_name: See :func:`scale_by_dice`.

  Returns:
    ``optax.chain(scale_by_dice(...), optax.scale_by_adam(b1, b2, eps),
    optax.scale_by_learning_rate(learning_rate))``.

  Raises:
    ValueError: naming the argument, for a bad ``learning_rate``, ``b1``,
      ``b2`` or ``eps``, or anything :func:`scale_by_dice` refuses.
  """
  checks.check_learning_rate('learning_rate', learning_rate)
  for name, value in (('b1', b1), ('b2', b2)):
    checks.check_hyperparameter(
      checks.check_interval, name, value, 0.0, 1.0, high_open=True
    )
  checks.check_hyperparameter(checks.check_nonnegative, 'eps', eps)
  return optax.chain(
    scale_by_dice(
      l2_norm_clip,
      error_clip,
      noise_multiplier,
      key=key,
      variant=variant,
      expected_batch_size=expected_batch_size,
      axis_name=axis_name,
    ),
    optax.scale_by_adam(b1=b1, b2=b2, eps=eps),
    optax.scale_by_learning_rate(learning_rate),
  )
