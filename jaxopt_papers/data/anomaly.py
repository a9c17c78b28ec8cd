r"""A synthetic IoT-like anomaly-detection dataset for federated PCA.

Built from a key (no downloads), after the setting of the FedPCA paper's
experiments (UNSW-NB15 / ToN-IoT normal traffic split over clients):

* Normal class: :math:`x = B\,\mathrm{diag}(\sigma)\,s + \epsilon`, with
  :math:`B \in \mathbb{R}^{d\times k}` a random orthonormal frame (``basis``),
  :math:`s \sim N(0, I_k)`, ``signal_std`` :math:`\sigma` (default (3, 2))
  and :math:`\epsilon \sim N(0, \nu^2 I_d)` (``noise_std`` :math:`\nu`,
  default 0.5).
* Non-IID split, as the official code does: the pooled normal training
  samples are sorted on one feature (``sort_feature``) and cut into
  ``num_clients`` contiguous chunks of ``samples_per_client`` rows
  (``non_iid=False``: a random order instead). Each client then
  standardises its own data (mean 0, std 1 per feature, the code's
  per-client ``StandardScaler``).
* ``pooled``: the concatenation of the clients' standardised data, whose
  PCA is the minimiser of the federated objective (the centralised
  reference).
* Test set: ``num_test`` normal points and ``num_test`` anomalies, each an
  independent normal point plus a vector orthogonal to :math:`B`, in a
  random direction, of norm :math:`a \nu \sqrt{d - k}` (``anomaly_scale``
  :math:`a`, default 1.5: 1.5 times the expected off-subspace norm of a
  normal point, "energy off the subspace"); the test set is
  standardised with its own statistics (as the code's test utilities do).
  ``y_test`` is 1 for anomalies.

Example:
  >>> problem = anomaly_clients(jax.random.key(0), num_clients=20, dim=20)
  >>> problem.data.examples.shape                 # [20, 500, 20]
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import DTypeLike

from jaxopt_papers.core import checks
from jaxopt_papers.federated import simulator

__all__ = ['AnomalyProblem', 'anomaly_clients', 'standardize']


class AnomalyProblem(NamedTuple):
  """A federated anomaly-detection problem (see the module docstring)."""

  data: simulator.ClientData  # examples [C, n, d], per-client standardised
  pooled: jax.Array  # [C n, d] concatenated standardised training data
  basis: jax.Array  # [d, k] true normal subspace (orthonormal)
  x_test: jax.Array  # [2 m, d] standardised test points
  y_test: jax.Array  # [2 m] int32, 1 = anomaly


def standardize(x: jax.Array, eps: float = 1e-12) -> jax.Array:
  """Each column of ``x [n, d]`` to mean 0 and (population) std 1."""
  mean = jnp.mean(x, axis=0, keepdims=True)
  std = jnp.std(x, axis=0, keepdims=True)
  return (x - mean) / jnp.where(std > eps, std, 1.0)


def _normal(key, n, basis, signal_std, noise_std, dtype):
  k_s, k_e = jax.random.split(key)
  d, k = basis.shape
  s = (
    jax.random.normal(k_s, (n, k), dtype) * jnp.asarray(signal_std, dtype)[None]
  )
  return s @ basis.T + noise_std * jax.random.normal(k_e, (n, d), dtype)


def anomaly_clients(
  key: jax.Array,
  num_clients: int = 20,
  dim: int = 20,
  *,
  rank: int = 2,
  samples_per_client: int = 500,
  signal_std: tuple[float, ...] = (3.0, 2.0),
  noise_std: float = 0.5,
  anomaly_scale: float = 1.5,
  num_test: int = 500,
  sort_feature: int = 0,
  non_iid: bool = True,
  dtype: DTypeLike = jnp.float32,
) -> AnomalyProblem:
  """Builds the dataset (see the module docstring).

  Raises:
    ValueError: on a non-positive size, ``rank > dim``, a ``signal_std``
      without ``rank`` positive entries, a negative ``noise_std`` /
      ``anomaly_scale``, or ``sort_feature`` outside ``[0, dim)``.
  """
  checks.check_int('num_clients', num_clients)
  checks.check_int('dim', dim)
  checks.check_int('rank', rank)
  checks.check_int('samples_per_client', samples_per_client, minimum=2)
  checks.check_int('num_test', num_test)
  if rank > dim:
    raise ValueError(f'`rank` must be <= `dim` ({dim}), got {rank}')
  if len(signal_std) != rank or not all(
    checks.is_real(s) and s > 0 for s in signal_std
  ):
    raise ValueError(
      f'`signal_std` must have `rank` = {rank} positive entries, got '
      f'{signal_std!r}'
    )
  checks.check_nonnegative('noise_std', noise_std)
  checks.check_nonnegative('anomaly_scale', anomaly_scale)
  checks.check_int('sort_feature', sort_feature, minimum=0)
  if sort_feature >= dim:
    raise ValueError(
      f'`sort_feature` must be in [0, {dim}) (`dim`), got {sort_feature}'
    )
  k_b, k_train, k_order, k_tn, k_ta, k_dir = jax.random.split(key, 6)
  basis, _ = jnp.linalg.qr(jax.random.normal(k_b, (dim, rank), dtype))
  n = num_clients * samples_per_client
  x = _normal(k_train, n, basis, signal_std, noise_std, dtype)
  if non_iid:
    order = jnp.argsort(x[:, sort_feature])
  else:
    order = jax.random.permutation(k_order, n)
  chunks = x[order].reshape(num_clients, samples_per_client, dim)
  examples = jax.vmap(standardize)(chunks)
  normal = _normal(k_tn, num_test, basis, signal_std, noise_std, dtype)
  base = _normal(k_ta, num_test, basis, signal_std, noise_std, dtype)
  g = jax.random.normal(k_dir, (num_test, dim), dtype)
  off = g - (g @ basis) @ basis.T
  norm = jnp.linalg.norm(off, axis=1, keepdims=True)
  off = off / jnp.maximum(norm, jnp.finfo(dtype).tiny)
  # Normal points' expected residual off the subspace: noise_std sqrt(d - k).
  off_scale = anomaly_scale * noise_std * (dim - rank) ** 0.5
  anomalies = base + off_scale * off
  x_test = standardize(jnp.concatenate([normal, anomalies]))
  y_test = jnp.concatenate(
    [jnp.zeros([num_test], jnp.int32), jnp.ones([num_test], jnp.int32)]
  )
  return AnomalyProblem(
    data=simulator.ClientData.create(examples),
    pooled=examples.reshape(n, dim),
    basis=basis,
    x_test=x_test,
    y_test=y_test,
  )
