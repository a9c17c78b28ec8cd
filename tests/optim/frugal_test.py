"""Tests for jaxopt_papers.optim.frugal."""

import doctest

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import PartitionSpec as P

from jaxopt_papers.optim import frugal as frugal_lib

B1, B2, EPS = 0.9, 0.999, 1e-8  # optax.scale_by_adam defaults = paper's

# A tall (right side), a second tall of the same shape (a block group of 2),
# a square (right side: m >= n), a wide (left side), a (1, 5) matrix whose
# rank rounds to 0 at density 0.5, and a vector (dense Adam).
SHAPES = {
  'row': (1, 5),
  'sq': (4, 4),
  'tall': (6, 4),
  'tall2': (6, 4),
  'vec': (5,),
  'wide': (3, 8),
}


def _tree(rng, shapes=SHAPES, dtype=np.float32):
  def draw(s):
    if np.issubdtype(dtype, np.complexfloating):
      return rng.standard_normal(s) + 1j * rng.standard_normal(s)
    return rng.standard_normal(s)

  return {k: draw(s).astype(dtype) for k, s in shapes.items()}


def _run(tx, params, grads_seq):
  """Jitted updates; returns (list of updates, list of states after each)."""
  update = jax.jit(tx.update)
  state = tx.init(params)
  updates, states = [], []
  for grads in grads_seq:
    u, state = update(grads, state, params)
    params = optax.apply_updates(params, u)
    updates.append(u)
    states.append(state)
  return updates, states


# -- Reference: float64 NumPy transcription of the official per-step loop. --


def _phi(x, rule):
  if rule == 'sign':
    return np.sign(x)
  if rule == 'sgd':
    return x
  return np.zeros_like(x)


def _reference(
  params,
  grads_seq,
  *,
  density,
  update_gap,
  projection,
  state_free,
  scale,
  reset,
  lr,
  wd,
  fed,
):
  """Params after each step of the official ProjOptimizer.step + AdamW.

  ``fed[t]`` holds what JAX drew at refresh step ``t``: per-name projector or
  coordinates ('random', 'randk', and 'svd' without reset, where singular
  vector signs would otherwise leak through the carried moments), or the
  set of active names ('block'). With 'svd' and reset the SVD is recomputed
  here, so singular-vector signs are not shared.
  """
  dtype = np.result_type(*params.values(), np.float64)  # complex128 or f64
  params = {k: np.array(v, dtype) for k, v in params.items()}
  state = {k: {} for k in params}
  out = []

  def adam(st, x):  # frugal/adamw.py _compute_update with lr = 1
    st['step'] += 1
    st['m'] = B1 * st['m'] + (1 - B1) * x
    st['v'] = B2 * st['v'] + (1 - B2) * np.abs(x) ** 2  # optax's abs_sq
    bc1, bc2 = 1 - B1 ** st['step'], 1 - B2 ** st['step']
    return -(1.0 / bc1) * st['m'] / (np.sqrt(st['v']) / np.sqrt(bc2) + EPS)

  def zero_stats(st, shape):
    st.update(m=np.zeros(shape, dtype), v=np.zeros(shape), step=0)

  for t, grads in enumerate(grads_seq):
    grads = {k: np.asarray(v, dtype) for k, v in grads.items()}
    if t % update_gap == 0:  # _update_states_if_necessary
      for name, g in grads.items():
        if g.ndim != 2:
          continue
        st = state[name]
        m, n = g.shape
        if projection == 'block':
          st['active'] = name in fed[t]
          zero_stats(st, g.shape)  # _deactivate_param / _activate_param
          continue
        if projection == 'randk':
          st['idx'] = np.asarray(fed[t][name])
          assert len(st['idx']) == int(m * n * density)
          proxy_shape = st['idx'].shape
        else:
          right = m >= n  # proj_side 'std'
          r = round((n if right else m) * density)
          if projection == 'svd' and reset:
            u, _, vh = np.linalg.svd(g, full_matrices=False)
            p = vh[:r] if right else u[:, :r]
          elif r == 0:  # empty projector: everything is residual
            p = np.zeros((r, n) if right else (m, r))
          else:
            p = np.asarray(fed[t][name], dtype)
            if projection == 'svd':  # same subspace, up to signs
              u, _, vh = np.linalg.svd(g, full_matrices=False)
              ref = vh[:r] if right else u[:, :r].T
              mine = p if right else p.T
              np.testing.assert_allclose(
                np.abs(mine @ ref.T), np.eye(r), atol=1e-8
              )
          st['P'], st['right'] = p, right
          proxy_shape = (m, r) if right else (r, n)
        if reset or 'm' not in st:
          zero_stats(st, proxy_shape)

    for name, g in grads.items():
      st = state[name]
      params[name] *= 1 - lr * wd
      if g.ndim != 2:
        if 'm' not in st:
          zero_stats(st, g.shape)
        upd = lr * adam(st, g)
      elif projection == 'block':
        upd = lr * (
          adam(st, g) if st['active'] else -scale * _phi(g, state_free)
        )
      else:
        if projection == 'randk':
          idx = st['idx']

          def down(x, idx=idx):
            return x.reshape(-1)[idx]

          def up(x, shape=g.shape, idx=idx):
            full = np.zeros(shape[0] * shape[1], dtype)
            full[idx] = x
            return full.reshape(shape)
        elif st['right']:
          # P^H: the official code is real; for complex leaves the adjoint.
          down = lambda x, p=st['P']: x @ p.conj().T
          up = lambda x, p=st['P']: x @ p
        else:
          down = lambda x, p=st['P']: p.conj().T @ x
          up = lambda x, p=st['P']: p @ x
        gd = down(g)
        upd = lr * up(adam(st, gd))
        upd -= lr * scale * _phi(g - up(gd), state_free)
      params[name] += upd
    out.append({k: v.copy() for k, v in params.items()})
  return out


@pytest.mark.parametrize(
  'projection,state_free,reset,dtype',
  [
    ('svd', 'sign', True, np.float64),
    ('svd', 'sgd', True, np.float64),
    ('svd', 'none', False, np.float64),
    ('svd', 'sign', False, np.float64),
    ('random', 'sign', True, np.float64),
    ('randk', 'sign', True, np.float64),
    ('randk', 'sgd', False, np.float64),
    ('block', 'sign', True, np.float64),
    ('block', 'none', True, np.float64),
    # Complex leaves: P^H in down(), sign(z) = z / |z|, Adam's |g|^2.
    ('svd', 'sign', True, np.complex128),
    ('random', 'sgd', True, np.complex128),
    ('randk', 'sign', True, np.complex128),
    ('block', 'sign', True, np.complex128),
  ],
)
def test_matches_numpy_reference(rng, projection, state_free, reset, dtype):
  density, update_gap, scale, lr, wd, num_steps = 0.5, 3, 0.3, 0.05, 0.1, 7
  params = _tree(rng, dtype=dtype)
  grads_seq = [_tree(rng, dtype=dtype) for _ in range(num_steps)]
  with jax.enable_x64(True):
    tx = frugal_lib.frugal(
      lr,
      state_free_scale=scale,
      density=density,
      update_gap=update_gap,
      projection=projection,
      state_free=state_free,
      reset_statistics=reset,
      key=3,
      weight_decay=wd,
    )
    updates, states = _run(tx, params, grads_seq)
    traj, p = [], params
    for u in updates:
      p = jax.tree.map(lambda a, b: np.asarray(a + b), p, u)
      traj.append(p)
    assert all(x.dtype == dtype for x in jax.tree.leaves(updates))

  fed = {}
  for t in range(0, num_steps, update_gap):
    inner = states[t][0]
    if projection == 'block':
      members = ['tall', 'tall2']  # the only group with a slot: (6, 4)
      fed[t] = {members[int(j)] for j in np.asarray(inner.active['tall'])}
      assert len(fed[t]) == round(2 * density)
    else:
      fed[t] = {
        k: np.asarray(v)
        for k, v in inner.projector.items()
        if v.dtype != jnp.int8  # the stand-in of leaves with no projector
      }
    if projection == 'random':
      for v in fed[t].values():
        right = v.shape[0] < v.shape[1]
        gram = v @ v.conj().T if right else v.conj().T @ v
        np.testing.assert_allclose(gram, np.eye(len(gram)), atol=1e-12)
    if projection == 'randk':
      for v in fed[t].values():
        assert np.all(np.diff(v) > 0) and v.dtype == np.int32
  ref = _reference(
    params,
    grads_seq,
    density=density,
    update_gap=update_gap,
    projection=projection,
    state_free=state_free,
    scale=scale,
    reset=reset,
    lr=lr,
    wd=wd,
    fed=fed,
  )
  for t, (mine, theirs) in enumerate(zip(traj, ref, strict=True)):
    for k in SHAPES:
      np.testing.assert_allclose(
        mine[k], theirs[k], rtol=1e-9, atol=1e-11, err_msg=f'step {t}, {k}'
      )
  # The random subspaces do change at each refresh.
  if projection in ('random', 'randk'):
    assert not np.array_equal(fed[0]['tall'], fed[3]['tall'])


# -- Reductions. --


@pytest.mark.parametrize('projection', ['randk', 'block'])
def test_density_one_without_reset_is_adam(rng, projection):
  params = _tree(rng)
  grads_seq = [_tree(rng) for _ in range(5)]
  tx = frugal_lib.frugal(
    1e-2,
    density=1.0,
    update_gap=2,
    projection=projection,
    reset_statistics=False,
  )
  mine, _ = _run(tx, params, grads_seq)
  adam, _ = _run(optax.adam(1e-2), params, grads_seq)
  for a, b in zip(mine, adam, strict=True):  # equal up to f32 rounding
    for k in SHAPES:
      np.testing.assert_allclose(a[k], b[k], rtol=1e-6, atol=1e-9, err_msg=k)


def test_non_matrix_leaves_are_adam_across_refreshes(rng):
  shapes = {'w': (8, 6), 'b': (6,), 'conv': (2, 3, 4), 's': ()}
  params = _tree(rng, shapes)
  grads_seq = [_tree(rng, shapes) for _ in range(5)]
  tx = frugal_lib.frugal(1e-2, update_gap=2)  # resets at steps 0, 2, 4
  mine, _ = _run(tx, params, grads_seq)
  adam, _ = _run(optax.adam(1e-2), params, grads_seq)
  for a, b in zip(mine, adam, strict=True):
    for k in ('b', 'conv', 's'):
      np.testing.assert_allclose(a[k], b[k], rtol=1e-6, atol=0, err_msg=k)


@pytest.mark.parametrize('state_free', ['sign', 'sgd', 'none'])
def test_density_zero_is_state_free(rng, state_free):
  lr, scale = 0.1, 0.5
  params = _tree(rng)
  grads_seq = [_tree(rng) for _ in range(3)]
  txs = {
    p: frugal_lib.frugal(
      lr,
      state_free_scale=scale,
      density=0.0,
      update_gap=2,
      projection=p,
      state_free=state_free,
    )
    for p in ('svd', 'random', 'randk', 'block')
  }

  @jax.jit
  def run_all(grads_seq):
    out = {}
    for name, tx in txs.items():
      state, ups = tx.init(params), []
      for g in grads_seq:
        u, state = tx.update(g, state, params)
        ups.append(u)
      out[name] = ups
    return out

  out = run_all(grads_seq)
  adam, _ = _run(optax.adam(lr), params, grads_seq)
  for name, ups in out.items():
    for u, g, a in zip(ups, grads_seq, adam, strict=True):
      for k in SHAPES:
        if k == 'vec':
          np.testing.assert_allclose(u[k], a[k], rtol=1e-6)
        else:
          want = -lr * scale * _phi(g[k], state_free)
          np.testing.assert_allclose(u[k], want, rtol=1e-6, err_msg=name)


# -- Properties. --


@pytest.mark.parametrize('projection', ['svd', 'random'])
def test_summed_update_over_a_window_is_full_rank(rng, projection):
  m, n, density, gap = 24, 16, 0.25, 5  # right side, r = 4
  params = {'w': np.zeros((m, n), np.float32)}
  grads_seq = [
    {'w': rng.standard_normal((m, n)).astype(np.float32)} for _ in range(gap)
  ]
  ranks = {}
  for rule in ('sign', 'none'):
    tx = frugal_lib.scale_by_frugal(
      density=density, update_gap=gap, projection=projection, state_free=rule
    )
    ups, _ = _run(tx, params, grads_seq)  # steps 0..gap-1: one projector
    total = np.sum([np.asarray(u['w'], np.float64) for u in ups], axis=0)
    sv = np.linalg.svd(total, compute_uv=False)
    ranks[rule] = int(np.sum(sv > 1e-4 * sv[0]))  # f32 rounding is ~1e-7
  assert ranks['sign'] == min(m, n)
  assert ranks['none'] <= round(n * density)


def _state_bytes(state):
  def nbytes(x):
    if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
      return 8
    return int(np.prod(x.shape)) * jnp.dtype(x.dtype).itemsize

  return sum(nbytes(x) for x in jax.tree.leaves(state))


@pytest.mark.parametrize('projection', ['svd', 'random', 'randk'])
def test_state_bytes_are_at_most_forty_percent_of_adam(projection):
  params = {
    'a': jax.ShapeDtypeStruct((64, 64), jnp.float32),
    'b': jax.ShapeDtypeStruct((64, 256), jnp.float32),
    'c': jax.ShapeDtypeStruct((256, 64), jnp.float32),
  }
  tx = frugal_lib.frugal(1e-3, density=0.25, projection=projection)
  mine = _state_bytes(jax.eval_shape(tx.init, params))  # with projectors
  adam = _state_bytes(jax.eval_shape(optax.adam(1e-3).init, params))
  assert mine <= 0.4 * adam, (mine, adam)


@pytest.mark.parametrize('projection', ['svd', 'random', 'randk', 'block'])
def test_dtypes_and_state_types_are_preserved(rng, projection):
  params = {
    'w': jnp.asarray(rng.standard_normal((8, 4)), jnp.bfloat16),
    'w2': jnp.asarray(rng.standard_normal((8, 4)), jnp.bfloat16),
    'v': jnp.asarray(rng.standard_normal((3, 16)), jnp.float32),
    'b': jnp.asarray(rng.standard_normal((4,)), jnp.bfloat16),
  }
  tx = frugal_lib.frugal(1e-2, density=0.5, update_gap=2, projection=projection)

  @jax.jit
  def two_steps(state):
    before = jax.tree.map(jax.typeof, state)
    for _ in range(2):  # a refresh step and a plain step
      updates, state = tx.update(params, state, params)
      assert jax.tree.map(jax.typeof, state) == before
    return updates, state

  updates, state = two_steps(tx.init(params))
  for k, x in params.items():
    assert updates[k].dtype == x.dtype, k
    assert np.all(np.isfinite(np.asarray(updates[k], np.float32)))
  assert jax.typeof(state[0].count) == jax.typeof(jnp.zeros([], jnp.int32))
  assert jnp.issubdtype(state[0].key.dtype, jax.dtypes.prng_key)


def test_jit_does_not_retrace(rng):
  params = _tree(rng)
  tx = frugal_lib.frugal(1e-2, density=0.5, update_gap=2)
  traces = []

  @jax.jit
  def step(grads, state):
    traces.append(1)
    return tx.update(grads, state, params)

  state = tx.init(params)
  for _ in range(3):
    _, state = step(_tree(rng), state)
  assert len(traces) == 1


def test_inject_hyperparams_and_multisteps(rng):
  params = _tree(rng)
  grads_seq = [_tree(rng) for _ in range(4)]
  kwargs = dict(density=0.5, update_gap=2, key=1, weight_decay=0.01)
  plain, _ = _run(
    frugal_lib.frugal(0.1, state_free_scale=0.3, **kwargs), params, grads_seq
  )
  injected_tx = optax.inject_hyperparams(
    frugal_lib.frugal, static_args=('density', 'update_gap', 'key')
  )(learning_rate=0.1, state_free_scale=0.3, **kwargs)
  injected, states = _run(injected_tx, params, grads_seq)
  assert set(states[-1].hyperparams) == {
    'learning_rate',
    'state_free_scale',
    'weight_decay',
  }
  for a, b in zip(plain, injected, strict=True):
    for k in SHAPES:
      np.testing.assert_allclose(a[k], b[k], rtol=1e-6, atol=1e-7)

  # MultiSteps(k=2) on 4 micro-batches = 2 steps on the averaged gradients.
  multi, _ = _run(
    optax.MultiSteps(frugal_lib.frugal(0.1, state_free_scale=0.3, **kwargs), 2),
    params,
    grads_seq,
  )
  means = [
    jax.tree.map(lambda a, b: (a + b) / 2, grads_seq[i], grads_seq[i + 1])
    for i in (0, 2)
  ]
  direct, _ = _run(
    frugal_lib.frugal(0.1, state_free_scale=0.3, **kwargs), params, means
  )
  for k in SHAPES:
    np.testing.assert_array_equal(multi[0][k], 0.0)
    np.testing.assert_allclose(multi[1][k], direct[0][k], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(multi[3][k], direct[1][k], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
  'kwargs,name',
  [
    (dict(density=-0.1), 'density'),
    (dict(density=1.5), 'density'),
    (dict(density=jnp.asarray(0.5)), 'density'),
    (dict(update_gap=0), 'update_gap'),
    (dict(update_gap=2.0), 'update_gap'),
    (dict(projection='qr'), 'projection'),
    (dict(state_free='adam'), 'state_free'),
    (dict(state_full='adam'), 'state_full'),
    (dict(svd_method='lanczos'), 'svd_method'),
    (dict(svd_method='randomized', projection='random'), 'svd_method'),
    (dict(svd_method='randomized', power_iterations=-1), 'power_iterations'),
    (dict(svd_method='randomized', power_iterations=1.0), 'power_iterations'),
    (dict(svd_method='randomized', oversampling=-1), 'oversampling'),
    (dict(svd_method='randomized', oversampling=True), 'oversampling'),
    (
      dict(svd_method='randomized', oversampling=jnp.asarray(4)),
      'oversampling',
    ),
    (dict(power_iterations=1), 'power_iterations'),  # with 'exact'
    (dict(oversampling=4), 'oversampling'),  # with 'exact'
  ],
)
def test_invalid_arguments_name_the_argument(kwargs, name):
  with pytest.raises(ValueError, match=f'`{name}`'):
    frugal_lib.scale_by_frugal(**kwargs)


def test_docstring_examples():
  results = doctest.testmod(frugal_lib, optionflags=doctest.ELLIPSIS)
  assert results.attempted > 0 and results.failed == 0, results


def test_vmap_over_keys(rng):
  params = _tree(rng)
  grads = _tree(rng)

  def one(key):
    tx = frugal_lib.frugal(0.1, density=0.5, projection='randk', key=key)
    updates, state = tx.update(grads, tx.init(params), params)
    return updates, state[0].projector['tall']

  keys = jax.random.split(jax.random.key(0), 3)
  updates, idx = jax.jit(jax.vmap(one))(keys)
  single, idx0 = jax.jit(one)(keys[0])
  np.testing.assert_array_equal(idx[0], idx0)  # same key, same draw
  assert not np.array_equal(idx[0], idx[1])  # another key, another draw
  np.testing.assert_allclose(updates['tall'][0], single['tall'], rtol=1e-6)


# -- Keyword-only hyperparameters and bad input. --


def test_hyperparameters_after_learning_rate_are_keyword_only():
  with pytest.raises(TypeError, match='positional'):
    frugal_lib.frugal(1e-3, 0.25)  # once set `state_free_scale` silently
  with pytest.raises(TypeError, match='positional'):
    frugal_lib.scale_by_frugal(0.25)


@pytest.mark.parametrize(
  'kwargs,name',
  [
    (dict(learning_rate=-1e-3), 'learning_rate'),
    (dict(learning_rate=0.0), 'learning_rate'),
    (dict(learning_rate=float('nan')), 'learning_rate'),
    (dict(learning_rate=np.asarray(-1.0)), 'learning_rate'),
    (dict(learning_rate='1e-3'), 'learning_rate'),
    (dict(weight_decay=-0.1), 'weight_decay'),
    (dict(weight_decay=float('inf')), 'weight_decay'),
    (dict(state_free_scale=float('nan')), 'state_free_scale'),
    (dict(state_full=optax.adamw), 'state_full'),  # the factory
    (dict(density=float('nan')), 'density'),
  ],
)
def test_invalid_frugal_arguments_name_the_argument(kwargs, name):
  kwargs = {'learning_rate': 1e-3, **kwargs}
  with pytest.raises(ValueError, match=f'`{name}`'):
    frugal_lib.frugal(**kwargs)


def test_array_and_schedule_hyperparameters_are_accepted(rng):
  params = _tree(rng)
  schedule = optax.linear_schedule(1e-2, 1e-3, 10)
  frugal_lib.frugal(schedule, weight_decay=lambda t: 0.0)
  # Arrays, traced or not, are not checked (inject_hyperparams passes them).
  tx = frugal_lib.frugal(
    jnp.asarray(1e-2),
    state_free_scale=jnp.asarray(0.5),
    weight_decay=jnp.asarray(0.1),
  )
  tx.update(params, tx.init(params), params)

  @jax.jit
  def traced(lr, scale):
    tx = frugal_lib.frugal(lr, state_free_scale=scale, density=0.5)
    return tx.update(params, tx.init(params), params)[0]

  want = frugal_lib.frugal(0.1, state_free_scale=0.3, density=0.5)
  want = want.update(params, want.init(params), params)[0]
  got = traced(0.1, 0.3)
  for k in SHAPES:
    np.testing.assert_allclose(got[k], want[k], rtol=1e-6, err_msg=k)


# -- Leaves of every kind. --


def test_python_float_and_int_leaves_behave_as_adam():
  params = {
    'w': jnp.ones((4, 4)),
    's': 1.0,  # a Python float leaf
    'i': jnp.arange(3),  # int vector
    'm': jnp.arange(6, dtype=jnp.int32).reshape(3, 2),  # int matrix
  }
  grads = {
    'w': jnp.full((4, 4), 0.5),
    's': 0.5,
    'i': jnp.asarray([1, -2, 3]),
    'm': jnp.asarray([[2, 0], [-1, 1], [3, 3]], jnp.int32),
  }

  def two_steps(tx):
    state = tx.init(params)
    step = jax.jit(tx.update)
    for _ in range(2):  # refresh, then reuse (update_gap=2 below)
      updates, state = step(grads, state, params)
    return updates

  mine = two_steps(frugal_lib.frugal(1e-2, update_gap=2))
  adam = two_steps(optax.adam(1e-2))
  for k in ('s', 'i', 'm'):
    assert mine[k].dtype == adam[k].dtype, k  # float32, as optax.adam
    np.testing.assert_allclose(mine[k], adam[k], rtol=1e-6, err_msg=k)


@pytest.mark.parametrize('tree', [{}, {'a': None}, ()])
def test_empty_trees(tree):
  tx = frugal_lib.frugal(1e-2)
  state = tx.init(tree)
  updates, state = jax.jit(tx.update)(tree, state, tree)
  assert updates == tree
  assert int(state[0].count) == 1


@pytest.mark.parametrize(
  'grads,leaf,shape',
  [
    ({'w': jnp.ones((4, 3)), 'b': jnp.ones(3)}, "['w']", r'\(4, 3\)'),
    ({'w': jnp.ones((4, 4)), 'b': jnp.ones(5)}, "['b']", r'\(5,\)'),
  ],
)
def test_gradient_of_wrong_shape_names_the_shapes(grads, leaf, shape):
  tx = frugal_lib.frugal(1e-3)
  state = tx.init({'w': jnp.ones((4, 4)), 'b': jnp.ones(3)})
  with pytest.raises(
    ValueError, match=rf'`updates\{leaf[:-1]}\]` of shape {shape}'
  ):
    tx.update(grads, state)
  with pytest.raises(ValueError, match='tree of `updates`'):
    tx.update({'w': jnp.ones((4, 4))}, state)


# -- Complex leaves. --


@pytest.mark.parametrize('projection', ['svd', 'random', 'randk', 'block'])
@pytest.mark.parametrize('shape', [(6, 4), (3, 8)])  # right and left side
def test_complex_density_one_identity_rule_returns_the_gradient(
  rng, projection, shape
):
  # With all of G in the subspace and an identity state-full rule,
  # up(down(G)) = G P^H P = G needs the conjugate transpose.
  tx = frugal_lib.scale_by_frugal(
    density=1.0,
    update_gap=2,
    projection=projection,
    state_full=optax.identity(),
    state_free='none',
  )
  draw = lambda: rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
  grads = [{'w': draw().astype(np.complex64)} for _ in range(2)]
  updates, _ = _run(tx, {'w': np.zeros(shape, np.complex64)}, grads)
  for u, g in zip(updates, grads, strict=True):  # refresh step, then reuse
    assert u['w'].dtype == np.complex64
    np.testing.assert_allclose(u['w'], g['w'], rtol=0, atol=2e-5)


@pytest.mark.parametrize('state_free', ['sign', 'sgd'])
def test_complex_least_squares_converges(rng, state_free):
  a = rng.standard_normal((16, 8)) + 1j * rng.standard_normal((16, 8))
  w_star = rng.standard_normal((8, 4)) + 1j * rng.standard_normal((8, 4))
  a, w_star = jnp.asarray(a, jnp.complex64), jnp.asarray(w_star, jnp.complex64)
  b = a @ w_star
  params = {
    'w': jnp.zeros((8, 4), jnp.complex64),
    'c': jnp.zeros(4, jnp.complex64),
  }
  loss = lambda p: jnp.sum(jnp.abs(a @ p['w'] + p['c'][None] - b) ** 2)
  steps = 3000
  tx = frugal_lib.frugal(
    optax.linear_schedule(3e-2, 0.0, steps),
    density=0.5,
    update_gap=50,
    state_free=state_free,
    state_free_scale=0.1,
  )

  def step(carry, _):
    p, s = carry
    # optax's convention (alias_test): step along the conjugated gradient.
    g = jax.tree.map(jnp.conj, jax.grad(loss)(p))
    u, s = tx.update(g, s, p)
    return (optax.apply_updates(p, u), s), loss(p)

  (p, _), losses = jax.jit(
    lambda p: jax.lax.scan(step, (p, tx.init(p)), None, length=steps)
  )(params)
  assert losses[-1] < 1e-4 * losses[0], (losses[0], losses[-1])
  np.testing.assert_allclose(p['w'], w_star, atol=2e-2)


# -- optax.tree.map_params (sharding specs). --


def _assert_states_equal(a, b):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
      x, y = jax.random.key_data(x), jax.random.key_data(y)
    np.testing.assert_array_equal(x, y)


MP_PARAMS = {
  'w': jnp.ones((8, 4)),  # right side
  'v': jnp.ones((3, 16)),  # left side
  'w2': jnp.ones((8, 4)),  # a block group of two
  'b': jnp.ones(4),
  'conv': jnp.ones((2, 3, 4)),
  's': jnp.ones(()),
}
MP_SPECS = {
  'w': P('x', None),
  'v': P(None, 'x'),
  'w2': P('x', None),
  'b': P('x'),
  'conv': P(None, None, 'x'),
  's': P(),
}


@pytest.mark.parametrize('projection', ['svd', 'random', 'randk', 'block'])
def test_map_params_with_sharding_specs(projection):
  # optax/tree_utils/_state_utils_test.py: test_adam / test_map_params_to_none.
  tx = optax.inject_hyperparams(
    frugal_lib.frugal, static_args=('density', 'update_gap', 'projection')
  )(learning_rate=1e-2, density=0.5, update_gap=2, projection=projection)
  tx = optax.chain(optax.clip_by_global_norm(1.0), tx)
  state = tx.init(MP_PARAMS)
  _, state = tx.update(MP_PARAMS, state, MP_PARAMS)

  _assert_states_equal(optax.tree.map_params(tx, lambda v: v, state), state)

  is_p = lambda x: isinstance(x, P)
  specs = optax.tree.map_params(
    tx,
    lambda _, spec: spec,
    state,
    MP_SPECS,
    transform_non_params=lambda _: P(),
    is_leaf=is_p,
  )
  # One spec per state leaf (no MaskedNode left to pair with a spec).
  assert jax.tree.structure(specs, is_leaf=is_p) == jax.tree.structure(
    jax.tree.map(lambda _: P(), state)
  )
  inner = specs[1].inner_state[0]
  assert inner.count == inner.key == P()
  want = optax.ScaleByAdamState(count=P(), mu=MP_SPECS, nu=MP_SPECS)
  assert inner.dense_state == want  # param-shaped moments get the specs
  assert inner.matrix_state == want  # per-leaf trees: the leaf's spec
  if projection == 'block':
    assert inner.projector == () and inner.active == MP_SPECS
  else:
    assert inner.projector == MP_SPECS and inner.active == ()

  # The shape-aware recipe of the docstring: a leaf's spec only where the
  # state leaf has the param's shape. The result places a state on a mesh.
  def spec_for(x, spec, param):
    return spec if jnp.shape(x) == jnp.shape(param) else P()

  specs = optax.tree.map_params(
    tx,
    spec_for,
    state,
    MP_SPECS,
    MP_PARAMS,
    transform_non_params=lambda _: P(),
    is_leaf=is_p,
  )
  inner = specs[1].inner_state[0]
  dense = {k: MP_SPECS[k] for k in ('b', 'conv', 's')}
  assert inner.dense_state.mu == {**dense, 'v': P(), 'w': P(), 'w2': P()}
  assert inner.matrix_state.mu == dict.fromkeys(MP_PARAMS, P())
  mesh = jax.make_mesh((1,), ('x',))
  shardings = jax.tree.map(
    lambda s: jax.sharding.NamedSharding(mesh, s), specs, is_leaf=is_p
  )
  placed = jax.jit(tx.init, out_shardings=shardings)(MP_PARAMS)
  assert jax.tree.structure(placed) == jax.tree.structure(state)

  none = optax.tree.map_params(tx, lambda _: None, state)
  assert none[1].inner_state[0].dense_state.mu == dict.fromkeys(MP_PARAMS)


@pytest.mark.parametrize('projection', ['svd', 'randk', 'block'])
def test_orbax_round_trip(tmp_path, projection):
  ocp = pytest.importorskip('orbax.checkpoint')
  tx = frugal_lib.frugal(1e-2, density=0.5, update_gap=2, projection=projection)
  state = tx.init(MP_PARAMS)
  _, state = jax.jit(tx.update)(MP_PARAMS, state, MP_PARAMS)
  with ocp.StandardCheckpointer() as ckpt:  # refuses zero-size arrays
    ckpt.save(tmp_path / 'state', state)
    ckpt.wait_until_finished()
    target = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
    restored = ckpt.restore(tmp_path / 'state', target)
  _assert_states_equal(restored, state)


# -- svd_method='randomized': the randomized range finder. --


def _with_spectrum(rng, shape, singular_values, dtype=np.float64):
  """A matrix with the given singular values and random singular vectors."""
  m, n = shape
  k = len(singular_values)
  u = np.linalg.qr(_draw(rng, (m, k), dtype))[0]
  v = np.linalg.qr(_draw(rng, (n, k), dtype))[0]
  return (u * np.asarray(singular_values)) @ v.conj().T


def _draw(rng, shape, dtype):
  x = rng.standard_normal(shape)
  if np.issubdtype(dtype, np.complexfloating):
    x = x + 1j * rng.standard_normal(shape)
  return x


def _numpy_range_finder(a, omega, rank, power_iterations):
  """Halko, Martinsson, Tropp (2011), Algorithm 4.4 then 5.1, in float64."""
  a = np.asarray(a, np.result_type(a, np.float64))
  omega = np.asarray(omega, a.dtype)
  q = np.linalg.qr(a @ omega)[0]
  for _ in range(power_iterations):
    q_tilde = np.linalg.qr(a.conj().T @ q)[0]
    q = np.linalg.qr(a @ q_tilde)[0]
  u_small = np.linalg.svd(q.conj().T @ a, full_matrices=False)[0]
  return q @ u_small[:, :rank]


def _columns(p, right):
  """The projector's basis as columns: P^H [n, r] (right), P [m, r] (left)."""
  p = np.asarray(p)
  return p.conj().T if right else p


@pytest.mark.parametrize('shape', [(48, 32), (32, 48)])  # right, left side
def test_randomized_svd_spans_the_exact_subspace(rng, shape):
  # Spectral gap at r = 8: the top 8 singular values in [5, 10], the rest
  # <= 0.1, so q = 2 power iterations shrink the error by ~(0.1/5)^5.
  r = 8
  rest = min(shape) - r
  sigma = np.concatenate([np.linspace(10, 5, r), np.linspace(0.1, 0.01, rest)])
  g = {'w': jnp.asarray(_with_spectrum(rng, shape, sigma), jnp.float32)}
  right = shape[0] >= shape[1]
  updates, projectors = {}, {}
  for method in ('exact', 'randomized'):
    tx = frugal_lib.scale_by_frugal(density=0.25, svd_method=method)
    u, state = jax.jit(tx.update)(g, tx.init(g))
    basis = _columns(state.projector['w'], right)
    assert basis.shape == (min(shape), r)
    np.testing.assert_allclose(basis.T @ basis, np.eye(r), atol=1e-5)
    updates[method], projectors[method] = u['w'], basis @ basis.T
  # The orthogonal projectors onto the two subspaces agree (their
  # spectral-norm difference is the sine of the largest principal angle).
  diff = projectors['randomized'] - projectors['exact']
  assert np.linalg.norm(diff, 2) < 1e-4
  # Distinct singular values: the vectors agree up to sign, to which Adam
  # and the residual are blind, so the whole update agrees.
  np.testing.assert_allclose(updates['randomized'], updates['exact'], atol=1e-4)


@pytest.mark.parametrize(
  'shape,dtype',
  [((12, 9), np.float32), ((9, 12), np.float32), ((9, 12), np.complex64)],
)
def test_randomized_svd_matches_numpy_range_finder(rng, shape, dtype):
  # No gap (singular values 0.85^k), so the range finder's subspace is far
  # from the exact top-r one: agreement tests the algorithm, not the SVD.
  # Refreshes at steps 0 and 2 draw from fold_in(fold_in(key, step), leaf).
  r, width, q, seed = 3, 5, 1, 7  # r = round(9 / 3); l = r + oversampling
  right = shape[0] >= shape[1]
  grads = [
    {'w': _with_spectrum(rng, shape, 0.85 ** np.arange(9), dtype)}
    for _ in range(3)
  ]
  tx = frugal_lib.scale_by_frugal(
    density=1 / 3,
    update_gap=2,
    svd_method='randomized',
    power_iterations=q,
    oversampling=width - r,
    key=seed,
  )
  grads = [{'w': x['w'].astype(dtype)} for x in grads]
  _, states = _run(tx, grads[0], grads)
  for step in (0, 2):
    g = grads[step]['w']
    a = g.conj().T if right else g
    key = jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), step), 0)
    omega = jax.random.normal(key, (a.shape[1], width), dtype)
    want = _numpy_range_finder(a, omega, r, q)
    got = _columns(states[step].projector['w'], right)
    phase = np.sum(want.conj() * got, axis=0)
    np.testing.assert_allclose(got, want * (phase / np.abs(phase)), atol=2e-5)
    exact = np.linalg.svd(a.astype(np.complex128), full_matrices=False)[0]
    exact = exact[:, :r]
    gap = np.linalg.norm(got @ got.conj().T - exact @ exact.conj().T, 2)
    assert gap > 0.05, gap
  assert not np.allclose(states[0].projector['w'], states[2].projector['w'])


# The contract's checks (tests/contract/optax_contract_test.py) that
# exercise optax's combinators, run on the randomized option; the contract
# itself keys its cases by factory, so it holds only the default 'exact'.
_RANDOMIZED_CONTRACT = (
  'test_inject_hyperparams_equality_and_tree_get_set',
  'test_masked_and_multi_transform',
  'test_multisteps_accumulates',
)


@pytest.mark.parametrize('check', _RANDOMIZED_CONTRACT)
def test_randomized_svd_under_optax_combinators(check):
  from tests.contract import optax_contract_test as contract

  case = contract.Case(
    'jaxopt_papers.optim.frugal:frugal',
    dict(
      learning_rate=1e-2,
      density=0.5,
      update_gap=2,
      svd_method='randomized',
      power_iterations=1,
      oversampling=1,
    ),
    hyper=('learning_rate', 3e-3),
    static_args=(
      'density',
      'update_gap',
      'projection',
      'state_free',
      'svd_method',
      'power_iterations',
      'oversampling',
    ),
  )
  getattr(contract, check)(case)
