"""Ingest's backlog bound, on a real daemon: senders are held back, nothing acked is lost.

A bound of one record makes every batch wait for the compaction thread's flush of the
one before: zmq acks come later, and a REST batch that waited past ``backlog_wait_s``
is answered 503 with Retry-After and left out of the buffer, to be sent again.
"""

from __future__ import annotations

import threading
import time

import requests

from nordiqd.agent import IngestClient
from nordiqd.buffer.reader import read_window

NOW = time.time()
PUSHBACK = {"buffer": {"max_backlog_records": 1, "backlog_wait_s": 0.01}}


def batch(sender: int, n: int) -> list[dict[str, object]]:
    """50 records of a server of its own, at stamps no other batch uses."""
    return [
        {"timestamp": NOW - 7200 + n * 50 + k, "server_name": f"web-{sender:03d}", "cpu_user_pct": 1.0 * k}
        for k in range(50)
    ]


def stored_keys(daemon) -> set[tuple[str, float]]:  # type: ignore[no-untyped-def]
    table = read_window(daemon.root / "data" / "buffer", columns=["timestamp", "server_name"])
    keys = list(
        zip(
            table.column("server_name").to_pylist(),
            (round(t.timestamp(), 3) for t in table.column("timestamp").to_pylist()),
            strict=True,
        )
    )
    assert len(keys) == len(set(keys)), "a record is stored twice"
    return set(keys)


def keys_of(records: list[dict[str, object]]) -> set[tuple[str, float]]:
    return {(str(r["server_name"]), round(float(r["timestamp"]), 3)) for r in records}  # type: ignore[arg-type]


def pushback_counts(daemon) -> dict[str, float]:  # type: ignore[no-untyped-def]
    text = daemon.get("/metrics").text
    return {
        line.split('"')[1]: float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("nordiqd_ingest_pushback_total{")
    }


def test_rest_senders_hear_503_with_retry_after_and_no_acked_record_is_lost(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    d = daemon_factory(**PUSHBACK)
    d.start()
    d.wait_ready()
    acked: set[tuple[str, float]] = set()
    refused: list[tuple[list[dict[str, object]], requests.Response]] = []
    other: list[str] = []
    lock = threading.Lock()

    def send(sender: int) -> None:
        with requests.Session() as s:
            for n in range(4):
                records = batch(sender, n)
                r = s.post(
                    d.url + "/feed/data", json={"records": records}, headers={"X-API-Key": d.key}, timeout=30
                )
                with lock:
                    if r.status_code == 200:
                        assert r.json()["accepted"] == 50
                        acked.update(keys_of(records))
                    elif r.status_code == 503:
                        refused.append((records, r))
                    else:
                        other.append(f"{r.status_code}: {r.text[:200]}")

    threads = [threading.Thread(target=send, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not other, other
    assert refused, "8 senders against a bound of one record and a 0.01 s wait: some must hear busy"
    for _, r in refused:
        assert r.headers.get("Retry-After", "").isdigit() and int(r.headers["Retry-After"]) >= 1, r.headers
        assert "busy" in r.json()["error"] and "max_backlog_records" in r.json()["error"]
    # Exactly the acked records are in the buffer: none lost, none of a refused batch.
    assert stored_keys(d) == acked
    counts = pushback_counts(d)
    assert counts["held"] >= len(refused) and counts["busy"] == len(refused), counts
    # Sent again after Retry-After, as a sender should, the refused batches go in.
    for records, r in refused:
        time.sleep(int(r.headers["Retry-After"]))
        for _ in range(10):
            again = d.post("/feed/data", json={"records": records})
            if again.status_code == 200:
                acked.update(keys_of(records))
                break
            assert again.status_code == 503, again.text
            time.sleep(int(again.headers["Retry-After"]))
    assert stored_keys(d) == acked and len(acked) == 8 * 4 * 50


def test_zmq_acks_wait_for_compaction_and_every_batch_is_kept(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    d = daemon_factory(buffer={"max_backlog_records": 1, "backlog_wait_s": 5.0})
    d.start()
    d.wait_ready()
    acked: set[tuple[str, float]] = set()
    waits: list[float] = []
    lock = threading.Lock()

    def send(sender: int) -> None:
        with IngestClient(d.endpoint("ingest"), timeout_s=30.0, retries=0) as client:
            for n in range(5):
                records = batch(100 + sender, n)
                t = time.monotonic()
                assert client.send(records).accepted == 50
                with lock:
                    waits.append(time.monotonic() - t)
                    acked.update(keys_of(records))

    threads = [threading.Thread(target=send, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(acked) == 4 * 5 * 50 and stored_keys(d) == acked
    counts = pushback_counts(d)
    # Each batch after the first waited for a flush of the one before it (how long a flush
    # takes is the machine's business: on a quiet one well under 50 ms, so no timing here).
    assert counts["held"] >= 10 and counts["busy"] == 0, counts
    assert len(waits) == 4 * 5, waits
