"""The forecast ledger: scoring against a brute-force recount, once per point, in data time."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nordiqd.accuracy.buckets import BUCKETS
from nordiqd.accuracy.ledger import ForecastLedger, issue_points
from nordiqd.accuracy.report import build_report
from nordiqd.accuracy.scores import ScoreBook
from tests.unit.accuracy_fakes import (
    EVERY,
    HORIZON,
    SERVERS,
    STEP,
    T0,
    TARGETS,
    actual_rows,
    assert_same_sums,
    book_sums,
    brute_force,
    fake_issue,
    new_ledger,
    put,
)


def test_scores_equal_a_brute_force_recount() -> None:
    rng = np.random.default_rng(1)
    ledger = new_ledger()
    issues = [fake_issue(rng, T0 + k * EVERY) for k in range(3)]
    for issue in issues:
        assert put(ledger, issue)
    servers, starts, values = actual_rows(rng, T0, 2 * HORIZON)
    scored = ledger.actuals(servers, starts, values)
    expected = brute_force(issues, servers, starts, values)
    assert scored == sum(int(v[0]) for v in expected.values()) > 100
    assert_same_sums(book_sums(ledger.book), expected)
    assert {b for (_, _, _, b) in expected} == {0, 1, 2}, "every bucket was exercised"


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), chunks=st.integers(1, 6), nan_share=st.sampled_from([0.0, 0.1, 0.5]))
def test_delivery_in_chunks_and_out_of_order_within_the_grace_equals_the_recount(
    seed: int, chunks: int, nan_share: float
) -> None:
    rng = np.random.default_rng(seed)
    ledger = new_ledger()
    issues = [fake_issue(rng, T0 + k * EVERY, nan_share=nan_share) for k in range(3)]
    for issue in issues:
        put(ledger, issue)
    servers, starts, values = actual_rows(rng, T0, 2 * HORIZON, nan_share=nan_share)
    # Shuffled within each hour (out of order by less than the grace), then cut into chunks;
    # the watermark passes every issue's horizon, so eviction happens along the way.
    order = np.argsort(starts // EVERY + rng.random(len(starts)), kind="stable")
    for part in np.array_split(order, chunks):
        ledger.actuals([servers[i] for i in part], starts[part], values[part])
    expected = brute_force(issues, servers, starts, values)
    assert_same_sums(book_sums(ledger.book), expected)


def test_a_step_delivered_twice_is_scored_once() -> None:
    rng = np.random.default_rng(2)
    ledger = new_ledger()
    put(ledger, fake_issue(rng, T0, nan_share=0.0))
    servers, starts, values = actual_rows(rng, T0, 4, nan_share=0.0)
    first = ledger.actuals(servers, starts, values)
    assert first == len(starts) * len(TARGETS)
    assert ledger.actuals(servers, starts, values + 1.0) == 0
    # Twice inside one call: the first row counts.
    other = new_ledger()
    put(other, fake_issue(np.random.default_rng(2), T0, nan_share=0.0))
    doubled = other.actuals(
        servers + servers, np.concatenate([starts, starts]), np.concatenate([values, values + 1])
    )
    assert doubled == first
    assert_same_sums(book_sums(other.book), book_sums(ledger.book))


def test_out_of_order_equals_in_order() -> None:
    rng = np.random.default_rng(3)
    issues = [fake_issue(rng, T0 + k * EVERY) for k in range(2)]
    servers, starts, values = actual_rows(rng, T0, HORIZON)
    in_order, shuffled = new_ledger(), new_ledger()
    for issue in issues:
        put(in_order, issue), put(shuffled, issue)
    for k in range(HORIZON):
        sel = np.flatnonzero(starts == T0 + k * STEP)
        in_order.actuals([servers[i] for i in sel], starts[sel], values[sel])
    for k in [3, 0, 7, 1, 15, 2, 4, 6, 5, 8, 14, 9, 13, 10, 12, 11]:
        sel = np.flatnonzero(starts == T0 + k * STEP)
        shuffled.actuals([servers[i] for i in sel], starts[sel], values[sel])
    assert_same_sums(book_sums(shuffled.book), book_sums(in_order.book))


def test_a_nan_actual_is_a_gap_and_a_late_value_fills_it() -> None:
    rng = np.random.default_rng(4)
    ledger = new_ledger()
    issue = fake_issue(rng, T0, nan_share=0.0)
    put(ledger, issue)
    values = np.full((1, len(TARGETS)), np.nan)
    assert ledger.actuals(["a"], np.array([T0]), values) == 0
    assert not ledger.book.fleet and not ledger.issues[0].scored.any()
    values[0, 1] = 42.0
    assert ledger.actuals(["a"], np.array([T0]), values) == 1
    p50 = float(issue.forecasts[0, 1, 0, 1])
    cell = ledger.book.fleet[("v1", "tft", T0)]
    assert cell[1, 0, 0] == 1 and cell[1, 0, 1] == pytest.approx(abs(p50 - 42.0))
    assert cell[0].sum() == 0


def test_unknown_server_and_off_grid_steps_score_nothing() -> None:
    rng = np.random.default_rng(5)
    ledger = new_ledger()
    put(ledger, fake_issue(rng, T0, nan_share=0.0))
    row = np.array([[1.0, 2.0]])
    assert ledger.actuals(["zzz"], np.array([T0]), row) == 0
    assert ledger.actuals(["a"], np.array([T0 + 60]), row) == 0  # not on the step grid
    assert ledger.actuals(["a"], np.array([T0 - STEP]), row) == 0  # before the issue
    assert ledger.actuals(["a"], np.array([T0]), row) == 2


def test_issues_are_evicted_when_their_horizon_has_passed_in_data_time() -> None:
    rng = np.random.default_rng(6)
    ledger = new_ledger()
    put(ledger, fake_issue(rng, T0))
    put(ledger, fake_issue(rng, T0 + EVERY))
    end_first = T0 + HORIZON * STEP + EVERY  # the horizon, then the grace
    ledger.actuals(["a"], np.array([end_first - 2 * STEP]), np.ones((1, 2)))
    assert [i.at for i in ledger.issues] == [T0, T0 + EVERY]
    ledger.actuals(["a"], np.array([end_first - STEP]), np.ones((1, 2)))
    assert ledger.scored_through == end_first
    assert [i.at for i in ledger.issues] == [T0 + EVERY]
    # A late actual for a step only the evicted issue covered is a gap, not an error.
    assert ledger.actuals(["b"], np.array([T0]), np.ones((1, 2))) == 0
    # An issue whose horizon already passed, or one already held, is not kept.
    assert not put(ledger, fake_issue(rng, T0))
    assert not put(ledger, fake_issue(rng, T0 + EVERY))


def test_shapes_and_the_step_grid_are_checked() -> None:
    ledger = new_ledger()
    rng = np.random.default_rng(7)
    issue = fake_issue(rng, T0)
    with pytest.raises(ValueError, match="forecasts has shape"):
        ledger.issue(T0, "v1", "tft", SERVERS[:2], issue.forecasts, issue.naive, issue.scale)
    with pytest.raises(ValueError, match="not on the 1800 s step grid"):
        ledger.issue(T0 + 60, "v1", "tft", SERVERS, issue.forecasts, issue.naive, issue.scale)
    assert not ledger.issues


def test_seasonal_naive_scored_as_a_model_has_skill_exactly_one() -> None:
    rng = np.random.default_rng(8)
    ledger = new_ledger()
    issue = fake_issue(rng, T0, nan_share=0.2)
    # The baseline serves the naive value as its median.
    forecasts = issue.forecasts.copy()
    forecasts[..., 1] = issue.naive
    forecasts[..., 0] = np.fmin(forecasts[..., 0], issue.naive)
    forecasts[..., 2] = np.fmax(forecasts[..., 2], issue.naive)
    ledger.issue(T0, "baseline", "baseline", SERVERS, forecasts, issue.naive, issue.scale)
    servers, starts, values = actual_rows(rng, T0, HORIZON)
    assert ledger.actuals(servers, starts, values) > 0
    report = build_report(ledger.book, ledger.scored_through, 3)
    (version,) = report.versions
    assert version.kind == "baseline" and version.skill == 1.0
    assert all(b.skill == 1.0 for b in version.buckets.values())
    assert all(t.skill == 1.0 for t in version.targets.values())


def test_issue_points_crossed_by_a_data_time_interval() -> None:
    assert issue_points(T0, T0 + 3 * EVERY, EVERY) == [T0 + EVERY, T0 + 2 * EVERY, T0 + 3 * EVERY]
    assert issue_points(T0 - 1, T0, EVERY) == [T0]
    assert issue_points(T0 + 1, T0 + EVERY - 1, EVERY) == []
    assert issue_points(T0 + 0.5, T0 + EVERY + 0.5, EVERY) == [T0 + EVERY]


def test_ledger_memory_at_a_thousand_servers_stays_under_100_mb() -> None:
    servers = [f"srv{i:04d}" for i in range(1000)]
    targets, horizon, step = ("a", "b", "c", "d", "e"), 96, 300
    ledger = ForecastLedger(ScoreBook(targets), (0.1, 0.5, 0.9), step, horizon, grace_s=3600)
    forecasts = np.zeros((1000, 5, horizon, 3), dtype=np.float32)
    naive = np.zeros((1000, 5, horizon), dtype=np.float32)
    scale = np.ones((1000, 5), dtype=np.float32)
    # Hourly issues, 8 h horizon and an hour's grace: nine are held at once.
    for k in range(12):
        at = T0 + k * 3600
        ledger.actuals(servers[:1], np.array([at - step]), np.ones((1, 5)))
        ledger.issue(at, "v1", "tft", servers, forecasts, naive, scale)
        assert len(ledger.issues) <= 9
    assert len(ledger.issues) == 9
    per_issue = 1000 * 5 * horizon * (3 * 4 + 4 + 1) + 1000 * 5 * 4
    assert ledger.nbytes == 9 * per_issue
    assert ledger.nbytes < 100e6, f"{ledger.nbytes / 1e6:.1f} MB"
    assert len(BUCKETS) == 3
