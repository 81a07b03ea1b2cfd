"""Write-ahead log: framing, torn tails, checkpoints, fsync policies."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nordiqd.buffer.errors import StoreClosed
from nordiqd.buffer.wal import WriteAheadLog, scan_segments


def payloads(frames: list) -> list[bytes]:  # type: ignore[type-arg]
    return [f.payload for f in frames]


@pytest.mark.parametrize("fsync", ["always", 5])
def test_frames_replay_in_order(tmp_path: Path, fsync: str | int) -> None:
    wal = WriteAheadLog(tmp_path, fsync)
    assert wal.open() == []
    for i in range(5):
        wal.append(b"payload-%d" % i * 10, records=i)
    wal.close()
    frames = WriteAheadLog(tmp_path).open()
    assert payloads(frames) == [b"payload-%d" % i * 10 for i in range(5)]
    assert [f.records for f in frames] == list(range(5))


def test_torn_tail_is_truncated_and_everything_before_kept(tmp_path: Path) -> None:
    wal = WriteAheadLog(tmp_path, "always")
    wal.open()
    for i in range(3):
        wal.append(bytes([i]) * 1000, records=1)
    wal.close()
    [segment] = sorted(tmp_path.glob("*.wal"))
    size = segment.stat().st_size
    os.truncate(segment, size - 500)  # the third frame cut mid-payload, as by kill -9
    reopened = WriteAheadLog(tmp_path)
    assert payloads(reopened.open()) == [bytes([0]) * 1000, bytes([1]) * 1000]
    reopened.append(b"after", records=1)
    reopened.close()
    assert payloads(WriteAheadLog(tmp_path).open())[-1] == b"after"


def test_corrupt_frame_ends_the_segment(tmp_path: Path) -> None:
    wal = WriteAheadLog(tmp_path, "always")
    wal.open()
    wal.append(b"a" * 100, records=1)
    wal.append(b"b" * 100, records=1)
    wal.close()
    [segment] = sorted(tmp_path.glob("*.wal"))
    data = bytearray(segment.read_bytes())
    data[-10] ^= 0xFF  # flip a bit in the last payload: crc mismatch
    segment.write_bytes(bytes(data))
    assert payloads(list(scan_segments(tmp_path))) == [b"a" * 100]
    assert segment.stat().st_size == len(data)  # scanning is read-only


def test_rotate_and_drop_before_checkpoint(tmp_path: Path) -> None:
    wal = WriteAheadLog(tmp_path, "always")
    wal.open()
    wal.append(b"old", records=1)
    checkpoint = wal.rotate()
    wal.append(b"new", records=1)
    wal.drop_before(checkpoint)
    assert [f.payload for f in scan_segments(tmp_path)] == [b"new"]
    wal.close()
    with pytest.raises(StoreClosed):
        wal.append(b"late", records=1)


def test_segment_rotates_by_size(tmp_path: Path) -> None:
    wal = WriteAheadLog(tmp_path, "always", segment_bytes=1000)
    wal.open()
    for _ in range(5):
        wal.append(b"x" * 600, records=1)
    wal.close()
    assert len(list(tmp_path.glob("*.wal"))) == 3  # frames 2 + 2 + 1
    assert len(WriteAheadLog(tmp_path).open()) == 5


@pytest.mark.parametrize("fsync", ["sometimes", 0, -5, True, 1.5])
def test_bad_policy_is_refused(tmp_path: Path, fsync: object) -> None:
    with pytest.raises(ValueError):
        WriteAheadLog(tmp_path, fsync)  # type: ignore[arg-type]
