"""Tests for the federated round-solver base (``federated/rounds.py``)."""

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxopt_papers.core import parallel
from jaxopt_papers.data import federated as fd
from jaxopt_papers.federated import fedavg, rounds, simulator
from jaxopt_papers.federated import participation as pm


class _State(NamedTuple):
  round: jax.Array
  params: optax.Params
  server_state: optax.OptState
  participation_state: Any
  key: jax.Array


class _Trace(NamedTuple):
  loss: jax.Array
  grad_norm: jax.Array
  num_participants: jax.Array
  bytes_up: jax.Array
  bytes_down: jax.Array
  client_loss: jax.Array
  nonfinite: jax.Array
  metrics: Any


@jax.tree_util.register_static
@dataclasses.dataclass(frozen=True, kw_only=True)
class MiniFedAvg(rounds.ServerRoundSolver):
  """The module docstring's recipe: FedAvg written on the base."""

  client_tx: optax.GradientTransformation = optax.sgd(0.1)
  grad_fn: simulator.GradFn | None = None

  def init(self, params, key):
    return self._place(_State(**self._init_fields(params, key)))

  def _client(self, params, examples, count, weight, active, k_round):
    loss, grad = self._objective(params, examples, count, weight)
    new, stats = self._train(params, examples, count, k_round)
    delta = jax.tree.map(jnp.subtract, new, params)
    mean, _ = simulator.masked_weighted_mean(
      delta, self._weight(weight), active, self.axis_name
    )
    return mean, loss, grad, self._participants_sum(stats.loss, active)

  def step(self, state, data):
    k_round, mask, num, part_state = self._sample(state, data.num_clients)
    mapped = self._map(self._client, (None, 0, 0, 0, 0, None), None)
    mean, loss, grad, client_sum = mapped(
      state.params, data.examples, data.counts, data.weights, mask, k_round
    )
    params, server_state, _ = self._server_update(state, mean, num)
    row = _Trace(
      **self._trace_fields(state.params, params, loss, grad, num, client_sum)
    )
    new_state = _State(
      **self._next_fields(state, params, server_state, part_state)
    )
    return new_state, row


@jax.tree_util.register_static
@dataclasses.dataclass(frozen=True, kw_only=True)
class _Serverless(rounds.RoundSolver):
  """No server: every client trains from the same model, no aggregation."""

  client_tx: optax.GradientTransformation = optax.sgd(0.1)

  @property
  def grad_fn(self):
    return None

  def init(self, params, key):
    return params, key

  def step(self, state, data):  # clients train; the model stays where it is
    params, key = state
    key, sub = jax.random.split(key)

    def client(p, ex, n, w, k):
      loss, grad = self._objective(p, ex, n, w)
      return self._train(p, ex, n, k)[0], loss, grad

    mapped = self._map(client, (None, 0, 0, 0, None), (0, None, None))
    new, loss, grad = mapped(
      params, data.examples, data.counts, data.weights, sub
    )
    return (params, key), self._trace_fields(params, new, loss, grad)


def _data(seed=0, num_clients=8):
  return fd.logistic_clients(
    jax.random.key(seed), num_clients, 3, 10, min_examples=3
  )


def _kwargs(**overrides):
  kw = dict(
    loss_fn=fd.logistic_loss,
    client_tx=optax.sgd(0.3, momentum=0.5),
    server_tx=optax.chain(optax.trace(0.5), optax.scale(0.9)),
    num_local_steps=3,
    batch_size=4,
    participation=pm.Bernoulli(num_clients=8, probs=0.6),
    eval_fn=lambda w: {'norm': jnp.linalg.norm(w)},
  )
  kw.update(overrides)
  return kw


def _run(solver, data, rounds_=6):
  x0 = jnp.full([3], 0.1, jnp.float32)
  return jax.jit(solver.run, static_argnums=3)(
    x0, jax.random.key(7), data, rounds_
  )


def test_minimal_subclass_matches_fedavg():
  data = _data()
  s_mini, t_mini = _run(MiniFedAvg(**_kwargs()), data)
  s_ref, t_ref = _run(fedavg.FedAvg(**_kwargs()), data)
  for name in _State._fields:
    for a, b in zip(
      jax.tree.leaves(getattr(s_mini, name)),
      jax.tree.leaves(getattr(s_ref, name)),
      strict=True,
    ):
      a, b = (
        jax.random.key_data(x)
        if jnp.issubdtype(x.dtype, jax.dtypes.prng_key)
        else x
        for x in (a, b)
      )
      np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
  for name in _Trace._fields:
    for a, b in zip(
      jax.tree.leaves(getattr(t_mini, name)),
      jax.tree.leaves(getattr(t_ref, name)),
      strict=True,
    ):
      np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
  assert 0 < int(t_mini.num_participants.sum()) < 8 * 6
  np.testing.assert_allclose(
    MiniFedAvg(**_kwargs()).evaluate(s_mini.params, data),
    fedavg.FedAvg(**_kwargs()).evaluate(s_ref.params, data),
    rtol=1e-6,
  )


def test_minimal_subclass_on_4_devices_matches_vmap(num_devices):
  data = _data(seed=1)
  mesh = parallel.make_mesh(num_devices)
  s1, t1 = _run(MiniFedAvg(**_kwargs()), data)
  s4, t4 = _run(MiniFedAvg(**_kwargs(mesh=mesh)), data)
  np.testing.assert_allclose(
    jax.device_get(s4.params), s1.params, rtol=1e-6, atol=1e-7
  )
  for a, b in zip(jax.tree.leaves(t1), jax.tree.leaves(t4), strict=True):
    np.testing.assert_allclose(jax.device_get(b), a, rtol=2e-6, atol=1e-7)
  placed = MiniFedAvg(**_kwargs(mesh=mesh)).init(
    jnp.zeros([3]), jax.random.key(0)
  )
  assert placed.params.sharding.is_fully_replicated


def test_trace_fields_and_place_of_a_serverless_subclass(num_devices):
  data = _data()
  solver = _Serverless(loss_fn=fd.logistic_loss, num_local_steps=2)
  params = jnp.zeros([3])

  state = solver.init(params, jax.random.key(0))
  new_state, out = jax.jit(solver.step)(state, data)
  np.testing.assert_array_equal(new_state[0], params)
  assert set(out) == {'loss', 'grad_norm', 'nonfinite', 'metrics'}
  assert out['metrics'] is None and not bool(out['nonfinite'])
  np.testing.assert_allclose(
    out['loss'], solver.evaluate(params, data), rtol=1e-6
  )
  # _place shards the named per-client fields and replicates the rest.
  mesh = parallel.make_mesh(num_devices)
  sharded = _Serverless(loss_fn=fd.logistic_loss, mesh=mesh)
  state = _State(jnp.zeros([]), jnp.zeros([8, 3]), None, None, jnp.ones([2]))
  placed = sharded._place(state, 'params')
  assert len(placed.params.sharding.device_set) == num_devices
  assert not placed.params.sharding.is_fully_replicated
  assert placed.key.sharding.is_fully_replicated


def test_loss_fn_is_required():
  with pytest.raises(TypeError, match='loss_fn'):
    MiniFedAvg()


@pytest.mark.parametrize(
  'kwargs, name',
  [
    (dict(loss_fn=None), 'loss_fn'),
    (dict(client_tx=optax.sgd), 'client_tx'),
    (dict(grad_fn=0.1), 'grad_fn'),
    (dict(num_local_steps=0), 'num_local_steps'),
    (dict(num_local_steps=2.0), 'num_local_steps'),
    (dict(batch_size=0), 'batch_size'),
    (dict(eval_fn='accuracy'), 'eval_fn'),
    (dict(axis_name=''), 'axis_name'),
    (dict(mesh=parallel.make_mesh(1, 'devices')), 'axis_name'),
    (dict(num_clients=0), 'num_clients'),
    (dict(num_clients=4), 'num_clients'),
    (dict(participation=0.5), 'participation'),
    (dict(server_tx=1.0), 'server_tx'),
    (dict(weighting='equal'), 'weighting'),
  ],
)
def test_bad_arguments_name_the_argument(kwargs, name):
  with pytest.raises(ValueError, match=f'`{name}`'):
    MiniFedAvg(**_kwargs(**kwargs))


def test_data_with_other_clients_is_refused():
  data = _data(num_clients=4)
  with pytest.raises(ValueError, match='`participation`'):
    _run(MiniFedAvg(**_kwargs()), data)
  with pytest.raises(ValueError, match='`num_clients`'):
    _run(MiniFedAvg(**_kwargs(participation=None, num_clients=8)), data)
  # Without num_clients nor participation, any number of clients is fine.
  _, trace = _run(MiniFedAvg(**_kwargs(participation=None)), data, 2)
  np.testing.assert_array_equal(trace.num_participants, 4)
