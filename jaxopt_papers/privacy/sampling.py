"""Poisson-sampled batches inside ``jit``, with static shapes (pad and mask).

The subsampling accountant (:mod:`jaxopt_papers.privacy.accounting`,
``dp_accounting.PoissonSampledDpEvent``) assumes Poisson sampling: at every
step each of the ``num_examples`` examples is in the batch independently with
probability ``sampling_rate``, so the batch size is random
(Binomial(num_examples, sampling_rate)). :func:`poisson_batch` draws exactly
that and returns it as ``max_batch_size`` padded rows with a mask, so a
jitted step has one static shape.

A fixed-size shuffled batch (a random permutation cut into batches of ``B``,
or ``B`` rows drawn without replacement) is NOT covered by the Poisson
accountant's ε, even with ``sampling_rate = B / num_examples``: its privacy
amplification is a different one (replace-one relation, sampling without
replacement) and this project offers no accounting for it.

Overflow: when more than ``max_batch_size`` examples are drawn, the batch
keeps a uniformly random subset of ``max_batch_size`` of them (the drawn
examples with the smallest random draws) and drops the rest. That is
truncated Poisson sampling, which the plain Poisson ε does not cover
(``dp_accounting.TruncatedSubsampledGaussianDpEvent`` does); it is reported,
not hidden: :func:`poisson_sample` returns the number drawn before
truncation, ``num_sampled``, so a caller can record
``num_sampled > max_batch_size`` in its state or trace. Pick
``max_batch_size`` with :func:`max_batch_size_for` to make overflow
negligible (probability 1e-9 per step by default).

Randomness: one ``uint32`` per example from ``jax.random.bits``; example
``i`` is drawn when its bits are ``< floor(sampling_rate * 2**32)``, so the
inclusion probability equals ``sampling_rate`` to within ``2**-32``
(``sampling_rate = 1`` includes every example).
"""

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from jaxopt_papers.core import checks

__all__ = [
  'PoissonBatch',
  'max_batch_size_for',
  'poisson_batch',
  'poisson_sample',
]


class PoissonBatch(NamedTuple):
  """A Poisson-sampled batch, padded to a static size.

  Attributes:
    indices: int32[max_batch_size], the drawn examples' indices first (in a
      random order), then 0 (a valid row, so gathers stay in bounds) in the
      padded rows.
    mask: bool[max_batch_size], True on the rows of drawn examples
      (``mask[:k]`` True and the rest False, ``k = min(num_sampled,
      max_batch_size)``).
    num_sampled: int32 scalar, the number of examples drawn BEFORE
      truncation; ``num_sampled > max_batch_size`` means overflow.
  """

  indices: jax.Array
  mask: jax.Array
  num_sampled: jax.Array


def _check_args(num_examples, sampling_rate, max_batch_size) -> None:
  checks.check_int('num_examples', num_examples)
  checks.check_probability('sampling_rate', sampling_rate)
  checks.check_int('max_batch_size', max_batch_size)
  if max_batch_size > num_examples:
    raise ValueError(
      f'`max_batch_size` must be <= `num_examples` ({num_examples}), '
      f'got {max_batch_size!r}'
    )


def poisson_sample(
  key: jax.Array,
  num_examples: int,
  sampling_rate: float,
  max_batch_size: int,
) -> PoissonBatch:
  """Poisson-sampled batch with its pre-truncation count (jit-compatible).

  Args:
    key: a PRNG key (typed or raw ``uint32[2]``); may be traced.
    num_examples: dataset size, a static Python int >= 1.
    sampling_rate: inclusion probability per example, a static Python float
      in ``(0, 1]``.
    max_batch_size: static padded batch size, an int in
      ``[1, num_examples]``.

  Returns:
    :class:`PoissonBatch` ``(indices, mask, num_sampled)``. The same key
    gives the same batch.
  """
  checks.check_key('key', key)
  _check_args(num_examples, sampling_rate, max_batch_size)
  bits = jax.random.bits(checks.as_key(key), (num_examples,), jnp.uint32)
  threshold = math.floor(sampling_rate * 2**32)
  if threshold >= 2**32:
    drawn = jnp.ones((num_examples,), bool)
  else:
    drawn = bits < jnp.uint32(threshold)
  # The max_batch_size smallest draws: every drawn example first (its bits
  # are below the threshold, every other example's are not), and a uniformly
  # random subset of the drawn ones on overflow.
  _, order = jax.lax.top_k(~bits, max_batch_size)
  mask = drawn[order]
  indices = jnp.where(mask, order, 0).astype(jnp.int32)
  num_sampled = jnp.sum(drawn, dtype=jnp.int32)
  return PoissonBatch(indices, mask, num_sampled)


def poisson_batch(
  key: jax.Array,
  num_examples: int,
  sampling_rate: float,
  max_batch_size: int,
) -> tuple[jax.Array, jax.Array]:
  """``(indices int32[max_batch_size], mask bool[max_batch_size])``.

  Each of ``num_examples`` examples is included independently with
  probability ``sampling_rate``; the included examples' indices come first,
  padded with 0 and masked out. Works inside ``jit`` (pass ``num_examples``,
  ``sampling_rate``, ``max_batch_size`` as static Python numbers). On
  overflow (more than ``max_batch_size`` drawn) a uniformly random subset of
  ``max_batch_size`` is kept; use :func:`poisson_sample` to get the count
  drawn and record overflow. See the module docstring for what the
  accountant covers.

  Example::

    idx, mask = poisson_batch(key, n, 256 / n, max_batch_size_for(n, 256 / n))
    per_example = jax.vmap(grad_fn, (None, 0))(params, data[idx])
    clipped_sum = sum over rows of mask[:, None] * clip(per_example)
  """
  batch = poisson_sample(key, num_examples, sampling_rate, max_batch_size)
  return batch.indices, batch.mask


def max_batch_size_for(
  num_examples: int,
  sampling_rate: float,
  *,
  overflow_probability: float = 1e-9,
) -> int:
  """The smallest ``max_batch_size`` that overflows with at most that chance.

  The ``1 - overflow_probability`` quantile of Binomial(num_examples,
  sampling_rate) (host-side, scipy), capped at ``num_examples``: with it, a
  step's drawn count exceeds ``max_batch_size`` with probability at most
  ``overflow_probability``.
  """
  checks.check_int('num_examples', num_examples)
  checks.check_probability('sampling_rate', sampling_rate)
  checks.check_fraction('overflow_probability', overflow_probability)
  size = stats.binom.isf(overflow_probability, num_examples, sampling_rate)
  return int(min(max(np.ceil(size), 1), num_examples))
