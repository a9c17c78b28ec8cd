r"""Gradient-flow predictions of kernel (NTK) regression under MSE (paper 22).

Jacot, Gabriel, Hongler, `Neural Tangent Kernel: Convergence and
Generalization in Neural Networks <https://arxiv.org/abs/1806.07572>`_,
NeurIPS 2018 (Sec. 5, least-squares regression).

With a constant kernel :math:`\Theta` (the infinite-width limit, or a wide
net's kernel at initialisation) gradient flow with learning rate :math:`\eta`
on :math:`\frac12 \sum_i \lVert f(x_i) - y_i \rVert^2` is the linear ODE
:math:`\partial_t f_t(X) = -\eta\, \Theta(X, X) (f_t(X) - y)`, so

.. math::
  \begin{align*}
    f_t(X) &= y + e^{-\eta \Theta t} (f_0(X) - y), \\
    f_t(x) &= f_0(x) + \Theta(x, X)\, \Theta^{-1} (I - e^{-\eta \Theta t})
      (y - f_0(X)),
  \end{align*}

and at :math:`t = \infty` the training labels are interpolated and the test
prediction is :math:`f_0(x) + \Theta(x, X) \Theta^{-1} (y - f_0(X))`. Both
are computed from one eigendecomposition :math:`\Theta = V \Lambda V^\top`
(``-expm1(-eta lambda t) / lambda`` is used for :math:`\Theta^{-1}(I -
e^{-\eta\Theta t})`, which stays finite, :math:`\to \eta t`, for tiny
eigenvalues; ``t = inf`` takes the limit with eigenvalues below
``eigen_floor`` times the largest treated as zero, i.e. a pseudo-inverse).

Conventions (choices; the paper is silent): the loss is the *sum* over
training points of ``0.5 * ||f - y||^2`` (so discrete GD with step ``eta``
for ``t`` steps approximates time ``t``; neural-tangents' ``predict``
normalises by ``y.size``, i.e. uses ``eta / y.size``); the kernel is the
per-output (traced) ``[N, N]`` kernel and output columns evolve
independently (:math:`\Theta \otimes I`). ``diag_reg`` adds ``diag_reg *
I`` to :math:`\Theta(X, X)`. Run it in float64 for kernels with small
eigenvalues.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxopt_papers.core import checks

__all__ = ['MSEPredictor', 'gradient_descent_mse']


class MSEPredictor(NamedTuple):
  """Eigendecomposition of the train kernel and the train residual."""

  eigvals: jax.Array  # [N]
  eigvecs: jax.Array  # [N, N]
  learning_rate: jax.Array
  eigen_floor: float

  def _factors(self, t):
    """``(exp(-eta lam t), (1 - exp(-eta lam t)) / lam)``, each ``[T, N]``."""
    t = jnp.asarray(t, self.eigvals.dtype).reshape(-1, 1)
    lam = self.eigvals[None, :]
    rate = self.learning_rate * lam
    inf = jnp.isinf(t)
    t_fin = jnp.where(inf, 0.0, t)
    decay = jnp.where(inf, 0.0, jnp.exp(-rate * t_fin))
    zero = lam <= self.eigen_floor * jnp.max(self.eigvals)
    safe = jnp.where(zero, 1.0, lam)
    gain = jnp.where(
      inf,
      jnp.where(zero, 0.0, 1.0 / safe),
      jnp.where(
        zero, self.learning_rate * t_fin, -jnp.expm1(-rate * t_fin) / safe
      ),
    )
    return decay, gain

  def predict(
    self,
    t: jax.typing.ArrayLike,
    fx_train_0: jax.Array,
    y_train: jax.Array,
    fx_test_0: jax.Array | None = None,
    k_test_train: jax.Array | None = None,
  ) -> tuple[jax.Array, jax.Array | None]:
    """Outputs at time(s) ``t`` (scalar or ``[T]``; ``jnp.inf`` allowed).

    Args:
      t: Time, in units where one GD step of size ``learning_rate`` is 1.
      fx_train_0: ``f_0(X) [N, K]`` (or ``[N]``).
      y_train: Labels, the shape of ``fx_train_0``.
      fx_test_0: ``f_0(x) [M, K]``, optional.
      k_test_train: ``Theta(x, X) [M, N]``, needed with ``fx_test_0``.

    Returns:
      ``(fx_train_t, fx_test_t)`` with a leading ``[T]`` axis when ``t`` is
      an array (``fx_test_t`` is ``None`` without test inputs).
    """
    scalar = jnp.ndim(t) == 0
    decay, gain = self._factors(t)
    v = self.eigvecs
    squeeze = fx_train_0.ndim == 1
    f0 = fx_train_0.reshape(fx_train_0.shape[0], -1)
    y = y_train.reshape(f0.shape)
    r = v.T @ (f0 - y)  # residual in the eigenbasis, [N, K]
    train = y[None] + jnp.einsum('ij,tj,jk->tik', v, decay, r)
    test = None
    if fx_test_0 is not None:
      if k_test_train is None:
        raise ValueError('`k_test_train` is needed with `fx_test_0`')
      g0 = fx_test_0.reshape(fx_test_0.shape[0], -1)
      kv = k_test_train @ v  # [M, N]
      test = g0[None] - jnp.einsum('mj,tj,jk->tmk', kv, gain, r)
      test = test[..., 0] if squeeze else test
      test = test[0] if scalar else test
    train = train[..., 0] if squeeze else train
    train = train[0] if scalar else train
    return train, test


def gradient_descent_mse(
  k_train_train: jax.Array,
  learning_rate: jax.typing.ArrayLike = 1.0,
  diag_reg: float = 0.0,
  eigen_floor: float = 1e-12,
) -> MSEPredictor:
  """Prepares :meth:`MSEPredictor.predict` for the kernel ``[N, N]``.

  Raises:
    ValueError: if the kernel is not square or ``diag_reg``/``eigen_floor``
      is negative.
  """
  if (
    k_train_train.ndim != 2 or k_train_train.shape[0] != k_train_train.shape[1]
  ):
    raise ValueError(
      f'`k_train_train` must be square [N, N], got {k_train_train.shape}'
    )
  checks.check_nonnegative('diag_reg', diag_reg)
  checks.check_nonnegative('eigen_floor', eigen_floor)
  n = k_train_train.shape[0]
  k = 0.5 * (k_train_train + k_train_train.T)
  k = k + diag_reg * jnp.eye(n, dtype=k.dtype)
  eigvals, eigvecs = jnp.linalg.eigh(k)
  return MSEPredictor(
    eigvals, eigvecs, jnp.asarray(learning_rate, k.dtype), eigen_floor
  )
