"""AutoTheta: statsmodels' Theta method, fitted in full or re-filtered with its parameters.

``fit`` searches: statsmodels ``ThetaModel`` (the standard Theta method) with its own test
for a daily season; the variant, additive or multiplicative deseasonalising
(multiplicative only for positive series) and theta 1.5, 2 or 3, with the smallest
absolute error over the series' last day forecast from what precedes it; then the SES
parameter ``alpha`` by the library's optimiser on the whole series.

``apply`` re-runs what ``ThetaModel.fit`` does after its search, with ``alpha`` held:
the library's seasonal decomposition (same variant), the least-squares drift ``b0``
(closed form), the SES level recursion at ``alpha`` from the first value (the library's
SES with known initial level, as ``ThetaModel.fit`` sets it up, run as one ``lfilter``
pass: the library's own filter builds a results object costing three times the rest)
for the one-step level, and the library's ``ThetaModelResults`` for the forecast. On the
data ``fit`` saw it reproduces ``fit``'s forecast (a unit test holds it to that).
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.signal import lfilter
from statsmodels.tsa.forecasting.theta import ThetaModel, ThetaModelResults
from statsmodels.tsa.seasonal import seasonal_decompose

from nordiqd.statistical.coarse import Coarse
from nordiqd.statistical.params import ThetaParams

__all__ = ["THETAS", "apply", "fit"]

THETAS = (1.5, 2.0, 3.0)


def _theta(y: np.ndarray, season: int, method: str) -> ThetaModelResults:
    return ThetaModel(y, period=season, deseasonalize=True, use_test=True, method=method).fit()


def _forecast(
    fit: ThetaModelResults, y: np.ndarray, ahead: int, thetas: tuple[float, ...]
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
    comp = fit.forecast_components(steps=ahead)
    trend, ses = np.asarray(comp["trend"], dtype=np.float64), np.asarray(comp["ses"], dtype=np.float64)
    seasonal = np.asarray(comp["seasonal"], dtype=np.float64)
    deseasonalize = bool(fit.model.deseasonalize)
    multiplicative = deseasonalize and str(fit.model.method).startswith("mul")
    alpha, b0 = float(fit.params["alpha"]), float(fit.params["b0"])
    x = y
    if deseasonalize:  # the past's factors: the forecast's cycle (``ahead`` >= a period) continues them
        past = seasonal[(np.arange(y.size) - y.size) % int(fit.model.period)]
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


def fit(coarse: Coarse, ahead: int) -> tuple[np.ndarray, np.ndarray, ThetaParams]:
    """AutoTheta's search and forecast: (mean, std, what it found) (module docstring)."""
    y, season = coarse.values, coarse.season
    methods = ("additive", "multiplicative") if np.all(y > 0) else ("additive",)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        best, best_err = ("additive", 2.0), np.inf
        if y.size >= 3 * season:  # two days to fit on, one to check
            head, tail = y[:-season], y[-season:]
            for method in methods:
                paths = _forecast(_theta(head, season, method), head, season, THETAS)
                for theta, (mean, _) in zip(THETAS, paths, strict=True):
                    err = float(np.mean(np.abs(mean - tail)))
                    if err < best_err:
                        best, best_err = (method, theta), err
        result = _theta(y, season, best[0])
        # At least a cycle ahead: the past's seasonal factors are read off the forecast's.
        mean, std = _forecast(result, y, max(ahead, season), (best[1],))[0]
    params = ThetaParams(
        method=str(result.model.method),  # the one used: "mul" falls back to "add" on factors <= 0
        # The outcome of fit()'s seasonality test; statsmodels 0.15 has no public accessor.
        seasonal=bool(result.model._has_seasonality),
        theta=best[1],
        alpha=float(result.params["alpha"]),
    )
    return mean[:ahead], std[:ahead], params


def apply(params: ThetaParams, coarse: Coarse, ahead: int) -> tuple[np.ndarray, np.ndarray]:
    """The Theta forecast of ``coarse`` with ``params`` held: a filter pass (module docstring)."""
    y, season = coarse.values, coarse.season
    method, factors, x = params.method, np.empty(0), y
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if params.seasonal:  # as ThetaModel's own deseasonalising
            parts = seasonal_decompose(y, model=method, period=season)
            if method.startswith("mul") and parts.seasonal.min() <= 0:
                method = "add"
                parts = seasonal_decompose(y, model=method, period=season)
            x = y / parts.seasonal if method.startswith("mul") else y - parts.seasonal
            factors = np.asarray(parts.seasonal[:season], dtype=np.float64)
        trend = np.column_stack([np.ones(x.size), np.arange(x.size, dtype=np.float64)])
        b0 = float(np.linalg.lstsq(trend, x, rcond=None)[0][1])
        # l_t = alpha x_t + (1 - alpha) l_{t-1}, l_0 = x_0: the level after the last value.
        alpha = params.alpha
        one_step = float(lfilter([alpha], [1.0, alpha - 1.0], x, zi=[(1 - alpha) * x[0]])[0][-1])
        model = ThetaModel(y, period=season, deseasonalize=params.seasonal, use_test=False, method=method)
        result = ThetaModelResults(b0, params.alpha, None, one_step, factors, False, model)
        mean, std = _forecast(result, y, max(ahead, season), (params.theta,))[0]
    return mean[:ahead], std[:ahead]
