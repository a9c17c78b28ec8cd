r"""SPPO (paper 31) on intransitive preference games, against iterative DPO.

Command::

  python -m jaxopt_papers.reproduce --paper=sppo --preset=quick
  python -m jaxopt_papers.reproduce --paper=sppo --swap

Setting. (1) The tabular game: one prompt, three responses, ``P = 1/2 +
A`` (biased rock-paper-scissors, Nash policy (0.5, 0.125, 0.375)), softmax
logits from zero, SPPO with the official best/worst loss, ``eta = 0.5``,
``K = 16`` samples per iteration, 100 SGD steps (lr 0.05) per iteration,
300 iterations, 3 seeds. Ground truth: exact MWU with the same ``eta``.
(2) A tiny causal LM (:class:`~jaxopt_papers.models.tiny_lm.TinyLM`,
``d_model`` 16, hidden 32) on 8 synthetic 2-token prompts, responses of
2 tokens over 4 tokens (16 responses, enumerated for exact evaluation),
the skew-bilinear intransitive oracle (scale 1, no transitive part); SPPO
(best/worst, ``eta = 2``) and iterative DPO (``beta = 0.5``, the same
best/worst pair) with ``K = 8``, 20 Adam steps (lr 0.03) per iteration, 30
iterations, 3 seeds: the same number of samples for both.

Expected (quick, about 25 s on 2 CPU cores; measured 2026-12-04):

* tabular: time-averaged policy exploitability per seed 0.0082, 0.0043,
  0.0085 (< 0.03; uniform policy 0.067, best pure strategy 0.100; exact
  MWU after 300 iterations: averaged 0.0057, last iterate 0.068). SPPO's
  last iterates 0.12, 0.026, 0.16 (they cycle; not claimed).
* tiny LM: averaged SPPO policy 0.175, 0.150, 0.179 vs iterative DPO
  0.448, 0.329, 0.490 (uniform policy 0.310): SPPO is less exploitable in
  every seed, and below uniform. At this scale SPPO's averaged policy is
  still far from the Nash policy (exploitability 0) and more iterations
  barely help (with 3-token responses, 60 iterations: 0.23-0.34 against a
  uniform 0.36); the claim is only the comparison. DPO collapses to one
  deterministic response per prompt; then all K samples coincide, the pair
  is (y, y), its gradient is zero and it stays there (DPO loss log 2).

Runtime: 45 s wall under a load of 8 on the 2-core host (26 s of CPU,
mostly XLA compilation of three self-play programs), over the 25 s
target.

The swap (``algo.loss='dpo'``: iterative DPO, beta 0.5, in SPPO's place),
measured (quick): tabular averaged exploitability per seed 0.31, 0.39,
0.16 (fails < 0.03, < uniform 0.067 and < best pure 0.100); the LM claim
then compares DPO with itself (0.448, 0.329, 0.490 both sides, not
strictly less: fails). All four claims fail.

``smoke``: 1 seed, 20 tabular iterations, 3 LM iterations with K = 4 on 4
prompts (every code path in seconds; its claims are not expected to hold).
"""

import ml_collections

from jaxopt_papers.configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = common.new_config('sppo', arg)
  c.num_seeds = 3
  # The method's switch (SPPO's loss); the rest is per testbed.
  c.algo = ml_collections.ConfigDict(dict(loss='sppo'))
  c.tabular = ml_collections.ConfigDict(
    dict(
      eta=0.5,
      beta=0.5,  # used only when the swap puts DPO in SPPO's place
      num_samples=16,
      inner_steps=100,
      learning_rate=0.05,
      num_iterations=300,
    )
  )
  c.lm = ml_collections.ConfigDict(
    dict(
      eta=2.0,
      beta=0.5,  # used only when the swap puts DPO in SPPO's place
      num_samples=8,
      inner_steps=20,
      learning_rate=0.03,
      num_iterations=30,
    )
  )
  # The iterative-DPO baseline on the LM testbed (same samples, optimizer).
  c.baseline = ml_collections.ConfigDict(dict(loss='dpo', beta=0.5))
  c.lm_data = ml_collections.ConfigDict(
    dict(
      num_prompts=8,
      prompt_length=2,
      response_length=2,
      vocab_size=4,
      dim=4,
      intransitive_scale=1.0,
      transitive_scale=0.0,
    )
  )
  # 'tiny' (models/tiny_lm.py) or 'transformer' (models/transformer.py,
  # 1 layer, 2 heads; compiles ~25 % slower).
  c.lm_model = ml_collections.ConfigDict(
    dict(name='tiny', d_model=16, hidden=32)
  )
  c.claim = ml_collections.ConfigDict(dict(max_tabular_exploitability=0.03))
  common.declare_swap(c, algo__loss='dpo')
  if c.preset == 'smoke':
    c.num_seeds = 1
    c.tabular.num_iterations = 20
    c.lm.num_iterations = 3
    c.lm.num_samples = 4
    c.lm.inner_steps = 5
    c.lm_data.num_prompts = 4
  if c.preset == 'full':
    c.num_seeds = 10
    c.tabular.num_iterations = 1000
    c.lm.num_iterations = 100
  return c
