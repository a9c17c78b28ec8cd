"""optax's own contract, held against every exported GradientTransformation.

Adapted from optax's tests (``optax/_src/alias_test.py``,
``optax/contrib/_common_test.py``, ``optax/transforms/_masking_test.py``,
``_conditionality_test.py``, ``optax/tree_utils/_state_utils_test.py``): the
parabola, Rosenbrock, matrix and mixed-tree targets; ``tree.map_params``
(identity and sharding specs); ``inject_hyperparams`` with ``tree.get`` /
``tree.set``; schedules; ``apply_if_finite``; empty and ``None`` subtrees;
``reduce_on_plateau``; ``masked`` and ``multi_transform``; ``MultiSteps``;
low-precision dtypes; jit against eager; vmap over models; an orbax
round-trip; no recompilation.

The factories are found in the package (every public function annotated to
return a ``GradientTransformation``), so a new transform cannot skip the
suite: :data:`CASES` must have an entry for each. A transform whose
``update`` does not take a plain gradient (FedAU's server rule takes stacked
client deltas, FedSpeed's client step an anchor and a dual) is driven
through a small adapter that turns the contract's gradient into its inputs.
A test that does not apply to a transform says why in ``Case.na``.
"""

import dataclasses
import importlib
import inspect
import pkgutil
from collections.abc import Callable
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest
from jax.sharding import PartitionSpec as P

import jaxopt_papers

NUM_CLIENTS = 3  # the stacked-clients adapter's client count


@dataclasses.dataclass(frozen=True)
class Case:
  """How the contract drives one factory.

  Attributes:
    target: ``module:function``.
    kwargs: Construction for the contract problems.
    hyper: An injectable hyperparameter and another value for it, used by
      the ``inject_hyperparams`` and ``tree.set`` checks.
    adapter: ``'gradient'`` (``update(grads, state, params)``),
      ``'clients'`` (``update(stacked deltas, ..., participated=...)``, the
      result added to the params) or ``'anchored'`` (FedSpeed's local step:
      ``anchor`` = the current params and a zero dual, which makes it SGD)
      or ``'per_example'`` (DP transforms: the gradient as a batch of one
      example, a leading axis of size 1).
    direction: Whether the transform returns a direction rather than an
      update (``scale_by_*``); it is then chained with ``optax.scale(scale)``.
    scale: The step the direction is scaled by.
    num_steps: Steps for the optimization targets.
    static_args: Arguments ``inject_hyperparams`` must not turn into arrays.
    schedule: Whether ``hyper`` accepts a schedule.
    finite_kwargs: The transform's own skip of non-finite steps, used in
      place of ``optax.apply_if_finite`` where that wrapper cannot apply
      (an output shaped unlike the input: FedAU maps stacked deltas to one
      model, and ``apply_if_finite``'s skip returns zeros like the input).
    na: ``{check: reason}`` for checks that do not apply.
  """

  target: str
  kwargs: dict[str, Any]
  hyper: tuple[str, float]
  adapter: str = 'gradient'
  direction: bool = False
  scale: float = -1.0
  num_steps: int = 3000
  static_args: tuple[str, ...] = ()
  schedule: bool = True
  finite_kwargs: dict[str, Any] | None = None
  na: dict[str, str] = dataclasses.field(default_factory=dict)


_DISTRIBUTED = 'jaxopt_papers.distributed'
_FEDAU_NA = {
  'optimizes_complex': 'server aggregation is linear in the deltas; the '
  "complex check is the plain-gradient transforms'",
}
_PER_EXAMPLE_NA = {
  'apply_if_finite': "optax.apply_if_finite's skip returns zeros shaped like "
  'its input, the per-example gradients (a leading batch axis), not like '
  'the update',
}
_DICE_STATIC = ('key', 'variant', 'expected_batch_size', 'axis_name')

CASES = {
  c.target: c
  for c in [
    Case(
      'jaxopt_papers.optim.frugal:frugal',
      dict(learning_rate=1e-2, density=0.5, update_gap=10),
      hyper=('learning_rate', 3e-3),
      static_args=('density', 'update_gap', 'projection', 'state_free'),
    ),
    Case(
      'jaxopt_papers.optim.frugal:scale_by_frugal',
      dict(density=0.5, update_gap=10),
      hyper=('state_free_scale', 0.5),
      direction=True,
      scale=-1e-2,
      static_args=('density', 'update_gap', 'projection', 'state_free'),
      schedule=False,
    ),
    Case(
      'jaxopt_papers.optim.normalized_lr_gd:normalized_lr_gd',
      dict(learning_rate=5e-3),
      hyper=('learning_rate', 2e-3),
      # a fixed-length step of 5e-3 travels ~11 units before it can settle
      num_steps=6000,
      static_args=('axis_name',),
    ),
    Case(
      'jaxopt_papers.optim.normalized_lr_gd:scale_by_normalized_gradient',
      dict(),
      hyper=('eps', 1e-3),
      direction=True,
      scale=-5e-3,
      num_steps=6000,
      static_args=('axis_name',),
      schedule=False,
    ),
    Case(
      'jaxopt_papers.optim.last_iterate_sgd:prox_sgd',
      dict(learning_rate=1.5e-3, l1_strength=0.0),
      hyper=('learning_rate', 1e-3),
      # plain SGD (no prox): Rosenbrock's valley needs ~2e4 steps at 1.5e-3
      num_steps=20000,
      static_args=('projection',),
    ),
    Case(
      'jaxopt_papers.optim.last_iterate_sgd:entropic_mirror_descent',
      dict(learning_rate=1e-2),
      hyper=('learning_rate', 5e-3),
      static_args=('axis',),
      na={
        'optimizes': 'the iterate lives on the simplex (the params are its '
        'log-weights, renormalized every step): the contract targets have '
        'negative and unnormalized entries',
      },
    ),
    Case(
      'jaxopt_papers.bilevel.rarts:darts_weight_optimizer',
      dict(learning_rate=1e-3, momentum=0.9, weight_decay=0.0),
      hyper=('learning_rate', 5e-4),
      num_steps=20000,
    ),
    Case(
      'jaxopt_papers.bilevel.rarts:darts_alpha_optimizer',
      dict(learning_rate=1e-2, weight_decay=0.0),
      hyper=('learning_rate', 5e-3),
    ),
    Case(
      'jaxopt_papers.privacy.dice_sgd:dice_sgd',
      dict(
        learning_rate=1.5e-3,
        l2_norm_clip=10.0,
        error_clip=10.0,
        noise_multiplier=0.0,
      ),
      hyper=('learning_rate', 1e-3),
      num_steps=20000,
      adapter='per_example',
      static_args=_DICE_STATIC,
      na=_PER_EXAMPLE_NA,
    ),
    Case(
      'jaxopt_papers.privacy.dice_sgd:scale_by_dice',
      dict(l2_norm_clip=10.0, error_clip=10.0, noise_multiplier=0.0),
      hyper=('error_clip', 5.0),
      adapter='per_example',
      direction=True,
      scale=-1.5e-3,
      num_steps=20000,
      static_args=_DICE_STATIC,
      schedule=False,
      na=_PER_EXAMPLE_NA,
    ),
    Case(
      'jaxopt_papers.privacy.dice_sgd:dice_adam',
      dict(
        learning_rate=1e-2,
        l2_norm_clip=10.0,
        error_clip=10.0,
        noise_multiplier=0.0,
      ),
      hyper=('learning_rate', 3e-3),
      adapter='per_example',
      static_args=_DICE_STATIC,
      na=_PER_EXAMPLE_NA,
    ),
    Case(
      f'{_DISTRIBUTED}.onebit_adam:onebit_adam',
      dict(learning_rate=1e-2, freeze_step=50),
      hyper=('learning_rate', 3e-3),
      static_args=('freeze_step', 'num_workers', 'error_feedback'),
    ),
    Case(
      f'{_DISTRIBUTED}.onebit_adam:scale_by_onebit_adam',
      dict(freeze_step=50),
      hyper=('b1', 0.8),
      direction=True,
      scale=-1e-2,
      static_args=('freeze_step', 'num_workers', 'error_feedback'),
      schedule=False,
    ),
    Case(
      f'{_DISTRIBUTED}.econtrol:econtrol',
      dict(learning_rate=2e-3),
      hyper=('learning_rate', 1e-3),
      num_steps=6000,
      static_args=(
        'compressor',
        'method',
        'axis_name',
        'key',
        'skip_nonfinite',
      ),
    ),
    Case(
      f'{_DISTRIBUTED}.econtrol:scale_by_econtrol',
      dict(),
      hyper=('eta', 0.3),
      direction=True,
      scale=-2e-3,
      num_steps=6000,
      static_args=(
        'compressor',
        'method',
        'axis_name',
        'key',
        'skip_nonfinite',
      ),
      schedule=False,
    ),
    Case(
      'jaxopt_papers.federated.fedau:fedau',
      dict(server_lr=2e-3),
      hyper=('server_lr', 1e-3),
      adapter='clients',
      num_steps=6000,
      static_args=('axis_name', 'skip_nonfinite'),
      schedule=False,
      finite_kwargs=dict(skip_nonfinite=True),
      na=_FEDAU_NA,
    ),
    Case(
      'jaxopt_papers.federated.fedau:scale_by_fedau',
      dict(cutoff=10),
      hyper=('cutoff', 5),
      adapter='clients',
      direction=True,
      scale=2e-3,
      num_steps=6000,
      static_args=('axis_name', 'skip_nonfinite'),
      schedule=False,
      finite_kwargs=dict(skip_nonfinite=True),
      na=_FEDAU_NA,
    ),
    Case(
      'jaxopt_papers.federated.fedspeed:fedspeed_client',
      dict(learning_rate=2e-3, lamb=0.1),
      hyper=('learning_rate', 1e-3),
      adapter='anchored',
      num_steps=6000,
      schedule=False,
    ),
    Case(
      'jaxopt_papers.generative.dvgo:scale_by_view_counts',
      dict(counts=jnp.ones((2, 2, 2))),
      hyper=('counts', 0.5),
      direction=True,
      scale=-1e-3,
      num_steps=20000,
      schedule=False,
    ),
    Case(
      'jaxopt_papers.generative.dvgo:masked_adam',
      dict(learning_rate=1e-2),
      hyper=('learning_rate', 3e-3),
    ),
  ]
}


def _discover() -> set[str]:
  found = set()
  for info in pkgutil.walk_packages(jaxopt_papers.__path__, 'jaxopt_papers.'):
    if '.experiments' in info.name or '.configs' in info.name:
      continue
    module = importlib.import_module(info.name)
    for name in getattr(module, '__all__', ()):
      fn = getattr(module, name)
      if inspect.isfunction(fn) and 'GradientTransformation' in str(
        inspect.signature(fn).return_annotation
      ):
        found.add(f'{info.name}:{name}')
  return found


def test_every_exported_transform_has_a_case():
  assert _discover() == set(CASES)


def _na(case: Case, check: str):
  if check in case.na:
    pytest.skip(f'n/a: {case.na[check]}')


def _factory(case: Case) -> Callable[..., Any]:
  module, name = case.target.split(':')
  return getattr(importlib.import_module(module), name)


def _stack(tree):
  return jax.tree.map(
    lambda x: jnp.broadcast_to(x, (NUM_CLIENTS, *jnp.shape(x))), tree
  )


def adapt(case: Case, tx) -> optax.GradientTransformationExtraArgs:
  """``tx`` as ``update(grads, state, params) -> updates to add``."""
  tx = optax.with_extra_args_support(tx)
  if case.direction:
    tx = optax.chain(tx, optax.scale(case.scale))
  if case.adapter == 'gradient':
    return tx
  if case.adapter == 'clients':

    def init(params):
      return tx.init(_stack(params))

    def update(grads, state, params=None, **extra):
      deltas = _stack(jax.tree.map(jnp.negative, grads))
      part = jnp.ones([NUM_CLIENTS], bool)
      return tx.update(deltas, state, params, participated=part, **extra)

    return optax.GradientTransformationExtraArgs(init, update)
  if case.adapter == 'per_example':
    # A batch of one example: per-example gradients with a leading axis.
    def update(grads, state, params=None, **extra):
      rows = jax.tree.map(lambda g: g[None], grads)
      return tx.update(rows, state, params, **extra)

    return optax.GradientTransformationExtraArgs(tx.init, update)
  if case.adapter == 'anchored':

    def update(grads, state, params=None, **extra):
      dual = jax.tree.map(jnp.zeros_like, params)
      return tx.update(
        grads, state, params, anchor=params, client_state=dual, **extra
      )

    return optax.GradientTransformationExtraArgs(tx.init, update)
  raise AssertionError(case.adapter)


def build(case: Case, wrap=None, **overrides):
  """The adapted transform; ``wrap`` is applied to the raw one first."""
  tx = _factory(case)(**{**case.kwargs, **overrides})
  return adapt(case, wrap(tx) if wrap else tx)


def injected(case: Case, **overrides):
  factory = optax.inject_hyperparams(
    _factory(case), static_args=case.static_args
  )
  return adapt(case, factory(**{**case.kwargs, **overrides}))


# optax's own Adam runs the same suite: a check it fails is a broken check.
CONTROL = Case(
  'optax:adam', dict(learning_rate=1e-2), hyper=('learning_rate', 3e-3)
)
ALL = [*CASES.values(), CONTROL]
cases = pytest.mark.parametrize('case', ALL, ids=[c.target for c in ALL])


# ------------------------------------------------------------- the targets
# (optax/contrib/_common_test.py: parabola, Rosenbrock, matrix, mixed tree)


def _abs_sq(x):
  return jnp.real(x * jnp.conj(x))


def parabola(dtype):
  x0 = jnp.array([-1.0, 10.0, 1.0], dtype)
  x_star = jnp.array([1.0, -1.0, 1.0], dtype)
  return x0, x_star, lambda x: jnp.sum(_abs_sq(x - x_star))


def rosenbrock(dtype):
  x0 = jnp.array([0.0, 0.0], dtype)
  x_star = jnp.array([1.0, 1.0], dtype)
  f = lambda x: _abs_sq(1.0 - x[0]) + 100.0 * _abs_sq(x[1] - x[0] ** 2)
  return x0, x_star, f


def matrix(dtype):
  x0 = jnp.zeros((2, 2), dtype)
  x_star = jnp.array([[3.0, -2.0], [1.0, 4.0]], dtype)
  return x0, x_star, lambda x: jnp.sum(_abs_sq(x - x_star))


def mixed(dtype):
  x0 = (jnp.zeros((3,), dtype), jnp.zeros((2, 2), dtype))
  x_star = (
    jnp.array([1.0, -1.0, 2.0], dtype),
    jnp.array([[1.0, 0.0], [-1.0, 1.0]], dtype),
  )
  f = lambda x: sum(
    jnp.sum(_abs_sq(a - b)) for a, b in zip(x, x_star, strict=True)
  )
  return x0, x_star, f


def _grad(f, params):
  # optax's convention for complex parameters: the conjugate of df/dz.
  return jax.tree.map(jnp.conj, jax.grad(f)(params))


def _minimize(tx, params, f, num_steps):
  def body(carry, _):
    p, s = carry
    u, s = tx.update(_grad(f, p), s, p)
    return (optax.apply_updates(p, u), s), f(p)

  (p, _), losses = jax.lax.scan(
    body, (params, tx.init(params)), None, num_steps
  )
  return p, losses


@cases
@pytest.mark.parametrize('target', [parabola, rosenbrock, matrix, mixed])
def test_optimizes(case, target):
  _na(case, 'optimizes')
  x0, x_star, f = target(jnp.float32)
  tx = build(case)
  params, losses = jax.jit(lambda p: _minimize(tx, p, f, case.num_steps))(x0)
  assert np.all(np.isfinite(losses))
  chex.assert_trees_all_close(params, x_star, rtol=3e-2, atol=3e-2)


@cases
def test_optimizes_complex_or_refuses_at_init(case):
  _na(case, 'optimizes_complex')
  x0, x_star, f = parabola(jnp.complex64)
  x0 = x0 + 1j
  tx = build(case)
  try:
    tx.init(x0)
  except ValueError as e:
    assert 'complex' in str(e)
    return
  params, losses = jax.jit(lambda p: _minimize(tx, p, f, case.num_steps))(x0)
  assert np.all(np.isfinite(losses))
  assert params.dtype == jnp.complex64
  chex.assert_trees_all_close(params, x_star, rtol=3e-2, atol=3e-2)


# ---------------------------------------------------------- state utilities


def _params():
  k = jax.random.split(jax.random.key(0), 3)
  return {
    'dense': {'w': jax.random.normal(k[0], (6, 4)), 'b': jnp.zeros((4,))},
    'out': {'w': jax.random.normal(k[1], (4, 3)), 'b': jnp.zeros((3,))},
  }


def _loss(params):
  x = jax.random.normal(jax.random.key(1), (8, 6))
  h = jnp.tanh(x @ params['dense']['w'] + params['dense']['b'][None])
  return jnp.mean(
    (h @ params['out']['w'] + params['out']['b'][None] - 1.0) ** 2
  )


def _steps(tx, params, num_steps, grads_fn=None):
  """``num_steps`` updates on the MLP loss, in one scan."""
  grads_fn = grads_fn or (lambda p, i: jax.grad(_loss)(p))

  def body(carry, i):
    p, s = carry
    u, s = tx.update(grads_fn(p, i), s, p)
    return (optax.apply_updates(p, u), s), _loss(p)

  return jax.lax.scan(body, (params, tx.init(params)), jnp.arange(num_steps))


@cases
def test_map_params_identity_and_sharding_specs(case):
  tx = build(case)
  params = _params()
  state = tx.init(params)
  same = optax.tree.map_params(tx, lambda v: v, state)
  chex.assert_trees_all_equal(same, state)
  specs = jax.tree.map(lambda x: P(*([None] * (x.ndim - 1)), 'model'), params)
  state_specs = optax.tree.map_params(
    tx,
    lambda _, spec: spec,
    state,
    specs,
    transform_non_params=lambda _: P(),
    is_leaf=lambda x: isinstance(x, P),
  )
  is_p = lambda x: isinstance(x, P)
  leaves = jax.tree.leaves(state_specs, is_leaf=is_p)
  assert all(isinstance(x, P) for x in leaves)
  assert jax.tree.structure(state_specs, is_leaf=is_p) == jax.tree.structure(
    jax.tree.map(lambda _: P(), state)
  )


@cases
def test_inject_hyperparams_equality_and_tree_get_set(case):
  _na(case, 'inject_hyperparams')
  name, other = case.hyper
  plain = build(case)
  inj = injected(case)
  params = _params()
  (p1, _), l1 = jax.jit(lambda p: _steps(plain, p, 8))(params)
  (p2, s2), l2 = jax.jit(lambda p: _steps(inj, p, 8))(params)
  # Injected hyperparameters are float32 arrays, not Python floats: the
  # same arithmetic up to rounding.
  np.testing.assert_allclose(l2, l1, rtol=1e-4, atol=1e-6)
  chex.assert_trees_all_close(p2, p1, rtol=1e-4, atol=1e-5)
  value = optax.tree.get(s2, name)
  np.testing.assert_allclose(value, case.kwargs.get(name, value))
  # tree.set changes the hyperparameter the next update uses: equal to a
  # transform constructed with the other value from that state on.
  s_set = optax.tree.set(
    s2, **{name: jnp.asarray(other, jnp.asarray(value).dtype)}
  )
  np.testing.assert_allclose(optax.tree.get(s_set, name), other)
  g = jax.grad(_loss)(p2)
  u_set, _ = jax.jit(inj.update)(g, s_set, p2)
  u_ref, _ = jax.jit(injected(case, **{name: other}).update)(g, s_set, p2)
  chex.assert_trees_all_close(u_set, u_ref, rtol=1e-6)


@cases
def test_schedule_equals_constant(case):
  _na(case, 'schedule')
  name = case.hyper[0]
  if not case.schedule:
    pytest.skip(f'n/a: {name} is a number, not a schedule, in this factory')
  value = case.kwargs[name]
  a = build(case)
  b = build(case, **{name: optax.constant_schedule(value)})
  params = _params()
  (pa, _), la = jax.jit(lambda p: _steps(a, p, 8))(params)
  (pb, _), lb = jax.jit(lambda p: _steps(b, p, 8))(params)
  np.testing.assert_allclose(lb, la, rtol=1e-6)
  chex.assert_trees_all_close(pb, pa, rtol=1e-6)


def _poison(step):
  """Gradients with a NaN at ``step`` only."""

  def grads_fn(p, i):
    g = jax.grad(_loss)(p)
    bad = jnp.where(i == step, jnp.nan, 0.0)
    return jax.tree.map(lambda x: x + bad, g)

  return grads_fn


@cases
def test_apply_if_finite_skips_the_bad_step(case):
  _na(case, 'apply_if_finite')
  if case.finite_kwargs is None:
    tx = build(case, wrap=lambda t: optax.apply_if_finite(t, 3))
  else:
    tx = build(case, **case.finite_kwargs)
  plain = build(case)
  params = _params()
  (p, s), losses = jax.jit(lambda p: _steps(tx, p, 6, _poison(2)))(params)
  assert np.all(np.isfinite(losses))
  assert all(
    np.all(np.isfinite(x))
    for x in jax.tree.leaves(s)
    if jnp.issubdtype(x.dtype, jnp.inexact)
  ), 'the skipped step must leave the state finite'
  # The bad step is skipped: the run equals five clean steps.
  clean = lambda p, i: jax.grad(_loss)(p)
  (p_ref, _), _ = jax.jit(lambda p: _steps(plain, p, 5, clean))(params)
  chex.assert_trees_all_close(p, p_ref, rtol=1e-5, atol=1e-6)


@cases
def test_empty_tree_and_none_subtrees(case):
  _na(case, 'empty_tree')
  tx = build(case)
  state = tx.init({})
  updates, _ = tx.update({}, state, {})
  assert updates == {}
  params = {'w': jnp.ones((4, 3)), 'frozen': None, 'b': jnp.ones((3,))}
  grads = {'w': jnp.full((4, 3), 0.5), 'frozen': None, 'b': jnp.ones((3,))}
  state = tx.init(params)
  updates, state = jax.jit(tx.update)(grads, state, params)
  assert updates['frozen'] is None
  assert jax.tree.structure(updates) == jax.tree.structure(params)
  assert all(np.all(np.isfinite(u)) for u in jax.tree.leaves(updates))


@cases
def test_chained_with_reduce_on_plateau(case):
  _na(case, 'reduce_on_plateau')
  tx = optax.chain(
    build(case), optax.contrib.reduce_on_plateau(patience=2, factor=0.5)
  )
  params = _params()

  def body(carry, _):
    p, s = carry
    loss, g = jax.value_and_grad(_loss)(p)
    u, s = tx.update(g, s, p, value=loss)
    return (optax.apply_updates(p, u), s), loss

  (_, s), losses = jax.jit(
    lambda p: jax.lax.scan(body, (p, tx.init(p)), None, 12)
  )(params)
  assert np.all(np.isfinite(losses))
  assert float(s[-1].scale) <= 1.0


@cases
def test_masked_and_multi_transform(case):
  _na(case, 'masked')
  params = _params()
  grads = jax.grad(_loss)(params)
  mask = {'dense': {'w': True, 'b': True}, 'out': {'w': False, 'b': False}}
  masked = optax.masked(build(case), mask)
  u, _ = jax.jit(masked.update)(grads, masked.init(params), params)
  # Masked-out leaves pass through unchanged (optax's masking contract).
  chex.assert_trees_all_equal(u['out'], grads['out'])
  # The masked-in part equals the transform on that subtree alone.
  alone = build(case)
  u_alone, _ = jax.jit(alone.update)(
    grads['dense'], alone.init(params['dense']), params['dense']
  )
  chex.assert_trees_all_close(u['dense'], u_alone, rtol=1e-6)
  labels = {'dense': {'w': 'x', 'b': 'x'}, 'out': {'w': 'sgd', 'b': 'sgd'}}
  multi = optax.multi_transform(
    {'x': build(case), 'sgd': optax.sgd(0.1)}, labels
  )
  u_multi, _ = jax.jit(multi.update)(grads, multi.init(params), params)
  chex.assert_trees_all_close(u_multi['dense'], u_alone, rtol=1e-6)
  chex.assert_trees_all_close(
    u_multi['out'], jax.tree.map(lambda g: -0.1 * g, grads['out']), rtol=1e-6
  )


@cases
def test_multisteps_accumulates(case):
  tx = optax.MultiSteps(build(case), every_k_schedule=3)
  params = _params()
  state = tx.init(params)
  update = jax.jit(tx.update)
  g = jax.grad(_loss)(params)
  for _ in range(2):
    u, state = update(g, state, params)
    chex.assert_trees_all_equal(u, jax.tree.map(jnp.zeros_like, params))
  u, state = update(g, state, params)
  u_ref, _ = jax.jit(build(case).update)(g, build(case).init(params), params)
  chex.assert_trees_all_close(u, u_ref, rtol=1e-5, atol=1e-7)


@cases
@pytest.mark.parametrize('dtype', [jnp.bfloat16, jnp.float16])
def test_low_precision_dtypes_preserved(case, dtype):
  tx = build(case)
  params = jax.tree.map(lambda x: x.astype(dtype), _params())
  state = jax.jit(tx.init)(params)
  step = jax.jit(tx.update)
  for _ in range(2):
    g = jax.grad(_loss)(params)
    u, new_state = step(g, state, params)
    assert jax.tree.map(lambda x: x.dtype, u) == jax.tree.map(
      lambda x: x.dtype, params
    )
    assert jax.tree.map(jax.typeof, new_state) == jax.tree.map(
      jax.typeof, state
    )
    params, state = optax.apply_updates(params, u), new_state
    assert jax.tree.map(lambda x: x.dtype, params) == jax.tree.map(
      lambda _: dtype, params
    )


@cases
def test_jit_equals_eager(case):
  tx = build(case)
  params = _params()
  p_eager, s_eager = params, tx.init(params)
  p_jit, s_jit = params, jax.jit(tx.init)(params)
  update = jax.jit(tx.update)
  for _ in range(3):
    u, s_eager = tx.update(jax.grad(_loss)(p_eager), s_eager, p_eager)
    p_eager = optax.apply_updates(p_eager, u)
    u, s_jit = update(jax.grad(_loss)(p_jit), s_jit, p_jit)
    p_jit = optax.apply_updates(p_jit, u)
  chex.assert_trees_all_close(p_jit, p_eager, rtol=1e-5, atol=1e-6)


@cases
def test_vmap_over_models(case):
  tx = build(case)
  keys = jax.random.split(jax.random.key(3), 3)
  batch = jax.vmap(
    lambda k: jax.tree.map(
      lambda x: x + 0.1 * jax.random.normal(k, x.shape), _params()
    )
  )(keys)
  run = lambda p: _steps(tx, p, 4)[0][0]
  together = jax.jit(jax.vmap(run))(batch)
  take = jax.jit(lambda tree, i: jax.tree.map(lambda x: x[i], tree))
  for i in range(3):
    one = jax.jit(run)(take(batch, i))
    chex.assert_trees_all_close(take(together, i), one, rtol=1e-5, atol=1e-6)


@cases
def test_orbax_round_trip_continues_identically(case, tmp_path):
  tx = build(case)
  params = _params()
  (p, s), _ = jax.jit(lambda p: _steps(tx, p, 3))(params)
  with ocp.StandardCheckpointer() as ckpt:
    ckpt.save(tmp_path / 'state', {'params': p, 'opt_state': s})
    ckpt.wait_until_finished()
    target = jax.tree.map(
      ocp.utils.to_shape_dtype_struct, {'params': p, 'opt_state': s}
    )
    restored = ckpt.restore(tmp_path / 'state', target)
  chex.assert_trees_all_equal(restored['opt_state'], s)
  step = jax.jit(tx.update)
  g = jax.grad(_loss)(p)
  u1, s1 = step(g, s, p)
  u2, s2 = step(g, restored['opt_state'], restored['params'])
  chex.assert_trees_all_equal(u1, u2)
  chex.assert_trees_all_equal(s1, s2)


@cases
def test_no_recompilation(case):
  tx = build(case)
  params = _params()

  @jax.jit
  def step(p, s):
    u, s = tx.update(jax.grad(_loss)(p), s, p)
    return optax.apply_updates(p, u), s

  p, s = step(params, tx.init(params))
  before = step._cache_size()
  for _ in range(3):
    p, s = step(p, s)
  assert step._cache_size() == before, 'the update recompiles on later calls'
