"""``nordiqd simulate``: arguments, dry-run determinism, pacing with a fake clock, retries."""

from __future__ import annotations

import argparse
import json
import threading
from pathlib import Path

import msgspec
import pyarrow.parquet as pq
import pytest

from nordiqd import config as config_mod
from nordiqd.simulate import METRICS, Batch
from nordiqd.simulate import cli as sim_cli
from nordiqd.simulate.errors import BatchRefused, DaemonUnavailable
from nordiqd.simulate.sender import Pacer, SimulationOptions, next_sample, resolve_start, run_simulation
from nordiqd.simulate.sinks import Transient

START = "2026-11-01T00:00Z"
T0 = 1_793_491_200.0  # 2026-11-01T00:00:00Z


def parse(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="nordiqd simulate")
    sim_cli.add_arguments(p)
    return p.parse_args(list(argv))


def main(*argv: str) -> int:
    return sim_cli.run(parse(*argv))


class FakeClock:
    """Monotonic time that only moves when the code under test sleeps (or a sink is slow)."""

    def __init__(self) -> None:
        self.t = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> bool:
        self.sleeps.append(seconds)
        self.t += seconds
        return False


class ListSink:
    """Keeps every batch; each send costs ``cost_s`` of fake time; fails the first ``fail`` sends."""

    def __init__(self, clock: FakeClock | None = None, cost_s: float = 0.0, fail: int = 0) -> None:
        self.batches: list[Batch] = []
        self.clock, self.cost_s, self.fail = clock, cost_s, fail
        self.closed = False

    def send(self, batch: Batch) -> int:
        if self.fail:
            self.fail -= 1
            raise Transient("no answer")
        if self.clock is not None:
            self.clock.t += self.cost_s
        self.batches.append(batch)
        return len(batch)

    def close(self) -> None:
        self.closed = True

    @property
    def times(self) -> list[float]:
        return [t for b in self.batches for t in b.timestamps.tolist()]


# --- arguments ------------------------------------------------------------------------


def test_defaults() -> None:
    args = parse()
    assert (args.via, args.servers, args.interval, args.batch_size, args.speed) == ("zmq", 20, 5.0, 1000, 1.0)
    assert args.backfill_days == 0 and args.duration is None and not args.no_live and args.scenario == []


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--backfill-days", "-1"], "argument --backfill-days: must not be negative"),
        (["--servers", "0"], "argument --servers: must be at least 1"),
        (["--speed", "0"], "argument --speed: must be above 0"),
        (["--interval", "fast"], "argument --interval: 'fast' is not a number"),
        (["--scenario", "memory_leak:web-001"], "argument --scenario: bad scenario"),
        (["--scenario", "meltdown:web-001@+1h+1h"], "unknown kind 'meltdown'"),
        (["--start", "2026-11-01T00:00"], "has no UTC offset"),
        (["--start", "yesterday"], "is not an ISO-8601 time"),
        (["--via", "carrier-pigeon"], "invalid choice"),
    ],
)
def test_bad_arguments_are_clear_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        parse(*argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--dry-run"], "--dry-run needs --out"),
        (["--out", "x.jsonl"], "--out only goes with --dry-run"),
        (["--no-live"], "would send nothing"),
        (["--backfill-days", "1", "--no-live", "--duration", "5"], "--duration applies to live"),
        (["--batch-size", "200000"], "max_batch_records"),
        (["--via", "rest", "--url", "localhost:8000"], "is not an http:// or https:// URL"),
    ],
)
def test_arguments_that_do_not_go_together(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(*argv) == 2
    assert message in capsys.readouterr().err


def test_options_come_from_the_config(tmp_path: Path) -> None:
    (tmp_path / "key").write_text("k" * 32 + "\n")
    (tmp_path / "key").chmod(0o600)
    cfg = config_mod.from_dict(
        {
            "daemon": {"run_dir": str(tmp_path / "run")},
            "api": {"host": "0.0.0.0", "port": 8123, "key_file": str(tmp_path / "key")},
        }
    )
    # Only the accepted metric list matters here, not the sections that refer to it.
    cfg = msgspec.structs.replace(cfg, schema=config_mod.SchemaConfig(metrics=["cpu_user_pct", "gpu_pct"]))
    opts = sim_cli.options_from_args(parse("--via", "rest", "--start", START), cfg)
    assert opts.url == "http://127.0.0.1:8123" and opts.api_key == "k" * 32
    assert opts.endpoint == f"ipc://{tmp_path / 'run'}/ingest.sock"
    assert opts.metrics == ("cpu_user_pct", "gpu_pct") and opts.start == T0
    assert opts.cap_at_clock
    over = sim_cli.options_from_args(parse("--endpoint", "tcp://h:1", "--url", "http://h:2"), cfg)
    assert (over.endpoint, over.url, over.via) == ("tcp://h:1", "http://h:2", "zmq")


def test_a_missing_key_file_is_a_config_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main("--via", "rest", "--key-file", str(tmp_path / "nope")) == 78
    assert "does not exist" in capsys.readouterr().err


def test_a_scenario_on_a_server_the_fleet_lacks_is_refused_before_sending(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "x.jsonl"
    code = main(
        "--servers",
        "5",
        "--scenario",
        "memory_leak:web-042@+1h+1h",
        "--backfill-days",
        "1",
        "--no-live",
        "--dry-run",
        "--out",
        str(out),
    )
    assert code == 2
    assert "web-042, which is not in this fleet" in capsys.readouterr().err


def test_list_scenarios_names_kinds_and_servers(capsys: pytest.CaptureFixture[str]) -> None:
    assert main("--list-scenarios", "--servers", "8") == 0
    text = capsys.readouterr().out
    assert "KIND:SERVER" in text and "memory_leak" in text and "db_outage" in text and "web-001" in text


# --- dry run --------------------------------------------------------------------------


def dry(tmp_path: Path, name: str, *extra: str) -> Path:
    out = tmp_path / name
    assert (
        main(
            "--start",
            START,
            "--backfill-days",
            "0.25",
            "--interval",
            "60",
            "--no-live",
            "--dry-run",
            "--out",
            str(out),
            *extra,
        )
        == 0
    )
    return out


def test_dry_run_same_seed_same_file_other_seed_differs(tmp_path: Path) -> None:
    a = dry(tmp_path, "a.jsonl", "--seed", "1").read_bytes()
    b = dry(tmp_path, "b.jsonl", "--seed", "1").read_bytes()
    c = dry(tmp_path, "c.jsonl", "--seed", "2").read_bytes()
    assert a == b and a != c
    lines = a.decode().splitlines()
    assert len(lines) == 20 * 6 * 60  # 20 servers x 6 h at one sample a minute
    first = json.loads(lines[0])
    assert first["timestamp"] == T0 - 6 * 3600 and set(first) == {
        "timestamp",
        "server_name",
        "profile",
        *METRICS,
    }


def test_dry_run_parquet(tmp_path: Path) -> None:
    table = pq.read_table(dry(tmp_path, "a.parquet", "--seed", "1", "--servers", "3"))
    assert table.num_rows == 3 * 6 * 60
    assert table.column_names == ["timestamp", "server_name", "profile", *METRICS]


def test_only_metrics_the_daemon_accepts_are_sent(tmp_path: Path) -> None:
    out = tmp_path / "a.jsonl"
    notes: list[str] = []
    opts = SimulationOptions(
        servers=2, interval_s=60.0, start=T0, backfill_days=0.01, live=False, via="file", out=str(out),
        metrics=("cpu_user_pct", "mem_used_pct", "load_average", "gpu_pct"),
    )  # fmt: skip
    run_simulation(opts, notice=notes.append)
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 2 * 14
    assert set(records[0]) == {
        "timestamp",
        "server_name",
        "profile",
        "cpu_user_pct",
        "mem_used_pct",
        "load_average",
    }
    assert len(notes) == 1 and "not sending" in notes[0] and "swap_used_pct" in notes[0]


# --- pacing ---------------------------------------------------------------------------


def test_pacer_maps_wall_time_to_simulated_time() -> None:
    clock = FakeClock()
    pacer = Pacer(T0, 60.0, clock, end=T0 + 600)
    assert pacer.now() == T0
    clock.t += 2
    assert pacer.now() == T0 + 120 and pacer.wait_for(T0 + 300) == 3.0
    clock.t += 100
    assert pacer.now() == T0 + 600 and pacer.wait_for(T0 + 300) == 0.0
    assert next_sample(T0 + 1, 5.0) == T0 + 5 and next_sample(T0, 5.0) == T0


def test_live_sends_each_sample_once_when_due() -> None:
    clock, sink = FakeClock(), ListSink()
    opts = SimulationOptions(servers=4, interval_s=5.0, start=T0, duration_s=30.0)
    summary = run_simulation(opts, sink=sink, clock=clock, sleep=clock.sleep)
    assert summary.reason == "duration" and sink.closed
    # One batch per tick, each with every server, at the grid times in [T0, T0+30).
    assert [sorted(set(b.timestamps.tolist())) for b in sink.batches] == [[T0 + 5 * k] for k in range(6)]
    assert all(len(b) == 4 for b in sink.batches) and summary.live_records == 24
    assert all(4.9 < s < 5.1 for s in clock.sleeps[1:])


def test_live_speed_runs_simulated_time_faster() -> None:
    clock, sink = FakeClock(), ListSink()
    opts = SimulationOptions(servers=2, interval_s=60.0, start=T0, speed=60.0, duration_s=10.0)
    run_simulation(opts, sink=sink, clock=clock, sleep=clock.sleep)
    assert sorted(set(sink.times)) == [T0 + 60 * k for k in range(10)]  # 10 simulated minutes
    assert clock.t - 1000.0 == pytest.approx(10.0, abs=0.01)


def test_live_catches_up_in_bigger_batches_when_sending_is_slow() -> None:
    clock = FakeClock()
    sink = ListSink(clock, cost_s=12.0)  # each send takes 12 s of a 5 s interval
    notes: list[str] = []
    opts = SimulationOptions(servers=3, interval_s=5.0, start=T0, duration_s=120.0)
    summary = run_simulation(opts, sink=sink, clock=clock, sleep=clock.sleep, notice=notes.append)
    times = sink.times
    pairs = {
        (t, s)
        for b in sink.batches
        for t, s in zip(b.timestamps.tolist(), b.server_names.tolist(), strict=True)
    }
    assert times == sorted(times) and len(pairs) == len(times) == 3 * 24  # nothing twice
    assert sorted(set(times)) == [T0 + 5 * k for k in range(24)] and summary.records == 72  # nothing lost
    assert max(len(b) for b in sink.batches) > 3  # later sends carry several ticks
    assert any("catching up" in n for n in notes)


def test_backfill_then_live_tile_time_without_gap_or_overlap() -> None:
    clock, sink = FakeClock(), ListSink()
    progress: list[int] = []
    opts = SimulationOptions(
        servers=2, interval_s=300.0, start=T0, backfill_days=1, batch_size=50, speed=300.0, duration_s=2.0
    )
    summary = run_simulation(
        opts, sink=sink, clock=clock, sleep=clock.sleep, on_progress=lambda p: progress.append(p.done)
    )
    assert sorted(set(sink.times)) == [T0 - 86400 + 300 * k for k in range(288 + 2)]
    assert summary.backfill_records == 2 * 288 and summary.live_records == 4
    assert progress[-1] == 576 and max(len(b) for b in sink.batches[:11]) == 50


def test_stop_ends_the_run_cleanly() -> None:
    stop = threading.Event()
    clock, sink = FakeClock(), ListSink()

    def sleep(seconds: float) -> bool:
        clock.sleep(seconds)
        if len(sink.batches) >= 3:
            stop.set()
        return stop.is_set()

    opts = SimulationOptions(servers=2, interval_s=5.0, start=T0)  # no duration: until stopped
    summary = run_simulation(opts, stop, sink=sink, clock=clock, sleep=sleep)
    assert summary.reason == "stopped" and summary.batches == 3 and sink.closed
    assert "3 batches" in summary.line() and "records/s" in summary.line()


def test_default_start_leaves_room_so_fast_live_never_runs_ahead_of_the_clock() -> None:
    assert resolve_start(SimulationOptions(start=T0, speed=10, duration_s=60), 5.0) == T0
    assert resolve_start(SimulationOptions(speed=1, duration_s=60), T0) == T0
    assert resolve_start(SimulationOptions(speed=10, duration_s=60), T0) == T0 - 540
    assert resolve_start(SimulationOptions(speed=10), T0) == T0  # unbounded: checked while running


def test_fast_live_slows_to_the_clock_once_it_catches_up() -> None:
    clock, sink = FakeClock(), ListSink()
    notes: list[str] = []
    # Simulated now 60 s behind the clock at 10x: caught up after 6.7 s, then 1x.
    opts = SimulationOptions(
        servers=1, interval_s=5.0, start=T0 - 60, speed=10.0, duration_s=20.0, cap_at_clock=True
    )

    def wall() -> float:
        return T0 + (clock.t - 1000.0)

    run_simulation(opts, sink=sink, clock=clock, sleep=clock.sleep, wall=wall, notice=notes.append)
    sent_at = [(b.timestamps[-1], wall()) for b in sink.batches]
    assert all(t <= w for t, w in sent_at)  # never a timestamp in the future
    assert max(sink.times) > T0 + 5 and any("caught up" in n for n in notes)
    # After catching up, one sample per 5 s of wall time.
    assert all(4.9 < s < 5.1 for s in clock.sleeps[-3:])


# --- retries and rejection ------------------------------------------------------------


def test_a_timeout_is_retried_with_back_off() -> None:
    clock, sink = FakeClock(), ListSink(fail=3)
    opts = SimulationOptions(servers=2, interval_s=300.0, start=T0, backfill_days=0.1, live=False)
    summary = run_simulation(opts, sink=sink, clock=clock, sleep=clock.sleep)
    assert summary.retries == 3 and clock.sleeps == [0.5, 1.0, 2.0] and summary.records == 2 * 28


def test_a_daemon_that_stays_silent_ends_the_run() -> None:
    clock = FakeClock()
    opts = SimulationOptions(servers=2, interval_s=300.0, start=T0, backfill_days=0.1, live=False, attempts=3)
    with pytest.raises(DaemonUnavailable, match="after 3 attempt"):
        run_simulation(opts, sink=ListSink(fail=10), clock=clock, sleep=clock.sleep)


def test_a_rejected_batch_prints_the_problems_and_exits_non_zero(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def refuse(options: SimulationOptions, stop: threading.Event, **kw: object) -> None:
        raise BatchRefused(
            "the daemon rejected a batch: 2 bad records",
            [
                {"index": 3, "field": "timestamp", "message": "too far in the future"},
                {"index": 7, "field": "cpu_user_pct", "message": "not a number"},
            ],
        )

    monkeypatch.setattr(sim_cli, "run_simulation", refuse)
    assert main("--start", START) == 1
    err = capsys.readouterr().err
    assert "2 bad records" in err and "record 3, timestamp: too far in the future" in err
    assert "record 7, cpu_user_pct" in err
