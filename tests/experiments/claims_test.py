"""Claim tests: every paper's quick preset, through the main job.

One run per paper: `reproduce.reproduce` drives the experiment through the
driver, writes report.json and curves.png, and every claim must hold. Each
threshold was checked by hand to fail when the paper's method is replaced by
its baseline (see the config docstrings for the calibration).
"""

import os

import pytest

from jaxopt_papers import experiment, papers, reproduce


@pytest.mark.parametrize('paper_id', [s.id for s in papers.PAPERS])
def test_quick_preset_claims_hold(paper_id, tmp_path, num_devices):
  del num_devices  # 4 devices: the CBO experiment adds its device check
  (report,) = reproduce.reproduce([paper_id], 'quick', str(tmp_path))
  assert report.claims, 'an experiment must check at least one claim'
  failed = [c for c in report.claims if not c.holds]
  assert not failed, reproduce.scoreboard([report])
  written = experiment.load_report(str(tmp_path / paper_id / 'report.json'))
  assert [c.name for c in written.claims] == [c.name for c in report.claims]
  assert os.path.getsize(tmp_path / paper_id / 'curves.png') > 1000
