"""Statistical challengers to the TFT: AutoETS, AutoTheta and MSTL from statsmodels.

Why statsmodels and not statsforecast: statsforecast 2.1.1 (the newest) requires
``pandas<3``, and nordiqd runs and is tested on pandas 3 with pytorch-forecasting 1.8.0;
statsmodels (pinned in setup.cfg) works with pandas 3 and numpy 2.

The API, all pure (no daemon code, no state kept between calls):

- ``forecast(model, history, step_s, horizon_steps, quantiles)`` -> ``[horizon, Q]``:
  one model's quantile forecast of the steps after ``history`` by a full fit (``model``
  one of ``MODELS``); NaN rows where the series is too short or the fit fails.
- ``choose(history, step_s, horizon_steps)`` -> the name in ``MODELS`` whose forecast of
  the series' own last horizon (fitted on what precedes it) had the smallest absolute
  error: the "best statistical model" of a series. ``select`` gives its parameters.
- ``refresh(windows, names, targets, ..., previous, every)``: a fleet's forecasts as the
  daemon refreshes them, most series filtered with the parameters of their last full fit
  and a bounded share fitted again (``fleet``; the parameters are ``params``).

Statsmodels is far too slow for 5-minute data of many days, so every model is fitted on
a coarse resolution (``coarse``: hourly means of the last ``DAYS`` days) and its forecast
mapped back to the model's steps; see ``coarse`` for how, and ``models`` for each model.
"""

from __future__ import annotations

from nordiqd.statistical.coarse import DAYS
from nordiqd.statistical.fleet import FleetParams, Refreshed, refresh
from nordiqd.statistical.forecast import MODELS, choose, forecast, select

__all__ = ["DAYS", "MODELS", "FleetParams", "Refreshed", "choose", "forecast", "refresh", "select"]
