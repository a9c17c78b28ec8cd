"""Privacy accounting for Gaussian mechanisms, on Google's ``dp_accounting``.

Host-side and thin: every function builds ``dp_accounting`` events
(``GaussianDpEvent``, ``PoissonSampledDpEvent``, ``SelfComposedDpEvent``,
``ComposedDpEvent``) and asks one of ``dp_accounting``'s accountants for the
answer, ``rdp.RdpAccountant()`` with its default orders or
``pld.PLDAccountant()`` with its default discretization (1e-4). No epsilon
printed by this project comes from a hand-written accountant; the numbers
here equal ``dp_accounting``'s own for the same events.

Privacy statement (what the numbers mean):

- **Neighbouring relation: add/remove one record.** Both accountants are
  built with ``NeighboringRelation.ADD_OR_REMOVE_ONE`` (:data:`RELATION`),
  the relation ``dp_accounting``'s RDP accountant requires for
  ``PoissonSampledDpEvent`` (it refuses replace-one there; the other option
  is replace-with-a-special-record) and the one of DP-SGD's amplification by
  Poisson subsampling. Datasets ``D`` and ``D'`` are neighbours when one is
  the other with one record added or removed. An (ε, δ) guarantee under
  add/remove implies one under replace-one (a replacement is a removal then
  an addition) only through group privacy, i.e. (2ε, (1 + e^ε) δ); it is not
  the same ε.
- **Units.** ``noise_multiplier`` = standard deviation of the Gaussian noise
  / L2 sensitivity of the released quantity under the relation (so a DP-SGD
  step that clips each example to norm ``C`` and adds ``N(0, (σC)^2)`` to the
  SUM of clipped gradients has ``noise_multiplier = σ``). Dividing the
  noisy sum by a constant (e.g. the expected batch size ``q n``) is
  post-processing; dividing by the realized Poisson batch size is not
  covered (that size is itself a non-private release under add/remove).
  ε is in nats (natural log); δ is the additive slack of (ε, δ)-DP, in
  ``(0, 1)``, conventionally well below ``1 / num_examples``.
- **Full batch** (``sampling_rate=1``, no subsampling): the privacy of a
  Gaussian mechanism depends only on std / sensitivity, so for a replace-one
  guarantee pass ``noise_multiplier = std / (replace-one sensitivity)``
  (e.g. ``2C / n`` for a mean of ``n`` terms clipped to norm ``C``, one row
  replaced): the ε is then valid under replace-one. (``dp_accounting``'s own
  replace-one PLD accountant takes ``std / C`` and doubles the sensitivity
  itself; the two agree, see the tests. Do not pass ``std / C`` here for a
  replace-one guarantee: that would understate ε.)
- **Poisson subsampling** (``sampling_rate < 1``) assumes every example is
  included independently with probability ``sampling_rate`` at every step
  (:func:`jaxopt_papers.privacy.sampling.poisson_batch`); a fixed-size
  shuffled batch is NOT covered by these numbers.
- **What is protected:** every record of the training set, through the
  released noisy quantities (and any post-processing, e.g. the iterates); the
  accounting assumes the sampling, clipping and noise really are as declared.

Both accountants give upper bounds on ε for the given δ: RDP through the
RDP-to-(ε, δ) conversion (looser), PLD through a pessimistic discretized
privacy-loss distribution (tighter, slower: about 0.4 s for 14062 subsampled
steps).

Example (the DP-SGD MNIST setting of Abadi et al.)::

  epsilon(noise_multiplier=1.1, sampling_rate=256 / 60000,
          num_steps=14062, delta=1e-5)                     # 2.5966 (RDP)
  epsilon(..., accountant='pld')                           # 2.3817
"""

from collections.abc import Sequence

import dp_accounting
from dp_accounting import pld, rdp

from jaxopt_papers.core import checks

__all__ = [
  'ACCOUNTANTS',
  'RELATION',
  'calibrate_noise',
  'compose_events',
  'epsilon',
  'epsilon_of_events',
  'gaussian_event',
  'make_accountant',
]

ACCOUNTANTS = ('rdp', 'pld')
RELATION = dp_accounting.NeighboringRelation.ADD_OR_REMOVE_ONE


def make_accountant(accountant: str = 'rdp') -> dp_accounting.PrivacyAccountant:
  """A fresh ``dp_accounting`` accountant: ``'rdp'`` or ``'pld'``.

  ``rdp.RdpAccountant`` with its default orders, or ``pld.PLDAccountant``
  with its default value discretization interval (1e-4); both under
  :data:`RELATION` (add/remove one record).
  """
  checks.check_in('accountant', accountant, ACCOUNTANTS)
  if accountant == 'rdp':
    return rdp.RdpAccountant(neighboring_relation=RELATION)
  return pld.PLDAccountant(neighboring_relation=RELATION)


def _check_delta(delta) -> None:
  checks.check_fraction('delta', delta)


def gaussian_event(
  noise_multiplier: float, *, sampling_rate: float = 1.0, num_steps: int = 1
) -> dp_accounting.DpEvent:
  """The event of ``num_steps`` (Poisson-subsampled) Gaussian releases.

  ``GaussianDpEvent(noise_multiplier)``, wrapped in
  ``PoissonSampledDpEvent(sampling_rate, .)`` when ``sampling_rate < 1``,
  and in ``SelfComposedDpEvent(., num_steps)`` when ``num_steps > 1``.

  Args:
    noise_multiplier: noise std / L2 sensitivity, >= 0 (0 is no privacy:
      epsilon is ``inf``).
    sampling_rate: probability that each example is in a step's batch,
      in ``(0, 1]``; 1 is the full batch (no subsampling).
    num_steps: how many times the mechanism is applied, an int >= 1.

  Returns:
    A ``dp_accounting.DpEvent``; compose several with
    :func:`compose_events` or pass a list to :func:`epsilon_of_events`.
  """
  checks.check_nonnegative('noise_multiplier', noise_multiplier)
  checks.check_probability('sampling_rate', sampling_rate)
  checks.check_int('num_steps', num_steps)
  event = dp_accounting.GaussianDpEvent(float(noise_multiplier))
  if sampling_rate < 1:
    event = dp_accounting.PoissonSampledDpEvent(float(sampling_rate), event)
  if num_steps > 1:
    event = dp_accounting.SelfComposedDpEvent(event, int(num_steps))
  return event


def compose_events(
  events: dp_accounting.DpEvent | Sequence[dp_accounting.DpEvent],
) -> dp_accounting.DpEvent:
  """One ``ComposedDpEvent`` of a list of events (one event as it is).

  For compositions of different mechanisms, e.g. checkpoint gradients and
  tree-aggregated differences with their own noise, each listed once per
  release (or once with ``num_steps``).
  """
  if isinstance(events, dp_accounting.DpEvent):
    return events
  if isinstance(events, str | bytes) or not isinstance(events, Sequence):
    raise ValueError(
      '`events` must be a dp_accounting.DpEvent or a non-empty sequence of '
      f'them, got {events!r}'
    )
  events = list(events)
  if not events or not all(
    isinstance(e, dp_accounting.DpEvent) for e in events
  ):
    raise ValueError(
      '`events` must be a dp_accounting.DpEvent or a non-empty sequence of '
      f'them, got {events!r}'
    )
  return dp_accounting.ComposedDpEvent(events)


def epsilon_of_events(
  events: dp_accounting.DpEvent | Sequence[dp_accounting.DpEvent],
  *,
  delta: float,
  accountant: str = 'rdp',
) -> float:
  """ε at ``delta`` of the composition of ``events`` (a list or one event).

  Args:
    events: ``dp_accounting`` events, e.g. from :func:`gaussian_event`;
      they are composed (:func:`compose_events`) and accounted together.
    delta: the δ of (ε, δ)-DP, in ``(0, 1)``.
    accountant: ``'rdp'`` or ``'pld'`` (:func:`make_accountant`).

  Returns:
    ε as a Python float (``inf`` when an event has zero noise).
  """
  checks.check_in('accountant', accountant, ACCOUNTANTS)
  _check_delta(delta)
  event = compose_events(events)
  acc = make_accountant(accountant)
  if not acc.supports(event):
    raise ValueError(
      f'`events` holds an event the {accountant!r} accountant does not '
      f'support (under add/remove one): {event!r}'
    )
  return float(acc.compose(event).get_epsilon(delta))


def epsilon(
  *,
  noise_multiplier: float,
  sampling_rate: float,
  num_steps: int,
  delta: float,
  accountant: str = 'rdp',
) -> float:
  """ε at ``delta`` of ``num_steps`` Poisson-subsampled Gaussian steps.

  The DP-SGD accounting: each step includes every example independently with
  probability ``sampling_rate`` and adds Gaussian noise of std
  ``noise_multiplier`` x sensitivity to the sum of clipped contributions.
  ``sampling_rate=1`` is full-batch noisy gradient descent.

  Args:
    noise_multiplier: noise std / L2 sensitivity, >= 0.
    sampling_rate: Poisson sampling probability, in ``(0, 1]``.
    num_steps: number of steps, an int >= 1.
    delta: the δ of (ε, δ)-DP, in ``(0, 1)``.
    accountant: ``'rdp'`` or ``'pld'``.

  Returns:
    ε (natural log) as a Python float; ``inf`` when ``noise_multiplier=0``.
  """
  checks.check_in('accountant', accountant, ACCOUNTANTS)
  _check_delta(delta)
  event = gaussian_event(
    noise_multiplier, sampling_rate=sampling_rate, num_steps=num_steps
  )
  return float(make_accountant(accountant).compose(event).get_epsilon(delta))


def calibrate_noise(
  target_epsilon: float,
  *,
  sampling_rate: float,
  num_steps: int,
  delta: float,
  accountant: str = 'rdp',
) -> float:
  """The smallest noise multiplier whose :func:`epsilon` is <= the target.

  ``dp_accounting.calibrate_dp_mechanism`` (Brent's method on the
  accountant's ε, with a bisection fallback) over the events of
  :func:`gaussian_event`. Tolerance: the returned noise multiplier is within
  1e-6 (absolute, in noise-multiplier units: ``dp_accounting``'s default
  ``tol``) of the smallest one meeting the target, and
  ``dp_accounting`` guarantees that it meets it: ``epsilon(returned) <=
  target_epsilon``, typically just below (relative gap well under 1e-3).

  Args:
    target_epsilon: the ε to reach, a finite number > 0.
    sampling_rate: Poisson sampling probability, in ``(0, 1]``.
    num_steps: number of steps, an int >= 1.
    delta: the δ of (ε, δ)-DP, in ``(0, 1)``.
    accountant: ``'rdp'`` or ``'pld'`` (PLD is slower: seconds).

  Returns:
    The noise multiplier (noise std / L2 sensitivity) as a Python float.
  """
  checks.check_positive('target_epsilon', target_epsilon)
  checks.check_probability('sampling_rate', sampling_rate)
  checks.check_int('num_steps', num_steps)
  _check_delta(delta)
  checks.check_in('accountant', accountant, ACCOUNTANTS)

  def make_event(noise_multiplier):
    return gaussian_event(
      noise_multiplier, sampling_rate=sampling_rate, num_steps=num_steps
    )

  return float(
    dp_accounting.calibrate_dp_mechanism(
      lambda: make_accountant(accountant),
      make_event,
      float(target_epsilon),
      float(delta),
    )
  )
