"""A forecast pass: one immutable value; its REST bodies and Prometheus text derive from it."""

from __future__ import annotations

import dataclasses
import gzip
from types import SimpleNamespace

import msgspec
import numpy as np
import pyarrow as pa
import pytest

from nordiqd import config as nconfig
from nordiqd.buffer.batch import batch_schema
from nordiqd.predict.windows import RollingWindows
from nordiqd.serving.cycle import ForecastCycle
from nordiqd.serving.exposition import forecast_metrics
from nordiqd.serving.forecast_pass import ForecastPass, run_pass
from nordiqd.serving.slot import ReloadStats
from tests.harness import wait_for

METRICS = ["cpu_user_pct", "mem_used_pct", "load_average"]
CFG = nconfig.from_dict(
    {
        "schema": {"metrics": METRICS},
        "model": {"targets": METRICS, "encoder_steps": 24, "horizon_steps": 6},
        "predictor": {"refresh_s": 0.05},
        "alerts": {
            "warning": {"cpu_user_pct": 80.0, "mem_used_pct": 85.0, "load_average": 8.0},
            "critical": {"cpu_user_pct": 95.0, "mem_used_pct": 95.0, "load_average": 16.0},
            "profiles": {},
        },
    }
)
STEP = CFG.model.step_seconds
NOW = float((1_800_000_000 // STEP) * STEP + 10)
# Per server: steps of history and its flat cpu, mem and load.
SERVERS = {
    "calm-1": (24, (20.0, 40.0, 1.0)),
    "hot-1": (24, (97.0, 40.0, 1.0)),  # cpu over critical (95) now: critical whatever the forecast
    "warm-1": (24, (20.0, 88.0, 1.0)),  # mem between warning (85) and critical (95)
    "new-1": (2, (20.0, 40.0, 1.0)),  # under min_history_steps: known, not forecast
}


def windows() -> RollingWindows:
    ts, names, rows = [], [], []
    for name, (steps, values) in SERVERS.items():
        for k in range(steps):
            ts.append(NOW - (steps - 1 - k) * STEP)
            names.append(name)
            rows.append(values)
    cols = np.asarray(rows, dtype=np.float32)
    table = pa.Table.from_arrays(
        [
            pa.array(np.round(np.asarray(ts) * 1000).astype("datetime64[ms]"), pa.timestamp("ms", tz="UTC")),
            pa.array(names, pa.string()),
            pa.array(["web"] * len(ts), pa.string()),
            *(pa.array(cols[:, j], pa.float32()) for j in range(len(METRICS))),
        ],
        schema=batch_schema(METRICS),
    )
    w = RollingWindows(METRICS, STEP, CFG.model.encoder_steps)
    w.add(table)
    return w


@pytest.fixture(scope="module")
def baseline_pass() -> ForecastPass:
    return run_pass(CFG, windows(), None, NOW, cancelled=lambda: False)


def test_the_pass_is_immutable_and_names_its_model(baseline_pass: ForecastPass) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        baseline_pass.duration_s = 0.0  # type: ignore[misc]
    outlook = baseline_pass.outlook
    assert msgspec.to_builtins(outlook.model) == {"kind": "baseline", "version": None}
    assert baseline_pass.bodies.etag == f"{NOW:.3f}-baseline"
    assert sorted(outlook.names) == sorted(SERVERS) and outlook.forecast_count == 3


def test_predictions_body_holds_every_server_and_the_summary(baseline_pass: ForecastPass) -> None:
    body = msgspec.json.decode(gzip.decompress(baseline_pass.bodies.predictions_gzip))
    assert body["model"] == {"kind": "baseline", "version": None}
    assert body["summary"] == {
        "servers": 4, "ok": 2, "warning": 1, "critical": 1, "forecast": 3, "insufficient_history": 1,
    }  # fmt: skip
    servers = body["servers"]
    assert servers["new-1"]["forecast"] is None
    p = servers["calm-1"]["forecast"]["cpu_user_pct"]
    assert set(p) == {"p10", "p50", "p90"} and p["p50"] == [20.0] * CFG.model.horizon_steps
    assert servers["hot-1"]["current"] == {"cpu_user_pct": 97.0, "mem_used_pct": 40.0, "load_average": 1.0}
    # GET /predictions/{server} is the same entry with the head of the body.
    one = baseline_pass.bodies.servers["warm-1"]
    assert one["server_name"] == "warm-1" and one["generated_at"] == body["generated_at"]
    assert msgspec.json.decode(msgspec.json.encode(one))["risk"] == servers["warm-1"]["risk"]


def test_alerts_body_lists_servers_not_ok_worst_first(baseline_pass: ForecastPass) -> None:
    alerts = msgspec.json.decode(baseline_pass.bodies.alerts)
    assert alerts["count"] == 2
    assert [(a["server_name"], a["alert_level"], a["metric"]) for a in alerts["alerts"]] == [
        ("hot-1", "critical", "cpu_user_pct"),
        ("warm-1", "warning", "mem_used_pct"),
    ]
    assert alerts["alerts"][0]["threshold"] == 95.0 and alerts["alerts"][0]["minutes_to_threshold"] == 0.0


def test_prometheus_text_is_a_function_of_the_pass_and_counters(baseline_pass: ForecastPass) -> None:
    stats = ReloadStats(ok=3, failed=1)
    text = forecast_metrics(baseline_pass, CFG.model, stats, False, 7)
    assert text == forecast_metrics(baseline_pass, CFG.model, stats, False, 7)
    lines = set(text.splitlines())
    assert {
        'nordiqd_alert_level{server="hot-1"} 2',
        'nordiqd_alert_level{server="warm-1"} 1',
        'nordiqd_forecast_servers{state="forecast"} 3',
        'nordiqd_model_info{kind="baseline",version="baseline"} 1',
        'nordiqd_model_reloads_total{result="failed"} 1',
        "nordiqd_forecast_cycles_total 7",
        "nordiqd_model_loaded 0",
    } <= lines
    assert not any('server="new-1"' in line for line in lines if line.startswith("nordiqd_forecast{"))


def test_the_cycle_publishes_each_pass_then_its_text() -> None:
    w = windows()
    cycle = ForecastCycle(CFG, w, SimpleNamespace(served=None, stats=ReloadStats()))  # type: ignore[arg-type]
    first = cycle.latest
    assert "nordiqd_forecast_cycles_total 0" in cycle.metrics_text.splitlines()
    cycle.start()
    try:
        assert wait_for(lambda: cycle.cycles >= 2, 10)
        assert cycle.latest is not first and cycle.latest.outlook.generated_at > first.outlook.generated_at
        assert wait_for(lambda: "nordiqd_forecast_cycles_total 0" not in cycle.metrics_text, 5)
    finally:
        cycle.close()
