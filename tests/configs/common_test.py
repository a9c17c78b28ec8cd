"""Presets and the declared swap of every paper's config."""

import ml_collections
import pytest

from jaxopt_papers import papers
from jaxopt_papers.configs import common

IDS = [s.id for s in papers.PAPERS]


def _config():
  c = common.new_config('demo', 'quick')
  c.algo = ml_collections.ConfigDict(dict(method='ours', lr=0.1, cutoff=None))
  return c


def test_presets_and_unknown_preset():
  assert common.PRESETS == ('smoke', 'quick', 'full')
  assert common.new_config('demo', None).preset == 'quick'
  with pytest.raises(ValueError, match='`arg`'):
    common.new_config('demo', 'tiny')


def test_apply_swap_copies_and_marks():
  c = _config()
  common.declare_swap(c, algo__method='baseline', algo__cutoff=5)
  assert common.swap_edits(c) == {'algo.method': 'baseline', 'algo.cutoff': 5}
  s = common.apply_swap(c)
  assert (s.algo.method, s.algo.cutoff, s.swapped) == ('baseline', 5, True)
  assert (c.algo.method, c.algo.cutoff, c.swapped) == ('ours', None, False)
  assert 'swap' in c.to_json_best_effort()  # written with every report


def test_swap_mistakes_are_refused():
  c = _config()
  with pytest.raises(ValueError, match='declares no swap'):
    common.apply_swap(c)
  with pytest.raises(ValueError, match='at least one edit'):
    common.declare_swap(c)
  common.declare_swap(c, algo__nope=1)
  with pytest.raises(ValueError, match='algo.nope'):
    common.apply_swap(c)
  common.declare_swap(c, algo__lr=0.1)
  with pytest.raises(ValueError, match='does not change'):
    common.apply_swap(c)


@pytest.mark.parametrize('preset', common.PRESETS)
@pytest.mark.parametrize('paper_id', IDS)
def test_every_paper_declares_a_swap_that_changes_its_config(paper_id, preset):
  config = papers.load_config(paper_id, preset)
  assert config.paper == paper_id and config.preset == preset
  assert not config.swapped
  edits = common.swap_edits(config)
  assert edits, f'{paper_id}: declare the swap (configs.common.declare_swap)'
  swapped = common.apply_swap(config)  # raises if an edit changes nothing
  assert swapped.swapped
  assert swapped.to_dict() != config.to_dict()
