"""Scores and ledger on disk: a restart loses no score and scores nothing twice."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nordiqd.accuracy import persist
from nordiqd.accuracy.ledger import ForecastLedger
from nordiqd.accuracy.scores import ScoreBook
from tests.unit.accuracy_fakes import (
    EVERY,
    HORIZON,
    QUANTILES,
    STEP,
    T0,
    TARGETS,
    FakeIssue,
    Rows,
    actual_rows,
    assert_same_sums,
    book_sums,
    fake_issue,
    new_ledger,
    put,
)


def _run(
    ledger: ForecastLedger,
    rows: Rows,
    first: int,
    last: int,
    issues: list[FakeIssue],
    path: Path | None = None,
) -> ForecastLedger:
    """Deliver steps [first, last) one at a time, issuing on the hour; with ``path``, restart now and then."""
    servers, starts, values = rows
    for k in range(first, last):
        at = T0 + k * STEP
        for issue in issues:
            if issue.at == at:
                put(ledger, issue)
        sel = np.flatnonzero(starts == at)
        ledger.actuals([servers[i] for i in sel], starts[sel], values[sel])
        if path is not None and k % 5 == 4:  # a restart every five steps, mid-issue
            persist.save(path, ledger)
            ledger = persist.load(path, new_ledger())
    return ledger


def test_save_load_continue_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    issues = [fake_issue(rng, T0 + k * EVERY) for k in range(6)]
    rows = actual_rows(rng, T0, 3 * HORIZON)
    straight = _run(new_ledger(), rows, 0, 3 * HORIZON, issues)
    path = tmp_path / "state" / "accuracy.msgpack"
    restarted = _run(new_ledger(), rows, 0, 3 * HORIZON, issues, path)
    assert_same_sums(book_sums(restarted.book), book_sums(straight.book))
    assert restarted.scored_through == straight.scored_through
    assert restarted.book.served == straight.book.served
    assert restarted.book.servers == straight.book.servers
    for key, cell in straight.book.per_server.items():
        np.testing.assert_allclose(restarted.book.per_server[key], cell)


def test_a_restart_that_delivers_everything_again_scores_nothing_twice(tmp_path: Path) -> None:
    rng = np.random.default_rng(12)
    issues = [fake_issue(rng, T0 + k * EVERY) for k in range(2)]
    servers, starts, values = actual_rows(rng, T0, HORIZON)
    ledger = new_ledger()
    for issue in issues:
        put(ledger, issue)
    half = starts < T0 + 5 * STEP
    ledger.actuals([s for s, h in zip(servers, half, strict=True) if h], starts[half], values[half])
    path = tmp_path / "accuracy.msgpack"
    persist.save(path, ledger)
    # The restarted predictor refills its windows and delivers every complete step again.
    again = persist.load(path, new_ledger())
    assert [i.at for i in again.issues] == [T0, T0 + EVERY]
    assert not put(again, issues[0]), "an issue point already held is not issued twice"
    again.actuals(servers, starts, values)
    straight = new_ledger()
    for issue in issues:
        put(straight, issue)
    straight.actuals(servers, starts, values)
    assert_same_sums(book_sums(again.book), book_sums(straight.book))


def test_a_damaged_file_is_moved_aside_and_scoring_starts_empty(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rng = np.random.default_rng(13)
    ledger = new_ledger()
    put(ledger, fake_issue(rng, T0))
    ledger.actuals(*actual_rows(rng, T0, 2))
    path = tmp_path / "accuracy.msgpack"
    persist.save(path, ledger)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    empty = new_ledger()
    assert persist.load(path, empty) is empty
    assert not empty.issues and not empty.book.fleet
    assert not path.exists() and len(list(tmp_path.glob("accuracy.broken-*"))) == 1
    assert "unusable" in caplog.text


def test_an_array_of_the_wrong_length_is_damage(tmp_path: Path) -> None:
    rng = np.random.default_rng(14)
    ledger = new_ledger()
    put(ledger, fake_issue(rng, T0))
    path = tmp_path / "accuracy.msgpack"
    persist.save(path, ledger)
    ledger.issues[0].servers.append("extra")  # the lists no longer match the arrays
    persist.save(path, ledger)
    assert not persist.load(path, new_ledger()).issues
    assert len(list(tmp_path.glob("accuracy.broken-*"))) == 1


def test_a_file_for_other_targets_is_set_aside(tmp_path: Path) -> None:
    rng = np.random.default_rng(15)
    ledger = new_ledger()
    put(ledger, fake_issue(rng, T0))
    path = tmp_path / "accuracy.msgpack"
    persist.save(path, ledger)
    other = ForecastLedger(ScoreBook(TARGETS[:1]), QUANTILES, STEP, HORIZON)
    assert persist.load(path, other) is other
    assert len(list(tmp_path.glob("accuracy.broken-*"))) == 1


def test_no_file_is_an_empty_start(tmp_path: Path) -> None:
    empty = new_ledger()
    assert persist.load(tmp_path / "none.msgpack", empty) is empty


def test_a_champion_and_a_model_in_shadow_issue_at_the_same_point_and_survive_a_restart(
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(11)
    ledger = new_ledger()
    champion, shadow = fake_issue(rng, T0, "v2"), fake_issue(rng, T0, "v1")
    assert put(ledger, champion)
    args = (T0, "v1", "shadow", ("a", "b", "c"), shadow.forecasts, shadow.naive, shadow.scale)
    assert ledger.issue(*args)
    assert not ledger.issue(*args)  # one issue per (at, version, kind): a restart issuing again
    assert not put(ledger, champion)
    assert not put(ledger, fake_issue(rng, T0, "v1"))  # one served forecast per issue point
    ledger.actuals(*actual_rows(rng, T0, 4))
    path = tmp_path / "accuracy.msgpack"
    persist.save(path, ledger)
    again = persist.load(path, new_ledger())
    assert [(i.at, i.version, i.kind) for i in again.issues] == [(T0, "v2", "tft"), (T0, "v1", "shadow")]
    assert list(again.book.served) == [("v2", "tft"), ("v1", "shadow")]
    assert {kind for _, kind, _ in again.book.fleet} == {"tft", "shadow"}
    assert_same_sums(book_sums(again.book), book_sums(ledger.book))
    assert not again.issue(*args)
