"""Fleet simulator: determinism, chunking, output forms, physical consistency, speed."""

from __future__ import annotations

import time
from datetime import datetime

import numpy as np
import pyarrow as pa
import pytest

from nordiqd.simulate import METRICS, SWAP_THRESHOLD, SimulatedFleet, compose

DAY = 86400.0
# A Monday, 00:00 UTC.
MONDAY = datetime.fromisoformat("2026-11-23T00:00:00+00:00").timestamp()
EVERY_KIND = [
    "memory_leak:web-002@+1d10h+6h",
    "io_storm:db-002@+2d12h+1h",
    "cpu_runaway:api-002@+3d13h+2h",
    "db_outage:db-001@+4d14h+1h",
    "disk_fill:etl-002@+5d09h+4h",
]


def grid(batch, fleet: SimulatedFleet) -> dict[str, np.ndarray]:
    """Metrics reshaped to (servers, samples)."""
    n = len(fleet.servers)
    return {k: v.reshape(-1, n).T for k, v in batch.metrics.items()}


@pytest.fixture(scope="module")
def week() -> tuple[SimulatedFleet, dict[str, np.ndarray]]:
    """A mixed fleet over a week with every scenario kind and frequent spontaneous incidents."""
    fleet = SimulatedFleet(
        size=24, seed=5, interval_s=300.0, start=MONDAY, scenarios=EVERY_KIND, incident_rate_per_week=3.0
    )
    return fleet, grid(fleet.generate(MONDAY, MONDAY + 7 * DAY), fleet)


def test_same_seed_gives_identical_records_and_another_seed_does_not() -> None:
    a = SimulatedFleet(size=12, seed=1, interval_s=5.0).records(MONDAY, MONDAY + 600)
    b = SimulatedFleet(size=12, seed=1, interval_s=5.0).records(MONDAY, MONDAY + 600)
    c = SimulatedFleet(size=12, seed=2, interval_s=5.0).records(MONDAY, MONDAY + 600)
    assert len(a) == 12 * 120
    assert a == b
    assert [r["cpu_user_pct"] for r in a] != [r["cpu_user_pct"] for r in c]


def test_chunked_generation_equals_one_shot() -> None:
    fleet = SimulatedFleet(
        size=15,
        seed=9,
        interval_s=7.0,
        start=MONDAY,
        incident_rate_per_week=20.0,
        scenarios=["memory_leak:web-001@+1h+3h", "db_outage:db-001@+2h+1h"],
    )
    t1 = MONDAY + 6 * 3600
    whole = fleet.generate(MONDAY, t1)
    cuts = [MONDAY, MONDAY + 3.5, MONDAY + 7, MONDAY + 1000, MONDAY + 3600 + 1, MONDAY + 4 * 3600, t1]
    parts = [fleet.generate(a, b) for a, b in zip(cuts, cuts[1:], strict=False)]
    assert fleet.incidents(MONDAY, t1), "the test needs incidents crossing the cuts"
    assert np.array_equal(whole.timestamps, np.concatenate([p.timestamps for p in parts]))
    assert np.array_equal(whole.server_index, np.concatenate([p.server_index for p in parts]))
    for metric in METRICS:
        assert np.array_equal(whole.metrics[metric], np.concatenate([p.metrics[metric] for p in parts])), (
            metric
        )
    batches = list(fleet.batches(MONDAY, t1, max_records=1000))
    assert max(len(b) for b in batches) == 1000
    for metric in METRICS:
        assert np.array_equal(whole.metrics[metric], np.concatenate([b.metrics[metric] for b in batches])), (
            metric
        )


def test_a_server_behaves_the_same_in_a_bigger_fleet() -> None:
    small = SimulatedFleet(size=10, seed=4, incident_rate_per_week=0.0).generate(MONDAY, MONDAY + 3600)
    big = SimulatedFleet(size=40, seed=4, incident_rate_per_week=0.0).generate(MONDAY, MONDAY + 3600)
    for metric in ("cpu_user_pct", "mem_used_pct", "uptime_days"):
        assert np.array_equal(small.column(metric, "web-001"), big.column(metric, "web-001"))


def test_samples_sit_on_the_interval_grid_in_time_major_order() -> None:
    fleet = SimulatedFleet(size=6, seed=0, interval_s=5.0)
    batch = fleet.generate(MONDAY + 1.0, MONDAY + 21.0)
    assert len(batch) == 6 * 4
    assert list(np.unique(batch.timestamps) - MONDAY) == [5.0, 10.0, 15.0, 20.0]
    assert list(batch.server_names[:6]) == fleet.names
    assert len(fleet.generate(MONDAY, MONDAY)) == 0


def test_output_forms() -> None:
    fleet = SimulatedFleet(size=6, seed=0, interval_s=5.0)
    batch = fleet.generate(MONDAY, MONDAY + 10)
    table = batch.to_arrow()
    assert table.schema.field("timestamp").type == pa.timestamp("ms", tz="UTC")
    assert table.schema.field("server_name").type == pa.string()
    assert table.schema.field("profile").type == pa.string()
    assert all(table.schema.field(m).type == pa.float64() for m in METRICS)
    assert table.column("timestamp")[0].as_py().timestamp() == MONDAY
    records = batch.to_records()
    assert set(records[0]) == {"timestamp", "server_name", "profile", *METRICS}
    assert records[0]["timestamp"] == MONDAY and records[0]["server_name"] == "web-001"
    assert records[0]["profile"] == "web"
    iso = batch.to_records(iso_timestamps=True)[0]["timestamp"]
    assert datetime.fromisoformat(iso).timestamp() == MONDAY and iso.endswith("+00:00")


def test_composition_is_proportional_and_names_follow_profiles() -> None:
    members = compose(100)
    counts = {p: sum(1 for _, q in members if q == p) for p in {q for _, q in members}}
    assert sum(counts.values()) == 100
    assert counts["web"] == 30 and counts["api"] == 20 and counts["batch_etl"] == 18
    prefixes = {
        "web": "web",
        "api": "api",
        "database": "db",
        "cache": "cache",
        "ml_compute": "ml",
        "batch_etl": "etl",
    }
    assert all(name.startswith(prefixes[p] + "-") for name, p in members)
    assert [p for _, p in compose(2)] == ["web", "database"]
    fleet = SimulatedFleet(size=10, seed=0)
    assert {s.database for s in fleet.servers if s.profile in ("web", "api")} <= {
        s.name for s in fleet.servers if s.profile == "database"
    }


def test_cpu_parts_sum_to_100_and_ranges_hold_over_a_week(week) -> None:
    fleet, m = week
    cpu = m["cpu_user_pct"] + m["cpu_sys_pct"] + m["cpu_iowait_pct"] + m["cpu_idle_pct"]
    assert np.abs(cpu - 100.0).max() < 1e-9
    for name in METRICS:
        assert np.isfinite(m[name]).all(), name
        assert m[name].min() >= 0.0, name
        if name.endswith("_pct"):
            assert m[name].max() <= 100.0, name
    assert (m["java_cpu_pct"] <= m["cpu_user_pct"]).all()
    for name in ("back_close_wait", "front_close_wait"):
        assert np.array_equal(m[name], np.round(m[name])), name


def test_swap_rises_only_under_memory_pressure(week) -> None:
    _, m = week
    relaxed = m["mem_used_pct"] < SWAP_THRESHOLD
    assert m["swap_used_pct"][relaxed].max() <= 1.5
    assert m["swap_used_pct"][~relaxed].max() > 20.0, "the week's memory leak must swap"


def test_load_tracks_cpu_and_io_demand_per_core(week) -> None:
    fleet, m = week
    cores = np.array([s.cores for s in fleet.servers], dtype=float)[:, None]
    busy = (100.0 - m["cpu_idle_pct"]) / 100.0
    per_core = m["load_average"] / cores
    assert np.corrcoef(busy.ravel(), per_core.ravel())[0, 1] > 0.95


def test_uptime_grows_with_time_and_resets_on_reboot(week) -> None:
    fleet, m = week
    step = fleet.interval_s / DAY
    d = np.diff(m["uptime_days"], axis=1)
    grows = np.isclose(d, step, atol=1e-9)
    reboots = ~grows
    assert grows.mean() > 0.99
    assert (m["uptime_days"][:, 1:][reboots] < step + 1e-9).all(), "a reboot sets uptime to ~0"
    assert reboots.sum() >= 1, "reboots happen"


def test_daily_and_weekly_seasonality(week) -> None:
    fleet, m = week
    t = fleet.step_times(MONDAY, MONDAY + 7 * DAY)
    hour = (t % DAY) / 3600
    weekday = (t - MONDAY) // DAY < 5
    office = weekday & (hour >= 10) & (hour < 16)
    night = weekday & (hour >= 1) & (hour < 5)

    def mean(profile: str, when: np.ndarray) -> float:
        rows = [i for i, s in enumerate(fleet.servers) if s.profile == profile]
        return float(m["cpu_user_pct"][rows][:, when].mean())

    assert mean("web", office) > 2.0 * mean("web", night)
    weekend_office = ~weekday & (hour >= 10) & (hour < 16)
    assert mean("web", weekend_office) < 0.8 * mean("web", office)
    assert mean("batch_etl", night) > 2.0 * mean("batch_etl", office)


def test_generation_is_fast_enough_for_backfill() -> None:
    fleet = SimulatedFleet(size=1000, seed=1, interval_s=5.0)
    fleet.generate(MONDAY, MONDAY + 5)  # first-call overhead out of the measurement
    start = time.perf_counter()
    n = sum(len(b) for b in fleet.batches(MONDAY, MONDAY + 300 * 5.0, max_records=1000))
    rate = n / (time.perf_counter() - start)
    assert n == 300_000
    assert rate > 100_000, f"{rate:.0f} records/s"
