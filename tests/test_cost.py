"""What an end-to-end detector run costs, measured from real training steps."""
from __future__ import annotations

import pytest

from cxrlib import cost
from cxrlib.detector import Config
from cxrlib.errors import ConfigError

PAPER_SMALL = dict(base="paper", weights=None, trainable=True, image_size=32, epochs=2,
                   n_per_class=8, batch_size=4)


def test_cost_estimate_from_real_steps():
    config = Config(**PAPER_SMALL).check()
    step = cost.measure_step_cost(config, steps=2, warmup=1)
    assert step["train_step_s"] > 0 and step["predict_step_s"] > 0
    assert step["first_step_s"] > 0 and step["base"] == "paper"
    grid = cost.estimate_cost(step, n_images=421, n_folds=5, epochs=200, runs=10)
    assert grid["train_steps_per_epoch"] == 84  # (421 - ceil(421 / 5)) / 4 = 336 / 4
    assert grid["epoch_s"] == pytest.approx(84 * step["train_step_s"]
                                            + 22 * step["predict_step_s"])
    assert grid["total_s"] == pytest.approx(10 * 2 * 200 * grid["epoch_s"])
    assert grid["total_hours"] == pytest.approx(grid["total_s"] / 3600)
    alone = cost.estimate_cost(step, 421, 5, 200, runs=10, audit=False)
    assert alone["total_s"] == pytest.approx(grid["total_s"] / 2)
    with pytest.raises(ConfigError, match="steps"):
        cost.measure_step_cost(config, steps=0)
