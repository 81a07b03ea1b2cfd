"""Sending a simulated fleet: backfill as fast as ingest takes it, then live samples.

``run_simulation(options, stop)`` is the whole job behind ``nordiqd simulate`` and
what the demo calls (in a thread, or through the CLI in a subprocess). It builds the
``SimulatedFleet``, sends ``[now - backfill_days, now)`` in batches of ``batch_size``, then
streams live: simulated time runs ``speed`` x the clock from the simulated "now", and
each time a sample time comes due every server's new sample goes out. A send that
falls behind simply covers a longer range next time, packed into full batches.

How it runs and stops: synchronously in the calling thread, one request in flight.
``stop`` (a ``threading.Event``) is checked between batches and wakes every wait,
including retry back-off; setting it ends the run after the batch in flight, and the
``Summary`` comes back as usual. A rejected batch or a daemon that stays silent past
the retries raises a ``SimulationError`` carrying the summary so far.

Destinations (``Sink``): the zmq ingest endpoint through ``nordiqd.agent.IngestClient``,
REST ``POST /feed/data``, or a JSONL/Parquet file for ``--dry-run``. Records carry only
the metrics the daemon accepts (``options.metrics``), because it rejects unknown fields.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from nordiqd.simulate.batch import Batch
from nordiqd.simulate.errors import DaemonUnavailable, SimulationError
from nordiqd.simulate.generator import SimulatedFleet
from nordiqd.simulate.metric_model import METRICS
from nordiqd.simulate.options import SimulationOptions
from nordiqd.simulate.sinks import Sink, Transient, open_sink
from nordiqd.simulate.summary import Progress, Summary

DAY_S = 86_400.0
# Back-off between attempts at a batch the daemon did not answer: 0.5, 1, 2, 4, 8, 8 s.
RETRY_FIRST_S = 0.5
RETRY_MAX_S = 8.0
# How long after a sample's time the live loop wakes to send it.
_WAKE_SLACK_S = 0.001


class Pacer:
    """Simulated time as ``start + (clock() - t0) * speed``, capped at ``end``."""

    def __init__(
        self, start: float, speed: float, clock: Callable[[], float], end: float | None = None
    ) -> None:
        self.start = start
        self.speed = speed
        self.end = end
        self._clock = clock
        self._t0 = clock()

    def now(self) -> float:
        """The simulated time now."""
        t = self.start + (self._clock() - self._t0) * self.speed
        return t if self.end is None else min(t, self.end)

    def wait_for(self, sim_t: float) -> float:
        """Wall seconds until simulated time reaches ``sim_t`` (0 if it has)."""
        return max(0.0, (sim_t - self.start) / self.speed - (self._clock() - self._t0))


def next_sample(after: float, interval_s: float) -> float:
    """The first sample time ``k * interval_s`` at or after ``after``."""
    return math.ceil(after / interval_s) * interval_s


def resolve_start(options: SimulationOptions, wall_now: float) -> float:
    """The simulated now: pinned, or the clock's, moved back so live ends by the clock."""
    if options.start is not None:
        return options.start
    if options.live and options.speed > 1 and options.duration_s is not None:
        return wall_now - options.duration_s * (options.speed - 1)
    return wall_now


def run_simulation(
    options: SimulationOptions,
    stop: threading.Event | None = None,
    *,
    sink: Sink | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    notice: Callable[[str], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    wall: Callable[[], float] = time.time,
    sleep: Callable[[float], bool] | None = None,
) -> Summary:
    """Send the backfill, then live samples, until done, ``duration_s`` or ``stop``.

    Args:
        options: what to simulate and where to send it.
        stop: set it to end the run cleanly (from a signal handler or another thread).
        sink: a destination to use instead of the one ``options`` names.
        on_progress: called after every backfill batch.
        notice: called with one-off messages (dropped metrics, catching up).
        clock: monotonic seconds, for pacing and rates.
        wall: epoch seconds, for the default simulated now and ``cap_at_clock``.
        sleep: ``sleep(seconds) -> stop requested``; default waits on ``stop``.

    Returns:
        The summary; ``reason`` is "done", "duration" or "stopped".

    Raises:
        ScenarioError: a scenario that does not fit the fleet (before anything is sent).
        BatchRefused: the daemon rejected a batch.
        DaemonUnavailable: the daemon did not answer a batch within the retries.
        SimulationError: any other reason to stop early (e.g. a refused API key).
    """
    stop = stop or threading.Event()
    sleep = sleep or stop.wait
    say = notice or (lambda _msg: None)
    start = resolve_start(options, wall())
    fleet = SimulatedFleet(options.servers, options.seed, options.interval_s, options.scenarios, start=start)
    accepted = set(METRICS) if options.metrics is None else set(options.metrics)
    metrics = tuple(m for m in METRICS if m in accepted)
    dropped = tuple(m for m in METRICS if m not in accepted)
    if dropped:
        say(f"not sending {', '.join(dropped)}: the daemon's [schema] metrics do not include them")
    summary = Summary(start=start, end=start, dropped_metrics=dropped)
    sink = sink or open_sink(options, metrics)
    t0 = clock()
    run = _Run(options, fleet, sink, stop, sleep, summary)
    try:
        if options.backfill_days > 0:
            first = start - options.backfill_days * DAY_S
            total = len(fleet.steps(first, start)) * len(fleet.servers)

            def progress() -> None:
                if on_progress is not None:
                    on_progress(Progress(summary.backfill_records, total, clock() - t0))

            run.send_range(first, start, "backfill", progress)
        if options.live and not stop.is_set():
            _live(run, start, clock, wall, say)
        summary.reason = "stopped" if stop.is_set() else summary.reason
    except SimulationError as exc:
        exc.summary = summary
        raise
    finally:
        summary.elapsed_s = clock() - t0
        sink.close()
    return summary


class _Run:
    """The sending half of a run: batches a range, retries, counts."""

    def __init__(
        self,
        options: SimulationOptions,
        fleet: SimulatedFleet,
        sink: Sink,
        stop: threading.Event,
        sleep: Callable[[float], bool],
        summary: Summary,
    ) -> None:
        self.options = options
        self.fleet = fleet
        self.sink = sink
        self.stop = stop
        self.sleep = sleep
        self.summary = summary

    def send_range(self, t0: float, t1: float, phase: str, after: Callable[[], None] | None = None) -> bool:
        """Send every sample in ``[t0, t1)``; False when stopped part-way."""
        for batch in self.fleet.batches(t0, t1, self.options.batch_size):
            if self.stop.is_set():
                return False
            if not len(batch):
                continue
            accepted = self._deliver(batch)
            s = self.summary
            s.records += len(batch)
            s.batches += 1
            s.accepted += accepted
            s.end = float(batch.timestamps[-1]) + self.fleet.interval_s
            if phase == "backfill":
                s.backfill_records += len(batch)
            else:
                s.live_records += len(batch)
            if after is not None:
                after()
        return True

    def _deliver(self, batch: Batch) -> int:
        delay = RETRY_FIRST_S
        for attempt in range(1, self.options.attempts + 1):
            try:
                return self.sink.send(batch)
            except Transient as exc:
                if attempt == self.options.attempts or self.stop.is_set():
                    raise DaemonUnavailable(
                        f"the daemon did not take a batch after {attempt} attempt(s): {exc}"
                    ) from None
                self.summary.retries += 1
                if self.sleep(delay):
                    raise DaemonUnavailable(f"stopped while retrying a batch: {exc}") from None
                delay = min(delay * 2, RETRY_MAX_S)
        raise AssertionError("unreachable")


def _live(
    run: _Run,
    start: float,
    clock: Callable[[], float],
    wall: Callable[[], float],
    say: Callable[[str], None],
) -> None:
    opts = run.options
    end = None if opts.duration_s is None else start + opts.duration_s * opts.speed
    pacer = Pacer(start, opts.speed, clock, end)
    interval = opts.interval_s
    last = start
    said: set[str] = set()
    while not run.stop.is_set():
        now = pacer.now()
        if opts.cap_at_clock and now > wall():
            now = max(last, wall())
            if "caught up" not in said and opts.speed > 1:
                say("live: simulated time has caught up with the clock; going on at 1x")
                said.add("caught up")
        if now > last:
            lag_s = (now - next_sample(last, interval)) / opts.speed  # wall seconds late
            if "behind" not in said and lag_s > max(1.0, 2 * interval / opts.speed):
                say(f"live: {lag_s:.1f} s behind the clock, catching up in full batches")
                said.add("behind")
            if not run.send_range(last, now, "live"):
                return
            last = now
        if end is not None and last >= end:
            run.summary.reason = "duration"
            return
        # Wake just after the next sample's time: the half-open range then includes it.
        due = next_sample(last, interval)
        target = due if end is None else min(due, end)
        delay = pacer.wait_for(target)
        if opts.cap_at_clock:
            delay = max(delay, target - wall())
        if run.sleep(delay + _WAKE_SLACK_S):
            return
