r"""The two-layer ReLU network of over-parameterized convergence theory.

.. math::
  f_W(x) = \frac{1}{\sqrt m} \sum_{r=1}^m a_r\, \sigma(\langle w_r, x
  \rangle), \qquad w_r(0) \sim N(0, I_d), \quad a_r \sim
  \mathrm{Unif}\{-1, +1\} \text{ fixed},

with :math:`\sigma` the ReLU and :math:`m` = ``width`` (Du, Zhai, Poczos,
Singh 2019; Allen-Zhu, Li, Song 2019; the model of Li, Song, Yang, "Federated
Adversarial Learning", ICML 2023). Only the first layer :math:`W` (a Flax
``Dense`` kernel ``[d, m]`` without bias) is a parameter; the output signs
:math:`a` are a constant drawn from ``output_seed`` (not in ``params``), so
a gradient step or an optimizer never touches them.

``num_outputs > 1`` gives one fixed sign column per output (a ``[m,
num_outputs]`` matrix of signs), for a multi-class loss; the theory's
scalar network is ``num_outputs=1``. The output is always ``[B,
num_outputs]``.

Example:
  >>> model = TwoLayerReLU(width=512)
  >>> params = model.init(jax.random.key(0), jnp.zeros([1, 64]))
  >>> model.apply(params, jnp.ones([3, 64]) / 8).shape
  (3, 1)
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

__all__ = ['TwoLayerReLU', 'output_signs']


def output_signs(width: int, num_outputs: int, seed: int) -> jax.Array:
  """The fixed ``[width, num_outputs]`` signs ``a`` (Rademacher, from seed)."""
  return jax.random.rademacher(
    jax.random.key(seed), (width, num_outputs), jnp.float32
  )


class TwoLayerReLU(nn.Module):
  r"""``x -> relu(x W) a / sqrt(m)`` with fixed signs ``a`` (not trained).

  Attributes:
    width: Hidden width :math:`m >= 1`.
    num_outputs: Output columns (1: the theory's scalar network).
    output_seed: Seed of the fixed signs :math:`a` (a constant).
    dtype: Computation dtype (``None``: the inputs' and params' dtype).
    param_dtype: Dtype of :math:`W`.

  Raises:
    ValueError: at ``init`` / ``apply``, if ``width`` or ``num_outputs`` is
      not an int >= 1.
  """

  width: int
  num_outputs: int = 1
  output_seed: int = 0
  dtype: jnp.dtype | None = None
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    for name in ('width', 'num_outputs'):
      value = getattr(self, name)
      if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f'`{name}` must be an int >= 1, got {value!r}')
    x = x.reshape(x.shape[0], -1)
    h = nn.Dense(
      self.width,
      use_bias=False,
      kernel_init=nn.initializers.normal(stddev=1.0),
      dtype=self.dtype,
      param_dtype=self.param_dtype,
      name='hidden',
    )(x)
    a = output_signs(self.width, self.num_outputs, self.output_seed)
    h = nn.relu(h)
    return (h @ a.astype(h.dtype)) / jnp.sqrt(jnp.asarray(self.width, h.dtype))
