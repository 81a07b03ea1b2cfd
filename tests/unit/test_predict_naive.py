"""The seasonal-naive quantile baseline served before any model exists."""

from __future__ import annotations

import numpy as np
import pytest

from nordiqd.model.params import ModelSpec
from nordiqd.predict.naive import change_scale, naive_forecast, seasonal_naive_quantiles

SPEC = ModelSpec(targets=("cpu_user_pct", "load_average"), quantiles=(0.1, 0.5, 0.9))


def daily_sine(n_servers: int, start: int, length: int, season: int) -> np.ndarray:
    t = start + np.arange(length)
    phase = np.arange(n_servers)[:, None] * 0.3
    return 50.0 + 30.0 * np.sin(2 * np.pi * t[None, :] / season + phase)


def test_a_pure_daily_sine_is_reproduced_exactly_by_the_median() -> None:
    season, horizon = SPEC.season_steps, SPEC.horizon_steps
    window = daily_sine(4, 0, SPEC.encoder_steps, season)  # [n, T]
    windows = np.stack([window, window / 10.0], axis=-1)  # [n, T, 2]
    values = naive_forecast(windows, SPEC)
    assert values.shape == (4, 2, horizon, 3) and values.dtype == np.float32
    future = daily_sine(4, SPEC.encoder_steps, horizon, season)
    np.testing.assert_array_equal(values[:, 0, :, 1], future.astype(np.float32))
    np.testing.assert_allclose(values[:, 1, :, 1], future / 10.0, rtol=1e-6)


def test_quantiles_are_ordered_and_widen_with_the_horizon() -> None:
    rng = np.random.default_rng(0)
    windows = np.cumsum(rng.normal(0, 2, (50, 288, 2)), axis=1) + 50
    windows[rng.random(windows.shape) < 0.2] = np.nan
    values = seasonal_naive_quantiles(windows, horizon=96, quantiles=(0.05, 0.1, 0.5, 0.9, 0.95), season=288)
    assert np.isfinite(values).all()
    assert (np.diff(values, axis=-1) >= 0).all()
    width = values[..., -1] - values[..., 0]
    assert (np.diff(width, axis=-1) >= -1e-4).all()
    assert (width[..., -1] > width[..., 0]).all()  # a random walk's spread grows


def test_the_spread_is_the_rms_of_the_series_own_h_step_changes() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(0, 1, (3, 60)).cumsum(axis=1)
    x[0, 10:20] = np.nan
    got = change_scale(x, 30)
    for s in range(3):
        brute = []
        for h in range(1, 31):
            d = x[s, h:] - x[s, :-h]
            brute.append(np.sqrt(np.nanmean(d**2)))
        np.testing.assert_allclose(got[s], np.maximum.accumulate(brute), rtol=1e-9)


def test_short_windows_fall_back_to_the_last_value_and_empty_ones_are_nan() -> None:
    windows = np.full((2, 288, 2), np.nan)
    windows[0, -10:, 0] = np.arange(10.0)
    windows[0, -10:, 1] = 3.0
    values = naive_forecast(windows, SPEC)
    np.testing.assert_array_equal(values[0, 0, :, 1], 9.0)  # no bucket a day back: last value
    np.testing.assert_array_equal(values[0, 1], 3.0)  # a flat series has no spread
    assert np.isnan(values[1]).all()
    one = np.full((1, 288, 2), np.nan)
    one[0, -1] = 5.0
    assert np.isfinite(naive_forecast(one, SPEC)).all()  # a single sample still forecasts


def test_values_are_clipped_to_each_metrics_valid_range() -> None:
    rng = np.random.default_rng(2)
    windows = np.stack([97 + rng.normal(0, 3, (5, 288)), 0.5 + rng.normal(0, 3, (5, 288)).clip(-0.5)], -1)
    values = naive_forecast(windows, SPEC)
    assert values[:, 0].max() <= 100.0 and values[:, 0, :, -1].max() == pytest.approx(100.0)
    assert values.min() >= 0.0 and values[:, 1, :, 0].min() == 0.0
    unclipped = seasonal_naive_quantiles(windows, horizon=96, quantiles=(0.1, 0.5, 0.9), season=288)
    assert unclipped[:, 0].max() > 100.0 and unclipped[:, 1].min() < 0.0
    big = naive_forecast(np.full((1, 288, 2), 250.0), SPEC)
    assert big[0, 1].min() == 250.0  # load_average is not a percentage: no upper bound
