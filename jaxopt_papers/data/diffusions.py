r"""Simulated diffusions: an Euler–Maruyama path simulator and the OU example.

:func:`euler_maruyama` simulates ``dX = b(X) dt + \sigma(X) dW`` (diagonal
noise, time-homogeneous coefficients) on the grid ``t_k = k dt`` as one
``lax.scan`` over time, mapped over paths with
:func:`jaxopt_papers.core.parallel.client_map` (``jax.vmap`` on one device,
``jax.shard_map`` over a ``'paths'`` mesh axis on many). Path ``i`` at step
``k`` draws its Gaussian increment from ``fold_in(fold_in(key, i), k)`` with
``i`` the *global* path index, so the paths are the same on any number of
devices.

:class:`OrnsteinUhlenbeck` is the test problem of the policy-evaluation paper
(Jia & Zhou, JMLR 2022; card 23): ``dX = -kappa X dt + sigma dW``, running
reward ``r(x) = x^2``, discount rate ``beta``, whose discounted value

.. math::
  J(x) = E\Big[\int_0^\infty e^{-\beta t} X_t^2 dt \,\Big|\, X_0 = x\Big]
       = \frac{x^2}{\beta + 2\kappa}
         + \frac{\sigma^2}{\beta(\beta + 2\kappa)}

is linear in the features ``phi(x) = (1, x^2)``
(:func:`jaxopt_papers.rl.martingale_pe.quadratic_features`) with
``theta* = (sigma^2 / (beta (beta + 2 kappa)), 1 / (beta + 2 kappa))``
(``(1/3, 1/3)`` for ``kappa = sigma = beta = 1``).

Example:
  >>> ou = OrnsteinUhlenbeck()
  >>> paths = ou.simulate(jax.random.key(0), num_paths=2000, dt=0.01,
  ...                     num_steps=800)
  >>> paths.x.shape, paths.reward.shape      # (2000, 801), (2000, 801)
"""

import dataclasses
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.sharding import Mesh
from jax.typing import ArrayLike

from jaxopt_papers.core import checks, parallel
from jaxopt_papers.rl.martingale_pe import Paths

__all__ = ['OrnsteinUhlenbeck', 'euler_maruyama']


def euler_maruyama(
  key: jax.Array,
  drift: Callable[[jax.Array], jax.Array],
  diffusion: Callable[[jax.Array], jax.Array],
  x0: ArrayLike,
  dt: float,
  num_steps: int,
  *,
  mesh: Mesh | None = None,
  axis_name: str = 'paths',
) -> jax.Array:
  r"""Simulates ``P`` Euler–Maruyama paths from the initial states ``x0``.

  .. math::
    X_{k+1} = X_k + b(X_k)\,\Delta t + \sigma(X_k)\sqrt{\Delta t}\;\xi_k,
    \qquad \xi_k \sim N(0, I).

  Args:
    key: Typed PRNG key; path ``i`` step ``k`` uses
      ``normal(fold_in(fold_in(key, i), k))``.
    drift: ``b``: one state ``x`` (shape ``[]`` or ``[d]``) to the same shape.
    diffusion: ``sigma``: one state to the same shape (diagonal noise).
    x0: ``[P, ...]`` initial states, one per path.
    dt: Time step ``> 0``.
    num_steps: Number of steps ``N >= 1``.
    mesh: ``None`` maps paths with ``jax.vmap``; a mesh with axis
      ``axis_name`` shards them (``P`` divisible by its size).
    axis_name: Name of the path axis.

  Returns:
    ``[P, N + 1, ...]`` paths, ``x0`` included.
  """
  checks.check_positive('dt', dt)
  checks.check_int('num_steps', num_steps)
  x0 = jnp.asarray(x0)
  if not jnp.issubdtype(x0.dtype, jnp.floating):
    x0 = x0.astype(jnp.result_type(float))
  if x0.ndim < 1:
    raise ValueError(f'`x0` must have a leading path axis, got {x0.shape}')
  sqrt_dt = math.sqrt(dt)

  def one_path(index, x_init, key):
    path_key = jax.random.fold_in(key, index)

    def body(x, k):
      xi = jax.random.normal(jax.random.fold_in(path_key, k), x.shape, x.dtype)
      new_x = x + drift(x) * dt + diffusion(x) * sqrt_dt * xi
      return new_x, new_x

    steps = jnp.arange(num_steps, dtype=jnp.int32)
    _, xs = jax.lax.scan(body, x_init, steps)
    return jnp.concatenate([x_init[None], xs], axis=0)

  mapped = parallel.client_map(
    one_path, mesh, axis_name, in_axes=(0, 0, None), out_axes=0
  )
  index = jnp.arange(x0.shape[0], dtype=jnp.int32)
  return mapped(index, x0, key)


@jax.tree_util.register_static
@dataclasses.dataclass(frozen=True, kw_only=True)
class OrnsteinUhlenbeck:
  r"""``dX = -kappa X dt + sigma dW``, reward ``x^2``, discount rate ``beta``.

  Attributes:
    kappa: Mean-reversion rate ``> 0``.
    sigma: Volatility ``> 0``.
    discount: Discount rate :math:`\beta > 0` (per unit time).
  """

  kappa: float = 1.0
  sigma: float = 1.0
  discount: float = 1.0

  def __post_init__(self):
    checks.check_positive('kappa', self.kappa)
    checks.check_positive('sigma', self.sigma)
    checks.check_positive('discount', self.discount)

  def drift(self, x: jax.Array) -> jax.Array:
    return -self.kappa * x

  def diffusion(self, x: jax.Array) -> jax.Array:
    return self.sigma * jnp.ones_like(x)

  def reward(self, x: jax.Array) -> jax.Array:
    return x * x

  @property
  def stationary_std(self) -> float:
    """Standard deviation of the stationary law ``N(0, sigma^2 / 2 kappa)``."""
    return self.sigma / math.sqrt(2.0 * self.kappa)

  @property
  def theta_star(self) -> tuple[float, float]:
    """Exact coefficients of ``J`` on ``phi(x) = (1, x^2)``."""
    b, k, s = self.discount, self.kappa, self.sigma
    return (s * s / (b * (b + 2.0 * k)), 1.0 / (b + 2.0 * k))

  def value(self, x: ArrayLike) -> jax.Array:
    """The exact discounted value ``J(x)`` (closed form)."""
    c0, c1 = self.theta_star
    x = jnp.asarray(x)
    return c0 + c1 * x * x

  def sample_x0(self, key: jax.Array, num_paths: int) -> jax.Array:
    """``[num_paths]`` draws from the stationary law."""
    return self.stationary_std * jax.random.normal(key, (num_paths,))

  def simulate(
    self,
    key: jax.Array,
    num_paths: int,
    dt: float,
    num_steps: int,
    *,
    x0: ArrayLike | None = None,
    mesh: Mesh | None = None,
  ) -> Paths:
    """:class:`~jaxopt_papers.rl.martingale_pe.Paths` from ``x0``.

    ``x0`` defaults to stationary draws from ``key``.
    """
    init_key, noise_key = jax.random.split(key)
    if x0 is None:
      x0 = self.sample_x0(init_key, num_paths)
    x = euler_maruyama(
      noise_key, self.drift, self.diffusion, x0, dt, num_steps, mesh=mesh
    )
    return Paths(x=x, reward=self.reward(x))
