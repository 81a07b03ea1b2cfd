"""The accuracy report: scores from the sums, windows, filters, order, and the facade."""

from __future__ import annotations

from pathlib import Path

import msgspec
import numpy as np
import pytest

from nordiqd import config
from nordiqd.accuracy.ledger import ForecastLedger
from nordiqd.accuracy.live import FILE_NAME, LiveAccuracy
from nordiqd.accuracy.report import build_report
from tests.unit.accuracy_fakes import (
    EVERY,
    HORIZON,
    QUANTILES,
    SERVERS,
    T0,
    TARGETS,
    FakeIssue,
    Rows,
    actual_rows,
    brute_force,
    fake_issue,
    new_ledger,
    put,
)


def _scored(seed: int = 21) -> tuple[ForecastLedger, list[FakeIssue], Rows]:
    rng = np.random.default_rng(seed)
    ledger = new_ledger()
    issues = [fake_issue(rng, T0, "v1"), fake_issue(rng, T0 + EVERY, "v2")]
    for issue in issues:
        put(ledger, issue)
    rows = actual_rows(rng, T0, HORIZON)
    ledger.actuals(*rows)
    return ledger, issues, rows


def test_scores_are_the_ratios_of_the_recounted_sums() -> None:
    ledger, issues, rows = _scored()
    expected = brute_force(issues, *rows)
    report = build_report(ledger.book, ledger.scored_through, len(QUANTILES))
    assert [v.version for v in report.versions] == ["v1", "v2"]
    for version in report.versions:
        total = np.sum([v for k, v in expected.items() if k[0] == version.version], axis=0)
        assert version.points == total[0]
        assert version.mae == pytest.approx(total[1] / total[0])
        assert version.skill == pytest.approx(total[1] / total[2])
        assert version.mase == pytest.approx(total[4] / total[3])
        assert version.wql == pytest.approx(2 * total[5] / (len(QUANTILES) * total[6]))
        assert version.coverage == pytest.approx(total[7] / total[0])
        for b, name in enumerate(["0-1h", "1-4h", "4-8h"]):
            part = np.sum([v for k, v in expected.items() if k[0] == version.version and k[3] == b], axis=0)
            assert version.buckets[name].points == part[0]
            assert version.buckets[name].skill == pytest.approx(part[1] / part[2])
        assert version.buckets["all"].skill == version.skill
        assert version.buckets["all"].points == version.points
        assert sum(t.points for t in version.targets.values()) == version.points


def test_the_body_has_the_contract_keys() -> None:
    ledger, _, _ = _scored()
    body = msgspec.json.decode(msgspec.json.encode(build_report(ledger.book, ledger.scored_through, 3)))
    assert set(body) == {"scored_through", "versions", "worst_servers"}
    assert body["scored_through"] == "2023-11-14T08:00:00Z"
    v1 = body["versions"][0]
    assert {
        "version",
        "kind",
        "from",
        "to",
        "points",
        "skill",
        "mase",
        "coverage",
        "wql",
        "buckets",
        "targets",
    } <= set(v1)
    assert v1["from"] == "2023-11-14T00:00:00Z" and v1["kind"] == "tft"
    assert list(v1["buckets"]) == ["0-1h", "1-4h", "4-8h", "all"]
    assert list(v1["targets"]) == list(TARGETS)
    assert list(v1["targets"]["cpu"]["buckets"]) == ["0-1h", "1-4h", "4-8h", "all"]


def test_a_window_counts_whole_hours_of_the_actuals_data_time() -> None:
    ledger, issues, rows = _scored()
    expected = brute_force(issues, *rows)
    since, until = T0 + 2 * 3600, T0 + 4 * 3600
    report = build_report(ledger.book, ledger.scored_through, 3, since=since, until=until)
    for version in report.versions:
        n = sum(v[0] for k, v in expected.items() if k[0] == version.version and since <= k[1] < until)
        assert version.points == n > 0
        assert version.from_ == "2023-11-14T02:00:00Z" and version.to == "2023-11-14T03:30:00Z"
    assert build_report(ledger.book, ledger.scored_through, 3, since=T0 + 86400).versions == []


def test_target_and_server_filters() -> None:
    ledger, issues, rows = _scored()
    expected = brute_force(issues, *rows)
    only_mem = build_report(ledger.book, ledger.scored_through, 3, target="mem")
    assert list(only_mem.versions[0].targets) == ["mem"]
    assert only_mem.versions[0].points == sum(
        v[0] for k, v in expected.items() if k[0] == "v1" and k[2] == "mem"
    )
    assert build_report(ledger.book, ledger.scored_through, 3, target="nope").versions == []
    one = build_report(ledger.book, ledger.scored_through, 3, server="b")
    assert one.versions[0].buckets == {} and 0 < one.versions[0].points < only_mem.versions[0].points * 2
    per_server = sum(build_report(ledger.book, None, 3, server=s).versions[0].points for s in SERVERS)
    assert per_server == build_report(ledger.book, None, 3).versions[0].points
    assert build_report(ledger.book, None, 3, server="nobody").versions == []


def test_worst_servers_are_ranked_by_skill_of_the_last_version() -> None:
    ledger, _, _ = _scored()
    report = build_report(ledger.book, ledger.scored_through, 3)
    worst = report.worst_servers
    assert {w.version for w in worst} == {"v2"} and sorted(w.server for w in worst) == sorted(SERVERS)
    skills = [w.skill for w in worst]
    assert skills == sorted(skills, reverse=True)  # type: ignore[type-var]
    for w in worst:
        alone = build_report(ledger.book, None, 3, server=w.server).versions[-1]
        assert w.skill == pytest.approx(alone.skill)


def test_no_naive_error_means_no_skill() -> None:
    ledger = new_ledger()
    rng = np.random.default_rng(22)
    issue = fake_issue(rng, T0, nan_share=0.0)
    issue.naive[0, 0, 0] = 5.0
    issue.forecasts[0, 0, 0] = [4.0, 6.0, 8.0]
    put(ledger, issue)
    ledger.actuals(["a"], np.array([T0]), np.array([[5.0, np.nan]]))
    (v,) = build_report(ledger.book, ledger.scored_through, 3).versions
    assert v.points == 1 and v.skill is None and v.mae == 1.0 and v.coverage == 1.0


def test_sums_older_than_retention_are_trimmed(tmp_path: Path) -> None:
    cfg = config.from_dict({"daemon": {"data_dir": str(tmp_path)}, "buffer": {"retention_days": 1}})
    live = LiveAccuracy.from_config(cfg)
    assert live.path == tmp_path / "state" / FILE_NAME
    step, targets = cfg.model.step_seconds, cfg.model.targets
    shape = (1, len(targets), cfg.model.horizon_steps)
    for day in range(3):
        at = T0 + day * 86400
        forecasts = np.repeat(np.full(shape, 10.0, dtype=np.float32)[..., None], 3, axis=-1)
        assert live.issue(at, "v1", "tft", ["a"], forecasts, np.full(shape, 12.0), np.ones(shape[:2]))
        assert live.actuals(["a"], np.array([at]), np.full((1, len(targets)), 11.0)) == len(targets)
        assert live.actuals(["a"], np.array([at + 86400 - step]), np.full((1, len(targets)), 11.0)) == 0
    hours = sorted({h for (_, _, h) in live.ledger.book.fleet})
    assert hours == [T0 + 2 * 86400]
    assert live.report().versions[0].points == len(targets)


def test_live_accuracy_saves_reloads_and_reports_a_trailing_window(tmp_path: Path) -> None:
    cfg = config.from_dict({"daemon": {"data_dir": str(tmp_path)}, "accuracy": {"window_hours": 2}})
    live = LiveAccuracy.from_config(cfg)
    assert live.due(T0 - 1, T0 + 2 * 3600) == [T0, T0 + 3600, T0 + 7200]
    targets, horizon = cfg.model.targets, cfg.model.horizon_steps
    shape = (2, len(targets), horizon)
    forecasts = np.repeat(np.full(shape, 10.0, dtype=np.float32)[..., None], 3, axis=-1)
    live.issue(T0, "v1", "tft", ["a", "b"], forecasts, np.full(shape, 12.0), np.ones(shape[:2]))
    for k in range(48):  # four hours of 5-minute steps
        live.actuals(["a", "b"], np.array([T0 + k * 300] * 2), np.full((2, len(targets)), 11.0))
    live.save()
    again = LiveAccuracy.from_config(cfg)
    assert again.scored_through == T0 + 4 * 3600
    (v,) = again.trailing().versions
    assert v.points == 2 * len(targets) * 24 and v.skill == 1.0 and v.mase == 1.0
    assert v.from_ == "2023-11-14T02:00:00Z"
    assert again.report().versions[0].points == 2 * len(targets) * 48
