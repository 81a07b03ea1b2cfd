"""Backtest arithmetic: baselines and scores by hand on a tiny series, an oracle on a known pattern."""

from __future__ import annotations

from statistics import NormalDist

import numpy as np
import pyarrow as pa
import pytest

from nordiqd.backtest import baselines, engine
from nordiqd.backtest.data import Grid, to_grid
from nordiqd.backtest.engine import Origin
from nordiqd.backtest.errors import TooLittleHistory
from nordiqd.backtest.folds import make_buckets, make_folds
from nordiqd.backtest.report import build, ranking, table
from nordiqd.backtest.scoring import ALL
from nordiqd.model.params import ModelSpec

T0 = 1_735_689_600  # 2025-01-01T00:00:00Z
# A 6-hour step makes a day 4 steps and a week 28, so a tiny series has seasons.
TINY = ModelSpec(targets=("load_average",), step_seconds=21_600, encoder_steps=4, horizon_steps=2)
HISTORY = [1.0, 5.0, 2.0, 6.0, 3.0, 8.0, 3.0, 7.0]
ACTUAL = [4.0, 8.0]
# Mean |y[t] - y[t-4]| over HISTORY: (2 + 3 + 1 + 1) / 4.
SCALE = 1.75


def rows(values: dict[str, list[float]], step: int, metric: str, start: int = T0) -> pa.Table:
    """Buffer rows, one per step and server."""
    cols: dict[str, list[object]] = {"timestamp": [], "server_name": [], "profile": [], metric: []}
    for name, series in values.items():
        for i, v in enumerate(series):
            cols["timestamp"].append((start + i * step) * 1000)
            cols["server_name"].append(name)
            cols["profile"].append("web")
            cols[metric].append(v)
    table = pa.table(cols)
    return table.set_column(0, "timestamp", table["timestamp"].cast(pa.timestamp("ms", tz="UTC")))


def tiny_report(models: list[engine.Forecaster] | None = None) -> dict[str, object]:
    grid = to_grid(rows({"s": HISTORY + ACTUAL}, TINY.step_seconds, "load_average"), TINY)
    folds = make_folds(grid, TINY, 1)
    buckets = make_buckets(TINY)
    outcome = engine.run(grid, TINY, folds, models or baselines.all_baselines(TINY))
    return build(
        data={}, spec=TINY, folds=folds, buckets=buckets, outcome=outcome, tft=None, timings={}, seed=0
    )


def test_baselines_match_a_hand_computation() -> None:
    report = tiny_report()
    scores = {name: m["targets"]["load_average"] for name, m in report["models"].items()}  # type: ignore[index]
    # naive: 7, 7 -> errors 3, 1. served seasonal naive: a day (4 steps) back: 3, 8 -> 1, 0.
    # linear trend over the last horizon (3, 7): slope 4 -> 11, 15 -> 7, 7.
    expected = {"naive": (3.0, 1.0), "seasonal_naive_1d": (1.0, 0.0), "linear_trend": (7.0, 7.0)}
    for name, (e0, e1) in expected.items():
        assert scores[name]["0-6h"]["mase"] == pytest.approx(e0 / SCALE)
        assert scores[name]["6-12h"]["mase"] == pytest.approx(e1 / SCALE)
        assert scores[name][ALL]["mase"] == pytest.approx((e0 + e1) / 2 / SCALE)
        assert scores[name][ALL]["p50_loss"] == pytest.approx((e0 + e1) / 4 / SCALE)
        assert scores[name][ALL]["windows"] == 1
    # A week (28 steps) of history does not exist: not scored, not guessed.
    assert scores["seasonal_naive_1w"][ALL]["windows"] == 0
    assert scores["seasonal_naive_1w"][ALL]["mase"] is None


def test_naive_band_p90_loss_and_coverage_by_hand() -> None:
    naive = tiny_report()["models"]["naive"]["targets"]["load_average"][ALL]  # type: ignore[index]
    # Spread: RMS of the 1-step changes of the window 3, 8, 3, 7 (5, -5, 4), for both
    # steps (2 pairs at h = 2 are too few, so h = 1 carries on).
    sigma = np.sqrt((25 + 25 + 16) / 3)
    p10, p90 = 7 - 1.2815515655446004 * sigma, 7 + NormalDist().inv_cdf(0.9) * sigma
    assert p10 < 4 < p90 and p10 < 8 < p90
    assert naive["coverage"] == 1.0
    loss = np.mean([0.1 * (p90 - a) for a in ACTUAL])  # both actuals below p90
    assert naive["p90_loss"] == pytest.approx(loss / SCALE)


def test_weekly_seasonal_naive_uses_the_value_a_week_back() -> None:
    week = 28
    history = np.arange(40, dtype=np.float64)[None, :, None]
    origin = Origin(history=history, last_bucket=np.array([T0]), servers=["s"], profiles=["web"])
    out = baselines.weekly(TINY).forecast(origin)
    np.testing.assert_allclose(out[0, 0, :, 1], [40 - week, 41 - week])


def test_linear_trend_skips_gaps() -> None:
    history = np.array([[1.0, np.nan, 5.0, 7.0]])[:, :, None]
    origin = Origin(history=history, last_bucket=np.array([T0]), servers=["s"], profiles=["web"])
    out = baselines.LinearTrend(TINY, lookback=4).forecast(origin)
    # Points (-3, 1), (-1, 5), (0, 7): slope 2, value 7 at 0 -> 9, 11.
    np.testing.assert_allclose(out[0, 0, :, 1], [9.0, 11.0])


class Oracle:
    """Knows the daily pattern; its quantiles are the noise's."""

    name = "oracle"

    def __init__(self, spec: ModelSpec, noise: float) -> None:
        self.spec, self.noise = spec, noise

    def forecast(self, origin: Origin) -> np.ndarray:
        steps = np.arange(1, self.spec.horizon_steps + 1) * self.spec.step_seconds
        median = pattern(origin.last_bucket[:, None] + steps[None, :])[:, None, :]
        z = np.array([NormalDist().inv_cdf(q) for q in self.spec.quantiles])
        return median[..., None] + self.noise * z


def pattern(seconds: np.ndarray) -> np.ndarray:
    """A daily cycle with a slow upward drift."""
    return 40 + 20 * np.sin(2 * np.pi * seconds / 86_400) + seconds / 86_400 * 3 - T0 / 86_400 * 3


def test_oracle_ranks_above_seasonal_naive_with_mase_below_one() -> None:
    spec = ModelSpec(targets=("cpu_user_pct",), encoder_steps=288, horizon_steps=96)
    rng = np.random.default_rng(0)
    times = T0 + np.arange(4 * 288) * 300
    series = {f"s{i}": list(pattern(times) + rng.normal(0, 2.0, times.size)) for i in range(4)}
    grid = to_grid(rows(series, 300, "cpu_user_pct"), spec)
    folds = make_folds(grid, spec, 3)
    models = [Oracle(spec, 2.0), *baselines.all_baselines(spec)]
    outcome = engine.run(grid, spec, folds, models)
    report = build(
        data={},
        spec=spec,
        folds=folds,
        buckets=make_buckets(spec),
        outcome=outcome,
        tft=None,
        timings={},
        seed=0,
    )
    assert [r["model"] for r in report["ranking"]][0] == "oracle"
    oracle = report["models"]["oracle"]["targets"]["cpu_user_pct"]
    snaive = report["models"]["seasonal_naive_1d"]["targets"]["cpu_user_pct"]
    for bucket in ("0-1h", "1-4h", "4-8h", ALL):
        assert oracle[bucket]["mase"] < 1.0
        assert oracle[bucket]["mase"] < snaive[bucket]["mase"]
        assert oracle[bucket]["windows"] == 12
    assert 0.7 < oracle[ALL]["coverage"] < 0.9
    text = table(report)
    assert text.splitlines()[2].startswith("oracle")


def test_default_buckets_are_first_hour_then_1_4_then_4_8_hours() -> None:
    spec = ModelSpec()
    assert [(b.name, b.start, b.stop) for b in make_buckets(spec)] == [
        ("0-1h", 0, 12),
        ("1-4h", 12, 48),
        ("4-8h", 48, 96),
    ]
    assert [b.name for b in make_buckets(spec, (2.0,))] == ["0-2h", "2-8h"]
    with pytest.raises(ValueError, match="increasing"):
        make_buckets(spec, (4.0, 1.0))


def test_folds_step_back_one_horizon_and_need_an_encoder_of_history() -> None:
    grid = to_grid(rows({"a": [1.0] * 14, "b": [1.0] * 8}, TINY.step_seconds, "load_average"), TINY)
    folds = make_folds(grid, TINY, 4)
    # L = 14: origins 6, 8, 10, 12; "b" starts at index 6, so it needs origin >= 10.
    assert [(f.number, f.origin, f.servers.tolist()) for f in folds] == [
        (4, 6, [0]),
        (3, 8, [0]),
        (2, 10, [0, 1]),
        (1, 12, [0, 1]),
    ]
    short = to_grid(rows({"a": [1.0] * 5}, TINY.step_seconds, "load_average"), TINY)
    with pytest.raises(TooLittleHistory, match=r"'a', has 5"):
        make_folds(short, TINY, 1, where="x.csv")


def test_grid_right_aligns_servers_that_end_at_different_times() -> None:
    table = pa.concat_tables(
        [
            rows({"early": [1.0, 2.0, 3.0]}, TINY.step_seconds, "load_average"),
            rows({"late": [7.0, 8.0]}, TINY.step_seconds, "load_average", start=T0 + 10 * 86_400),
        ]
    )
    grid: Grid = to_grid(table, TINY)
    assert grid.servers == ["early", "late"]
    np.testing.assert_array_equal(grid.values[:, :, 0], [[1.0, 2.0, 3.0], [np.nan, 7.0, 8.0]])
    assert grid.first_index.tolist() == [0, 1]
    back = grid.table_before(3)
    assert back.num_rows == 5
    np.testing.assert_array_equal(to_grid(back, TINY).values, grid.values)


def test_ranking_puts_unscored_models_last() -> None:
    models = {
        "a": {"targets": {"m": {ALL: {"mase": None, "windows": 0}}}},
        "b": {"targets": {"m": {ALL: {"mase": 0.5, "windows": 3}}}},
    }
    assert [r["model"] for r in ranking(models, ["m"])] == ["b", "a"]
