r"""Self-Play Preference Optimization (SPPO) and iterative DPO / IPO.

Wu, Sun, Yuan, Ji, Yang, Gu, "Self-Play Preference Optimization for Language
Model Alignment", ICLR 2025, arXiv:2405.00675. Short id ``sppo``.

SPPO treats alignment as a two-player constant-sum game on a *general*
preference :math:`P(y \succ y' \mid x)` (no reward model, possibly
intransitive) and approximates the multiplicative-weights (MWU) dynamics
whose time average converges to the von Neumann winner (Nash equilibrium):

.. math::
  \pi_{t+1}(y \mid x) \propto \pi_t(y \mid x)
    \exp\big(\eta\, P(y \succ \pi_t \mid x)\big), \qquad
  P(y \succ \pi \mid x) = \mathbb{E}_{y' \sim \pi}\, P(y \succ y' \mid x).

Taking :math:`\log Z \approx \eta/2`, one iteration is the regression
(the paper's Algorithm 1, :func:`sppo_loss`)

.. math::
  \theta_{t+1} = \arg\min_\theta\,
    \mathbb{E}_{x,\, y \sim \pi_t}\Big(\log\pi_\theta(y\mid x)
    - \log\pi_t(y \mid x) - \eta\big(\hat P(y \succ \pi_t \mid x)
    - \tfrac12\big)\Big)^2,

with :math:`\hat P(y_k \succ \pi_t \mid x) = \frac1K\sum_{j=1}^K
P(y_k \succ y_j \mid x)` estimated from :math:`K` responses
:math:`y_1..y_K \sim \pi_t(\cdot \mid x)` (the sum *includes* :math:`j=k`,
which contributes :math:`\tfrac12`, as in the official
``scripts/compute_prob.py``). The log-probabilities are *sums* over the
response tokens (:func:`sequence_logprob`, padding masked out), so the
targets :math:`\eta(\hat P - \tfrac12)` are in nats of the whole sequence.

Arguments: :math:`\eta` = ``eta`` (the official code writes
:math:`1/\beta` with its ``beta`` = 0.001, i.e. :math:`\eta = 1000`; here
``eta`` is given directly), :math:`K` = ``num_samples``, the preference
:math:`P` = ``preference_fn``, :math:`\pi_\theta` = ``logits_fn`` with
``params``, the argmin = ``inner_steps`` updates of ``optimizer`` (any optax
transform) from :math:`\theta_t`, :math:`\pi_t` (the reference) = the
iterate at the start of the iteration, frozen for its regression.

Variants of the regression (``loss``):

* ``'sppo'`` (the official code, ``sppo/trainer.py`` ``loss_type='sppo'``):
  only the best and the worst of the :math:`K` samples enter,
  :math:`y_w = \arg\max_k \hat P_k`, :math:`y_l = \arg\min_k \hat P_k`, and
  the loss is :math:`\frac12\big[(\ell_w - \eta(\hat P_w-\frac12))^2 +
  (\ell_l - \eta(\hat P_l - \frac12))^2\big]` with :math:`\ell =
  \log\pi_\theta - \log\pi_t` (:func:`sppo_pair_loss`).
* ``'sppo_all'`` (the paper's Algorithm 1): all :math:`K` samples, the
  mean of the :math:`K` squared residuals.
* ``'dpo'`` (iterative DPO, the baseline; Rafailov et al. 2023):
  :math:`-\log\sigma\big(\beta[\ell_w - \ell_l]\big)` on the same
  :math:`(y_w, y_l)` pair, reference :math:`\pi_t` (:func:`dpo_loss`).
* ``'ipo'`` (iterative IPO; Azar et al. 2023): :math:`(\ell_w - \ell_l -
  \frac1{2\beta})^2` (:func:`ipo_loss`; TRL's / the official code's
  convention, ``beta`` = IPO's :math:`\tau`).

One :meth:`SPPO.step` is one self-play iteration on all prompts: sample
:math:`K` responses per prompt from :math:`\pi_t` token by token with
``jax.random.categorical``, score every pair with ``preference_fn``,
estimate :math:`\hat P`, select, and regress in a ``lax.scan`` of
``inner_steps`` full-batch ``optimizer`` updates (the optimizer state is
reset each iteration, as each official iteration is a fresh training run).
With ``mesh``, prompts are split over the mesh axis ``axis_name``
(``'prompts'``): sampling and scoring run per device, per-prompt keys are
drawn globally (so the samples do not depend on the sharding) and the
gradients are summed across devices; 1 and 4 devices agree up to summation
order.

The MWU limit. For a tabular policy (softmax logits per prompt) and
:math:`\hat P = P(\cdot \succ \pi_t)` exact, the regression with residuals
weighted by :math:`\pi_t` gives
:math:`\log\pi_{t+1} - \log\pi_t = \eta(P - \frac12) + c + O(\eta^2)`:
the MWU step (:func:`mwu_step`) up to :math:`O(\eta^2)`; as
:math:`\eta \to 0` the policy does not move. In intransitive games the last
iterate of MWU cycles; what converges is the *time-averaged* policy
(evaluate with :func:`exploitability`).

.. note:: Official code (uclaml/SPPO) and deviations.

  * **Preferences.** The paper motivates a general preference; the code
    scores each response with PairRM and sets :math:`P_{ij} =
    \sigma(s_i - s_j)` (``compute_prob.py``), a Bradley-Terry (transitive)
    model. Here ``preference_fn`` is any pairwise preference; use
    :func:`bradley_terry` to reproduce the code's construction from a
    score. The code picks :math:`y_w, y_l` as the argmax / argmin of the
    *score*; with a general preference there is no score, so we take the
    argmax / argmin of :math:`\hat P` (the same choice under
    Bradley-Terry, where :math:`\hat P_k` is increasing in :math:`s_k`;
    ties go to the first index, as ``np.argmax``).
  * **Best/worst vs all K.** The code trains on 2 of the :math:`K = 5`
    samples (``'sppo'``), the paper's algorithm on all (``'sppo_all'``).
  * **Sampling.** The code samples with temperature 0.7 and top-p 0.9;
    ``temperature`` is exposed (default 1, sampling from :math:`\pi_t`
    itself, which the theory assumes); no top-p. Responses have a fixed
    maximum length ``response_length``; with ``eos_token`` the tokens after
    the first EOS are padding (masked out of the log-probabilities).
  * **Regression.** The code runs one epoch of minibatch RMSprop on a new
    slice of prompts per iteration; here each iteration regresses on all
    prompts' samples with ``inner_steps`` full-batch steps of
    ``optimizer``. The loss is averaged over prompts.
  * **Reference.** As in the code's pipeline: the previous iterate, frozen
    (its log-probabilities of the samples are computed once per
    iteration), never the initial (SFT) policy.

References:
  Wu, Sun, Yuan, Ji, Yang, Gu, `Self-Play Preference Optimization for
  Language Model Alignment <https://arxiv.org/abs/2405.00675>`_, ICLR
  2025.
  Rafailov et al., `Direct Preference Optimization
  <https://arxiv.org/abs/2305.18290>`_, NeurIPS 2023.
  Azar et al., `A General Theoretical Paradigm to Understand Learning from
  Human Preferences <https://arxiv.org/abs/2310.12036>`_, AISTATS 2024.
"""

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from jaxopt_papers.core import checks, parallel
from jaxopt_papers.core import solver as solver_lib

__all__ = [
  'LOSSES',
  'SPPO',
  'SPPOBatch',
  'SPPOState',
  'SPPOTrace',
  'bradley_terry',
  'dpo_loss',
  'exploitability',
  'ipo_loss',
  'mwu_step',
  'sequence_logprob',
  'sppo_loss',
  'sppo_pair_loss',
  'win_rates',
]

LOSSES = ('sppo', 'sppo_all', 'dpo', 'ipo')


# ----------------------------------------------------------------- losses


def sequence_logprob(
  logits: jax.Array, tokens: jax.Array, mask: jax.Array | None = None
) -> jax.Array:
  r"""Summed log-probability :math:`\sum_t m_t \log\pi(y_t \mid y_{<t})`.

  Args:
    logits: ``[..., T, V]`` next-token logits of the response positions.
    tokens: ``[..., T]`` int response tokens.
    mask: ``[..., T]`` 1 for real tokens, 0 for padding (``None``: all).

  Returns:
    ``[...]`` the per-sequence sum (not the mean: SPPO's targets are in
    nats of the whole sequence).
  """
  logp = jax.nn.log_softmax(logits, axis=-1)
  tok = jnp.take_along_axis(logp, tokens[..., None], axis=-1)[..., 0]
  if mask is not None:
    tok = jnp.where(mask.astype(bool), tok, 0.0)
  return jnp.sum(tok, axis=-1)


def sppo_loss(
  logp: jax.Array,
  logp_ref: jax.Array,
  p_hat: jax.Array,
  eta: float,
  mask: jax.Array | None = None,
) -> jax.Array:
  r"""SPPO regression loss, mean over the last (sample) axis.

  .. math::
    \frac{\sum_k m_k\big(\log\pi_\theta(y_k) - \log\pi_t(y_k)
      - \eta(\hat P_k - \tfrac12)\big)^2}{\sum_k m_k}

  Args:
    logp: ``[..., K]`` summed log-probs of the samples under the policy.
    logp_ref: ``[..., K]`` the same under the frozen reference
      :math:`\pi_t`.
    p_hat: ``[..., K]`` estimated win rates :math:`\hat P(y_k \succ
      \pi_t)`.
    eta: :math:`\eta = 1/\beta` of the official code, > 0 (or 0).
    mask: ``[..., K]`` nonnegative weights of the samples (``None``:
      uniform). A 0/1 mask selects samples (e.g. best and worst: the
      official loss); weights :math:`\pi_t(y)` give the expectation over
      :math:`y \sim \pi_t` of a tabular policy.

  Returns:
    ``[...]`` the loss per prompt.
  """
  checks.check_hyperparameter(checks.check_nonnegative, 'eta', eta)
  r = logp - logp_ref - eta * (p_hat - 0.5)
  sq = r * r
  if mask is None:
    return jnp.mean(sq, axis=-1)
  mask = jnp.asarray(mask, sq.dtype)
  return jnp.sum(mask * sq, axis=-1) / jnp.maximum(
    jnp.sum(mask, axis=-1), jnp.finfo(sq.dtype).tiny
  )


def sppo_pair_loss(
  logp_w: jax.Array,
  logp_l: jax.Array,
  ref_w: jax.Array,
  ref_l: jax.Array,
  p_w: jax.Array,
  p_l: jax.Array,
  eta: float,
) -> jax.Array:
  r"""The official best/worst SPPO loss per example.

  :math:`\frac12[(\ell_w - \eta(\hat P_w - \frac12))^2 + (\ell_l -
  \eta(\hat P_l - \frac12))^2]`, :math:`\ell = \log\pi_\theta -
  \log\pi_t`; equals :func:`sppo_loss` on the two samples.
  """
  return sppo_loss(
    jnp.stack([logp_w, logp_l], -1),
    jnp.stack([ref_w, ref_l], -1),
    jnp.stack([p_w, p_l], -1),
    eta,
  )


def dpo_loss(
  logp_w: jax.Array,
  logp_l: jax.Array,
  ref_w: jax.Array,
  ref_l: jax.Array,
  beta: float,
) -> jax.Array:
  r"""DPO: :math:`-\log\sigma(\beta[(\log\pi_w - \log\pi^{ref}_w) -
  (\log\pi_l - \log\pi^{ref}_l)])` per example."""
  checks.check_hyperparameter(checks.check_positive, 'beta', beta)
  h = (logp_w - ref_w) - (logp_l - ref_l)
  return -jax.nn.log_sigmoid(beta * h)


def ipo_loss(
  logp_w: jax.Array,
  logp_l: jax.Array,
  ref_w: jax.Array,
  ref_l: jax.Array,
  beta: float,
) -> jax.Array:
  r"""IPO: :math:`(h - \frac{1}{2\beta})^2`, :math:`h` as in
  :func:`dpo_loss` (``beta`` is IPO's :math:`\tau`)."""
  checks.check_hyperparameter(checks.check_positive, 'beta', beta)
  h = (logp_w - ref_w) - (logp_l - ref_l)
  return (h - 0.5 / beta) ** 2


# ------------------------------------------------------- game utilities


def win_rates(pref: jax.Array) -> jax.Array:
  r""":math:`\hat P_k = \frac1K\sum_j P_{kj}` of a ``[..., K, K]`` matrix
  (the diagonal, :math:`\frac12`, included as in the official code)."""
  return jnp.mean(pref, axis=-1)


def exploitability(policy: jax.Array, pref: jax.Array) -> jax.Array:
  r""":math:`\max_y P(y \succ \pi) - \frac12` (0 at the Nash policy).

  Args:
    policy: ``[..., N]`` probabilities over the ``N`` responses.
    pref: ``[..., N, N]`` :math:`P(y_i \succ y_j)`, with
      :math:`P + P^\top = 1`.
  """
  return jnp.max(jnp.einsum('...ij,...j->...i', pref, policy), -1) - 0.5


def mwu_step(policy: jax.Array, pref: jax.Array, eta: float) -> jax.Array:
  r"""Exact MWU: :math:`\pi' \propto \pi\exp(\eta P(\cdot \succ \pi))`."""
  win = jnp.einsum('...ij,...j->...i', pref, policy)
  return jax.nn.softmax(jnp.log(policy) + eta * win, axis=-1)


def bradley_terry(
  score_fn: Callable[[jax.Array, jax.Array, jax.Array], jax.Array],
) -> Callable[..., jax.Array]:
  r"""The official code's preference: :math:`\sigma(s(y_a) - s(y_b))`.

  ``score_fn(prompt, response, mask) -> scalar`` (PairRM in the code);
  returns a ``preference_fn`` for :class:`SPPO`.
  """

  def preference(prompt, y_a, m_a, y_b, m_b):
    return jax.nn.sigmoid(
      score_fn(prompt, y_a, m_a) - score_fn(prompt, y_b, m_b)
    )

  return preference


# ----------------------------------------------------------------- solver


class SPPOState(NamedTuple):
  """State of :class:`SPPO`."""

  iteration: jax.Array  # shape=(), int32
  params: optax.Params  # the current iterate pi_t
  key: jax.Array  # typed key; iteration t draws from fold_in(key, t)


class SPPOBatch(NamedTuple):
  """One iteration's regression data, ``M`` selected samples per prompt.

  ``M = 2`` (best, worst) for ``'sppo'``, ``'dpo'``, ``'ipo'``; ``M = K``
  for ``'sppo_all'``.
  """

  responses: jax.Array  # [n, M, T] int
  masks: jax.Array  # [n, M, T] 1 = real token
  logp_ref: jax.Array  # [n, M] summed log-probs under pi_t (frozen)
  p_hat: jax.Array  # [n, M] estimated win rates against pi_t


class SPPOTrace(NamedTuple):
  """One row per iteration (self-play round)."""

  loss_start: jax.Array  # regression loss at pi_t (before the inner loop)
  loss_end: jax.Array  # regression loss after the inner loop
  p_hat_max: jax.Array  # mean over prompts of max_k P_hat_k
  p_hat_min: jax.Array  # mean over prompts of min_k P_hat_k
  # mean log pi_{t+1}(y_w) - log pi_t(y_w) (sample 0 for 'sppo_all')
  logratio_chosen: jax.Array
  grad_norm: jax.Array  # global gradient norm at the last inner step
  nonfinite: jax.Array  # bool: NaN/inf in the new params or the loss


@jax.tree_util.register_static
@dataclasses.dataclass(frozen=True, kw_only=True)
class SPPO:
  r"""Self-play preference optimization (and iterative DPO / IPO).

  See the module docstring for the equations. ``data`` for
  :meth:`step` / :meth:`run` is the prompt set ``[n, L]`` (int tokens;
  for a tabular policy, ``[[0], [1], ...]`` prompt ids).

  Args:
    logits_fn: ``logits_fn(params, prompt [L], response [T]) -> [T, V]``,
      the next-token logits at each response position given the prompt and
      the response prefix (teacher forcing; causal: row ``t`` must not
      depend on ``response[t:]``). A tabular policy returns its logit row
      for the prompt, broadcast to ``[T, V]``.
    preference_fn: ``preference_fn(prompt, y_a [T], mask_a [T], y_b, mask_b)
      -> P(y_a > y_b | prompt)`` in [0, 1], any (intransitive) preference
      with ``P(a, b) + P(b, a) = 1``; :func:`bradley_terry` builds the
      official code's from a score.
    optimizer: Inner optimizer, any optax transform (default ``optax.sgd(
      0.05)``), reset every iteration.
    loss: ``'sppo'`` (official best/worst), ``'sppo_all'`` (all K),
      ``'dpo'`` or ``'ipo'`` (iterative DPO / IPO on the best/worst pair).
    eta: :math:`\eta > 0` (= 1 / the code's ``beta``), SPPO losses.
    beta: :math:`\beta > 0` of the DPO / IPO losses.
    num_samples: :math:`K \ge 2` responses per prompt and iteration.
    response_length: ``T >= 1`` tokens per response.
    inner_steps: Optimizer steps per iteration, ``>= 1``.
    temperature: Sampling temperature ``> 0`` (1 samples from
      :math:`\pi_t`).
    eos_token: ``None`` (fixed-length responses) or the EOS token id; the
      tokens after the first EOS are padding.
    mesh: ``None`` or a mesh with axis ``axis_name``: prompts are split over
      its devices (their number must divide evenly).
    axis_name: Name of the prompt axis.

  Returns:
    ``init(params, key) -> SPPOState``, ``step(state, prompts) ->
    (SPPOState, SPPOTrace)``, ``run(params, key, prompts, num_steps)``. A
    NaN or inf shows in the trace (``nonfinite`` and the values).
  """

  logits_fn: Callable[[Any, jax.Array, jax.Array], jax.Array]
  preference_fn: Callable[..., jax.Array]
  optimizer: optax.GradientTransformation | None = None
  loss: str = 'sppo'
  eta: float = 1.0
  beta: float = 0.1
  num_samples: int = 16
  response_length: int = 1
  inner_steps: int = 100
  temperature: float = 1.0
  eos_token: int | None = None
  mesh: Mesh | None = None
  axis_name: str = 'prompts'

  def __post_init__(self):
    checks.check_callable('logits_fn', self.logits_fn)
    checks.check_callable('preference_fn', self.preference_fn)
    if self.optimizer is not None:
      checks.check_transform('optimizer', self.optimizer)
    checks.check_in('loss', self.loss, LOSSES)
    checks.check_positive('eta', self.eta)
    checks.check_positive('beta', self.beta)
    checks.check_int('num_samples', self.num_samples, minimum=2)
    checks.check_int('response_length', self.response_length)
    checks.check_int('inner_steps', self.inner_steps)
    checks.check_positive('temperature', self.temperature)
    checks.check_int('eos_token', self.eos_token, minimum=0, allow_none=True)
    checks.check_mesh(self.mesh, self.axis_name)
    if self.optimizer is None:
      object.__setattr__(self, 'optimizer', optax.sgd(0.05))

  # ------------------------------------------------------------- pieces

  def response_logprob(
    self, params: Any, prompt: jax.Array, response: jax.Array, mask: jax.Array
  ) -> jax.Array:
    """Summed log-prob of one ``response [T]`` (padding masked)."""
    logits = self.logits_fn(params, prompt, response)
    return sequence_logprob(
      logits.astype(jnp.result_type(float)), response, mask
    )

  def sample_response(
    self, params: Any, prompt: jax.Array, key: jax.Array
  ) -> tuple[jax.Array, jax.Array]:
    """One response ``[T]`` and its mask, token by token (categorical)."""
    t_len = self.response_length

    def body(resp, inp):
      t, k = inp
      logits = self.logits_fn(params, prompt, resp)[t]
      tok = jax.random.categorical(k, logits / self.temperature)
      return resp.at[t].set(tok.astype(resp.dtype)), None

    resp0 = jnp.zeros([t_len], jnp.int32)
    resp, _ = jax.lax.scan(
      body, resp0, (jnp.arange(t_len), jax.random.split(key, t_len))
    )
    if self.eos_token is None:
      return resp, jnp.ones([t_len], jnp.int32)
    not_eos = (resp != self.eos_token).astype(jnp.int32)
    # A token is real if no EOS comes before it (the EOS itself is real).
    mask = jnp.concatenate(
      [jnp.ones([1], jnp.int32), jnp.cumprod(not_eos)[:-1]]
    )
    resp = jnp.where(mask.astype(bool), resp, self.eos_token)
    return resp, mask

  def _select(self, p_hat: jax.Array) -> jax.Array:
    if self.loss == 'sppo_all':
      return jnp.arange(self.num_samples)
    return jnp.stack([jnp.argmax(p_hat), jnp.argmin(p_hat)])

  def _sample_prompt(self, params, prompt, key):
    """Samples, scores and selects for one prompt (no collectives)."""
    keys = jax.random.split(key, self.num_samples)
    resp, mask = jax.vmap(self.sample_response, in_axes=(None, None, 0))(
      params, prompt, keys
    )  # [K, T]

    def row(ya, ma):
      return jax.vmap(
        lambda yb, mb: self.preference_fn(prompt, ya, ma, yb, mb)
      )(resp, mask)

    pref = jax.vmap(row)(resp, mask)  # [K, K]
    p_hat = win_rates(pref)
    idx = self._select(p_hat)
    resp, mask, p_sel = resp[idx], mask[idx], p_hat[idx]
    ref = jax.vmap(self.response_logprob, in_axes=(None, None, 0, 0))(
      params, prompt, resp, mask
    )
    stats = jnp.stack([jnp.max(p_hat), jnp.min(p_hat)])
    return SPPOBatch(resp, mask, jax.lax.stop_gradient(ref), p_sel), stats

  def prompt_loss(
    self, params: Any, prompt: jax.Array, batch: SPPOBatch
  ) -> jax.Array:
    """The regression loss of one prompt (``batch`` fields without ``n``)."""
    logp = jax.vmap(self.response_logprob, in_axes=(None, None, 0, 0))(
      params, prompt, batch.responses, batch.masks
    )
    ref = batch.logp_ref
    if self.loss in ('sppo', 'sppo_all'):
      return sppo_loss(logp, ref, batch.p_hat, self.eta)
    fn = dpo_loss if self.loss == 'dpo' else ipo_loss
    return fn(logp[0], logp[1], ref[0], ref[1], self.beta)

  def _map(self, fn, in_axes, out_axes):
    return parallel.client_map(
      fn, self.mesh, self.axis_name, in_axes=in_axes, out_axes=out_axes
    )

  def _check_prompts(self, prompts):
    if prompts.ndim != 2:
      raise ValueError(
        f'`prompts` must be [num_prompts, length] ints, got shape '
        f'{prompts.shape}'
      )
    if self.mesh is not None:
      ndev = self.mesh.shape[self.axis_name]
      if prompts.shape[0] % ndev:
        raise ValueError(
          f'{prompts.shape[0]} prompts do not split over {ndev} devices of '
          f'mesh axis {self.axis_name!r}'
        )

  def sample(
    self, params: Any, prompts: jax.Array, key: jax.Array
  ) -> tuple[SPPOBatch, jax.Array]:
    """The regression batch of one iteration from ``params`` (= pi_t).

    Prompt ``i`` draws its ``K`` responses from ``split(key, n)[i]`` (then
    split in ``K``, then in ``T`` tokens), independently of the sharding.
    Returns ``(batch, stats [n, 2])`` with ``stats`` = (max, min) of
    :math:`\\hat P` over the ``K`` samples.
    """
    prompts = jnp.asarray(prompts)
    self._check_prompts(prompts)
    keys = jax.random.split(key, prompts.shape[0])
    return self._map(self._sample_prompt, (None, 0, 0), 0)(
      params, prompts, keys
    )

  def loss_and_grad(
    self, params: Any, prompts: jax.Array, batch: SPPOBatch
  ) -> tuple[jax.Array, Any]:
    """Mean over prompts of :meth:`prompt_loss` and its gradient."""
    n = prompts.shape[0]

    def one(params, prompt, b):
      loss, grads = jax.value_and_grad(self.prompt_loss)(params, prompt, b)
      return parallel.psum(
        (loss / n, jax.tree.map(lambda g: g / n, grads)), self.axis_name
      )

    return self._map(one, (None, 0, 0), None)(params, prompts, batch)

  def regress(
    self, params: Any, prompts: jax.Array, batch: SPPOBatch
  ) -> tuple[Any, jax.Array, jax.Array, jax.Array]:
    """``inner_steps`` optimizer steps from ``params`` on ``batch``.

    Returns ``(new_params, loss_start, loss_end, last_grad_norm)``; the
    losses are at the parameters before the first and after the last step.
    """
    opt_state = self.optimizer.init(params)

    def body(carry, _):
      p, s = carry
      loss, grads = self.loss_and_grad(p, prompts, batch)
      updates, s = self.optimizer.update(grads, s, p)
      return (optax.apply_updates(p, updates), s), (
        loss,
        optax.tree.norm(grads),
      )

    (new, _), (losses, norms) = jax.lax.scan(
      body, (params, opt_state), None, length=self.inner_steps
    )
    loss_end, _ = self.loss_and_grad(new, prompts, batch)
    return new, losses[0], loss_end, norms[-1]

  # ---------------------------------------------------------- interface

  def init(self, params: Any, key: jax.Array) -> SPPOState:
    """The state at ``params`` (= pi_0); ``key`` drives the sampling."""
    checks.check_key('key', key)
    state = SPPOState(
      iteration=jnp.zeros([], jnp.int32),
      params=params,
      key=checks.as_key(key),
    )
    if self.mesh is not None:
      state = parallel.place(state, self.mesh, P())
    return state

  def step(
    self, state: SPPOState, prompts: jax.Array
  ) -> tuple[SPPOState, SPPOTrace]:
    """One self-play iteration: sample from pi_t, score, regress.

    Iteration ``t`` samples with ``fold_in(state.key, t)`` (see
    :meth:`sample`); the reference is ``state.params``, frozen.
    """
    prompts = jnp.asarray(prompts)
    key = jax.random.fold_in(state.key, state.iteration)
    batch, stats = self.sample(state.params, prompts, key)
    params, loss0, loss1, gnorm = self.regress(state.params, prompts, batch)
    n = prompts.shape[0]

    def summary(params, prompt, b, st):
      ratio = (
        self.response_logprob(params, prompt, b.responses[0], b.masks[0])
        - b.logp_ref[0]
      )
      return parallel.psum((ratio / n, st / n), self.axis_name)

    ratio, stats = self._map(summary, (None, 0, 0, 0), None)(
      params, prompts, batch, stats
    )
    row = SPPOTrace(
      loss_start=loss0,
      loss_end=loss1,
      p_hat_max=stats[0],
      p_hat_min=stats[1],
      logratio_chosen=ratio,
      grad_norm=gnorm,
      nonfinite=~(solver_lib.tree_all_finite(params) & jnp.isfinite(loss1)),
    )
    new_state = SPPOState(
      iteration=optax.safe_increment(state.iteration),
      params=params,
      key=state.key,
    )
    return new_state, row

  def run(
    self, params: Any, key: jax.Array, prompts: jax.Array, num_steps: int
  ) -> tuple[SPPOState, SPPOTrace]:
    """Runs ``num_steps`` self-play iterations in one ``lax.scan``."""
    return solver_lib.run_scan(
      self.step, self.init(params, key), prompts, num_steps=num_steps
    )
