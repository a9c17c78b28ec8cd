r"""Federated datasets: non-IID client splits and heterogeneous problems.

Everything returns a :class:`jaxopt_papers.federated.simulator.ClientData`
(examples stacked ``[C, n_max, ...]`` with zero padding, per-client counts and
aggregation weights) built from a key; the random draws use ``jax.random``
(no NumPy randomness), the bookkeeping runs once on the host.

* :func:`dirichlet_partition`: the label-Dirichlet non-IID split (Hsu, Qi,
  Brown 2019; Yurochkin et al. 2019): for every class :math:`c`, proportions
  :math:`q_c \sim \mathrm{Dir}(\alpha 1_C)` over the clients, and the class's
  examples (shuffled) are cut into consecutive chunks of sizes
  :math:`\approx q_{c,i} n_c`. Every example goes to exactly one client;
  small ``alpha`` concentrates each class on few clients. Redrawn (with
  ``fold_in(key, attempt)``) until every client has ``min_examples``.
* :func:`dirichlet_digits`: scikit-learn's bundled 8x8 digits
  (:func:`jaxopt_papers.data.digits.load_digits`: standardized, split from
  the key, no download) split over clients this way, with the test set.
* :func:`quadratic_clients`: :math:`F_i(x) = \frac12 (x - c_i)^\top A_i
  (x - c_i)` with eigenvalues of :math:`A_i` log-uniform in
  ``[eig_min, eig_max]`` and random eigenvectors, :math:`c_i \sim
  N(0, s^2 I)` and :math:`c_{i,0}` shifted by ``linspace(-shift, shift)``
  (card 18 FedSpeed: ``eig 0.1..5, s = 2``; cards 12 FedAU / 14 FedFix:
  ``eig_min = eig_max = 1, s = 1, shift = 3``). One "example" per client
  (``(A_i, c_i)``), uniform weights, so :math:`f = \frac1C\sum_i F_i` and
  :math:`x^\star = (\sum A_i)^{-1} \sum A_i c_i` (returned).
* :func:`logistic_clients`: per-client binary logistic regression with
  client-specific true weights :math:`w_i = w + h u_i` and feature shift
  :math:`h v_i` (concept and covariate shift), and optionally unequal
  example counts.

Per-example losses for the simulator (``loss_fn(params, examples) -> [B]``):
:func:`quadratic_loss`, :func:`logistic_loss`, :func:`classification_loss`
(softmax cross-entropy of any ``apply_fn``), and :func:`accuracy`.

Example:
  >>> fed = dirichlet_digits(jax.random.key(0), num_clients=16, alpha=0.3)
  >>> fed.train.examples[0].shape      # (16, n_max, 64)
  >>> fed.train.counts.sum()           # 1438 training images in all
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.typing import ArrayLike, DTypeLike

from jaxopt_papers.core import checks
from jaxopt_papers.data import digits as digits_lib
from jaxopt_papers.federated.simulator import ClientData

__all__ = [
  'FederatedDataset',
  'Partition',
  'QuadraticClients',
  'accuracy',
  'classification_loss',
  'dirichlet_digits',
  'dirichlet_partition',
  'gather_clients',
  'logistic_clients',
  'logistic_loss',
  'quadratic_clients',
  'quadratic_loss',
  'stacked_quadratic_clients',
]


class Partition(NamedTuple):
  """Which examples each client holds (host arrays)."""

  indices: np.ndarray  # [C, n_max] int32 row indices; -1 = padding
  counts: np.ndarray  # [C] int32
  class_counts: np.ndarray  # [C, K] int32 examples of each class per client


def _dirichlet(key: jax.Array, alpha: float, shape: list[int]) -> np.ndarray:
  """Dirichlet(alpha 1) rows (last axis) by inverse-CDF gamma draws.

  ``G = F^{-1}_{alpha+1}(u_1) u_2^{1/alpha}`` is Gamma(alpha) (Marsaglia and
  Tsang's boost for small alpha), computed in log space and normalised with
  a softmax, from ``jax.random.uniform`` draws (no NumPy randomness) and
  scipy's inverse regularized incomplete gamma function. Host-side float64;
  avoids compiling jax's rejection gamma sampler (seconds on CPU).
  """
  from scipy import special

  u = np.asarray(jax.random.uniform(key, [2, *shape], jnp.float32), np.float64)
  u = np.clip(u, 1e-12, 1.0 - 1e-7)
  log_g = np.log(special.gammaincinv(alpha + 1.0, u[0])) + np.log(u[1]) / alpha
  log_g -= log_g.max(axis=-1, keepdims=True)
  g = np.exp(log_g)
  return g / g.sum(axis=-1, keepdims=True)


def dirichlet_partition(
  key: jax.Array,
  labels: ArrayLike,
  num_clients: int,
  alpha: float,
  *,
  num_classes: int | None = None,
  min_examples: int = 1,
  max_tries: int = 100,
) -> Partition:
  """Label-Dirichlet split of ``labels`` over ``num_clients`` clients.

  Args:
    key: PRNG key; attempt ``a`` uses ``fold_in(key, a)``.
    labels: ``[n]`` integer labels in ``0 .. num_classes - 1``.
    num_clients: ``C >= 1``.
    alpha: Dirichlet concentration > 0 (``inf``-like large values give a
      near-IID split, small values a skewed one).
    num_classes: ``K``; defaults to ``max(labels) + 1``.
    min_examples: Redraw until every client holds at least this many.
    max_tries: Attempts before giving up.

  Returns:
    A :class:`Partition` padded to ``n_max = max(counts)`` (within a client,
    rows are in the order of a random permutation).

  Raises:
    ValueError: on bad arguments, or (naming ``min_examples``) if no draw in
      ``max_tries`` satisfies it.
  """
  checks.check_int('num_clients', num_clients)
  checks.check_positive('alpha', alpha)
  checks.check_int('min_examples', min_examples, minimum=0)
  checks.check_int('max_tries', max_tries)
  labels = np.asarray(labels)
  if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
    raise ValueError(f'`labels` must be a 1-D int array, got {labels.dtype}')
  if num_classes is None:
    num_classes = int(labels.max()) + 1
  checks.check_int('num_classes', num_classes)
  if labels.min() < 0 or labels.max() >= num_classes:
    raise ValueError(f'`labels` must be in [0, {num_classes})')
  if min_examples * num_clients > labels.shape[0]:
    raise ValueError(
      f'`min_examples`={min_examples} x {num_clients} clients exceeds the '
      f'{labels.shape[0]} examples'
    )
  for attempt in range(max_tries):
    k_dir, k_perm = jax.random.split(jax.random.fold_in(key, attempt))
    q = _dirichlet(k_dir, alpha, [num_classes, num_clients])  # [K, C]
    order = np.asarray(jax.random.permutation(k_perm, labels.shape[0]))
    owners = np.empty(labels.shape[0], np.int64)
    for c in range(num_classes):
      rows = order[labels[order] == c]  # class c, shuffled
      cuts = np.round(np.cumsum(q[c]) * rows.shape[0]).astype(np.int64)
      sizes = np.diff(np.concatenate([[0], cuts]))
      owners[rows] = np.repeat(np.arange(num_clients), sizes)
    counts = np.bincount(owners, minlength=num_clients)
    if counts.min() >= min_examples:
      break
  else:
    raise ValueError(
      f'no Dirichlet({alpha}) split in `max_tries`={max_tries} attempts gave '
      f'every client `min_examples`={min_examples}; lower it or raise alpha'
    )
  n_max = max(int(counts.max()), 1)
  indices = np.full([num_clients, n_max], -1, np.int32)
  class_counts = np.zeros([num_clients, num_classes], np.int32)
  # Rows grouped by client, each client's in the permuted order.
  rows = order[np.argsort(owners[order], kind='stable')]
  starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
  slot = np.arange(rows.shape[0]) - starts[owners[rows]]
  indices[owners[rows], slot] = rows
  np.add.at(class_counts, (owners, labels), 1)
  return Partition(indices, counts.astype(np.int32), class_counts)


def gather_clients(
  examples: Any,
  indices: np.ndarray,
  counts: np.ndarray,
  weights: ArrayLike | None = None,
) -> ClientData:
  """Stacks ``examples`` (leaves ``[n, ...]``) by client, zero padding.

  ``indices`` is ``[C, n_max]`` with ``-1`` for padding (as in
  :class:`Partition`); ``weights`` default to ``counts / sum(counts)``.
  """
  valid = np.asarray(indices) >= 0
  safe = np.where(valid, indices, 0)

  def take(x):
    x = jnp.asarray(x)
    out = x[safe]  # [C, n_max, ...]
    keep = jnp.asarray(valid).reshape(valid.shape + (1,) * (x.ndim - 1))
    return jnp.where(keep, out, jnp.zeros_like(out))

  return ClientData.create(jax.tree.map(take, examples), counts, weights)


class FederatedDataset(NamedTuple):
  """Clients' training data plus a pooled test set."""

  train: ClientData  # examples = (x [C, n_max, d], y [C, n_max] int32)
  x_test: jax.Array  # [n_test, d]
  y_test: jax.Array  # [n_test] int32
  class_counts: jax.Array  # [C, K] int32 training examples per class


def dirichlet_digits(
  key: jax.Array,
  num_clients: int,
  alpha: float,
  *,
  test_fraction: float = 0.2,
  min_examples: int = 1,
  dtype: DTypeLike = jnp.float32,
) -> FederatedDataset:
  """The bundled digits, split over clients by label-Dirichlet(``alpha``).

  The train/test split and standardization are
  :func:`jaxopt_papers.data.digits.load_digits` with ``fold_in(key, 0)``;
  the partition uses ``fold_in(key, 1)``. Weights are ``n_i / n``.
  """
  data = digits_lib.load_digits(
    jax.random.fold_in(key, 0), test_fraction=test_fraction, dtype=dtype
  )
  part = dirichlet_partition(
    jax.random.fold_in(key, 1),
    np.asarray(data.y_train),
    num_clients,
    alpha,
    num_classes=digits_lib.NUM_CLASSES,
    min_examples=min_examples,
  )
  train = gather_clients(
    (data.x_train, data.y_train), part.indices, part.counts
  )
  return FederatedDataset(
    train=train,
    x_test=data.x_test,
    y_test=data.y_test,
    class_counts=jnp.asarray(part.class_counts),
  )


class QuadraticClients(NamedTuple):
  """Heterogeneous quadratic clients and the optimum of their mean."""

  data: ClientData  # examples = (A [C, 1, d, d], c [C, 1, d])
  x_star: jax.Array  # [d] minimiser of (1/C) sum_i F_i


def quadratic_clients(
  key: jax.Array,
  num_clients: int,
  dim: int,
  *,
  eig_min: float = 0.1,
  eig_max: float = 5.0,
  center_scale: float = 2.0,
  shift: float = 0.0,
  dtype: DTypeLike = jnp.float32,
) -> QuadraticClients:
  r"""Clients with :math:`F_i(x) = \frac12 (x - c_i)^\top A_i (x - c_i)`.

  Defaults are card 18's (FedSpeed); cards 12/14 use ``eig_min = eig_max =
  1, center_scale = 1, shift = 3``. Use with :func:`quadratic_loss`.

  Raises:
    ValueError: if ``num_clients``/``dim`` < 1, ``0 < eig_min <= eig_max``
      fails, or ``center_scale``/``shift`` is negative.
  """
  checks.check_int('num_clients', num_clients)
  checks.check_int('dim', dim)
  checks.check_positive('eig_min', eig_min)
  checks.check_positive('eig_max', eig_max)
  if eig_max < eig_min:
    raise ValueError(f'`eig_max` must be >= eig_min, got {eig_max!r}')
  checks.check_nonnegative('center_scale', center_scale)
  checks.check_nonnegative('shift', shift)
  k_eig, k_rot, k_c = jax.random.split(key, 3)
  log_eig = jax.random.uniform(
    k_eig,
    [num_clients, dim],
    minval=np.log(eig_min),
    maxval=np.log(eig_max),
  )
  eig = np.exp(np.asarray(log_eig, np.float64))
  g = np.asarray(jax.random.normal(k_rot, [num_clients, dim, dim]), np.float64)
  rot, r = np.linalg.qr(g)
  rot = rot * np.sign(np.diagonal(r, axis1=1, axis2=2))[:, None, :]
  a = np.einsum('cij,cj,ckj->cik', rot, eig, rot)
  a = 0.5 * (a + np.swapaxes(a, 1, 2))
  c = center_scale * np.asarray(
    jax.random.normal(k_c, [num_clients, dim]), np.float64
  )
  c[:, 0] += np.linspace(-shift, shift, num_clients)
  x_star = np.linalg.solve(a.sum(0), np.einsum('cij,cj->i', a, c))
  data = ClientData.create(
    (jnp.asarray(a[:, None], dtype), jnp.asarray(c[:, None], dtype)),
    np.ones([num_clients], np.int32),
    np.ones([num_clients]),
  )
  return QuadraticClients(data=data, x_star=jnp.asarray(x_star, dtype))


def stacked_quadratic_clients(
  keys: Any, num_clients: int, dim: int, **kwargs: Any
) -> QuadraticClients:
  """One :func:`quadratic_clients` problem per key, stacked on a leading axis.

  For experiments vmapped over seeds: every leaf gets a leading ``[S]`` axis
  (``keys`` is a sequence or a ``[S]`` array of keys); ``kwargs`` are
  :func:`quadratic_clients`'s.
  """
  problems = [quadratic_clients(k, num_clients, dim, **kwargs) for k in keys]
  return jax.tree.map(lambda *xs: jnp.stack(xs), *problems)


def quadratic_loss(params: jax.Array, examples: Any) -> jax.Array:
  """``[B]`` losses ``0.5 (x - c)^T A (x - c)`` for ``examples = (A, c)``."""
  a, c = examples
  diff = params[None, :] - c  # [B, d]
  return 0.5 * jnp.einsum('bi,bij,bj->b', diff, a, diff)


def logistic_clients(
  key: jax.Array,
  num_clients: int,
  dim: int,
  num_examples: int,
  *,
  heterogeneity: float = 1.0,
  min_examples: int | None = None,
  dtype: DTypeLike = jnp.float32,
) -> ClientData:
  r"""Per-client binary logistic regression with concept and feature shift.

  Client ``i`` has true weights :math:`w_i = w + h u_i` and features
  :math:`x \sim N(h v_i, I_d)`, labels :math:`y \sim
  \mathrm{Bernoulli}(\sigma(x^\top w_i))` in {0, 1}, where :math:`w, u_i,
  v_i \sim N(0, I_d)` and :math:`h` = ``heterogeneity``. Counts are
  ``num_examples``
  for every client, or uniform in ``[min_examples, num_examples]`` when
  ``min_examples`` is given (data-proportional weights). Use with
  :func:`logistic_loss`.
  """
  checks.check_int('num_clients', num_clients)
  checks.check_int('dim', dim)
  checks.check_int('num_examples', num_examples)
  checks.check_int('min_examples', min_examples, allow_none=True)
  if min_examples is not None and min_examples > num_examples:
    raise ValueError(
      f'`min_examples` must be <= num_examples, got {min_examples!r}'
    )
  checks.check_nonnegative('heterogeneity', heterogeneity)
  low = num_examples if min_examples is None else min_examples
  x, y, counts = _logistic_draw(
    key, heterogeneity, num_clients, dim, num_examples, low, dtype
  )
  return ClientData.create((x, y), np.asarray(counts))


@jax.jit(static_argnums=(2, 3, 4, 5, 6))
def _logistic_draw(
  key, heterogeneity, num_clients, dim, num_examples, low, dtype
):
  k_w, k_u, k_v, k_x, k_y, k_n = jax.random.split(key, 6)
  w = jax.random.normal(k_w, [dim])
  u = jax.random.normal(k_u, [num_clients, dim])
  v = jax.random.normal(k_v, [num_clients, dim])
  w_i = w[None, :] + heterogeneity * u  # [C, d]
  x = jax.random.normal(k_x, [num_clients, num_examples, dim])
  x = x + heterogeneity * v[:, None, :]
  logits = jnp.einsum('cnd,cd->cn', x, w_i)
  y = jax.random.bernoulli(k_y, jax.nn.sigmoid(logits)).astype(jnp.int32)
  counts = jax.random.randint(k_n, [num_clients], low, num_examples + 1)
  valid = jnp.arange(num_examples)[None, :] < counts[:, None]
  x = jnp.where(valid[:, :, None], x, 0.0).astype(dtype)
  y = jnp.where(valid, y, 0)
  return x, y, counts


def logistic_loss(
  params: jax.Array, examples: Any, l2: float = 0.0
) -> jax.Array:
  """``[B]`` binary cross-entropy of ``sigmoid(x @ w)`` (+ ``l2/2 ||w||^2``).

  ``examples = (x [B, d], y [B])`` with labels in {0, 1}.
  """
  x, y = examples
  logits = x @ params
  losses = optax.sigmoid_binary_cross_entropy(logits, y.astype(logits.dtype))
  return losses + 0.5 * l2 * jnp.sum(params * params)


def classification_loss(
  apply_fn: Callable[[Any, jax.Array], jax.Array],
) -> Callable[[Any, Any], jax.Array]:
  """``loss(params, (x, y)) -> [B]`` softmax cross-entropy of ``apply_fn``."""

  def loss(params, examples):
    x, y = examples
    logits = apply_fn(params, x)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y)

  return loss


def accuracy(
  apply_fn: Callable[[Any, jax.Array], jax.Array],
  params: Any,
  x: ArrayLike,
  y: ArrayLike,
) -> jax.Array:
  """Fraction of ``argmax apply_fn(params, x) == y``."""
  return jnp.mean(jnp.argmax(apply_fn(params, x), axis=-1) == y)
