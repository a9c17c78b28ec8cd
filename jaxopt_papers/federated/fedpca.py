r"""Federated PCA with ADMM: FedPG (Grassmann manifold) and FedPE (Euclidean).

Nguyen, Le, Nguyen, Bao, Seneviratne, Hong, Tran, "Federated PCA on
Grassmann Manifold for IoT Anomaly Detection", IEEE/ACM Transactions on
Networking 2024, arXiv:2407.07421;
official code: dual-grp/FedPCA_AnomalyDetection.

Client :math:`i` holds :math:`N_i` examples :math:`X_i \in \mathbb{R}^{d
\times N_i}` (the rows of its ``ClientData.examples``, ``[C, n_max, d]``).
The consensus problem over frames :math:`U_i, Z \in \mathbb{R}^{d \times k}`
(``params`` is the server's :math:`Z`, ``[d, k]``) is

.. math::
  \min \sum_i \frac{1}{N_i}\|(I - U_i U_i^\top) X_i\|_F^2
  \quad \text{s.t.} \quad U_i = Z,

solved by the official code's ADMM, every penalty divided by :math:`N_i`
(``rho`` is :math:`\rho`, ``learning_rate`` :math:`\eta`,
``num_local_steps`` :math:`E`):

.. math::
  \begin{align*}
    \ell_i(U) &= \tfrac{1}{N_i}\|(I-UU^\top)X_i\|_F^2
      + \tfrac{1}{N_i}\big[\langle Y_i, U - Z\rangle
      + \tfrac{\rho}{2}\|U - Z\|_F^2\big]
      && \text{(FedPG, } \texttt{method='pg'}) \\
    \ell_i^{PE}(U) &= \ell_i(U) + \tfrac{1}{N_i}\big[\langle T_i, h(U)\rangle
      + \tfrac{\rho}{2}\|h(U)\|_F^2\big], \quad
      h(U) = \max(0, U^\top U - I)^2
      && \text{(FedPE, } \texttt{method='pe'})
  \end{align*}

Round :math:`t` (:math:`S_t` drawn WITHOUT replacement, :math:`|S_t| =
\lfloor s C \rfloor` clients, ``sampling_fraction`` :math:`s`):

.. math::
  \begin{align*}
    Y_i &\leftarrow Y_i + \rho (U_i - Z), \quad
      [T_i \leftarrow T_i + \rho\, h(U_i)] && i \in S_t
      \text{ (dual step with the current } Z) \\
    U_i &\leftarrow \mathrm{qf}\big(U_i - \eta (I - U_iU_i^\top)
      \nabla\ell_i(U_i)\big)
      && \text{FedPG, } E \text{ times} \\
    U_i &\leftarrow U_i - \eta \nabla\ell_i^{PE}(U_i)
      && \text{FedPE, } E \text{ times} \\
    Z &\leftarrow \textstyle\sum_{i\in S_t} N_i U_i / \sum_{j\in S_t} N_j
      && \texttt{aggregate='frames'}
  \end{align*}

where :math:`\mathrm{qf}` is the Q factor of a thin QR with the signs of
:math:`\mathrm{diag}(R)` moved into Q (so :math:`\mathrm{diag}(R) > 0`).
``aggregate='projectors'`` replaces the frame average by the top-:math:`k`
eigenvectors of :math:`\sum_{i \in S_t} N_i U_iU_i^\top / \sum_{j\in S_t}
N_j` (each column's largest-magnitude entry made positive), the
Grassmann-proper average; it is an explicit option, not the paper's rule.
Clients keep :math:`U_i, Y_i, T_i` between rounds (warm start); clients
outside :math:`S_t` keep stale ones. Initialisation (code): :math:`U_i =
Y_i = Z_0` and :math:`T_i = Z_0^\top Z_0` with :math:`Z_0` = ``params``
(the code draws it uniform in [0, 1), not orthonormal).

How it sits on the round-solver base
(:class:`~jaxopt_papers.federated.rounds.ServerRoundSolver`): the base's
``loss_fn`` is the per-example reconstruction error
:func:`reconstruction_loss` (so ``evaluate`` and the trace's ``loss`` are
the pooled objective :math:`\sum_i p_i F_i(Z)`, :math:`p_i = N_i / N`); the
local steps run in the base's
:class:`~jaxopt_papers.federated.simulator.LocalTrainer`, starting from the
client's own :math:`U_i` (not from :math:`Z`), with the ADMM terms added by
the ``grad_fn`` hook (which reads :math:`Z, Y_i, T_i, N_i` from its
``client_state``) and the step (tangent projection + QR retraction for
FedPG, plain gradient descent for FedPE) as the ``client_tx`` transform;
participation is the base's mask (default
:class:`~jaxopt_papers.federated.participation.FixedSize`, the code's
sampling without replacement); the server's average is a psum over the
clients axis and ``server_tx`` (default ``optax.scale(1)``) adds
:math:`Z_{new} - Z` to :math:`Z`, so the default sets :math:`Z = Z_{new}`
(another ``server_tx`` is an extension, not the paper). Bytes: each
participant downloads :math:`Z` and uploads :math:`U_i` (:math:`dk` floats
each way, the base's count, also with ``aggregate='projectors'``: the
server forms :math:`U_iU_i^\top` itself).

.. note:: Deviations from the official code (all documented here).

  * **Frobenius product.** The code writes
    ``torch.sum(torch.inner(Y, U - Z))``; for matrices ``torch.inner(A, B) =
    A B^T``, so that sum is :math:`(1^\top A)(B^\top 1)`, a product of column
    sums, not :math:`\langle A, B\rangle_F`. We use the true Frobenius
    product ``jnp.vdot`` (also for :math:`\langle T_i, h(U)\rangle`).
  * **QR signs.** The code keeps LAPACK's Q, whose column signs may flip
    from step to step and client to client, which corrupts the frame
    average; we canonicalise with :math:`\mathrm{sign}(\mathrm{diag}\,R)`.
  * **Dual-step schedule.** The code sends :math:`Z` (and runs the dual
    step) at the start of round :math:`t` to the clients of round
    :math:`t-1`, so a newly sampled client trains against the :math:`Z` of
    its last participation. We run the dual step with the current
    :math:`Z` on the clients of round :math:`t`, as the paper's algorithm
    reads (with penalties divided by :math:`N_i` the coupling is weak and
    the difference is small).
  * **Sample size.** :math:`\lfloor sC + 10^{-9}\rfloor`, at least 1 (the
    code's ``int(s * C)`` may round 28.999... down, and 0 clients crashes
    its average).
  * As in the code, the ADMM :math:`Z`-update (average of :math:`U_i +
    Y_i/\rho`) is NOT used and :math:`Z` is NOT re-orthonormalised; use
    :func:`anomaly_score` (which orthonormalises) or ``orthonormalize``.
  * ``batch_size`` (minibatch local steps) is an extension; the code
    takes full-batch steps (``None``, the default). The penalties are
    divided by :math:`N_i` either way.
  * Defaults: the code's :math:`\rho = 0.01`, :math:`E = 30`, :math:`s =
    0.1`; ``learning_rate = 0.01`` (the code's README uses 1e-4 on its real
    datasets; on the standardised synthetic data of the experiment 1e-2
    suits FedPG, while FedPE, an unconstrained quartic, is run at 1e-3).

Example:
  >>> solver = FedPCA(num_clients=20, method='pg', learning_rate=0.01)
  >>> z0 = jax.random.uniform(key, (d, 2))            # the code's init
  >>> state, trace = jax.jit(solver.run, static_argnums=3)(
  ...     z0, jax.random.key(1), data, 20)
  >>> scores = anomaly_score(x_test, state.params)
"""

import dataclasses
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.typing import ArrayLike

from jaxopt_papers.core import checks
from jaxopt_papers.federated import participation as participation_lib
from jaxopt_papers.federated import rounds, simulator

__all__ = [
  'FedPCA',
  'FedPCAState',
  'FedPCATrace',
  'anomaly_score',
  'hinge',
  'orthonormalize',
  'projection_distance',
  'reconstruction_loss',
  'retract',
]

_METHODS = ('pg', 'pe')
_AGGREGATES = ('frames', 'projectors')


# ------------------------------------------------------------ public pieces


def reconstruction_loss(u: jax.Array, x: jax.Array) -> jax.Array:
  r"""Per-example :math:`\|x - UU^\top x\|^2` for ``x [B, d]``, ``u [d, k]``.

  Its mean over a client's rows is :math:`\frac{1}{N_i}\|(I - UU^\top)
  X_i\|_F^2`; ``u`` need not be orthonormal.
  """
  residual = x - (x @ u) @ u.T
  return jnp.sum(residual**2, axis=-1)


def retract(u: jax.Array) -> jax.Array:
  r"""QR retraction: the Q of ``u = QR`` with :math:`\mathrm{diag}(R) \ge 0`.

  LAPACK may return Q with flipped column signs; multiplying each column by
  :math:`\mathrm{sign}(R_{jj})` makes the factorisation unique (a zero
  :math:`R_{jj}` keeps the sign +1).
  """
  q, r = jnp.linalg.qr(u)
  signs = jnp.where(jnp.diagonal(r, axis1=-2, axis2=-1) < 0, -1.0, 1.0)
  return q * signs[..., None, :].astype(q.dtype)


orthonormalize = retract


def hinge(u: jax.Array) -> jax.Array:
  r"""FedPE's penalty :math:`h(U) = \max(0, U^\top U - I)^2` (elementwise)."""
  gram = u.T @ u - jnp.eye(u.shape[-1], dtype=u.dtype)
  return jnp.maximum(gram, 0.0) ** 2


def projection_distance(u: ArrayLike, v: ArrayLike) -> jax.Array:
  r""":math:`\|P_U - P_V\|_F / \sqrt 2` between the column spans of two frames.

  Both are orthonormalised first (:func:`retract`), so any bases of the
  same subspaces give 0; for :math:`k`-dimensional subspaces the value is
  :math:`\|\sin\Theta\|_F \in [0, \sqrt k]` (principal angles
  :math:`\Theta`).
  """
  qu, qv = retract(jnp.asarray(u)), retract(jnp.asarray(v))
  diff = qu @ qu.T - qv @ qv.T
  return jnp.sqrt(jnp.sum(diff**2) / 2.0)


def _min_max(a: jax.Array) -> jax.Array:
  """Each column scaled to [0, 1] over the rows (constant columns -> 0)."""
  low = jnp.min(a, axis=0, keepdims=True)
  span = jnp.max(a, axis=0, keepdims=True) - low
  return (a - low) / jnp.where(span > 0, span, 1.0)


def anomaly_score(
  x: ArrayLike, z: ArrayLike, *, scale: bool = True
) -> jax.Array:
  r"""Projection residual of each row of ``x [n, d]`` against the span of ``z``.

  ``z [d, k]`` is orthonormalised (:func:`retract`; the paper's :math:`Z` is
  an average of frames, not orthonormal), the reconstruction is
  :math:`\hat x = x QQ^\top` and the score :math:`\sum_j (\tilde x_j -
  \tilde{\hat x}_j)^2`, where, as in the code's test utilities, ``x`` and
  :math:`\hat x` are each min-max scaled per feature over the ``n`` rows
  (``scale=False``: the raw residual :math:`\|x - \hat x\|^2`). Larger is
  more anomalous; ``x`` should be standardised as the training data was.
  """
  x = jnp.asarray(x)
  q = retract(jnp.asarray(z)).astype(x.dtype)
  recon = (x @ q) @ q.T
  if scale:
    x, recon = _min_max(x), _min_max(recon)
  return jnp.sum((x - recon) ** 2, axis=-1)


def _pg_step(learning_rate: float) -> optax.GradientTransformation:
  """FedPG's client step as an optax transform (needs ``params``).

  ``u -> qf(u - lr (I - u u^T) g)``, returned as the update ``new - u``.
  """

  def init(params):
    del params
    return optax.EmptyState()

  def update(updates, state, params=None):
    if params is None:
      raise ValueError('the FedPG step needs `params`')
    tangent = updates - params @ (params.T @ updates)
    new = retract(params - learning_rate * tangent)
    return new - params, state

  return optax.GradientTransformation(init, update)


# ------------------------------------------------------------------ solver


class FedPCAState(NamedTuple):
  """State of :class:`FedPCA`; ``frames``, ``duals``, ``hinge_duals`` are
  per client (sharded over the clients axis under a mesh)."""

  round: jax.Array  # shape=(), int32
  params: jax.Array  # the server's Z [d, k]
  server_state: optax.OptState
  participation_state: Any
  key: jax.Array
  frames: jax.Array  # U_i [C, d, k]
  duals: jax.Array  # Y_i [C, d, k]
  hinge_duals: jax.Array  # T_i [C, k, k] (FedPE; carried, unused by FedPG)


class FedPCATrace(NamedTuple):
  """One row per round (``loss``: pooled objective at the round's start Z)."""

  loss: jax.Array
  grad_norm: jax.Array
  num_participants: jax.Array
  bytes_up: jax.Array
  bytes_down: jax.Array
  client_loss: jax.Array  # mean over S_t of the local augmented Lagrangian
  nonfinite: jax.Array
  metrics: Any
  frame_error: jax.Array  # max over S_t of ||U_i^T U_i - I||_F after training
  consensus: jax.Array  # max over S_t of ||U_i - Z_{t+1}||_F


class _ClientContext(NamedTuple):
  z: jax.Array
  y: jax.Array
  t: jax.Array
  count: jax.Array


@jax.tree_util.register_static
@dataclasses.dataclass(frozen=True, kw_only=True)
class FedPCA(rounds.ServerRoundSolver):
  r"""FedPG (``method='pg'``) and FedPE (``method='pe'``) over rounds.

  Args:
    num_clients: ``C`` (required: the per-client frames are allocated at
      ``init``).
    method: ``'pg'`` (Grassmann: tangent projection + QR retraction) or
      ``'pe'`` (Euclidean with the hinge penalty).
    learning_rate: Local step size :math:`\eta > 0`.
    rho: ADMM penalty :math:`\rho > 0`.
    num_local_steps: Local steps :math:`E` per round (default 30).
    sampling_fraction: :math:`s \in (0, 1]`: :math:`\max(1, \lfloor
      sC\rfloor)` clients per round, without replacement. Ignored when
      ``participation`` is given.
    aggregate: ``'frames'`` (the paper's weighted frame average) or
      ``'projectors'`` (top-:math:`k` eigenvectors of the weighted average
      of :math:`U_iU_i^\top`).
    loss_fn: Per-example loss, default :func:`reconstruction_loss` (the
      paper's; the ADMM terms are added to it).
    participation, weighting, server_tx, batch_size, eval_fn, mesh,
      axis_name: as in
      :class:`~jaxopt_papers.federated.rounds.ServerRoundSolver`
      (``weighting='data'``: :math:`N_i`-weighted, the code's).

  ``params`` (the initial :math:`Z`) is ``[d, k]`` with ``1 <= k <= d``.

  References:
    Nguyen et al., `Federated PCA on Grassmann Manifold for IoT Anomaly
    Detection <https://arxiv.org/abs/2407.07421>`_, IEEE/ACM ToN 2024.
  """

  loss_fn: simulator.LossFn = reconstruction_loss
  method: str = 'pg'
  learning_rate: float = 0.01
  rho: float = 0.01
  num_local_steps: int = 30
  sampling_fraction: float = 0.1
  aggregate: str = 'frames'

  def __post_init__(self):
    checks.check_in('method', self.method, _METHODS)
    checks.check_positive('learning_rate', self.learning_rate)
    checks.check_positive('rho', self.rho)
    checks.check_probability('sampling_fraction', self.sampling_fraction)
    checks.check_in('aggregate', self.aggregate, _AGGREGATES)
    if self.num_clients is None:
      raise ValueError('`num_clients` is required (an int >= 1), got None')
    super().__post_init__()

  @property
  def num_sampled(self) -> int:
    """Clients per round under ``sampling_fraction``."""
    return max(1, math.floor(self.sampling_fraction * self.num_clients + 1e-9))

  @property
  def client_tx(self) -> optax.GradientTransformation:
    if self.method == 'pg':
      return _pg_step(self.learning_rate)
    return optax.sgd(self.learning_rate)

  @property
  def grad_fn(self) -> simulator.GradFn:
    rho, euclidean = self.rho, self.method == 'pe'

    def grad_fn(loss, params, batch, ctx):
      cs = ctx.client_state
      scale = 1.0 / jnp.maximum(cs.count, 1).astype(params.dtype)

      def lagrangian(u):
        diff = u - cs.z
        penalty = jnp.vdot(cs.y, diff) + 0.5 * rho * jnp.sum(diff**2)
        if euclidean:
          h = hinge(u)
          penalty += jnp.vdot(cs.t, h) + 0.5 * rho * jnp.sum(h**2)
        return loss(u, batch) + scale * penalty

      return jax.value_and_grad(lagrangian)(params)

    return grad_fn

  def _participation(
    self, num_clients: int
  ) -> participation_lib.ParticipationModel:
    if self.participation is not None:
      return super()._participation(num_clients)
    self._check_data(num_clients, self.num_clients, 'num_clients')
    return participation_lib.FixedSize(
      num_clients=num_clients, num_sampled=self.num_sampled
    )

  def _check_frame(self, params: Any) -> None:
    shape = jnp.shape(params)
    if len(shape) != 2 or not 1 <= shape[1] <= shape[0]:
      raise ValueError(
        '`params` must be a frame [d, k] with rank 1 <= k <= d (dimension), '
        f'got shape {shape}'
      )

  def init(self, params: jax.Array, key: jax.Array) -> FedPCAState:
    """U_i = Y_i = Z0 = ``params``, T_i = Z0^T Z0 (the code's init)."""
    self._check_frame(params)
    params = jnp.asarray(params)
    c = self.num_clients
    frames = jnp.broadcast_to(params, (c, *params.shape))
    k = params.shape[1]
    gram = jnp.broadcast_to(params.T @ params, (c, k, k))
    state = FedPCAState(
      **self._init_fields(params, key),
      frames=frames,
      duals=frames,
      hinge_duals=gram,
    )
    return self._place(state, 'frames', 'duals', 'hinge_duals')

  def _client_round(self, z, u, y, t, examples, count, weight, active, k_round):
    """One client's round: dual step, E local steps, its part of the sums."""
    loss, grad = self._objective(z, examples, count, weight)
    y_new = y + self.rho * (u - z)
    t_new = t + self.rho * hinge(u) if self.method == 'pe' else t
    ctx = _ClientContext(z, y_new, t_new, count)
    u_new, stats = self._train(u, examples, count, k_round, ctx)
    w = self._weight(weight)
    if self.aggregate == 'frames':
      target, _ = simulator.masked_weighted_mean(
        u_new, w, active, self.axis_name
      )
    else:
      projector, _ = simulator.masked_weighted_mean(
        u_new @ u_new.T, w, active, self.axis_name
      )
      target = _top_eigenvectors(projector, z.shape[1])
    keep = lambda new, old: jnp.where(active, new, old)
    client_sum = self._participants_sum(stats.loss, active)
    eye = jnp.eye(u.shape[1], dtype=u.dtype)
    frame_error = jnp.linalg.norm(u_new.T @ u_new - eye)
    return (
      target,
      keep(u_new, u),
      keep(y_new, y),
      keep(t_new, t),
      loss,
      grad,
      client_sum,
      jnp.where(active, frame_error, 0.0),
    )

  def step(
    self, state: FedPCAState, data: simulator.ClientData
  ) -> tuple[FedPCAState, FedPCATrace]:
    """One round; the trace row's ``loss`` describes ``state.params``."""
    k_round, mask, num, part_state = self._sample(state, data.num_clients)
    mapped = self._map(
      self._client_round,
      (None, 0, 0, 0, 0, 0, 0, 0, None),
      (None, 0, 0, 0, None, None, None, 0),
    )
    target, frames, duals, hinge_duals, loss, grad, client_sum, errors = mapped(
      state.params,
      state.frames,
      state.duals,
      state.hinge_duals,
      data.examples,
      data.counts,
      data.weights,
      mask,
      k_round,
    )
    params, server_state, _ = self._server_update(
      state, target - state.params, num
    )
    gap = jnp.sqrt(jnp.sum((frames - params[None]) ** 2, axis=(1, 2)))
    row = FedPCATrace(
      **self._trace_fields(state.params, params, loss, grad, num, client_sum),
      frame_error=jnp.max(errors),
      consensus=jnp.max(jnp.where(mask, gap, 0.0)),
    )
    new_state = FedPCAState(
      **self._next_fields(state, params, server_state, part_state),
      frames=frames,
      duals=duals,
      hinge_duals=hinge_duals,
    )
    return new_state, row

  def _check_params(self, params: Any, data: Any) -> None:
    self._check_frame(params)
    super()._check_params(params, data)


def _top_eigenvectors(matrix: jax.Array, k: int) -> jax.Array:
  """Top-``k`` eigenvectors of a symmetric matrix, descending, each column's
  largest-magnitude entry positive."""
  _, vectors = jnp.linalg.eigh(matrix)
  top = vectors[:, ::-1][:, :k]
  idx = jnp.argmax(jnp.abs(top), axis=0)
  signs = jnp.sign(top[idx, jnp.arange(k)])
  return top * jnp.where(signs == 0, 1.0, signs).astype(top.dtype)[None]
