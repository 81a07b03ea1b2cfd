"""Retraining that starts itself, on a real daemon with a tiny real TFT: a ``* * * * *``
schedule starts a job with trigger ``schedule``; ``min_new_records`` one with trigger
``data``, and ``cooldown_hours`` holds back the next; a degraded live skill one with
trigger ``skill``; live p10-p90 coverage out of ``coverage_range`` one with trigger
``coverage``."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from nordiqd.agent import IngestClient
from nordiqd.simulate import SimulatedFleet
from tests.fleetdata import TINY_MODEL, backfill, hourly_accuracy
from tests.harness import FAST_SUPERVISION, Daemon, wait_for

# Every candidate serves: these tests are about when jobs start, test_promotion.py the gate.
OPEN_GATE = {"holdout_hours": 6, "tolerance": 10.0, "must_beat_baseline": False}


def latest_job(d: Daemon) -> dict[str, Any] | None:
    r = d.get("/admin/training-status")
    return r.json() if r.status_code == 200 else None  # type: ignore[no-any-return]


def wait_idle(d: Daemon) -> None:
    assert wait_for(lambda: d.get("/admin/training-stats").json()["current_job"] is None, 240, step=0.3)


def start(daemon_factory: Any, retrain: dict[str, Any], **sections: dict[str, Any]) -> Daemon:
    d: Daemon = daemon_factory(
        supervisor=dict(FAST_SUPERVISION),
        training={"min_records": 1000, "cpu_priority": "nice"},
        model=dict(TINY_MODEL),
        promotion=dict(OPEN_GATE),
        retrain={"schedule": "", "cooldown_hours": 0, "epochs": 1, "incremental": False, **retrain},
        **sections,
    )
    d.start()
    d.wait_ready()
    return d


def test_a_minutely_schedule_starts_a_job(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    d = start(daemon_factory, {"schedule": "* * * * *"})
    retrain = d.get("/admin/training-stats").json()["retrain"]
    assert retrain["schedule"] == "* * * * *" and retrain["next_run"] is not None
    assert latest_job(d) is None
    backfill(d.endpoint("ingest"), servers=4, days=1.0)
    job = wait_for(lambda: latest_job(d), 75, step=0.5)
    assert job is not None and job["trigger"] == "schedule", job
    assert job["epochs"] == 1 and job["incremental"] is False


def test_new_records_start_a_job_and_the_cooldown_holds_back_the_next(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    d = start(daemon_factory, {"min_new_records": 1000, "cooldown_hours": 100})
    sent = backfill(d.endpoint("ingest"), servers=4, days=1.0)
    assert sent >= 1000
    job = wait_for(lambda: latest_job(d), 30, step=0.3)
    assert job is not None and job["trigger"] == "data", job
    wait_idle(d)
    assert latest_job(d)["status"] == "completed"  # type: ignore[index]
    # As many records again: the data trigger fires, the cooldown holds it back.
    backfill(d.endpoint("ingest"), servers=4, days=1.0, seed=2, names=None, end=time.time() - 3600)
    retrain = wait_for(
        lambda: (r := d.get("/admin/training-stats").json()["retrain"])["waiting"] and r, 20, step=0.5
    )
    assert retrain, d.get("/admin/training-stats").json()
    assert "data fired" in retrain["waiting"] and "cooldown" in retrain["waiting"], retrain
    assert retrain["triggers"]["data"]["new_records"] >= 1000
    assert retrain["cooldown_until"] is not None
    time.sleep(5)  # two more checks: still no second job
    assert latest_job(d)["job_id"] == job["job_id"]  # type: ignore[index]


STEP = 3600
SERVERS = 4
INTERVAL_S = 600.0
END = (int(time.time()) // STEP) * STEP


def records(start: float, end: float) -> list[dict[str, Any]]:
    fleet = SimulatedFleet(size=SERVERS, seed=3, interval_s=INTERVAL_S)
    return [r for b in fleet.batches(start, end, max_records=1000) for r in b.to_records()]


def send_hourly(d: Daemon, rows: list[dict[str, Any]]) -> None:
    """Send ``rows`` an hour of data time per batch, in time order (a replay)."""
    rows = sorted(rows, key=lambda r: r["timestamp"])
    with IngestClient(d.endpoint("ingest"), timeout_s=10) as client:
        hours: dict[int, list[dict[str, Any]]] = {}
        for r in rows:
            hours.setdefault(int(r["timestamp"] // STEP), []).append(r)
        for hour in sorted(hours):
            assert client.send(hours[hour]).accepted == len(hours[hour])


def yesterday_again(rows: list[dict[str, Any]], rng: np.random.Generator) -> list[dict[str, Any]]:
    """The scripted incident: the fleet repeats yesterday's load, to a hair.

    Seasonal naive (the value a day earlier) is then all but exact, so the champion's live
    skill (its MAE over naive's) degrades far above any sane threshold.
    """
    out = []
    for r in rows:
        copy = dict(r, timestamp=r["timestamp"] + 86400)
        for key, value in r.items():
            if key not in ("timestamp", "server_name", "profile") and isinstance(value, float):
                copy[key] = value * (1.0 - abs(rng.normal(0.0, 0.002)))
        out.append(copy)
    return out


def serving_champion(daemon_factory: Any, retrain: dict[str, Any], history_end: int) -> tuple[Daemon, str]:
    """A daemon with hourly live accuracy, 48 h of history to ``history_end`` and the model
    of one manual job serving (the champion the triggers watch)."""
    sections = hourly_accuracy(STEP)
    d: Daemon = daemon_factory(
        supervisor=dict(FAST_SUPERVISION),
        **{**sections, "training": {**sections["training"], "cpu_priority": "nice"}},
        retrain={"schedule": "", "cooldown_hours": 0, "epochs": 1, "incremental": False, **retrain},
    )
    d.start()
    d.wait_ready()
    send_hourly(d, records(history_end - 48 * STEP, history_end))
    job_id = d.post("/admin/trigger-training?epochs=1&incremental=false").json()["job_id"]
    job = d.job_end(job_id, 240, step=0.3)
    assert job and job["status"] == "completed" and job["promoted"], job
    champion: str = job["model_path"].split("/")[-1]
    assert wait_for(lambda: d.get("/admin/model-info").json()["version"] == champion, 60)
    return d, champion


def test_a_degraded_live_skill_starts_a_job(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    start_replay = END - 12 * STEP
    d, champion = serving_champion(
        daemon_factory, {"skill_threshold": 1.5, "skill_window_hours": 4}, start_replay
    )
    stats = d.get("/admin/training-stats").json()["retrain"]["triggers"]["skill"]
    assert stats["on"] and stats["threshold"] == 1.5
    # The incident: 12 hours in which the fleet repeats the day before.
    day_before = records(start_replay - 24 * STEP, END - 24 * STEP)
    send_hourly(d, yesterday_again(day_before, np.random.default_rng(0)))
    skilled = wait_for(
        lambda: (j := latest_job(d)) is not None and j["trigger"] == "skill" and j, 90, step=0.5
    )
    skill = d.get("/admin/training-stats").json()["retrain"]["triggers"]["skill"]
    assert skilled, (skill, d.get("/admin/accuracy").json()["versions"])
    assert skill["version"] == champion and skill["skill"] > 1.5 and skill["window_covered"], skill


def saturated(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The scripted incident: the whole fleet saturates at once (a runaway batch job).

    CPU, memory and swap pinned near full and the run queue eight times deeper: the
    champion's p10-p90 bands, drawn from encoders that still hold the quiet day, miss
    nearly every actual, so its live coverage collapses.
    """
    return [
        dict(
            r,
            cpu_user_pct=96.0,
            cpu_iowait_pct=3.0,
            mem_used_pct=98.0,
            swap_used_pct=85.0,
            load_average=r["load_average"] * 8.0,
        )
        for r in rows
    ]


def test_live_coverage_out_of_its_range_starts_a_job(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    quiet_end = END - 5 * STEP
    history_end = quiet_end - 6 * STEP
    band = [0.05, 1.0]  # a tiny one-epoch model covers far less than 80 %, but not nothing
    d, _ = serving_champion(daemon_factory, {"coverage_range": band, "skill_window_hours": 4}, history_end)
    # Six quiet hours: the champion is scored live, its coverage inside the range, no job.
    send_hourly(d, records(history_end, quiet_end))

    def coverage_state() -> dict[str, Any]:
        state: dict[str, Any] = d.get("/admin/training-stats").json()["retrain"]["triggers"]["coverage"]
        return state

    quiet = wait_for(lambda: (c := coverage_state())["window_covered"] and c, 30, step=0.5)
    assert quiet and quiet["on"] and quiet["range"] == band, quiet
    assert band[0] <= quiet["coverage"] <= band[1], quiet
    assert latest_job(d)["trigger"] == "manual"  # type: ignore[index]
    # The incident: five hours in which the whole fleet saturates.
    send_hourly(d, saturated(records(quiet_end, END)))
    seen: list[dict[str, Any]] = []

    def coverage_job() -> dict[str, Any] | None:
        seen.append(coverage_state())
        job = latest_job(d)
        return job if job is not None and job["trigger"] == "coverage" else None

    job = wait_for(coverage_job, 60, step=0.5)
    assert job, (seen[-1], quiet, d.get("/admin/accuracy").json()["versions"])
    # The trigger may fire between a poll's two reads: the state that fired it is read after.
    seen.append(coverage_state())
    fired = [c for c in seen if c["window_covered"] and c["coverage"] < band[0]]
    assert fired, (seen, quiet)
