"""The seasonal-naive quantile baseline the predictor serves before any model exists.

For each server and target, from its window of step means (oldest first, NaN gaps):

- **Median** (the 0.5 quantile): the value one day earlier (``season`` steps), through
  ``nordiqd.model.baseline.seasonal_naive``; where that bucket is not in the window (a
  window shorter than a day, a history younger than a day) or is a gap, the last
  finite value of the window.
- **Spread**: ``sigma_h``, the root mean square of the series' own h-step changes in the
  window, ``sqrt(mean over t of (y[t+h] - y[t])^2)`` over pairs where both buckets have
  data, computed for every h at once from FFT correlations of the gap-masked series.
  It is made non-decreasing in h (uncertainty does not shrink with the horizon), and
  where fewer than ``MIN_PAIRS`` pairs exist the previous h's value carries on (h = 1
  takes any number of pairs, so a short history still gets a band).
- **Quantile q** at step h: ``median + z_q * sigma_h`` (``z_q`` the standard normal
  quantile), clipped to the metric's valid range (``risk.clip``).

Why this is honest: for the last-value fallback the h-step change *is* the forecast
error, so the band is that error's own empirical scale; for the seasonal forecast it is
an approximation (yesterday's error would need two days of window), wide where the
series is volatile and narrow where it is calm. A window with a single sample has no
changes and gets a zero-width band. The cost is a few FFTs over the fleet: 1,000
servers x 5 targets x 288 steps take a few tens of milliseconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from statistics import NormalDist

import numpy as np

from nordiqd.model.baseline import seasonal_naive
from nordiqd.model.params import ModelSpec
from nordiqd.predict.risk import clip

__all__ = ["MIN_PAIRS", "change_scale", "naive_forecast", "seasonal_naive_quantiles"]

MIN_PAIRS = 12  # h-step change pairs needed before sigma_h is trusted


def change_scale(series: np.ndarray, horizon: int) -> np.ndarray:
    """RMS of each series' h-step changes for h = 1..horizon, skipping gaps.

    Args:
        series: Array [..., T], NaN for gaps.
        horizon: Largest h.

    Returns:
        Array [..., horizon], non-decreasing in h; 0 where a series has no two samples.
    """
    x = np.asarray(series, dtype=np.float64)
    t = x.shape[-1]
    mask = np.isfinite(x).astype(np.float64)
    x0 = np.where(mask > 0, x, 0.0)
    size = 2 * t  # zero padding: circular correlation becomes linear
    fm = np.fft.rfft(mask, n=size)
    fx = np.fft.rfft(x0, n=size)
    fq = np.fft.rfft(x0 * x0, n=size)
    # sum_t m_t m_{t+h} (x_{t+h} - x_t)^2 = corr(m, x^2 m) + corr(x^2 m, m) - 2 corr(x m, x m)
    sq = np.fft.irfft(2.0 * (np.conj(fm) * fq).real - 2.0 * (np.abs(fx) ** 2), n=size)
    pairs = np.fft.irfft(np.abs(fm) ** 2, n=size)
    hs = np.arange(1, horizon + 1)
    inside = hs < t
    out = np.full(x.shape[:-1] + (horizon,), np.nan)
    h_in = hs[inside]
    n_pairs = np.rint(pairs[..., h_in])
    with np.errstate(invalid="ignore", divide="ignore"):
        rms = np.sqrt(np.maximum(sq[..., h_in], 0.0) / n_pairs)
    out[..., inside] = np.where(n_pairs >= MIN_PAIRS, rms, np.nan)
    if h_in.size:  # a short history still gets a band from its one-step changes
        out[..., 0] = np.where(np.isnan(out[..., 0]) & (n_pairs[..., 0] >= 1), rms[..., 0], out[..., 0])
    out = np.fmax.accumulate(out, axis=-1)
    return np.nan_to_num(out, nan=0.0)


def seasonal_naive_quantiles(
    windows: np.ndarray,
    *,
    horizon: int,
    quantiles: Sequence[float],
    season: int,
    metrics: Sequence[str] | None = None,
) -> np.ndarray:
    """Seasonal-naive quantile forecasts for a fleet (see the module docstring).

    Args:
        windows: Array [n, T, k] of step means, oldest first, NaN for gaps; the last
            slot is the bucket right before the first forecast step.
        horizon: Steps to forecast.
        quantiles: Increasing quantile levels in (0, 1); 0.5 gets the median exactly.
        season: Seasonal lag in steps (one day).
        metrics: Names of the k metrics; given, values are clipped to valid ranges.

    Returns:
        Array [n, k, horizon, n_quantiles] float32 (``QuantileForecasts.values`` layout);
        NaN for a target whose window holds no data.
    """
    series = np.moveaxis(np.asarray(windows, dtype=np.float64), 1, 2)  # [n, k, T]
    median = seasonal_naive(series, horizon, season)  # [n, k, H]
    sigma = change_scale(series, horizon)  # [n, k, H]
    z = np.array([0.0 if q == 0.5 else NormalDist().inv_cdf(q) for q in quantiles])
    values = median[..., None] + sigma[..., None] * z
    if metrics is not None:
        values = clip(values, metrics, axis=1)
    return values.astype(np.float32)


def naive_forecast(windows: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """``seasonal_naive_quantiles`` with the model spec's horizon, quantiles, season and targets.

    ``windows`` is [n, T, len(spec.targets)] in ``spec.targets`` order (T is usually
    ``spec.encoder_steps``).
    """
    return seasonal_naive_quantiles(
        windows,
        horizon=spec.horizon_steps,
        quantiles=spec.quantiles,
        season=spec.season_steps,
        metrics=spec.targets,
    )
