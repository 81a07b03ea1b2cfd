"""Issue points ride on forecast passes: the cycle forecasts them once, the ledger keeps that."""

from __future__ import annotations

from concurrent.futures import Future
from pathlib import Path
from types import SimpleNamespace

import msgspec
import numpy as np
import pyarrow as pa

from nordiqd.accuracy.live import LiveAccuracy
from nordiqd.predict.windows import RollingWindows
from nordiqd.serving.cycle import ForecastCycle
from nordiqd.serving.data_time import DataTimeFeed
from nordiqd.serving.scoring import IssueAt, Issued, Scoring
from nordiqd.serving.slot import ReloadStats
from tests.unit.test_serving_data_time import CFG, METRICS, STEP, T0, records

SLOT = SimpleNamespace(served=None, stats=ReloadStats())


def replay(tmp: Path, table: pa.Table, with_cycle: bool) -> tuple[LiveAccuracy, ForecastCycle]:
    windows = RollingWindows(METRICS, STEP, CFG.model.encoder_steps)
    live = LiveAccuracy(tmp / "accuracy.msgpack", CFG.model, CFG.accuracy, 30)
    scoring = Scoring(CFG, live)
    cycle = ForecastCycle(CFG, windows, SLOT)  # type: ignore[arg-type]
    scoring.start()
    cycle.start()
    feed = DataTimeFeed(windows, CFG.model, live, scoring, SLOT, cycle if with_cycle else None)  # type: ignore[arg-type]
    for offset in range(0, table.num_rows, 30):
        feed.apply(table.slice(offset, 30))
    scoring.close()  # waits for every issue point's forecast, from the cycle when it has one
    cycle.close()
    return live, cycle


def test_the_ledger_keeps_the_cycles_forecasts_and_they_score_as_the_threads_own(tmp_path: Path) -> None:
    table = records(40)
    own, _ = replay(tmp_path / "own", table, with_cycle=False)
    ridden, cycle = replay(tmp_path / "cycle", table, with_cycle=True)
    mine, theirs = msgspec.to_builtins(own.report()), msgspec.to_builtins(ridden.report())
    assert theirs["versions"][0]["points"] > 0
    assert theirs == mine
    # Data time here is ahead of the wall clock, so each issue point was the newest pass:
    # the last one is what the cycle serves, forecast from the windows as they stood then.
    last = ridden.ledger.issues[-1]
    served = cycle.latest.outlook
    assert served.generated_at == last.at and served.forecast_start == last.at
    rows = [served.names.index(name) for name in last.servers]
    np.testing.assert_array_equal(served.values[rows], last.forecasts)


def test_an_issue_point_older_than_the_served_pass_is_forecast_not_published() -> None:
    windows = RollingWindows(METRICS, STEP, CFG.model.encoder_steps)
    windows.add(records(6))
    cycle = ForecastCycle(CFG, windows, SLOT)  # type: ignore[arg-type]
    at = T0 + 3 * 3600
    newer = cycle.latest = cycle.compute(float(T0 + 5 * 3600))
    future: Future[Issued] = Future()
    cycle.issue(IssueAt(at, windows.snapshot(METRICS, now=at - 1), None, future))
    cycle._run_issues()
    values, eligible, model = future.result(timeout=0)
    assert cycle.latest is newer and model.kind == "baseline"
    assert eligible.size == 3 and np.isfinite(values[eligible]).all()


def test_the_accuracy_thread_forecasts_itself_when_the_cycle_stopped_first(tmp_path: Path) -> None:
    windows = RollingWindows(METRICS, STEP, CFG.model.encoder_steps)
    windows.add(records(30))
    live = LiveAccuracy(tmp_path / "accuracy.msgpack", CFG.model, CFG.accuracy, 30)
    cycle = ForecastCycle(CFG, windows, SLOT)  # type: ignore[arg-type]
    at = T0 + 26 * 3600
    event = IssueAt(at, windows.snapshot(METRICS, now=at - 1), None, Future())
    cycle.issue(event)
    cycle.close()  # never started: the queued issue's future is cancelled
    assert event.forecast is not None and event.forecast.cancelled()
    Scoring(CFG, live).handle(event)
    assert [i.at for i in live.ledger.issues] == [at]


def test_a_live_issue_boundary_waits_for_its_pass_only_while_data_is_about_to_cross_it() -> None:
    windows = RollingWindows(METRICS, STEP, CFG.model.encoder_steps)
    mark: list[float | None] = [None]
    cycle = ForecastCycle(CFG, windows, SLOT, watermark=lambda: mark[0])  # type: ignore[arg-type]
    hour = float(T0 + 7200)
    assert not cycle._awaits_issue(hour)  # no data yet
    mark[0] = hour - 10
    assert cycle._awaits_issue(hour)
    assert not cycle._awaits_issue(hour + 1800)  # a step boundary, not an issue point
    mark[0] = hour - 3 * STEP
    assert not cycle._awaits_issue(hour)  # data far behind: a backfill, not live
    mark[0] = hour + 5
    assert not cycle._awaits_issue(hour)  # already crossed
    mark[0] = hour - 10
    cycle._served_boundary = hour
    assert not cycle._awaits_issue(hour)  # its pass already ran
