"""Seasonal-naive forecasts and MASE, in plain numpy.

The predictor serves the seasonal-naive forecast before any model exists, training
reports the MASE of the model next to the one of this baseline, and the backtest reuses
both. Arrays put time on the last axis so a whole fleet is one call.
"""

from __future__ import annotations

import warnings

import numpy as np

# A flat series' naive scale is floored here so a per-series ratio never divides by
# zero; a scale at the floor means "flat" (the backtest skips those, ``mase`` pools).
_MIN_SCALE = 1e-6


def last_finite(history: np.ndarray) -> np.ndarray:
    """Last finite value along the last axis (NaN where a series has none).

    Args:
        history: Array [..., T].

    Returns:
        Array [...] of the last finite value of each series.
    """
    history = np.asarray(history, dtype=np.float64)
    finite = np.isfinite(history)
    t = history.shape[-1]
    # Index of the last finite entry: argmax over the reversed mask.
    idx = t - 1 - np.argmax(finite[..., ::-1], axis=-1)
    out = np.take_along_axis(history, idx[..., None], axis=-1)[..., 0]
    return np.where(finite.any(axis=-1), out, np.nan)


def seasonal_naive(history: np.ndarray, horizon: int, season: int) -> np.ndarray:
    """Forecast each step with the value one season earlier.

    Where that value is not in the history (history shorter than a season) or is NaN,
    the last finite value is used instead, so short or gappy windows still forecast.

    Args:
        history: Array [..., T], oldest first, the last entry right before the horizon.
        horizon: Steps to forecast.
        season: Season length in steps (a day).

    Returns:
        Array [..., horizon].
    """
    history = np.asarray(history, dtype=np.float64)
    t = history.shape[-1]
    fallback = last_finite(history)[..., None]
    out = np.broadcast_to(fallback, history.shape[:-1] + (horizon,)).copy()
    # Step h (0-based) of the forecast lies at T + h; one season earlier is T + h - season.
    src = t + np.arange(horizon) - season
    ok = (src >= 0) & (src < t)
    if ok.any():
        seasonal = history[..., src[ok]]
        filled = np.where(np.isfinite(seasonal), seasonal, out[..., ok])
        out[..., ok] = filled
    return out


def naive_scale(insample: np.ndarray, lag: int = 1) -> np.ndarray:
    """Mean absolute lag-``lag`` difference of the in-sample series (the MASE denominator).

    Args:
        insample: Array [..., T] of history.
        lag: Difference lag; 1 is the one-step naive forecast.

    Returns:
        Array [...], floored at a small positive value; NaN where T <= lag.
    """
    insample = np.asarray(insample, dtype=np.float64)
    if insample.shape[-1] <= lag:
        return np.full(insample.shape[:-1], np.nan)
    diffs = np.abs(insample[..., lag:] - insample[..., :-lag])
    with np.errstate(invalid="ignore"):
        scale = np.nanmean(diffs, axis=-1)
    return np.maximum(scale, _MIN_SCALE)


def mase(actual: np.ndarray, forecast: np.ndarray, insample: np.ndarray, lag: int = 1) -> float:
    """Mean absolute scaled error, the scale pooled per target across series.

    For each target, the forecast MAE summed over series is divided by the in-sample
    naive MAE summed over the same series; the targets' ratios are then averaged, so
    metrics of different units weigh the same.

    Why pooled and not a mean of per-series ratios: a series that is flat in its
    history (swap at 0 on most servers) has a naive scale of about zero, so its ratio
    is either 0 or, when the metric moves in the horizon (swap starting to grow), in the
    hundreds of thousands; one such server made the fleet mean meaningless (300-2,500
    on a simulated fleet). Skipping flat series would fix exact zeros but not near-flat
    ones, and would hide exactly the onsets a forecast should catch. Pooled, a flat
    series still adds its error to the numerator but cannot blow up the denominator;
    a target that is flat on every series has no scale and is left out.

    Args:
        actual: Array [series, ..., H] of true values; the axes between the first and
            the last (targets) are kept apart. A 1-D array is one series.
        forecast: Array like ``actual`` of point forecasts.
        insample: Array [series, ..., T] of the history the forecasts were made from.
        lag: Lag of the scaling naive forecast (1 unless told otherwise).

    Returns:
        The mean over targets; NaN when no target has a usable scale.
    """
    actual = np.asarray(actual, dtype=np.float64)
    forecast = np.asarray(forecast, dtype=np.float64)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN series: NaN, skipped below
        mae = np.atleast_1d(np.nanmean(np.abs(actual - forecast), axis=-1))
    scale = np.atleast_1d(naive_scale(insample, lag))
    usable = np.isfinite(mae) & np.isfinite(scale)
    error = np.where(usable, mae, 0.0).sum(axis=0)
    # naive_scale floors each series at _MIN_SCALE: undo it so flat series add nothing.
    pooled = np.where(usable & (scale > _MIN_SCALE), scale, 0.0).sum(axis=0)
    ratios = (error / np.where(pooled > _MIN_SCALE, pooled, np.nan)).reshape(-1)
    ratios = ratios[np.isfinite(ratios)]
    return float(ratios.mean()) if ratios.size else float("nan")


def pinball_loss(actual: np.ndarray, forecast: np.ndarray, quantiles: np.ndarray) -> float:
    """Mean quantile (pinball) loss.

    Args:
        actual: Array [..., H].
        forecast: Array [..., H, Q].
        quantiles: Array [Q].

    Returns:
        The loss averaged over every entry.
    """
    err = np.asarray(actual, dtype=np.float64)[..., None] - np.asarray(forecast, dtype=np.float64)
    q = np.asarray(quantiles, dtype=np.float64)
    return float(np.nanmean(np.maximum(q * err, (q - 1.0) * err)))
