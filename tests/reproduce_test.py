"""The main job's command line: --list, scoreboard, --strict, workdir guard,
one-line errors, Ctrl-C."""

import pytest

from jaxopt_papers import experiment, papers, reproduce

# Error messages list the registry's ids in order (the first ones here).
_FIRST_TWO = ', '.join(s.id for s in papers.PAPERS[:2])


def _report(holds):
  return experiment.Report(
    paper='demo',
    preset='quick',
    claims=[experiment.Claim('x < 1', 0.5, 2.0, 1.0, holds)],
    metrics={},
  )


def test_list_prints_the_registry(capsys):
  assert reproduce.main(['--list']) == 0
  out = capsys.readouterr().out
  for spec in papers.PAPERS:
    assert spec.id in out and spec.target in out


def test_scoreboard_columns():
  table = reproduce.scoreboard([_report(True), _report(False)])
  header = table.splitlines()[0].split()
  assert header == ['paper', 'claim', 'ours', 'baseline', 'threshold', 'holds']
  assert table.count('yes') == 1 and table.count('NO') == 1


@pytest.mark.parametrize(
  'holds, strict, status',
  [
    (True, True, 0),
    (False, False, 0),
    (False, True, 1),
  ],
)
def test_strict_exit_status(monkeypatch, capsys, holds, strict, status):
  monkeypatch.setattr(reproduce, 'reproduce', lambda *a, **k: [_report(holds)])
  argv = ['--paper=cbo'] + (['--strict'] if strict else [])
  assert reproduce.main(argv) == status
  assert 'x < 1' in capsys.readouterr().out


def test_unknown_paper_is_named():
  with pytest.raises(ValueError, match='nope'):
    reproduce.paper_ids('cbo,nope')
  assert reproduce.paper_ids('all') == [s.id for s in papers.PAPERS]


def test_workdir_of_another_config_is_refused(tmp_path):
  config = papers.load_config('cbo', 'quick')
  reproduce._check_workdir(str(tmp_path), config)
  reproduce._check_workdir(str(tmp_path), config)  # same config: fine
  steps = config.num_steps
  config.num_steps += 1
  config.gd.learning_rate = 0.5
  with pytest.raises(ValueError, match='different config') as e:
    reproduce._check_workdir(str(tmp_path), config)
  message = str(e.value)
  assert f'num_steps: {steps} -> {steps + 1}' in message
  assert 'gd.learning_rate:' in message and '-> 0.5' in message
  assert 'num_seeds' not in message  # only the keys that differ


def _swapped(holds, exempt=''):
  report = _report(holds)
  report.swapped = True
  report.claims[0].swap_exempt = exempt
  return report


def test_swapped_scoreboard_says_whether_each_claim_failed():
  table = reproduce.scoreboard(
    [_swapped(False), _swapped(True), _swapped(True, 'an identity')]
  )
  assert table.splitlines()[0].split()[-1] == 'swapped'
  assert 'fails (ok)' in table and 'NOT DISCRIMINATING' in table
  assert 'exempt from the swap: an identity' in table
  left = reproduce.not_discriminating(
    [_swapped(False), _swapped(True), _swapped(True, 'x')]
  )
  assert left == [('demo', 'x < 1')]


def test_reasons_are_printed_under_the_table():
  report = _report(False)
  report.claims[0].reason = "run 'gd' seed 3: trace.loss at step 9: nan"
  table = reproduce.scoreboard([report])
  assert "demo: x < 1: NO because run 'gd' seed 3" in table


@pytest.mark.parametrize(
  'holds, strict, status', [(False, True, 0), (True, False, 0), (True, True, 1)]
)
def test_swap_strict_fails_on_a_comparison_that_still_holds(
  monkeypatch, capsys, holds, strict, status
):
  calls = []

  def fake(*args, **kwargs):
    calls.append(kwargs)
    return [_swapped(holds)]

  monkeypatch.setattr(reproduce, 'reproduce', fake)
  argv = ['--paper=cbo', '--swap'] + (['--strict'] if strict else [])
  assert reproduce.main(argv) == status
  assert calls[0]['swap'] is True
  out = capsys.readouterr().out
  assert ('not discriminating: demo' in out) == holds


def test_list_shows_presets_and_the_quick_time(capsys):
  assert reproduce.main(['--list']) == 0
  lines = capsys.readouterr().out.splitlines()
  assert lines[0].split()[:5] == ['id', '#', 'kind', 'presets', 'quick']
  for spec in papers.PAPERS:
    seconds = reproduce.quick_time(spec.id)
    assert seconds is not None, f'{spec.id}: no "quick ... N s" in docstring'
    assert seconds.startswith('~') and seconds.endswith(' s'), seconds
    (row,) = [line for line in lines if line.split()[:1] == [spec.id]]
    assert row.split()[3:5] == ['smoke,quick,full', seconds.split()[0]]
  assert reproduce.quick_time('cbo') == '~18 s'


@pytest.mark.parametrize(
  'argv, needle',
  [
    (['--paper='], f"pass 'all' or some of: {_FIRST_TWO}"),
    (['--paper=cbo,nope'], f"unknown paper 'nope'; known: {_FIRST_TWO}"),
    (['--paper=cbo', '--preset=fast'], 'presets: smoke, quick, full'),
  ],
)
def test_bad_flags_print_one_line(monkeypatch, capsys, argv, needle):
  ran = []
  monkeypatch.setattr(experiment, 'run', lambda *a: ran.append(a))
  assert reproduce.main(argv) == 2
  captured = capsys.readouterr()
  assert captured.out == '' and not ran
  (line,) = captured.err.splitlines()
  assert line.startswith('error: ') and needle in line


def test_config_of_another_paper_is_refused():
  config = papers.load_config('cbo', 'smoke')
  reproduce.check_config(config)  # its own: fine
  config.paper = 'subgm'  # what --config.paper=subgm does
  with pytest.raises(ValueError, match="not subgm's .*lacks .*alphas"):
    reproduce.check_config(config)
  with pytest.raises(ValueError, match="not subgm's"):
    reproduce.reproduce(['subgm'], 'smoke', configs={'subgm': config})


def test_ctrl_c_prints_how_to_resume(monkeypatch, capsys, tmp_path):
  def interrupted(config, workdir):
    raise KeyboardInterrupt

  monkeypatch.setattr(experiment, 'run', interrupted)
  argv = ['--paper=cbo', '--preset=smoke', f'--workdir={tmp_path}']
  assert reproduce.main(argv) == 130
  captured = capsys.readouterr()
  assert captured.err.splitlines()[-1] == (
    'interrupted; rerun the same command to resume'
  )
  assert 'Traceback' not in captured.err


def test_ctrl_c_inside_the_driver_names_the_saved_step(monkeypatch, capsys):
  def interrupted(config, workdir):
    e = KeyboardInterrupt()
    e.step, e.run = 40, 'cbo'  # what experiment.train records
    raise e

  monkeypatch.setattr(experiment, 'run', interrupted)
  assert reproduce.main(['--paper=cbo', '--preset=smoke']) == 130
  assert capsys.readouterr().err.splitlines()[-1] == (
    'interrupted at step 40 of cbo; rerun the same command to resume'
  )


def test_summary_names_the_report_path_and_failed_claims():
  lines, failed = reproduce.summary(
    [_report(True), _report(False)], '/tmp/w', swap=False
  )
  assert failed
  assert lines[0].strip() == 'reports and curves under /tmp/w/<paper>/'
  assert 'claims failed for: demo' in lines
  assert '  demo: x < 1' in lines
  lines, failed = reproduce.summary([_report(True)], None, swap=False)
  assert lines == ['all 1 claims hold'] and not failed


@pytest.mark.parametrize('holds, status', [(False, 0), (True, 1)])
def test_claim_recorded_as_not_reproducing(monkeypatch, capsys, holds, status):
  """It is reported NO with its record, and --strict accepts it only failing."""
  report = _report(holds)
  report.claims[0].not_reproduced = 'measured 2.0, above 1'
  assert report.holds == (not holds)
  monkeypatch.setattr(reproduce, 'reproduce', lambda *a, **k: [report])
  assert reproduce.main(['--paper=cbo', '--strict']) == status
  out = capsys.readouterr().out
  if holds:
    assert 'RECORD STALE' in out and 'recorded as not reproducing' in out
  else:
    assert 'NO (not reproduced)' in out
    assert 'does not reproduce at this scale: measured 2.0, above 1' in out
    assert '1 recorded as not reproducing at this scale fail' in out
  saved = experiment.Report.from_dict(report.to_dict())
  assert saved.claims[0].not_reproduced == 'measured 2.0, above 1'
