"""Property: every configuration either loads or stops with an error that names a key.

Loading is where every value is checked; a value it accepts must be usable by every role
(tests/integration/test_config_start.py starts real daemons on drawn configurations).
"""

from __future__ import annotations

import re
from typing import Any

from hypothesis import HealthCheck, given, settings

from nordiqd import config
from tests.configgen import config_data, config_keys

KEYS = config_keys()
_NAMED = re.compile(r"(?:unknown )?key '([a-z_]+\.[a-z_]+)")


def named_key(message: str) -> str | None:
    """The ``section.key`` an error message names, if it names one the daemon knows."""
    found = _NAMED.search(message)
    return found.group(1) if found and found.group(1) in KEYS else None


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config_data())
def test_a_config_loads_or_names_a_key(data: dict[str, Any]) -> None:
    try:
        cfg = config.from_dict(data, "drawn.toml")
    except config.ConfigError as exc:
        assert str(exc).startswith("drawn.toml: ")
        assert named_key(str(exc)), f"the error names no key: {exc}"
    else:
        assert set(cfg.model.targets) <= set(cfg.schema.metrics)
        assert cfg.alerts.problem(cfg.schema.metrics) is None


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config_data(usable=True))
def test_usable_values_load_or_name_a_key(data: dict[str, Any]) -> None:
    # Values inside every bound: what is still refused is a rule between keys, named.
    try:
        config.from_dict(data, "drawn.toml")
    except config.ConfigError as exc:
        assert named_key(str(exc)), f"the error names no key: {exc}"
