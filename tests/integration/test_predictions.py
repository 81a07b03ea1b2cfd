"""Forecasts through the real daemon: baseline to TFT without a failed request, refused
corrupt models, rollback, unseen servers, and a predictor restarted by kill -9."""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest
import requests

from nordiqd.agent import IngestClient
from tests.fleetdata import OPEN_GATE, TINY_MODEL, backfill
from tests.harness import FAST_SUPERVISION, Daemon, wait_for


class Hammer:
    """Requests GET /predictions/current in a loop and counts anything but a 200."""

    def __init__(self, d: Daemon) -> None:
        self.d = d
        self.ok = 0
        self.failed: list[str] = []
        self.kinds: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def __enter__(self) -> Hammer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        session = requests.Session()
        while not self._stop.is_set():
            try:
                r = session.get(
                    self.d.url + "/predictions/current", headers={"X-API-Key": self.d.key}, timeout=30
                )
            except requests.RequestException as exc:
                self.failed.append(repr(exc))
                continue
            if r.status_code != 200:
                self.failed.append(f"{r.status_code} {r.text[:200]}")
                continue
            self.ok += 1
            kind = r.json()["model"]["kind"]
            if not self.kinds or self.kinds[-1] != kind:
                self.kinds.append(kind)


@pytest.fixture(scope="module")
def d(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    daemon = Daemon(
        tmp_path_factory.mktemp("predictions"),
        {
            "supervisor": dict(FAST_SUPERVISION),
            "training": {"min_records": 3000},
            "model": dict(TINY_MODEL),
            "predictor": {"refresh_s": 2.0},
            "promotion": dict(OPEN_GATE),
        },
    )
    daemon.start()
    daemon.wait_ready()
    backfill(daemon.endpoint("ingest"), servers=8, days=2.0)
    yield daemon
    daemon.kill_group()


def current(d: Daemon) -> dict:  # type: ignore[type-arg]
    return d.get("/predictions/current").json()  # type: ignore[no-any-return]


def train(d: Daemon, incremental: bool = False) -> str:
    job_id = d.post(f"/admin/trigger-training?epochs=1&incremental={str(incremental).lower()}").json()[
        "job_id"
    ]
    job = wait_for(
        lambda: (
            (j := d.get(f"/admin/training-status?job_id={job_id}").json())["status"]
            in ("completed", "failed")
            and j
        ),
        240,
    )
    assert job and job["status"] == "completed", job
    return str(job["model_path"]).split("/")[-1]


def test_baseline_then_tft_without_a_failed_request(d: Daemon) -> None:
    # A pass can run while the backfill is still arriving: wait for one with every window.
    body = wait_for(
        lambda: (b := current(d))["servers"] and not b["summary"]["insufficient_history"] and b, 30
    )
    assert body["model"] == {"kind": "baseline", "version": None}
    server = body["servers"]["web-001"]
    assert set(server) >= {"profile", "last_seen", "current", "forecast", "risk_score", "alert_level"}
    p = server["forecast"]["cpu_user_pct"]
    assert set(p) == {"p10", "p50", "p90"} and len(p["p50"]) == TINY_MODEL["horizon_steps"]
    assert all(lo <= mid <= hi for lo, mid, hi in zip(p["p10"], p["p50"], p["p90"], strict=True))
    with Hammer(d) as hammer:
        version = train(d)
        assert wait_for(lambda: current(d)["model"] == {"kind": "tft", "version": version}, 30)
        time.sleep(1.0)
    assert hammer.failed == [], hammer.failed[:5]
    assert hammer.ok > 20 and hammer.kinds == ["baseline", "tft"], hammer.kinds
    info = d.get("/admin/model-info").json()
    assert info["kind"] == "tft" and info["version"] == version and info["last_reload_error"] is None
    assert info["manifest"]["targets"] == list(body["targets"])
    one = d.get("/predictions/web-001").json()
    assert one["server_name"] == "web-001" and one["model"]["kind"] == "tft"
    assert d.get("/predictions/nosuch-001").status_code == 404
    for s in current(d)["servers"].values():
        for t, qs in s["forecast"].items():
            lo, hi = (0.0, 100.0) if t.endswith("_pct") else (0.0, float("inf"))
            assert all(lo <= v <= hi for q in qs.values() for v in q), (t, qs)


def _swap_in(d: Daemon, good: str, name: str, damage) -> None:  # type: ignore[no-untyped-def]
    models = d.root / "data" / "models"
    bad = models / name
    shutil.copytree(models / good, bad)
    damage(bad)
    tmp = models / ".current.test"
    os.symlink(name, tmp)
    os.replace(tmp, models / "current")


def _truncate(path: Path) -> None:
    w = path / "weights.safetensors"
    w.write_bytes(w.read_bytes()[: w.stat().st_size // 2])


def _bad_checksum(path: Path) -> None:
    ds = path / "dataset_parameters.json"
    ds.write_text(ds.read_text().replace("}", " }", 1))


def _wrong_targets(path: Path) -> None:
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["targets"] = ["cpu_sys_pct"]
    (path / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    ("name", "damage", "why"),
    [
        ("tft_model_29990101_000001", _bad_checksum, "checksum"),
        ("tft_model_29990101_000002", _truncate, "truncated"),
        ("tft_model_29990101_000003", _wrong_targets, "targets"),
    ],
)
def test_corrupt_model_is_refused_and_old_keeps_serving(d: Daemon, name: str, damage, why: str) -> None:  # type: ignore[no-untyped-def]
    good = d.get("/admin/model-info").json()["version"]
    assert good and good.startswith("tft_model_")
    with Hammer(d) as hammer:
        _swap_in(d, good, name, damage)
        err = wait_for(lambda: d.get("/admin/model-info").json()["last_reload_error"], 20)
        time.sleep(0.5)
    assert err and name in err and why in err.lower(), err
    assert hammer.failed == [] and hammer.ok > 0
    assert current(d)["model"]["version"] == good
    assert d.get("/admin/model-info").json()["version"] == good
    # Back to the good model for the next test (an explicit reload of a version).
    r = d.post(f"/admin/reload-model?version={good}")
    assert r.status_code == 200 and r.json()["version"] == good, r.text
    shutil.rmtree(d.root / "data" / "models" / name)


def test_reload_unknown_version_is_404(d: Daemon) -> None:
    r = d.post("/admin/reload-model?version=tft_model_19990101_000000")
    assert r.status_code == 404 and "no model version" in r.json()["error"]


def test_rollback_restores_the_previous_version(d: Daemon) -> None:
    first = d.get("/admin/model-info").json()["version"]
    second = train(d, incremental=True)
    assert wait_for(lambda: d.get("/admin/model-info").json()["version"] == second, 30)
    models = d.get("/admin/models").json()
    assert models["current"] == second and {first, second} <= {v["version"] for v in models["versions"]}
    r = d.post("/admin/rollback")
    assert r.status_code == 200 and r.json()["version"] == first, r.text
    assert os.path.realpath(d.root / "data" / "models" / "current").endswith(first)
    assert wait_for(lambda: current(d)["model"]["version"] == first, 10)


def test_unseen_server_with_known_profile_gets_forecasts(d: Daemon) -> None:
    assert current(d)["model"]["kind"] == "tft"
    now = time.time()
    records = [
        {
            "timestamp": now - 3600 * 3 + i * 300,
            "server_name": "web-777",
            "profile": "web",
            "cpu_user_pct": 20.0 + i % 5,
            "cpu_iowait_pct": 1.0,
            "mem_used_pct": 40.0 + i * 0.1,
            "swap_used_pct": 0.0,
            "load_average": 1.0,
        }
        for i in range(36)
    ]
    assert d.post("/feed/data", json={"records": records}).status_code == 200
    server = wait_for(lambda: current(d)["servers"].get("web-777", {}).get("forecast"), 15)
    assert server and len(server["mem_used_pct"]["p50"]) == TINY_MODEL["horizon_steps"]
    assert current(d)["model"]["kind"] == "tft"


def test_predictor_killed_serves_again_from_refilled_windows(d: Daemon) -> None:
    before = current(d)
    pid = d.role("predictor").pid
    killed_at = int(time.time())
    os.kill(pid, signal.SIGKILL)
    assert wait_for(lambda: d.role("predictor").state == "ready" and d.role("predictor").pid != pid, 10)
    # No new samples are sent: every server's forecast must come back from the buffer alone.
    after = wait_for(
        lambda: (
            (b := current(d))["model"]["kind"] == "tft"
            and datetime.fromisoformat(b["generated_at"]).timestamp() >= killed_at  # the new predictor's
            and len([s for s in b["servers"].values() if s["forecast"]])
            == len([s for s in before["servers"].values() if s["forecast"]])
            and b
        ),
        30,
    )
    assert after, current(d)
    assert set(after["servers"]) == set(before["servers"])
    assert after["servers"]["web-001"]["current"] == before["servers"]["web-001"]["current"]


def test_alerts_and_metrics(d: Daemon) -> None:
    # An incident: a memory leak ramps one server from 60 % to 97 % in three hours, past the
    # critical threshold (95 %). Its current value alone makes it critical, whatever the
    # model forecasts, so its alert must appear within a pass or two.
    now = time.time()
    leak = [
        {
            "timestamp": now - 3600 * 3 + i * 300,
            "server_name": "web-901",
            "profile": "web",
            "cpu_user_pct": 20.0 + i % 5,
            "cpu_iowait_pct": 1.0,
            "mem_used_pct": 60.0 + i * 37.0 / 35,
            "swap_used_pct": 0.0,
            "load_average": 1.0,
        }
        for i in range(36)
    ]
    with IngestClient(d.endpoint("ingest"), timeout_s=10) as client:
        assert client.send(leak).accepted == len(leak)
    alerts = wait_for(
        lambda: (
            (b := d.get("/alerts/active").json())
            and any(a["server_name"] == "web-901" for a in b["alerts"])
            and b
        ),
        15,
    )
    assert alerts, d.get("/alerts/active").json()
    (alert,) = [a for a in alerts["alerts"] if a["server_name"] == "web-901"]
    assert alert["alert_level"] == "critical" and alert["metric"] == "mem_used_pct", alert
    assert alert["threshold"] == 95.0 and alert["minutes_to_threshold"] == 0.0, alert
    assert alert["current"]["mem_used_pct"] == 97.0 and alert["profile"] == "web", alert
    assert alerts["count"] == len(alerts["alerts"])
    levels = [a["alert_level"] for a in alerts["alerts"]]
    assert all(lv in ("warning", "critical") for lv in levels)
    scores = [a["risk_score"] for a in alerts["alerts"]]
    assert scores == sorted(scores, reverse=True)
    for a in alerts["alerts"]:
        assert {"server_name", "metric", "threshold", "minutes_to_threshold", "risk_score"} <= set(a)
    text = wait_for(lambda: "nordiqd_forecast{" in (t := d.get("/metrics").text) and t, 15)
    for name in (
        "nordiqd_forecast{",
        "nordiqd_risk_score{",
        "nordiqd_ingest_records_total",
        "nordiqd_model_info{",
        "nordiqd_model_reloads_total",
        "nordiqd_training_job_state",
        "nordiqd_forecast_duration_seconds",
    ):
        assert name in text, name


def test_fleet_body_gzip_plain_and_not_modified(d: Daemon) -> None:
    url, key = d.url + "/predictions/current", {"X-API-Key": d.key}
    gz = requests.get(url, headers={**key, "Accept-Encoding": "gzip"}, timeout=30)
    plain = requests.get(url, headers={**key, "Accept-Encoding": "identity"}, timeout=30)
    assert gz.headers["Content-Encoding"] == "gzip" and "Content-Encoding" not in plain.headers
    assert gz.json()["servers"].keys() == plain.json()["servers"].keys()
    etag = plain.headers["ETag"]
    again = requests.get(url, headers={**key, "If-None-Match": etag}, timeout=30)
    if again.status_code == 200:  # only when a new forecast pass came in between
        assert again.headers["ETag"] != etag
    else:
        assert again.status_code == 304 and again.content == b""
