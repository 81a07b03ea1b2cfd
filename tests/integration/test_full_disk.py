"""The real daemon with its data directory on a small tmpfs that the test fills and frees.

Acknowledged batches survive a full disk and a ``kill -9`` of the whole tree; a batch
that meets the full disk is refused whole (REST 507, zmq ``disk_full``) naming the path;
ingest takes batches again within seconds of the space coming back, with no restart.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from nordiqd.agent import IngestClient, IngestRejected
from nordiqd.buffer.reader import read_window
from tests.harness import Daemon, wait_for
from tests.smalldisk import small_disk

NOW = time.time()
SERVERS = 10
STEPS = 100  # records per batch: SERVERS x STEPS, about 45 KB in the write-ahead log


def batch(n: int) -> list[dict[str, object]]:
    """Batch ``n``: its own 100 seconds for each of 10 servers; no two batches share a stamp."""
    return [
        {
            "timestamp": NOW - 7200 + n * STEPS + k,
            "server_name": f"web-{s:03d}",
            "cpu_user_pct": float(k % 90),
        }
        for k in range(STEPS)
        for s in range(SERVERS)
    ]


def stamps(n: int) -> set[tuple[str, float]]:
    return {(str(r["server_name"]), round(float(r["timestamp"]), 3)) for r in batch(n)}  # type: ignore[arg-type]


def stored_keys(d: Daemon) -> set[tuple[str, float]]:
    table = read_window(d.root / "data" / "buffer", columns=["server_name", "timestamp"])
    return {
        (name, round(t.timestamp(), 3))
        for name, t in zip(
            table.column("server_name").to_pylist(), table.column("timestamp").to_pylist(), strict=True
        )
    }


def counted(d: Daemon) -> int:
    return int(d.get("/admin/training-stats").json()["data_buffer"]["total_records"])


def test_full_disk_refuses_whole_batches_and_loses_nothing_acknowledged(daemon_factory) -> None:  # type: ignore[no-untyped-def]
    d: Daemon = daemon_factory(buffer={"compact_interval_s": 0.5}, daemon={"disk_free_warn_mb": 4})
    data = d.root / "data"
    with small_disk(data, size_mb=16) as disk:
        try:
            d.start()
            d.wait_ready()
            acked = []
            for n in range(10):
                assert d.post("/feed/data", json={"records": batch(n)}).status_code == 200
                acked.append(n)
            health = d.get("/health").json()
            assert health["disk"]["path"] == str(data) and health["disk"]["low"] is False

            disk.fill()
            disk.leave(16_384)  # room for a third of a batch: the write is cut short half-way
            for n in (10, 11):
                r = d.post("/feed/data", json={"records": batch(n)})
                assert r.status_code == 507, r.text
                body = r.json()
                assert body["success"] is False and "disk is full" in body["error"], body
                assert str(data / "buffer" / "wal") in body["error"] and body["path"] == str(
                    data / "buffer" / "wal"
                )
            with IngestClient(d.endpoint("ingest"), timeout_s=10) as client:
                with pytest.raises(IngestRejected) as err:
                    client.send(batch(12))
            assert err.value.kind == "disk_full" and "disk is full" in str(err.value)

            # Warned: /health (still 200: the daemon serves), /metrics, training-stats, the log.
            health_r = d.get("/health")
            assert health_r.status_code == 200 and health_r.json()["disk"]["low"] is True
            assert health_r.json()["disk"]["free_bytes"] < 4 << 20
            text = d.get("/metrics").text
            assert f'nordiqd_disk_low{{path="{data}"}} 1' in text
            assert f'nordiqd_disk_free_bytes{{path="{data}"}}' in text
            assert d.get("/admin/training-stats").json()["disk"]["low"] is True
            assert wait_for(lambda: "low disk space" in d.log_text(), 5)
            # Predictions keep serving.
            assert d.get("/predictions/current").status_code == 200
            # Ingest killed on the full disk starts again (its log replays) and still refuses.
            ingest = d.role("ingest")
            os.kill(ingest.pid, signal.SIGKILL)  # type: ignore[arg-type]
            assert wait_for(
                lambda: d.role("ingest").state == "ready" and d.role("ingest").pid != ingest.pid, 20
            )
            assert d.post("/feed/data", json={"records": batch(13)}).status_code == 507
            assert counted(d) == 10 * len(batch(0))

            disk.free()
            freed = time.monotonic()
            assert wait_for(lambda: d.post("/feed/data", json={"records": batch(14)}).status_code == 200, 10)
            recovery = time.monotonic() - freed
            assert recovery < 5.0, f"ingest took {recovery:.1f} s to take batches again"
            acked.append(14)
            assert d.post("/feed/data", json={"records": batch(15)}).status_code == 200
            acked.append(15)
            # Everything acknowledged is visible at once, with no restart.
            assert counted(d) == len(acked) * len(batch(0))
            # No role failed on the full disk: the only exits are kills (ours, or for a
            # heartbeat missed on a loaded CI box), never an error exit.
            exits = {r.name: r.last_exit for r in d.status().roles}
            assert all(e is None or "killed by SIGKILL" in e for e in exits.values()), exits

            os.killpg(d.proc.pid, signal.SIGKILL)  # type: ignore[union-attr]
            d.proc.wait()  # type: ignore[union-attr]
            d.start()
            d.wait_ready()
            keys = stored_keys(d)
            for n in acked:
                assert stamps(n) <= keys, f"acknowledged batch {n} lost"
            for n in (10, 11, 12, 13):
                assert not stamps(n) & keys, f"refused batch {n} was partly stored"
            assert len(keys) == len(acked) * len(batch(0))
            assert "torn tail" not in d.log_text()
        finally:
            d.kill_group()
