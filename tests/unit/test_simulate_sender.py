"""Sending a simulated fleet: pacing with a fake clock, live tiling, retries, metric filtering."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from nordiqd.simulate import Batch
from nordiqd.simulate.errors import DaemonUnavailable
from nordiqd.simulate.options import SimulationOptions
from nordiqd.simulate.sender import Pacer, next_sample, resolve_start, run_simulation
from nordiqd.simulate.sinks import Transient

T0 = 1_793_491_200.0  # 2026-11-01T00:00:00Z


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


# --- what is sent ----------------------------------------------------------------------


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


# --- retries -------------------------------------------------------------------------


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
