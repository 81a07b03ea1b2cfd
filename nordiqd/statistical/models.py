"""The three statistical models on a coarse series: a full fit, and a refresh.

Every model has two functions over a ``Coarse`` series and the number of bins ahead,
both returning the forecast of the bin means and its standard deviation from the
model's own prediction intervals (normal):

- ``fit(coarse, ahead)`` -> ``(mean [K], std [K], params)``: the search and the
  optimisation, and what they found (``statistical.params``);
- ``apply(params, coarse, ahead)`` -> ``(mean [K], std [K])``: the model's filter over
  ``coarse`` with those parameters held, no optimiser; on the data ``fit`` saw it
  gives ``fit``'s forecast (MSTL: close to it, see ``mstl``).

All use additive errors: the metrics can be 0, and additive-error models have
closed-form forecast variances.

- ``auto_ets``: statsmodels ``ETSModel`` over error A and trend/season in {N, Ad} x
  {N, A} (season = one day of bins), the one with the smallest AICc (as statsforecast's
  AutoETS chooses). Initial states are the heuristic ones (not optimised): an order of
  magnitude cheaper, fine with two weeks of hourly data, and re-derived by ``apply``
  from the data it filters. ``apply`` is ``ETSModel.smooth`` at the saved parameters.
- ``auto_theta``: ``statistical.theta``.
- ``mstl``: statsmodels ``MSTL`` with a daily and, given two weeks, a weekly season;
  the seasonally adjusted series (trend + remainder) is forecast by ``ETSModel`` A-N-N
  or A-Ad-N by AICc, and each season continues as its last cycle (as statsforecast's
  MSTL does). The STL smoothers skip points (``STL_JUMPS``) to keep the cost down.
  The decomposition is most of a fit's cost, so ``apply`` does not decompose again: the
  bins the fit saw are adjusted by the seasons it found there, the bins since by each
  season's last cycle continued (read at each bin's phase from the fit's end,
  ``MstlParams.end_s``), as the fit's own forecast continued them; then the ETS filter
  runs over the adjusted series. On the fit's own data that is the fit's forecast.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd
from statsmodels.tools.eval_measures import aicc
from statsmodels.tsa.exponential_smoothing.ets import ETSModel, ETSResults
from statsmodels.tsa.seasonal import MSTL

from nordiqd.statistical import theta
from nordiqd.statistical.coarse import Coarse
from nordiqd.statistical.params import EtsParams, MstlParams, Params, ThetaParams

__all__ = ["ETS_CONFIGS", "FITS", "Fit", "apply"]

Fit = Callable[[Coarse, int], tuple[np.ndarray, np.ndarray, Params]]

ETS_CONFIGS: tuple[tuple[bool, bool], ...] = ((False, False), (True, False), (False, True), (True, True))
WEEK_DAYS = 7
# STL's LOESS smoothers evaluated every 7th point and interpolated between (statsmodels'
# documented speed-up): a weekly season of hourly bins costs 12 ms instead of 72.
STL_JUMPS = {"seasonal_jump": 7, "trend_jump": 7, "low_pass_jump": 7}


def _ets_model(y: np.ndarray, trend: bool, seasonal: bool, season: int) -> ETSModel:
    return ETSModel(
        pd.Series(y),  # its get_prediction needs a pandas index
        error="add",
        trend="add" if trend else None,
        damped_trend=trend,
        seasonal="add" if seasonal else None,
        seasonal_periods=season if seasonal else None,
        initialization_method="heuristic",
    )


def _ets_forecast(result: ETSResults, n: int, ahead: int) -> tuple[np.ndarray, np.ndarray]:
    pred = result.get_prediction(start=n, end=n + ahead - 1)
    mean = np.asarray(pred.predicted_mean, dtype=np.float64)
    return mean, np.sqrt(np.maximum(np.asarray(pred.forecast_variance, dtype=np.float64), 0.0))


def _fit_ets(y: np.ndarray, configs: tuple[tuple[bool, bool], ...], season: int) -> EtsParams:
    """The configuration with the smallest AICc and its parameters.

    Each configuration's optimiser returns its parameters alone (``return_params``): the
    results object would also compute a numerical Hessian, a third of a fit's cost,
    that nothing here reads. AICc is statsmodels' own (``ETSResults.aicc``: the
    log-likelihood at the parameters, one degree of freedom more than parameters).
    """
    best, best_aicc = None, np.inf
    for trend, seasonal in configs:
        if seasonal and y.size < 2 * season:
            continue
        model = _ets_model(y, trend, seasonal, season)
        params = np.asarray(model.fit(disp=False, return_params=True), dtype=np.float64)
        score = float(aicc(model.loglike(params), model.nobs, model.k_params + 1))
        if np.isfinite(score) and score < best_aicc:
            best, best_aicc = EtsParams(trend=trend, seasonal=seasonal, params=params.tolist()), score
    if best is None:
        raise ValueError("no ETS configuration could be fitted")
    return best


def _apply_ets(params: EtsParams, y: np.ndarray, season: int, ahead: int) -> tuple[np.ndarray, np.ndarray]:
    model = _ets_model(y, params.trend, params.seasonal, season)
    return _ets_forecast(model.smooth(np.asarray(params.params)), y.size, ahead)


def fit_auto_ets(coarse: Coarse, ahead: int) -> tuple[np.ndarray, np.ndarray, Params]:
    """AutoETS: the ETS configuration with the smallest AICc (module docstring)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter of the optimiser
        params = _fit_ets(coarse.values, ETS_CONFIGS, coarse.season)
        return (*_apply_ets(params, coarse.values, coarse.season, ahead), params)


def _cycle_at(cycle: np.ndarray, u: np.ndarray) -> np.ndarray:
    """A season's last cycle read at ``u`` bins after the cycle's last bin (cyclic, linear between bins)."""
    period = cycle.size
    pos = np.mod(u + period - 1, period)
    lo = np.floor(pos).astype(np.int64)
    frac = pos - lo
    return cycle[lo] * (1 - frac) + cycle[(lo + 1) % period] * frac  # type: ignore[no-any-return]


def fit_mstl(coarse: Coarse, ahead: int) -> tuple[np.ndarray, np.ndarray, Params]:
    """MSTL with daily (and weekly) seasons, ETS on the adjusted series (module docstring)."""
    y, day = coarse.values, coarse.season
    periods = (day, WEEK_DAYS * day) if y.size > 2 * WEEK_DAYS * day else (day,)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parts = MSTL(y, periods=periods, stl_kwargs=STL_JUMPS).fit()
        seasonal = np.asarray(parts.seasonal, dtype=np.float64).reshape(y.size, -1)
        adjusted = y - seasonal.sum(axis=1)
        ets = _fit_ets(adjusted, ETS_CONFIGS[:2], day)
        mean, std = _apply_ets(ets, adjusted, day, ahead)
    cycles = [seasonal[-period:, i] for i, period in enumerate(periods)]
    for cycle in cycles:
        mean = mean + cycle[np.arange(ahead) % cycle.size]
    params = MstlParams(
        periods=list(periods),
        seasonal=seasonal.sum(axis=1).astype("<f4").tobytes(),
        cycles=[c.tolist() for c in cycles],
        end_s=coarse.end_s,
        bin_s=coarse.bin_s,
        ets=ets,
    )
    return mean, std, params


def _apply_mstl(params: MstlParams, coarse: Coarse, ahead: int) -> tuple[np.ndarray, np.ndarray]:
    """MSTL's forecast with its seasons' last cycles and ETS held (module docstring)."""
    if params.bin_s != coarse.bin_s:
        raise ValueError(f"mstl fitted on {params.bin_s} s bins, the series has {coarse.bin_s} s bins")
    y = coarse.values
    # Bins after the fit's last bin: the history's (<= 0 up to the fit) and the forecast's.
    u = np.arange(1 - y.size, ahead + 1, dtype=np.float64) + (coarse.end_s - params.end_s) / coarse.bin_s
    season = sum((_cycle_at(np.asarray(c, dtype=np.float64), u) for c in params.cycles), np.zeros(u.size))
    fitted = np.frombuffer(params.seasonal, dtype="<f4").astype(np.float64)
    seen = (u > -fitted.size) & (u <= 0)  # the bins the fit saw
    season[seen] = np.interp(u[seen], np.arange(1 - fitted.size, 1, dtype=np.float64), fitted)
    mean, std = _apply_ets(params.ets, y - season[: y.size], coarse.season, ahead)
    return mean + season[y.size :], std


FITS: dict[str, Fit] = {"auto_ets": fit_auto_ets, "auto_theta": theta.fit, "mstl": fit_mstl}


def apply(params: Params, coarse: Coarse, ahead: int) -> tuple[np.ndarray, np.ndarray]:
    """The forecast of ``coarse`` by the model ``params`` belong to, with them held (a refresh).

    Raises:
        ValueError: The parameters do not fit this series (another bin size).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        match params:
            case EtsParams():
                return _apply_ets(params, coarse.values, coarse.season, ahead)
            case ThetaParams():
                return theta.apply(params, coarse, ahead)
            case MstlParams():
                return _apply_mstl(params, coarse, ahead)
