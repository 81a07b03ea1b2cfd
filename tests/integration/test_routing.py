"""Per-series routing through the real daemon: a fleet whose series trend steadily, where
yesterday's value (what the baseline serves) is far off and the last value is close.
Once the backfill is scored, every series' buckets are served from the last value and
/predictions, /metrics and the page's data say so; a bad [routing] key stops the start."""

from __future__ import annotations

import time
from typing import Any

import pytest

from nordiqd.agent import IngestClient
from supervisor import exitcodes
from tests.fleetdata import hourly_accuracy
from tests.harness import FAST_SUPERVISION, Daemon, wait_for

STEP = 3600
SERVERS = ("web-001", "db-001", "ml-001")
END = (int(time.time()) // STEP) * STEP
HOURS = 40
# Per target: value at the start and rise per hour (each stays inside its valid range).
RAMPS = {
    "cpu_user_pct": (10.0, 1.0),
    "cpu_iowait_pct": (2.0, 0.5),
    "mem_used_pct": (30.0, 1.2),
    "swap_used_pct": (1.0, 0.25),
    "load_average": (1.0, 0.1),
}


@pytest.fixture(scope="module")
def d(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    daemon = Daemon(
        tmp_path_factory.mktemp("routing"),
        {
            "supervisor": dict(FAST_SUPERVISION),
            **hourly_accuracy(STEP),
            # Passes every 2 s, not once per hourly step: the routes scored after the
            # backfill's last issue point are served at once.
            "predictor": {"min_history_steps": 6, "refresh_s": 2.0},
            "routing": {"min_points": 4, "blend_steps": 1},
        },
    )
    daemon.start()
    daemon.wait_ready()
    yield daemon
    daemon.kill_group()


def ramp_records(start: float, end: float, every: float = 600.0) -> list[dict[str, Any]]:
    records = []
    t = start
    while t < end:
        hours = (t - start) / 3600
        for k, name in enumerate(SERVERS):
            values = {m: round(v0 + k + rise * hours, 3) for m, (v0, rise) in RAMPS.items()}
            records.append({"timestamp": t, "server_name": name, **values})
        t += every
    return records


def test_a_trending_fleet_is_served_from_the_last_value_once_scored(d: Daemon) -> None:
    records = ramp_records(END - HOURS * 3600, END)
    with IngestClient(d.endpoint("ingest"), timeout_s=10) as client:
        for i in range(0, len(records), 500):
            client.send(records[i : i + 500])

    def routed() -> dict[str, Any] | None:
        body: dict[str, Any] = d.get("/predictions/current").json()
        sources = [s["source"] for s in body["servers"].values() if s["source"]]
        every = [b for src in sources for t in src.values() for b in t.values()]
        return body if len(sources) == len(SERVERS) and set(every) == {"last_value"} else None

    body = wait_for(routed, 90, step=1.0)
    assert body["model"]["kind"] == "baseline"
    for name in SERVERS:
        one = d.get(f"/predictions/{name}").json()
        assert set(one["source"]) == set(RAMPS)
        for target in RAMPS:
            assert one["source"][target] == {"0-1h": "last_value", "1-4h": "last_value", "4-8h": "last_value"}
            # The last value held: the first step is the newest hour's mean, not yesterday's.
            last = [v for v in one["history"][target] if v is not None][-1]
            p50 = one["forecast"][target]["p50"]
            assert p50[0] == pytest.approx(last, abs=0.01), (name, target, p50, last)
            assert p50 == [p50[0]] * len(p50)
    text = d.get("/metrics").text
    line = (
        'nordiqd_forecast_source{server="web-001",metric="cpu_user_pct",bucket="0-1h",source="last_value"} 1'
    )
    assert line in text


def test_a_bad_routing_key_stops_the_start_with_78(tmp_path_factory: pytest.TempPathFactory) -> None:
    bad = Daemon(tmp_path_factory.mktemp("routing-bad"), {"routing": {"min_points": 0}})
    done = bad.cli("run", "-c", str(bad.config), timeout=20)
    assert done.returncode == exitcodes.CONFIG, done.stderr
    assert "key 'routing.min_points'" in done.stderr, done.stderr
