"""The durable buffer on a full disk, on a real tmpfs: nothing acknowledged is ever lost.

A write that the disk refuses half-way must leave nothing behind in the log, so that a
batch acknowledged after the space came back is not hidden behind a torn frame (and
dropped as "torn tail" by the replay after a ``kill -9``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from nordiqd.buffer.errors import DiskFull
from nordiqd.buffer.records import RecordValidator
from nordiqd.buffer.store import BufferStore
from nordiqd.buffer.wal import WriteAheadLog, scan_segments
from tests.smalldisk import SmallDisk, small_disk

FRAME = 40_000  # bytes of payload per test frame: larger than what ``leave`` gives back
NOW = 1_735_693_200.0  # 2025-01-01T01:00:00Z


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[SmallDisk]:
    with small_disk(tmp_path / "disk", size_mb=4) as d:
        yield d


@pytest.mark.parametrize("fsync", ["always", 5])
def test_an_append_cut_short_leaves_nothing_behind(disk: SmallDisk, fsync: str | int) -> None:
    wal = WriteAheadLog(disk.path / "wal", fsync)
    wal.open()
    for i in range(10):
        wal.append(bytes([i]) * FRAME, records=1)
    disk.fill()
    disk.leave(16_384)  # room for part of a frame: the write is cut short, then refused
    with pytest.raises(DiskFull) as err:
        wal.append(b"x" * FRAME, records=1)
    assert "disk is full" in str(err.value) and str(disk.path / "wal") in str(err.value)
    assert err.value.path == str(disk.path / "wal")
    with pytest.raises(DiskFull):
        wal.append(b"y" * FRAME, records=1)  # refused again, still nothing half-written
    assert disk.free_bytes() >= 16_384  # what the cut-short write took was given back
    disk.free()
    wal.append(b"after" * 1000, records=7)
    # Readers in other processes see the frame at once...
    assert [f.records for f in scan_segments(disk.path / "wal", payloads=False)] == [1] * 10 + [7]
    # ...and so does the replay after a kill -9 (the log is never closed).
    frames = WriteAheadLog(disk.path / "wal").open()
    assert [f.payload for f in frames] == [bytes([i]) * FRAME for i in range(10)] + [b"after" * 1000]


def test_rotation_on_a_full_disk_leaves_the_next_segment_to_the_next_append(disk: SmallDisk) -> None:
    wal = WriteAheadLog(disk.path / "wal", "always", segment_bytes=3 * FRAME)
    wal.open()
    wal.append(b"a" * FRAME, records=1)
    disk.fill()
    assert wal.rotate() == 2  # the checkpoint still holds: segment 1 is closed, synced
    assert sorted(p.name for p in (disk.path / "wal").iterdir()) == ["000000000001.wal"]
    with pytest.raises(DiskFull):
        wal.append(b"b" * FRAME, records=1)  # no room for segment 2 yet
    assert sorted(p.name for p in (disk.path / "wal").iterdir()) == ["000000000001.wal"]
    disk.free()
    for c in (b"b", b"c", b"d", b"e"):  # past segment_bytes: rotates again on its own
        wal.append(c * FRAME, records=1)
    assert sorted(p.name for p in (disk.path / "wal").iterdir()) == [
        "000000000001.wal", "000000000002.wal", "000000000003.wal"
    ]  # fmt: skip
    assert [f.payload for f in WriteAheadLog(disk.path / "wal").open()] == [
        c * FRAME for c in (b"a", b"b", b"c", b"d", b"e")
    ]


def test_a_log_opened_on_a_full_disk_starts_and_refuses_until_space_is_back(disk: SmallDisk) -> None:
    wal = WriteAheadLog(disk.path / "wal", "always")
    wal.open()
    wal.append(b"a" * FRAME, records=1)
    disk.fill()
    # A restart on the full disk (kill -9 of ingest): the replay works, ingest starts.
    reopened = WriteAheadLog(disk.path / "wal", "always")
    assert [f.payload for f in reopened.open()] == [b"a" * FRAME]
    with pytest.raises(DiskFull):
        reopened.append(b"b" * FRAME, records=1)
    disk.free()
    reopened.append(b"b" * FRAME, records=1)
    reopened.close()
    assert [f.payload for f in WriteAheadLog(disk.path / "wal").open()] == [b"a" * FRAME, b"b" * FRAME]


def _batch(validator: RecordValidator, start: int, n: int) -> object:
    return validator.from_records(
        [{"timestamp": NOW - 7200 + start + i, "server_name": "web-1", "cpu_user_pct": 1.0} for i in range(n)]
    )


def test_compaction_on_a_full_disk_keeps_every_record_and_catches_up(disk: SmallDisk) -> None:
    validator = RecordValidator(clock=lambda: NOW)
    store = BufferStore(disk.path / "buffer", clock=lambda: NOW, fsync="always", flush_records=10**9)
    store.open()
    store.append(_batch(validator, 0, 2000))  # type: ignore[arg-type]
    disk.fill()
    with pytest.raises(DiskFull):
        store.append(_batch(validator, 2000, 2000))  # type: ignore[arg-type]
    with pytest.raises(OSError):
        store.flush()  # no room for the Parquet part: the records stay pending and logged
    assert store.pending_records == 2000 and store.stats()["total_records"] == 2000
    assert not [p for p in (disk.path / "buffer").rglob("*") if p.is_file() and ".tmp" in p.name]
    disk.free()
    store.append(_batch(validator, 2000, 2000))  # type: ignore[arg-type]
    assert store.flush() == 4000
    assert store.pending_records == 0 and store.stats()["total_records"] == 4000
    store.close(flush=False)


def test_a_torn_frame_that_cannot_be_cut_back_is_left_behind_in_its_own_segment(
    disk: SmallDisk, monkeypatch: pytest.MonkeyPatch
) -> None:
    wal = WriteAheadLog(disk.path / "wal", "always")
    wal.open()
    wal.append(b"a" * FRAME, records=1)
    disk.fill()
    disk.leave(16_384)

    def refuse(fd: int, size: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr("nordiqd.buffer.wal.os.ftruncate", refuse)  # the cut-back fails too
    with pytest.raises(DiskFull):
        wal.append(b"x" * FRAME, records=1)
    monkeypatch.undo()
    disk.free()
    wal.append(b"b" * FRAME, records=1)  # in a new segment, not behind the torn frame
    assert sorted(p.name for p in (disk.path / "wal").iterdir()) == ["000000000001.wal", "000000000002.wal"]
    assert [f.payload for f in WriteAheadLog(disk.path / "wal").open()] == [b"a" * FRAME, b"b" * FRAME]
