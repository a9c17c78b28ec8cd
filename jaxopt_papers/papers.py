"""The registry: one :class:`PaperSpec` per implemented paper.

A literal table, not a decorator registry: importing this module imports no
paper. :func:`get` resolves a spec's ``target`` lazily (big_vision style),
and the contract suite, the driver, ``reproduce`` and the README's paper table
all read this table; capabilities (``device_axis``, ``key_arg``, ...) are
data here, so no test branches on a paper's name.

Run ``python -m jaxopt_papers.papers`` to print the README table.
"""

import dataclasses
import importlib
from collections.abc import Callable, Mapping
from typing import Any, Literal

__all__ = [
  'NOTEBOOKS',
  'PAPERS',
  'Notebook',
  'PaperSpec',
  'get',
  'get_spec',
  'load_config',
  'load_experiment',
  'markdown_table',
  'resolve',
]


@dataclasses.dataclass(frozen=True, kw_only=True)
class PaperSpec:
  """What the library knows about one paper.

  Attributes:
    id: Short name, also the module name of its config and experiment.
    short: Display name (``'FRUGAL'``, ``'asynchronous FL / FedFix'``).
    number: The paper's row in ``shared/papers/README.md``.
    title: Paper title.
    citation: ``'Authors, Venue Year'``.
    arxiv: arXiv identifier.
    family: Package folder (``optim``, ``solvers``, ...).
    kind: ``'transform'`` (an optax ``GradientTransformation`` factory),
      ``'solver'`` (a static dataclass with ``init``/``step``/``run``),
      ``'function'`` (``target(**kwargs)`` builds a static callable, e.g. a
      kernel function) or ``'module'`` (``target(**kwargs)`` builds a Flax
      linen module).
    target: ``'module:attribute'`` of the factory / solver class.
    claim: The headline claim checked by the experiment, in one line.
    test_kwargs: Small hyperparameters for the contract suite.
    bad_kwargs: ``(overrides, argument)`` pairs: building with ``test_kwargs``
      updated by ``overrides`` must raise ``ValueError`` naming ``argument``.
    static_args: Factory arguments that are not numeric hyperparameters
      (passed as ``static_args`` to ``optax.inject_hyperparams``).
    extra_args: Extra keyword arguments the transform's ``update`` needs.
    key_arg: Factory argument holding the PRNG key (transforms), if any.
    per_example_grads: Whether the transform's ``update`` takes per-example
      gradients with a leading batch axis (DP transforms, like
      ``optax.contrib.differentially_private_aggregate``).
    device_axis: Name of the mesh axis the solver maps over (it then takes a
      ``mesh`` argument), or ``None``.
    stochastic: Whether the PRNG key changes a run. A deterministic solver
      (plain gradient descent from a given start) must ignore its key; the
      contract suite checks either way.
    notebook: Name of the colab (``colabs/<notebook>.ipynb``, one of
      :data:`NOTEBOOKS`) holding the paper's cells; ``None`` is ``family``.
  """

  id: str
  short: str
  number: int
  title: str
  citation: str
  arxiv: str
  family: str
  kind: Literal['transform', 'solver', 'function', 'module']
  target: str
  claim: str
  test_kwargs: Mapping[str, Any]
  bad_kwargs: tuple[tuple[Mapping[str, Any], str], ...] = ()
  static_args: tuple[str, ...] = ()
  extra_args: tuple[str, ...] = ()
  key_arg: str | None = None
  per_example_grads: bool = False
  device_axis: str | None = None
  stochastic: bool = True
  notebook: str | None = None

  @property
  def url(self) -> str:
    return f'https://arxiv.org/abs/{self.arxiv}'

  @property
  def colab(self) -> str:
    """The notebook holding this paper's cells."""
    return self.notebook or self.family

  @property
  def config(self) -> str:
    """``jaxopt_papers.configs.<id>``: ``get_config(preset)``."""
    return f'jaxopt_papers.configs.{self.id}'

  @property
  def experiment(self) -> str:
    """``jaxopt_papers.experiments.<id>``: the per-paper interface.

    ``run(config, workdir) -> Report`` (the claims), ``benchmark(quick)``
    (time and memory rows against the baseline) and ``notebook(smoke)``
    (the paper's colab cells).
    """
    return f'jaxopt_papers.experiments.{self.id}'

  @property
  def example(self) -> str | None:
    """``'<experiment>:example'`` for solvers, functions and modules.

    Solvers: ``example(key) -> (x0, data)``; the contract suite runs
    ``init(x0, key)`` and ``step(state, data)``. Functions and modules:
    ``example(key) -> args`` (a tuple); the suite calls ``fn(*args)``, or
    ``module.init(key, *args)`` and ``module.apply(variables, *args)``.
    Transforms have none (``None``).
    """
    return None if self.kind == 'transform' else f'{self.experiment}:example'


@dataclasses.dataclass(frozen=True, kw_only=True)
class Notebook:
  """One colab (``colabs/<name>.ipynb``): a title and an introduction.

  Its cells are the notebook cells of its papers' experiments, in paper
  order (``scripts/make_colabs.py``).
  """

  name: str
  title: str
  intro: str


NOTEBOOKS: tuple[Notebook, ...] = (
  Notebook(
    name='optim',
    title='Optax transforms',
    intro=(
      'Each transform is an ordinary `optax.GradientTransformation`: the '
      'cells drop it into an optax chain next to its baseline, then run '
      "the paper's claim at CPU scale through the experiment driver."
    ),
  ),
  Notebook(
    name='solvers',
    title='Scan solvers',
    intro=(
      'Every solver here is a static dataclass with `init / step / run`; '
      '`run` is one `lax.scan` and the trace has one row per step, '
      'describing the state the step starts from. Each section shows the '
      "method next to its baseline, then runs the paper's claim at CPU "
      'scale through the experiment driver.'
    ),
  ),
  Notebook(
    name='function_space',
    title='Function-space methods',
    intro=(
      'These papers reason about functions rather than parameters: a '
      'kernel that describes training, a value function that must satisfy '
      'a martingale condition, a fixed point that a GNN must reach, a '
      'regularizer that makes a map optimal. Each has an exact answer to '
      'check against. Each section shows the method next to its baseline, '
      "then runs the paper's claim at CPU scale through the experiment "
      'driver.'
    ),
  ),
  Notebook(
    name='distributed',
    title='Communication-efficient distributed optimization',
    intro=(
      'These papers are about what crosses the wire between workers. '
      'Workers are a named axis: the cells map them with '
      '`jax.vmap(..., axis_name=...)` on one device; the same code runs '
      'under `jax.shard_map` over a device mesh (the tests check that 1 '
      'and 4 devices agree). Each section shows the method next to its '
      "baseline, with the bytes it sends, then runs the paper's claim at "
      'CPU scale through the experiment driver.'
    ),
  ),
  Notebook(
    name='federated',
    title='Federated learning on one simulator',
    intro=(
      'Clients are an axis: their data is stacked with static shapes, '
      'local training is a `lax.scan` of an optax client optimizer, '
      "participation is a mask drawn from the round's key inside the scan, "
      "and the server's aggregate is a psum over the clients axis, so the "
      'same code runs under `vmap` on one device and under `shard_map` '
      'over a `clients` mesh axis on many. Every algorithm is a solver '
      'over rounds.'
    ),
  ),
  Notebook(
    name='bilevel',
    title='Bilevel optimization and architecture search',
    intro=(
      'Bilevel problems nest one optimization inside another: the upper '
      "variable is judged at the lower problem's solution. Each section "
      'builds the hypergradient from Hessian-vector products '
      '(`jax.jvp` of `jax.grad`), runs the solver as one `lax.scan`, and '
      "then checks the paper's claim at CPU scale through the experiment "
      'driver.'
    ),
  ),
  Notebook(
    name='privacy',
    title='Differential privacy, accounted by dp-accounting',
    intro=(
      "Every epsilon printed here comes from Google's dp-accounting "
      'package, for the mechanism the code runs: Poisson-sampled batches '
      'with static shapes (padded and masked inside jit), per-example '
      'gradients clipped and noised once per step. Each section shows the '
      'method next to DP-SGD / DP-GD at the same (epsilon, delta), then '
      "checks the paper's claim at CPU scale through the experiment driver."
    ),
  ),
  Notebook(
    name='robust_quant',
    title='Robust and low-precision training',
    intro=(
      'Adversarial training with PGD inside the jitted step, where the '
      'doubly robust method reweights examples by a softmax of their '
      'adversarial losses (KL-DRO, a stop-gradient weight with a global '
      'normalizer); and quantization-aware training of a small Flax '
      'encoder with ternary weights and 8-bit activations, where the '
      "teacher's attention intermediates are fed to the student. Each "
      'section shows the method next to its baseline, then checks the '
      "paper's claim at CPU scale through the experiment driver."
    ),
  ),
  Notebook(
    name='alignment_fewshot',
    title='Preferences, representations and few-shot learning',
    intro=(
      'Three papers where the answer is a distribution or a partition: '
      'self-play preference optimization, which regresses log-probability '
      'ratios on estimated win rates and approaches the von Neumann winner '
      'of an intransitive game; a codebook bottleneck that forces a '
      "policy's features through a softmax over a few learned codes and "
      'drops what the task does not need; and transductive few-shot '
      'learning, where the unlabeled queries of an episode are clustered '
      'with a Laplacian term, vmapped over episodes. Each section shows the '
      "method next to its baseline, then checks the paper's claim at CPU "
      'scale through the experiment driver.'
    ),
  ),
  Notebook(
    name='generative',
    title='Generative models: distilled diffusion and voxel radiance fields',
    intro=(
      'Two papers that fit a generative model fast. DisBack distills a '
      'diffusion model into a one-step generator, but first records how '
      "the teacher's score degrades towards the untrained generator and "
      'then walks that path backwards, so the generator always chases a '
      'nearby target; here on a 2-D ring of Gaussians whose score is known '
      'in closed form. DVGO fits a radiance field as dense voxel grids with '
      'the density activation applied after interpolation, so a coarse '
      'grid still draws sharp surfaces; here on a scene rendered in code. '
      'Each section shows the method next to its baseline, then checks the '
      "paper's claim at CPU scale through the experiment driver."
    ),
  ),
)


def _lazy(target: str) -> Callable[..., Any]:
  """A function that imports ``'module:attribute'`` when called.

  For testbed losses in ``test_kwargs``: importing the registry imports no
  paper and no testbed.
  """

  def fn(*args: Any, **kwargs: Any) -> Any:
    return resolve(target)(*args, **kwargs)

  fn.__name__ = fn.__qualname__ = target.rpartition(':')[2]
  return fn


PAPERS: tuple[PaperSpec, ...] = (
  PaperSpec(
    id='frugal',
    short='FRUGAL',
    number=2,
    title=(
      'FRUGAL: Memory-Efficient Optimization by Reducing State Overhead '
      'for Scalable Training'
    ),
    citation='Zmushko, Beznosikov, Takáč, Horváth, ICML 2025',
    arxiv='2411.07837',
    family='optim',
    kind='transform',
    target='jaxopt_papers.optim.frugal:frugal',
    claim=(
      'tiny LM, density 0.25: lower loss than GaLore-style, close to Adam, '
      'with <= 0.35x Adam state bytes'
    ),
    test_kwargs={
      'learning_rate': 1e-2,
      'density': 0.5,
      'update_gap': 3,
      'projection': 'random',
    },
    bad_kwargs=(
      ({'density': 1.5}, 'density'),
      ({'update_gap': 0}, 'update_gap'),
      ({'projection': 'qr'}, 'projection'),
      ({'state_free': 'adam'}, 'state_free'),
      ({'learning_rate': -1e-3}, 'learning_rate'),
      ({'weight_decay': -0.1}, 'weight_decay'),
      ({'state_free_scale': float('nan')}, 'state_free_scale'),
    ),
    static_args=(
      'density',
      'update_gap',
      'projection',
      'state_full',
      'state_free',
      'reset_statistics',
      'key',
    ),
    key_arg='key',
  ),
  PaperSpec(
    id='normalized_lr_gd',
    short='Normalized LR+GD',
    number=7,
    title=(
      'From Logistic Regression to the Perceptron Algorithm: Exploring '
      'Gradient Descent with Large Step Sizes'
    ),
    citation='Tyurin, AAAI 2025',
    arxiv='2412.08424',
    family='optim',
    kind='transform',
    target='jaxopt_papers.optim.normalized_lr_gd:normalized_lr_gd',
    claim=(
      'separable data: separates within R^2/mu^2 for gamma = 1..1e5, 10x '
      'faster than LR+GD, whose gamma->inf limit is the batch perceptron'
    ),
    test_kwargs={'learning_rate': 0.1},
    bad_kwargs=(
      ({'learning_rate': -1.0}, 'learning_rate'),
      ({'learning_rate': float('nan')}, 'learning_rate'),
      ({'eps': -1e-3}, 'eps'),
      ({'axis_name': 3}, 'axis_name'),
    ),
    static_args=('axis_name',),
  ),
  PaperSpec(
    id='last_iterate_sgd',
    short='last-iterate SGD',
    number=8,
    title=(
      'Revisiting the Last-Iterate Convergence of Stochastic Gradient Methods'
    ),
    citation='Liu, Zhou, ICLR 2024',
    arxiv='2312.08531',
    family='optim',
    kind='solver',
    target='jaxopt_papers.optim.last_iterate_sgd:CompositeMirrorDescent',
    claim=(
      'last-iterate slopes of log(F(x_T) - F*) vs log T, T = 2^8..2^13, 20 '
      'seeds: entropic MD <= -0.35, prox-SGD 1/t <= -0.8, Student-t noise '
      '<= -0.5 (median); last <= 3x average gap at 2^14'
    ),
    # The solver takes any objective and oracle: the contract runs it on
    # the experiment's lasso problem (resolved at call time).
    test_kwargs={
      'objective': _lazy(
        'jaxopt_papers.experiments.last_iterate_sgd:composite_objective'
      ),
      'oracle': _lazy(
        'jaxopt_papers.experiments.last_iterate_sgd:composite_oracle'
      ),
      'learning_rate': 1.0,
      'schedule': 'inverse',
      'l1_strength': 0.1,
    },
    bad_kwargs=(
      ({'learning_rate': -1.0}, 'learning_rate'),
      ({'mirror_map': 'kl'}, 'mirror_map'),
      ({'schedule': 'cosine'}, 'schedule'),
      ({'schedule': 'horizon'}, 'horizon'),
      ({'horizon': 0}, 'horizon'),
      ({'l1_strength': -0.1}, 'l1_strength'),
      ({'mirror_map': 'entropic'}, 'l1_strength'),
      ({'objective': None}, 'objective'),
      ({'oracle': 3.0}, 'oracle'),
    ),
  ),
  PaperSpec(
    id='cbo',
    short='CBO',
    number=19,
    title='Gradient is All You Need?',
    citation='Riedl, Klock, Geldhauser, Fornasier, arXiv 2023',
    arxiv='2306.09778',
    family='solvers',
    kind='solver',
    target='jaxopt_papers.solvers.cbo:CBO',
    claim=(
      'shifted Rastrigin d=20: CBO finds the global minimiser in >= 9/10 '
      'seeds, GD from the same particles in <= 1/10'
    ),
    test_kwargs={'alpha': 30.0, 'lam': 1.0, 'sigma': 1.0, 'dt': 0.05},
    bad_kwargs=(
      ({'alpha': 0.0}, 'alpha'),
      ({'dt': -0.1}, 'dt'),
      ({'sigma': -1.0}, 'sigma'),
      ({'noise': 'cauchy'}, 'noise'),
    ),
    device_axis='particles',
  ),
  PaperSpec(
    id='subgm',
    short='SubGM',
    number=27,
    title=(
      'Global Convergence of Sub-gradient Method for Robust Matrix '
      'Recovery: Small Initialization, Noisy Measurements, and '
      'Over-parameterization'
    ),
    citation='Ma, Fattahi, JMLR 2023',
    arxiv='2202.08788',
    family='solvers',
    kind='solver',
    target='jaxopt_papers.solvers.subgm:SubGM',
    claim=(
      "d=20, r'=20, 30% outliers: SubGM from alpha=1e-6 reaches < 1e-4 "
      'relative error in 3/3 seeds, l2-loss GD stays > 0.5'
    ),
    test_kwargs={'learning_rate': 0.1, 'decay': 0.99, 'loss': 'l1'},
    bad_kwargs=(
      ({'learning_rate': -0.1}, 'learning_rate'),
      ({'decay': 0.0}, 'decay'),
      ({'decay': 1.5}, 'decay'),
      ({'loss': 'huber'}, 'loss'),
    ),
    stochastic=False,
  ),
  PaperSpec(
    id='exact_al',
    short='AdaSketch-Newton',
    number=21,
    title=(
      'Constrained Optimization via Exact Augmented Lagrangian and '
      'Randomized Iterative Sketching'
    ),
    citation='Hong, Na, Mahoney, Kolar, ICML 2023',
    arxiv='2305.18379',
    family='solvers',
    kind='solver',
    target='jaxopt_papers.solvers.exact_al:ExactAL',
    claim=(
      'constrained logreg (synthetic, breast cancer): KKT <= 1e-6 within '
      '30 Newton steps, matches SLSQP to 1e-4, unit steps and superlinear '
      'tail; a fixed inner budget fails all'
    ),
    # The solver takes any f and c: the contract runs it on the constrained
    # logistic regression of `data.constrained` (resolved at call time, so
    # importing the registry imports no paper).
    test_kwargs={
      'f': _lazy('jaxopt_papers.data.constrained:logistic_loss'),
      'c': _lazy('jaxopt_papers.data.constrained:logistic_constraints'),
      'num_constraints': 3,
      'max_sketch_steps': 200,
    },
    bad_kwargs=(
      ({'beta': 0.7}, 'beta'),
      ({'nu': 1.0}, 'nu'),
      ({'delta': 0.0}, 'delta'),
      ({'sketch': 'sparse'}, 'sketch'),
      ({'merit_hessian': 'gauss_newton'}, 'merit_hessian'),
    ),
  ),
  PaperSpec(
    id='halpern_vr',
    short='VR-Halpern',
    number=20,
    title=(
      'Variance Reduced Halpern Iteration for Finite-Sum Monotone Inclusions'
    ),
    citation='Cai, Alacaoglu, Diakonikolas, ICLR 2024',
    arxiv='2310.02987',
    family='solvers',
    kind='solver',
    target='jaxopt_papers.solvers.halpern_vr:VRHalpern',
    claim=(
      'finite-sum least squares n=2000: VR-Halpern reaches ‖F‖ <= 1e-3 '
      "with <= 1/4 of Halpern's component evaluations (3/3 seeds); Halpern "
      'meets its 2‖u0-u*‖/(k+1) bound at every k; outside its mean-square '
      'step assumption VR-Halpern diverges and flags it'
    ),
    test_kwargs={'step_size': 1.0, 'prob': 0.3, 'batch_size': 2},
    bad_kwargs=(
      ({'step_size': -1.0}, 'step_size'),
      ({'step_size': 3.0, 'lipschitz': 1.0}, 'step_size'),
      ({'prob': 0.0}, 'prob'),
      ({'batch_size': 0}, 'batch_size'),
      ({'lam': 1.0}, 'lam'),
      ({'residual_every': 0}, 'residual_every'),
    ),
    device_axis='components',
  ),
  PaperSpec(
    id='matrix_sensing',
    short='over-parameterized matrix sensing',
    number=26,
    title=(
      'How Over-Parameterization Slows Down Gradient Descent in Matrix '
      'Sensing: The Curses of Symmetry and Initialization'
    ),
    citation='Xiong, Ding, Du, ICLR 2024',
    arxiv='2310.01769',
    family='solvers',
    kind='solver',
    target='jaxopt_papers.solvers.matrix_sensing:MatrixSensingGD',
    claim=(
      'n=20, r=2: symmetric GD linear at k=r, sublinear at k=2r; asymmetric '
      'k=2r linear with an alpha-dependent rate; one modified step gives '
      '< 1e-10 by t=4000 and the same rate for every alpha'
    ),
    test_kwargs={
      'learning_rate': 0.05,
      'parameterization': 'asymmetric',
      'modification_step': 3,
      'modification_scale': 1.0,
    },
    bad_kwargs=(
      ({'learning_rate': -0.1}, 'learning_rate'),
      ({'parameterization': 'lifted'}, 'parameterization'),
      ({'modification_step': -1}, 'modification_step'),
      ({'modification_scale': 0.0}, 'modification_scale'),
    ),
    stochastic=False,
  ),
  PaperSpec(
    id='ntk',
    short='NTK',
    notebook='function_space',
    number=22,
    title=(
      'Neural Tangent Kernel: Convergence and Generalization in Neural Networks'
    ),
    citation='Jacot, Gabriel, Hongler, NeurIPS 2018',
    arxiv='1806.07572',
    family='ntk',
    kind='function',
    target='jaxopt_papers.ntk.analytic:AnalyticKernel',
    claim=(
      'depth-3 ReLU MLP, 10 seeds: mean relative error of the empirical NTK '
      'vs the analytic limit < 5% at width 4096 and >= 2x smaller than at '
      '256; a width-2048 net trained by GD tracks the kernel prediction'
    ),
    test_kwargs={
      'depth': 2,
      'activation': 'erf',
      'w_std': 1.5,
      'b_std': 0.1,
      'kind': 'ntk',
    },
    bad_kwargs=(
      ({'depth': -1}, 'depth'),
      ({'activation': 'tanh'}, 'activation'),
      ({'w_std': -1.0}, 'w_std'),
      ({'b_std': -0.1}, 'b_std'),
      ({'kind': 'cntk'}, 'kind'),
    ),
  ),
  PaperSpec(
    id='monge_gap',
    short='the Monge gap',
    notebook='function_space',
    number=25,
    title='The Monge Gap: A Regularizer to Learn All Transport Maps',
    citation='Uscidda, Cuturi, ICML 2023',
    arxiv='2302.04953',
    family='ot',
    kind='solver',
    target='jaxopt_papers.ot.monge_gap:MongeGapEstimator',
    claim=(
      '2-D Gaussians, affine map from the rotated push-forward: with the '
      'Monge gap the map error to the closed-form OT map is < 0.05, without '
      'it > 1.0 (3/3 seeds); gap(T*) in [eps log n, 1.3 eps log n]'
    ),
    test_kwargs={
      'lam': 1.0,
      'epsilon_fit': 0.1,
      'epsilon_gap': 0.05,
      'batch_size': 16,
      'learning_rate': 1e-2,
    },
    bad_kwargs=(
      ({'lam': -1.0}, 'lam'),
      ({'epsilon_gap': 0.0}, 'epsilon_gap'),
      ({'epsilon_fit': -0.1}, 'epsilon_fit'),
      ({'batch_size': 0}, 'batch_size'),
      ({'relative_epsilon': 'median'}, 'relative_epsilon'),
      ({'threshold': 0.0}, 'threshold'),
    ),
  ),
  PaperSpec(
    id='martingale_pe',
    short='martingale policy evaluation',
    notebook='function_space',
    number=23,
    title=(
      'Policy Evaluation and Temporal-Difference Learning in Continuous '
      'Time and Space: A Martingale Approach'
    ),
    citation='Jia, Zhou, JMLR 2022',
    arxiv='2108.06655',
    family='rl',
    kind='solver',
    target='jaxopt_papers.rl.martingale_pe:TDLambda',
    claim=(
      'OU, 2000 paths, dt=0.01: ML, LSTD, online TD(0)/TD(lambda) within '
      '10% of the exact value coefficients and their error shrinks with dt; '
      'the mean-square TD error minimiser is > 70% off and does not improve'
    ),
    test_kwargs={
      'learning_rate': 1.0,
      'lam': 0.5,
      'dt': 0.1,
      'discount': 1.0,
      'num_paths': 8,
    },
    bad_kwargs=(
      ({'dt': 0.0}, 'dt'),
      ({'lam': 1.5}, 'lam'),
      ({'lam': -0.1}, 'lam'),
      ({'discount': -1.0}, 'discount'),
      ({'learning_rate': 0.0}, 'learning_rate'),
      ({'num_paths': 0}, 'num_paths'),
    ),
    device_axis='paths',
    stochastic=False,
  ),
  PaperSpec(
    id='cgs',
    short='Convergent Graph Solvers',
    notebook='function_space',
    number=24,
    title='Convergent Graph Solvers',
    citation='Park, Choo, Park, ICLR 2022',
    arxiv='2106.01680',
    family='graph',
    kind='module',
    target='jaxopt_papers.graph.cgs:CGS',
    claim=(
      'graph value iteration: fixed point within ceil(log tol / log gamma) '
      '+ 1 iterations for any parameters; implicit grads == direct solve '
      '(1e-5, x64); trained CGS test MSE < 0.62x a constant predictor and '
      '< 0.9x a stacked GNN with the same layers and size'
    ),
    test_kwargs={
      'num_heads': 4,
      'gamma': 0.5,
      'num_hidden_gn': 1,
      'node_hidden': 8,
      'edge_hidden': 8,
      'mlp_hidden': (8,),
      'decoder_hidden': (8,),
      'tol': 1e-6,
      'max_iter': 30,
    },
    bad_kwargs=(
      ({'gamma': 1.0}, 'gamma'),
      ({'num_heads': 0}, 'num_heads'),
      ({'max_iter': 10}, 'max_iter'),
      ({'tol': 0.0}, 'tol'),
      ({'aggregator': 'max'}, 'aggregator'),
      ({'num_hidden_gn': -1}, 'num_hidden_gn'),
      ({'solver': 'anderson'}, 'solver'),
    ),
  ),
  PaperSpec(
    id='sa_srrw',
    short='self-repellent random walks',
    number=15,
    title=(
      'Accelerating Distributed Stochastic Optimization via Self-Repellent '
      'Random Walks'
    ),
    citation='Hu, Doshi, Eun, ICLR 2024',
    arxiv='2401.09665',
    family='distributed',
    kind='solver',
    target='jaxopt_papers.distributed.srrw:SASRRW',
    claim=(
      '50-node graph, 100 runs: MSE falls with alpha, alpha=5 <= 0.1x MHRW '
      '(alpha=0); gain regime (i) >= 2x regime (iii)'
    ),
    test_kwargs={'num_nodes': 12, 'alpha': 2.0, 'a': 0.6, 'b': 0.8},
    bad_kwargs=(
      ({'alpha': -1.0}, 'alpha'),
      ({'a': 0.5}, 'a'),
      ({'b': 1.5}, 'b'),
      ({'num_nodes': 0}, 'num_nodes'),
    ),
    device_axis='runs',
  ),
  PaperSpec(
    id='onebit_adam',
    short='1-bit Adam',
    number=5,
    title=(
      "1-bit Adam: Communication Efficient Large-Scale Training with Adam's "
      'Convergence Speed'
    ),
    citation=(
      'Tang, Gan, Awan, Rajbhandari, Li, Lian, Liu, Zhang, He, ICML 2021'
    ),
    arxiv='2102.02888',
    family='distributed',
    kind='transform',
    target='jaxopt_papers.distributed.onebit_adam:onebit_adam',
    claim=(
      '4-worker digits MLP: warm-up bit-identical to Adam; <= 1/25 of fp32 '
      "Adam's bytes per step after it; final loss <= 1.05x Adam (3 seeds), "
      'without error feedback clearly worse'
    ),
    test_kwargs={'learning_rate': 0.1, 'b2': 0.99, 'freeze_step': 20},
    bad_kwargs=(
      ({'freeze_step': -1}, 'freeze_step'),
      ({'num_workers': 0}, 'num_workers'),
      ({'axis_name': ''}, 'axis_name'),
      ({'error_feedback': 'yes'}, 'error_feedback'),
      ({'learning_rate': -1.0}, 'learning_rate'),
      ({'b1': 1.5}, 'b1'),
      ({'eps': -1.0}, 'eps'),
    ),
    static_args=(
      'freeze_step',
      'axis_name',
      'num_workers',
      'error_feedback',
      'momentum_mask',
      'mask_zero_variance',
      'skip_nonfinite',
      'bias_correction',
    ),
  ),
  PaperSpec(
    id='econtrol',
    short='EControl',
    number=6,
    title=(
      'EControl: Fast Distributed Optimization with Compression and Error '
      'Control'
    ),
    citation='Gao, Islamov, Stich, ICLR 2024',
    arxiv='2311.05645',
    family='distributed',
    kind='solver',
    target='jaxopt_papers.distributed.econtrol:EControl',
    claim=(
      'heterogeneous quadratics, Top-k: naive stalls, EF21/EControl '
      'converge; noisy small steps: EControl(eta=0.1) < EF21-SGD / 3, '
      'eta=1 diverges'
    ),
    test_kwargs={
      'num_workers': 8,
      'eta': 0.2,
      'step_size': 0.2,
      'sigma': 0.1,
    },
    bad_kwargs=(
      ({'eta': 1.5}, 'eta'),
      ({'step_size': 0.0}, 'step_size'),
      ({'method': 'ef22'}, 'method'),
      ({'sigma': -1.0}, 'sigma'),
      ({'num_workers': 0}, 'num_workers'),
    ),
    device_axis='workers',
  ),
  PaperSpec(
    id='fedau',
    short='FedAU',
    number=12,
    title=(
      'A Lightweight Method for Tackling Unknown Participation Statistics '
      'in Federated Averaging'
    ),
    citation='Wang, Ji, ICLR 2024',
    arxiv='2306.03401',
    family='federated',
    kind='solver',
    target='jaxopt_papers.federated.fedau:FedAU',
    claim=(
      'participation correlated with client optima (100 clients): FedAvg '
      'stays at the analytic bias, FedAU >= 10x smaller, close to the '
      'known-probability oracle; omega_n within 25% of 1/p_n'
    ),
    test_kwargs={
      'num_clients': 8,
      'num_local_steps': 2,
      'cutoff': 5,
      'loss_fn': _lazy('jaxopt_papers.data.federated:quadratic_loss'),
    },
    bad_kwargs=(
      ({'cutoff': 0}, 'cutoff'),
      ({'omega': 'oracle'}, 'omega'),
      ({'weighting': 'all'}, 'weighting'),
      ({'num_clients': 0}, 'num_clients'),
    ),
    device_axis='clients',
    stochastic=False,
  ),
  PaperSpec(
    id='fedfix',
    short='asynchronous FL / FedFix',
    number=14,
    title=(
      'A General Theory for Federated Optimization with Asynchronous and '
      'Heterogeneous Clients Updates'
    ),
    citation='Fraboni, Vidal, Kameni, Lorenzi, JMLR 2023',
    arxiv='2206.10189',
    family='federated',
    kind='solver',
    target='jaxopt_papers.federated.async_fl:AsyncFL',
    claim=(
      'F-80 quadratics, budget T=200: async identical stops at the analytic '
      'speed-biased optimum (>= 0.8 x its distance to x*) where FedFix-0.5 '
      'is within 0.2 x of x*; FedFix-0.5 corrected at eta_g=1 reaches <= 0.1 '
      'where corrected async diverges; FedFix reaches 0.2 in <= 0.75 x sync '
      "FL's wall-clock time, sync FL <= 1e-6 (3 seeds)"
    ),
    test_kwargs={
      'client_times': (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3),
      'loss_fn': _lazy('jaxopt_papers.data.federated:quadratic_loss'),
      'scheme': 'fedfix',
      'weights': 'weight',
      'delta_t': 0.5,
      'server_lr': 0.5,
      'num_local_steps': 3,
    },
    bad_kwargs=(
      ({'scheme': 'fedasync'}, 'scheme'),
      ({'weights': 'uniform'}, 'weights'),
      ({'server_lr': 0.0}, 'server_lr'),
      ({'delta_t': -0.5}, 'delta_t'),
      ({'buffer_size': 9}, 'buffer_size'),
      ({'time_jitter': 1.0}, 'time_jitter'),
      ({'client_times': (1.0, 0.0)}, 'client_times'),
    ),
    device_axis='clients',
    stochastic=False,
  ),
  PaperSpec(
    id='dfedsam',
    short='DFedSAM',
    number=17,
    title=(
      'Improving the Model Consistency of Decentralized Federated Learning '
      '(DFedSAM, DFedSAM-MGS)'
    ),
    citation='Shi, Shen, Wei, Sun, Yuan, Wang, Tao, ICML 2023',
    arxiv='2302.04083',
    family='federated',
    kind='solver',
    target='jaxopt_papers.federated.dfedsam:DFedSAM',
    claim=(
      'digits, 16-client ring: consensus distance with Q=4 <= 1/2 of Q=1; '
      'average models >= 0.9 test accuracy (local SAM without gossip '
      'misses it); MGS >= DFedAvg - 0.01'
    ),
    test_kwargs={
      'num_clients': 8,
      'rho': 0.05,
      'gossip_steps': 2,
      'loss_fn': _lazy('jaxopt_papers.data.federated:quadratic_loss'),
      'num_local_steps': 2,
    },
    bad_kwargs=(
      ({'rho': -1.0}, 'rho'),
      ({'gossip_steps': 0}, 'gossip_steps'),
      ({'mixing': 'star'}, 'mixing'),
      ({'num_clients': 0}, 'num_clients'),
    ),
    device_axis='clients',
    stochastic=False,
  ),
  PaperSpec(
    id='fedspeed',
    short='FedSpeed',
    number=18,
    title=(
      'FedSpeed: Larger Local Interval, Less Communication Round, and Higher '
      'Generalization Accuracy'
    ),
    citation='Sun, Shen, Huang, Ding, Tao, ICLR 2023',
    arxiv='2302.10429',
    family='federated',
    kind='solver',
    target='jaxopt_papers.federated.fedspeed:FedSpeed',
    claim=(
      'heterogeneous quadratics, K=50: full participation ||x-x*|| <= 0.01 '
      'where FedAvg stays >= 0.5; 20% participation <= 1/4 of FedAvg '
      '(3 seeds); rho=0 is FedDyn exactly'
    ),
    test_kwargs={
      'num_clients': 8,
      'learning_rate': 0.1,
      'loss_fn': _lazy('jaxopt_papers.data.federated:quadratic_loss'),
      'lamb': 0.1,
      'rho': 0.05,
      'num_local_steps': 3,
    },
    bad_kwargs=(
      ({'lamb': 0.0}, 'lamb'),
      ({'rho': -0.1}, 'rho'),
      ({'alpha': 2.0}, 'alpha'),
      ({'ascent': 'sam'}, 'ascent'),
      ({'average_dual_over': 'none'}, 'average_dual_over'),
      ({'num_clients': 0}, 'num_clients'),
    ),
    device_axis='clients',
    stochastic=False,
  ),
  PaperSpec(
    id='bo_rep',
    short='BO-REP',
    number=10,
    title=(
      'Bilevel Optimization under Unbounded Smoothness: A New Algorithm '
      'and Convergence Analysis'
    ),
    citation='Hao, Gong, Liu, ICLR 2024',
    arxiv='2401.09587',
    family='bilevel',
    kind='solver',
    target='jaxopt_papers.bilevel.bo_rep:BORep',
    claim=(
      'digits hyper-cleaning, 40% wrong labels, 500 upper steps: BO-REP '
      'test acc >= stocBiO + 3 pts at lr 0.05 and >= no-cleaning + 3 pts at '
      'lr 0.05 and 5 (3/3 seeds); estimator = implicit hypergradient (1e-6)'
    ),
    # Losses of the experiment's hyper-cleaning demo (resolved at call time).
    test_kwargs={
      'upper_loss': _lazy(
        'jaxopt_papers.experiments.bo_rep:cleaning_upper_loss'
      ),
      'lower_loss': _lazy(
        'jaxopt_papers.experiments.bo_rep:cleaning_lower_loss'
      ),
      'lower_init': _lazy(
        'jaxopt_papers.experiments.bo_rep:cleaning_lower_init'
      ),
      'num_lower_steps': 2,
      'update_interval': 2,
      'num_refine_steps': 3,
      'upper_batch_size': 4,
      'lower_batch_size': 4,
    },
    bad_kwargs=(
      ({'learning_rate': 0.0}, 'learning_rate'),
      ({'momentum': 1.0}, 'momentum'),
      ({'lower_learning_rate': -1.0}, 'lower_learning_rate'),
      ({'z_learning_rate': float('nan')}, 'z_learning_rate'),
      ({'num_lower_steps': 0}, 'num_lower_steps'),
      ({'update_interval': 0}, 'update_interval'),
      ({'num_refine_steps': -1}, 'num_refine_steps'),
      ({'z_radius': 0.0}, 'z_radius'),
      ({'normalize': 'yes'}, 'normalize'),
      ({'upper_batch_size': 0}, 'upper_batch_size'),
      ({'lower_batch_size': 2.5}, 'lower_batch_size'),
      ({'upper_loss': None}, 'upper_loss'),
      ({'lower_init': 0.0}, 'lower_init'),
    ),
  ),
  PaperSpec(
    id='rarts',
    short='RARTS',
    number=1,
    title='RARTS: An Efficient First-Order Relaxed Architecture Search Method',
    citation='Xue, Qi, Xin, IEEE Access 2022',
    arxiv='2008.03901',
    family='bilevel',
    kind='solver',
    target='jaxopt_papers.bilevel.rarts:RARTS',
    claim=(
      'analytic toy: RARTS reaches alpha* to 1e-6 where 1st-order DARTS '
      'cannot move alpha; digits supernet: 3 gradient evaluations per step '
      'vs 5 for 2nd-order DARTS, retrained accuracy >= DARTS-1st - 1 pt'
    ),
    # The solver takes any loss(weights, alpha, batch): the contract runs
    # it on the analytic toy of the experiment (resolved at call time).
    test_kwargs={
      'loss_fn': _lazy('jaxopt_papers.experiments.rarts:toy_loss'),
      'alpha_shape': (4,),
    },
    bad_kwargs=(
      ({'method': 'darts3'}, 'method'),
      ({'lam': -1.0}, 'lam'),
      ({'beta': 0.0}, 'beta'),
      ({'beta_on': 'both'}, 'beta_on'),
      ({'xi': 0.0}, 'xi'),
      ({'batch_size': 0}, 'batch_size'),
      ({'couple_w': 'yes'}, 'couple_w'),
      ({'w_optimizer': 0.1}, 'w_optimizer'),
    ),
  ),
  PaperSpec(
    id='dice_sgd',
    short='DiceSGD',
    number=3,
    title=(
      'Differentially Private SGD Without Clipping Bias: An Error-Feedback '
      'Approach'
    ),
    citation='Zhang, Bu, Wu, Hong, ICLR 2024',
    arxiv='2311.14632',
    family='privacy',
    kind='transform',
    target='jaxopt_papers.privacy.dice_sgd:dice_sgd',
    claim=(
      '1-D clipping bias: DiceSGD reaches x*=2 where DP-SGD-GC stops at '
      '0.25; digits at eps=2: final train loss < 0.7x DP-SGD-GC in 3/3 seeds'
    ),
    test_kwargs={
      'learning_rate': 0.1,
      'l2_norm_clip': 1.0,
      'error_clip': 1.0,
      'noise_multiplier': 0.5,
    },
    bad_kwargs=(
      ({'learning_rate': -0.1}, 'learning_rate'),
      ({'l2_norm_clip': 0.0}, 'l2_norm_clip'),
      ({'error_clip': -1.0}, 'error_clip'),
      ({'noise_multiplier': -0.1}, 'noise_multiplier'),
      ({'variant': 'torch'}, 'variant'),
      ({'expected_batch_size': 0.0}, 'expected_batch_size'),
      ({'key': 'seed'}, 'key'),
    ),
    static_args=('key', 'variant', 'expected_batch_size', 'axis_name'),
    key_arg='key',
    per_example_grads=True,
  ),
  PaperSpec(
    id='dp_spider',
    short='private SpiderBoost',
    number=4,
    title=(
      'Faster Rates of Convergence to Stationary Points in Differentially '
      'Private Optimization'
    ),
    citation='Arora, Bassily, González, Guzmán, Menart, Ullah, ICML 2023',
    arxiv='2206.00846',
    family='privacy',
    kind='solver',
    target='jaxopt_papers.privacy.dp_spider:PrivateSpiderBoost',
    claim=(
      'breast cancer, logistic + nonconvex penalty, eps in {0.5, 1}, '
      'delta=1e-5 (dp-accounting): median min_t ||grad F|| of private '
      'SpiderBoost < DP-GD over 10 seeds'
    ),
    test_kwargs={'phase_length': 4, 'noise_multiplier': 2.0},
    bad_kwargs=(
      ({'learning_rate': 0.0}, 'learning_rate'),
      ({'phase_length': 0}, 'phase_length'),
      ({'batch_size': 0}, 'batch_size'),
      ({'noise_multiplier': -1.0}, 'noise_multiplier'),
      ({'tree_noise_multiplier': -0.5}, 'tree_noise_multiplier'),
      ({'lipschitz': 0.0}, 'lipschitz'),
      ({'smoothness': -1.0}, 'smoothness'),
      ({'regularization': -0.1}, 'regularization'),
    ),
  ),
  PaperSpec(
    id='done_at',
    short='DONE (doubly robust AT)',
    number=11,
    title='Doubly Robust Instance-Reweighted Adversarial Training',
    citation='Sow, Lin, Wang, Liang, ICLR 2024',
    arxiv='2308.00311',
    family='robust',
    kind='solver',
    target='jaxopt_papers.robust.done_at:DoneAT',
    claim=(
      'digits in [0,1], MLP, L-inf eps=0.1, PGD-10 train / PGD-20 eval, 3 '
      'seeds: lower final DRO objective than Madry AT in every seed, '
      "worst-class robust accuracy > AT's, mean robust accuracy >= AT - 2 "
      'pt'
    ),
    # Any apply_fn: the contract runs it on the experiment's linear toy
    # (resolved at call time).
    test_kwargs={
      'apply_fn': _lazy('jaxopt_papers.experiments.done_at:example_apply'),
      'batch_size': 8,
      'pgd_steps': 3,
      'pgd_step_size': 0.05,
    },
    bad_kwargs=(
      ({'epsilon': -0.1}, 'epsilon'),
      ({'r': 0.0}, 'r'),
      ({'tau': 0.0}, 'tau'),
      ({'tau': 1.5}, 'tau'),
      ({'method': 'gairat'}, 'method'),
      ({'beta': -1.0}, 'beta'),
      ({'pgd_steps': -1}, 'pgd_steps'),
      ({'pgd_step_size': 0.0}, 'pgd_step_size'),
      ({'norm': 'l1'}, 'norm'),
      ({'batch_size': 0}, 'batch_size'),
      ({'optimizer': 0.1}, 'optimizer'),
      ({'clip_min': 1.0, 'clip_max': 0.0}, 'clip_min'),
    ),
    device_axis='batch',
    notebook='robust_quant',
  ),
  PaperSpec(
    id='teacher_intervention',
    short='Teacher Intervention QAT',
    number=9,
    title=(
      'Teacher Intervention: Improving Convergence of Quantization Aware '
      'Training for Ultra-Low Precision Transformers'
    ),
    citation='Kim, Lee, Kim, Kim, Choi, EACL 2023',
    arxiv='2302.11812',
    family='quant',
    kind='solver',
    target='jaxopt_papers.quant.teacher_intervention:TeacherInterventionQAT',
    claim=(
      'digits as 8 tokens, 2-layer W2A8 encoder, 150 QAT steps at lr 2e-4: '
      'TI-G(100) + KD-QAT(50) ends with a lower mean test KD loss than '
      'plain KD-QAT (>= 2/3 seeds; 10/10 in full); no accuracy gain'
    ),
    # The solver takes the two forward passes: the contract runs it on the
    # experiment's 1-layer example encoder (resolved at call time).
    test_kwargs={
      'student_apply': _lazy(
        'jaxopt_papers.experiments.teacher_intervention:example_student_apply'
      ),
      'teacher_apply': _lazy(
        'jaxopt_papers.experiments.teacher_intervention:example_teacher_apply'
      ),
      'ti_steps': 6,
      'learning_rate': 1e-2,
      'batch_size': 4,
    },
    bad_kwargs=(
      ({'ti_steps': -1}, 'ti_steps'),
      ({'schedule': 'stochastic'}, 'schedule'),
      ({'learning_rate': 0.0}, 'learning_rate'),
      ({'weight_decay': -0.1}, 'weight_decay'),
      ({'batch_size': 0}, 'batch_size'),
      ({'reset_optimizer': 'yes'}, 'reset_optimizer'),
      ({'total_steps': 3}, 'total_steps'),
      ({'warmup': 1.0}, 'warmup'),
      ({'student_apply': None}, 'student_apply'),
    ),
    notebook='robust_quant',
  ),
  PaperSpec(
    id='fal',
    short='FAL (federated adversarial learning)',
    number=16,
    title=(
      'Federated Adversarial Learning: A Framework with Convergence Analysis'
    ),
    citation='Li, Song, Yang, ICML 2023',
    arxiv='2208.03635',
    family='federated',
    kind='solver',
    target='jaxopt_papers.federated.fal:FAL',
    claim=(
      'digits 3-vs-8 on the sphere, 10 Dirichlet(0.5) clients, two-layer '
      'ReLU net: robust train loss halves; robust test acc (PGD-L2-20, '
      'restarts) >= clean FedAvg + 10 pt; m=2048 beats m=128 (3 seeds)'
    ),
    test_kwargs={
      'loss_fn': _lazy('jaxopt_papers.data.federated:logistic_loss'),
      'attack_radius': 0.1,
      'attack_steps': 2,
      'num_local_steps': 2,
    },
    bad_kwargs=(
      ({'attack_radius': -0.1}, 'attack_radius'),
      ({'attack_steps': 0}, 'attack_steps'),
      ({'attack_step_size': 0.0}, 'attack_step_size'),
      ({'attack_norm': 'l1'}, 'attack_norm'),
      ({'clip_min': 1.0, 'clip_max': 0.0}, 'clip_min'),
    ),
    device_axis='clients',
  ),
  PaperSpec(
    id='fedpca',
    short='FedPCA (FedPG / FedPE)',
    number=13,
    title='Federated PCA on Grassmann Manifold for IoT Anomaly Detection',
    citation=(
      'Nguyen, Le, Nguyen, Bao, Seneviratne, Hong, Tran, IEEE/ACM ToN 2024'
    ),
    arxiv='2407.07421',
    family='federated',
    kind='solver',
    target='jaxopt_papers.federated.fedpca:FedPCA',
    claim=(
      '20 non-IID clients, rank 2, 20 rounds: FedPG median distance to '
      'centralized PCA <= 0.25, FedPE >= 2x; FedPG frames orthonormal '
      '(< 1e-5, float32); anomaly AUROC >= 0.95 (5 seeds)'
    ),
    test_kwargs={
      'num_clients': 8,
      'learning_rate': 0.01,
      'num_local_steps': 3,
      'sampling_fraction': 0.5,
    },
    bad_kwargs=(
      ({'method': 'sgd'}, 'method'),
      ({'learning_rate': 0.0}, 'learning_rate'),
      ({'rho': -0.1}, 'rho'),
      ({'sampling_fraction': 0.0}, 'sampling_fraction'),
      ({'sampling_fraction': 1.5}, 'sampling_fraction'),
      ({'aggregate': 'mean'}, 'aggregate'),
      ({'num_clients': None}, 'num_clients'),
    ),
    device_axis='clients',
  ),
  PaperSpec(
    id='codebook',
    short='codebook bottleneck',
    number=28,
    title=(
      'Selective Visual Representations Improve Convergence and '
      'Generalization for Embodied AI'
    ),
    citation='Eftekhar, Zeng, Duan, Farhadi, Kembhavi, Krishna, ICLR 2024',
    arxiv='2311.04193',
    family='representation',
    kind='module',
    target='jaxopt_papers.representation.codebook:CodebookBottleneck',
    claim=(
      'codebook: distractor probe R^2 < min(0.1, linear bottleneck) at no '
      'accuracy cost; trains inside REINFORCE'
    ),
    test_kwargs={
      'num_codes': 8,
      'code_dim': 3,
      'out_dim': 5,
      'deterministic': True,
    },
    bad_kwargs=(
      ({'num_codes': 0}, 'num_codes'),
      ({'code_dim': 0}, 'code_dim'),
      ({'dropout': 1.0}, 'dropout'),
      ({'indexing': 'sparsemax'}, 'indexing'),
      ({'codebook': 'dictionary'}, 'codebook'),
      ({'indexing': 'topk', 'topk': 9}, 'topk'),
      ({'temperature': 0.0}, 'temperature'),
      ({'deterministic': 'yes'}, 'deterministic'),
    ),
    notebook='alignment_fewshot',
  ),
  PaperSpec(
    id='sppo',
    short='SPPO',
    number=31,
    title='Self-Play Preference Optimization for Language Model Alignment',
    citation='Wu, Sun, Yuan, Ji, Yang, Gu, ICLR 2025',
    arxiv='2405.00675',
    family='alignment',
    kind='solver',
    target='jaxopt_papers.alignment.sppo:SPPO',
    claim=(
      'intransitive 3-response game, K=16, 3 seeds: time-averaged policy '
      'exploitability < 0.03, below uniform and the best pure strategy; '
      'tiny causal LM on synthetic prompts: averaged policy less '
      'exploitable than iterative DPO at equal samples'
    ),
    # The contract runs the tabular game on 8 prompts (experiment example).
    test_kwargs={
      'logits_fn': _lazy('jaxopt_papers.data.preferences:tabular_logits'),
      'preference_fn': _lazy(
        'jaxopt_papers.experiments.sppo:example_preference'
      ),
      'num_samples': 4,
      'inner_steps': 3,
    },
    bad_kwargs=(
      ({'loss': 'kto'}, 'loss'),
      ({'eta': 0.0}, 'eta'),
      ({'beta': -1.0}, 'beta'),
      ({'num_samples': 1}, 'num_samples'),
      ({'inner_steps': 0}, 'inner_steps'),
      ({'temperature': 0.0}, 'temperature'),
      ({'eos_token': -1}, 'eos_token'),
    ),
    device_axis='prompts',
    notebook='alignment_fewshot',
  ),
  PaperSpec(
    id='slk',
    short='SLK transductive few-shot',
    number=32,
    title='Transductive Few-Shot Learning: Clustering is All You Need?',
    citation='Ziko, Boudiaf, Dolz, Granger, Ben Ayed, arXiv 2021',
    arxiv='2106.09516',
    family='fewshot',
    kind='solver',
    target='jaxopt_papers.fewshot.slk:SLK',
    claim=(
      'digits 5-way, 300 episodes: 1-shot transductive k-means >= '
      'prototype classifier + 5 points; SLK-means >= k-means - 1 point; '
      '5-shot k-means > prototype classifier'
    ),
    # Stopping tolerances well above float32 rounding: at the defaults
    # (1e-6 relative) an iteration count can differ by one between two
    # compilations (vmap vs shard_map) that round differently.
    test_kwargs={
      'lam': 0.7,
      'bound_iterations': 5,
      'bound_tol': 1e-3,
      'tol': 1e-3,
    },
    bad_kwargs=(
      ({'lam': -0.1}, 'lam'),
      ({'method': 'kmodes'}, 'method'),
      ({'knn': 1}, 'knn'),
      ({'bound_iterations': 0}, 'bound_iterations'),
      ({'tol': -1.0}, 'tol'),
      ({'ms_iterations': 0}, 'ms_iterations'),
      ({'sigma': 0.0}, 'sigma'),
      ({'normalization': 'zca'}, 'normalization'),
      ({'prototype_weights': 'fuzzy'}, 'prototype_weights'),
    ),
    device_axis='episodes',
    stochastic=False,
    notebook='alignment_fewshot',
  ),
  # DisBack: filled in by its builder.
  PaperSpec(
    id='disback',
    short='DisBack',
    number=29,
    title=(
      'Distribution Backtracking Builds A Faster Convergence Trajectory '
      'for One-step Diffusion Distillation'
    ),
    citation='Zhang, Yang, Li, Zhao, Meng, Yang, Yang, Yang, Sun, arXiv 2024',
    arxiv='2408.15991',
    family='generative',
    kind='solver',
    target='jaxopt_papers.generative.disback:DisBack',
    claim=(
      '8-Gaussian ring, 3 seeds: early score gap E||D_fake - D_target||^2 '
      'with backtracking < 0.6 x plain DMD; the speed claim (fewer '
      'generator steps to energy distance <= 0.1) does not reproduce at '
      'CPU scale: DisBack is slower'
    ),
    test_kwargs={
      'batch_size': 16,
      'num_snapshots': 2,
      'degradation_steps': 10,
      'backtrack_interval': 2,
      'fake_updates_per_generator_step': 2,
    },
    bad_kwargs=(
      ({'num_snapshots': 0}, 'num_snapshots'),
      ({'degradation_steps': 1}, 'degradation_steps'),
      ({'backtrack_interval': 0}, 'backtrack_interval'),
      ({'sigma_min': -1.0}, 'sigma_min'),
      ({'t_max_frac': 1.5}, 't_max_frac'),
      ({'fake_init': 'random'}, 'fake_init'),
      ({'generator_optimizer': 'adam'}, 'generator_optimizer'),
    ),
    stochastic=True,
    device_axis=None,
    notebook='generative',
  ),
  # DVGO: filled in by its builder.
  PaperSpec(
    id='dvgo',
    short='DVGO',
    number=30,
    title=(
      'Direct Voxel Grid Optimization: Super-fast Convergence for '
      'Radiance Fields Reconstruction'
    ),
    citation='Sun, Sun, Chen, CVPR 2022',
    arxiv='2111.11215',
    family='generative',
    kind='solver',
    target='jaxopt_papers.generative.dvgo:DVGO',
    claim=(
      '2-D disk (12x12 grid): post-activation >= pre + 6 dB; analytic 3-D '
      'scene, 10^3 grid, 3 seeds: test PSNR > 21.5 dB, post > pre + 1 dB, '
      'DVGO > NeRF-style MLP at 2x its wall clock'
    ),
    test_kwargs={'resolution': 6, 'num_samples': 8, 'batch_size': 16},
    bad_kwargs=(
      ({'resolution': 1}, 'resolution'),
      ({'num_samples': 0}, 'num_samples'),
      ({'activation': 'mid'}, 'activation'),
      ({'alpha_init': 1.0}, 'alpha_init'),
      ({'learning_rate': 0.0}, 'learning_rate'),
      ({'batch_size': 0}, 'batch_size'),
      ({'weight_entropy': -1.0}, 'weight_entropy'),
    ),
    device_axis='rays',
    stochastic=True,
    notebook='generative',
  ),
)


def get_spec(paper_id: str) -> PaperSpec:
  """The spec whose ``id`` is ``paper_id``; ``ValueError`` if unknown."""
  for spec in PAPERS:
    if spec.id == paper_id:
      return spec
  known = ', '.join(s.id for s in PAPERS)
  raise ValueError(f'unknown paper {paper_id!r}; known: {known}')


def resolve(target: str) -> Any:
  """Imports ``'package.module:attribute'`` and returns the attribute."""
  module, _, attr = target.partition(':')
  obj = importlib.import_module(module)
  return getattr(obj, attr) if attr else obj


def get(paper_id: str) -> Callable[..., Any]:
  """The paper's transform factory or solver class (imported lazily)."""
  return resolve(get_spec(paper_id).target)


def load_config(paper_id: str, preset: str = 'quick'):
  """``get_config(preset)`` of the paper's config module."""
  return resolve(get_spec(paper_id).config).get_config(preset)


def load_experiment(paper_id: str):
  """The paper's experiment module (has ``run(config, workdir)``)."""
  return resolve(get_spec(paper_id).experiment)


def _cell(text: str) -> str:
  """Escapes a table cell (a bare ``|`` would split it)."""
  return text.replace('|', '\\|')


def markdown_table() -> str:
  """The README's paper table, generated from :data:`PAPERS`."""
  rows = [
    '| # | paper | module | kind | claim checked by `reproduce` |',
    '|---|---|---|---|---|',
  ]
  for s in sorted(PAPERS, key=lambda s: s.number):
    module = s.target.partition(':')[0].replace('.', '/') + '.py'
    rows.append(
      f'| {s.number} | [{s.title}]({s.url}) ({s.citation}) | '
      f'[`{s.target}`]({module}) | {s.kind} | {_cell(s.claim)} |'
    )
  return '\n'.join(rows)


if __name__ == '__main__':
  print(markdown_table())
