"""Live accuracy through the real daemon: history and a replay faster than real time,
scored in data time; the served baseline scores skill 1; a predictor restart mid-replay
counts nothing twice."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.fleetdata import backfill, hourly_accuracy
from tests.harness import FAST_SUPERVISION, Daemon, wait_for

STEP = 3600  # hourly steps: the tiny model's 24-step window is the day the reference needs
SERVERS = 4
INTERVAL_S = 600.0
# Data ends on an hour, so the last step with data is final only when the next one starts.
END = (int(time.time()) // STEP) * STEP


@pytest.fixture(scope="module")
def d(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    daemon = Daemon(
        tmp_path_factory.mktemp("accuracy"),
        {
            "supervisor": dict(FAST_SUPERVISION),
            **hourly_accuracy(STEP),
        },
    )
    daemon.start()
    daemon.wait_ready()
    yield daemon
    daemon.kill_group()


def send(d: Daemon, hours: float, end: float) -> None:
    backfill(d.endpoint("ingest"), servers=SERVERS, days=hours / 24, interval_s=INTERVAL_S, end=end)


def settled(d: Daemon) -> dict[str, Any]:
    """The accuracy body once two reads a second apart agree (the accuracy thread caught up)."""
    last: list[dict[str, Any]] = []

    def same() -> dict[str, Any] | None:
        body: dict[str, Any] = d.get("/admin/accuracy").json()
        agreed = bool(last) and last[-1] == body and body["versions"]
        last.append(body)
        time.sleep(1.0)
        return body if agreed else None

    result: dict[str, Any] = wait_for(same, 30, step=0.0)
    return result


def baseline(body: dict[str, Any]) -> dict[str, Any]:
    (version,) = body["versions"]
    assert version["version"] == "baseline" and version["kind"] == "baseline"
    return version  # type: ignore[no-any-return]


def test_history_and_a_replay_are_scored_the_baseline_with_skill_one(d: Daemon) -> None:
    # History: more than the day the reference needs, and with the replay 36 steps
    # before the gate's 6-hour holdout for training to hold out a validation horizon.
    send(d, 38, END - 20 * STEP)
    send(d, 6, END - 14 * STEP)  # a replay, hours of data in seconds
    first = baseline(settled(d))
    assert first["points"] > 0
    assert first["skill"] == pytest.approx(1.0, abs=0.01)
    for bucket in ("0-1h", "1-4h", "4-8h"):
        assert first["buckets"][bucket]["points"] > 0, first["buckets"]
        assert first["buckets"][bucket]["skill"] == pytest.approx(1.0, abs=0.01)


def test_accuracy_window_target_and_errors(d: Daemon) -> None:
    body = d.get("/admin/accuracy").json()
    target = next(iter(baseline(body)["targets"]))
    one = baseline(d.get("/admin/accuracy", params={"target": target}).json())
    assert set(one["targets"]) == {target} and 0 < one["points"] <= baseline(body)["points"]
    future = d.get("/admin/accuracy", params={"since": "2100-01-01T00:00:00Z"}).json()
    assert future["versions"] == []
    r = d.get("/admin/accuracy", params={"until": "soon"})
    assert r.status_code == 400 and "until" in r.json()["error"]
    r = d.get("/admin/accuracy", params={"target": "no_such_metric"})
    assert r.status_code == 400 and "target" in r.json()["error"]


def test_metrics_carry_the_accuracy_families(d: Daemon) -> None:
    text = wait_for(lambda: "nordiqd_forecast_skill{" in (t := d.get("/metrics").text) and t, 15)
    assert 'nordiqd_forecast_skill{version="baseline",target="all",bucket="all"} 1' in text
    assert 'nordiqd_forecast_coverage{version="baseline",target="all",bucket="4-8h"}' in text
    assert 'nordiqd_forecast_points_scored_total{version="baseline"}' in text


def test_a_trained_model_is_scored_in_every_bucket_beside_the_baseline(d: Daemon) -> None:
    job_id = d.post("/admin/trigger-training?epochs=1&incremental=false").json()["job_id"]
    job = d.job_end(job_id, 120)
    assert job and job["status"] == "completed", job
    version = str(job["model_path"]).split("/")[-1]
    assert wait_for(lambda: d.get("/admin/model-info").json()["version"] == version, 30)
    send(d, 8, END - 6 * STEP)
    body = wait_for(lambda: len((b := settled(d))["versions"]) == 2 and b, 30)
    assert [v["version"] for v in body["versions"]] == ["baseline", version]
    tft = body["versions"][1]
    assert tft["kind"] == "tft" and tft["skill"] is not None
    for bucket in ("0-1h", "1-4h", "4-8h"):
        assert tft["buckets"][bucket]["points"] > 0, tft["buckets"]


def test_a_restart_mid_replay_loses_nothing_and_counts_nothing_twice(d: Daemon) -> None:
    before = settled(d)
    out = d.cli("ctl", "-c", str(d.config), "restart", "predictor")
    assert out.returncode == 0, out.stderr
    wait_for(lambda: d.role("predictor").restarts == 1 and d.role("predictor").state == "ready", 30)
    # The restarted predictor serves the baseline until its loader has the model again.
    served = before["versions"][-1]["version"]
    assert wait_for(lambda: d.get("/admin/model-info").json()["version"] == served, 120)
    again = settled(d)
    # The refill delivered its steps again; the saved masks scored none of them twice.
    assert [(v["version"], v["points"]) for v in again["versions"]] == [
        (v["version"], v["points"]) for v in before["versions"]
    ]
    assert again["scored_through"] == before["scored_through"]
    send(d, 6, END)
    after = settled(d)
    assert after["versions"][-1]["points"] > before["versions"][-1]["points"]
    assert after["versions"][0]["points"] == before["versions"][0]["points"]  # the baseline no longer serves
