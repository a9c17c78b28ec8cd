"""The one driver: build from a config, train in chunks, checkpoint, report.

Every paper's experiment (``jaxopt_papers/experiments/<id>.py``) calls
:func:`train` for each method it compares, and returns a :class:`Report`;
:func:`run` dispatches a config to its experiment and writes ``report.json``
and ``curves.png`` into the workdir.

:func:`train` runs ``chunk_size`` steps at a time as one jitted
``lax.scan`` and blocks on the result before logging or checkpointing (back to
back dispatch of steps with collectives deadlocks on small CPU hosts; see
JAX_NOTES.md). With a ``workdir`` it saves ``(state, trace so far)`` with orbax
every ``ckpt_every`` steps under ``workdir/checkpoints/<name>`` and, when
called again with the same workdir, resumes from the latest checkpoint: the
resumed run executes the same compiled chunks from the same state, so it
equals an uninterrupted run bit for bit.
"""

import dataclasses
import json
import logging
import os
import time
from collections.abc import Callable, Mapping
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
  'Claim',
  'Curve',
  'Report',
  'append_final',
  'build',
  'load_report',
  'run',
  'save_report',
  'train',
  'train_seeds',
  'tree_bytes',
]


@dataclasses.dataclass
class Claim:
  """One checked statement of a paper, measured by an experiment.

  Attributes:
    name: Short statement, e.g. ``'frugal loss < galore loss - 0.05'``.
    ours: The paper's method's measured value.
    baseline: The baseline's measured value (``nan`` when there is none).
    threshold: The value ``ours`` is compared with.
    holds: Whether the claim held in this run.
    text: How ``holds`` was decided, in words.
  """

  name: str
  ours: float
  baseline: float
  threshold: float
  holds: bool
  text: str = ''


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

  @property
  def holds(self) -> bool:
    return all(c.holds for c in self.claims)

  def to_dict(self) -> dict[str, Any]:
    return _jsonable(dataclasses.asdict(self))

  @classmethod
  def from_dict(cls, d: Mapping[str, Any]) -> 'Report':
    d = dict(d)
    numeric = ('ours', 'baseline', 'threshold')
    d['claims'] = [
      Claim(**{k: float(v) if k in numeric else v for k, v in c.items()})
      for c in d['claims']
    ]
    d['curves'] = {k: Curve(**c) for k, c in d.get('curves', {}).items()}
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
  """``papers.get(config.paper)(**config.algo, **overrides)``."""
  kwargs = dict(config.algo)
  kwargs.update(overrides)
  return papers.get(config.paper)(**kwargs)


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


def _chunk_runner(step_fn, num_steps):
  def chunk(state, data):
    return solver_lib.run_scan(step_fn, state, data, num_steps=num_steps)

  return jax.jit(chunk, donate_argnums=0)


class _Checkpoints:
  """Orbax checkpoints of ``(state, trace so far)`` for one named run."""

  def __init__(self, directory: str):
    import orbax.checkpoint as ocp  # heavy import, only when checkpointing

    self._ocp = ocp
    self._mngr = ocp.CheckpointManager(
      os.path.abspath(directory),
      options=ocp.CheckpointManagerOptions(max_to_keep=1, create=True),
    )

  def latest_step(self) -> int | None:
    return self._mngr.latest_step()

  def save(self, step: int, state: Any, trace_leaves: list[np.ndarray]):
    ocp = self._ocp
    self._mngr.save(
      step,
      args=ocp.args.Composite(
        state=ocp.args.StandardSave(_to_saveable(state)),
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
        state=ocp.args.StandardRestore(_abstract(_to_saveable(template))),
        trace=ocp.args.StandardRestore(),
      ),
    )
    trace = out['trace']
    leaves = [np.asarray(trace[str(i)]) for i in range(len(trace))]
    return _from_saved(out['state'], template), leaves

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
  the seed axis after the step axis in the trace.
  """
  state = jax.vmap(solver.init)(params, keys)
  step = jax.vmap(solver.step, in_axes=(0, data_axis))
  return train(step, state, data, **train_kwargs)


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
) -> tuple[Any, Any]:
  """Runs ``num_steps`` steps of ``step_fn`` in jitted chunks.

  Args:
    step_fn: Pure ``(state, data) -> (state, trace_row)``, e.g. a solver's
      ``step`` or ``jax.vmap(solver.step, in_axes=(0, None))`` for seeds.
    state: Initial state (not modified; the driver works on a copy).
    data: The problem, the same for every step.
    num_steps: Total number of steps.
    chunk_size: Steps per jitted ``lax.scan`` (the last chunk may be shorter).
    workdir: Where checkpoints go (``workdir/checkpoints/<name>``); ``None``
      disables checkpointing and resuming.
    ckpt_every: Checkpoint period in steps, a multiple of ``chunk_size``;
      defaults to ``chunk_size``. The final state is always saved, so a
      finished run is restored instead of recomputed.
    name: Name of the run (one per method and setting inside an experiment).
    callback: Called after every chunk with ``(step, metrics)`` where the
      metrics are the trace fields of the chunk's last row (averaged over
      any extra axes, e.g. seeds). Raising from it interrupts the run.

  Returns:
    ``(final_state, trace)``: the trace as NumPy arrays with a leading axis
    of length ``num_steps``.
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

  ckpt = None
  step = 0
  chunks: list[list[np.ndarray]] = []
  state = jax.tree.map(lambda x: jnp.array(x, copy=True), state)
  if workdir is not None:
    ckpt = _Checkpoints(os.path.join(workdir, 'checkpoints', name))
    latest = ckpt.latest_step()
    if latest is not None:
      state, leaves = ckpt.restore(latest, state)
      step = latest
      chunks.append(leaves)
      log.info('%s: resumed from step %d', name, step)

  runners: dict[int, Callable[..., Any]] = {}
  try:
    while step < num_steps:
      n = min(chunk_size, num_steps - step)
      if n not in runners:
        runners[n] = _chunk_runner(step_fn, n)
      state, rows = runners[n](state, data)
      rows = jax.block_until_ready(rows)
      leaves = [np.asarray(jax.device_get(x)) for x in jax.tree.leaves(rows)]
      chunks.append(leaves)
      step += n
      metrics = _summary([x[-1] for x in leaves], names)
      shown = ' '.join(f'{k}={v:.4g}' for k, v in metrics.items())
      log.info('%s: step %d/%d %s', name, step, num_steps, shown)
      if ckpt is not None and (step % ckpt_every == 0 or step == num_steps):
        ckpt.save(
          step, state, [np.concatenate(c) for c in zip(*chunks, strict=True)]
        )
      if callback is not None:
        callback(step, metrics)
  finally:
    if ckpt is not None:
      ckpt.close()
  if not row_leaves:
    return state, jax.tree.unflatten(treedef, [])
  trace = [np.concatenate(c)[:num_steps] for c in zip(*chunks, strict=True)]
  return state, jax.tree.unflatten(treedef, trace)


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


def plot_report(report: Report, path: str) -> None:
  """One panel per curve; saved as a PNG (Agg backend, no display needed)."""
  import matplotlib

  matplotlib.use('Agg')
  import matplotlib.pyplot as plt

  n = len(report.curves)
  fig, axes = plt.subplots(1, n, figsize=(5 * n, 3.6), squeeze=False)
  for ax, (title, c) in zip(axes[0], report.curves.items(), strict=True):
    for label, ys in c.series.items():
      ax.plot(c.x[: len(ys)], ys, label=label)
    if c.logy:
      ax.set_yscale('log')
    ax.set(title=title, xlabel=c.xlabel, ylabel=c.ylabel)
    ax.legend(fontsize='small')
  holds = 'all claims hold' if report.holds else 'a claim FAILED'
  fig.suptitle(f'{report.paper} ({report.preset}): {holds}')
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def run(config, workdir: str | None = None) -> Report:
  """Runs ``config.paper``'s experiment; writes its report into ``workdir``.

  Args:
    config: A ``get_config(preset)`` ConfigDict (has ``paper`` and
      ``preset``).
    workdir: Output directory (checkpoints, ``report.json``, ``curves.png``);
      ``None`` runs without writing anything.
  """
  module = papers.load_experiment(config.paper)
  start = time.perf_counter()
  report = module.run(config, workdir)
  report.seconds = time.perf_counter() - start
  if workdir is not None and jax.process_index() == 0:
    save_report(report, workdir)
  return report
