"""Risk scores and alert levels from forecasts and current values against thresholds."""

from __future__ import annotations

import numpy as np
import pytest

from nordiqd.config import AlertsConfig
from nordiqd.predict.risk import LEVELS, assess, clip, summary

TARGETS = ("cpu_user_pct", "mem_used_pct")
METRICS = ("cpu_user_pct", "mem_used_pct", "disk_usage_pct", "uptime_days")
QUANTILES = (0.1, 0.5, 0.9)
H, STEP = 96, 300
ALERTS = AlertsConfig()  # cpu_user 80/95, mem_used 85/95, disk_usage 85/95


def forecast(cpu: np.ndarray, mem: float = 40.0, spread: float = 0.0) -> np.ndarray:
    """[n, 2, H, 3] with the given p50 cpu paths [n, H], p10/p90 at -/+ spread."""
    cpu = np.atleast_2d(cpu)
    p50 = np.stack([cpu, np.full_like(cpu, mem)], axis=1)
    return np.stack([p50 - spread, p50, p50 + spread], axis=-1)


def current(n: int, cpu: float = 30.0, disk: float = 50.0) -> np.ndarray:
    return np.tile([cpu, 40.0, disk, 12.0], (n, 1))


def run(values: np.ndarray | None, cur: np.ndarray):  # type: ignore[no-untyped-def]
    return assess(
        values,
        cur,
        targets=TARGETS,
        metrics=METRICS,
        quantiles=QUANTILES,
        warning=ALERTS.warning,
        critical=ALERTS.critical,
        step_seconds=STEP,
    )


def rising(cross_step: int, threshold: float = 95.0, start: float = 30.0) -> np.ndarray:
    """A p50 path whose first value >= threshold is at forecast step ``cross_step`` (1-based)."""
    slope = (threshold - start) / cross_step * (1 + 1e-9)  # reach the threshold despite rounding
    return start + slope * np.arange(1, H + 1)


@pytest.mark.parametrize("k", [1, 7, 40, 96])
def test_a_rising_series_crossing_critical_at_step_k_is_critical_in_k_steps(k: int) -> None:
    r = run(forecast(rising(k)), current(1))
    assert r.alert_level == ["critical"]
    assert r.metric == ["cpu_user_pct"] and r.threshold[0] == 95.0
    assert r.minutes[0] == pytest.approx(k * STEP / 60)
    info = r.for_server(0)
    assert info["crossed"] == "critical" and info["minutes_to_crossing"] == pytest.approx(k * 5.0)
    assert 70.0 <= r.score[0] <= 100.0


def test_a_flat_low_series_is_ok_with_a_low_score() -> None:
    r = run(forecast(np.full(H, 20.0), spread=5.0), current(1, cpu=20.0))
    assert r.alert_level == ["ok"] and r.score[0] < 20.0
    assert np.isnan(r.minutes[0]) and r.for_server(0)["crossed"] is None


def test_the_score_is_monotone_in_crossing_time_overshoot_and_likelihood() -> None:
    steps = [1, 5, 20, 60, 96]
    crit = run(forecast(np.stack([rising(k) for k in steps])), current(len(steps)))
    assert (np.diff(crit.score) < 0).all()  # later crossings score lower
    warn = run(forecast(np.stack([rising(k, 80.0, 30.0).clip(max=90.0) for k in steps])), current(len(steps)))
    assert warn.alert_level == ["warning"] * len(steps) and (np.diff(warn.score) < 0).all()
    assert crit.score.min() > warn.score.max()  # every critical above every warning
    # Further past the threshold scores higher.
    peaks = run(forecast(np.stack([np.full(H, p) for p in (82.0, 86.0, 90.0)])), current(3))
    assert (np.diff(peaks.score) > 0).all()
    # More likely: the upper quantile also reaching critical raises a warning's score,
    # and an ok server's score rises as its upper quantile reaches warning sooner.
    calm, wide = (
        run(forecast(np.full(H, 85.0), spread=2.0), current(1)),
        run(forecast(np.full(H, 85.0), spread=12.0), current(1)),
    )
    assert calm.alert_level == wide.alert_level == ["warning"] and wide.score[0] > calm.score[0]
    ok = run(forecast(np.stack([np.full(H, 60.0)] * 3), spread=0.0), current(3))
    ok_wide = run(forecast(np.stack([np.full(H, 60.0)] * 3), spread=25.0), current(3))
    assert ok_wide.alert_level == ["ok"] * 3 and (ok_wide.score > ok.score).all()
    assert ok_wide.score.max() < warn.score.min()


def test_a_current_value_over_critical_is_critical_now_even_when_not_forecast() -> None:
    r = run(forecast(np.full((2, H), 20.0)), np.array([[99.0, 40.0, 50.0, 1.0], [20.0, 40.0, 97.0, 1.0]]))
    assert r.alert_level == ["critical", "critical"]
    assert r.metric == ["cpu_user_pct", "disk_usage_pct"]  # disk_usage is judged by its current value
    np.testing.assert_array_equal(r.minutes, [0.0, 0.0])
    assert r.score[0] > 85.0
    only_current = run(None, current(1, disk=90.0))
    assert only_current.alert_level == ["warning"] and only_current.minutes[0] == 0.0


def test_servers_without_a_forecast_are_judged_by_current_values() -> None:
    values = forecast(np.full((2, H), 50.0))
    values[1] = np.nan  # a server whose window had no data
    r = run(values, current(2))
    assert r.alert_level == ["ok", "ok"] and np.isfinite(r.score).all()
    per_metric = dict(zip(r.metrics, r.metric_scores[0], strict=True))
    assert set(per_metric) == {"cpu_user_pct", "mem_used_pct", "disk_usage_pct"}  # uptime has none


def test_clip_bounds_percentages_to_0_100_and_other_metrics_at_0() -> None:
    values = np.array([[-5.0, 120.0, np.nan], [50.0, -1.0, 1e6]]).T  # [3, 2]: metric axis 1
    out = clip(values, ["cpu_user_pct", "load_average"])
    np.testing.assert_array_equal(out[:, 0], [0.0, 100.0, np.nan])
    np.testing.assert_array_equal(out[:, 1], [50.0, 0.0, 1e6])
    four = clip(np.full((1, 2, 3, 1), 150.0, dtype=np.float32), ["mem_used_pct", "net_in_mb_s"])
    assert four.dtype == np.float32 and four[0, 0].max() == 100.0 and four[0, 1].min() == 150.0


def test_summary_counts_levels_by_code_or_name() -> None:
    expected = {"servers": 4, "ok": 2, "warning": 1, "critical": 1}
    assert summary(np.array([0, 2, 1, 0], dtype=np.int8)) == expected
    assert summary(["ok", "critical", "warning", "ok"]) == expected
    assert summary([]) == {"servers": 0, **dict.fromkeys(LEVELS, 0)}
