"""Probation and automatic rollback on a real daemon with a tiny real TFT, hourly steps,
data replayed faster than real time: after a promotion (forced when the gate turns the
candidate down) the predecessor forecasts in shadow at every issue point; a predictor
restart in the middle resumes probation; when it ends, a champion worse live than a
demanding ``rollback_tolerance`` allows is rolled back by itself, and the log says so
with both figures."""

from __future__ import annotations

import json
import os
import time
from typing import Any

import pytest

from tests.fleetdata import backfill, hourly_accuracy
from tests.harness import FAST_SUPERVISION, Daemon, wait_for

STEP = 3600  # hourly steps, as test_accuracy.py: the tiny model's window is a day
SERVERS = 4
INTERVAL_S = 600.0
END = (int(time.time()) // STEP) * STEP
PROBATION_H = 3
# The champion's live MASE must be a hundredth of its predecessor's to stay: none is.
DEMANDING = -0.99


@pytest.fixture(scope="module")
def d(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    sections = hourly_accuracy(STEP)
    daemon = Daemon(
        tmp_path_factory.mktemp("probation"),
        {
            "supervisor": dict(FAST_SUPERVISION),
            **sections,
            "promotion": {
                **sections["promotion"],
                "probation_hours": PROBATION_H,
                "rollback_tolerance": DEMANDING,
            },
            "retrain": {"schedule": ""},
        },
    )
    daemon.start()
    daemon.wait_ready()
    yield daemon
    daemon.kill_group()


def send(d: Daemon, hours: float, end: float) -> None:
    backfill(d.endpoint("ingest"), servers=SERVERS, days=hours / 24, interval_s=INTERVAL_S, end=end)


def run_job(d: Daemon, epochs: int = 1) -> dict[str, Any]:
    job_id = d.post(f"/admin/trigger-training?epochs={epochs}&incremental=false").json()["job_id"]
    job = d.job_end(job_id, 180, step=0.2)
    assert job is not None and job["status"] == "completed", (job, d.log_text()[-3000:])
    return job


def served(d: Daemon) -> str | None:
    return d.get("/admin/model-info").json().get("version")  # type: ignore[no-any-return]


def current(d: Daemon) -> str:
    return os.path.basename(os.path.realpath(d.root / "data" / "models" / "current"))


def probation(d: Daemon) -> dict[str, Any] | None:
    path = d.root / "data" / "state" / "probation.json"
    return json.loads(path.read_bytes()) if path.exists() else None


def test_a_worse_champion_is_rolled_back_when_probation_ends(d: Daemon) -> None:
    send(d, 38, END - 20 * STEP)  # history: a day for the reference, and enough to train
    send(d, 6, END - 14 * STEP)
    first = run_job(d, epochs=2)  # two different models: the figures compare two forecasts
    v1 = first["model_path"].split("/")[-1]
    assert first["promoted"] is True
    assert wait_for(lambda: served(d) == v1, 60)
    second = run_job(d)
    v2 = second["model_path"].split("/")[-1]
    if not second["promoted"]:
        r = d.post(f"/admin/promote?version={v2}")
        assert r.status_code == 200, r.text
    assert wait_for(lambda: served(d) == v2, 60)
    newest = d.get("/admin/promotions").json()["promotions"][0]
    assert newest["decision"] in ("promoted", "forced") and newest["previous"] == v1

    # Two hours of data: probation starts at the first issue point V2 serves.
    send(d, 2, END - 12 * STEP)
    state = wait_for(lambda: (p := probation(d)) and p["champion"] == v2 and p, 60)
    assert state["predecessor"] == v1 and state["verdict"] is None, state
    assert state["ends"] - state["started"] == PROBATION_H * 3600
    assert state["started"] >= END - 14 * STEP

    out = d.cli("ctl", "-c", str(d.config), "restart", "predictor")
    assert out.returncode == 0, out.stderr
    wait_for(lambda: d.role("predictor").restarts == 1 and d.role("predictor").state == "ready", 60)
    assert wait_for(lambda: served(d) == v2, 60)
    assert probation(d) == state  # resumed as it was, not started again

    send(d, 6, END - 6 * STEP)  # past ``ends``
    rolled = wait_for(lambda: (p := probation(d)) and p["verdict"] and p, 90)
    assert rolled["verdict"] == "rolled_back", (rolled, d.log_text()[-3000:])
    assert rolled["started"] == state["started"]  # the same probation, across the restart
    assert current(d) == v1
    assert wait_for(lambda: served(d) == v1, 60)

    newest = d.get("/admin/promotions").json()["promotions"][0]
    assert (newest["decision"], newest["version"], newest["previous"], newest["trigger"]) == (
        "rolled_back",
        v1,
        v2,
        "probation",
    )
    figures = newest["gate"]
    assert figures["champion"]["version"] == v2 and figures["champion"]["mase"] > 0
    assert figures["predecessor"]["version"] == v1 and figures["predecessor"]["mase"] > 0
    assert figures["champion"]["mase"] == rolled["figures"]["champion"]
    assert any("rolled back" in r for r in newest["reasons"]), newest
    assert 'nordiqd_promotions_total{decision="rolled_back"} 1' in d.get("/metrics").text

    versions = d.get("/admin/accuracy").json()["versions"]
    shadow = [v for v in versions if v["kind"] == "shadow"]
    assert [v["version"] for v in shadow] == [v1] and shadow[0]["points"] > 0, versions
    assert any(v["version"] == v2 and v["kind"] == "tft" and v["points"] > 0 for v in versions)

    # Judged: more data does not start it again, and V1 serves on.
    send(d, 4, END - 2 * STEP)
    time.sleep(2)
    assert probation(d) == rolled and current(d) == v1
