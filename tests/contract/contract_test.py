"""One contract over every registry entry (optax's _common_test.py idea).

The full optax contract of every exported transform (optimization targets,
combinators, inject_hyperparams, orbax, ...) is in optax_contract_test.py;
here transforms are run with their registry ``test_kwargs`` only.

Tests never branch on a paper's name: what a paper can do (a PRNG key
argument, a device axis, static arguments) is data in its PaperSpec.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxopt_papers import papers
from jaxopt_papers.core import parallel
from jaxopt_papers.core import solver as solver_lib

TRANSFORMS = [s for s in papers.PAPERS if s.kind == 'transform']
SOLVERS = [s for s in papers.PAPERS if s.kind == 'solver']
FUNCTIONS = [s for s in papers.PAPERS if s.kind == 'function']
MODULES = [s for s in papers.PAPERS if s.kind == 'module']
ids = lambda specs: [s.id for s in specs]
NUM_STEPS = 7


# ---------------------------------------------------------------- transforms


def _params(dtype=jnp.float32):
  """A mixed tree: tall, wide and square matrices, a vector, a scalar."""
  k = jax.random.split(jax.random.key(42), 4)
  tree = {
    'tall': jax.random.normal(k[0], (12, 4)),
    'wide': jax.random.normal(k[1], (4, 10)),
    'square': jax.random.normal(k[2], (6, 6)),
    'bias': jax.random.normal(k[3], (6,)),
    'scale': jnp.ones([]),
  }
  return jax.tree.map(lambda x: x.astype(dtype), tree)


def _loss(params):
  # A separable least-squares target with per-leaf curvature.
  return sum(
    0.5 * (i + 1.0) * jnp.sum((x.astype(jnp.float32) - 0.5) ** 2)
    for i, x in enumerate(jax.tree.leaves(params))
  )


def _grads_for(spec, g):
  """``g`` as the transform's ``update`` takes it: per-example gradients
  (a leading batch axis of one example) for ``spec.per_example_grads``."""
  if spec.per_example_grads:
    return jax.tree.map(lambda x: x[None], g)
  return g


def _scan_updates(spec, tx, params, num_steps=NUM_STEPS):
  def body(carry, _):
    p, s = carry
    loss, g = jax.value_and_grad(_loss)(p)
    u, s = tx.update(_grads_for(spec, g), s, p)
    return (optax.apply_updates(p, u), s), loss

  return jax.lax.scan(body, (params, tx.init(params)), None, length=num_steps)


def _factory(spec):
  return papers.resolve(spec.target)


@pytest.mark.parametrize('spec', TRANSFORMS, ids=ids(TRANSFORMS))
@pytest.mark.parametrize('dtype', [jnp.float32, jnp.bfloat16])
def test_transform_state_types_stable_and_dtype_preserved(spec, dtype):
  tx = _factory(spec)(**spec.test_kwargs)
  params = _params(dtype)

  @jax.jit
  def one(params, state):
    g = _grads_for(spec, jax.grad(_loss)(params))
    u, new_state = tx.update(g, state, params)
    return optax.apply_updates(params, u), u, new_state

  state = jax.jit(tx.init)(params)
  for _ in range(4):  # crosses a refresh for update_gap <= 3
    new_params, updates, new_state = one(params, state)
    assert jax.tree.map(jax.typeof, new_state) == jax.tree.map(
      jax.typeof, state
    )
    for p, u, q in zip(
      jax.tree.leaves(params),
      jax.tree.leaves(updates),
      jax.tree.leaves(new_params),
      strict=True,
    ):
      assert u.dtype == p.dtype == q.dtype == dtype
    params, state = new_params, new_state


@pytest.mark.parametrize('spec', TRANSFORMS, ids=ids(TRANSFORMS))
def test_transform_ignores_unknown_extra_args(spec):
  tx = optax.with_extra_args_support(_factory(spec)(**spec.test_kwargs))
  params = _params()
  state = tx.init(params)
  g = _grads_for(spec, jax.grad(_loss)(params))
  u1, _ = tx.update(g, state, params, unknown_extra_arg=3.0)
  u2, _ = tx.update(g, state, params)
  chex.assert_trees_all_equal(u1, u2)


@pytest.mark.parametrize(
  'spec', [s for s in TRANSFORMS if s.key_arg], ids=lambda s: s.id
)
def test_transform_keys(spec):
  factory = _factory(spec)

  def run(key):
    tx = factory(**spec.test_kwargs, **{spec.key_arg: key})
    return _scan_updates(spec, tx, _params())[1]

  run = jax.jit(run)
  a, b = run(jax.random.key(1)), run(jax.random.key(1))
  c = run(jax.random.key(2))
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c), 'a different key must change the run'
  keys = jnp.stack([jax.random.key(1), jax.random.key(2)])
  both = jax.jit(jax.vmap(run))(keys)
  np.testing.assert_allclose(both[0], a, rtol=1e-6)
  np.testing.assert_allclose(both[1], c, rtol=1e-6)


# ------------------------------------------------------------------- solvers


def _example(spec, key):
  return papers.resolve(spec.example)(key)


def _solver_run(solver, x0, data, key, num_steps=NUM_STEPS):
  state = solver.init(x0, key)
  return solver_lib.run_scan(solver.step, state, data, num_steps=num_steps)


@pytest.mark.parametrize('spec', SOLVERS, ids=ids(SOLVERS))
def test_solver_runs_in_scan_without_retracing(spec):
  chex.clear_trace_counter()  # the counter is keyed on the code location
  solver = _factory(spec)(**spec.test_kwargs)
  x0, data = _example(spec, jax.random.key(0))

  @jax.jit
  @chex.assert_max_traces(n=1)
  def run(x0, data, key):
    return _solver_run(solver, x0, data, key)

  state, trace = run(x0, data, jax.random.key(0))
  state2, trace2 = run(
    jax.tree.map(lambda a: a + 0.0, x0), data, jax.random.key(0)
  )
  for leaf in jax.tree.leaves(trace):
    assert leaf.shape[0] == NUM_STEPS
  chex.assert_trees_all_equal(trace, trace2)


@pytest.mark.parametrize('spec', SOLVERS, ids=ids(SOLVERS))
def test_solver_state_types_stable(spec):
  solver = _factory(spec)(**spec.test_kwargs)
  x0, data = _example(spec, jax.random.key(0))
  state = solver.init(x0, jax.random.key(0))
  step = jax.jit(solver.step)
  for _ in range(3):
    new_state, _ = step(state, data)
    assert jax.tree.structure(new_state) == jax.tree.structure(state)
    assert jax.tree.map(lambda x: x.dtype, new_state) == jax.tree.map(
      lambda x: x.dtype, state
    )
    assert jax.tree.map(jnp.shape, new_state) == jax.tree.map(jnp.shape, state)
    state = new_state


@pytest.mark.parametrize('spec', SOLVERS, ids=ids(SOLVERS))
def test_solver_keys_and_vmap(spec):
  solver = _factory(spec)(**spec.test_kwargs)
  x0, data = _example(spec, jax.random.key(0))
  run = jax.jit(lambda key: _solver_run(solver, x0, data, key)[1])
  a, b, c = (
    run(jax.random.key(1)),
    run(jax.random.key(1)),
    run(jax.random.key(2)),
  )
  chex.assert_trees_all_equal(a, b)
  changed = any(
    not np.array_equal(x, y)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(c), strict=True)
  )
  if spec.stochastic:
    assert changed, 'a different key must change the run'
  else:
    assert not changed, 'a deterministic solver must ignore its key'
  keys = jnp.stack([jax.random.key(1), jax.random.key(2)])
  both = jax.jit(jax.vmap(run))(keys)
  for x, y, z in zip(
    jax.tree.leaves(both), jax.tree.leaves(a), jax.tree.leaves(c), strict=True
  ):
    np.testing.assert_allclose(x[0], y, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(x[1], z, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
  'spec', [s for s in SOLVERS if s.device_axis], ids=lambda s: s.id
)
def test_solver_devices_agree_with_vmap(spec, num_devices):
  x0, data = _example(spec, jax.random.key(0))
  key = jax.random.key(3)
  ref = _factory(spec)(**spec.test_kwargs)
  mesh = parallel.make_mesh(num_devices, spec.device_axis)
  sharded = _factory(spec)(**spec.test_kwargs, mesh=mesh)
  _, t_ref = jax.jit(lambda: _solver_run(ref, x0, data, key))()
  s_dev, t_dev = jax.jit(lambda: _solver_run(sharded, x0, data, key))()
  for x, y in zip(jax.tree.leaves(t_dev), jax.tree.leaves(t_ref), strict=True):
    np.testing.assert_allclose(jax.device_get(x), y, rtol=2e-5, atol=1e-5)
  devices = {
    d for leaf in jax.tree.leaves(s_dev) for d in leaf.sharding.device_set
  }
  assert len(devices) == num_devices, 'the state must live on every device'


# ------------------------------------------------------ functions and modules


def _finite(tree):
  return all(
    np.all(np.isfinite(np.asarray(x)))
    for x in jax.tree.leaves(tree)
    if jnp.issubdtype(jnp.asarray(x).dtype, jnp.inexact)
  )


@pytest.mark.parametrize('spec', FUNCTIONS, ids=ids(FUNCTIONS))
def test_function_jits_once_and_is_deterministic(spec):
  chex.clear_trace_counter()
  fn = _factory(spec)(**spec.test_kwargs)
  args = _example(spec, jax.random.key(0))

  @jax.jit
  @chex.assert_max_traces(n=1)
  def call(*args):
    return fn(*args)

  out = call(*args)
  out2 = call(
    *jax.tree.map(lambda x: x + 0 if hasattr(x, 'dtype') else x, args)
  )
  assert _finite(out), 'the example must give finite outputs'
  chex.assert_trees_all_equal(out, out2)


@pytest.mark.parametrize('spec', MODULES, ids=ids(MODULES))
def test_module_inits_applies_and_differentiates(spec):
  chex.clear_trace_counter()
  module = _factory(spec)(**spec.test_kwargs)
  args = _example(spec, jax.random.key(0))
  variables = jax.jit(module.init)(jax.random.key(1), *args)

  @jax.jit
  @chex.assert_max_traces(n=1)
  def apply(variables, *args):
    return module.apply(variables, *args)

  out = apply(variables, *args)
  chex.assert_trees_all_equal(out, apply(variables, *args))
  assert _finite(out), 'the example must give finite outputs'
  grads = jax.grad(
    lambda v: sum(jnp.sum(x) for x in jax.tree.leaves(module.apply(v, *args)))
  )(variables)
  assert _finite(grads), 'gradients through the module must be finite'
  assert any(np.any(np.asarray(g) != 0) for g in jax.tree.leaves(grads))


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
  'spec, overrides, name',
  [(s, o, n) for s in papers.PAPERS for o, n in s.bad_kwargs],
  ids=lambda x: getattr(x, 'id', None) or str(x),
)
def test_bad_hyperparameters_raise_naming_the_argument(spec, overrides, name):
  kwargs = {**spec.test_kwargs, **overrides}
  with pytest.raises(ValueError, match=name):
    _factory(spec)(**kwargs)


def test_every_spec_has_bad_kwargs_and_resolves():
  for spec in papers.PAPERS:
    assert spec.bad_kwargs, spec.id
    assert callable(papers.get(spec.id))
    cfg = papers.load_config(spec.id, 'quick')
    assert cfg.paper == spec.id
    assert callable(papers.load_experiment(spec.id).run)
    if spec.kind != 'transform':
      assert spec.example, f'{spec.id}: {spec.kind}s need an example'
