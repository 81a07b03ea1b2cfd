"""The accuracy report: scores from the sums, windows, filters, order, and the facade."""

from __future__ import annotations

import msgspec
import numpy as np
import pytest

from nordiqd.accuracy.ledger import ForecastLedger
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
