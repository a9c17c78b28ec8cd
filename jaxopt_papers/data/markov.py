"""Synthetic text from a random sparse Markov chain with a known entropy rate.

A language model trained on this source has an exact loss floor: no predictor
of token ``t`` from tokens ``< t`` can have an expected cross-entropy below
the conditional entropy ``H(X_t | X_{<t})``, which we compute in closed form
from the chain. Sequences start from the stationary distribution of the
context, so every position ``t >= order`` has conditional entropy equal to the
entropy rate, and the first ``order`` positions have the (larger) conditional
entropies of the stationary marginals.

Example:
  >>> source = random_markov_source(jax.random.key(0), vocab_size=64)
  >>> tokens = source.sample(jax.random.key(1), batch_size=32, seq_len=33)
  >>> floor = source.loss_floor(seq_len=33)   # nats per predicted token
"""

import dataclasses
import math

import jax
import jax.numpy as jnp

from jaxopt_papers.core import checks

__all__ = ['MarkovSource', 'random_markov_source']


def _entropy(p: jax.Array, axis: int = -1) -> jax.Array:
  """Shannon entropy in nats along ``axis``, with 0 log 0 = 0."""
  logp = jnp.log(jnp.where(p > 0, p, 1.0))
  return -jnp.sum(p * logp, axis=axis)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class MarkovSource:
  """An order-``k`` Markov chain over ``vocab_size`` tokens.

  Attributes:
    transition: ``[V ** k, V]`` probabilities ``P(x_t | context)``, where the
      context ``(x_{t-k}, ..., x_{t-1})`` is flattened in row-major order
      (``x_{t-k}`` most significant).
    stationary: ``[V ** k]`` stationary distribution of the context.
  """

  transition: jax.Array
  stationary: jax.Array

  @property
  def vocab_size(self) -> int:
    return self.transition.shape[-1]

  @property
  def order(self) -> int:
    return round(math.log(self.transition.shape[0], self.vocab_size))

  def sample(self, key: jax.Array, batch_size: int, seq_len: int) -> jax.Array:
    """Returns ``[batch_size, seq_len]`` int32 tokens (stationary start)."""
    if seq_len < self.order:
      raise ValueError(
        f'`seq_len` must be >= the order {self.order}, got {seq_len}'
      )
    v, k = self.vocab_size, self.order
    log_t = jnp.log(self.transition)
    log_s = jnp.log(self.stationary)
    digits = v ** jnp.arange(k - 1, -1, -1)

    def one(key):
      k0, k1 = jax.random.split(key)
      ctx = jax.random.categorical(k0, log_s)
      first = (ctx // digits) % v  # [k] tokens of the initial context

      def body(ctx, key):
        tok = jax.random.categorical(key, log_t[ctx])
        ctx = (ctx * v) % (v**k) + tok
        return ctx, tok

      _, rest = jax.lax.scan(body, ctx, jax.random.split(k1, seq_len - k))
      return jnp.concatenate([first, rest]).astype(jnp.int32)

    return jax.vmap(one)(jax.random.split(key, batch_size))

  def entropy_rate(self) -> jax.Array:
    """``H(X_t | X_{t-k..t-1})`` under the stationary context, in nats."""
    return jnp.sum(self.stationary * _entropy(self.transition))

  def conditional_entropies(self, seq_len: int) -> jax.Array:
    """``[seq_len]`` values ``H(X_t | X_{<t})`` for ``t = 0 .. seq_len-1``."""
    v, k = self.vocab_size, self.order
    joint = self.stationary.reshape((v,) * k)
    # H(X_0..X_{j-1}) for j = 0..k from the stationary context marginals.
    block = [jnp.zeros([])]
    for j in range(1, k + 1):
      marg = joint.sum(axis=tuple(range(j, k))) if j < k else joint
      block.append(_entropy(marg.reshape(-1)))
    head = jnp.stack([block[j + 1] - block[j] for j in range(min(k, seq_len))])
    tail = jnp.full([max(seq_len - k, 0)], self.entropy_rate())
    return jnp.concatenate([head, tail])

  def loss_floor(self, seq_len: int) -> jax.Array:
    """Mean ``H(X_t | X_{<t})`` over the predicted positions ``t = 1..T-1``.

    This is the smallest expected next-token cross-entropy that any model can
    reach on sequences of length ``seq_len`` (inputs ``x[:-1]``, targets
    ``x[1:]``).
    """
    return jnp.mean(self.conditional_entropies(seq_len)[1:])


def random_markov_source(
  key: jax.Array,
  vocab_size: int = 64,
  *,
  order: int = 2,
  support: int = 4,
  concentration: float = 1.0,
  smoothing: float = 0.01,
  num_power_iterations: int = 500,
) -> MarkovSource:
  """A random sparse order-``order`` chain, ergodic thanks to ``smoothing``.

  Each context puts Dirichlet(``concentration``) weights on ``support``
  random next tokens, mixed with ``smoothing`` times the uniform distribution
  (so every transition has positive probability and the stationary
  distribution is unique). The stationary distribution is found by power
  iteration in float32; sampling and the entropies use it.

  Raises:
    ValueError: on a non-positive size or ``smoothing`` outside ``[0, 1]``.
  """
  checks.check_int('vocab_size', vocab_size, minimum=2)
  checks.check_int('order', order)
  checks.check_int('support', support)
  checks.check_interval('support', support, 1, vocab_size)
  checks.check_probability('smoothing', smoothing)
  checks.check_positive('concentration', concentration)
  checks.check_int('num_power_iterations', num_power_iterations)
  num_ctx = vocab_size**order
  k_tok, k_w = jax.random.split(key)
  scores = jax.random.uniform(k_tok, (num_ctx, vocab_size))
  top = jnp.argsort(scores, axis=-1)[:, :support]  # random support per ctx
  weights = jax.random.dirichlet(
    k_w, jnp.full([support], concentration), (num_ctx,)
  )
  sparse = (
    jnp.zeros((num_ctx, vocab_size))
    .at[jnp.arange(num_ctx)[:, None], top]
    .set(weights)
  )
  transition = (1.0 - smoothing) * sparse + smoothing / vocab_size
  shape = (vocab_size,) * order

  def power(pi, _):
    # pi over contexts (x_{t-k}..x_{t-1}); next context is (x_{t-k+1}..x_t).
    joint = pi[:, None] * transition  # [num_ctx, V]
    nxt = joint.reshape((vocab_size,) + shape).sum(axis=0)
    return nxt.reshape(-1), None

  pi0 = jnp.full([num_ctx], 1.0 / num_ctx)
  pi, _ = jax.lax.scan(power, pi0, None, length=num_power_iterations)
  pi = pi / jnp.sum(pi)
  return MarkovSource(transition=transition, stationary=pi)
