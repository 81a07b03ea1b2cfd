"""Chaos soak: a real daemon under zmq and REST ingest, readers and training, while faults fly.

For ``--minutes`` it runs ``nordiqd run`` (default supervision: the restart intensity a
user gets) on a tmpfs it mounts as the data directory (root only), and drives it with:

- zmq agents and REST senders, each owning its servers; a batch is one data-time step
  of every server of its sender, sent again until acknowledged (what an agent does);
- prediction clients reading ``/predictions/current``, ``/alerts/active``, ``/health``;
- a training job of the tiny test model triggered every ``--train-every`` seconds.

Every ``--interval`` seconds one fault, in turn: ``kill -9`` of ingest, predictor,
trainer, api (each role at most once a cycle, within 5 restarts a minute); a SIGSTOP of
one role (2 s: under the heartbeat liveness; 6 s: the supervisor must kill it), then
SIGCONT; the disk filled for ``--full-s`` seconds, then freed, and ingest killed -9 1.5 s
later (what was acked since is only in its write-ahead log). At the end the whole tree
is killed -9, started again, stopped cleanly, and the buffer read back.

Reported: acknowledged vs stored records (lost = acknowledged batches not whole in the
buffer), failed requests by channel and kind, inside or outside a fault window of a
role the request needs (a restart window ends 1 s after the role is Ready again, a
disk-full window 5 s after the space is back), each role's time to Ready after a kill,
restarts, and whether the tree was still up. The targets: 0 lost, tree up, no failure
outside a window, every failure in a window a 503/507, a reset or a timeout.

How it stops: the daemon group is killed, the tmpfs unmounted and every temporary folder
removed on exit, also on Ctrl-C or an error.

Usage: ``python bench/chaos.py --minutes 10 [--json OUT]`` (as root)
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import requests
import zmq

from ipc import codec
from ipc import messages as m
from ipc.client import RequestClient, RequestTimeout
from nordiqd.agent import IngestClient, IngestRejected
from nordiqd.buffer.reader import read_window

_REPO = Path(__file__).resolve().parents[1]
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))  # for tests.harness and tests.fleetdata

from tests.fleetdata import TINY_MODEL  # noqa: E402
from tests.harness import free_port, write_config  # noqa: E402

ROLES = ("ingest", "predictor", "trainer", "api")
NEEDS = {  # the roles each channel's requests go through
    "zmq": {"ingest", "disk"},
    "rest": {"api", "ingest", "disk"},
    "read": {"api", "predictor"},
    "health": {*ROLES, "disk"},  # /health answers 503 while any role is not ready
    "train": {"api", "trainer", "disk"},
}
STEP_S = 10  # data time between a sender's batches
EXPECTED_KINDS = {"503", "507", "reset", "timeout", "busy"}


class Tally:
    """Failures and acknowledgements, from every client thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.failures: list[tuple[float, float, str, str, str]] = []  # (sent, failed, channel, kind, detail)
        self.acked: dict[str, set[int]] = collections.defaultdict(set)
        self.ok: collections.Counter[str] = collections.Counter()

    def fail(self, sent: float, channel: str, kind: str, detail: str = "") -> None:
        """Counts a failed request, with when it was sent and when it failed."""
        with self.lock:
            self.failures.append((sent, time.monotonic(), channel, kind, detail[:200]))

    def ack(self, sender: str, n: int) -> None:
        with self.lock:
            self.acked[sender].add(n)
            self.ok[sender[0]] += 1


class Soak:
    """The daemon, its clients and the fault schedule."""

    def __init__(self, args: argparse.Namespace, root: Path) -> None:
        self.args, self.root = args, root
        self.data = root / "data"
        self.data.mkdir(parents=True)
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={args.tmpfs_mb}m", "tmpfs", str(self.data)], check=True
        )
        self.port = free_port()
        self.config = root / "nordiqd.toml"
        write_config(
            self.config,
            {
                "daemon": {"data_dir": str(self.data), "run_dir": str(root / "run")},
                "api": {"port": self.port, "key_file": str(root / "api_key")},
                "training": {"min_records": 3000, "training_days": 2},
                "model": dict(TINY_MODEL),
            },
        )
        self.url = f"http://127.0.0.1:{self.port}"
        self.ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self.proc: subprocess.Popen[bytes] | None = None
        self.tally = Tally()
        self.stop_clients = threading.Event()
        self.windows: list[tuple[float, float, str, str]] = []  # (start, end, target, what)
        self.ready_s: dict[str, list[float]] = collections.defaultdict(list)
        self.events: list[str] = []
        self.t0_data = (int(time.time()) // 86_400 - 1) * 86_400  # data time starts a day back
        self.started = time.monotonic()

    # -- the daemon ------------------------------------------------------------------

    def start(self) -> float:
        nordiqd = [sys.executable, "-m", "nordiqd"]
        if not (self.root / "api_key").exists():
            subprocess.run([*nordiqd, "keygen", "-c", str(self.config)], check=True, capture_output=True)
        self.key = (self.root / "api_key").read_text().strip()
        log = open(self.root / "daemon.log", "ab")  # noqa: SIM115 - the child holds it
        self.proc = subprocess.Popen(
            [*nordiqd, "run", "-c", str(self.config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        t = time.monotonic()
        if not self.wait_ready(set(ROLES), 180):
            raise RuntimeError(f"daemon not ready: {self.log_tail()}")
        return time.monotonic() - t

    def status(self) -> m.StatusReply | None:
        client = RequestClient(
            self.ctx, f"ipc://{self.root / 'run'}/control.sock", codec.control, timeout_s=2.0
        )
        try:
            return client.request(m.StatusRequest())  # type: ignore[no-any-return]
        except RequestTimeout:
            return None
        finally:
            client.close()

    def roles(self) -> dict[str, m.RoleStatus]:
        st = self.status()
        return {r.name: r for r in st.roles} if st else {}

    def wait_ready(self, names: set[str], timeout: float, not_pid: int | None = None) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                return False
            roles = self.roles()
            if roles and all(
                roles[n].state == "ready" and (not_pid is None or roles[n].pid != not_pid) for n in names
            ):
                return True
            time.sleep(0.1)
        return False

    def log_tail(self) -> str:
        return (self.root / "daemon.log").read_text(errors="replace")[-3000:]

    def kill_tree(self) -> None:
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()

    # -- clients ---------------------------------------------------------------------

    def batch(self, sender: str, n: int) -> list[dict[str, Any]]:
        ts = self.t0_data + n * STEP_S
        return [
            {"timestamp": ts, "server_name": f"chaos-{sender}-{i:03d}", "cpu_user_pct": float((n + i) % 90),
             "mem_used_pct": 40.0 + (i % 20), "load_average": 1.0 + (n % 7)}
            for i in range(self.args.servers)
        ]  # fmt: skip

    def zmq_feeder(self, sender: str) -> None:
        client = IngestClient(
            f"ipc://{self.root / 'run'}/ingest.sock", timeout_s=5.0, retries=0, busy_wait_s=60
        )
        n, gap = 0, 1.0 / self.args.batches_per_s
        try:
            while not self.stop_clients.is_set():
                t = time.monotonic()
                try:
                    client.send(self.batch(sender, n))
                    self.tally.ack(sender, n)
                    n += 1
                except RequestTimeout:
                    self.tally.fail(t, "zmq", "timeout")
                except IngestRejected as exc:
                    # zmq's answers to what REST answers 503 (busy) and 507 (disk full).
                    full = "disk" in exc.kind or "storage" in exc.kind or "space" in exc.kind
                    kind = "503" if exc.kind == "busy" else "507" if full else f"error {exc.kind}"
                    self.tally.fail(t, "zmq", kind, str(exc))
                    time.sleep(0.2)
                time.sleep(max(0.0, gap - (time.monotonic() - t)))
        finally:
            client.close()

    def rest_feeder(self, sender: str) -> None:
        n, gap = 0, 1.0 / self.args.batches_per_s
        session = requests.Session()
        session.headers["X-API-Key"] = self.key
        while not self.stop_clients.is_set():
            t = time.monotonic()
            try:
                r = session.post(self.url + "/feed/data", json={"records": self.batch(sender, n)}, timeout=30)
                if r.status_code == 200:
                    self.tally.ack(sender, n)
                    n += 1
                else:
                    self.tally.fail(t, "rest", str(r.status_code), r.text)
                    time.sleep(float(r.headers.get("Retry-After", 0.2)))
            except requests.ConnectionError as exc:
                self.tally.fail(t, "rest", "reset", str(exc))
                session = requests.Session()
                session.headers["X-API-Key"] = self.key
                time.sleep(0.2)
            except requests.Timeout:
                self.tally.fail(t, "rest", "timeout")
            time.sleep(max(0.0, gap - (time.monotonic() - t)))

    def reader(self, i: int) -> None:
        paths = ["/predictions/current", "/alerts/active", "/health"]
        session = requests.Session()
        session.headers["X-API-Key"] = self.key
        k = i
        while not self.stop_clients.is_set():
            path = paths[k % len(paths)]
            channel = "health" if path == "/health" else "read"
            k += 1
            t = time.monotonic()
            try:
                r = session.get(self.url + path, timeout=30)
                if r.status_code == 200:
                    self.tally.ok["read"] += 1
                else:
                    self.tally.fail(t, channel, str(r.status_code), f"{path}: {r.text}")
            except requests.ConnectionError as exc:
                self.tally.fail(t, channel, "reset", str(exc))
                session = requests.Session()
                session.headers["X-API-Key"] = self.key
            except requests.Timeout:
                self.tally.fail(t, channel, "timeout", path)
            time.sleep(0.2)

    def trainer(self) -> None:
        jobs: collections.Counter[str] = collections.Counter()
        self.jobs = jobs
        headers = {"X-API-Key": self.key}
        while not self.stop_clients.wait(self.args.train_every):
            t = time.monotonic()
            try:
                r = requests.post(self.url + "/admin/trigger-training?epochs=1", headers=headers, timeout=30)
                if r.status_code in (200, 202):
                    jobs["started"] += 1
                elif r.status_code == 409:
                    jobs["refused (409: one running or not ready)"] += 1
                else:
                    self.tally.fail(t, "train", str(r.status_code), r.text)
                s = requests.get(self.url + "/admin/training-stats", headers=headers, timeout=30)
                if s.status_code == 200:
                    self.history = s.json().get("history") or s.json().get("recent_jobs")
            except requests.ConnectionError as exc:
                self.tally.fail(t, "train", "reset", str(exc))
            except requests.Timeout:
                self.tally.fail(t, "train", "timeout")

    # -- faults ----------------------------------------------------------------------

    def kill(self, role: str) -> None:
        pid = self.roles()[role].pid
        assert pid
        t = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        ok = self.wait_ready({role}, 120, not_pid=pid)
        end = time.monotonic()
        if ok:
            self.ready_s[role].append(end - t)
        self.windows.append((t, end + 1.0, role, f"kill -9 {role}"))
        self.events.append(
            f"{t - self.started:6.1f} s kill -9 {role}: "
            + (f"ready in {end - t:.2f} s" if ok else "NOT ready")
        )

    def stop_cont(self, role: str, seconds: float) -> None:
        pid = self.roles()[role].pid
        assert pid
        t = time.monotonic()
        os.kill(pid, signal.SIGSTOP)
        time.sleep(seconds)
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass
        ok = self.wait_ready({role}, 120)
        end = time.monotonic()
        now = self.roles().get(role)
        restarted = now is not None and now.pid != pid
        self.windows.append((t, end + 1.0, role, f"SIGSTOP {role} {seconds:g} s"))
        self.events.append(
            f"{t - self.started:6.1f} s SIGSTOP {role} {seconds:g} s: "
            + ("killed by the supervisor as frozen, " if restarted else "kept, ")
            + (f"ready {end - t:.2f} s after the stop" if ok else "NOT ready")
        )

    def fill_disk(self) -> None:
        filler = self.data / "chaos-filler"
        t = time.monotonic()
        written = 0
        chunk = b"\0" * (1 << 20)
        with open(filler, "wb") as fh:
            try:
                while True:
                    fh.write(chunk)
                    fh.flush()
                    written += len(chunk)
            except OSError:
                pass
        time.sleep(self.args.full_s)
        filler.unlink()
        freed = time.monotonic()
        self.windows.append((t, freed + 5.0, "disk", "disk full"))
        self.events.append(
            f"{t - self.started:6.1f} s disk filled ({written >> 20} MiB) for {freed - t:.1f} s, then freed"
        )
        # Batches acked after the space came back are still only in the log: a kill now
        # shows whether a write cut short by the full disk costs them at replay.
        time.sleep(1.5)
        self.kill("ingest")

    def schedule(self) -> list[Callable[[], None]]:
        stops = [(r, s) for s in (2.0, 6.0) for r in ROLES]
        cycle = 0
        out: list[Callable[[], None]] = []
        while len(out) < 1000:
            role, secs = stops[cycle % len(stops)]
            out += [
                lambda: self.kill("ingest"),
                lambda: self.kill("predictor"),
                lambda r=role, s=secs: self.stop_cont(r, s),  # type: ignore[misc]
                lambda: self.kill("trainer"),
                lambda: self.kill("api"),
                self.fill_disk,
            ]
            cycle += 1
        return out

    # -- the run ---------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        a = self.args
        first_ready = self.start()
        self.started = time.monotonic()
        senders = [f"z{i}" for i in range(a.zmq_senders)] + [f"r{i}" for i in range(a.rest_senders)]
        threads = [
            threading.Thread(
                target=self.zmq_feeder if s[0] == "z" else self.rest_feeder, args=(s,), daemon=True
            )
            for s in senders
        ]
        threads += [threading.Thread(target=self.reader, args=(i,), daemon=True) for i in range(a.readers)]
        threads.append(threading.Thread(target=self.trainer, daemon=True))
        for t in threads:
            t.start()
        end = self.started + a.minutes * 60
        actions = iter(self.schedule())
        time.sleep(min(a.interval, 10))  # some data and a first pass before the first fault
        while time.monotonic() < end - a.interval:
            slot = time.monotonic()
            if self.proc is None or self.proc.poll() is not None:
                self.events.append(f"{slot - self.started:6.1f} s the tree is DOWN")
                break
            next(actions)()
            time.sleep(max(0.0, slot + a.interval - time.monotonic()))
        time.sleep(max(0.0, end - time.monotonic()))
        up = self.proc is not None and self.proc.poll() is None
        st = self.status()
        tree = {
            "up": up and st is not None and st.state == "running",
            "roles": {r.name: {"state": r.state, "restarts": r.restarts} for r in (st.roles if st else [])},
        }
        self.stop_clients.set()
        for t in threads:
            t.join(60)
        # Last fault: the whole tree at once, then a restart on the same data and a clean stop.
        self.kill_tree()
        restart_s = self.start()
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGTERM)
        clean = self.proc.wait(120)
        return {
            "first_ready_s": first_ready,
            "tree": tree,
            "restart_after_tree_kill_s": restart_s,
            "clean_stop_exit": clean,
            "records": self.verify(),
            "failures": self.failures(),
            "ready_s": {r: summary(v) for r, v in self.ready_s.items()},
            "training": dict(getattr(self, "jobs", {})),
            "training_history": getattr(self, "history", None),
            "ok_requests": dict(self.tally.ok),
            "events": self.events,
        }

    def verify(self) -> dict[str, Any]:
        """Acknowledged batches against the batches whole in the buffer."""
        table = read_window(self.data / "buffer", columns=["timestamp", "server_name"], dictionary_names=True)
        names = table.column("server_name").combine_chunks()
        if isinstance(names, pa.ChunkedArray) or not pa.types.is_dictionary(names.type):
            names = pa.chunked_array([names]).combine_chunks().dictionary_encode()
        senders = [
            str(s).split("-")[1] if str(s).startswith("chaos-") else "" for s in names.dictionary.to_pylist()
        ]
        ids = {s: i for i, s in enumerate(sorted(set(senders)))}
        sender_of = np.array([ids[s] for s in senders], dtype=np.int64)
        code = sender_of[names.indices.to_numpy(zero_copy_only=False)]
        ms = table.column("timestamp").combine_chunks().cast(pa.int64()).to_numpy()
        n = (ms // 1000 - self.t0_data) // STEP_S
        keys, counts = np.unique(code * 10_000_000 + n, return_counts=True)
        whole = {int(k) for k, c in zip(keys, counts, strict=True) if c == self.args.servers}
        partial = int(np.sum(counts != self.args.servers))
        acked = lost = extra = 0
        lost_batches: list[str] = []
        for sender, done in self.tally.acked.items():
            base = ids.get(sender, -1) * 10_000_000
            stored = {k - base for k in whole if base <= k < base + 10_000_000}
            acked += len(done)
            missing = done - stored
            lost += len(missing)
            extra += len(stored - done)
            lost_batches += [f"{sender}#{x}" for x in sorted(missing)[:10]]
        per = self.args.servers
        return {
            "acked_records": acked * per,
            "stored_records": int(table.num_rows),
            "lost_acked_records": lost * per,
            "stored_not_acked_records": extra * per,
            "partial_batches": partial,
            "lost_batches": lost_batches[:20],
        }

    def failures(self) -> dict[str, Any]:
        """Failed requests by channel and kind, inside or outside a window of a role they need."""
        out: collections.Counter[str] = collections.Counter()
        unexplained: list[str] = []
        for t, failed, channel, kind, detail in self.tally.failures:
            # In a window when the request was in flight during it (sent before, failed in it).
            inside = any(
                t <= e and failed >= s and target in NEEDS[channel] for s, e, target, _ in self.windows
            )
            where = "in a fault window" if inside else "OUTSIDE any fault window"
            out[f"{channel} {kind} {where}"] += 1
            if not inside or kind not in EXPECTED_KINDS:
                unexplained.append(f"{t - self.started:6.1f} s {channel} {kind}: {detail}")
        return {
            "by_kind": dict(sorted(out.items())),
            "unexplained": len(unexplained),
            "examples": unexplained[:15],
        }


def summary(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "median": float(np.median(values)), "max": max(values)} if values else {"n": 0}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=10.0, help="length of the soak (default 10)")
    p.add_argument("--interval", type=float, default=10.0, help="seconds between faults (default 10)")
    p.add_argument("--full-s", type=float, default=8.0, help="seconds the disk stays full (default 8)")
    p.add_argument("--servers", type=int, default=200, help="servers per sender = records per batch")
    p.add_argument("--batches-per-s", type=float, default=10.0, help="batches a second per sender")
    p.add_argument("--zmq-senders", type=int, default=2)
    p.add_argument("--rest-senders", type=int, default=2)
    p.add_argument("--readers", type=int, default=2)
    p.add_argument("--train-every", type=float, default=60.0, help="seconds between training triggers")
    p.add_argument("--tmpfs-mb", type=int, default=1024, help="size of the data directory's tmpfs")
    p.add_argument("--json", type=Path, help="write the report as JSON to this file")
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        p.error("needs root: it mounts a tmpfs as the data directory to fill it")
    started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    print(f"nordiqd chaos soak, {started}, {args.minutes:g} min, load {os.getloadavg()[0]:.2f}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    root = Path(tempfile.mkdtemp(prefix="nordiqd-chaos-"))
    soak: Soak | None = None
    try:
        soak = Soak(args, root)
        report = soak.run()
    finally:
        if soak is not None:
            soak.kill_tree()
            soak.ctx.destroy(0)
            log = root / "daemon.log"
            if log.exists() and args.json:
                shutil.copy(log, args.json.with_suffix(".daemon.log"))
        subprocess.run(["umount", str(root / "data")], check=False, capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
    report |= {"started": started, "args": vars(args) | {"json": str(args.json)}, "load_end": os.getloadavg()}
    for line in report.pop("events"):
        print(" ", line)
    r, f = report["records"], report["failures"]
    print(
        json.dumps(
            {k: v for k, v in report.items() if k not in ("records", "failures")}, indent=1, default=str
        )
    )
    print(json.dumps(f, indent=1))
    print(json.dumps(r, indent=1))
    verdicts = {
        "0 acknowledged records lost": r["lost_acked_records"] == 0,
        "tree still up": report["tree"]["up"],
        "every failure a 503/507, reset or timeout in a fault window": f["unexplained"] == 0,
    }
    for what, ok in verdicts.items():
        print(f"{'PASS' if ok else 'FAIL'}  {what}")
    if args.json:
        args.json.write_text(json.dumps(report | {"verdicts": verdicts}, indent=2, default=str) + "\n")
    return 0 if all(verdicts.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
