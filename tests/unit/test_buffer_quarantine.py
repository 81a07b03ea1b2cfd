"""A damaged Parquet file in the buffer is set aside; ingest still starts."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from nordiqd.buffer.reader import read_window
from nordiqd.buffer.records import DEFAULT_METRICS
from nordiqd.buffer.store import BufferStore


def test_unreadable_daily_file_is_quarantined_and_the_store_opens(tmp_path: Path) -> None:
    buffer = tmp_path / "buffer"
    buffer.mkdir()
    (buffer / "metrics_2026-11-20.parquet").write_bytes(b"PAR1 not really parquet")
    store = BufferStore(buffer, DEFAULT_METRICS, retention_days=3650, clock=lambda: 1_795_000_000.0)
    store.open()
    batch = pa.table(
        {
            "timestamp": pa.array([1_794_999_000_000], pa.timestamp("ms", tz="UTC")),
            "server_name": ["web-001"],
            "profile": ["web"],
            **{m: pa.array([1.0], pa.float32()) for m in DEFAULT_METRICS},
        }
    ).to_batches()[0]
    store.append(batch)
    store.flush()
    store.close()
    quarantined = list((buffer / "quarantine").iterdir())
    assert [p.name.split(".parquet")[0] for p in quarantined] == ["metrics_2026-11-20"]
    assert not (buffer / "metrics_2026-11-20.parquet").exists()
    assert read_window(buffer, columns=["server_name"]).num_rows == 1
