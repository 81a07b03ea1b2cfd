"""A real process appends and is SIGKILLed: nothing it acknowledged is lost or doubled."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow as pa

from nordiqd.buffer.reader import read_window
from nordiqd.buffer.store import BufferStore

REPO = Path(__file__).resolve().parents[2]
START = 1_735_689_600

CHILD = """
import sys
from nordiqd.buffer.records import RecordValidator
from nordiqd.buffer.store import BufferStore
clock = lambda: %(start)d + 86_400.0
store = BufferStore(sys.argv[1], clock=clock, fsync=1000, flush_records=300)
store.open()
validator = RecordValidator(clock=clock)
i = 0
while True:
    batch = validator.from_records(
        [{"timestamp": %(start)d + i, "server_name": f"s{n}", "cpu_user_pct": float(i)} for n in range(50)]
    )
    store.append(batch)
    print(i, flush=True)  # the acknowledgement
    store.maintain()
    i += 1
"""


def test_acknowledged_batches_survive_kill_9(tmp_path: Path) -> None:
    buffer_dir = tmp_path / "buffer"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD % {"start": START}, str(buffer_dir)],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        text=True,
    )
    acked = -1
    try:
        assert child.stdout is not None
        for line in child.stdout:
            acked = int(line)
            if acked >= 40:  # several flushes and merges have happened by now
                break
        child.send_signal(signal.SIGKILL)
        for line in child.stdout:  # acks printed before the kill landed count too
            acked = int(line)
    finally:
        child.kill()
        child.wait()
    assert acked >= 40
    store = BufferStore(buffer_dir, clock=lambda: START + 86_400.0)
    store.open()
    store.flush()
    table = read_window(buffer_dir, columns=["timestamp", "server_name", "cpu_user_pct"])
    seconds = table.column("timestamp").cast(pa.int64()).to_numpy() // 1000 - START
    got = set(zip(table.column("server_name").to_pylist(), seconds.tolist(), strict=True))
    assert len(got) == table.num_rows  # exactly once
    assert {(f"s{n}", i) for i in range(acked + 1) for n in range(50)} <= got
    assert store.stats()["total_records"] == table.num_rows
    store.close()
