"""The gate's rules, the append-only promotion log and the retrain triggers, without a daemon."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ipc import messages as m
from nordiqd.promotion.gate import judge
from nordiqd.promotion.log import Promotion, PromotionLog
from nordiqd.retraining import PromotionConfig, RetrainConfig
from nordiqd.training.retrain import Live, RetrainTriggers, live_scores


def gate(candidate: float | None, champion: float | None, baseline: float | None) -> dict[str, Any]:
    return {
        "candidate": {"version": "c", "mase": candidate},
        "champion": None if champion is None else {"version": "tft_old", "mase": champion},
        "baseline": {"mase": baseline},
    }


@pytest.mark.parametrize(
    ("figures", "rules", "promoted"),
    [
        (gate(0.80, 0.79, 1.0), PromotionConfig(tolerance=0.02), True),  # within 2 %
        (gate(0.81, 0.79, 1.0), PromotionConfig(tolerance=0.02), False),  # 0.81 > 0.8058
        (gate(0.78, 0.79, 1.0), PromotionConfig(tolerance=-0.02), False),  # not 2 % better
        (gate(0.77, 0.79, 1.0), PromotionConfig(tolerance=-0.02), True),
        (gate(0.90, None, 1.0), PromotionConfig(), True),  # no champion: baseline only
        (gate(1.10, None, 1.0), PromotionConfig(), False),
        (gate(1.10, None, 1.0), PromotionConfig(must_beat_baseline=False), True),
        (gate(0.70, 0.90, 0.60), PromotionConfig(), False),  # beats the champion, not naive
        (gate(None, 0.90, 1.0), PromotionConfig(), False),  # nothing scored
        (gate(0.70, None, None), PromotionConfig(), False),  # no baseline to beat
    ],
)
def test_gate_rules(figures: dict[str, Any], rules: PromotionConfig, promoted: bool) -> None:
    verdict = judge(figures, rules)
    assert verdict.promoted is promoted and verdict.reasons


def test_gate_reasons_carry_the_figures() -> None:
    verdict = judge(gate(0.81, 0.79, 1.0), PromotionConfig(tolerance=0.02))
    assert verdict.reasons[0] == "MASE 0.8100 > champion tft_old's 0.7900 x (1 + 0.02) = 0.8058"
    assert verdict.reasons[1] == "MASE 0.8100 < seasonal naive's 1.0000"


def test_gate_notes_a_champion_that_saw_the_holdout() -> None:
    figures = gate(0.81, 0.79, 1.0)
    figures["champion"]["seen_holdout_hours"] = 3.5
    verdict = judge(figures, PromotionConfig(tolerance=0.02))
    assert "note: the champion trained on 3.5 h of the holdout, which favours it" in verdict.reasons


def entry(version: str, decision: Any = "promoted") -> Promotion:
    return Promotion(
        at="2026-12-04T10:00:00Z",
        version=version,
        previous=None,
        decision=decision,
        trigger="manual",
        reasons=["r"],
    )


def test_log_appends_rereads_and_skips_a_torn_line(tmp_path: Path) -> None:
    log = PromotionLog(tmp_path)
    assert log.entries() == [] and log.newest() is None
    log.append(entry("a"))
    other = PromotionLog(tmp_path)  # another process's view: it sees the file grow
    other.append(entry("b", "rejected"))
    assert [e.version for e in log.entries()] == ["a", "b"]
    with log.path.open("ab") as fh:
        fh.write(b'{"at": "2026-12-04T1')  # a crash mid-line
    log.rolled_back("b", "a", ["live MASE 1.3 > 1.1 x 1.05"], {"new": {"mase": 1.3}, "old": {"mase": 1.1}})
    entries = PromotionLog(tmp_path).entries()
    assert [e.decision for e in entries] == ["promoted", "rejected", "rolled_back"]
    assert log.counts() == {"promoted": 1, "rejected": 1, "forced": 0, "rolled_back": 1}


def test_log_rollback_entry(tmp_path: Path) -> None:
    log = PromotionLog(tmp_path)
    done = log.rolled_back("tft_new", "tft_old", ["worse live"], {"candidate": {"mase": 2.0}})
    assert (done.decision, done.version, done.previous, done.trigger) == (
        "rolled_back", "tft_old", "tft_new", "probation"
    )  # fmt: skip
    assert log.entries() == [done]


def test_served_before_follows_what_served_not_what_was_published(tmp_path: Path) -> None:
    log = PromotionLog(tmp_path)
    for version, decision in [("a", "promoted"), ("b", "promoted"), ("c", "rejected"), ("d", "forced")]:
        log.append(entry(version, decision))
    on_disk = {"a", "b", "c", "d"}
    assert log.served_versions() == ["a", "b", "d"]
    assert log.served_before("d", on_disk) == "b"  # not c: a rejected candidate never served
    assert log.served_before("d", on_disk - {"b"}) == "a"  # b deleted from disk
    assert log.served_before("c", on_disk) is None  # the log never served c
    log.rolled_back("d", "b", ["worse live"], {})
    assert log.served_before("b", on_disk) == "a"  # d was taken out: not a rollback target
    assert log.served_before("a", on_disk) is None


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 6, 1, 59, 30, tzinfo=UTC)  # a Sunday

    def __call__(self) -> datetime:
        return self.now


def job(status: Any = "completed", queued: datetime | None = None, records: int = 0) -> m.JobStatus:
    return m.JobStatus(
        job_id="j1",
        status=status,
        progress_pct=0,
        epochs=1,
        incremental=True,
        queued_at=(queued or datetime(2026, 12, 1, tzinfo=UTC)).replace(tzinfo=None).isoformat(),
        buffer_records=records,
    )


def test_schedule_fires_once_and_waits_for_a_running_job() -> None:
    clock = Clock()
    triggers = RetrainTriggers(RetrainConfig(), clock)
    assert triggers.next_run == datetime(2026, 12, 6, 2, 0, tzinfo=UTC)
    assert triggers.due(None, 0) is None
    clock.now += timedelta(minutes=1)
    assert triggers.due(job("running"), 0) is None and "waits for job j1" in (triggers.waiting or "")
    assert triggers.next_run == datetime(2026, 12, 13, 2, 0, tzinfo=UTC)
    assert triggers.due(job(), 0) == "schedule"
    triggers.started("schedule")
    assert triggers.due(job(), 0) is None


def test_data_trigger_counts_from_the_last_job_and_cooldown_holds_it() -> None:
    clock = Clock()
    triggers = RetrainTriggers(RetrainConfig(schedule="", min_new_records=100, cooldown_hours=2), clock)
    assert triggers.due(job(records=1000), 1099) is None and triggers.new_records == 99
    assert triggers.due(job(records=1000), 1100) == "data"
    recent = job(records=1000, queued=clock.now - timedelta(hours=1))
    assert triggers.due(recent, 5000) is None and "cooldown" in (triggers.waiting or "")
    assert triggers.due(None, 100) == "data"  # no job yet: every record is new


def test_skill_and_coverage_triggers_need_a_covered_window() -> None:
    settings = RetrainConfig(schedule="", skill_threshold=1.2, coverage_range=[0.6, 0.95], cooldown_hours=0)
    triggers = RetrainTriggers(settings, Clock())
    triggers.live = Live(version="v", skill=1.5, coverage=0.8, covered=False)
    assert triggers.due(job(), 0) is None
    triggers.live = Live(version="v", skill=1.5, coverage=0.8, covered=True)
    assert triggers.due(job(), 0) == "skill"
    triggers.live = Live(version="v", skill=1.0, coverage=0.4, covered=True)
    assert triggers.due(job(), 0) == "coverage"
    state = triggers.state(job())
    assert state["triggers"]["coverage"]["coverage"] == 0.4 and state["next_run"] is None


def test_live_scores_read_the_champion_from_the_accuracy_body() -> None:
    since = int(datetime(2026, 12, 4, 6, tzinfo=UTC).timestamp())
    body = {
        "scored_through": "2026-12-04T10:00:00Z",
        "versions": [
            {"version": "baseline", "skill": 1.0, "coverage": 0.8, "from": "2026-12-04T06:00:00Z"},
            {"version": "v2", "skill": 1.7, "coverage": 0.5, "from": "2026-12-04T07:00:00Z"},
        ],
    }
    assert live_scores(body, "v2", since, 3600) == Live("v2", 1.7, 0.5, True, "2026-12-04T10:00:00Z")
    assert not live_scores(body, "v2", since, 1800).covered  # served only part of the window
    assert live_scores(body, "v3", since, 3600).skill is None
