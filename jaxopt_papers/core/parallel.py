"""Write per-client code once; run it with ``vmap`` or ``shard_map``.

Papers with a natural worker, client or particle axis write the per-member
function once and map it with :func:`client_map`:

* ``mesh=None``: ``jax.vmap(fn, axis_name=axis_name)`` on the default device;
* ``mesh`` given: ``jax.shard_map`` over the mesh axis ``axis_name``, with the
  members that land on one device mapped by an inner ``jax.vmap``.

Collectives inside ``fn`` go through the functions of this module
(:func:`psum`, :func:`pmean`, :func:`pmax`, :func:`pmin`, :func:`all_gather`,
:func:`axis_index`, :func:`axis_size`) rather than ``jax.lax`` directly. Under
``vmap`` they are the ``jax.lax`` collectives over ``axis_name``; under
``shard_map`` they reduce over the members of one device (the inner ``vmap``
axis, named ``axis_name + LOCAL_SUFFIX``) and then across devices, so the same
code gives the same answer, up to floating-point summation order, on one
device and on many.

Inputs are placed on the mesh (``jax.device_put`` with a ``NamedSharding``)
before the ``shard_map``: since jax 0.10, ``jax.make_mesh`` builds meshes with
``AxisType.Explicit`` axes, and ``shard_map`` refuses inputs whose sharding does
not match ``in_specs``. The inner ``shard_map`` runs with ``check_vma=False``:
the two-level collectives above are not expressible in the varying-axes type
system (jax raises inside the ``psum`` batching rule), and every collective in
per-member code goes through this module, which keeps the semantics explicit.
"""

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

LOCAL_SUFFIX = '_local'

__all__ = [
  'LOCAL_SUFFIX',
  'all_gather',
  'axis_index',
  'axis_size',
  'client_map',
  'make_mesh',
  'place',
  'pmax',
  'pmean',
  'pmin',
  'psum',
]


def make_mesh(
  num_devices: int | None = None,
  axis_name: str = 'clients',
  *,
  devices: Sequence[jax.Device] | None = None,
) -> Mesh:
  """Returns a 1-D mesh over the first ``num_devices`` devices.

  Args:
    num_devices: Number of devices; ``None`` takes all of ``devices``.
    axis_name: Name of the mesh axis (``'clients'``, ``'particles'``, ...).
    devices: Devices to use; defaults to ``jax.devices()`` (all processes).

  Raises:
    ValueError: if ``num_devices`` is not in ``[1, len(devices)]``.
  """
  devices = list(jax.devices() if devices is None else devices)
  n = len(devices) if num_devices is None else num_devices
  if not 1 <= n <= len(devices):
    raise ValueError(
      f'`num_devices` must be in [1, {len(devices)}], got {num_devices!r}'
    )
  return jax.make_mesh((n,), (axis_name,), devices=devices[:n])


def place(tree: Any, mesh: Mesh, spec: P) -> Any:
  """Puts each leaf of ``tree`` on ``NamedSharding(mesh, spec)``.

  Works eagerly and inside ``jit`` (where it acts as a resharding).
  """
  sharding = NamedSharding(mesh, spec)
  return jax.tree.map(lambda x: jax.device_put(x, sharding), tree)


def _local(axis_name: str) -> str:
  return axis_name + LOCAL_SUFFIX


def _is_bound(axis_name: str) -> bool:
  try:
    jax.lax.axis_size(axis_name)
  except NameError:
    return False
  return True


def _axes(axis_name: str) -> tuple[str, ...]:
  """The axes to reduce over, innermost first."""
  local = _local(axis_name)
  return (local, axis_name) if _is_bound(local) else (axis_name,)


def psum(x: Any, axis_name: str) -> Any:
  """Sum over all members of the ``axis_name`` axis (see module docstring)."""
  for name in _axes(axis_name):
    x = jax.lax.psum(x, name)
  return x


def pmax(x: Any, axis_name: str) -> Any:
  """Max over all members of the ``axis_name`` axis."""
  for name in _axes(axis_name):
    x = jax.lax.pmax(x, name)
  return x


def pmin(x: Any, axis_name: str) -> Any:
  """Min over all members of the ``axis_name`` axis."""
  for name in _axes(axis_name):
    x = jax.lax.pmin(x, name)
  return x


def axis_size(axis_name: str) -> int:
  """Total number of members of the ``axis_name`` axis."""
  size = 1
  for name in _axes(axis_name):
    size *= jax.lax.axis_size(name)
  return size


def pmean(x: Any, axis_name: str) -> Any:
  """Mean over all members of the ``axis_name`` axis."""
  n = axis_size(axis_name)
  return jax.tree.map(lambda v: v / n, psum(x, axis_name))


def axis_index(axis_name: str) -> jax.Array:
  """Global index of this member along ``axis_name`` (0 ... size - 1)."""
  local = _local(axis_name)
  if _is_bound(local):
    return jax.lax.axis_index(axis_name) * jax.lax.axis_size(
      local
    ) + jax.lax.axis_index(local)
  return jax.lax.axis_index(axis_name)


def all_gather(x: Any, axis_name: str) -> Any:
  """Stacks ``x`` of every member along a new leading axis, in global order."""
  local = _local(axis_name)
  if not _is_bound(local):
    return jax.lax.all_gather(x, axis_name)
  x = jax.lax.all_gather(x, local)
  return jax.lax.all_gather(x, axis_name, tiled=True)


def _spec(axis: int | None, axis_name: str) -> P:
  if axis is None:
    return P()
  if axis != 0:
    raise ValueError(
      f'client_map maps leading axes only (0 or None), got axis {axis!r}'
    )
  return P(axis_name)


def client_map(
  fn: Callable[..., Any],
  mesh: Mesh | None = None,
  axis_name: str = 'clients',
  *,
  in_axes: int | None | tuple[int | None, ...] = 0,
  out_axes: Any = 0,
) -> Callable[..., Any]:
  """Maps ``fn`` over the leading axis with ``vmap`` or ``shard_map``.

  Args:
    fn: Function of one member (client, worker, particle). Collectives across
      members must use this module's ``psum``/``pmean``/... with
      ``axis_name``.
    mesh: ``None`` for ``jax.vmap`` on one device; a mesh with an axis named
      ``axis_name`` to shard the members across its devices. The number of
      members must be divisible by the mesh axis size.
    axis_name: Name of the member axis (and of the mesh axis).
    in_axes: ``0`` (mapped) or ``None`` (broadcast) per positional argument,
      or one value for all, as in ``jax.vmap`` but leading axes only.
    out_axes: ``0`` (stacked over members) or ``None`` (the same for every
      member, e.g. the result of a ``psum``), a pytree prefix of the output.

  Returns:
    The mapped function. Under ``shard_map`` its mapped outputs are sharded
    over ``axis_name`` and the ``None`` outputs replicated.
  """
  if mesh is None:
    return jax.vmap(fn, in_axes=in_axes, out_axes=out_axes, axis_name=axis_name)
  if axis_name not in mesh.axis_names:
    raise ValueError(
      f'`axis_name` {axis_name!r} is not an axis of the mesh {mesh.axis_names}'
    )
  num_shards = mesh.shape[axis_name]
  inner = jax.vmap(
    fn, in_axes=in_axes, out_axes=out_axes, axis_name=_local(axis_name)
  )

  def mapped(*args):
    axes = in_axes if isinstance(in_axes, tuple) else (in_axes,) * len(args)
    if len(axes) != len(args):
      raise ValueError(
        f'`in_axes` has {len(axes)} entries for {len(args)} arguments'
      )
    for arg, axis in zip(args, axes, strict=True):
      for leaf in jax.tree.leaves(arg):
        if axis == 0 and jnp.shape(leaf)[0] % num_shards:
          raise ValueError(
            f'client_map: {jnp.shape(leaf)[0]} members on axis '
            f'{axis_name!r} do not divide evenly over {num_shards} devices'
          )
    in_specs = tuple(_spec(a, axis_name) for a in axes)
    args = tuple(place(a, mesh, s) for a, s in zip(args, in_specs, strict=True))
    out_specs = jax.tree.map(
      lambda a: _spec(a, axis_name), out_axes, is_leaf=lambda a: a is None
    )
    return jax.shard_map(
      inner,
      mesh=mesh,
      in_specs=in_specs,
      out_specs=out_specs,
      check_vma=False,
    )(*args)

  return mapped
