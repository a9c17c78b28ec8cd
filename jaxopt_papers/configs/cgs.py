"""Convergent Graph Solvers (paper 24) on graph value iteration.

Command::

  python -m jaxopt_papers.reproduce --paper=cgs --preset=quick

Setting (paper card 24, official ``CGS/configs/gvi/cgs.yaml`` scaled down
for CPU): GVI graphs as the official generator (20-49 states, 5-9 incoming
edges per state, rewards U[-1, 1], value iteration with discount 0.9 to
atol 1e-3), padded to 50 nodes; fresh training graphs every step (the
official code regenerates every 32 updates); 128 fixed test graphs; targets
standardised with the mean/std of 256 other graphs (MSE reported in the
original units). CGS: 16 heads, gamma 0.5, 2 GN layers (``num_hidden_gn=1``),
hidden 32, decoder (32, 16), tol 1e-6, Adam 3e-3 with cosine decay, batch 16
graphs, 300 steps. Baseline GNN ``gnn2``: the same 2 attention-MPNN layers,
the same widths and decoder, no fixed point (14.5k vs 13.4k parameters).

Expected (quick, about 40 s on 2 CPU cores; measured 2026-11-28):

* claim 1: max 21 map applications = the bound 21 (reached by the x10
  scaled parameters, whose clipped logits saturate so columns of A sum to
  1), max relative residual 1.0e-6 over 4 random inits x scales (1, 10) x
  128 graphs x 16 heads; without the 1/outdeg normalisation the same
  parameters hit ``max_iter = 50`` with an infinite (overflowed) residual.
* claim 2: implicit vs direct-solve gradient relative error 2.3e-8 (x64);
  the Jacobian-free one-step backward is 4.2e-2 off.
* claims 3-4: test MSE CGS 0.230 (0.57 x constant, 0.84 x gnn2), gnn2
  0.273 (0.67 x constant), constant 0.406.

CALIBRATION (by hand, each threshold fails for its baseline):

* claim 1 ``bound``: the unnormalised map never meets the tolerance (50
  iterations, residual inf).
* claim 2 ``grad_rtol = 1e-5``: the one-step (Jacobian-free) backward has a
  relative error 4.2e-2.
* claims 3-4, measured over seeds 0, 1, 2 of the quick preset (the preset
  runs seed 0; 40-60 s each): test MSE CGS 0.230 / 0.188 / 0.228, stacked
  GNN (gnn2) 0.273 / 0.270 / 0.280, constant 0.406 / 0.451 / 0.429. Ratios
  CGS / constant 0.57 / 0.42 / 0.53, CGS / GNN 0.84 / 0.70 / 0.81, GNN /
  constant 0.67 / 0.60 / 0.65. The margins were set after measuring, with
  room for numerical drift across jax versions: ``max_frac_gnn = 0.9`` (the
  stacked GNN is 1.0 x itself) and ``max_frac_const = 0.62`` (was 0.7,
  which the stacked GNN swapped in for the CGS also met; see the swap
  below; the constant predictor is 1.0 x itself).

Honest limits measured while calibrating (quick budget, 300 steps):
deeper stacked GNNs with more parameters match or beat the CGS: 3 layers
(24.9k params) 0.172, 4 layers (35.3k) 0.148; a 3-layer GNN with the
same parameter count (hidden 24, 14.7k) 0.179 vs CGS 0.168 (on an earlier
prototype split): the CGS's advantage over a same-size GNN with one more
message-passing layer is within seed noise at this budget, so the claim
uses the same-layer GNN.

Swap (``python -m jaxopt_papers.reproduce --paper=cgs --swap``): ``method =
'gnn'`` trains the baseline stacked GNN (``gnns[baseline_gnn]``) in the
CGS's slot. Measured (quick, 2026-12-03): test MSE 0.273 in the CGS's slot
(the stacked GNN itself), which fails claim 3 (threshold 0.2514) and claim
4 (1.0 x the GNN, threshold 0.9 x). Claim 3 used to compare with 0.7 x the
constant predictor, which the stacked GNN also meets (0.67 x at seed 0):
its threshold is now ``max_frac_const = 0.62``, between the CGS (0.56 x at
seed 0; 0.42 / 0.53 at seeds 1, 2) and the stacked GNN (0.67 x; 0.60 /
0.65 at seeds 1, 2: the GNN of seed 1 would still pass, the preset runs
seed 0). Claims 1-2 are about the CGS's construction (the contraction
bound for any parameters) and an identity (implicit gradient == direct
solve), which the stacked GNN, with no fixed point, cannot be put in place
of: exempt.

``full`` follows the official GVI config more closely (64 heads, 4 GN
layers, hidden 64, MLP (128,), decoder (64, 32), batch 64, 5000 steps).
``smoke`` (seconds): 4 heads, hidden 8, one message-passing layer, graphs
of 6-11 states, 6 training steps; claims not expected to hold.
"""

import ml_collections

from jaxopt_papers.configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = common.new_config('cgs', arg)
  c.algo = ml_collections.ConfigDict(
    dict(
      num_heads=16,
      gamma=0.5,
      num_hidden_gn=1,
      node_hidden=32,
      edge_hidden=32,
      mlp_hidden=(32,),
      decoder_hidden=(32, 16),
      aggregator='sum',
      tol=1e-6,
      max_iter=50,
    )
  )
  gnn = dict(
    num_heads=16,
    node_hidden=32,
    edge_hidden=32,
    mlp_hidden=(32,),
    decoder_hidden=(32, 16),
    aggregator='sum',
  )
  c.gnns = ml_collections.ConfigDict(dict(gnn2=dict(gnn, num_layers=2)))
  c.baseline_gnn = 'gnn2'
  c.data = ml_collections.ConfigDict(
    dict(
      max_nodes=50,
      num_states=(20, 50),
      num_actions=(5, 10),
      num_stat_graphs=256,
      num_test_graphs=128,
    )
  )
  c.train = ml_collections.ConfigDict(
    dict(
      learning_rate=3e-3,
      batch_size=16,
      num_steps=300,
      eval_every=25,
      chunk_size=300,
    )
  )
  c.num_random_inits = 4
  c.param_scales = (1.0, 10.0)
  c.num_grad_graphs = 4
  c.curve_iters = 30
  c.claim = ml_collections.ConfigDict(
    dict(grad_rtol=1e-5, max_frac_const=0.62, max_frac_gnn=0.9)
  )
  # The model in the CGS's slot: 'cgs', or 'gnn' (the swap: the stacked
  # GNN `gnns[baseline_gnn]` is trained there).
  c.method = 'cgs'
  common.declare_swap(c, method='gnn')
  if c.preset == 'smoke':
    small = dict(
      num_heads=4,
      node_hidden=8,
      edge_hidden=8,
      mlp_hidden=(8,),
      decoder_hidden=(8,),
    )
    # One message-passing layer each: compilation is most of a smoke run.
    c.algo.update(dict(small, num_hidden_gn=0))
    c.gnns = ml_collections.ConfigDict(
      dict(gnn2=dict(gnn, **small, num_layers=1))
    )
    c.data.update(
      dict(
        max_nodes=11,
        num_states=(6, 12),
        num_actions=(2, 5),
        num_stat_graphs=16,
        num_test_graphs=8,
      )
    )
    c.train.update(dict(batch_size=4, num_steps=6, eval_every=3, chunk_size=6))
    c.num_random_inits = 1
    c.num_grad_graphs = 2
  if c.preset == 'full':
    c.algo.update(
      dict(
        num_heads=64,
        num_hidden_gn=3,
        node_hidden=64,
        edge_hidden=64,
        mlp_hidden=(128,),
        decoder_hidden=(64, 32),
      )
    )
    big = dict(
      gnn,
      num_heads=64,
      node_hidden=64,
      edge_hidden=64,
      mlp_hidden=(128,),
      decoder_hidden=(64, 32),
    )
    c.gnns = ml_collections.ConfigDict(
      dict(gnn4=dict(big, num_layers=4), gnn8=dict(big, num_layers=8))
    )
    c.baseline_gnn = 'gnn4'
    c.train.update(
      dict(
        learning_rate=1e-3,
        batch_size=64,
        num_steps=5000,
        eval_every=250,
        chunk_size=500,
      )
    )
    c.num_random_inits = 32
  return c
