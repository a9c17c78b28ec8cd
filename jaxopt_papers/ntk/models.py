r"""Fully-connected nets in the NTK parameterization (paper 22).

Jacot, Gabriel, Hongler, `Neural Tangent Kernel: Convergence and
Generalization in Neural Networks <https://arxiv.org/abs/1806.07572>`_,
NeurIPS 2018.

The NTK parameterization (paper eq. (1); neural-tangents
``Dense(parameterization='ntk')``) draws every parameter from
:math:`\mathcal N(0, 1)` and puts the scale in the forward pass:

.. math::
  z^{(\ell+1)} = \frac{\sigma_w}{\sqrt{n_\ell}} W^{(\ell)} h^{(\ell)}
    + \sigma_b\, b^{(\ell)}, \qquad h^{(\ell)} = \phi(z^{(\ell)}),
    \quad h^{(0)} = x,

with ``w_std`` = :math:`\sigma_w` and ``b_std`` = :math:`\sigma_b` (the
paper's :math:`\beta`). Only in this parameterization does the NTK converge
to the finite deterministic limit of :mod:`jaxopt_papers.ntk.analytic` as the
widths grow with an O(1) learning rate.

.. warning:: Flax's default ``nn.Dense`` is the *standard*
  parameterization (``W ~ lecun_normal``, i.e. variance ``1/fan_in``, zero
  bias, no ``1/sqrt(fan_in)`` in the forward pass). It computes the same
  function at initialization but a different tangent kernel: the weight
  gradients are ``sqrt(fan_in)`` times larger, so its NTK grows with the
  width and has no finite limit. ``parameterization='standard'`` below gives
  that net (with ``W ~ N(0, w_std^2/fan_in)``, ``b ~ N(0, b_std^2)``, the
  neural-tangents convention) as the baseline the experiment compares with.
"""

import math
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxopt_papers.core import checks

__all__ = [
  'ACTIVATIONS',
  'PARAMETERIZATIONS',
  'NTKDense',
  'NTKMLP',
  'activation_fn',
]

ACTIVATIONS = ('relu', 'erf')
PARAMETERIZATIONS = ('ntk', 'standard')


def activation_fn(name: str):
  """``(phi, phi')`` for ``'relu'`` or ``'erf'``."""
  if name == 'relu':
    return jax.nn.relu, lambda z: (z > 0).astype(z.dtype)
  if name == 'erf':
    return (
      jax.scipy.special.erf,
      lambda z: (2.0 / math.sqrt(math.pi)) * (jnp.exp(-(z**2))),
    )
  checks.check_in('activation', name, ACTIVATIONS)


class NTKDense(nn.Module):
  """``z = w_std * h @ W / sqrt(fan_in) + b_std * b``, ``W, b ~ N(0, 1)``.

  Attributes:
    features: Output width.
    w_std: Weight scale :math:`\\sigma_w > 0`.
    b_std: Bias scale :math:`\\sigma_b \\ge 0` (the paper's :math:`\\beta`).
    parameterization: ``'ntk'`` (the paper) or ``'standard'`` (Flax
      ``nn.Dense``-like: ``W ~ N(0, w_std^2 / fan_in)``, ``b ~ N(0,
      b_std^2)``, ``z = h @ W + b``; the baseline).
    param_dtype: Parameter dtype.
  """

  features: int
  w_std: float = 1.0
  b_std: float = 0.0
  parameterization: str = 'ntk'
  param_dtype: jnp.dtype = jnp.float32

  def __post_init__(self):
    checks.check_int('features', self.features)
    checks.check_positive('w_std', self.w_std)
    checks.check_nonnegative('b_std', self.b_std)
    checks.check_in(
      'parameterization', self.parameterization, PARAMETERIZATIONS
    )
    super().__post_init__()

  @nn.compact
  def __call__(self, h: jax.Array) -> jax.Array:
    fan_in = h.shape[-1]
    shape = (fan_in, self.features)
    if self.parameterization == 'ntk':
      w = self.param(
        'kernel', nn.initializers.normal(1.0), shape, self.param_dtype
      )
      b = self.param(
        'bias', nn.initializers.normal(1.0), (self.features,), self.param_dtype
      )
      w_scale, b_scale = self.w_std / math.sqrt(fan_in), self.b_std
    else:
      w = self.param(
        'kernel',
        nn.initializers.normal(self.w_std / math.sqrt(fan_in)),
        shape,
        self.param_dtype,
      )
      b = self.param(
        'bias',
        nn.initializers.normal(self.b_std) if self.b_std > 0 else nn.zeros,
        (self.features,),
        self.param_dtype,
      )
      w_scale, b_scale = 1.0, 1.0
    return w_scale * (h @ w) + b_scale * b[None, :]


class NTKMLP(nn.Module):
  """``depth`` hidden ``NTKDense -> activation`` blocks, then ``NTKDense``.

  Maps ``x [N, n_0]`` to ``f(x) [N, out_features]``. Layers are named
  ``dense_0 ... dense_depth``; :func:`jaxopt_papers.ntk.empirical.
  empirical_ntk` with ``implementation='structured'`` reads them.

  Attributes:
    width: Hidden width :math:`n_1 = ... = n_L`.
    depth: Number of hidden layers :math:`L \\ge 0` (0: a linear model).
    out_features: Output width :math:`n_{L+1}`.
    activation: ``'relu'`` or ``'erf'``.
    w_std: Weight scale :math:`\\sigma_w`.
    b_std: Bias scale :math:`\\sigma_b` (paper: :math:`\\beta`).
    parameterization: ``'ntk'`` (paper) or ``'standard'`` (baseline).
    param_dtype: Parameter dtype.
  """

  width: int = 512
  depth: int = 3
  out_features: int = 1
  activation: str = 'relu'
  w_std: float = 1.0
  b_std: float = 0.1
  parameterization: str = 'ntk'
  param_dtype: jnp.dtype = jnp.float32

  def __post_init__(self):
    checks.check_int('width', self.width)
    checks.check_int('depth', self.depth, minimum=0)
    checks.check_int('out_features', self.out_features)
    checks.check_in('activation', self.activation, ACTIVATIONS)
    checks.check_positive('w_std', self.w_std)
    checks.check_nonnegative('b_std', self.b_std)
    checks.check_in(
      'parameterization', self.parameterization, PARAMETERIZATIONS
    )
    super().__post_init__()

  def _dense(self, i: int, features: int) -> NTKDense:
    return NTKDense(
      features,
      w_std=self.w_std,
      b_std=self.b_std,
      parameterization=self.parameterization,
      param_dtype=self.param_dtype,
      name=f'dense_{i}',
    )

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    phi, _ = activation_fn(self.activation)
    h = x.reshape(x.shape[0], -1)
    for i in range(self.depth):
      h = phi(self._dense(i, self.width)(h))
    return self._dense(self.depth, self.out_features)(h)

  def layer_scales(self, fan_ins: Sequence[int]) -> list[tuple[float, float]]:
    """Per layer ``(c_w, c_b)`` with ``z = c_w h @ W + c_b b`` in apply."""
    if self.parameterization == 'ntk':
      return [(self.w_std / math.sqrt(n), self.b_std) for n in fan_ins]
    return [(1.0, 1.0) for _ in fan_ins]
