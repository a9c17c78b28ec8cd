"""The absl main and the benchmark run end to end (small settings)."""

import json
import os
import pathlib
import re
import signal
import subprocess
import sys

import pytest

from jaxopt_papers import benchmarking, papers

ROOT = pathlib.Path(__file__).resolve().parents[1]
# Error messages list the registry's ids in order (the first ones here).
_FIRST_TWO = ', '.join(s.id for s in papers.PAPERS[:2])


def _run(args, tmp_path, cwd=ROOT):
  # The scripts set their own device count; other XLA flags (`make test`'s
  # compile-time setting) pass through.
  env = dict(os.environ)
  flags = env.pop('XLA_FLAGS', '').split()
  env['XLA_FLAGS'] = ' '.join(f for f in flags if 'device_count' not in f)
  return subprocess.run(
    [sys.executable, *args],
    cwd=cwd,
    env=env,
    capture_output=True,
    text=True,
    timeout=300,
    check=False,
  )


def test_reproduce_script_with_config_overrides(tmp_path):
  out = _run(
    [
      'scripts/reproduce.py',
      '--config=jaxopt_papers/configs/cbo.py:quick',
      '--config.num_seeds=2',
      '--config.num_steps=200',
      '--config.gd.num_steps=100',
      '--config.log_every=100',
      '--config.ckpt_every=100',
      '--config.check_steps=20',
      '--num_cpu_devices=4',
      f'--workdir={tmp_path}',
    ],
    tmp_path,
  )
  assert out.returncode == 0, out.stderr[-3000:]
  assert 'paper' in out.stdout and 'cbo' in out.stdout
  assert 'cbo: step 200/200' in out.stderr  # progress lines
  report = json.loads((tmp_path / 'cbo' / 'report.json').read_text())
  assert report['preset'] == 'quick'
  # 200 steps are too few: the claim is reported as failing, honestly.
  assert any('4 devices' in c['name'] for c in report['claims'])


# Two halves of the registry, so the test workers share the benchmark run.
_HALVES = [[s.id for s in papers.PAPERS][i::2] for i in range(2)]


@pytest.mark.parametrize('half', range(2))
def test_benchmark_quick_covers_the_registry(tmp_path, half):
  ids = _HALVES[half]
  assert sorted(_HALVES[0] + _HALVES[1]) == sorted(s.id for s in papers.PAPERS)
  out_file = tmp_path / 'bench.json'
  out = _run(
    [
      'scripts/benchmark.py',
      '--quick',
      '--num_cpu_devices=4',
      f'--only={",".join(ids)}',
      f'--out={out_file}',
    ],
    tmp_path,
  )
  assert out.returncode == 0, out.stderr[-3000:]
  result = json.loads(out_file.read_text())
  assert result['num_devices'] == 4 and result['quick']
  assert set(result['papers']) == set(ids)
  for pid, rows in result['papers'].items():
    assert rows, pid
    for row in rows:
      for key in benchmarking.REQUIRED:
        assert key in row, (pid, row)
      assert row['us_per_step'] > 0 and row['memory_bytes'] >= 0
    assert rows[0]['x_baseline'] == 1.0


def test_swapped_run_from_the_script(tmp_path):
  # A paper id, not a path, run outside the checkout (as from a wheel).
  out = _run(
    [
      str(ROOT / 'scripts' / 'reproduce.py'),
      '--config=subgm:smoke',
      '--swap',
      f'--workdir={tmp_path}',
    ],
    tmp_path,
    cwd=tmp_path,
  )
  assert out.returncode == 0, out.stderr[-3000:]
  assert 'swapped' in out.stdout.splitlines()[0]
  report = json.loads((tmp_path / 'subgm-swap' / 'report.json').read_text())
  assert report['swapped'] is True
  assert f'reports and curves under {tmp_path}/<paper>/' in out.stdout


def test_script_none_field_override_quiet_logs_and_verdicts(tmp_path):
  out = _run(
    [
      'scripts/reproduce.py',
      '--config=fedau:smoke',
      '--config.algo.cutoff=50',
      f'--workdir={tmp_path}',
    ],
    tmp_path,
  )
  assert out.returncode == 0, out.stderr[-3000:]
  config = json.loads((tmp_path / 'fedau' / 'config.json').read_text())
  assert config['algo']['cutoff'] == 50
  assert (tmp_path / 'fedau' / 'report.json').exists()
  # orbax/absl INFO lines are off: only the driver's progress lines remain.
  assert 'INFO' not in out.stderr and 'orbax' not in out.stderr.lower()
  assert len(out.stderr.splitlines()) < 10, out.stderr
  lines = out.stdout.splitlines()
  at = lines.index(f'reports and curves under {tmp_path}/<paper>/')
  # smoke claims are not expected to hold: each failed one is named.
  assert lines[at + 1] == 'claims failed for: fedau'
  assert all(line.startswith('  fedau: ') for line in lines[at + 2 :])


@pytest.mark.parametrize(
  'args, needle',
  [
    (['--paper=cbo,nope'], f"unknown paper 'nope'; known: {_FIRST_TWO}"),
    (['--config=cbo:smoke', '--paper=subgm'], '--paper=subgm conflicts'),
    (['--config=cbo:smoke', '--config.paper=subgm'], "not subgm's"),
    (['--config=cbo:fast'], 'presets: smoke, quick, full'),
  ],
)
def test_script_errors_are_one_line(tmp_path, args, needle):
  out = _run(['scripts/reproduce.py', *args], tmp_path)
  assert out.returncode == 2, out.stderr[-3000:]
  (line,) = out.stderr.splitlines()
  assert line.startswith('error: ') and needle in line
  assert out.stdout == ''


def test_script_ctrl_c_prints_how_to_resume(tmp_path):
  env = {k: v for k, v in os.environ.items() if k != 'XLA_FLAGS'}
  proc = subprocess.Popen(
    [
      sys.executable,
      'scripts/reproduce.py',
      '--config=cbo:quick',
      f'--workdir={tmp_path}',
    ],
    cwd=ROOT,
    env=env,
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
  )
  lines = []
  for line in proc.stderr:  # wait until the experiment has started
    lines.append(line)
    if '[1/1] cbo' in line:
      break
  # One Ctrl-C is enough, also one that lands in a callback Python cannot
  # raise from (a gc callback of XLA): experiment.keeping_lost_interrupts.
  proc.send_signal(signal.SIGINT)
  try:
    _, rest = proc.communicate(timeout=120)
  except subprocess.TimeoutExpired:
    proc.kill()
    raise AssertionError('one Ctrl-C did not stop the run') from None
  err = ''.join(lines) + rest
  assert proc.returncode == 130, err[-3000:]
  assert 'Traceback' not in err
  # One line, the last: how to resume (and the step saved so far, when the
  # signal came inside the driver).
  last = err.splitlines()[-1]
  assert re.fullmatch(
    r'interrupted( at step \d+ of \S+)?; rerun the same command to resume',
    last,
  ), last


def test_installed_wheel_runs_a_paper_by_id(tmp_path):
  """The wheel alone (no checkout, no scripts/): `jaxopt-reproduce`
  resolves `--config=<id>:<preset>` through the installed package."""
  wheels, target = tmp_path / 'wheels', tmp_path / 'site'
  pip = [sys.executable, '-m', 'pip']
  subprocess.run(
    [*pip, 'wheel', '--no-deps', '--no-build-isolation', '-q', '-w', wheels]
    + [str(ROOT)],
    check=True,
    capture_output=True,
  )
  (wheel,) = wheels.glob('jaxopt_papers-*.whl')
  subprocess.run(
    [*pip, 'install', '-q', '--no-deps', '--target', target, wheel],
    check=True,
    capture_output=True,
  )
  env = {k: v for k, v in os.environ.items() if k != 'XLA_FLAGS'}
  env['PYTHONPATH'] = str(target)  # ahead of the checkout's editable install
  run = lambda *args: subprocess.run(
    [sys.executable, *args],
    cwd=tmp_path,
    env=env,
    capture_output=True,
    text=True,
    timeout=300,
    check=False,
  )
  where = run('-c', 'import jaxopt_papers; print(jaxopt_papers.__file__)')
  assert where.stdout.startswith(str(target)), where.stdout
  out = run(
    str(target / 'bin' / 'jaxopt-reproduce'),
    '--config=subgm:smoke',
    f'--workdir={tmp_path / "w"}',
  )
  assert out.returncode == 0, out.stderr[-3000:]
  assert 'subgm' in out.stdout
  assert (tmp_path / 'w' / 'subgm' / 'report.json').exists()
