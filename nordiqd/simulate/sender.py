"""Sending a simulated fleet: backfill as fast as ingest takes it, then live samples.

``run_simulation(options, stop)`` is the whole job behind ``nordiqd simulate`` and
what the demo calls (in a thread, or through the CLI in a subprocess). It builds the
``Fleet``, sends ``[now - backfill_days, now)`` in batches of ``batch_size``, then
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

import http.client
import math
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import msgspec

from nordiqd.simulate.batch import Batch
from nordiqd.simulate.fleet import Fleet
from nordiqd.simulate.metrics import METRICS

DAY_S = 86_400.0
# Back-off between attempts at a batch the daemon did not answer: 0.5, 1, 2, 4, 8, 8 s.
RETRY_FIRST_S = 0.5
RETRY_MAX_S = 8.0
# How long after a sample's time the live loop wakes to send it.
_WAKE_SLACK_S = 0.001


class SimulationError(Exception):
    """The simulation stopped early; ``summary`` holds what was sent until then."""

    summary: Summary | None = None


class BatchRefused(SimulationError):
    """The daemon rejected a batch; ``problems`` lists each (index, field, message)."""

    def __init__(self, message: str, problems: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.problems = list(problems or [])


class DaemonUnavailable(SimulationError):
    """The daemon did not answer a batch within the retries."""


class Transient(Exception):
    """One attempt failed in a way worth retrying (timeout, connection refused, 503)."""


class Delivery(NamedTuple):
    """What the daemon said about one batch."""

    accepted: int
    duplicates: int = 0


class Sink(Protocol):
    """Where batches go; ``send`` raises ``Transient`` for a retryable failure."""

    def send(self, batch: Batch) -> Delivery: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class SimulationOptions:
    """Everything a run needs; the CLI builds one from its arguments and the config.

    Attributes:
        servers: fleet size.
        interval_s: seconds between two samples of one server (simulated time).
        seed: the seed of every random draw.
        scenarios: scripted incidents, ``fleet.SYNTAX`` specs; a relative start
            (``@+30m``) counts from the simulated now (where live begins).
        backfill_days: history sent first, ``[now - days, now)``.
        live: stream live samples after the backfill.
        speed: simulated seconds per wall second in live mode.
        duration_s: wall seconds of live streaming; None: until ``stop``.
        start: the simulated now (epoch seconds); None: the clock's now, moved back
            by ``duration_s * (speed - 1)`` when speed > 1 so live never runs ahead.
        batch_size: most records per batch.
        metrics: metric names the daemon accepts; None: every simulated metric.
        cap_at_clock: never let simulated time pass the clock (the daemon refuses
            future timestamps): a speed above 1 runs until it catches up with the
            clock, then goes on at 1x.
        via: "zmq", "rest" or "file".
        endpoint: zmq ingest endpoint (via zmq).
        url: API base URL (via rest); ``api_key`` its key.
        out: output file for via "file"; ``.parquet`` or JSON lines.
        timeout_s: seconds to wait for one answer; ``attempts`` per batch.
    """

    servers: int = 20
    interval_s: float = 5.0
    seed: int = 0
    scenarios: tuple[str, ...] = ()
    backfill_days: float = 0.0
    live: bool = True
    speed: float = 1.0
    duration_s: float | None = None
    start: float | None = None
    batch_size: int = 1000
    metrics: tuple[str, ...] | None = None
    cap_at_clock: bool = False
    via: str = "zmq"
    endpoint: str = ""
    url: str = ""
    api_key: str = ""
    out: str = ""
    timeout_s: float = 10.0
    attempts: int = 6


@dataclass
class Summary:
    """Counts of a run; ``line()`` is the closing line the CLI prints."""

    records: int = 0
    batches: int = 0
    accepted: int = 0
    duplicates: int = 0
    backfill_records: int = 0
    live_records: int = 0
    retries: int = 0
    elapsed_s: float = 0.0
    start: float = 0.0
    end: float = 0.0
    reason: str = "done"
    dropped_metrics: tuple[str, ...] = field(default_factory=tuple)

    @property
    def rate(self) -> float:
        """Records per second over the run."""
        return self.records / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def line(self) -> str:
        """One line: records, batches, rate, duplicates, why it ended."""
        return (
            f"sent {self.records:,} records in {self.batches:,} batches over {self.elapsed_s:.1f} s "
            f"({self.rate:,.0f} records/s; {self.duplicates:,} duplicates, {self.retries} retries; "
            f"{self.reason})"
        )


class Progress(NamedTuple):
    """Backfill progress, reported after every batch."""

    done: int
    total: int
    elapsed_s: float


def record_fields(batch: Batch, metrics: Iterable[str]) -> list[dict[str, Any]]:
    """The batch's rows as record dicts holding only ``metrics`` (epoch-second timestamps)."""
    names = list(metrics)
    index = batch.server_index.tolist()
    columns = [
        batch.timestamps.tolist(),
        [batch.names[i] for i in index],
        [batch.profiles[i] for i in index],
        *(batch.metrics[m].tolist() for m in names),
    ]
    keys = ("timestamp", "server_name", "profile", *names)
    return [dict(zip(keys, row, strict=True)) for row in zip(*columns, strict=True)]


class ZmqSink:
    """Batches to the ingest endpoint, msgpack-encoded, through the agent's client."""

    def __init__(self, endpoint: str, metrics: tuple[str, ...], timeout_s: float) -> None:
        from nordiqd.agent import IngestClient

        self._client = IngestClient(endpoint, timeout_s=timeout_s, retries=0)
        self._metrics = metrics
        self._encoder = msgspec.msgpack.Encoder()

    def send(self, batch: Batch) -> Delivery:
        from ipc.client import RequestTimeout
        from nordiqd.agent import IngestRejected

        body = self._encoder.encode({"records": record_fields(batch, self._metrics)})
        try:
            ack = self._client.send_encoded(body)
        except RequestTimeout as exc:
            raise Transient(str(exc)) from None
        except IngestRejected as exc:
            raise BatchRefused(f"the daemon rejected a batch: {exc}", exc.problems) from None
        return Delivery(ack.accepted, int(getattr(ack, "duplicates", 0)))

    def close(self) -> None:
        self._client.close()


class RestSink:
    """Batches to ``POST {url}/feed/data`` as JSON, on one kept-alive connection."""

    def __init__(self, url: str, api_key: str, metrics: tuple[str, ...], timeout_s: float) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self._conn_class = (
            http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        )
        self._host = parts.hostname
        self._port = parts.port
        self._path = parts.path.rstrip("/") + "/feed/data"
        self._headers = {"Content-Type": "application/json", "X-API-Key": api_key}
        self._timeout = timeout_s
        self._metrics = metrics
        self._conn: http.client.HTTPConnection | None = None

    def send(self, batch: Batch) -> Delivery:
        body = msgspec.json.encode({"records": record_fields(batch, self._metrics)})
        status, reply = self._post(body)
        if status == 200:
            return Delivery(int(reply.get("accepted", len(batch))), int(reply.get("duplicates", 0)))
        error = str(reply.get("error") or f"HTTP {status}")
        if status in (502, 503, 504):
            raise Transient(f"HTTP {status}: {error}")
        if status in (401, 403):
            raise SimulationError(f"the API refused the key (HTTP {status}): {error}")
        raise BatchRefused(f"the daemon rejected a batch (HTTP {status}): {error}", reply.get("problems"))

    def _post(self, body: bytes) -> tuple[int, dict[str, Any]]:
        # A kept-alive connection the server has closed fails on first use: retry that
        # once, at once, on a fresh one; any other failure is the caller's to back off.
        for fresh in (self._conn is None, True):
            if self._conn is None:
                self._conn = self._conn_class(self._host, self._port, timeout=self._timeout)
            try:
                self._conn.request("POST", self._path, body, self._headers)
                resp = self._conn.getresponse()
                data = resp.read()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                self.close()
                if fresh:
                    raise Transient(f"POST {self._path} on {self._host}:{self._port}: {exc}") from None
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                raise Transient(f"POST {self._path} on {self._host}:{self._port}: {exc}") from None
        try:
            reply = msgspec.json.decode(data) if data else {}
        except msgspec.DecodeError:
            reply = {"error": data[:200].decode(errors="replace")}
        return resp.status, reply if isinstance(reply, dict) else {}

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class FileSink:
    """Batches to a file instead of the daemon: Parquet for ``*.parquet``, else JSON lines."""

    def __init__(self, path: str, metrics: tuple[str, ...]) -> None:
        self.path = Path(path)
        self._metrics = metrics
        self._parquet = self.path.suffix == ".parquet"
        self._writer: Any = None
        self._fh = None if self._parquet else open(self.path, "wb")  # noqa: SIM115 (closed in close())
        self._encoder = msgspec.json.Encoder()

    def send(self, batch: Batch) -> Delivery:
        if self._parquet:
            table = batch.to_arrow().select(["timestamp", "server_name", "profile", *self._metrics])
            if self._writer is None:
                self._writer = _parquet_writer(self.path, self._metrics)
            self._writer.write_table(table)
        else:
            assert self._fh is not None
            for record in record_fields(batch, self._metrics):
                self._fh.write(self._encoder.encode(record) + b"\n")
        return Delivery(len(batch))

    def close(self) -> None:
        if self._parquet and self._writer is None:
            self._writer = _parquet_writer(self.path, self._metrics)  # no records: an empty file
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def _parquet_writer(path: Path, metrics: tuple[str, ...]) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    fields = [
        pa.field("timestamp", pa.timestamp("ms", tz="UTC")),
        pa.field("server_name", pa.string()),
        pa.field("profile", pa.string()),
        *(pa.field(m, pa.float64()) for m in metrics),
    ]
    return pq.ParquetWriter(path, pa.schema(fields))


def open_sink(options: SimulationOptions, metrics: tuple[str, ...]) -> Sink:
    """The sink ``options.via`` names."""
    if options.via == "zmq":
        return ZmqSink(options.endpoint, metrics, options.timeout_s)
    if options.via == "rest":
        return RestSink(options.url, options.api_key, metrics, options.timeout_s)
    if options.via == "file":
        return FileSink(options.out, metrics)
    raise ValueError(f"unknown destination {options.via!r}: use zmq, rest or file")


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
    fleet = Fleet(options.servers, options.seed, options.interval_s, options.scenarios, start=start)
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
        fleet: Fleet,
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
            delivery = self._deliver(batch)
            s = self.summary
            s.records += len(batch)
            s.batches += 1
            s.accepted += delivery.accepted
            s.duplicates += delivery.duplicates
            s.end = float(batch.timestamps[-1]) + self.fleet.interval_s
            if phase == "backfill":
                s.backfill_records += len(batch)
            else:
                s.live_records += len(batch)
            if after is not None:
                after()
        return True

    def _deliver(self, batch: Batch) -> Delivery:
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
