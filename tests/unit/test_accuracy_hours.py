"""The hourly series of the accuracy report: each hour's skill and coverage, recounted."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import numpy as np
import pytest

from nordiqd.accuracy.ledger import ForecastLedger
from nordiqd.accuracy.report import build_report
from tests.unit.accuracy_fakes import T0, TARGETS, actual_rows, brute_force, fake_issue, new_ledger, put


def _scored() -> tuple[ForecastLedger, dict[tuple[str, int, str, int], list[float]]]:
    rng = np.random.default_rng(5)
    ledger = new_ledger()
    issues = [fake_issue(rng, T0, "v1"), fake_issue(rng, T0 + 3600, "v2")]
    for issue in issues:
        put(ledger, issue)
    rows = actual_rows(rng, T0, 16)
    ledger.actuals(*rows)
    return ledger, brute_force(issues, *rows)


def _epoch(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(UTC).timestamp())


def test_each_hour_is_the_recount_of_its_points() -> None:
    ledger, expected = _scored()
    report = build_report(ledger.book, ledger.scored_through, 3)
    for version in report.versions:
        hours = [_epoch(h.hour) for h in version.hours]
        assert hours == sorted(hours) and len(hours) > 1
        assert sum(h.points for h in version.hours) == version.points
        for h in version.hours:
            mine = [v for k, v in expected.items() if k[0] == version.version and k[1] == _epoch(h.hour)]
            total = np.sum(mine, axis=0)
            assert h.points == total[0]
            assert h.skill == pytest.approx(total[1] / total[2])
            assert h.coverage == pytest.approx(total[7] / total[0])


def test_hours_follow_the_window_and_the_target_and_not_the_server() -> None:
    ledger, expected = _scored()
    book, through = ledger.book, ledger.scored_through
    since, until = T0 + 2 * 3600, T0 + 4 * 3600
    windowed = build_report(book, through, 3, since=since, until=until)
    for version in windowed.versions:
        assert [h.hour for h in version.hours] == ["2023-11-14T02:00:00Z", "2023-11-14T03:00:00Z"]
    one = build_report(book, through, 3, target=TARGETS[0]).versions[0]
    n = sum(v[0] for k, v in expected.items() if k[0] == one.version and k[2] == TARGETS[0])
    assert sum(h.points for h in one.hours) == n > 0
    assert build_report(book, through, 3, server="a").versions[0].hours == []
    body = msgspec.json.decode(msgspec.json.encode(build_report(book, through, 3)))
    assert set(body["versions"][0]["hours"][0]) == {"hour", "points", "skill", "coverage"}
