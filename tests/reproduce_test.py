"""The main job's command line: --list, scoreboard, --strict, workdir guard."""

import pytest

from jaxopt_papers import experiment, papers, reproduce


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
  config.num_steps += 1
  with pytest.raises(ValueError, match='different config'):
    reproduce._check_workdir(str(tmp_path), config)


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
