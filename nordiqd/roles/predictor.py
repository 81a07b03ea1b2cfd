"""The predictor role: rolling windows per server and fleet forecasts."""

from __future__ import annotations

from nordiqd.roles.base import ServiceRole


class PredictorRole(ServiceRole):
    """Serves forecasts from rolling windows; reloads models when ``current`` changes."""

    name = "predictor"
