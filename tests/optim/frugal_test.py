"""Tests for jaxopt_papers.optim.frugal."""

import doctest

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

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
  return {k: rng.standard_normal(s).astype(dtype) for k, s in shapes.items()}


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
  params = {k: np.array(v, np.float64) for k, v in params.items()}
  state = {k: {} for k in params}
  out = []

  def adam(st, x):  # frugal/adamw.py _compute_update with lr = 1
    st['step'] += 1
    st['m'] = B1 * st['m'] + (1 - B1) * x
    st['v'] = B2 * st['v'] + (1 - B2) * x * x
    bc1, bc2 = 1 - B1 ** st['step'], 1 - B2 ** st['step']
    return -(1.0 / bc1) * st['m'] / (np.sqrt(st['v']) / np.sqrt(bc2) + EPS)

  def zero_stats(st, shape):
    st.update(m=np.zeros(shape), v=np.zeros(shape), step=0)

  for t, grads in enumerate(grads_seq):
    grads = {k: np.asarray(v, np.float64) for k, v in grads.items()}
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
            p = np.asarray(fed[t][name], np.float64)
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
            full = np.zeros(shape[0] * shape[1])
            full[idx] = x
            return full.reshape(shape)
        elif st['right']:
          down = lambda x, p=st['P']: x @ p.T
          up = lambda x, p=st['P']: x @ p
        else:
          down = lambda x, p=st['P']: p.T @ x
          up = lambda x, p=st['P']: p @ x
        gd = down(g)
        upd = lr * up(adam(st, gd))
        upd -= lr * scale * _phi(g - up(gd), state_free)
      params[name] += upd
    out.append({k: v.copy() for k, v in params.items()})
  return out


@pytest.mark.parametrize(
  'projection,state_free,reset',
  [
    ('svd', 'sign', True),
    ('svd', 'sgd', True),
    ('svd', 'none', False),
    ('svd', 'sign', False),
    ('random', 'sign', True),
    ('randk', 'sign', True),
    ('randk', 'sgd', False),
    ('block', 'sign', True),
    ('block', 'none', True),
  ],
)
def test_matches_numpy_reference(rng, projection, state_free, reset):
  density, update_gap, scale, lr, wd, num_steps = 0.5, 3, 0.3, 0.05, 0.1, 7
  params = _tree(rng, dtype=np.float64)
  grads_seq = [_tree(rng, dtype=np.float64) for _ in range(num_steps)]
  with jax.enable_x64(True):
    tx = frugal_lib.frugal(
      lr,
      scale,
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
    assert all(x.dtype == np.float64 for x in jax.tree.leaves(updates))

  fed = {}
  for t in range(0, num_steps, update_gap):
    inner = states[t][0]
    if projection == 'block':
      members = ['tall', 'tall2']  # the only group with a slot: (6, 4)
      fed[t] = {members[int(j)] for j in np.asarray(inner.active[0])}
      assert len(fed[t]) == round(2 * density)
    else:
      fed[t] = {
        k: np.asarray(v)
        for k, v in inner.projector.items()
        if not isinstance(v, optax.MaskedNode)
      }
    if projection == 'random':
      for v in fed[t].values():
        right = v.shape[0] < v.shape[1]
        gram = v @ v.T if right else v.T @ v
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
      lr, scale, density=0.0, update_gap=2, projection=p, state_free=state_free
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
  plain, _ = _run(frugal_lib.frugal(0.1, 0.3, **kwargs), params, grads_seq)
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
    optax.MultiSteps(frugal_lib.frugal(0.1, 0.3, **kwargs), 2),
    params,
    grads_seq,
  )
  means = [
    jax.tree.map(lambda a, b: (a + b) / 2, grads_seq[i], grads_seq[i + 1])
    for i in (0, 2)
  ]
  direct, _ = _run(frugal_lib.frugal(0.1, 0.3, **kwargs), params, means)
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
