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
