"""A multilayer perceptron (Linen) and its softmax cross-entropy loss."""

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

__all__ = ['MLP', 'classification_loss']


class MLP(nn.Module):
  """``Dense -> activation`` blocks, then a linear output layer.

  Attributes:
    features: Widths of the hidden layers followed by the output width.
    activation: Hidden nonlinearity.
    dtype: Computation dtype (parameters follow ``param_dtype``).
    param_dtype: Parameter dtype.

  Use ``model.apply`` as ``apply_fn(params, x)`` with ``params`` the
  ``{'params': ...}`` variables returned by ``model.init(key, x)``.
  """

  features: Sequence[int]
  activation: Callable[[jax.Array], jax.Array] = nn.relu
  dtype: jnp.dtype | None = None
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = x.reshape(x.shape[0], -1)
    for i, width in enumerate(self.features):
      x = nn.Dense(
        width,
        dtype=self.dtype,
        param_dtype=self.param_dtype,
        name=f'dense_{i}',
      )(x)
      if i < len(self.features) - 1:
        x = self.activation(x)
    return x


def classification_loss(
  apply_fn: Callable[..., jax.Array],
) -> Callable[..., jax.Array]:
  """``loss(params, (x, y))``: mean softmax cross-entropy, integer labels."""

  def loss(params, batch):
    x, y = batch
    logits = apply_fn(params, x)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

  return loss
