"""Ingest and buffer benchmark: throughput, memory, read-back and bytes on disk.

Starts a real ``nordiqd run`` (default configuration, fsync every 1000 ms) in its own
process group on a temporary directory and prints one line per figure, each with its
target, PASS/FAIL and a reference measured side by side:

- zmq ingest records/s (1,000 servers x 14 metrics, batches of 1,000, msgpack);
- REST ingest records/s (the same as JSON with ISO-8601 timestamps, keep-alive);
- peak RSS (VmHWM) of the ingest role over both, with the peak backlog (acknowledged
  records not yet in Parquet, bounded by ``[buffer] max_backlog_records``) and the
  push-back it caused (batches held, REST 503s sent again after Retry-After);
- read-back of 30 days x 1,000 servers at 5-minute steps with ``read_window``;
- bytes on disk per 100,000 records, and flush cost as a day grows, against the
  seed's daily Parquet rewritten whole (pandas defaults) every 10,000 records.

Bodies are encoded before the timed loop from a pool of distinct simulated fleet steps;
when a sender has used the whole pool it starts over with every timestamp moved past the
previous cycle (one ``bytes.replace`` per body: each body is one fleet step, so it holds
one timestamp), so no record is ever a duplicate. Each run uses a fresh daemon.

How it stops: every daemon is stopped (SIGTERM to its group, then SIGKILL) and every
temporary directory removed on exit, also on Ctrl-C or an error.

Usage: ``python bench/ingest.py [--quick] [--runs N] [--json OUT]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import math
import os
import re
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import requests
import zmq

from ipc import codec
from ipc import messages as m
from ipc.client import RequestClient, RequestTimeout
from nordiqd import config as nconfig
from nordiqd.agent import IngestClient
from nordiqd.buffer.batch import encode_batch
from nordiqd.buffer.reader import buffer_stats, read_window
from nordiqd.buffer.records import DEFAULT_METRICS, RecordValidator
from nordiqd.buffer.store import BufferStore
from nordiqd.simulate import SimulatedFleet

_REPO = Path(__file__).resolve().parents[1]
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))  # for tests.harness

SERVERS = 1_000
BATCH = 1_000
STEP_S = 5.0
DAY_S = 86_400
TARGETS = {"zmq": 100_000, "rest": 25_000, "rss_mb": 300, "read_s": 3.0, "mb_per_100k": 3.0}


# -- the daemon -------------------------------------------------------------------------


class BenchDaemon:
    """A ``nordiqd run`` on a temporary directory, in its own process group."""

    def __init__(self, root: Path, buffer: Sequence[str] = ()) -> None:
        self.root = root
        root.mkdir(parents=True)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.config = root / "nordiqd.toml"
        self.config.write_text(
            f'[daemon]\ndata_dir = "{root / "data"}"\nrun_dir = "{root / "run"}"\n'
            f'[api]\nport = {self.port}\nkey_file = "{root / "api_key"}"\n'
            + ("[buffer]\n" + "\n".join(buffer) + "\n" if buffer else "")
        )
        self.cfg = nconfig.load(str(self.config))
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self._ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self._metrics: RequestClient[m.ServiceReply] | None = None

    def start(self, timeout: float = 120.0) -> None:
        nordiqd = [sys.executable, "-m", "nordiqd"]
        subprocess.run([*nordiqd, "keygen", "-c", str(self.config)], check=True, capture_output=True)
        self.key = (self.root / "api_key").read_text().strip()
        self._log = open(self.root / "daemon.log", "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [*nordiqd, "run", "-c", str(self.config)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited {self.proc.returncode}: {self.log_tail()}")
            try:
                st = self.status()
                if st.state == "running" and all(r.state == "ready" for r in st.roles):
                    return
            except Exception:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"daemon not ready after {timeout} s: {self.log_tail()}")

    def status(self) -> m.StatusReply:
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        client = RequestClient(ctx, self.cfg.endpoint("control"), codec.control, timeout_s=2.0)
        try:
            return client.request(m.StatusRequest())  # type: ignore[no-any-return]
        finally:
            client.close()
            ctx.term()

    def ingest_counters(self) -> dict[str, float]:
        """The ingest role's counters (records accepted so far), a check on our own count."""
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        client = RequestClient(ctx, self.cfg.endpoint("ingest"), codec.service_replies, timeout_s=30.0)
        try:
            reply = client.request(m.BufferStatsRequest())
            return dict(reply.counters) | {"total_records": reply.data_buffer.get("total_records", 0)}
        finally:
            client.close()
            ctx.term()

    def backlog(self) -> float:
        """Acknowledged records not yet in Parquet (the ingest role's /metrics gauge)."""
        if self._metrics is None:
            self._metrics = RequestClient(
                self._ctx, self.cfg.endpoint("ingest"), codec.service_replies, timeout_s=5.0
            )
        try:
            reply = self._metrics.request(m.MetricsRequest())
        except RequestTimeout:
            self._metrics.close()
            self._metrics = None
            return 0.0
        for line in reply.body.decode().splitlines():
            if line.startswith("nordiqd_buffer_pending_records "):
                return float(line.split()[1])
        return 0.0

    def pid(self, role: str) -> int:
        return next(int(r.pid) for r in self.status().roles if r.name == role and r.pid)

    def log_tail(self) -> str:
        return (self.root / "daemon.log").read_text(errors="replace")[-2000:]

    def stop(self) -> None:
        if self.proc is None:
            return
        for sig, wait in ((signal.SIGTERM, 30.0), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(self.proc.pid, sig)
                self.proc.wait(wait)
                break
            except ProcessLookupError:
                break
            except subprocess.TimeoutExpired:
                continue
        try:  # children that outlived the supervisor
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._log.close()
        self.proc = None
        if self._metrics is not None:
            self._metrics.close()
        self._ctx.term()


def proc_mb(pid: int, field: str) -> float:
    """VmRSS / VmHWM of ``pid`` in MB."""
    with open(f"/proc/{pid}/status") as fh:
        line = next(x for x in fh if x.startswith(field + ":"))
    return int(line.split()[1]) / 1024


# -- bodies -----------------------------------------------------------------------------


class BodyPool:
    """Encoded batches of distinct fleet steps; ``body(i)`` never repeats a record."""

    def __init__(self, fleet: SimulatedFleet, t0: float, steps: int, fmt: str) -> None:
        self.fmt, self.t0, self.steps = fmt, t0, steps
        self.bodies: list[bytes] = []
        self.stamps: list[float] = []
        encode = msgspec.msgpack.encode if fmt == "msgpack" else msgspec.json.encode
        for batch in fleet.batches(t0, t0 + steps * STEP_S, max_records=BATCH):
            assert len(set(batch.timestamps.tolist())) == 1, "one fleet step per batch"
            self.stamps.append(float(batch.timestamps[0]))
            self.bodies.append(encode({"records": batch.to_records(iso_timestamps=fmt == "json")}))

    def token(self, ts: float) -> bytes:
        if self.fmt == "msgpack":
            return b"\xcb" + struct.pack(">d", ts)
        return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat().encode()

    def body(self, i: int) -> bytes:
        k, j = divmod(i, len(self.bodies))
        if k == 0:
            return self.bodies[j]
        ts = self.stamps[j]
        return self.bodies[j].replace(self.token(ts), self.token(ts + k * self.steps * STEP_S))

    @property
    def span_s(self) -> float:
        return self.steps * STEP_S


def drive(
    senders: Sequence[Callable[[bytes], int]],
    pool: BodyPool,
    warmup_s: float,
    seconds: float,
    pid: int,
    backlog: Callable[[], float] = lambda: 0.0,
) -> dict[str, Any]:
    """Sends pool bodies from one thread per sender; counts acks inside the timed window."""
    from tests.harness import cpu_seconds

    counter = itertools.count()
    stop = threading.Event()
    t0 = time.perf_counter()
    start, end = t0 + warmup_s, t0 + warmup_s + seconds
    acks: list[list[tuple[float, int]]] = [[] for _ in senders]
    errors: list[BaseException] = []
    rss: list[float] = []
    backlogs: list[float] = []

    def sender(send: Callable[[bytes], int], out: list[tuple[float, int]]) -> None:
        try:
            while not stop.is_set():
                n = send(pool.body(next(counter)))
                out.append((time.perf_counter(), n))
        except BaseException as exc:  # reported by the caller
            errors.append(exc)
            stop.set()

    threads = [
        threading.Thread(target=sender, args=(s, a), daemon=True) for s, a in zip(senders, acks, strict=True)
    ]
    for t in threads:
        t.start()
    cpu: list[float] = []
    while (now := time.perf_counter()) < end and not stop.is_set():
        rss.append(proc_mb(pid, "VmRSS"))
        backlogs.append(backlog())
        if not cpu and now >= start:
            cpu = [cpu_seconds(pid), os.times().user + os.times().system, now]
        time.sleep(min(0.5, max(0.0, end - now)))
    if cpu:
        now = time.perf_counter()
        cpu = [
            (cpu_seconds(pid) - cpu[0]) / (now - cpu[2]),
            (os.times().user + os.times().system - cpu[1]) / (now - cpu[2]),
        ]
    stop.set()
    for t in threads:
        t.join(60)
    if errors:
        raise errors[0]
    per_s = np.zeros(math.ceil(seconds))
    for at, n in itertools.chain.from_iterable(acks):
        if start <= at < end:
            per_s[min(int(at - start), len(per_s) - 1)] += n
    return {
        "records_per_s": float(per_s.sum() / seconds),
        "worst_second": float(per_s.min()),
        "per_second": per_s.tolist(),
        "acked_total": sum(n for _, n in itertools.chain.from_iterable(acks)),
        "sent_batches": next(counter),
        "rss_max_mb": max(rss, default=0.0),
        "backlog_max_records": max(backlogs, default=0.0),
        "ingest_cpu": cpu[0] if cpu else None,
        "client_cpu": cpu[1] if cpu else None,
    }


class ZmqSender:
    """One agent: an ``IngestClient`` that sends encoded msgpack bodies (busy: again)."""

    def __init__(self, endpoint: str) -> None:
        self.client = IngestClient(endpoint, timeout_s=30.0, retries=0)

    def __call__(self, body: bytes) -> int:
        return self.client.send_encoded(body).accepted

    @property
    def busy(self) -> int:
        return self.client.busy_replies

    def close(self) -> None:
        self.client.close()


class RestSender:
    """One keep-alive HTTP session posting encoded JSON bodies to ``/feed/data``."""

    def __init__(self, url: str, key: str) -> None:
        self.url = url + "/feed/data"
        self.session = requests.Session()
        self.session.headers.update({"X-API-Key": key, "Content-Type": "application/json"})

        self.busy = 0  # 503s with Retry-After (ingest's push-back), each batch sent again

    def __call__(self, body: bytes) -> int:
        while True:
            r = self.session.post(self.url, data=body, timeout=60)
            if r.status_code == 503 and "Retry-After" in r.headers:
                self.busy += 1
                time.sleep(float(r.headers["Retry-After"]))
                continue
            if r.status_code != 200:
                raise RuntimeError(f"POST /feed/data {r.status_code}: {r.text[:300]}")
            return int(r.json()["accepted"])

    def close(self) -> None:
        self.session.close()


# -- references -------------------------------------------------------------------------

_NAME = re.compile(r"^[A-Za-z0-9._-]{1,253}$")


def naive_validate(body: bytes, fmt: str, schema: pa.Schema) -> pa.RecordBatch:
    """The straightforward way: decode to dicts, check each record in Python, from_pylist."""
    doc = msgspec.msgpack.decode(body) if fmt == "msgpack" else json.loads(body)
    allowed = {"timestamp", "server_name", "profile", *DEFAULT_METRICS}
    rows = []
    for rec in doc["records"]:
        if set(rec) - allowed or not _NAME.match(rec["server_name"]):
            raise ValueError("bad record")
        ts = rec["timestamp"]
        when = dt.datetime.fromisoformat(ts) if isinstance(ts, str) else dt.datetime.fromtimestamp(ts, dt.UTC)
        row: dict[str, Any] = {
            "timestamp": when,
            "server_name": rec["server_name"],
            "profile": rec.get("profile", "generic"),
        }
        for name in DEFAULT_METRICS:
            v = rec.get(name)
            if v is not None and (not isinstance(v, (int, float)) or not math.isfinite(v)):
                raise ValueError("bad metric")
            row[name] = v
        rows.append(row)
    return pa.RecordBatch.from_pylist(rows, schema=schema)


def measure(
    daemon: Any, senders: Sequence[Any], pool: BodyPool, args: argparse.Namespace, pid: int
) -> dict[str, Any]:
    """``drive`` the senders, close them, and add the daemon's own ingest counters."""
    try:
        out = drive(senders, pool, args.warmup, args.seconds, pid, daemon.backlog) | {"load": load()}
    finally:
        for sender in senders:
            sender.close()
    busy = sum(getattr(s, "busy", 0) for s in senders)
    return out | {"daemon_counters": daemon.ingest_counters(), "busy_replies": busy}


def validation_rates(pool: BodyPool, n: int) -> tuple[float, float]:
    """In-process records/s of (RecordValidator + encode, naive per-record dicts + encode)."""
    clock = pool.t0 + pool.span_s
    v = RecordValidator(clock=lambda: clock)
    ours = v.from_msgpack if pool.fmt == "msgpack" else v.from_json
    schema = ours(pool.bodies[0]).schema
    rates = []
    for fn in (ours, lambda b: naive_validate(b, pool.fmt, schema)):
        t = time.perf_counter()
        for b in pool.bodies[:n]:
            encode_batch(fn(b))
        rates.append(n * BATCH / (time.perf_counter() - t))
    return rates[0], rates[1]


def seed_flush_costs(fleet: SimulatedFleet, t0: float, records: int, path: Path) -> tuple[list[float], int]:
    """The seed's buffer: every 10,000 records, read the day's file, append, rewrite it (CPU s)."""
    import pandas as pd

    costs, pending = [], []
    for batch in fleet.batches(t0, t0 + records // SERVERS * STEP_S, max_records=BATCH):
        pending.append(batch.to_arrow())
        if sum(p.num_rows for p in pending) >= 10_000:
            t = time.process_time()
            new = pa.concat_tables(pending).to_pandas()
            df = pd.concat([pd.read_parquet(path), new], ignore_index=True) if path.exists() else new
            df.to_parquet(path)
            costs.append(time.process_time() - t)
            pending = []
    return costs, path.stat().st_size


def our_flush_costs(
    fleet: SimulatedFleet, t0: float, records: int, root: Path
) -> tuple[list[float], int, int]:
    """Our store with its defaults, maintained every fleet step; CPU seconds per 10,000 records."""
    now = [t0]
    store = BufferStore(root, clock=lambda: now[0])
    store.open()
    costs, chunk, rows = [], 0.0, 0
    try:
        for batch in fleet.batches(t0, t0 + records // SERVERS * STEP_S, max_records=BATCH):
            now[0] = float(batch.timestamps[0]) + STEP_S
            rb = batch.to_arrow().to_batches()[0]
            t = time.process_time()
            store.append(rb)
            store.maintain()
            chunk += time.process_time() - t
            rows += len(batch)
            if rows % 10_000 == 0:
                costs.append(chunk)
                chunk = 0.0
        store.flush()
        now[0] = (math.floor(now[0] / DAY_S) + 1) * DAY_S + 3_600
        store.maintain()  # closes the day into metrics_YYYY-MM-DD.parquet
    finally:
        store.close()
    stats = buffer_stats(root)
    return costs, int(stats["disk_usage_mb"] * 1e6), int(stats["total_records"])


# -- figures ----------------------------------------------------------------------------


def best_median(values: Sequence[float], higher_is_better: bool = True) -> tuple[float, float]:
    return (max(values) if higher_is_better else min(values)), statistics.median(values)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def load() -> str:
    return "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def ingest_runs(
    args: argparse.Namespace, tmp: Path, fleet: SimulatedFleet, report: dict[str, Any]
) -> list[str]:
    now = math.floor(time.time() / STEP_S) * STEP_S
    steps = 40 if args.quick else 300
    t_zmq, t_rest = now - 3 * DAY_S, now - 6 * DAY_S  # far apart: no run's records overlap
    print(f"encoding {steps} msgpack and {steps} JSON bodies of {BATCH} records ...", flush=True)
    zpool = BodyPool(fleet, t_zmq, steps, "msgpack")
    rpool = BodyPool(fleet, t_rest, steps, "json")
    ours_z, naive_z = validation_rates(zpool, min(steps, 50))
    ours_r, naive_r = validation_rates(rpool, min(steps, 50))
    runs: dict[str, list[dict[str, Any]]] = {"zmq": [], "rest": [], "rss": []}
    for run in range(args.runs):
        daemon = BenchDaemon(tmp / f"daemon{run}", args.buffer)
        try:
            daemon.start()
            pid = daemon.pid("ingest")
            idle = proc_mb(pid, "VmRSS")
            zmq_out = [ZmqSender(daemon.cfg.endpoint("ingest")) for _ in range(args.zmq_senders)]
            z = measure(daemon, zmq_out, zpool, args, pid)
            rest_out = [RestSender(daemon.url, daemon.key) for _ in range(args.rest_senders)]
            r = measure(daemon, rest_out, rpool, args, pid)
            runs["zmq"].append(z)
            runs["rest"].append(r)
            backlog = max(z["backlog_max_records"], r["backlog_max_records"])
            runs["rss"].append(
                {"hwm_mb": proc_mb(pid, "VmHWM"), "idle_mb": idle, "backlog_max": backlog, "load": load()}
            )
            print(
                f"  run {run + 1}: zmq {z['records_per_s']:,.0f}/s, REST {r['records_per_s']:,.0f}/s, "
                f"ingest VmHWM {runs['rss'][-1]['hwm_mb']:.0f} MB, peak backlog {backlog:,.0f} records, "
                f"busy replies zmq {z['busy_replies']} REST {r['busy_replies']} ({z['load']})",
                flush=True,
            )
        finally:
            daemon.stop()
            shutil.rmtree(daemon.root, ignore_errors=True)
    report["ingest_runs"] = runs
    lines = []
    for kind, ours, naive, n in (
        ("zmq", ours_z, naive_z, args.zmq_senders),
        ("rest", ours_r, naive_r, args.rest_senders),
    ):
        best, med = best_median([x["records_per_s"] for x in runs[kind]])
        worst = min(x["worst_second"] for x in runs[kind])
        icpu = statistics.median(x["ingest_cpu"] or 0.0 for x in runs[kind])
        ccpu = statistics.median(x["client_cpu"] or 0.0 for x in runs[kind])
        target = TARGETS[kind]
        report[kind] = {
            "best": best,
            "median": med,
            "target": target,
            "pass": med >= target,
            "ingest_cpu_share": icpu,
            "records_per_ingest_cpu_s": med / icpu if icpu else None,
            "validate_in_process": ours,
            "naive_in_process": naive,
        }
        label = "zmq ingest (msgpack)" if kind == "zmq" else "REST ingest (JSON, ISO)"
        who = "sender threads" if kind == "zmq" else "keep-alive sessions"
        lines.append(
            f"{label:<26} {best:>9,.0f} records/s best, {med:,.0f} median, worst second {worst:,.0f} "
            f"({args.runs} run(s) x {args.seconds:g} s, {n} {who}; "
            f"CPU: ingest role {icpu:.0%} = {med / max(icpu, 1e-9):,.0f} records per its CPU-s, "
            f"client {ccpu:.0%})"
            f" | target >= {target:,} {verdict(med >= target)}"
            f" | ref: in-process validate+encode ours {ours:,.0f}/s vs naive per-record dicts "
            f"{naive:,.0f}/s (x{ours / naive:.1f}); daemon/naive x{best / naive:.1f}"
        )
    best, med = best_median([x["hwm_mb"] for x in runs["rss"]], higher_is_better=False)
    worst = max(x["hwm_mb"] for x in runs["rss"])
    idle = statistics.median(x["idle_mb"] for x in runs["rss"])
    backlog = max(x["backlog_max"] for x in runs["rss"])
    report["rss"] = {
        "best_mb": best,
        "median_mb": med,
        "worst_mb": worst,
        "each_mb": [x["hwm_mb"] for x in runs["rss"]],
        "idle_mb": idle,
        "backlog_max_records": backlog,
        "target_mb": TARGETS["rss_mb"],
        "pass": worst < TARGETS["rss_mb"],
    }
    each = ", ".join(f"{x['hwm_mb']:.0f}" for x in runs["rss"])
    lines.append(
        f"{'ingest role peak RSS':<26} {worst:>9,.0f} MB worst, {med:,.0f} MB median (VmHWM over zmq + REST;"
        f" each run {each} MB; peak backlog {backlog:,.0f} records)"
        f" | target < {TARGETS['rss_mb']} MB in every run {verdict(worst < TARGETS['rss_mb'])}"
        f" | ref: same process idle after start {idle:,.0f} MB (x{med / idle:.1f})"
    )
    return lines


def write_history(root: Path, fleet: SimulatedFleet, t_end: float, days: int) -> None:
    """Writes ``days`` whole UTC days ending at ``t_end`` through a BufferStore, days closed."""
    now = [t_end - days * DAY_S]
    store = BufferStore(root, clock=lambda: now[0])
    store.open()
    try:
        for d in range(days):
            day0 = t_end - (days - d) * DAY_S
            now[0] = day0 + DAY_S - 1
            for batch in fleet.batches(day0, day0 + DAY_S, max_records=100_000):
                store.append(batch.to_arrow().to_batches()[0])
            now[0] = day0 + DAY_S + 3_600
            store.maintain()  # flushes the day and closes it
    finally:
        store.close()


def seed_files(buffer: Path, out: Path) -> int:
    """Rewrites each closed day the seed's way (pandas defaults: float64, snappy)."""
    out.mkdir()
    for path in sorted(buffer.glob("metrics_*.parquet")):
        df = pq.read_table(path).to_pandas()
        for name in DEFAULT_METRICS:
            df[name] = df[name].astype("float64")
        df.to_parquet(out / path.name)
    return sum(p.stat().st_size for p in out.iterdir())


def rounded_bytes(buffer: Path, out: Path) -> int:
    """The same closed days with metrics rounded to 0.01, as agents usually report them."""
    import pyarrow.compute as pc

    from nordiqd.buffer.layout import parquet_options

    out.mkdir()
    for path in sorted(buffer.glob("metrics_*.parquet")):
        table = pq.read_table(path)
        for name in DEFAULT_METRICS:
            i = table.schema.get_field_index(name)
            table = table.set_column(i, name, pc.round(table.column(name), 2))
        pq.write_table(table, out / path.name, row_group_size=131_072, **parquet_options(table))
    return sum(p.stat().st_size for p in out.iterdir())


def history_figures(args: argparse.Namespace, tmp: Path, report: dict[str, Any]) -> list[str]:
    import pandas as pd

    days = 2 if args.quick else 30
    fleet = SimulatedFleet(SERVERS, seed=args.seed, interval_s=300.0)
    t_end = math.floor(time.time() / DAY_S) * DAY_S
    root = tmp / "history" / "buffer"
    print(f"writing {days} days x {SERVERS} servers at 5-minute steps through BufferStore ...", flush=True)
    t = time.perf_counter()
    write_history(root, fleet, t_end, days)
    write_s = time.perf_counter() - t
    stats = buffer_stats(root)
    records = int(stats["total_records"])
    our_bytes = sum(p.stat().st_size for p in root.rglob("*.parquet"))
    seed_bytes = seed_files(root, tmp / "seed_style")
    rounded_mb = rounded_bytes(root, tmp / "rounded") / records * 1e5 / 1e6
    shutil.rmtree(tmp / "rounded")
    times, cpus, seed_times = [], [], []
    for _ in range(args.runs):
        t, c = time.perf_counter(), os.times()
        table = read_window(root, days=days, clock=lambda: t_end)
        times.append(time.perf_counter() - t)
        cpus.append(os.times().user + os.times().system - c.user - c.system)
        assert table.num_rows == records, (table.num_rows, records)
        del table
        t = time.perf_counter()
        frame = pd.concat(
            [pd.read_parquet(p) for p in sorted((tmp / "seed_style").iterdir())], ignore_index=True
        )
        seed_times.append(time.perf_counter() - t)
        del frame
    best, med = best_median(times, higher_is_better=False)
    seed_best = min(seed_times)
    report["read_back"] = {
        "records": records,
        "days": days,
        "best_s": best,
        "median_s": med,
        "target_s": TARGETS["read_s"],
        "pass": med < TARGETS["read_s"],
        "cpu_s": cpus,
        "seed_pandas_best_s": seed_best,
        "write_s": write_s,
        "load": load(),
    }
    lines = [
        f"{'30-day read-back' if days == 30 else f'{days}-day read-back':<26} {best:>9.2f} s best, "
        f"{med:.2f} s median, read_window(days={days}) all columns, {records:,} records, "
        f"{statistics.median(cpus):.1f} CPU-s"
        f" | target < {TARGETS['read_s']:g} s {verdict(med < TARGETS['read_s'])}"
        f" | ref: pandas read_parquet+concat of seed-style files {seed_best:.2f} s (x{seed_best / best:.1f})"
    ]
    mb = our_bytes / records * 1e5 / 1e6
    seed_mb = seed_bytes / records * 1e5 / 1e6
    report["bytes"] = {
        "mb_per_100k": mb,
        "rounded_0_01_mb_per_100k": rounded_mb,
        "seed_style_mb_per_100k": seed_mb,
        "seed_claim_mb_per_100k": 10.0,
        "target_mb": TARGETS["mb_per_100k"],
        "pass": mb <= TARGETS["mb_per_100k"],
    }
    lines.append(
        f"{'bytes on disk (5-min)':<26} {mb:>9.2f} MB per 100k records ({our_bytes / records:.1f} B/record, "
        f"{our_bytes / records / 14:.2f} B/sample) | target <= {TARGETS['mb_per_100k']:g} MB "
        f"{verdict(mb <= TARGETS['mb_per_100k'])} | ref: seed-style files {seed_mb:.2f} MB "
        f"(x{seed_mb / mb:.1f}), seed's claim ~10 MB (x{10 / mb:.1f}); "
        f"same records rounded to 0.01 {rounded_mb:.2f} MB"
    )
    return lines


def flush_figures(args: argparse.Namespace, tmp: Path, report: dict[str, Any]) -> list[str]:
    records = 100_000 if args.quick else 500_000
    fleet = SimulatedFleet(SERVERS, seed=args.seed + 1, interval_s=STEP_S)
    t0 = math.floor(time.time() / DAY_S) * DAY_S - 2 * DAY_S
    print(f"flush cost as a day grows: {records:,} records at 5 s steps, ours vs the seed's ...", flush=True)
    ours, our_bytes, our_records = our_flush_costs(fleet, t0, records, tmp / "flush" / "buffer")
    seed, seed_bytes = seed_flush_costs(fleet, t0, records, tmp / "seed_day.parquet")
    fifth = max(1, len(ours) // 5)
    our_growth = sum(ours[-fifth:]) / sum(ours[:fifth])
    sfifth = max(1, len(seed) // 5)
    seed_first, seed_last = sum(seed[:sfifth]) / sfifth, sum(seed[-sfifth:]) / sfifth
    seed_growth = seed_last / seed_first
    mb = our_bytes / our_records * 1e5 / 1e6
    seed_mb = seed_bytes / records * 1e5 / 1e6
    report["flush"] = {
        "records": records,
        "ours_s_per_10k_first": sum(ours[:fifth]) / fifth,
        "ours_s_per_10k_last": sum(ours[-fifth:]) / fifth,
        "seed_first_s": seed_first,
        "seed_last_s": seed_last,
        "seed_total_s": sum(seed),
        "ours_total_s": sum(ours),
        "mb_per_100k_5s": mb,
        "seed_mb_per_100k_5s": seed_mb,
        "load": load(),
    }
    return [
        f"{'write cost as day grows':<26} ours {sum(ours[:fifth]) / fifth * 1e3:,.0f} -> "
        f"{sum(ours[-fifth:]) / fifth * 1e3:,.0f} CPU-ms per 10k records (first -> last fifth of "
        f"{records:,}, x{our_growth:.2f}), {sum(ours):.1f} CPU-s in all | target: flat "
        f"{verdict(our_growth < 2)} | ref: seed rewrite-per-flush {seed_first * 1e3:,.0f} -> "
        f"{seed_last * 1e3:,.0f} CPU-ms per 10k flush (x{seed_growth:.1f}), {sum(seed):.1f} CPU-s in all "
        f"(x{sum(seed) / sum(ours):.1f})",
        f"{'bytes on disk (5-s)':<26} {mb:>9.2f} MB per 100k records (closed day, {our_records:,} records)"
        f" | target <= {TARGETS['mb_per_100k']:g} MB {verdict(mb <= TARGETS['mb_per_100k'])}"
        f" | ref: seed-style day file {seed_mb:.2f} MB (x{seed_mb / mb:.1f})",
    ]


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes: a smoke run under a minute")
    p.add_argument("--runs", type=int, default=None, help="runs per figure (default 2, quick 1)")
    p.add_argument("--seconds", type=float, default=None, help="timed window per ingest run (default 25)")
    p.add_argument("--warmup", type=float, default=None, help="seconds sent before the window (default 2)")
    p.add_argument("--zmq-senders", type=int, default=2, help="zmq sender threads (default 2)")
    p.add_argument("--rest-senders", type=int, default=4, help="REST keep-alive sessions (default 4)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument(
        "--buffer",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="diagnostics only: a [buffer] setting for the daemon, as TOML (default: none)",
    )
    p.add_argument("--only", choices=["ingest", "history", "flush"], action="append")
    p.add_argument("--json", type=Path, help="write every figure as JSON to this file")
    args = p.parse_args(argv)
    args.runs = args.runs or (1 if args.quick else 2)
    args.seconds = args.seconds or (4.0 if args.quick else 25.0)
    args.warmup = args.warmup if args.warmup is not None else (1.0 if args.quick else 2.0)
    report: dict[str, Any] = {
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
        "cpus": os.cpu_count(),
        "load_start": load(),
    }
    print(f"nordiqd ingest benchmark, {report['started']}, {os.cpu_count()} CPUs, {report['load_start']}")
    lines: list[str] = []
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the finally blocks clean up
    tmp = Path(tempfile.mkdtemp(prefix="nordiqd-bench-ingest-"))
    try:
        only = set(args.only or ["ingest", "history", "flush"])
        if "ingest" in only:
            lines += ingest_runs(
                args, tmp, SimulatedFleet(SERVERS, seed=args.seed, interval_s=STEP_S), report
            )
        if "history" in only:
            lines += history_figures(args, tmp, report)
        if "flush" in only:
            lines += flush_figures(args, tmp, report)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report["load_end"] = load()
    print()
    for line in lines:
        print(line)
    print(f"({report['load_end']})")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
