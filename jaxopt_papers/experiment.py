"""The one driver: build from a config, train in chunks, checkpoint, report.

Every paper's experiment (``jaxopt_papers/experiments/<id>.py``) calls
:func:`train` for each method it compares, and returns a :class:`Report`;
:func:`run` dispatches a config to its experiment and writes ``report.json``
and ``curves.png`` into the workdir.

:func:`train` runs ``chunk_size`` steps at a time as one jitted
``lax.scan`` and blocks on the result before logging or checkpointing (on a
2-core CPU host, jitted steps with collectives dispatched back to back
deadlock: XLA aborts after 40 s waiting for a rendezvous). With a
``workdir`` it saves ``(state, trace so far)`` with orbax every
``ckpt_every`` steps under ``workdir/checkpoints/<name>`` and, when called
again with the same workdir, resumes from the latest checkpoint: the resumed
run executes the same compiled chunks from the same state, so it equals an
uninterrupted run bit for bit. It also saves once at least
``ckpt_seconds`` (30 s) of wall time passed since the last save, at the end
of a chunk, so an interrupted long run loses little; on Ctrl-C it saves the
last completed chunk when its state is intact, logs "interrupted at step N
of <name>; rerun the same command to resume" and re-raises. Progress lines
(logger ``'jaxopt_papers'``, silent unless a handler is attached) estimate
the time left. Every run's health is recorded for the claims
(:func:`check_run`, :func:`judge`).
"""

import contextlib
import contextvars
import dataclasses
import functools
import json
import logging
import os
import signal
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_papers import papers
from jaxopt_papers.core import solver as solver_lib

# Progress of long runs: the stdlib logger 'jaxopt_papers' (silent unless a
# handler is attached, e.g. by `reproduce.enable_progress`).
log = logging.getLogger('jaxopt_papers')

__all__ = [
  'DIVERGENCE_BOUND',
  'Claim',
  'Curve',
  'Report',
  'RunHealth',
  'append_final',
  'build',
  'check_run',
  'chunking',
  'in_x64',
  'judge',
  'load_report',
  'recording',
  'run',
  'save_report',
  'seed_keys',
  'seeds_needed',
  'train',
  'train_seeds',
  'tree_bytes',
  'verdict',
]


@dataclasses.dataclass
class Claim:
  """One checked statement of a paper, measured by an experiment.

  An experiment computes ``holds`` from its measurements; the driver
  (:func:`run`, through :func:`judge`) then turns it to ``False``, with the
  reason in ``reason``, when a run the claim rests on went non-finite or
  diverged, or when ``ours`` / ``threshold`` / ``baseline`` is not finite.

  Attributes:
    name: Short statement, e.g. ``'frugal loss < galore loss - 0.05'``.
    ours: The paper's method's measured value.
    baseline: The baseline's measured value (``None`` when there is none).
    threshold: The value ``ours`` is compared with.
    holds: Whether the claim held in this run.
    text: How ``holds`` was decided, in words.
    runs: Names of the runs (:func:`train` / :func:`check_run`) the claim
      rests on; ``None`` means every run of the experiment except the ones
      recorded with ``may_diverge=True``.
    about_divergence: The claim is *about* divergence (e.g. "eta = 1
      diverges"): the runs in ``runs`` recorded with ``may_diverge=True``
      may be unhealthy without failing it. Every other run it rests on must
      be healthy.
    swap_exempt: Why the claim is not a comparison with the baseline (an
      identity such as "rho = 0 is FedDyn exactly", or a device-agreement
      check), so it is not expected to fail under the config's ``swap``;
      ``''`` for a comparison, which must fail swapped.
    not_reproduced: What was measured when the paper's claim does not
      reproduce at this scale (the claim is computed as usual and reported
      ``NO``, with this note); ``''`` for a claim expected to hold. Such a
      claim is "as recorded" when it fails: :attr:`Report.holds` and
      ``reproduce --strict`` accept it then, and refuse it if it holds (the
      record is stale: measure again and update the experiment).
    reason: Set by :func:`judge` when it overrides ``holds``.
  """

  name: str
  ours: float
  baseline: float | None
  threshold: float
  holds: bool
  text: str = ''
  runs: tuple[str, ...] | None = None
  about_divergence: bool = False
  swap_exempt: str = ''
  not_reproduced: str = ''
  reason: str = ''

  @property
  def as_recorded(self) -> bool:
    """Holds, or fails as its ``not_reproduced`` record says it does."""
    return self.holds != bool(self.not_reproduced)


# Finite values beyond this magnitude count as a blow-up (a float32 run that
# diverges overflows to inf well before; a float64 one reaches 1e20 only by
# diverging: no trace or state of this library holds such values otherwise).
DIVERGENCE_BOUND = 1e20

# Boolean trace/state fields with these words in their name are divergence
# flags set by the solvers themselves (e.g. FedAvgTrace.nonfinite).
_FLAG_WORDS = ('diverged', 'nonfinite')


@dataclasses.dataclass
class RunHealth:
  """Whether one run (a method or a baseline, all its seeds) stayed sound.

  Attributes:
    name: The run's name (:func:`train`'s ``name``).
    num_seeds: Seeds in the run (1 when it has no seed axis).
    bad_seeds: Seeds that went non-finite, past :data:`DIVERGENCE_BOUND`,
      raised a divergence flag, or met the run's own ``diverged`` test.
    reason: What happened, for the first bad seed.
    may_diverge: The run is a divergence probe (a claim about divergence
      uses it); claims that do not say so never rest on it.
  """

  name: str
  num_seeds: int
  bad_seeds: list[int]
  reason: str = ''
  may_diverge: bool = False

  @property
  def healthy(self) -> bool:
    return not self.bad_seeds


_RUNS: contextvars.ContextVar[list[RunHealth] | None] = contextvars.ContextVar(
  'jaxopt_papers_runs', default=None
)


@contextlib.contextmanager
def recording():
  """Collects the :class:`RunHealth` of every run started inside the block.

  :func:`run` wraps each experiment in it; use it to judge an experiment
  module called directly::

    with experiment.recording() as runs:
      report = module.run(config)
    report = experiment.judge(report, runs)
  """
  token = _RUNS.set([])
  try:
    yield _RUNS.get()
  finally:
    _RUNS.reset(token)


def _path_name(path) -> str:
  return jax.tree_util.keystr(path, simple=True, separator='.') or 'value'


def _inspect(
  tree: Any,
  what: str,
  seed_axis: int | None,
  has_steps: bool,
  bound: float,
  ignore: Sequence[str],
) -> tuple[list[np.ndarray], dict[int, str]]:
  """Per-seed badness of each leaf of ``tree`` and a message per bad seed.

  Returns ``[seeds]`` (or ``[1]``, for leaves without the seed axis) bool
  arrays, and ``{seed: message}`` for the first bad leaf of each seed.
  """
  out, why = [], {}
  for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
    if leaf is None or _is_key(leaf):
      continue
    name = f'{what}.{_path_name(path)}'
    if any(name == i or name.startswith(i + '.') for i in ignore):
      continue
    x = np.asarray(jax.device_get(leaf))
    if x.dtype == bool:
      if not any(w in name.lower() for w in _FLAG_WORDS):
        continue
      bad = x
    elif np.issubdtype(x.dtype, np.inexact):
      with np.errstate(invalid='ignore', over='ignore'):
        bad = ~np.isfinite(x) | (np.abs(x) > bound)
    else:
      continue
    axis = seed_axis if seed_axis is not None and x.ndim > seed_axis else None
    lead = bad[None] if axis is None else np.moveaxis(bad, axis, 0)
    per_seed = np.any(lead.reshape(lead.shape[0], -1), axis=1)
    out.append(per_seed)
    vals = x[None] if axis is None else np.moveaxis(x, axis, 0)
    for s in np.flatnonzero(per_seed):
      if int(s) in why:
        continue
      idx = tuple(np.argwhere(lead[s])[0]) if lead[s].ndim else ()
      v = vals[s][idx]
      where = f' at step {idx[0]}' if has_steps and idx else ''
      if x.dtype == bool:
        desc = 'divergence flag set'
      elif not np.isfinite(v):
        desc = f'{float(v)} is not finite'
      else:
        desc = f'|{float(v):.3g}| exceeds {bound:.0e}'
      why[int(s)] = f'{name}{where}: {desc}'
  return out, why


def check_run(
  name: str,
  trace: Any = None,
  state: Any = None,
  *,
  seeded: bool = False,
  may_diverge: bool = False,
  diverged: Callable[[Any, Any], Any] | None = None,
  ignore: Sequence[str] = (),
  bound: float = DIVERGENCE_BOUND,
) -> RunHealth:
  """Inspects a finished run and records it in the active :func:`recording`.

  A seed is bad when any floating value of ``trace`` or ``state`` is not
  finite or exceeds ``bound`` in magnitude, when a boolean field named
  ``*diverged*`` / ``*nonfinite*`` is set, or when ``diverged(state,
  trace)`` is True for it. :func:`train` calls this for every run; call it
  directly for results computed without :func:`train` (closed forms,
  a solver's ``run``).

  Args:
    name: The run's name, as claims refer to it.
    trace: Trace with leading step axis (``[T, seeds, ...]`` if ``seeded``).
    state: Final state (``[seeds, ...]`` leaves if ``seeded``).
    seeded: Whether the run carries a seed axis (trace axis 1, state axis 0).
    may_diverge: The run is a divergence probe (see :class:`RunHealth`).
    diverged: Optional ``(state, trace) -> bool`` (``[seeds]`` if seeded):
      the experiment's own divergence test, e.g. a loss above its start.
    ignore: Fields that hold sentinels rather than values (``inf`` for "not
      computed yet"), named as in the reasons (``'trace.kkt'``,
      ``'state.residual'``); say why where you pass it.
    bound: Magnitude counted as a blow-up.

  Returns:
    The :class:`RunHealth` (also appended to the active recording).
  """
  t_bad, t_why = _inspect(
    trace, 'trace', 1 if seeded else None, True, bound, ignore
  )
  s_bad, s_why = _inspect(
    state, 'state', 0 if seeded else None, False, bound, ignore
  )
  bad = t_bad + s_bad
  why = {**s_why, **t_why}
  if diverged is not None:
    d = np.atleast_1d(np.asarray(jax.device_get(diverged(state, trace)), bool))
    bad.append(d)
    for s in np.flatnonzero(d):
      why.setdefault(int(s), "the experiment's divergence test")
  num_seeds = max([b.shape[0] for b in bad] + [1])
  per_seed = np.zeros([num_seeds], bool)
  for b in bad:
    per_seed = per_seed | np.broadcast_to(b, per_seed.shape)
  bad_seeds = [int(s) for s in np.flatnonzero(per_seed)]
  reason = ''
  if bad_seeds:
    first = bad_seeds[0]
    seeds = f'seed {first}' if seeded else 'the run'
    more = f' ({len(bad_seeds)} of {num_seeds} seeds bad)' if seeded else ''
    reason = f'{seeds}: {why.get(first, "not finite")}{more}'
  health = RunHealth(name, num_seeds, bad_seeds, reason, may_diverge)
  runs = _RUNS.get()
  if runs is not None:
    runs.append(health)
  return health


def _finite(x: Any) -> bool:
  return isinstance(x, int | float | np.number) and bool(np.isfinite(x))


def judge(report: 'Report', runs: list[RunHealth]) -> 'Report':
  """Applies the rules no claim may break; returns ``report`` updated.

  * A claim rests on the runs it names (``Claim.runs``), or on every run not
    recorded with ``may_diverge=True``. If one of them is unhealthy, the
    claim is ``NO`` with the run, the seed and what happened, unless the
    claim is ``about_divergence`` and that run is a divergence probe.
  * ``ours`` and ``threshold`` must be finite, ``baseline`` finite or
    ``None``.

  Raises:
    ValueError: for mistakes of the experiment itself: no run recorded, a
      claim naming an unknown run, a divergence probe used by a claim that
      is not about divergence, or a probe no claim is about.
  """
  report.runs = list(runs)
  if not runs:
    raise ValueError(
      f'{report.paper}: the experiment recorded no run; train through '
      '`experiment.train` or record results with `experiment.check_run`'
    )
  names = {r.name for r in runs}
  probes = {r.name for r in runs if r.may_diverge}
  used_probes = set()
  for claim in report.claims:
    if claim.about_divergence and claim.runs is None:
      raise ValueError(
        f'{report.paper}: claim {claim.name!r} is about divergence and must '
        'name its runs (`Claim.runs`)'
      )
    if claim.runs is None:
      deps = [r for r in runs if not r.may_diverge]
    else:
      unknown = set(claim.runs) - names
      if unknown:
        raise ValueError(
          f'{report.paper}: claim {claim.name!r} names unknown runs '
          f'{sorted(unknown)}; recorded: {sorted(names)}'
        )
      deps = [r for r in runs if r.name in claim.runs]
    reasons = []
    for r in deps:
      if r.may_diverge:
        if not claim.about_divergence:
          raise ValueError(
            f'{report.paper}: claim {claim.name!r} rests on the divergence '
            f'probe {r.name!r} but does not declare `about_divergence`'
          )
        used_probes.add(r.name)
        continue
      if not r.healthy:
        reasons.append(f'run {r.name!r} {r.reason}')
    for field in ('ours', 'threshold', 'baseline'):
      value = getattr(claim, field)
      if field == 'baseline' and value is None:
        continue
      if not _finite(value):
        reasons.append(f'{field} = {value!r} is not a finite number')
    if reasons:
      claim.holds = False
      claim.reason = '; '.join(reasons)
  unused = probes - used_probes
  if unused:
    raise ValueError(
      f'{report.paper}: runs {sorted(unused)} are recorded with '
      '`may_diverge=True` but no claim about divergence uses them'
    )
  return report


@dataclasses.dataclass
class Curve:
  """One panel of the report's figure: several series over a shared x."""

  x: list[float]
  series: dict[str, list[float]]
  xlabel: str = 'step'
  ylabel: str = ''
  logy: bool = False


@dataclasses.dataclass
class Report:
  """What an experiment returns: claims, a metrics table and curves."""

  paper: str
  preset: str
  claims: list[Claim]
  metrics: dict[str, dict[str, float]]
  curves: dict[str, Curve] = dataclasses.field(default_factory=dict)
  notes: str = ''
  seconds: float = 0.0
  runs: list['RunHealth'] = dataclasses.field(default_factory=list)
  swapped: bool = False

  @property
  def holds(self) -> bool:
    """Every claim holds, or fails as recorded (``Claim.not_reproduced``)."""
    return all(c.as_recorded for c in self.claims)

  def to_dict(self) -> dict[str, Any]:
    return _jsonable(dataclasses.asdict(self))

  @classmethod
  def from_dict(cls, d: Mapping[str, Any]) -> 'Report':
    d = dict(d)
    claims = []
    for c in d['claims']:
      c = dict(c)
      for k in ('ours', 'baseline', 'threshold'):
        if c.get(k) is not None:
          c[k] = float(c[k])
      if c.get('runs') is not None:
        c['runs'] = tuple(c['runs'])
      claims.append(Claim(**c))
    d['claims'] = claims
    d['curves'] = {k: Curve(**c) for k, c in d.get('curves', {}).items()}
    d['runs'] = [RunHealth(**r) for r in d.get('runs', [])]
    return cls(**d)


def _jsonable(x: Any) -> Any:
  if isinstance(x, dict):
    return {str(k): _jsonable(v) for k, v in x.items()}
  if isinstance(x, list | tuple):
    return [_jsonable(v) for v in x]
  if isinstance(x, np.ndarray | jax.Array):
    return _jsonable(np.asarray(x).tolist())
  if isinstance(x, np.generic):
    return x.item()
  if isinstance(x, float) and not np.isfinite(x):
    return str(x)  # JSON has no nan/inf; keep them readable
  return x


def build(config, **overrides: Any) -> Any:
  """``papers.get(config.paper)(**config.algo, **overrides)``.

  A ``ValueError`` of the constructor names the config path
  (```algo.lam```), so a bad ``--config.algo.lam`` reads as such.
  """
  kwargs = dict(config.algo)
  kwargs.update(overrides)
  try:
    return papers.get(config.paper)(**kwargs)
  except ValueError as e:
    message = str(e)
    for key in config.algo:
      if key not in overrides:
        message = message.replace(f'`{key}`', f'`algo.{key}`')
    raise ValueError(message) from e


def tree_bytes(tree: Any) -> int:
  """Bytes of every array in ``tree`` (typed PRNG keys as their key data).

  The memory figure the reports use for optimizer states.
  """
  total = 0
  for x in jax.tree.leaves(tree):
    if _is_key(x):
      x = jax.random.key_data(x)
    total += x.size * jnp.dtype(x.dtype).itemsize
  return int(total)


def seeds_needed(fraction: float, num_seeds: int) -> int:
  """The least seed count that is at least ``fraction`` of ``num_seeds``.

  Seed-count thresholds are fractions in the configs, so ``num_seeds`` can
  change from the command line (``0.9`` of 3 seeds is 3, of 10 is 9).
  """
  if not 0.0 <= fraction <= 1.0:
    raise ValueError(f'`fraction` must be in [0, 1], got {fraction!r}')
  return int(np.ceil(fraction * num_seeds - 1e-9))


def seed_keys(config) -> tuple[jax.Array, jax.Array]:
  """``(problem_keys, run_keys)``, one of each per seed of ``config``.

  ``problem_keys = split(key(config.seed), config.num_seeds)`` draw each
  seed's problem; ``run_keys[i] = fold_in(problem_keys[i], 1)`` drive its
  runs, so every method of a seed sees the same problem and the same
  draws (participation, noise, minibatches).
  """
  keys = jax.random.split(jax.random.key(config.seed), config.num_seeds)
  return keys, jax.vmap(lambda k: jax.random.fold_in(k, 1))(keys)


def chunking(config, workdir: str | None) -> dict[str, Any]:
  """:func:`train`'s ``chunk_size``, ``ckpt_every`` and ``workdir``.

  From ``config.log_every`` and ``config.ckpt_every``: pass as
  ``train(..., **experiment.chunking(config, workdir))``.

  Chunks stay ``log_every`` steps even when ``ckpt_every`` is large: the
  wall-time checkpoints (:func:`train`'s ``ckpt_seconds``) happen at chunk
  ends, and every config's ``log_every`` chunk takes seconds, well under
  the 30 s period, so a run interrupted after its first chunk loses at most
  about ``ckpt_seconds`` plus one chunk. Smaller chunks would not help
  further: they add a host round trip per chunk, and the chunk size must
  not depend on timing, since a resumed run equals an uninterrupted one bit
  for bit only when both run the same compiled chunks.
  """
  return dict(
    chunk_size=config.log_every, ckpt_every=config.ckpt_every, workdir=workdir
  )


def in_x64(run_fn: Callable[..., 'Report']) -> Callable[..., 'Report']:
  """Runs an experiment's ``run(config, workdir)`` with float64 enabled."""

  @functools.wraps(run_fn)
  def wrapped(*args: Any, **kwargs: Any) -> 'Report':
    with jax.enable_x64(True):
      return run_fn(*args, **kwargs)

  return wrapped


# ----------------------------------------------------------------- training


def _is_key(x: Any) -> bool:
  return isinstance(x, jax.Array) and jnp.issubdtype(
    x.dtype, jax.dtypes.prng_key
  )


def _to_saveable(tree: Any) -> Any:
  return jax.tree.map(
    lambda x: jax.random.key_data(x) if _is_key(x) else x, tree
  )


def _from_saved(saved: Any, template: Any) -> Any:
  def restore(s, t):
    if _is_key(t):
      return jax.random.wrap_key_data(s, impl=jax.random.key_impl(t))
    return s

  return jax.tree.map(restore, saved, template)


def _abstract(tree: Any) -> Any:
  def spec(x):
    x = jnp.asarray(x) if not isinstance(x, jax.Array) else x
    return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding)

  return jax.tree.map(spec, tree)


def _wrap_leaf(tree: Any) -> Any:
  """A bare array or scalar as ``{'state': x}`` (orbax saves only trees)."""
  if jax.tree_util.treedef_is_leaf(jax.tree.structure(tree)):
    return {'state': tree}
  return tree


def _unwrap_leaf(saved: Any, template: Any) -> Any:
  """Inverse of :func:`_wrap_leaf`, given the tree ``template``."""
  if jax.tree_util.treedef_is_leaf(jax.tree.structure(template)):
    return saved['state']
  return saved


_LOST_INTERRUPT = threading.Event()


@contextlib.contextmanager
def keeping_lost_interrupts():
  """Keeps a Ctrl-C that Python could not raise where it landed.

  A SIGINT handled while the interpreter runs a callback that cannot
  propagate exceptions (a garbage-collection callback of XLA, a
  ``__del__``) is printed as "Exception ignored in ..." with a traceback,
  and the interrupt is lost. Inside this context such an interrupt prints
  nothing; :func:`train` raises it at its next chunk end (and
  :func:`raise_lost_interrupt` wherever a caller checks), so one Ctrl-C
  always stops the run with the resume hint. In the main thread the SIGINT
  handler also records each Ctrl-C before raising it, so one that a
  library swallows (an ``except BaseException`` around a callback) is
  raised again at the next check as well.
  """
  previous = sys.unraisablehook

  def hook(unraisable):
    if isinstance(unraisable.exc_value, KeyboardInterrupt):
      _LOST_INTERRUPT.set()
    else:
      previous(unraisable)

  def on_sigint(signum, frame):
    _LOST_INTERRUPT.set()
    signal.default_int_handler(signum, frame)

  main = threading.current_thread() is threading.main_thread()
  default = signal.getsignal(signal.SIGINT) is signal.default_int_handler
  _LOST_INTERRUPT.clear()
  sys.unraisablehook = hook
  if main and default:
    signal.signal(signal.SIGINT, on_sigint)
  try:
    yield
  finally:
    sys.unraisablehook = previous
    if main and default:
      signal.signal(signal.SIGINT, signal.default_int_handler)
    _LOST_INTERRUPT.clear()


def raise_lost_interrupt() -> None:
  """Raises ``KeyboardInterrupt`` if :func:`keeping_lost_interrupts` kept it."""
  if _LOST_INTERRUPT.is_set():
    _LOST_INTERRUPT.clear()
    raise KeyboardInterrupt


def _chunk_runner(step_fn, num_steps):
  def chunk(state, data):
    return solver_lib.run_scan(step_fn, state, data, num_steps=num_steps)

  return jax.jit(chunk, donate_argnums=0)


class _Checkpoints:
  """Orbax checkpoints of ``(state, trace so far)`` for one named run."""

  def __init__(self, directory: str):
    import orbax.checkpoint as ocp  # heavy import, only when checkpointing

    self._ocp = ocp
    self.directory = os.path.abspath(directory)
    self._mngr = ocp.CheckpointManager(
      self.directory,
      options=ocp.CheckpointManagerOptions(max_to_keep=1, create=True),
    )

  def latest_step(self) -> int | None:
    return self._mngr.latest_step()

  def save(self, step: int, state: Any, trace_leaves: list[np.ndarray]):
    ocp = self._ocp
    self._mngr.save(
      step,
      args=ocp.args.Composite(
        state=ocp.args.StandardSave(_wrap_leaf(_to_saveable(state))),
        trace=ocp.args.StandardSave(
          {str(i): x for i, x in enumerate(trace_leaves)}
        ),
      ),
    )
    self._mngr.wait_until_finished()

  def restore(self, step: int, template: Any) -> tuple[Any, list[np.ndarray]]:
    ocp = self._ocp
    out = self._mngr.restore(
      step,
      args=ocp.args.Composite(
        state=ocp.args.StandardRestore(
          _abstract(_wrap_leaf(_to_saveable(template)))
        ),
        trace=ocp.args.StandardRestore(),
      ),
    )
    trace = out['trace']
    leaves = [np.asarray(trace[str(i)]) for i in range(len(trace))]
    saved = _unwrap_leaf(out['state'], template)
    return _from_saved(saved, template), leaves

  def close(self):
    self._mngr.close()


def _summary(
  row_leaves: list[np.ndarray], names: list[str]
) -> dict[str, float]:
  out = {}
  for name, x in zip(names, row_leaves, strict=True):
    x = np.asarray(x, np.float64)
    if x.size:
      out[name] = float(np.nanmean(x))
  return out


def train_seeds(
  solver: Any,
  params: Any,
  keys: jax.Array,
  data: Any = None,
  *,
  data_axis: int | None = 0,
  **train_kwargs: Any,
) -> tuple[Any, Any]:
  """:func:`train` of ``solver`` for every seed at once (``vmap``).

  ``params`` and ``keys`` have a leading seed axis, as does ``data`` unless
  ``data_axis`` is ``None`` (one problem shared by the seeds);
  ``train_kwargs`` are :func:`train`'s. Returns its ``(state, trace)`` with
  the seed axis after the step axis in the trace; its health is recorded
  per seed.
  """
  state = jax.vmap(solver.init)(params, keys)
  step = jax.vmap(solver.step, in_axes=(0, data_axis))
  return train(step, state, data, seeded=True, **train_kwargs)


def append_final(history: Any, final: Any) -> np.ndarray:
  """``[T + 1, ...]``: a trace field over ``T`` steps, then the final value.

  With the trace convention (row ``t`` describes the state step ``t``
  starts from) this is the value at every state ``0 .. T``.
  """
  return np.concatenate([np.asarray(history), np.asarray(final)[None]], axis=0)


def train(
  step_fn: Callable[[Any, Any], tuple[Any, Any]],
  state: Any,
  data: Any = None,
  *,
  num_steps: int,
  chunk_size: int = 100,
  workdir: str | None = None,
  ckpt_every: int | None = None,
  name: str = 'run',
  callback: Callable[[int, dict[str, float]], None] | None = None,
  seeded: bool = False,
  may_diverge: bool = False,
  diverged: Callable[[Any, Any], Any] | None = None,
  ignore: Sequence[str] = (),
  ckpt_seconds: float | None = 30.0,
  clock: Callable[[], float] = time.monotonic,
) -> tuple[Any, Any]:
  """Runs ``num_steps`` steps of ``step_fn`` in jitted chunks.

  The finished run's health (finite, bounded, no divergence flag; see
  :func:`check_run`) is recorded under ``name`` for the claims.

  Args:
    step_fn: Pure ``(state, data) -> (state, trace_row)``, e.g. a solver's
      ``step`` or ``jax.vmap(solver.step, in_axes=(0, None))`` for seeds.
    state: Initial state (not modified; the driver works on a copy).
    data: The problem, the same for every step.
    num_steps: Total number of steps.
    chunk_size: Steps per jitted ``lax.scan`` (the last chunk may be shorter).
    workdir: Where checkpoints go (``workdir/checkpoints/<name>``); ``None``
      disables checkpointing and resuming. Any pytree state checkpoints
      (a bare array is saved as ``{'state': x}``). A checkpoint of a longer
      run (a step after ``num_steps``) is refused, not truncated.
    ckpt_every: Checkpoint period in steps, a multiple of ``chunk_size``;
      defaults to ``chunk_size``. The final state is always saved, so a
      finished run is restored instead of recomputed.
    name: Name of the run (one per method and setting inside an experiment).
    callback: Called after every chunk with ``(step, metrics)`` where the
      metrics are the trace fields of the chunk's last row (averaged over
      any extra axes, e.g. seeds). Raising from it interrupts the run.
    seeded: ``step_fn`` is vmapped over seeds (state leaves ``[seeds,
      ...]``): health is judged per seed.
    may_diverge: The run is a divergence probe (:class:`RunHealth`).
    diverged: The experiment's own divergence test (:func:`check_run`).
    ignore: Sentinel fields not judged (:func:`check_run`).
    ckpt_seconds: With a ``workdir``, also save at the end of the first
      chunk that finishes at least this many seconds (of ``clock``) after
      the last save (or the start of the call), so a run with a long
      ``ckpt_every`` loses little when interrupted; ``None`` saves by
      steps only. Saves happen only at chunk ends.
    clock: Seconds, monotonic (``time.monotonic``); for tests.

  Returns:
    ``(final_state, trace)``: the trace as NumPy arrays with a leading axis
    of length ``num_steps``.

  Raises:
    ValueError: on ``num_steps``, ``chunk_size`` or ``ckpt_every`` < 1 (or
      ``ckpt_every`` not a multiple of ``chunk_size``), or when ``workdir``
      holds this run's checkpoint at a step after ``num_steps``.
    KeyboardInterrupt: re-raised after logging "interrupted at step N of
      <name>; rerun the same command to resume" (``N``: the last saved
      step, 0 if none; also set as the exception's ``step`` attribute, and
      ``name`` as its ``run``). The last completed chunk is saved first
      when its state was not yet donated to the next chunk.
  """
  if num_steps < 1:
    raise ValueError(f'`num_steps` must be >= 1, got {num_steps}')
  if chunk_size < 1:
    raise ValueError(f'`chunk_size` must be >= 1, got {chunk_size}')
  ckpt_every = chunk_size if ckpt_every is None else ckpt_every
  if ckpt_every < 1 or ckpt_every % chunk_size:
    raise ValueError(
      f'`ckpt_every` ({ckpt_every}) must be a positive multiple of '
      f'`chunk_size` ({chunk_size})'
    )
  _, row_shape = jax.eval_shape(step_fn, state, data)
  row_leaves, treedef = jax.tree.flatten(row_shape)
  names = _leaf_names(row_shape)
  shown_names = _shown_names(names)

  ckpt = None
  step = 0
  chunks: list[list[np.ndarray]] = []
  state = jax.tree.map(lambda x: jnp.array(x, copy=True), state)
  if workdir is not None:
    ckpt = _Checkpoints(os.path.join(workdir, 'checkpoints', name))
    latest = ckpt.latest_step()
    if latest is not None and latest > num_steps:
      ckpt.close()
      raise ValueError(
        f'`num_steps` is {num_steps} but {ckpt.directory} holds a '
        f'checkpoint at step {latest} (a longer run): use another '
        f'`workdir` or `name`, or num_steps >= {latest}'
      )
    if latest is not None:
      state, leaves = ckpt.restore(latest, state)
      step = latest
      chunks.append(leaves)
      log.info('%s: resumed from step %d', name, step)

  saved = step if ckpt is not None and step else None
  # The last completed chunk: (step, state, number of trace chunks).
  done = (step, state, len(chunks))
  last_save = clock()
  timed_steps, timed_seconds = 0, 0.0  # chunks that compiled nothing
  runners: dict[int, Callable[..., Any]] = {}

  def save(at, at_state, at_chunks):
    nonlocal saved, last_save
    ckpt.save(
      at, at_state, [np.concatenate(c) for c in zip(*at_chunks, strict=True)]
    )
    saved, last_save = at, clock()

  try:
    while step < num_steps:
      n = min(chunk_size, num_steps - step)
      compiled = n in runners
      if not compiled:
        runners[n] = _chunk_runner(step_fn, n)
      start = clock()
      state, rows = runners[n](state, data)
      rows = jax.block_until_ready(rows)
      leaves = [np.asarray(jax.device_get(x)) for x in jax.tree.leaves(rows)]
      chunks.append(leaves)
      step += n
      done = (step, state, len(chunks))
      if compiled:
        timed_steps += n
        timed_seconds += clock() - start
      metrics = _summary([x[-1] for x in leaves], names)
      # A vector per run (a model, per-coordinate outputs) has no meaningful
      # mean: the line shows scalars per run (averaged over seeds) only.
      per_run = 1 if seeded else 0
      scalar = {
        k for k, x in zip(names, leaves, strict=True) if x[-1].ndim <= per_run
      }
      shown = ' '.join(
        f'{shown_names[k]}={v:.4g}' for k, v in metrics.items() if k in scalar
      )
      if seeded and scalar:
        shown += ' (mean over seeds)'
      if timed_steps and step < num_steps:
        left = timed_seconds / timed_steps * (num_steps - step)
        shown += f' ~{_duration(left)} left'
      log.info('%s: step %d/%d %s', name, step, num_steps, shown)
      if ckpt is not None and (
        step % ckpt_every == 0
        or step == num_steps
        or _time_to_save(ckpt_seconds, clock() - last_save)
      ):
        save(step, state, chunks)
      if callback is not None:
        callback(step, metrics)
      raise_lost_interrupt()
  except KeyboardInterrupt as e:
    at, at_state, at_len = done
    intact = not any(
      isinstance(x, jax.Array) and x.is_deleted()
      for x in jax.tree.leaves(at_state)
    )
    # One process's Ctrl-C: a save (collective across processes) would hang.
    single = jax.process_count() == 1
    if ckpt is not None and at and at != saved and intact and single:
      try:
        save(at, at_state, chunks[:at_len])
      except Exception as err:  # noqa: BLE001 - keep the interrupt
        log.info('%s: could not save step %d on interrupt: %s', name, at, err)
    e.step, e.run = saved or 0, name
    log.info(
      'interrupted at step %d of %s; rerun the same command to resume',
      saved or 0,
      name,
    )
    raise
  finally:
    if ckpt is not None:
      ckpt.close()
  if not row_leaves:
    trace = jax.tree.unflatten(treedef, [])
  else:
    leaves = [np.concatenate(c)[:num_steps] for c in zip(*chunks, strict=True)]
    trace = jax.tree.unflatten(treedef, leaves)
  check_run(
    name,
    trace,
    state,
    seeded=seeded,
    may_diverge=may_diverge,
    diverged=diverged,
    ignore=ignore,
  )
  return state, trace


def _time_to_save(ckpt_seconds: float | None, elapsed: float) -> bool:
  """Whether the wall-time period is due; process 0 decides for all."""
  if ckpt_seconds is None:
    return False
  due = elapsed >= ckpt_seconds
  if jax.process_count() > 1:  # orbax saves are collective: agree
    from jax.experimental import multihost_utils

    due = bool(multihost_utils.broadcast_one_to_all(np.asarray(due)))
  return due


def _shown_names(names: list[str]) -> dict[str, str]:
  """Log names: a trace field ``metrics`` (evaluation metrics) by content.

  ``metrics.test_acc`` is shown as ``test_acc`` (unless another field has
  that name) and a bare ``metrics`` array as ``metric``.
  """
  out = {}
  for n in names:
    short = n
    if n == 'metrics':
      short = 'metric'
    elif n.startswith('metrics.'):
      short = n[len('metrics.') :]
    out[n] = n if short != n and short in names else short
  return out


def _duration(seconds: float) -> str:
  """``'45s'``, ``'12m'`` or ``'2.5h'``."""
  if seconds < 90:
    return f'{seconds:.0f}s'
  if seconds < 90 * 60:
    return f'{seconds / 60:.0f}m'
  return f'{seconds / 3600:.1f}h'


def _leaf_names(tree: Any) -> list[str]:
  paths = jax.tree_util.tree_leaves_with_path(tree)
  return [jax.tree_util.keystr(p, simple=True, separator='.') for p, _ in paths]


# ------------------------------------------------------------------ reports


def save_report(report: Report, directory: str) -> str:
  """Writes ``report.json`` and ``curves.png`` into ``directory``."""
  os.makedirs(directory, exist_ok=True)
  path = os.path.join(directory, 'report.json')
  with open(path, 'w') as f:
    json.dump(report.to_dict(), f, indent=2)
  if report.curves:
    plot_report(report, os.path.join(directory, 'curves.png'))
  return path


def load_report(path: str) -> Report:
  with open(path) as f:
    return Report.from_dict(json.load(f))


def verdict(report: Report) -> str:
  """One phrase: whether the claims hold (or fail as recorded)."""
  if not report.holds:
    return 'a claim FAILED'
  negative = sum(bool(c.not_reproduced) for c in report.claims)
  if negative:
    return f'claims as recorded ({negative} not reproduced at this scale)'
  return 'all claims hold'


def plot_report(report: Report, path: str | None = None) -> None:
  """One panel per curve: saved as a PNG at ``path``, or shown (notebooks).

  Saving builds a ``matplotlib.figure.Figure`` directly (no pyplot state,
  no display needed); ``path=None`` draws with pyplot and calls ``show``.
  """
  n = len(report.curves)
  size = (5 * n, 3.6)
  if path is None:
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=size)
  else:
    from matplotlib.figure import Figure

    fig = Figure(figsize=size)
  axes = fig.subplots(1, n, squeeze=False)
  for ax, (title, c) in zip(axes[0], report.curves.items(), strict=True):
    for label, ys in c.series.items():
      ax.plot(c.x[: len(ys)], ys, label=label)
    if c.logy:
      ax.set_yscale('log')
    ax.set(title=textwrap.fill(title, 48), xlabel=c.xlabel, ylabel=c.ylabel)
    ax.legend(fontsize='small')
  holds = verdict(report)
  fig.suptitle(f'{report.paper} ({report.preset}): {holds}')
  fig.tight_layout()
  if path is None:
    plt.show()
  else:
    fig.savefig(path, dpi=100)


def run(config, workdir: str | None = None) -> Report:
  """Runs ``config.paper``'s experiment; writes its report into ``workdir``.

  Every run the experiment trains is recorded, and :func:`judge` fails any
  claim that rests on a run that went non-finite or diverged.

  Args:
    config: A ``get_config(preset)`` ConfigDict (has ``paper`` and
      ``preset``; ``swapped`` when :func:`configs.common.apply_swap` made
      it).
    workdir: Output directory (checkpoints, ``report.json``, ``curves.png``);
      ``None`` runs without writing anything.
  """
  module = papers.load_experiment(config.paper)
  start = time.perf_counter()
  with recording() as runs:
    report = module.run(config, workdir)
  report = judge(report, runs)
  report.swapped = bool(config.get('swapped', False))
  report.seconds = time.perf_counter() - start
  if workdir is not None and jax.process_index() == 0:
    save_report(report, workdir)
  return report
