r"""The empirical neural tangent kernel, three ways (paper 22).

Jacot, Gabriel, Hongler, `Neural Tangent Kernel: Convergence and
Generalization in Neural Networks <https://arxiv.org/abs/1806.07572>`_,
NeurIPS 2018.

For a network ``apply_fn(params, x)`` with outputs ``f(x) [N, *out]`` the
empirical NTK (paper Sec. 3) is

.. math::
  \hat\Theta(x, x')_{kk'} = \sum_p \partial_p f_k(x)\, \partial_p f_{k'}(x')
  = (J(x) J(x')^\top)_{kk'}.

:func:`empirical_ntk` computes it with one of three implementations that
agree to floating-point accuracy (the neural-tangents ``NtkImplementation``
names in brackets):

* ``'jacobian'`` [JACOBIAN_CONTRACTION]: ``jax.jacrev`` of both batches and a
  per-leaf contraction ``J1 J2^T``. Memory ``O(N P)`` for ``P`` parameters.
* ``'ntvp'`` [NTK_VECTOR_PRODUCTS]: never forms ``J``: for every output
  coordinate ``e`` of ``f(x2)``, a VJP gives ``J2^T e`` and a JVP of ``f(x1)``
  along it gives a column ``J1 J2^T e`` (``vmap`` over the ``N2 * |out|``
  coordinates). Memory ``O(N2 |out| P)`` for the vectorised VJPs, but no
  per-leaf Jacobian blow-up for weight-shared layers.
* ``'structured'`` [STRUCTURED_DERIVATIVES, specialised here to
  :class:`~jaxopt_papers.ntk.models.NTKMLP`]: the per-layer formula

  .. math::
    \hat\Theta = \sum_{\ell=1}^{L+1} (\delta_\ell \delta_\ell^\top) \odot
      (c_w^2\, h_{\ell-1} h_{\ell-1}^\top + c_b^2),\qquad
    \delta_\ell = \partial f / \partial z_\ell,

  with ``c_w = w_std / sqrt(n_{l-1})``, ``c_b = b_std`` in the NTK
  parameterization (``1, 1`` in the standard one). ``delta`` is back-propagated
  explicitly; cost ``O(N^2 n L |out|^2 + N n^2 L |out|)`` and no Jacobian, so
  it is the only one of the three that scales to width 4096 on a CPU.
  Deviation: neural-tangents derives the structure from the jaxpr of any
  function; we implement it for ``NTKMLP`` only (``apply_fn`` must be an
  ``NTKMLP`` or its bound ``.apply``) and raise ``ValueError`` otherwise.

Output axes follow neural-tangents: ``trace_axes`` (default ``(-1,)``) are
averaged over (the trace divided by their size, so that the result matches the
analytic per-output kernel); ``diagonal_axes`` keep only ``k = k'``. Axes index
``f(x)`` (axis 0 is the batch and cannot be traced). The result has shape
``[N1, N2]`` followed, for every non-traced output axis in order, by one
dimension (diagonal axes) or two (``x1``'s then ``x2``'s).

The data axis is processed in blocks of ``batch_size`` rows of ``x1``
(``lax.map`` over blocks: each block holds the Jacobians of ``batch_size``
points only), and with ``mesh`` those blocks are sharded over the mesh axis
``axis_name`` with ``jax.shard_map`` (params and ``x2`` replicated). The
result is the same up to float summation order.
"""

import math
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from jaxopt_papers.core import checks, parallel
from jaxopt_papers.ntk import models

__all__ = ['IMPLEMENTATIONS', 'empirical_ntk']

IMPLEMENTATIONS = ('jacobian', 'ntvp', 'structured')
_OUT_LETTERS = 'cdefghijklmnopqrstuvwxy'  # 'a', 'b' data axes, 'z' contracted


def _normalize_axes(axes, out_ndim, name):
  """Full-output axes (nt convention, 0 = batch) -> output-axis indices."""
  out = []
  for a in tuple(axes):
    full = out_ndim + 1
    if not -full <= a < full:
      raise ValueError(
        f'`{name}` axis {a} out of range for outputs of rank {full}'
      )
    a = a % full
    if a == 0:
      raise ValueError(f'`{name}` cannot contain the batch axis 0')
    out.append(a - 1)
  if len(set(out)) != len(out):
    raise ValueError(f'`{name}` has repeated axes: {axes!r}')
  return tuple(sorted(out))


def _specs(out_ndim, trace, diag):
  """Einsum specs for ``A [n1, *out, p]``, ``B [n2, *out, p]`` -> kernel."""
  l1 = [_OUT_LETTERS[2 * i] for i in range(out_ndim)]
  l2 = [
    l1[i] if (i in trace or i in diag) else _OUT_LETTERS[2 * i + 1]
    for i in range(out_ndim)
  ]
  res = 'ab'
  for i in range(out_ndim):
    if i in trace:
      continue
    res += l1[i] if i in diag else l1[i] + l2[i]
  return 'a' + ''.join(l1), 'b' + ''.join(l2), res


def _contract(a, b, specs, scale):
  """``sum_p A[.., p] B[.., p]`` with the trace/diagonal output layout."""
  s1, s2, res = specs
  return scale * jnp.einsum(f'{s1}z,{s2}z->{res}', a, b)


def _jacobian_kernel(apply_fn, params, x1, x2, specs, scale):
  def jac(x):
    j = jax.jacrev(lambda p: apply_fn(p, x))(params)
    n_lead = jax.eval_shape(apply_fn, params, x).ndim
    return [
      leaf.reshape(leaf.shape[:n_lead] + (-1,)) for leaf in jax.tree.leaves(j)
    ]

  return sum(
    _contract(a, b, specs, scale) for a, b in zip(jac(x1), jac(x2), strict=True)
  )


def _ntvp_kernel(apply_fn, params, x1, x2, specs, scale):
  f1 = lambda p: apply_fn(p, x1)
  fx2, vjp2 = jax.vjp(lambda p: apply_fn(p, x2), params)
  size = fx2.size
  basis = jnp.eye(size, dtype=fx2.dtype).reshape((size,) + fx2.shape)

  def column(e):  # J1 J2^T e
    (v,) = vjp2(e)
    return jax.jvp(f1, (params,), (v,))[1]

  cols = jax.vmap(column)(basis)  # [N2 * |out|, N1, *out]
  cols = cols.reshape(fx2.shape + cols.shape[1:])  # [N2, *out, N1, *out]
  out_ndim = fx2.ndim - 1
  full = jnp.moveaxis(
    cols, tuple(range(out_ndim + 1)), tuple(range(-out_ndim - 1, 0))
  )
  # full: [N1, *out (x1), N2, *out (x2)]
  s1, s2, res = specs
  return scale * jnp.einsum(f'{s1}{s2}->{res}', full)


def _structured_kernel(module, params, x1, x2, specs, scale):
  phi, dphi = models.activation_fn(module.activation)
  layers = [params['params'][f'dense_{i}'] for i in range(module.depth + 1)]

  def forward(x):
    h = x.reshape(x.shape[0], -1)
    hs, ds = [], []
    for i, layer in enumerate(layers):
      c_w, c_b = module.layer_scales([h.shape[-1]])[0]
      z = c_w * (h @ layer['kernel']) + c_b * layer['bias'][None, :]
      hs.append(h)
      if i < module.depth:
        ds.append(dphi(z))
        h = phi(z)
    # delta_l[x, k, j] = d f_k(x) / d z_l[j], back-propagated from the output.
    k = module.out_features
    delta = jnp.broadcast_to(jnp.eye(k, dtype=h.dtype), (x.shape[0], k, k))
    deltas = [delta]
    for i in range(module.depth, 0, -1):
      c_w = module.layer_scales([hs[i].shape[-1]])[0][0]
      delta = (c_w * delta @ layers[i]['kernel'].T) * ds[i - 1][:, None, :]
      deltas.append(delta)
    return hs, deltas[::-1]

  hs1, d1 = forward(x1)
  hs2, d2 = forward(x2)
  total = 0.0
  for i in range(module.depth + 1):
    c_w, c_b = module.layer_scales([hs1[i].shape[-1]])[0]
    s = c_w**2 * (hs1[i] @ hs2[i].T) + c_b**2  # [N1, N2]
    dd = _contract(d1[i], d2[i], specs, scale)
    total = total + dd * s.reshape(s.shape + (1,) * (dd.ndim - 2))
  return total


def _structured_module(apply_fn):
  if isinstance(apply_fn, models.NTKMLP):
    return apply_fn
  module = getattr(apply_fn, '__self__', None)
  if isinstance(module, models.NTKMLP):
    return module
  raise ValueError(
    "`implementation`='structured' needs `apply_fn` to be an NTKMLP or its "
    f'bound .apply, got {apply_fn!r}'
  )


def empirical_ntk(
  apply_fn: Callable[[Any, jax.Array], jax.Array],
  params: Any,
  x1: jax.Array,
  x2: jax.Array | None = None,
  *,
  implementation: str = 'jacobian',
  trace_axes: Sequence[int] = (-1,),
  diagonal_axes: Sequence[int] = (),
  batch_size: int | None = None,
  mesh: Mesh | None = None,
  axis_name: str = 'data',
) -> jax.Array:
  """The empirical NTK ``J(x1) J(x2)^T`` of ``apply_fn`` at ``params``.

  Args:
    apply_fn: ``(params, x [N, ...]) -> f(x) [N, *out]``, or a Linen
      module (its ``.apply`` is used). For ``implementation='structured'``:
      an ``NTKMLP`` or its ``.apply`` (``params`` are then its
      ``{'params': ...}`` variables).
    params: Parameter pytree.
    x1: First batch ``[N1, ...]``.
    x2: Second batch ``[N2, ...]``; ``None`` means ``x1``.
    implementation: ``'jacobian'``, ``'ntvp'`` or ``'structured'``.
    trace_axes: Output axes averaged over (nt's ``trace_axes``).
    diagonal_axes: Output axes where only ``k = k'`` is kept.
    batch_size: Rows of ``x1`` per block (must divide ``N1``); ``None``: one
      block (one per device with ``mesh``).
    mesh: Optional mesh; blocks of rows are sharded over its ``axis_name``
      axis (the number of blocks must divide evenly over it).
    axis_name: Mesh axis of the data.

  Returns:
    The kernel ``[N1, N2, ...]`` (layout in the module docstring).

  Raises:
    ValueError: on an unknown ``implementation``, bad axes, or a
      ``batch_size`` that does not divide the work.
  """
  checks.check_in('implementation', implementation, IMPLEMENTATIONS)
  checks.check_int('batch_size', batch_size, allow_none=True)
  checks.check_mesh(mesh, axis_name)
  x2 = x1 if x2 is None else x2
  if implementation == 'structured':
    module = _structured_module(apply_fn)
    apply_fn = module.apply
  elif isinstance(apply_fn, nn.Module):
    apply_fn = apply_fn.apply
  out_shape = jax.eval_shape(apply_fn, params, x2[:1]).shape[1:]
  out_ndim = len(out_shape)
  trace = _normalize_axes(trace_axes, out_ndim, 'trace_axes')
  diag = _normalize_axes(diagonal_axes, out_ndim, 'diagonal_axes')
  if set(trace) & set(diag):
    raise ValueError('`trace_axes` and `diagonal_axes` must not overlap')
  specs = _specs(out_ndim, trace, diag)
  scale = 1.0 / math.prod(out_shape[i] for i in trace)

  if implementation == 'structured':
    kernel = lambda p, a, b: _structured_kernel(module, p, a, b, specs, scale)
  elif implementation == 'ntvp':
    kernel = lambda p, a, b: _ntvp_kernel(apply_fn, p, a, b, specs, scale)
  else:
    kernel = lambda p, a, b: _jacobian_kernel(apply_fn, p, a, b, specs, scale)

  n1 = x1.shape[0]
  num_shards = 1 if mesh is None else mesh.shape[axis_name]
  if batch_size is None:
    batch_size = n1 // num_shards if n1 % num_shards == 0 else n1
  if n1 % batch_size:
    raise ValueError(
      f'`batch_size` ({batch_size}) must divide the {n1} rows of `x1`'
    )
  num_blocks = n1 // batch_size
  if num_blocks % num_shards:
    raise ValueError(
      f'`batch_size` ({batch_size}) gives {num_blocks} blocks, which do not '
      f'divide evenly over {num_shards} devices'
    )
  blocks = x1.reshape((num_blocks, batch_size) + x1.shape[1:])

  def local(params, blocks, x2):
    return jax.lax.map(lambda xb: kernel(params, xb, x2), blocks)

  if mesh is None:
    out = local(params, blocks, x2)
  else:
    params, x2 = parallel.place((params, x2), mesh, P())
    blocks = parallel.place(blocks, mesh, P(axis_name))
    out = jax.shard_map(
      local,
      mesh=mesh,
      in_specs=(P(), P(axis_name), P()),
      out_specs=P(axis_name),
      check_vma=False,
    )(params, blocks, x2)
  return out.reshape((n1,) + out.shape[2:])
