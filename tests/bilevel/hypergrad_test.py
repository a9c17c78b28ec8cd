"""Hypergradient pieces against closed forms on a quadratic bilevel problem.

Lower level ``g(x, y) = 1/2 y^T A y - y^T B x`` (``A`` SPD), so ``y*(x) =
A^{-1} B x``; upper level ``f(x, y) = 1/2 ||y - c||^2 + 1/2 r ||x||^2``.
Then ``Phi(x) = 1/2 ||A^{-1} B x - c||^2 + 1/2 r ||x||^2`` and
``grad Phi(x) = (A^{-1}B)^T (A^{-1} B x - c) + r x``: a closed form that
shares no code with the estimators.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxopt_papers.bilevel import hypergrad


def _problem(rng, dy=6, dx=4):
  m = rng.normal(size=(dy, dy))
  a = m @ m.T / dy + np.eye(dy)
  b = rng.normal(size=(dy, dx))
  c = rng.normal(size=dy)
  r = 0.1

  def g(x, y):
    return 0.5 * y['w'] @ (a @ y['w']) - y['w'] @ (b @ x)

  def f(x, y):
    return 0.5 * jnp.sum((y['w'] - c) ** 2) + 0.5 * r * jnp.sum(x**2)

  def grad_phi(x):
    s = np.linalg.solve(a, b)
    return s.T @ (s @ x - c) + r * x

  def y_star(x):
    return {'w': jnp.asarray(np.linalg.solve(a, b @ np.asarray(x)))}

  return a, b, f, g, grad_phi, y_star


def test_hvp_and_cross_term_match_dense_blocks(rng):
  with jax.enable_x64(True):
    a, b, _, g, _, _ = _problem(rng)
    x = jnp.asarray(rng.normal(size=4))
    y = {'w': jnp.asarray(rng.normal(size=6))}
    v = {'w': jnp.asarray(rng.normal(size=6))}
    np.testing.assert_allclose(hypergrad.hvp_yy(g, x, y, v)['w'], a @ v['w'])
    # d/dx <grad_y g, v> = d/dx <A y - B x, v> = -B^T v
    np.testing.assert_allclose(hypergrad.cross_term(g, x, y, v), -b.T @ v['w'])


@pytest.mark.parametrize('method', ['exact', 'cg', 'neumann'])
def test_hypergradient_equals_closed_form(rng, method):
  with jax.enable_x64(True):
    a, _, f, g, grad_phi, y_star = _problem(rng)
    x = jnp.asarray(rng.normal(size=4))
    y = y_star(x)
    if method == 'exact':
      got = hypergrad.exact_hypergradient(f, g, x, y)
    else:
      fy = jax.grad(f, argnums=1)(x, y)
      if method == 'cg':
        z = hypergrad.cg_inverse_hvp(g, x, y, fy, maxiter=50)
      else:
        eta = 1.0 / np.linalg.eigvalsh(a).max()
        z = hypergrad.neumann_inverse_hvp(
          g, x, y, fy, step_size=eta, num_terms=2000
        )
      got = hypergrad.hypergradient(f, g, x, y, z)
    np.testing.assert_allclose(got, grad_phi(np.asarray(x)), rtol=1e-8)


def test_neumann_partial_sums_match_numpy(rng):
  with jax.enable_x64(True):
    a, _, _, g, _, _ = _problem(rng)
    x = jnp.zeros(4)
    y = {'w': jnp.zeros(6)}
    bvec = rng.normal(size=6)
    eta, k = 0.1, 5
    want = eta * sum(
      np.linalg.matrix_power(np.eye(6) - eta * a, j) @ bvec for j in range(k)
    )
    got = hypergrad.neumann_inverse_hvp(
      g, x, y, {'w': jnp.asarray(bvec)}, step_size=eta, num_terms=k
    )
    np.testing.assert_allclose(got['w'], want, rtol=1e-12)


@pytest.mark.parametrize(
  'kwargs, name',
  [
    ({'step_size': 0.0, 'num_terms': 3}, 'step_size'),
    ({'step_size': 0.1, 'num_terms': 0}, 'num_terms'),
  ],
)
def test_neumann_rejects_bad_arguments(kwargs, name):
  def g(x, y):
    return jnp.sum(y**2) + x * jnp.sum(y)

  with pytest.raises(ValueError, match=f'`{name}`'):
    hypergrad.neumann_inverse_hvp(g, 0.0, jnp.ones(2), jnp.ones(2), **kwargs)


def test_cg_rejects_bad_maxiter():
  def g(x, y):
    return jnp.sum(y**2) + x * jnp.sum(y)

  with pytest.raises(ValueError, match='`maxiter`'):
    hypergrad.cg_inverse_hvp(g, 0.0, jnp.ones(2), jnp.ones(2), maxiter=0)
