"""Tests for the privacy accounting helpers (thin layer over dp_accounting)."""

import functools
import math

import dp_accounting
import pytest
from dp_accounting import pld, rdp

from jaxopt_papers.privacy import accounting

DELTA = 1e-5
MNIST = dict(noise_multiplier=1.1, sampling_rate=256 / 60000, num_steps=14062)


def _dp_epsilon(event, accountant, delta=DELTA, **kwargs):
  """dp_accounting's own number for ``event`` (no project code)."""
  acc = rdp.RdpAccountant(**kwargs) if accountant == 'rdp' else None
  acc = acc or pld.PLDAccountant(**kwargs)
  return acc.compose(event).get_epsilon(delta)


def _dp_mnist_event():
  return dp_accounting.SelfComposedDpEvent(
    dp_accounting.PoissonSampledDpEvent(
      256 / 60000, dp_accounting.GaussianDpEvent(1.1)
    ),
    14062,
  )


@functools.cache
def _mnist_epsilon(accountant):
  return accounting.epsilon(**MNIST, delta=DELTA, accountant=accountant)


@pytest.mark.parametrize(
  'accountant, anchor', [('rdp', 2.5966), ('pld', 2.3817)]
)
def test_poisson_anchor_equals_dp_accounting(accountant, anchor):
  got = _mnist_epsilon(accountant)
  want = _dp_epsilon(_dp_mnist_event(), accountant)
  assert got == pytest.approx(want, rel=1e-12)
  assert got == pytest.approx(anchor, abs=5e-5)


def test_full_batch_gaussian_anchor_and_zcdp_bound():
  got = accounting.epsilon(
    noise_multiplier=5.0, sampling_rate=1.0, num_steps=100, delta=DELTA
  )
  want = _dp_epsilon(
    dp_accounting.SelfComposedDpEvent(dp_accounting.GaussianDpEvent(5.0), 100),
    'rdp',
  )
  assert got == pytest.approx(want, rel=1e-12)
  assert got == pytest.approx(10.7255, abs=5e-5)
  # Independent closed form: 100 Gaussians of sigma 5 are rho = 2 zCDP, and
  # rho + 2 sqrt(rho log(1/delta)) = 11.5971 is a (looser) upper bound.
  rho = 100 / (2 * 5.0**2)
  zcdp = rho + 2 * math.sqrt(rho * math.log(1 / DELTA))
  assert zcdp == pytest.approx(11.5971, abs=5e-5)
  assert got < zcdp


def test_full_batch_pld_equals_dp_accounting_and_replace_one():
  event = accounting.gaussian_event(5.0, num_steps=100)
  got = accounting.epsilon_of_events([event], delta=DELTA, accountant='pld')
  want = _dp_epsilon(event, 'pld')
  assert got == pytest.approx(want, rel=1e-12)
  # Without subsampling only std / sensitivity matters. dp_accounting's own
  # replace-one PLD takes noise_multiplier = std / C (C bounds one record) and
  # shifts by the replace-one sensitivity 2C itself: std / (2C) = 5 here is
  # its noise multiplier 10, and the epsilons agree.
  replace = _dp_epsilon(
    dp_accounting.SelfComposedDpEvent(dp_accounting.GaussianDpEvent(10.0), 100),
    'pld',
    neighboring_relation=dp_accounting.NeighboringRelation.REPLACE_ONE,
  )
  assert got == pytest.approx(replace, rel=1e-12)
  assert got < accounting.epsilon(
    noise_multiplier=5.0, sampling_rate=1.0, num_steps=100, delta=DELTA
  )


def test_pld_is_tighter_than_rdp_on_the_anchor():
  assert _mnist_epsilon('pld') < _mnist_epsilon('rdp')


def test_gaussian_event_structure():
  g = dp_accounting.GaussianDpEvent(1.1)
  assert accounting.gaussian_event(1.1) == g
  assert accounting.gaussian_event(1.1, num_steps=3) == (
    dp_accounting.SelfComposedDpEvent(g, 3)
  )
  assert accounting.gaussian_event(1.1, sampling_rate=0.01) == (
    dp_accounting.PoissonSampledDpEvent(0.01, g)
  )
  assert (
    accounting.gaussian_event(1.1, sampling_rate=256 / 60000, num_steps=14062)
    == _dp_mnist_event()
  )


@pytest.mark.parametrize('accountant', ['rdp', 'pld'])
def test_epsilon_of_events_equals_dp_accounting_composition(accountant):
  events = [
    accounting.gaussian_event(2.0),
    accounting.gaussian_event(3.0, num_steps=5),
    accounting.gaussian_event(1.5, sampling_rate=0.02, num_steps=50),
  ]
  got = accounting.epsilon_of_events(events, delta=DELTA, accountant=accountant)
  want = _dp_epsilon(dp_accounting.ComposedDpEvent(events), accountant)
  assert got == pytest.approx(want, rel=1e-12)
  single = accounting.epsilon_of_events(
    events[0], delta=DELTA, accountant=accountant
  )
  assert single == pytest.approx(_dp_epsilon(events[0], accountant), rel=1e-12)
  assert single < got


def test_composed_gaussians_equal_one_gaussian_rdp():
  # Independent identity: Gaussians compose exactly in RDP, sigma_eff^-2 =
  # sum sigma_i^-2 (here 2^-2 + 5 * 3^-2).
  events = [accounting.gaussian_event(2.0)] + [
    accounting.gaussian_event(3.0, num_steps=5)
  ]
  sigma_eff = (2.0**-2 + 5 * 3.0**-2) ** -0.5
  got = accounting.epsilon_of_events(events, delta=DELTA)
  want = accounting.epsilon(
    noise_multiplier=sigma_eff, sampling_rate=1.0, num_steps=1, delta=DELTA
  )
  assert got == pytest.approx(want, rel=1e-9)


@pytest.mark.parametrize(
  'accountant, sigmas', [('rdp', (0.7, 1.0, 1.5, 3.0)), ('pld', (0.8, 1.0))]
)
def test_epsilon_monotonic(accountant, sigmas):
  kw = dict(sampling_rate=0.01, num_steps=200, delta=DELTA)
  kw['accountant'] = accountant
  eps = [accounting.epsilon(noise_multiplier=s, **kw) for s in sigmas]
  assert all(a > b for a, b in zip(eps, eps[1:], strict=False)), eps
  assert accounting.epsilon(noise_multiplier=0.0, **kw) == math.inf
  if accountant == 'rdp':
    more_steps = dict(kw, num_steps=400)
    assert accounting.epsilon(noise_multiplier=1.0, **more_steps) > eps[1]
    higher_rate = dict(kw, sampling_rate=0.02)
    assert accounting.epsilon(noise_multiplier=1.0, **higher_rate) > eps[1]


def test_calibrate_noise_recovers_the_anchor_sigma():
  target = _dp_epsilon(_dp_mnist_event(), 'rdp')
  sigma = accounting.calibrate_noise(
    target, sampling_rate=256 / 60000, num_steps=14062, delta=DELTA
  )
  assert sigma == pytest.approx(1.1, abs=1e-5)


@pytest.mark.parametrize(
  'accountant, target, rate, steps',
  [
    ('rdp', 1.0, 0.01, 1000),
    ('rdp', 8.0, 1.0, 100),
    ('rdp', 0.5, 1.0, 1),
    ('pld', 2.0, 1.0, 10),  # PLD calibration takes seconds: one case
  ],
)
def test_calibrate_noise_round_trip(accountant, target, rate, steps):
  kw = dict(
    sampling_rate=rate, num_steps=steps, delta=DELTA, accountant=accountant
  )
  sigma = accounting.calibrate_noise(target, **kw)
  eps = accounting.epsilon(noise_multiplier=sigma, **kw)
  assert eps <= target  # dp_accounting's guarantee: never above the target
  assert eps == pytest.approx(target, rel=1e-3)  # and tight
  # 1e-6 tolerance in sigma: a slightly smaller sigma exceeds the target.
  assert accounting.epsilon(noise_multiplier=sigma - 1e-4, **kw) > target


def test_calibrate_noise_monotonic_in_target():
  kw = dict(sampling_rate=0.01, num_steps=1000, delta=DELTA)
  sigmas = [accounting.calibrate_noise(e, **kw) for e in (0.5, 1.0, 4.0)]
  assert sigmas[0] > sigmas[1] > sigmas[2] > 0


def test_make_accountant_relation():
  for name, cls in (('rdp', rdp.RdpAccountant), ('pld', pld.PLDAccountant)):
    acc = accounting.make_accountant(name)
    assert isinstance(acc, cls)
    assert acc.neighboring_relation == accounting.RELATION
  assert accounting.RELATION == (
    dp_accounting.NeighboringRelation.ADD_OR_REMOVE_ONE
  )


_OK = dict(noise_multiplier=1.0, sampling_rate=0.1, num_steps=10, delta=1e-5)
_CAL = dict(sampling_rate=0.1, num_steps=10, delta=1e-5)


@pytest.mark.parametrize(
  'call, name',
  [
    (
      lambda: accounting.epsilon(**{**_OK, 'noise_multiplier': -1.0}),
      'noise_multiplier',
    ),
    (
      lambda: accounting.epsilon(**{**_OK, 'sampling_rate': 0.0}),
      'sampling_rate',
    ),
    (
      lambda: accounting.epsilon(**{**_OK, 'sampling_rate': 1.5}),
      'sampling_rate',
    ),
    (lambda: accounting.epsilon(**{**_OK, 'num_steps': 0}), 'num_steps'),
    (lambda: accounting.epsilon(**{**_OK, 'num_steps': 2.5}), 'num_steps'),
    (lambda: accounting.epsilon(**{**_OK, 'delta': 0.0}), 'delta'),
    (lambda: accounting.epsilon(**{**_OK, 'delta': 1.0}), 'delta'),
    (lambda: accounting.epsilon(**_OK, accountant='moments'), 'accountant'),
    (lambda: accounting.gaussian_event(-0.5), 'noise_multiplier'),
    (
      lambda: accounting.gaussian_event(1.0, sampling_rate=-0.1),
      'sampling_rate',
    ),
    (lambda: accounting.gaussian_event(1.0, num_steps=0), 'num_steps'),
    (lambda: accounting.calibrate_noise(0.0, **_CAL), 'target_epsilon'),
    (lambda: accounting.calibrate_noise(-1.0, **_CAL), 'target_epsilon'),
    (
      lambda: accounting.calibrate_noise(1.0, **{**_CAL, 'delta': 2.0}),
      'delta',
    ),
    (
      lambda: accounting.calibrate_noise(1.0, **{**_CAL, 'num_steps': 0}),
      'num_steps',
    ),
    (
      lambda: accounting.calibrate_noise(1.0, **{**_CAL, 'sampling_rate': 0.0}),
      'sampling_rate',
    ),
    (
      lambda: accounting.calibrate_noise(1.0, **_CAL, accountant='x'),
      'accountant',
    ),
    (lambda: accounting.epsilon_of_events([], delta=1e-5), 'events'),
    (lambda: accounting.epsilon_of_events([1.0], delta=1e-5), 'events'),
    (
      lambda: accounting.epsilon_of_events(
        [dp_accounting.UnsupportedDpEvent()], delta=1e-5
      ),
      'events',
    ),
    (
      lambda: accounting.epsilon_of_events(
        [accounting.gaussian_event(1.0)], delta=-1.0
      ),
      'delta',
    ),
    (lambda: accounting.make_accountant('gdp'), 'accountant'),
  ],
)
def test_bad_inputs_raise(call, name):
  with pytest.raises(ValueError, match=f'`{name}`'):
    call()
