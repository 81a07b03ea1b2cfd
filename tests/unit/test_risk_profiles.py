"""Per-profile alert thresholds: a big box is judged by its own limits."""

from __future__ import annotations

import numpy as np
import pytest

from nordiqd import config
from nordiqd.predict.risk import assess


def test_profile_thresholds_replace_the_defaults_for_that_profile_only() -> None:
    current = np.array([[20.0], [20.0]])  # load_average 20 on two servers
    a = assess(
        None, current, targets=[], metrics=["load_average"], quantiles=[0.1, 0.5, 0.9],
        warning={"load_average": 8.0}, critical={"load_average": 16.0}, step_seconds=300,
        profiles=["web", "ml_compute"],
        by_profile={"ml_compute": ({"load_average": 64.0}, {"load_average": 128.0})},
    )  # fmt: skip
    assert list(a.alert_level) == ["critical", "ok"]
    assert a.threshold[0] == 16.0


def test_profile_thresholds_are_checked_in_config() -> None:
    bad = {"alerts": {"profiles": {"ml_compute": {"warning": {"load_average": 200.0}}}}}
    with pytest.raises(config.ConfigError, match=r"alerts\.profiles\.ml_compute\.warning\.load_average"):
        config.from_dict(bad, "x.toml")
    with pytest.raises(config.ConfigError, match="unknown key"):
        config.from_dict({"alerts": {"profiles": {"web": {"warn": {}}}}}, "x.toml")
