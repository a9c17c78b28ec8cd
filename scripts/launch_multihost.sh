#!/usr/bin/env bash
# Simulates a multi-host run on one machine: N local processes, each with
# D CPU devices, joined by jax.distributed on 127.0.0.1 (gloo collectives).
#
#   scripts/launch_multihost.sh [N=2] [D=2] -- <args for scripts/reproduce.py>
#
# On real hosts run scripts/reproduce.py once per host with the same
# --coordinator_address (host:port of process 0), --num_processes, and that
# host's --process_id.
set -euo pipefail
N=${1:-2}; D=${2:-2}
shift $(( $# >= 2 ? 2 : $# )) || true
[ "${1:-}" = "--" ] && shift
PORT=${PORT:-$(( 20000 + RANDOM % 20000 ))}
PY=${PYTHON:-python}
cd "$(dirname "$0")/.."
pids=()
trap 'kill -9 "${pids[@]}" 2>/dev/null || true' EXIT
for ((i = 0; i < N; i++)); do
  timeout -s KILL "${TIMEOUT:-600}" "$PY" scripts/reproduce.py \
    --coordinator_address="127.0.0.1:$PORT" --num_processes="$N" \
    --process_id="$i" --num_cpu_devices="$D" "$@" &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=$?; done
exit $status
