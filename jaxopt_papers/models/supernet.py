r"""A tiny DARTS-style supernet (Linen): a chain of mixed-operation edges.

The testbed of the RARTS experiment (:mod:`jaxopt_papers.bilevel.rarts`).
The input goes through a linear ``stem`` to ``width`` features, then through
``num_edges`` edges in a chain; edge :math:`e` computes the mixture

.. math::
  h_{e+1} = \sum_{o} p_{e,o}\, o(h_e), \qquad
  o \in \{\text{zero}, \text{identity}, \text{dense+relu},
  \text{dense+tanh}\},

and a linear ``head`` gives the class logits. The op weights :math:`p` are
an argument of the call, ``[num_edges, num_ops]``: :math:`\mathrm{softmax}
(\alpha_e)` per edge during the search (:func:`architecture_loss`), a
one-hot row per edge for a derived, discrete architecture
(:func:`derive_architecture`; the unused ops then get zero gradients).
Because the stem is linear, an all-identity architecture is a linear
classifier: parameter-free choices cost accuracy here, as in DARTS's
"skip-connection collapse".

Example:
  >>> model = Supernet()
  >>> params = model.init(key, x, jnp.full((2, 4), 0.25))
  >>> loss = architecture_loss(model)          # loss(params, alpha, (x, y))
  >>> onehot = derive_architecture(alpha)      # strongest non-zero op
"""

from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

__all__ = [
  'OPS',
  'Supernet',
  'architecture_loss',
  'derive_architecture',
  'discrete_loss',
]

OPS = ('zero', 'identity', 'dense_relu', 'dense_tanh')


class Supernet(nn.Module):
  """Linear stem, ``num_edges`` mixed-op edges in a chain, linear head.

  Attributes:
    num_edges: Edges in the chain.
    width: Features of every hidden node.
    num_classes: Output logits.
    ops: Operation names, a subset of :data:`OPS` in any order.
  """

  num_edges: int = 2
  width: int = 64
  num_classes: int = 10
  ops: tuple[str, ...] = OPS

  def setup(self):
    unknown = [o for o in self.ops if o not in OPS]
    if unknown:
      raise ValueError(f'`ops` must be names from {OPS}, got {unknown}')

  @nn.compact
  def __call__(self, x: jax.Array, op_weights: jax.Array) -> jax.Array:
    """Logits ``[batch, num_classes]``; ``op_weights`` ``[edges, ops]``."""
    h = nn.Dense(self.width, name='stem')(x.reshape(x.shape[0], -1))
    for e in range(self.num_edges):
      out = jnp.zeros_like(h)
      for i, op in enumerate(self.ops):
        if op == 'zero':
          continue  # contributes p * 0
        if op == 'identity':
          y = h
        else:
          y = nn.Dense(self.width, name=f'edge{e}_{op}')(h)
          y = nn.relu(y) if op == 'dense_relu' else jnp.tanh(y)
        out = out + op_weights[e, i].astype(h.dtype) * y
      h = out
    return nn.Dense(self.num_classes, name='head')(h)


def _cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def architecture_loss(
  model: Supernet,
) -> Callable[..., jax.Array]:
  """``loss(params, alpha, (x, y))``: cross-entropy with softmax(alpha) ops.

  ``alpha`` is ``[num_edges, num_ops]``; the softmax is per edge.
  """

  def loss(params, alpha, batch):
    x, y = batch
    return _cross_entropy(model.apply(params, x, jax.nn.softmax(alpha)), y)

  return loss


def discrete_loss(model: Supernet) -> Callable[..., jax.Array]:
  """``loss(params, (x, y, op_weights))``: the loss of a fixed architecture.

  For retraining a derived architecture (``op_weights`` one-hot) with a
  plain optimizer: the architecture rides in the batch.
  """

  def loss(params, batch):
    x, y, op_weights = batch
    return _cross_entropy(model.apply(params, x, op_weights), y)

  return loss


def derive_architecture(
  alpha: jax.Array, ops: tuple[str, ...] = OPS
) -> jax.Array:
  """One-hot ``[num_edges, num_ops]``: the strongest op per edge, not zero.

  DARTS's rule: the op with the largest :math:`\\alpha` on each edge,
  excluding ``'zero'``. Jittable and vmappable.
  """
  mask = jnp.asarray([op != 'zero' for op in ops])
  masked = jnp.where(mask, alpha, -jnp.inf)
  return jax.nn.one_hot(
    jnp.argmax(masked, axis=-1), len(ops), dtype=alpha.dtype
  )
