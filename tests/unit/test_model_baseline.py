"""Seasonal-naive forecasts, MASE and the model spec's checks."""

from __future__ import annotations

import msgspec
import numpy as np
import pytest

from nordiqd.model.baseline import last_finite, mase, naive_scale, pinball_loss, seasonal_naive
from nordiqd.model.params import ModelSpec


def test_seasonal_naive_repeats_the_last_season() -> None:
    history = np.arange(10.0)
    np.testing.assert_array_equal(seasonal_naive(history, 3, season=4), [6.0, 7.0, 8.0])


def test_seasonal_naive_falls_back_to_last_value_for_short_history_and_nans() -> None:
    np.testing.assert_array_equal(seasonal_naive(np.array([1.0, 2.0]), 3, season=5), [2.0, 2.0, 2.0])
    history = np.array([[1.0, np.nan, 3.0, 4.0]])
    np.testing.assert_array_equal(seasonal_naive(history, 2, season=3), [[4.0, 3.0]])


def test_last_finite_skips_trailing_nans_and_reports_empty_series() -> None:
    out = last_finite(np.array([[1.0, 2.0, np.nan], [np.nan, np.nan, np.nan]]))
    assert out[0] == 2.0 and np.isnan(out[1])


def test_mase_scales_by_in_sample_naive_error() -> None:
    insample = np.array([0.0, 2.0, 4.0])  # naive step error 2
    assert mase(np.array([5.0, 6.0]), np.array([4.0, 4.0]), insample) == pytest.approx(0.75)
    assert naive_scale(np.array([1.0, 1.0, 1.0])) > 0  # flat history does not divide by zero


def test_mase_pools_the_scale_per_target_so_flat_series_cannot_dominate() -> None:
    # [series, targets, T]: target 0 moves by 1 per step on both series; target 1 is flat
    # at 0 on series 0 and then jumps to 5 in the horizon (a swap onset).
    insample = np.array(
        [[[0.0, 1.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0]], [[2.0, 3.0, 2.0, 3.0], [0.0, 1.0, 0.0, 1.0]]]
    )
    actual = np.array([[[1.0, 1.0], [5.0, 5.0]], [[3.0, 3.0], [1.0, 1.0]]])
    forecast = np.array([[[0.0, 0.0], [0.0, 0.0]], [[3.0, 3.0], [1.0, 1.0]]])
    # Target 0: errors 1 + 0 over scales 1 + 1; target 1: errors 5 + 0 over 0 + 1.
    assert mase(actual, forecast, insample) == pytest.approx((0.5 + 5.0) / 2)
    # A target flat on every series has no scale and is left out, not averaged as 0 or inf.
    flat = insample.copy()
    flat[:, 1] = 0.0
    assert mase(actual, forecast, flat) == pytest.approx(0.5)
    assert np.isnan(mase(actual[:, 1], forecast[:, 1], flat[:, 1]))


def test_pinball_loss_weighs_under_and_over_forecasts_by_quantile() -> None:
    q = np.array([0.1, 0.9])
    loss = pinball_loss(np.array([1.0]), np.array([[0.0, 0.0]]), q)
    assert loss == pytest.approx((0.1 + 0.9) / 2)


def test_spec_rejects_bad_values_naming_them() -> None:
    with pytest.raises(msgspec.ValidationError, match="quantiles"):
        ModelSpec.from_dict({"quantiles": [0.1, 0.9]})
    with pytest.raises(msgspec.ValidationError, match="hidden_sizes"):
        ModelSpec.from_dict({"hidden_sizes": 3})
    spec = ModelSpec.from_dict({"targets": ["cpu_user_pct"], "encoder_steps": 12})
    assert spec.targets == ("cpu_user_pct",) and spec.season_steps == 288
    assert ModelSpec.from_dict(spec.to_dict()) == spec
