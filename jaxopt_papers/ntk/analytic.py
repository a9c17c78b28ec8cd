r"""Infinite-width NNGP and NTK of fully-connected nets (paper 22).

Jacot, Gabriel, Hongler, `Neural Tangent Kernel: Convergence and
Generalization in Neural Networks <https://arxiv.org/abs/1806.07572>`_,
NeurIPS 2018 (Theorem 1 and Proposition 1).

For the net of :class:`~jaxopt_papers.ntk.models.NTKMLP` (NTK
parameterization, ``depth`` = :math:`L` hidden layers, activation
:math:`\phi`, ``w_std`` = :math:`\sigma_w`, ``b_std`` = :math:`\sigma_b`,
the paper's :math:`\beta`), as :math:`n_1, \dots, n_L \to \infty` the NTK
at initialisation converges to :math:`\Theta^{(L+1)} \otimes I_{n_{L+1}}`:

.. math::
  \begin{align*}
    \Sigma^{(1)}(x, x') &= \sigma_w^2\, x \cdot x' / n_0 + \sigma_b^2,
      \qquad \Theta^{(1)} = \Sigma^{(1)}, \\
    \Sigma^{(\ell+1)} &= \sigma_w^2\, \mathbb E_{f \sim GP(0, \Sigma^{(\ell)})}
      [\phi(f(x)) \phi(f(x'))] + \sigma_b^2, \\
    \dot\Sigma^{(\ell+1)} &= \mathbb E_{f \sim GP(0, \Sigma^{(\ell)})}
      [\phi'(f(x)) \phi'(f(x'))], \\
    \Theta^{(\ell+1)} &= \sigma_w^2\, \Theta^{(\ell)} \odot
      \dot\Sigma^{(\ell+1)} + \Sigma^{(\ell+1)}.
  \end{align*}

The paper states it for :math:`\sigma_w = 1`; the :math:`\sigma_w^2` factors
are those of neural-tangents ``stax.Dense(W_std, b_std,
parameterization='ntk')``, whose values this module matches (golden values in
``tests/ntk/analytic_test.py``, rtol 1e-5 in float64). Closed forms
(:math:`c = \Sigma_{12}/\sqrt{\Sigma_{11}\Sigma_{22}}`, clipped to
:math:`[-1, 1]` before ``arccos`` so the diagonal has no NaN,
:math:`\theta = \arccos c`):

* ReLU (arc-cosine kernel): :math:`\mathbb E = \sqrt{\Sigma_{11}\Sigma_{22}}
  (\sin\theta + (\pi - \theta) c) / (2\pi)`, :math:`\dot\Sigma = (\pi -
  \theta)/(2\pi)`;
* erf: :math:`\mathbb E = \frac{2}{\pi} \arcsin\frac{2\Sigma_{12}}
  {\sqrt{(1+2\Sigma_{11})(1+2\Sigma_{22})}}`, :math:`\dot\Sigma =
  \frac{4}{\pi} ((1+2\Sigma_{11})(1+2\Sigma_{22}) - 4\Sigma_{12}^2)^{-1/2}`.

Choices: the input kernel is divided by :math:`n_0` (neural-tangents'
convention, and what the NTK parameterization's first layer does; the paper
writes :math:`\frac{1}{n_0} x^\top x'` too); ``depth = 0`` is allowed and is
the linear model (:math:`\Theta = \Sigma^{(1)}`); an input with
:math:`\Sigma_{11} = 0` (zero input and ``b_std = 0``) gets :math:`c = 0`
instead of a NaN. The layers are a ``lax.scan`` over ``depth`` identical
steps.
"""

import dataclasses

import jax
import jax.numpy as jnp

from jaxopt_papers.core import checks
from jaxopt_papers.ntk import models

__all__ = ['AnalyticKernel', 'KINDS']

KINDS = ('ntk', 'nngp')


def _relu(s11, s22, s12):
  norm = jnp.sqrt(s11[:, None] * s22[None, :])
  safe = jnp.where(norm > 0, norm, 1.0)
  c = jnp.clip(jnp.where(norm > 0, s12 / safe, 0.0), -1.0, 1.0)
  theta = jnp.arccos(c)
  e = norm * (jnp.sqrt(1.0 - c**2) + (jnp.pi - theta) * c) / (2 * jnp.pi)
  dot = (jnp.pi - theta) / (2 * jnp.pi)
  return e, dot, s11 / 2, s22 / 2


def _erf(s11, s22, s12):
  a = 1.0 + 2.0 * s11[:, None]
  b = 1.0 + 2.0 * s22[None, :]
  arg = jnp.clip(2.0 * s12 / jnp.sqrt(a * b), -1.0, 1.0)
  e = (2.0 / jnp.pi) * jnp.arcsin(arg)
  dot = (4.0 / jnp.pi) / jnp.sqrt(jnp.maximum(a * b - 4.0 * s12**2, 0.0))
  diag = lambda s: (2.0 / jnp.pi) * jnp.arcsin(2.0 * s / (1.0 + 2.0 * s))
  return e, dot, diag(s11), diag(s22)


_EXPECTATIONS = {'relu': _relu, 'erf': _erf}


@jax.tree_util.register_static
@dataclasses.dataclass(frozen=True, kw_only=True)
class AnalyticKernel:
  """The infinite-width NTK (or NNGP) kernel of an ``NTKMLP``.

  Attributes:
    depth: Number of hidden layers :math:`L \\ge 0`.
    activation: ``'relu'`` or ``'erf'``.
    w_std: :math:`\\sigma_w > 0`.
    b_std: :math:`\\sigma_b \\ge 0` (the paper's :math:`\\beta`).
    kind: ``'ntk'`` (:math:`\\Theta^{(L+1)}`) or ``'nngp'``
      (:math:`\\Sigma^{(L+1)}`).

  ``kernel(x1 [N1, n0], x2 [N2, n0] | None) -> [N1, N2]`` (the per-output
  kernel; the net's NTK is it times :math:`I_{n_{L+1}}`).
  :meth:`kernels` returns both.
  """

  depth: int = 3
  activation: str = 'relu'
  w_std: float = 1.0
  b_std: float = 0.1
  kind: str = 'ntk'

  def __post_init__(self):
    checks.check_int('depth', self.depth, minimum=0)
    checks.check_in('activation', self.activation, models.ACTIVATIONS)
    checks.check_positive('w_std', self.w_std)
    checks.check_nonnegative('b_std', self.b_std)
    checks.check_in('kind', self.kind, KINDS)

  def kernels(
    self, x1: jax.Array, x2: jax.Array | None = None
  ) -> tuple[jax.Array, jax.Array]:
    """``(nngp, ntk)``, each ``[N1, N2]``."""
    x2 = x1 if x2 is None else x2
    x1 = x1.reshape(x1.shape[0], -1)
    x2 = x2.reshape(x2.shape[0], -1)
    n0 = x1.shape[-1]
    w2, b2 = self.w_std**2, self.b_std**2
    s12 = w2 * (x1 @ x2.T) / n0 + b2
    s11 = w2 * jnp.sum(x1**2, axis=-1) / n0 + b2
    s22 = w2 * jnp.sum(x2**2, axis=-1) / n0 + b2
    expect = _EXPECTATIONS[self.activation]

    def layer(carry, _):
      s11, s22, s12, t12 = carry
      e, dot, e11, e22 = expect(s11, s22, s12)
      s12 = w2 * e + b2
      t12 = w2 * t12 * dot + s12
      return (w2 * e11 + b2, w2 * e22 + b2, s12, t12), None

    (_, _, s12, t12), _ = jax.lax.scan(
      layer, (s11, s22, s12, s12), None, length=self.depth
    )
    return s12, t12

  def __call__(self, x1: jax.Array, x2: jax.Array | None = None) -> jax.Array:
    nngp, ntk = self.kernels(x1, x2)
    return ntk if self.kind == 'ntk' else nngp
