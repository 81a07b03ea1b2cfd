"""The three statistical models on a coarse series, each to forecast bin means and spreads.

Every function takes a ``Coarse`` series and the number of bins ahead and returns
``(mean [K], std [K])``, the forecast of the bin means and its standard deviation from
the model's own prediction intervals (normal). All use additive errors: the metrics
can be 0, and additive-error models have closed-form forecast variances.

- ``auto_ets``: statsmodels ``ETSModel`` over error A and trend/season in {N, Ad} x
  {N, A} (season = one day of bins), the one with the smallest AICc (as statsforecast's
  AutoETS chooses). Initial states are the heuristic ones (not optimised): an order of
  magnitude cheaper, and fine with two weeks of hourly data.
- ``auto_theta``: statsmodels ``ThetaModel`` (the standard Theta method) with its own
  test for a daily season; the variant, additive or multiplicative deseasonalising
  (multiplicative only for positive series) and theta 1.5, 2 or 3, with the smallest
  absolute error over the series' last day forecast from what precedes it.
- ``mstl``: statsmodels ``MSTL`` with a daily and, given two weeks, a weekly season;
  the seasonally adjusted series (trend + remainder) is forecast by ``ETSModel`` A-N-N
  or A-Ad-N by AICc, and each season continues as its last cycle (as statsforecast's
  MSTL does). The STL smoothers skip points (``STL_JUMPS``) to keep the cost down.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd
from scipy.signal import lfilter
from statsmodels.tsa.exponential_smoothing.ets import ETSModel
from statsmodels.tsa.forecasting.theta import ThetaModel
from statsmodels.tsa.seasonal import MSTL

from nordiqd.statistical.coarse import Coarse

Fit = Callable[[Coarse, int], tuple[np.ndarray, np.ndarray]]

ETS_CONFIGS: tuple[tuple[bool, bool], ...] = ((False, False), (True, False), (False, True), (True, True))
THETAS = (1.5, 2.0, 3.0)
WEEK_DAYS = 7
# STL's LOESS smoothers evaluated every 7th point and interpolated between (statsmodels'
# documented speed-up): a weekly season of hourly bins costs 12 ms instead of 72.
STL_JUMPS = {"seasonal_jump": 7, "trend_jump": 7, "low_pass_jump": 7}


def _ets(y: np.ndarray, *, trend: bool, season: int | None) -> object:
    model = ETSModel(
        pd.Series(y),
        error="add",
        trend="add" if trend else None,
        damped_trend=trend,
        seasonal="add" if season else None,
        seasonal_periods=season,
        initialization_method="heuristic",
    )
    return model.fit(disp=False)


def _ets_forecast(fit: object, n: int, ahead: int) -> tuple[np.ndarray, np.ndarray]:
    pred = fit.get_prediction(start=n, end=n + ahead - 1)  # type: ignore[attr-defined]
    mean = np.asarray(pred.predicted_mean, dtype=np.float64)
    return mean, np.sqrt(np.maximum(np.asarray(pred.forecast_variance, dtype=np.float64), 0.0))


def _best_ets(y: np.ndarray, configs: tuple[tuple[bool, bool], ...], season: int) -> object:
    best, best_aicc = None, np.inf
    for trend, seasonal in configs:
        if seasonal and y.size < 2 * season:
            continue
        fit = _ets(y, trend=trend, season=season if seasonal else None)
        aicc = float(fit.aicc)  # type: ignore[attr-defined]
        if np.isfinite(aicc) and aicc < best_aicc:
            best, best_aicc = fit, aicc
    if best is None:
        raise ValueError("no ETS configuration could be fitted")
    return best


def auto_ets(coarse: Coarse, ahead: int) -> tuple[np.ndarray, np.ndarray]:
    """AutoETS: the ETS configuration with the smallest AICc (module docstring)."""
    y = coarse.values
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter of the optimiser
        return _ets_forecast(_best_ets(y, ETS_CONFIGS, coarse.season), y.size, ahead)


def _theta(y: np.ndarray, season: int, method: str) -> object:
    return ThetaModel(y, period=season, deseasonalize=True, use_test=True, method=method).fit()


def _theta_forecast(
    fit: object, y: np.ndarray, ahead: int, thetas: tuple[float, ...]
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(mean, std) for each theta from one fit's components.

    The mean is ``forecast``'s own combination, ``(theta-1)/theta * trend + ses``,
    reseasonalised. The variance is ``prediction_intervals``' documented
    ``sigma2 * (1 + (h-1)(1 + (alpha-1)^2))``, but with ``sigma2`` the variance of the
    innovations of the fit's IMA(1,1)-with-drift form at its own ``alpha`` and ``b0``
    (``X_t = X_{t-1} + b0 + (alpha-1) e_{t-1} + e_t``, on the deseasonalised series):
    the results' ``sigma2`` property re-estimates that model by maximum likelihood,
    which took up to a second per series here, a hundred times the fit.
    """
    comp = fit.forecast_components(steps=ahead)  # type: ignore[attr-defined]
    trend, ses = np.asarray(comp["trend"], dtype=np.float64), np.asarray(comp["ses"], dtype=np.float64)
    seasonal = np.asarray(comp["seasonal"], dtype=np.float64)
    deseasonalize = bool(fit.model.deseasonalize)  # type: ignore[attr-defined]
    multiplicative = deseasonalize and str(fit.model.method).startswith("mul")  # type: ignore[attr-defined]
    alpha, b0 = float(fit.params["alpha"]), float(fit.params["b0"])  # type: ignore[attr-defined]
    x = y
    if deseasonalize:  # the past's factors: the forecast's cycle (``ahead`` >= a period) continues them
        past = seasonal[(np.arange(y.size) - y.size) % int(fit.model.period)]  # type: ignore[attr-defined]
        x = y / past if multiplicative else y - past
    innovations = lfilter([1.0], [1.0, alpha - 1.0], np.diff(x) - b0)
    var = (1 + np.arange(ahead) * (1 + (alpha - 1) ** 2)) * float(np.mean(innovations**2))
    out = []
    for theta in thetas:
        mean = (theta - 1) / theta * trend + ses
        if deseasonalize:
            mean = mean * seasonal if multiplicative else mean + seasonal
        out.append((mean, np.sqrt(var)))
    return out


def auto_theta(coarse: Coarse, ahead: int) -> tuple[np.ndarray, np.ndarray]:
    """AutoTheta: the Theta variant that forecast the last day best (module docstring)."""
    y, season = coarse.values, coarse.season
    methods = ("additive", "multiplicative") if np.all(y > 0) else ("additive",)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        best, best_err = ("additive", 2.0), np.inf
        if y.size >= 3 * season:  # two days to fit on, one to check
            head, tail = y[:-season], y[-season:]
            for method in methods:
                paths = _theta_forecast(_theta(head, season, method), head, season, THETAS)
                for theta, (mean, _) in zip(THETAS, paths, strict=True):
                    err = float(np.mean(np.abs(mean - tail)))
                    if err < best_err:
                        best, best_err = (method, theta), err
        # At least a cycle ahead: the past's seasonal factors are read off the forecast's.
        mean, std = _theta_forecast(_theta(y, season, best[0]), y, max(ahead, season), (best[1],))[0]
    return mean[:ahead], std[:ahead]


def mstl(coarse: Coarse, ahead: int) -> tuple[np.ndarray, np.ndarray]:
    """MSTL with daily (and weekly) seasons, ETS on the adjusted series (module docstring)."""
    y, day = coarse.values, coarse.season
    periods = (day, WEEK_DAYS * day) if y.size > 2 * WEEK_DAYS * day else (day,)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parts = MSTL(y, periods=periods, stl_kwargs=STL_JUMPS).fit()
        seasonal = np.asarray(parts.seasonal, dtype=np.float64).reshape(y.size, -1)
        adjusted = y - seasonal.sum(axis=1)
        mean, std = _ets_forecast(_best_ets(adjusted, ETS_CONFIGS[:2], day), y.size, ahead)
    for i, period in enumerate(periods):
        last_cycle = seasonal[-period:, i]
        mean = mean + last_cycle[np.arange(ahead) % period]
    return mean, std


FITS: dict[str, Fit] = {"auto_ets": auto_ets, "auto_theta": auto_theta, "mstl": mstl}
