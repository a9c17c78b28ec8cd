"""Bad config values are refused before anything runs, baselines included.

The issue's two overrides: a negative local learning rate on FedAU (its
FedAvg baseline blew up to 6.6e147 while the claim "held") and gradient
ascent for CBO's gradient-descent baseline. A blown-up run that gets past
validation still fails every claim resting on it (the driver's health
check, tests/experiment_test.py).
"""

import pytest

from jaxopt_papers import experiment, papers


@pytest.mark.parametrize(
  'paper_id, path, value',
  [
    ('fedau', 'algo.local_lr', -0.1),
    ('cbo', 'gd.learning_rate', -1.0),
    ('cbo', 'num_seeds', 0),
  ],
)
def test_bad_override_is_refused_naming_the_config_path(paper_id, path, value):
  config = papers.load_config(paper_id, 'smoke')
  *parents, leaf = path.split('.')
  node = config
  for part in parents:
    node = node[part]
  node[leaf] = value
  with pytest.raises(ValueError, match=path.replace('.', r'\.')):
    experiment.run(config)
