"""The free forecasts a model has to beat, with quantiles.

Point forecasts (medians):

- ``naive``: the last value before the origin, held flat.
- ``seasonal_naive_1d``: what the predictor serves before a model exists
  (``predict.naive.naive_forecast``): the value one day earlier, over the model's
  encoder window, falling back to the last value where that bucket is missing.
- ``seasonal_naive_1w``: the value one week earlier. Only where history allows: a
  server without that week of history (or with a gap there) gets no forecast and is not
  scored for this model (the report's ``windows`` tells how many were).
- ``linear_trend``: Prometheus' ``predict_linear``: a least-squares line through the
  last ``lookback`` steps (default one horizon: look back as far as ahead), extended.

Quantiles, for every baseline the served rule (``predict.naive``): median plus
``z_q`` times the RMS of the series' own h-step changes over the encoder window, then
clipped to the metric's valid range. For ``naive`` that is exactly its own in-sample
error; for the others an approximation, which the coverage column judges.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from nordiqd.backtest.engine import Forecaster, Origin
from nordiqd.model.baseline import last_finite
from nordiqd.model.params import ModelSpec
from nordiqd.predict.naive import change_scale, naive_forecast
from nordiqd.predict.risk import clip

DAYS_PER_WEEK = 7


def _series(origin: Origin, steps: int | None = None) -> np.ndarray:
    """History as [n, k, T], the last ``steps`` steps (all when None)."""
    hist = origin.history if steps is None else origin.history[:, -steps:]
    return np.moveaxis(np.asarray(hist, dtype=np.float64), 1, 2)


def with_band(median: np.ndarray, origin: Origin, spec: ModelSpec) -> np.ndarray:
    """[n, k, H] medians to [n, k, H, Q] quantiles by the served spread rule, clipped."""
    sigma = change_scale(_series(origin, spec.encoder_steps), spec.horizon_steps)
    z = np.array([0.0 if q == 0.5 else NormalDist().inv_cdf(q) for q in spec.quantiles])
    return clip(median[..., None] + sigma[..., None] * z, spec.targets, axis=1)


@dataclass(frozen=True)
class Naive:
    """Last value, held flat."""

    spec: ModelSpec
    name: str = "naive"

    def forecast(self, origin: Origin) -> np.ndarray:
        """[n, k, H, Q] forecasts."""
        last = last_finite(_series(origin, self.spec.encoder_steps))
        median = np.repeat(last[..., None], self.spec.horizon_steps, axis=-1)
        return with_band(median, origin, self.spec)


@dataclass(frozen=True)
class ServedSeasonalNaive:
    """The predictor's own seasonal-naive forecast (1-day lag, last-value fallback)."""

    spec: ModelSpec
    name: str = "seasonal_naive_1d"

    def forecast(self, origin: Origin) -> np.ndarray:
        """[n, k, H, Q] forecasts, exactly as ``predict.naive.naive_forecast`` serves them."""
        window = np.asarray(origin.history[:, -self.spec.encoder_steps :], dtype=np.float64)
        return naive_forecast(window, self.spec).astype(np.float64)


@dataclass(frozen=True)
class SeasonalNaive:
    """The value ``lag`` steps earlier; NaN (not scored) where history lacks it."""

    spec: ModelSpec
    lag: int
    name: str

    def forecast(self, origin: Origin) -> np.ndarray:
        """[n, k, H, Q] forecasts; NaN for a series whose lagged values are missing."""
        series = _series(origin)
        t, horizon = series.shape[-1], self.spec.horizon_steps
        src = t + np.arange(horizon) - self.lag
        median = np.full(series.shape[:-1] + (horizon,), np.nan)
        ok = (src >= 0) & (src < t)
        median[..., ok] = series[..., src[ok]]
        # A series missing any lagged step is left out whole: no mixed forecasts.
        median[~np.isfinite(median).all(axis=-1)] = np.nan
        return with_band(median, origin, self.spec)


def weekly(spec: ModelSpec) -> SeasonalNaive:
    """Seasonal naive with a one-week lag."""
    return SeasonalNaive(spec=spec, lag=DAYS_PER_WEEK * spec.season_steps, name="seasonal_naive_1w")


@dataclass(frozen=True)
class LinearTrend:
    """Prometheus ``predict_linear``: least squares over the last ``lookback`` steps."""

    spec: ModelSpec
    lookback: int
    name: str = "linear_trend"

    def forecast(self, origin: Origin) -> np.ndarray:
        """[n, k, H, Q] forecasts; a series with one value in the lookback stays flat."""
        y = _series(origin, self.lookback)
        w = y.shape[-1]
        x = np.arange(w, dtype=np.float64) - (w - 1)  # 0 at the last step before the origin
        m = np.isfinite(y)
        y0 = np.where(m, y, 0.0)
        n = m.sum(-1)
        sx, sy = (m * x).sum(-1), y0.sum(-1)
        sxx, sxy = (m * x * x).sum(-1), (y0 * x).sum(-1)
        den = n * sxx - sx * sx
        with np.errstate(invalid="ignore", divide="ignore"):
            slope = np.where(den > 0, (n * sxy - sx * sy) / den, 0.0)
            intercept = np.where(n > 0, (sy - slope * sx) / n, np.nan)
        ahead = np.arange(1, self.spec.horizon_steps + 1, dtype=np.float64)
        median = intercept[..., None] + slope[..., None] * ahead
        return with_band(median, origin, self.spec)


def all_baselines(spec: ModelSpec, *, lookback: int | None = None) -> list[Forecaster]:
    """Every baseline of the module docstring, in report order."""
    return [
        Naive(spec),
        ServedSeasonalNaive(spec),
        weekly(spec),
        LinearTrend(spec, lookback=lookback or spec.horizon_steps),
    ]
