"""Two local processes joined by jax.distributed run one sharded CBO.

Each process has 2 CPU devices; the mesh spans all 4. The result must equal
the single-process run on 4 devices and the vmap run.
"""

import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from jaxopt_papers.core import parallel
from jaxopt_papers.experiments.cbo import example
from jaxopt_papers.solvers import cbo

WORKER = os.path.join(os.path.dirname(__file__), 'multihost_worker.py')
TIMEOUT = 180


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


@pytest.mark.multihost
def test_two_processes_match_single_process(tmp_path, num_devices):
  out = str(tmp_path / 'out.npz')
  coordinator = f'127.0.0.1:{_free_port()}'
  env = {**os.environ, 'PYTHONPATH': os.getcwd()}
  env.pop('XLA_FLAGS', None)
  procs = [
    subprocess.Popen(
      # `timeout -s KILL`: jax.distributed catches SIGTERM.
      [
        'timeout',
        '-s',
        'KILL',
        str(TIMEOUT),
        sys.executable,
        WORKER,
        coordinator,
        '2',
        str(i),
        '2',
        out,
      ],
      stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT,
      env=env,
    )
    for i in range(2)
  ]
  logs = []
  try:
    for p in procs:
      logs.append(p.communicate(timeout=TIMEOUT + 10)[0].decode()[-3000:])
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
  assert all(p.returncode == 0 for p in procs), '\n'.join(logs)
  got = np.load(out)
  assert int(got['process_count']) == 2 and int(got['device_count']) == 4

  x0, objective = example(jax.random.key(0))
  mesh = parallel.make_mesh(num_devices, 'particles')
  ref = {}
  for name, m in (('vmap', None), ('mesh', mesh)):
    solver = cbo.CBO(alpha=30.0, sigma=1.0, dt=0.05, mesh=m)
    state, trace = jax.jit(
      lambda s=solver: s.run(x0, jax.random.key(1), objective, 5)
    )()
    ref[name] = (jax.device_get(state.particles), trace.consensus_value)
  for particles, values in ref.values():
    np.testing.assert_allclose(got['particles'], particles, rtol=1e-5)
    np.testing.assert_allclose(got['consensus_value'], values, rtol=1e-5)
