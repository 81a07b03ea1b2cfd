"""Batches in data time: issue points see the windows as they stood; the baseline scores skill 1."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from nordiqd import config as nconfig
from nordiqd.accuracy.live import LiveAccuracy
from nordiqd.buffer.batch import batch_schema
from nordiqd.predict.windows import RollingWindows
from nordiqd.serving.data_time import DataTimeFeed
from nordiqd.serving.exposition import accuracy_metrics
from nordiqd.serving.scoring import IssueAt, Observe, Scoring

METRICS = ["cpu_user_pct", "mem_used_pct"]
CFG = nconfig.from_dict(
    {
        "schema": {"metrics": METRICS},
        "model": {"targets": METRICS, "step_seconds": 1800, "encoder_steps": 48, "horizon_steps": 16},
        "predictor": {"min_history_steps": 2},
        "accuracy": {"issue_every_s": 3600},
        "alerts": {"warning": {}, "critical": {}, "profiles": {}},
    }
)
STEP = CFG.model.step_seconds
T0 = 1_800_000_000 - 1_800_000_000 % 86400
SAMPLE_S = 600  # three samples a step


def records(hours: int) -> pa.Table:
    ts = np.arange(T0, T0 + hours * 3600, SAMPLE_S)
    rng = np.random.default_rng(0)
    cols: dict[str, list[Any]] = {"ts": [], "name": [], "cpu": [], "mem": []}
    for k, name in enumerate(("a", "b", "c")):
        day = np.sin(2 * np.pi * (ts % 86400) / 86400)
        cols["ts"].extend(ts)
        cols["name"].extend([name] * len(ts))
        cols["cpu"].extend(50 + 20 * day + rng.normal(0, 3, len(ts)) + k)
        cols["mem"].extend(60 + 5 * day + rng.normal(0, 1, len(ts)))
    return pa.Table.from_arrays(
        [
            pa.array(np.asarray(cols["ts"]) * 1000, pa.int64()).cast(pa.timestamp("ms", tz="UTC")),
            pa.array(cols["name"], pa.string()),
            pa.array(["web"] * len(cols["ts"]), pa.string()),
            pa.array(cols["cpu"], pa.float32()),
            pa.array(cols["mem"], pa.float32()),
        ],
        schema=batch_schema(METRICS),
    ).sort_by("timestamp")


def replay(tmp: Path, table: pa.Table, batch_rows: int) -> LiveAccuracy:
    windows = RollingWindows(METRICS, STEP, CFG.model.encoder_steps)
    live = LiveAccuracy(tmp / "accuracy.msgpack", CFG.model, CFG.accuracy, 30)
    scoring = Scoring(CFG, live)
    scoring.start()
    feed = DataTimeFeed(windows, CFG.model, live, scoring, SimpleNamespace(served=None))  # type: ignore[arg-type]
    for offset in range(0, table.num_rows, batch_rows):
        feed.apply(table.slice(offset, batch_rows))
    scoring.close()
    assert (tmp / "accuracy.msgpack").exists()
    return live


def report(live: LiveAccuracy) -> dict[str, Any]:
    return msgspec.to_builtins(live.report())  # type: ignore[no-any-return]


def test_the_served_baseline_scores_skill_one_in_every_bucket(tmp_path: Path) -> None:
    (baseline,) = report(replay(tmp_path, records(60), batch_rows=9))["versions"]
    assert baseline["version"] == "baseline" and baseline["kind"] == "baseline"
    assert baseline["points"] > 0
    assert abs(baseline["skill"] - 1.0) < 1e-6
    for bucket in ("0-1h", "1-4h", "4-8h"):
        assert baseline["buckets"][bucket]["points"] > 0


def test_a_batch_crossing_issue_points_scores_as_many_small_ones(tmp_path: Path) -> None:
    table = records(60)
    small = report(replay(tmp_path / "small", table, batch_rows=3))
    # Ten hours a batch: each crosses ten issue points, taken in time order.
    large = report(replay(tmp_path / "large", table, batch_rows=3 * 60))
    (one,), (other,) = small["versions"], large["versions"]
    assert one["points"] > 0
    # Had the issue points seen the records after them, the windows would have moved on.
    assert {b: s["points"] for b, s in other["buckets"].items()} == {
        b: s["points"] for b, s in one["buckets"].items()
    }
    assert other["mae"] == pytest.approx(one["mae"]) and other["wql"] == pytest.approx(one["wql"])


def test_metrics_carry_the_trailing_skill_coverage_and_points(tmp_path: Path) -> None:
    live = replay(tmp_path, records(60), batch_rows=30)
    trailing = live.trailing()
    text = accuracy_metrics(trailing)
    assert text == accuracy_metrics(trailing)
    lines = text.splitlines()
    points = trailing.versions[0].points
    # 60 h of data, a 24 h window: fewer points than the whole report.
    assert 0 < points < live.report().versions[0].points
    assert f'nordiqd_forecast_points_scored_total{{version="baseline"}} {points}' in lines
    for target in ("all", *METRICS):
        for bucket in ("0-1h", "1-4h", "4-8h", "all"):
            labels = f'{{version="baseline",target="{target}",bucket="{bucket}"}}'
            assert f"nordiqd_forecast_skill{labels} 1" in lines
            assert any(line.startswith(f"nordiqd_forecast_coverage{labels} ") for line in lines)
    assert (
        accuracy_metrics(LiveAccuracy(tmp_path / "none", CFG.model, CFG.accuracy, 30).trailing()).count("\n")
        == 6
    )  # HELP and TYPE of each family, no sample


def test_issue_points_beyond_the_pending_bytes_are_skipped_not_queued(tmp_path: Path) -> None:
    windows = RollingWindows(METRICS, STEP, CFG.model.encoder_steps)
    windows.add(records(2))
    live = LiveAccuracy(tmp_path / "accuracy.msgpack", CFG.model, CFG.accuracy, 30)
    snap = windows.snapshot(METRICS, now=T0 + 3599)
    fit = 5
    scoring = Scoring(CFG, live, max_pending_bytes=fit * snap.windows.nbytes)  # not started yet
    put = [scoring.put(IssueAt(T0 + k * 3600, snap, None)) for k in range(fit + 2)]
    assert put == [True] * fit + [False, False] and scoring.skipped == 2
    assert scoring.put(Observe(snap, T0 + 3600))  # observes are small and never dropped
    scoring.start()
    scoring.close()  # runs what was queued, then frees the room
    assert scoring.put(IssueAt(T0 + 86400, snap, None))


def test_a_restart_mid_replay_catches_up_the_issue_points_missed_while_down(tmp_path: Path) -> None:
    table = records(60)
    whole = report(replay(tmp_path / "whole", table, batch_rows=30))
    stamps = table.column("timestamp").cast(pa.int64()).to_numpy() / 1000.0
    down, up = int(np.searchsorted(stamps, T0 + 30 * 3600)), int(np.searchsorted(stamps, T0 + 36 * 3600))
    # Up to ``down`` it ran; until ``up`` it was down (the records reached only the buffer).
    first = replay(tmp_path / "restart", table.slice(0, down), batch_rows=30)
    since = first.scored_through
    assert since is not None and since < T0 + 30 * 3600
    windows = RollingWindows(METRICS, STEP, CFG.model.encoder_steps)
    live = LiveAccuracy(tmp_path / "restart" / "accuracy.msgpack", CFG.model, CFG.accuracy, 30)
    assert live.scored_through == since  # loaded from the file the first run saved
    scoring = Scoring(CFG, live)
    scoring.start()
    feed = DataTimeFeed(windows, CFG.model, live, scoring, SimpleNamespace(served=None))  # type: ignore[arg-type]
    settled: list[int] = []
    stored = table.slice(0, up)  # the buffer, read from a window before the saved watermark
    start_ms = (since - (CFG.model.encoder_steps + 1) * STEP) * 1000
    buffer = stored.filter(pc.greater_equal(stored.column("timestamp").cast(pa.int64()), start_ms))
    feed.refilled(buffer, since, settle=lambda: settled.append(len(windows)))
    assert settled == [3]  # the windows held the records before the first missed point
    for offset in range(up, table.num_rows, 30):
        feed.apply(table.slice(offset, 30))
    scoring.close()
    caught_up = report(live)
    (one,), (other,) = whole["versions"], caught_up["versions"]
    assert other["points"] == one["points"] > 0
    assert {b: s["points"] for b, s in other["buckets"].items()} == {
        b: s["points"] for b, s in one["buckets"].items()
    }
    assert other["mae"] == pytest.approx(one["mae"]) and other["skill"] == pytest.approx(1.0)
    assert caught_up["scored_through"] == whole["scored_through"]


class _Issues:
    """A scoring stand-in that records the issue points handed to it."""

    def __init__(self) -> None:
        self.issued: list[int] = []

    def put(self, event: object) -> bool:
        if isinstance(event, IssueAt):
            self.issued.append(event.at)
        return True


def test_a_gap_in_data_time_issues_only_where_a_horizon_can_be_scored(tmp_path: Path) -> None:
    # One record from years before, then live data: without the bound, the feed issued a
    # forecast at every hour of the gap (200,000 for 23 years) and the predictor stalled.
    windows = RollingWindows(METRICS, STEP, CFG.model.encoder_steps)
    live = LiveAccuracy(tmp_path / "accuracy.msgpack", CFG.model, CFG.accuracy, 30)
    issues = _Issues()
    feed = DataTimeFeed(windows, CFG.model, live, issues, SimpleNamespace(served=None))  # type: ignore[arg-type]
    table = records(6)
    old = table.slice(0, 1).set_column(
        0, "timestamp", pa.array([946_684_800_000], pa.int64()).cast(pa.timestamp("ms", tz="UTC"))
    )
    feed.apply(old)
    feed.apply(table)
    reach = CFG.model.horizon_steps * STEP
    first = int(pc.min(table.column("timestamp").cast(pa.int64())).as_py()) // 1000
    assert issues.issued and min(issues.issued) > first - reach
    assert len(issues.issued) <= (reach + 6 * 3600) // CFG.accuracy.issue_every_s + 1
    assert issues.issued == sorted(set(issues.issued))
