"""Framing buffer rows for the model: step means, short-gap filling, series splits."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from nordiqd.model.errors import InsufficientData
from nordiqd.model.frames import TIME_FEATURES, aggregate, fill_short_gaps, time_features, to_frame
from nordiqd.model.params import ModelSpec

SPEC = ModelSpec(targets=("cpu_user_pct", "mem_used_pct"), step_seconds=300, encoder_steps=4, horizon_steps=2,
                 hidden_size=8, attention_heads=1, max_fill_steps=2)  # fmt: skip
T0_MS = 1_735_689_600_000  # 2025-01-01T00:00:00Z, a Wednesday


def table(rows: list[tuple[int, str, str, float | None, float | None]]) -> pa.Table:
    ts, names, profiles, cpu, mem = zip(*rows, strict=True)
    return pa.table(
        {
            "timestamp": pa.array([T0_MS + s * 1000 for s in ts], pa.timestamp("ms", tz="UTC")),
            "server_name": list(names),
            "profile": list(profiles),
            "cpu_user_pct": pa.array(cpu, pa.float64()),
            "mem_used_pct": pa.array(mem, pa.float64()),
        }
    )


def test_aggregate_averages_each_step_and_skips_nulls() -> None:
    t = table([(0, "a", "web", 10.0, 1.0), (60, "a", "web", 20.0, None), (299, "a", "web", 30.0, 3.0),
               (300, "a", "db", 5.0, 5.0)])  # fmt: skip
    frame = aggregate(t, SPEC)
    assert frame["bucket"].tolist() == [T0_MS // 1000, T0_MS // 1000 + 300]
    assert frame["cpu_user_pct"].tolist() == [20.0, 5.0]
    assert frame["mem_used_pct"].tolist() == [2.0, 5.0]
    # The latest profile wins for the whole server.
    assert set(frame["profile"]) == {"db"}


def test_aggregate_names_a_missing_metric() -> None:
    t = table([(0, "a", "web", 1.0, 1.0)]).drop_columns(["mem_used_pct"])
    with pytest.raises(InsufficientData, match="mem_used_pct"):
        aggregate(t, SPEC)


def test_fill_short_gaps_fills_only_bounded_short_runs() -> None:
    x = np.array([np.nan, 1, np.nan, 3, np.nan, np.nan, np.nan, 7, np.nan])[:, None]
    out = fill_short_gaps(x, 2)[:, 0]
    assert np.isnan(out[0]) and np.isnan(out[-1])  # edges have one neighbour only
    assert out[2] == pytest.approx(2.0)
    assert np.isnan(out[4:7]).all()  # three steps > max 2


def test_long_gap_splits_a_server_into_series_and_short_segments_are_dropped() -> None:
    rows = []
    for step in list(range(0, 8)) + list(range(12, 20)) + list(range(30, 33)):  # gaps of 4 and 10 steps
        rows.append((step * 300, "a", "web", float(step), 50.0))
    for step in [0, 1, 3, 4, 5, 6]:  # one missing step: filled
        rows.append((step * 300, "b", "db", 2.0 * step, 40.0))
    frame = to_frame(table(rows), SPEC)
    assert sorted(frame["series"].unique()) == ["a#0", "a#1", "b#0"]  # a's 3-step tail < 6 dropped
    b = frame[frame["series"] == "b#0"]
    assert b["cpu_user_pct"].tolist() == [0.0, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0]
    assert np.diff(b["time_idx"]).tolist() == [1] * 6
    assert list(frame.columns[5:9]) == list(TIME_FEATURES)


def test_to_frame_refuses_when_no_segment_is_long_enough() -> None:
    with pytest.raises(InsufficientData, match="contiguous"):
        to_frame(table([(0, "a", "web", 1.0, 1.0), (300, "a", "web", 1.0, 1.0)]), SPEC)


def test_time_features_follow_hour_and_weekday() -> None:
    midnight_monday = T0_MS // 1000 + 5 * 86_400  # 2025-01-06
    feats = time_features(np.array([midnight_monday, midnight_monday + 6 * 3600]))
    np.testing.assert_allclose(feats[0], [0.0, 1.0, 0.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(feats[1, :2], [1.0, 0.0], atol=1e-6)  # 06:00 is a quarter day
