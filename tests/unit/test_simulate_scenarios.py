"""Fleet simulator: scenario specs, scripted incidents in the data, spontaneous incident rate."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pytest

from nordiqd.simulate import ScenarioError, SimulatedFleet, parse_duration, parse_scenario

DAY = 86400.0
MONDAY = datetime.fromisoformat("2026-11-23T00:00:00+00:00").timestamp()
HOUR = 3600.0


def test_parse_absolute_relative_and_severity() -> None:
    sc = parse_scenario("memory_leak:web-003@2026-11-26T14:00Z+6h")
    assert (sc.kind, sc.servers, sc.duration_s, sc.severity) == ("memory_leak", ("web-003",), 6 * HOUR, 1.0)
    assert sc.start == datetime.fromisoformat("2026-11-26T14:00:00+00:00").timestamp()
    sc = parse_scenario("io_storm:db-001,db-002@2026-11-26T14:00:00+01:00+1h30m*0.5")
    assert sc.servers == ("db-001", "db-002") and sc.duration_s == 5400.0 and sc.severity == 0.5
    assert sc.start == datetime.fromisoformat("2026-11-26T13:00:00+00:00").timestamp()
    sc = parse_scenario("cpu_runaway:api-002@+30m+2h")
    assert sc.start is None and sc.offset_s == 1800.0 and sc.start_at(1000.0) == 2800.0
    assert parse_duration("1d2h3m4s") == 93784.0


@pytest.mark.parametrize(
    ("spec", "column", "words"),
    [
        ("memory_leek:web-003@2026-11-26T14:00Z+6h", 1, "unknown kind 'memory_leek'"),
        ("memory_leak web-003", 1, "missing ':'"),
        ("memory_leak:web-003+6h", 13, "missing '@START'"),
        ("memory_leak:web-003,WEB@2026-11-26T14:00Z+6h", 21, "bad server name 'WEB'"),
        ("memory_leak:web-003@2026-11-26T14:00+6h", 37, "needs a UTC offset"),
        ("memory_leak:web-003@tomorrow+6h", 21, "expected a start time"),
        ("memory_leak:web-003@2026-11-26T14:00Z+6x", 39, "expected a duration"),
        ("memory_leak:web-003@2026-11-26T14:00Z", 38, "expected '+DURATION'"),
        ("memory_leak:web-003@2026-11-26T14:00Z+0h", 39, "longer than zero"),
        ("memory_leak:web-003@2026-11-26T14:00Z+6h*2", 42, "severity"),
        ("memory_leak:web-003@2026-11-26T14:00Z+6h!", 41, "unexpected '!'"),
        ("memory_leak:web-003@2026-13-26T14:00Z+6h", 21, "invalid start time"),
    ],
)
def test_parse_errors_say_what_and_where(spec: str, column: int, words: str) -> None:
    with pytest.raises(ScenarioError) as err:
        parse_scenario(spec)
    message = str(err.value)
    assert words in message
    assert f"at column {column}:" in message


def test_fleet_rejects_scenarios_that_do_not_fit() -> None:
    with pytest.raises(ScenarioError, match="names web-099, which is not in this fleet"):
        SimulatedFleet(size=10, scenarios=["memory_leak:web-099@+1h+1h"], start=MONDAY)
    with pytest.raises(ScenarioError, match="web-001 is a web server"):
        SimulatedFleet(size=10, scenarios=["db_outage:web-001@+1h+1h"], start=MONDAY)
    with pytest.raises(ScenarioError, match="relative start"):
        SimulatedFleet(size=10, scenarios=["cpu_runaway:web-001@+1h+1h"])


def window(fleet: SimulatedFleet, metric: str, server: str, lo_h: float, hi_h: float) -> tuple:
    """Times (h since MONDAY) and values of one metric of one server inside [lo_h, hi_h)."""
    batch = fleet.generate(MONDAY + lo_h * HOUR, MONDAY + hi_h * HOUR)
    t = (np.unique(batch.timestamps) - MONDAY) / HOUR
    return t, batch.column(metric, server)


@pytest.fixture(scope="module")
def scripted() -> SimulatedFleet:
    """Spontaneous incidents off, so every effect seen comes from a scenario."""
    return SimulatedFleet(
        size=30,
        seed=3,
        interval_s=60.0,
        start=MONDAY,
        incident_rate_per_week=0.0,
        scenarios=[
            "memory_leak:web-003@+10h+6h",
            "io_storm:db-002@+12h+1h",
            "cpu_runaway:api-002@+13h+2h",
            "db_outage:db-001@+14h+1h",
            "disk_fill:etl-002@+9h+4h",
        ],
    )


def test_memory_leak_rises_steadily_over_its_window_then_resets(scripted: SimulatedFleet) -> None:
    t, mem = window(scripted, "mem_used_pct", "web-003", 8, 18)
    inside = (t >= 10) & (t < 16)
    slope, _ = np.polyfit(t[inside], mem[inside], 1)
    assert slope > 4.0, f"{slope:.2f} %/h"
    assert np.corrcoef(t[inside], mem[inside])[0, 1] > 0.97
    assert mem[inside][-5:].mean() > mem[t < 10].mean() + 25
    assert mem[t >= 16.1].max() < 80, "the restarted process gives the memory back"
    _, swap = window(scripted, "swap_used_pct", "web-003", 8, 18)
    assert swap[inside][-5:].mean() > 10 and swap[t < 10].max() < 2


def test_io_storm_raises_iowait(scripted: SimulatedFleet) -> None:
    t, io = window(scripted, "cpu_iowait_pct", "db-002", 10, 15)
    inside = (t >= 12.2) & (t < 12.9)
    assert io[inside].mean() > 30
    assert io[inside].mean() > 4 * io[(t < 12) | (t >= 13.1)].mean()


def test_cpu_runaway_drives_user_cpu_up(scripted: SimulatedFleet) -> None:
    t, user = window(scripted, "cpu_user_pct", "api-002", 11, 17)
    inside = (t >= 13.2) & (t < 14.8)
    assert user[inside].min() > 75
    assert user[inside].mean() > user[(t < 12) | (t >= 15.1)].mean() + 25
    _, java = window(scripted, "java_cpu_pct", "api-002", 11, 17)
    assert java[inside].mean() > 0.9 * user[inside].mean()


def test_db_outage_piles_up_close_wait_on_its_dependents_only(scripted: SimulatedFleet) -> None:
    dependents = [s.name for s in scripted.servers if s.database == "db-001"]
    others = [s.name for s in scripted.servers if s.database not in (None, "db-001", "db-002")]
    assert dependents and others
    profiles = {scripted.server(n).profile for n in dependents}
    assert {"web", "api", "batch_etl"} <= profiles
    for name in dependents:
        t, back = window(scripted, "back_close_wait", name, 13, 16)
        inside = (t >= 14.4) & (t < 14.9)
        assert back[inside].mean() > 100, name
        assert back[(t < 14) | (t >= 15.1)].max() < 30, name
        _, io = window(scripted, "cpu_iowait_pct", name, 13, 16)
        assert io[inside].mean() > io[t < 14].mean() + 5, name
    for name in others:
        _, back = window(scripted, "back_close_wait", name, 13, 16)
        assert back.max() < 30, name
    incident = next(i for i in scripted.incidents(MONDAY, MONDAY + DAY) if i.kind == "db_outage")
    assert set(incident.affects) == set(dependents) and incident.cause == "scenario"


def test_disk_fill_climbs_then_cleans_up(scripted: SimulatedFleet) -> None:
    t, disk = window(scripted, "disk_usage_pct", "etl-002", 8, 15)
    inside = (t >= 9) & (t < 13)
    assert np.corrcoef(t[inside], disk[inside])[0, 1] > 0.95
    assert disk[inside][-3:].mean() > 90
    assert disk[t >= 13.1].max() < 80


def test_spontaneous_incidents_stay_rare() -> None:
    fleet = SimulatedFleet(size=60, seed=11, interval_s=120.0)
    t0, t1 = MONDAY, MONDAY + 7 * DAY
    incidents = fleet.incidents(t0, t1)
    per_server = np.array([sum(1 for i in incidents if i.server == s.name) for s in fleet.servers])
    assert 0.2 < per_server.mean() <= 1.0
    assert per_server.max() <= 4
    assert all(i.cause == "spontaneous" and 0 < i.severity <= 1 for i in incidents)
    # In the data: episodes over alerting thresholds, merged across gaps under 30 min.
    n = len(fleet.servers)
    m = {k: v.reshape(-1, n).T for k, v in fleet.generate(t0, t1).metrics.items()}
    hot = (
        (m["cpu_user_pct"] > 92)
        | (m["cpu_iowait_pct"] > 30)
        | (m["mem_used_pct"] > 90)
        | (m["swap_used_pct"] > 10)
        | (m["disk_usage_pct"] > 90)
        | (m["back_close_wait"] > 100)
        | (m["front_close_wait"] > 100)
    )
    gap = int(1800 / fleet.interval_s)
    for row in hot:
        on = np.flatnonzero(row)
        episodes = 0 if not len(on) else 1 + int((np.diff(on) > gap).sum())
        assert episodes <= 6
    assert hot.mean() < 0.01


def test_never_more_than_one_spontaneous_incident_a_day() -> None:
    fleet = SimulatedFleet(size=12, seed=2, incident_rate_per_week=50.0)
    incidents = fleet.incidents(MONDAY, MONDAY + 7 * DAY)
    for server in fleet.servers:
        days = [int((i.start - MONDAY) // DAY) for i in incidents if i.server == server.name]
        assert days == sorted(set(days)), server.name
        assert days == list(range(7)), "at full rate: exactly one a day"
