"""``params.config_from``: a notebook's parameters as a checked Config, for both experiments."""
from __future__ import annotations

import pytest

from cxrlib import detector, params, prognet
from cxrlib.errors import ConfigError


def test_fields_are_taken_other_names_ignored_and_defaults_kept() -> None:
    namespace = {"epochs": 3, "weights": None, "data_dir": "x", "out_dir": None, "pd": object()}
    config = params.config_from(prognet.Config, namespace)
    assert (config.epochs, config.weights) == (3, None)
    assert config.lstm_units == prognet.Config().lstm_units  # not named: the paper's value


def test_the_config_is_checked() -> None:
    with pytest.raises(ConfigError, match="window='sideways'"):
        params.config_from(prognet.Config, {"weights": None, "window": "sideways"})
    config = params.config_from(detector.Config, {"weights": None, "n_per_class": 4})
    assert config.n_per_class == {"covid19": 4, "pneumonia": 4, "normal": 4}  # check() ran


def test_both_experiments_share_it() -> None:
    parameters = {"weights": None, "seed": 2, "model": "cnn"}
    assert prognet.config_from(parameters) == params.config_from(prognet.Config, parameters)
    assert detector.config_from(parameters) == params.config_from(detector.Config, parameters)
