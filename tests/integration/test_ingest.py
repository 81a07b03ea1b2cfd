"""Ingest through the real daemon: validation over REST and zmq, durability under kill -9."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from ipc.client import RequestTimeout
from nordiqd.agent import IngestClient, IngestRejected
from nordiqd.buffer.reader import read_window

NOW = time.time()


def record(i: int, server: str = "web-001", **metrics: float) -> dict[str, object]:
    return {"timestamp": NOW - 3600 + i, "server_name": server, "cpu_user_pct": 10.0 + i % 50, **metrics}


def stored(daemon) -> int:  # type: ignore[no-untyped-def]
    return int(daemon.get("/admin/training-stats").json()["data_buffer"]["total_records"])


BAD = [
    ("unknown field", {"bogus": 1.0}, "bogus"),
    ("wrong type", {"cpu_user_pct": "high"}, "cpu_user_pct"),
    ("bool is not a number", {"mem_used_pct": True}, "mem_used_pct"),
    ("bad timestamp", {"timestamp": "yesterday"}, "timestamp"),
    ("naive timestamp", {"timestamp": "2026-11-26T01:00:00"}, "timestamp"),
    ("future timestamp", {"timestamp": NOW + 86400}, "timestamp"),
    ("bad name", {"server_name": "web 001/x"}, "server_name"),
    ("empty name", {"server_name": ""}, "server_name"),
]


@pytest.mark.parametrize(("why", "patch", "field"), BAD, ids=[b[0] for b in BAD])
def test_bad_batch_is_rejected_whole_over_rest(daemon, why: str, patch: dict, field: str) -> None:  # type: ignore[no-untyped-def,type-arg]
    good = [record(i) for i in range(5)]
    assert daemon.post("/feed/data", json={"records": good}).status_code == 200
    before = stored(daemon)
    batch = [record(100 + i, server="web-002") for i in range(5)]
    batch[3] = {**batch[3], **patch}
    r = daemon.post("/feed/data", json={"records": batch})
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["success"] is False
    assert {"index": 3, "field": field} == {k: body["problems"][0][k] for k in ("index", "field")}
    assert stored(daemon) == before


def test_nan_over_zmq_is_rejected_with_index_and_field(daemon) -> None:  # type: ignore[no-untyped-def]
    with IngestClient(daemon.endpoint("ingest"), timeout_s=5) as client:
        client.send([record(i) for i in range(3)])
        before = stored(daemon)
        with pytest.raises(IngestRejected) as err:
            client.send(
                [record(10), record(11, cpu_sys_pct=float("nan")), record(12, load_average=float("inf"))]
            )
    problems = [(p["index"], p["field"]) for p in err.value.problems]
    assert problems == [(1, "cpu_sys_pct"), (2, "load_average")]
    assert stored(daemon) == before


def test_oversized_body_is_413(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    d = daemon_factory(api={"max_body_mb": 0.01})
    d.start()
    d.wait_ready()
    r = d.post("/feed/data", json={"records": [record(i) for i in range(500)]})
    assert r.status_code == 413 and r.json()["success"] is False
    assert stored(d) == 0


def test_duplicates_are_stored_once(daemon) -> None:  # type: ignore[no-untyped-def]
    batch = [record(i) for i in range(20)]
    assert daemon.post("/feed/data", json={"records": batch + batch[:5]}).json()["accepted"] == 20
    assert daemon.post("/feed/data", json={"records": batch}).status_code == 200
    table = read_window(daemon.root / "data" / "buffer", columns=["timestamp", "server_name"])
    assert table.num_rows == 20


def _sender(endpoint: str, acked: list[float], stop: threading.Event) -> None:
    """Sends one-record-per-second-stamp batches; remembers only what was acknowledged."""
    i = 0
    with IngestClient(endpoint, timeout_s=1.0, retries=0) as client:
        while not stop.is_set():
            batch = [
                {"timestamp": NOW - 86400 + i * 10 + k, "server_name": "db-001", "mem_used_pct": 50.0}
                for k in range(10)
            ]
            i += 1
            try:
                client.send(batch)
            except RequestTimeout:
                continue
            acked.extend(r["timestamp"] for r in batch)  # type: ignore[misc]


def _assert_exactly_once(daemon, acked: list[float]) -> None:  # type: ignore[no-untyped-def]
    table = read_window(daemon.root / "data" / "buffer", columns=["timestamp", "server_name"])
    got = [t.timestamp() for t in table.column("timestamp").to_pylist()]
    assert len(got) == len(set(got)), "a record is stored twice"
    missing = set(round(a, 3) for a in acked) - set(round(g, 3) for g in got)
    assert not missing, f"{len(missing)} acknowledged records lost"


def test_acknowledged_batches_survive_kill_9_of_ingest(daemon) -> None:  # type: ignore[no-untyped-def]
    acked: list[float] = []
    stop = threading.Event()
    t = threading.Thread(target=_sender, args=(daemon.endpoint("ingest"), acked, stop))
    t.start()
    for _ in range(3):
        time.sleep(0.7)
        os.kill(daemon.role("ingest").pid, signal.SIGKILL)
        time.sleep(0.3)
        deadline = time.monotonic() + 10
        while daemon.role("ingest").state != "ready" and time.monotonic() < deadline:
            time.sleep(0.05)
    time.sleep(0.5)
    stop.set()
    t.join()
    assert len(acked) > 100
    _assert_exactly_once(daemon, acked)


def test_acknowledged_batches_survive_kill_9_of_the_whole_tree(daemon) -> None:  # type: ignore[no-untyped-def]
    acked: list[float] = []
    stop = threading.Event()
    t = threading.Thread(target=_sender, args=(daemon.endpoint("ingest"), acked, stop))
    t.start()
    time.sleep(1.5)
    os.killpg(daemon.proc.pid, signal.SIGKILL)  # supervisor and every role at once
    daemon.proc.wait()
    stop.set()
    t.join()
    assert len(acked) > 50
    daemon.start()
    daemon.wait_ready()
    _assert_exactly_once(daemon, acked)
