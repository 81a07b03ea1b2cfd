"""The statistical challengers: shapes, quantiles, the coarse mapping and the choice."""

from __future__ import annotations

import numpy as np
import pytest

from nordiqd import statistical
from nordiqd.statistical.coarse import MIN_BINS, to_coarse, to_steps

STEP = 300
DAY = 86400 // STEP
QS = (0.1, 0.5, 0.9)


def daily(days: float, *, noise: float = 1.0, seed: int = 0, level: float = 50.0) -> np.ndarray:
    """A daily sine with noise at 5-minute steps."""
    t = np.arange(int(days * DAY))
    rng = np.random.default_rng(seed)
    return level + 10 * np.sin(2 * np.pi * t / DAY) + rng.normal(0, noise, t.size)


def truth(days: float, horizon: int, level: float = 50.0) -> np.ndarray:
    t = np.arange(int(days * DAY), int(days * DAY) + horizon)
    return level + 10 * np.sin(2 * np.pi * t / DAY)


@pytest.mark.parametrize("model", statistical.MODELS)
def test_each_model_follows_a_daily_season_with_ordered_quantiles(model: str) -> None:
    horizon = 96
    out = statistical.forecast(model, daily(16), STEP, horizon, QS)
    assert out.shape == (horizon, 3)
    assert np.isfinite(out).all()
    assert (np.diff(out, axis=1) > 0).all()  # p10 < p50 < p90 everywhere
    # The median tracks the sine (amplitude 10) far better than its mean level would.
    err = np.abs(out[:, 1] - truth(16, horizon)).mean()
    assert err < 2.0, err
    # About 80 % of fresh noisy values land inside p10-p90.
    fresh = truth(16, horizon) + np.random.default_rng(9).normal(0, 1.0, horizon)
    inside = ((fresh >= out[:, 0]) & (fresh <= out[:, 2])).mean()
    assert 0.6 <= inside <= 0.97, inside


def test_mstl_uses_a_weekly_season_given_enough_weeks() -> None:
    t = np.arange(22 * DAY)
    weekly = np.where((t // DAY) % 7 >= 5, -15.0, 0.0)  # quiet weekends
    y = 50 + 10 * np.sin(2 * np.pi * t / DAY) + weekly + np.random.default_rng(1).normal(0, 1, t.size)
    # Days 5 and 6 of every week are quiet; the forecast day (22) is not, and the weekly
    # season must say so.
    horizon = 96
    out = statistical.forecast("mstl", y, STEP, horizon, QS)
    future = np.arange(22 * DAY, 22 * DAY + horizon)
    expect = 50 + 10 * np.sin(2 * np.pi * future / DAY) + np.where((future // DAY) % 7 >= 5, -15.0, 0.0)
    assert np.abs(out[:, 1] - expect).mean() < 3.0


def test_too_short_or_gappy_history_gives_nan_not_an_error() -> None:
    short = daily(1.5)
    for model in statistical.MODELS:
        assert np.isnan(statistical.forecast(model, short, STEP, 24, QS)).all()
    empty = np.full(10 * DAY, np.nan)
    assert np.isnan(statistical.forecast("auto_ets", empty, STEP, 24, QS)).all()


def test_gaps_are_interpolated_and_only_the_last_days_are_used() -> None:
    y = daily(20)
    y[-3 * DAY : -2 * DAY] = np.nan  # a missing day
    coarse = to_coarse(y, STEP, days=15)
    assert coarse is not None
    assert coarse.values.size == 15 * 24
    assert np.isfinite(coarse.values).all()
    assert coarse.per_bin == 12 and coarse.season == 24
    assert 0.5 < coarse.within_var < 1.5 + 0.5  # noise variance 1 plus the sine within an hour


def test_coarse_needs_two_days_and_a_whole_step() -> None:
    assert to_coarse(daily(MIN_BINS / 24 - 0.1), STEP) is None
    with pytest.raises(ValueError, match="multiple"):
        to_coarse(daily(3), 420)


def test_to_steps_starts_from_the_last_bin_and_widens_with_spread() -> None:
    coarse = to_coarse(np.full(3 * DAY, 10.0), STEP)
    assert coarse is not None
    out = to_steps(coarse, np.array([20.0, 20.0, 20.0]), np.array([1.0, 2.0, 2.0]), 24, QS)
    # Linear from 10 (centre of the last bin, 6.5 steps back) to 20 (centre of the first
    # bin, 5.5 steps ahead), then through the forecast bins' centres.
    assert out[0, 1] == pytest.approx(10 + 10 * 6.5 / 12)
    assert out[5, 1] == pytest.approx(10 + 10 * 11.5 / 12)
    assert out[6, 1] == pytest.approx(20.0)
    assert out[-1, 1] == pytest.approx(20.0)
    assert out[-1, 2] - out[-1, 0] > out[6, 2] - out[6, 0] > 0


def test_unknown_model_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown statistical model 'arima'"):
        statistical.forecast("arima", daily(3), STEP, 12, QS)


def test_choose_picks_a_seasonal_model_for_a_seasonal_series() -> None:
    assert statistical.choose(daily(17), STEP, 96) in statistical.MODELS
    assert statistical.choose(daily(1.5), STEP, 24) is None


def test_the_chosen_model_continues_a_steady_climb() -> None:
    # A steady climb with no season: the model chosen on the series' own last horizon
    # must be one whose forecast keeps climbing.
    t = np.arange(16 * DAY)
    y = 10 + 0.01 * t + np.random.default_rng(3).normal(0, 0.3, t.size)
    picked = statistical.choose(y, STEP, 96)
    forecast = statistical.forecast(picked or "", y, STEP, 96, QS)[:, 1]
    future = 10 + 0.01 * np.arange(t.size, t.size + 96)
    assert np.abs(forecast - future).mean() < 1.0


@pytest.mark.parametrize("model", statistical.MODELS)
def test_a_constant_series_is_forecast_as_its_value(model: str) -> None:
    # Float noise of 1.2 everywhere once sent Theta's trend to +20 an hour.
    y = np.full(16 * DAY, 1.2) + np.random.default_rng(0).choice([0.0, 2e-16], 16 * DAY)
    out = statistical.forecast(model, y, STEP, 96, QS)
    assert np.allclose(out, 1.2, atol=1e-6)
