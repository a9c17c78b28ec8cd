"""Claim tests: every registered paper's quick preset, through the main job.

One run per paper (the registry is the list; the notebooks run at smoke
size and check no claim): ``reproduce.reproduce`` drives the experiment
through the driver, which judges every claim against the health of the
runs it rests on, writes report.json and curves.png, and every claim must
hold. Each comparison was checked to fail under the config's declared swap
(``make reproduce-swap``); the swap itself is checked to exist and change
the config by ``tests/configs/common_test.py``.
"""

import os

import pytest

from jaxopt_papers import experiment, papers, reproduce

# `make test` runs these in their own pass, with XLA's default optimizations
# (the other tests compile with them off).
pytestmark = pytest.mark.claims


@pytest.mark.parametrize('paper_id', [s.id for s in papers.PAPERS])
def test_quick_preset_claims_hold(paper_id, tmp_path, num_devices):
  del num_devices  # 4 devices: the device-agreement claims run
  (report,) = reproduce.reproduce([paper_id], 'quick', str(tmp_path))
  assert report.claims, 'an experiment must check at least one claim'
  assert report.runs and all(r.healthy or r.may_diverge for r in report.runs)
  # Every claim holds, except those recorded as not reproducing at this
  # scale (`Claim.not_reproduced`), which must fail as recorded.
  failed = [c for c in report.claims if not c.as_recorded]
  assert not failed, reproduce.scoreboard([report])
  written = experiment.load_report(str(tmp_path / paper_id / 'report.json'))
  assert [c.name for c in written.claims] == [c.name for c in report.claims]
  assert os.path.getsize(tmp_path / paper_id / 'curves.png') > 1000
