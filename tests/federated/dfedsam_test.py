"""Tests for DFedSAM / DFedSAM-MGS (Shi et al., arXiv:2302.04083)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxopt_papers.core import graphs
from jaxopt_papers.data import federated as fd
from jaxopt_papers.federated import dfedsam, fedavg, simulator

_C, _D = 6, 3
# The solvers of these tests run on quadratic clients unless told otherwise.
DFedSAM = functools.partial(dfedsam.DFedSAM, loss_fn=fd.quadratic_loss)


def _quadratics(dtype=jnp.float32):
  return fd.quadratic_clients(jax.random.key(0), _C, _D, dtype=dtype)


@functools.partial(jax.jit, static_argnums=(0, 3))
def _run(solver, x0, key, num_rounds, data):
  return solver.run(x0, key, data, num_rounds)


def _np_dfedsam(x, a, c, w, *, lr, steps, rho, gossip, rounds, eps=1e-12):
  """Card 17's Algorithm 1 on quadratic clients (full batch), float64."""
  xs = np.repeat(x[None], a.shape[0], axis=0)
  history = [xs.copy()]
  for _ in range(rounds):
    ys = []
    for i in range(a.shape[0]):
      y = xs[i].copy()
      for _ in range(steps):
        g = a[i] @ (y - c[i])
        if rho > 0:
          delta = rho * g / (np.linalg.norm(g) + eps)
          g = a[i] @ (y + delta - c[i])
        y = y - lr * g
      ys.append(y)
    z = np.stack(ys)
    for _ in range(gossip):
      z = w @ z
    xs = z
    history.append(xs.copy())
  return history


@pytest.mark.parametrize(('rho', 'gossip'), [(0.05, 1), (0.3, 3), (0.0, 2)])
def test_matches_numpy_transcription(rho, gossip):
  with jax.enable_x64(True):
    problem = _quadratics(jnp.float64)
    solver = DFedSAM(
      num_clients=_C,
      rho=rho,
      gossip_steps=gossip,
      client_tx=optax.sgd(0.1),
      num_local_steps=3,
    )
    x0 = jnp.linspace(-1.0, 1.0, _D)
    state, trace = _run(solver, x0, jax.random.key(1), 3, problem.data)
    a, c = (np.asarray(v)[:, 0] for v in problem.data.examples)
    w = np.asarray(solver.mixing)
    ref = _np_dfedsam(
      np.asarray(x0),
      a,
      c,
      w,
      lr=0.1,
      steps=3,
      rho=rho,
      gossip=gossip,
      rounds=3,
    )
    np.testing.assert_allclose(state.params, ref[-1], rtol=1e-10)
    cons = [np.mean(np.sum((h - h.mean(0)) ** 2, axis=1)) for h in ref[:-1]]
    np.testing.assert_allclose(trace.consensus, cons, rtol=1e-8, atol=1e-14)


def _logistic():
  return fd.logistic_clients(
    jax.random.key(2), _C, _D, 8, min_examples=3, dtype=jnp.float32
  )


def test_rho_zero_q_one_is_dfedavg_bitwise():
  """Local SGD on minibatches, then one W step: written independently."""
  data = _logistic()
  common = dict(
    num_clients=_C,
    loss_fn=fd.logistic_loss,
    client_tx=optax.sgd(0.2),
    num_local_steps=4,
    batch_size=3,
  )
  solver = DFedSAM(rho=0.0, gossip_steps=1, **common)
  x0, key, rounds = jnp.zeros([_D]), jax.random.key(3), 5
  state, _ = _run(solver, x0, key, rounds, data)
  state_avg, _ = _run(dfedsam.dfedavg(**common), x0, key, rounds, data)
  np.testing.assert_array_equal(state.params, state_avg.params)

  trainer = simulator.LocalTrainer(
    loss_fn=fd.logistic_loss,
    client_tx=optax.sgd(0.2),
    num_local_steps=4,
    batch_size=3,
  )
  w = jnp.asarray(graphs.metropolis_weights(graphs.ring(_C)), jnp.float32)

  @jax.jit
  def reference(xs):
    for t in range(rounds):
      k_round = simulator.round_key(key, t)
      ys, _ = jax.vmap(trainer)(
        xs,
        data.examples,
        data.counts,
        jax.vmap(simulator.client_key, in_axes=(None, 0))(
          k_round, jnp.arange(_C)
        ),
      )
      xs = jnp.einsum('ij,jd->id', w, ys)
    return xs

  ref = reference(jnp.zeros([_C, _D]))
  np.testing.assert_array_equal(state.params, ref)


def test_complete_graph_is_fedavg_with_full_participation():
  data = _logistic()
  common = dict(
    loss_fn=fd.logistic_loss,
    client_tx=optax.sgd(0.2),
    num_local_steps=3,
    batch_size=3,
  )
  ours = dfedsam.dfedavg(num_clients=_C, mixing='complete', **common)
  ref = fedavg.FedAvg(weighting='uniform', **common)
  x0, key = jnp.zeros([_D]), jax.random.key(4)
  state, trace = _run(ours, x0, key, 4, data)
  ref_state, ref_trace = _run(ref, x0, key, 4, data)
  for i in range(_C):
    np.testing.assert_allclose(
      state.params[i], ref_state.params, rtol=1e-5, atol=1e-6
    )
  np.testing.assert_allclose(trace.loss, ref_trace.loss, rtol=1e-5)
  np.testing.assert_allclose(trace.consensus[1:], 0.0, atol=1e-10)
  assert ours.mixing_rate() < 1e-6


def test_gossip_contracts_and_preserves_the_average():
  problem = _quadratics()
  for q in (1, 4):
    solver = DFedSAM(num_clients=_C, rho=0.05, gossip_steps=q)
    state, trace = _run(
      solver, jnp.zeros([_D]), jax.random.key(0), 6, problem.data
    )
    lam = solver.mixing_rate()
    after = np.asarray(trace.consensus[1:])
    before = np.asarray(trace.consensus_before_gossip[:-1])
    assert np.all(after <= lam ** (2 * q) * before * (1 + 1e-4) + 1e-12)
  # One round by hand: the average of the local models is kept.
  solver = DFedSAM(num_clients=_C, gossip_steps=3)
  s0 = solver.init(jnp.zeros([_D]), jax.random.key(0))
  s1, _ = solver.step(s0, problem.data)
  local = DFedSAM(num_clients=_C, gossip_steps=1, mixing=np.eye(_C)).step(
    s0, problem.data
  )[0]
  np.testing.assert_allclose(
    s1.params.mean(0), local.params.mean(0), rtol=1e-5, atol=1e-6
  )
  assert solver.num_links() == 2 * _C
  trace = solver.step(s0, problem.data)[1]
  assert float(trace.bytes_sent) == 3 * 2 * _C * _D * 4


def test_nan_surfaces_in_the_trace():
  problem = _quadratics()
  a, c = problem.data.examples
  data = problem.data._replace(examples=(a, c.at[2].set(jnp.nan)))
  solver = DFedSAM(num_clients=_C)
  _, trace = _run(solver, jnp.zeros([_D]), jax.random.key(0), 3, data)
  assert bool(trace.nonfinite[0])


@pytest.mark.parametrize(
  ('kwargs', 'name'),
  [
    (dict(rho=-0.1), 'rho'),
    (dict(gossip_steps=0), 'gossip_steps'),
    (dict(mixing='star'), 'mixing'),
    (dict(mixing=np.eye(4)), 'mixing'),
    (dict(mixing=np.full([_C, _C], 0.5)), 'mixing'),
    (dict(mixing=np.triu(np.ones([_C, _C])) / _C), 'mixing'),
    (dict(num_clients=2), 'mixing'),
    (dict(sam_eps=0.0), 'sam_eps'),
    (dict(num_local_steps=0), 'num_local_steps'),
  ],
)
def test_bad_arguments_raise(kwargs, name):
  kwargs = {'num_clients': _C, **kwargs}
  with pytest.raises(ValueError, match=name):
    DFedSAM(**kwargs)
  with pytest.raises(ValueError, match='rho'):
    dfedsam.dfedavg(num_clients=_C, rho=0.1)


def test_local_steps_match_optax_contrib_sam():
  """Without gossip (W = I) a client runs K steps of optax's SAM (opaque)."""
  with jax.enable_x64(True):
    problem = _quadratics(jnp.float64)
    lr, rho, steps = 0.1, 0.2, 3
    solver = DFedSAM(
      num_clients=_C,
      rho=rho,
      mixing=np.eye(_C),
      client_tx=optax.sgd(lr),
      num_local_steps=steps,
    )
    x0 = jnp.linspace(-1.0, 1.0, _D)
    state, _ = _run(solver, x0, jax.random.key(0), 1, problem.data)
    sam = optax.contrib.sam(
      optax.sgd(lr),
      optax.chain(optax.contrib.normalize(), optax.sgd(rho)),
      sync_period=2,
      opaque_mode=True,
    )
    a, c = (np.asarray(v)[:, 0] for v in problem.data.examples)
    for i in (0, _C - 1):  # two clients suffice (each is independent)
      grad = jax.grad(lambda x, _, i=i: 0.5 * (x - c[i]) @ a[i] @ (x - c[i]))
      x, opt_state = x0, sam.init(x0)
      for _ in range(steps):
        updates, opt_state = sam.update(grad(x, 0), opt_state, x, grad_fn=grad)
        x = optax.apply_updates(x, updates)
      np.testing.assert_allclose(state.params[i], x, rtol=1e-9)
