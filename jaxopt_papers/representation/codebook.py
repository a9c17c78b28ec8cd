r"""Codebook bottleneck (paper 28): a selective representation for agents.

Eftekhar, Zeng, Duan, Farhadi, Kembhavi, Krishna, `Selective Visual
Representations Improve Convergence and Generalization for Embodied AI
<https://arxiv.org/abs/2311.04193>`_, ICLR 2024 (Section 3; project page
embodied-codebook.github.io).

The agent's joint embedding :math:`E \in \mathbb R^{D}` (visual features,
goal and previous-action embeddings concatenated) is replaced, before the
recurrent state encoder, by a convex combination of ``num_codes`` learned
codes, projected back to ``out_dim``:

.. math::
  \begin{align*}
    p &= \operatorname{softmax}(W_I \operatorname{ReLU}(E) + b_I)
      \in \Delta^{K-1}   && \text{(indexer, } K = \texttt{num\_codes}) \\
    \tilde p &= \operatorname{Dropout}_{\rho}(p)
      && (\rho = \texttt{dropout}) \\
    \hat e &= \tilde p^\top C, \quad C \in \mathbb R^{K \times D_c}
      && (D_c = \texttt{code\_dim}) \\
    E' &= W_U \hat e + b_U \in \mathbb R^{\texttt{out\_dim}}
      && \text{(upsampling projection)}
  \end{align*}

Every bit of information that reaches :math:`E'` must pass through the
:math:`K` mixing weights and a :math:`D_c`-dimensional code, so training
end to end on the task keeps what the task needs (the goal object) and
drops what it does not (other objects, distractors). The paper's defaults
(``K=256``, ``D_c=10``, dropout 0.1 on the probabilities, learned codebook,
softmax indexing) are this module's.

Options (as in the code, selected by ``indexing`` and ``codebook``):

* ``indexing='softmax'``: the equations above.
* ``indexing='gumbel_softmax'``: :math:`\tilde p` is a hard one-hot sample
  of ``softmax((logits + g) / temperature)`` with Gumbel noise ``g``,
  differentiated straight-through (the forward value is the one-hot, the
  gradient that of the relaxed sample; :func:`gumbel_softmax`); no dropout,
  as in the code.
* ``indexing='topk'``: dropout on :math:`p` first, then all but the
  ``topk`` largest dropped-out probabilities are zeroed (not renormalised).
* ``codebook='learned'``: :math:`C` is trained.
  ``codebook='random'``: :math:`C` is a fixed random matrix (its parameter
  exists but receives no gradient: ``stop_gradient``, the code's
  ``detach``). ``codebook='binary'``: the codes are
  :math:`2\,[C > 0] - 1 \in \{-1, 1\}^{K \times D_c}` (no gradient reaches
  :math:`C`).

The mixing distribution :math:`p` (before dropout / top-k; the hard
one-hot for Gumbel indexing, so it always sums to 1) is sown as
``intermediates/probs`` and the weights actually used,
:math:`\tilde p`, as ``intermediates/weights``; read them with
``apply(..., mutable=['intermediates'])`` for probes, a KL regulariser or
the code-usage :func:`code_perplexity` (:math:`\exp H(\bar p)` of the
batch-mean probabilities: 1 when every input uses the same code, ``K``
when usage is uniform; a collapse monitor).

What was read instead of the official code: the paper's repository
(``allenai/embodied-codebook``) was not available to us; we read the same
lab's copy of the model in ``allenai/promptable-behaviors`` (commit
45cc893), ``procthor_visual_nav/codebook_models/visual_nav_models.py``,
``VisualNavActorCriticCodebook.__init__`` and ``forward`` (the
``joint_embeds`` branch), and follow it line by line for the forward pass.

Choices and deviations:

* Dropout on the probabilities is inverted dropout, as ``torch.nn.Dropout``
  (and ``flax.linen.Dropout``): a kept probability is divided by
  :math:`1 - \rho`, a dropped one is 0, and :math:`\tilde p` is not
  renormalised, so in training :math:`\sum_k \tilde p_k` is random with
  mean 1. It is skipped when ``deterministic`` (evaluation), like
  ``model.eval()``. Its randomness comes from the ``'dropout'`` rng stream;
  Gumbel noise from the ``'gumbel'`` stream.
* ``deterministic`` Gumbel indexing takes the noiseless one-hot
  ``argmax(logits)`` (with the same straight-through gradient); PyTorch's
  ``F.gumbel_softmax`` has no evaluation mode and samples always.
* ``out_dim=None`` keeps the input width (the code hard-codes 1574, the
  width of its joint embedding).
* Codebook initialisation is a standard normal (the code's
  ``initialization='random'``, ``torch.randn``); the code's alternative
  (a dictionary-learning basis loaded from a file) is not implemented, nor
  are its ``sparsemax`` indexing, its optional KL loss on the probabilities
  (build it from the sown ``probs``) and its running mean/variance logging
  (use :func:`code_perplexity` on the sown ``probs``).
* The indexer and the upsampling projection use Flax's default
  initialisers (LeCun normal weights, zero biases), not PyTorch's.
* The bottleneck acts on the last axis and broadcasts over any leading
  axes (batch, time); the code's input is ``[T, N, D]``.

Example:
  >>> bottleneck = CodebookBottleneck(num_codes=256, code_dim=10)
  >>> variables = bottleneck.init(jax.random.key(0), x, deterministic=True)
  >>> y, aux = bottleneck.apply(
  ...     variables, x, deterministic=False,
  ...     rngs={'dropout': jax.random.key(1)}, mutable=['intermediates'])
  >>> code_perplexity(aux['intermediates']['probs'][0])
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxopt_papers.core import checks

__all__ = [
  'CODEBOOKS',
  'INDEXINGS',
  'CodebookBottleneck',
  'binary_codes',
  'code_perplexity',
  'gumbel_softmax',
  'topk_weights',
]

INDEXINGS = ('softmax', 'gumbel_softmax', 'topk')
CODEBOOKS = ('learned', 'random', 'binary')


def gumbel_softmax(
  logits: jax.Array,
  key: jax.Array | None,
  temperature: float = 1.0,
  hard: bool = True,
) -> jax.Array:
  """Gumbel-softmax sample over the last axis (``F.gumbel_softmax``).

  ``y = softmax((logits + g) / temperature)`` with ``g ~ Gumbel(0, 1)``
  drawn from ``key`` (``key=None``: ``g = 0``, the noiseless mode). With
  ``hard``, returns ``one_hot(argmax y) - stop_gradient(y) + y``: the
  forward value is the one-hot, the gradient is that of ``y``
  (straight-through).
  """
  if key is not None:
    logits = logits + jax.random.gumbel(key, logits.shape, logits.dtype)
  y = jax.nn.softmax(logits / temperature, axis=-1)
  if not hard:
    return y
  onehot = jax.nn.one_hot(jnp.argmax(y, axis=-1), y.shape[-1], dtype=y.dtype)
  return onehot - jax.lax.stop_gradient(y) + y


def topk_weights(p: jax.Array, k: int) -> jax.Array:
  """``p`` with all but its ``k`` largest entries (last axis) set to 0.

  The kept entries are not renormalised (the code's ``scatter_`` of the
  ``topk`` values into zeros); the gradient flows to the kept entries.
  """
  values, index = jax.lax.top_k(p, k)
  onehot = jax.nn.one_hot(index, p.shape[-1], dtype=p.dtype)  # [..., k, K]
  return jnp.einsum('...k,...kK->...K', values, onehot)


def binary_codes(codebook: jax.Array) -> jax.Array:
  """``2 [codebook > 0] - 1``: codes in {-1, 1}, no gradient to ``codebook``."""
  c = jax.lax.stop_gradient(codebook)
  return jnp.where(c > 0, 1.0, -1.0).astype(codebook.dtype)


def code_perplexity(probs: jax.Array) -> jax.Array:
  r"""Code-usage perplexity :math:`\exp H(\bar p)` of ``probs [..., K]``.

  :math:`\bar p` is the mean of ``probs`` over every leading axis,
  renormalised to sum to 1 (so dropped-out weights can be passed too);
  :math:`H` uses :math:`0 \log 0 = 0`. In ``[1, K]``: 1 when every row puts
  all its mass on the same code (collapse), ``K`` for uniform usage.
  """
  p = jnp.reshape(probs, (-1, probs.shape[-1])).mean(axis=0)
  p = p / jnp.sum(p)
  logp = jnp.log(jnp.where(p > 0, p, 1.0))
  return jnp.exp(-jnp.sum(p * logp))


class CodebookBottleneck(nn.Module):
  """The codebook bottleneck ``E -> E'`` (see the module docstring).

  ``__call__(x, deterministic=None)`` maps ``x [..., D]`` to
  ``[..., out_dim]`` (``D`` when ``out_dim`` is ``None``). Needs the
  ``'dropout'`` rng when not deterministic and ``dropout > 0`` (softmax,
  top-k) and the ``'gumbel'`` rng when not deterministic with Gumbel
  indexing. Sows ``intermediates/probs`` (the distribution, sums to 1) and
  ``intermediates/weights`` (what multiplies the codebook).

  Attributes:
    num_codes: ``K``, the codebook size (paper: 256); static int >= 1.
    code_dim: ``D_c``, the code width (paper: 10); static int >= 1.
    out_dim: Width of the upsampling projection's output; ``None`` keeps
      the input width (the code restores the joint embedding's 1574).
    dropout: Dropout rate ``rho`` on the probabilities, in [0, 1) (paper:
      0.1); inverted, as ``torch.nn.Dropout``. Unused by Gumbel indexing.
    indexing: ``'softmax'`` (paper), ``'gumbel_softmax'`` (hard,
      straight-through) or ``'topk'``.
    codebook: ``'learned'`` (paper), ``'random'`` (fixed) or ``'binary'``.
    topk: Codes kept by ``indexing='topk'``, an int in [1, num_codes].
    temperature: Gumbel-softmax temperature ``tau`` > 0.
    deterministic: Default of the call argument (no dropout, no Gumbel
      noise); one of the two must be set.
  """

  num_codes: int = 256
  code_dim: int = 10
  out_dim: int | None = None
  dropout: float = 0.1
  indexing: str = 'softmax'
  codebook: str = 'learned'
  topk: int = 16
  temperature: float = 1.0
  deterministic: bool | None = None

  def __post_init__(self):
    checks.check_int('num_codes', self.num_codes)
    checks.check_int('code_dim', self.code_dim)
    checks.check_int('out_dim', self.out_dim, allow_none=True)
    checks.check_interval('dropout', self.dropout, 0.0, 1.0, high_open=True)
    checks.check_in('indexing', self.indexing, INDEXINGS)
    checks.check_in('codebook', self.codebook, CODEBOOKS)
    checks.check_int('topk', self.topk)
    if self.indexing == 'topk' and self.topk > self.num_codes:
      raise ValueError(
        f'`topk` must be <= num_codes = {self.num_codes}, got {self.topk!r}'
      )
    checks.check_positive('temperature', self.temperature)
    if self.deterministic is not None and not isinstance(
      self.deterministic, bool
    ):
      raise ValueError(
        f'`deterministic` must be None or a bool, got {self.deterministic!r}'
      )
    super().__post_init__()

  @nn.compact
  def __call__(self, x: jax.Array, deterministic: bool | None = None):
    deterministic = nn.merge_param(
      'deterministic', self.deterministic, deterministic
    )
    k = self.num_codes
    logits = nn.Dense(k, name='indexer')(nn.relu(x))  # W_I ReLU(E) + b_I
    if self.indexing == 'gumbel_softmax':
      key = None if deterministic else self.make_rng('gumbel')
      weights = gumbel_softmax(logits, key, self.temperature, hard=True)
      probs = jax.lax.stop_gradient(weights)  # the hard one-hot
    else:
      probs = jax.nn.softmax(logits, axis=-1)
      weights = probs
      if self.dropout > 0:  # on the probabilities, not renormalised
        weights = nn.Dropout(self.dropout)(weights, deterministic)
      if self.indexing == 'topk':
        weights = topk_weights(weights, self.topk)
    self.sow('intermediates', 'probs', probs)
    self.sow('intermediates', 'weights', weights)
    c = self.param(
      'codebook', nn.initializers.normal(1.0), (k, self.code_dim), jnp.float32
    )
    if self.codebook == 'random':
      c = jax.lax.stop_gradient(c)  # the code's `self.codebook.detach()`
    elif self.codebook == 'binary':
      c = binary_codes(c)
    code = jnp.einsum('...k,kd->...d', weights, c.astype(weights.dtype))
    out_dim = x.shape[-1] if self.out_dim is None else self.out_dim
    return nn.Dense(out_dim, name='upsample')(code)
