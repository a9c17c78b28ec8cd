"""One process of the multi-host test (see multihost_test.py).

Usage: python tests/multihost_worker.py COORDINATOR NUM_PROCESSES PROCESS_ID
       LOCAL_DEVICES OUT.npz
Runs a few CBO steps with the particles sharded over every device of every
process; process 0 writes the gathered particles and trace to OUT.npz.
"""

import sys

import jax

coordinator, num_processes, process_id, local_devices, out = sys.argv[1:6]
jax.config.update('jax_num_cpu_devices', int(local_devices))
jax.distributed.initialize(
  coordinator_address=coordinator,
  num_processes=int(num_processes),
  process_id=int(process_id),
)

import numpy as np  # noqa: E402
from jax.experimental import multihost_utils  # noqa: E402

from jaxopt_papers.core import parallel  # noqa: E402
from jaxopt_papers.experiments.cbo import example  # noqa: E402
from jaxopt_papers.solvers import cbo  # noqa: E402

NUM_STEPS = 5


def main():
  x0, objective = example(jax.random.key(0))
  mesh = parallel.make_mesh(None, 'particles')  # all processes' devices
  solver = cbo.CBO(alpha=30.0, sigma=1.0, dt=0.05, mesh=mesh)
  state, trace = jax.jit(
    lambda: solver.run(np.asarray(x0), jax.random.key(1), objective, NUM_STEPS)
  )()
  particles = multihost_utils.process_allgather(state.particles, tiled=True)
  if jax.process_index() == 0:
    np.savez(
      out,
      particles=np.asarray(particles),
      consensus_value=np.asarray(trace.consensus_value),
      device_count=jax.device_count(),
      process_count=jax.process_count(),
    )


main()
