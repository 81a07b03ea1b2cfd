"""The write-ahead log of records not yet compacted into Parquet.

Layout: ``<buffer_dir>/wal/<seq>.wal`` segment files, ``seq`` a zero-padded counter.
A segment starts with an 8-byte magic and holds frames::

    magic "NQWF" | u32 payload length | u32 record count | u32 crc32 | payload

little-endian; the crc covers length, count and payload; the payload is one Arrow IPC
stream (``batch.encode_batch``). A frame is written with ``write(2)`` on an
``O_APPEND`` descriptor, so once ``append`` returns the frame is in the kernel and
survives ``kill -9`` of this process whatever the fsync policy; the policy decides
what survives power loss: ``"always"`` fdatasyncs before ``append`` returns (nothing
acknowledged is lost), an interval of N ms fdatasyncs from a background thread
(up to N ms of acknowledged records can be lost).

Threading: with an interval policy ``open()`` starts one daemon thread that wakes every
N ms and syncs the current segment if it was written to; ``close()`` sets its stop
event, joins it and syncs a last time. A lock serialises appends, syncs and rotation,
so ``append`` may be called from any thread.

Full disk: a write cut short or refused is truncated back to the last whole frame
before ``append`` raises ``DiskFull``, so the segment never holds a torn frame with
acknowledged frames after it (the replay stops at the first torn frame of a segment).
Rotation on a full disk closes the segment and leaves the next one to the first append
that finds room.

Checkpointing: the owner calls ``rotate()`` to start a new segment, writes the records
of the older segments somewhere durable, then calls ``drop_before(seq)``.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from nordiqd.diskspace import full_message, is_disk_full
from nordiqd.durable import fsync_dir

from .errors import DiskFull, StoreClosed

__all__ = ["FsyncPolicy", "WalFrame", "WriteAheadLog", "scan_segments", "segment_numbers"]

log = logging.getLogger(__name__)

FsyncPolicy = str | int  # "always" or an interval in milliseconds
SEGMENT_MAGIC = b"NQWAL001"
_FRAME = struct.Struct("<4sIII")
_FRAME_MAGIC = b"NQWF"
_SUFFIX = ".wal"


class WalFrame(NamedTuple):
    """One complete frame found in a segment."""

    segment: int
    records: int
    payload: bytes | None  # None when scanned with payloads=False


def _segment_path(directory: Path, seq: int) -> Path:
    return directory / f"{seq:012d}{_SUFFIX}"


def segment_numbers(directory: Path) -> list[int]:
    """The numbers of the segments in ``directory``, oldest first (none if it is missing)."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    return sorted(int(n[: -len(_SUFFIX)]) for n in names if n.endswith(_SUFFIX) and n[:-4].isdigit())


def _scan_file(path: Path, payloads: bool) -> tuple[list[tuple[int, bytes | None]], int, int]:
    """Returns (frames, end of the last complete frame, file size) of one segment."""
    frames: list[tuple[int, bytes | None]] = []
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if f.read(len(SEGMENT_MAGIC)) != SEGMENT_MAGIC:
            return frames, 0, size
        good = f.tell()
        while True:
            header = f.read(_FRAME.size)
            if len(header) < _FRAME.size:
                break
            magic, length, count, crc = _FRAME.unpack(header)
            if magic != _FRAME_MAGIC or good + _FRAME.size + length > size:
                break
            payload = f.read(length)
            if zlib.crc32(payload, zlib.crc32(header[4:12])) != crc:
                break
            frames.append((count, payload if payloads else None))
            good = f.tell()
    return frames, good, size


def scan_segments(directory: Path, payloads: bool = True) -> Iterator[WalFrame]:
    """Yields every complete frame of every segment, oldest first, read-only.

    A torn or corrupt tail ends a segment's frames; nothing is modified, so readers in
    other processes can call this while the log is written. A segment deleted under
    the scan (checkpointed meanwhile) is skipped.
    """
    for seq in segment_numbers(directory):
        try:
            frames, _, _ = _scan_file(_segment_path(directory, seq), payloads)
        except FileNotFoundError:
            continue
        for count, payload in frames:
            yield WalFrame(seq, count, payload)


class WriteAheadLog:
    """Appends framed payloads to segment files and replays them after a crash."""

    def __init__(
        self, directory: Path | str, fsync: FsyncPolicy = 1000, segment_bytes: int = 64 << 20
    ) -> None:
        """Configures the log; nothing is touched on disk until ``open``.

        Args:
            directory: The ``wal`` folder (created when missing).
            fsync: ``"always"``, or the background fdatasync interval in ms (> 0).
            segment_bytes: A segment is rotated once it grows past this size.
        """
        if fsync != "always" and not (isinstance(fsync, int) and not isinstance(fsync, bool) and fsync > 0):
            raise ValueError(f"fsync must be 'always' or a positive number of ms, not {fsync!r}")
        self.directory = Path(directory)
        self.fsync = fsync
        self._segment_bytes = segment_bytes
        self._lock = threading.Lock()
        self._open = False
        self._fd = -1  # -1 between segments: the next append starts segment ``_seq``
        self._seq = 0
        self._size = 0
        self._dirty = False
        self._torn = False  # a refused write could not be cut back: rotate before the next
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def segment(self) -> int:
        """The sequence number of the segment being written."""
        return self._seq

    def open(self) -> list[WalFrame]:
        """Replays existing segments, truncating torn tails, and starts a new segment.

        On a full disk the new segment is started by the first append that finds room,
        so ingest can start (and refuse batches with ``DiskFull``) until space is back.

        Returns:
            Every complete frame found, oldest first (the records not yet compacted).
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        frames: list[WalFrame] = []
        existing = segment_numbers(self.directory)
        for seq in existing:
            path = _segment_path(self.directory, seq)
            found, good, size = _scan_file(path, payloads=True)
            if good < size:
                # A frame cut short by a crash: everything before it is intact.
                log.warning("wal %s: dropping %d bytes of torn tail", path.name, size - good)
                with open(path, "r+b") as f:
                    f.truncate(max(good, 0))
                    os.fsync(f.fileno())
            frames.extend(WalFrame(seq, count, payload) for count, payload in found)
        with self._lock:
            self._open = True
            self._seq = (existing[-1] + 1) if existing else 1
            self._try_start_segment()
        if self.fsync != "always":
            self._thread = threading.Thread(target=self._sync_loop, name="wal-fsync", daemon=True)
            self._thread.start()
        return frames

    def append(self, payload: bytes, records: int) -> None:
        """Writes one frame; returns once it is durable per the fsync policy.

        A write the disk refuses, even half-way, is cut back to the last whole frame
        (and synced), so a later frame never lands behind a torn one.

        Raises:
            StoreClosed: The log is not open.
            DiskFull: The disk has no room for the frame; nothing of it is in the log.
            OSError: Any other failed write (nothing of the frame is left either).
        """
        header = _FRAME.pack(_FRAME_MAGIC, len(payload), records, 0)
        crc = zlib.crc32(payload, zlib.crc32(header[4:12]))
        frame = _FRAME.pack(_FRAME_MAGIC, len(payload), records, crc) + payload
        with self._lock:
            if not self._open:
                raise StoreClosed("the write-ahead log is closed")
            try:
                if self._torn:
                    self._rotate_locked()  # its tail could not be cut back: leave it behind
                if self._fd < 0:
                    self._start_segment(self._seq)
            except OSError as exc:
                raise self._refusal(exc) from exc
            start = self._size
            try:
                _write_all(self._fd, frame)
                if self.fsync == "always":
                    os.fdatasync(self._fd)
            except OSError as exc:
                self._cut_back(start)
                raise self._refusal(exc) from exc
            self._size += len(frame)
            self._dirty = self.fsync != "always"
            if self._size >= self._segment_bytes:
                try:
                    self._rotate_locked()
                except OSError:
                    # The frame is whole in this segment; the next append rotates again.
                    log.exception("wal: rotating to a new segment failed; the next append tries again")

    def rotate(self) -> int:
        """Syncs and closes the current segment and starts the next one.

        Returns:
            The new segment's sequence number: every frame appended before this call
            lives in a segment numbered lower, for ``drop_before``.
        """
        with self._lock:
            if not self._open:
                raise StoreClosed("the write-ahead log is closed")
            if self._fd >= 0:
                self._rotate_locked()
            return self._seq

    def drop_before(self, seq: int) -> None:
        """Deletes every segment numbered lower than ``seq`` (checkpointed records)."""
        dropped = False
        for old in segment_numbers(self.directory):
            if old < seq and old != self._seq:
                _segment_path(self.directory, old).unlink(missing_ok=True)
                dropped = True
        if dropped:
            fsync_dir(self.directory)

    def sync(self) -> None:
        """Flushes the current segment to stable storage now.

        The flush runs on a duplicate of the descriptor outside the lock, so appends (and
        their acknowledgements) never wait for the disk; a rotation meanwhile closes only
        the original, and syncs the segment itself.
        """
        with self._lock:
            if self._fd < 0 or not self._dirty:
                return
            fd = os.dup(self._fd)
            self._dirty = False
        try:
            os.fdatasync(fd)
        except OSError:
            with self._lock:
                self._dirty = True  # try again on the next round
            raise
        finally:
            os.close(fd)

    def close(self) -> None:
        """Stops the fsync thread, syncs and closes the segment; idempotent."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        with self._lock:
            self._open = False
            if self._fd >= 0:
                fd, self._fd = self._fd, -1
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)

    def _start_segment(self, seq: int) -> None:
        path = _segment_path(self.directory, seq)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        try:
            _write_all(fd, SEGMENT_MAGIC)
            os.fsync(fd)
            fsync_dir(self.directory)  # the new name must survive power loss too
        except BaseException:
            os.close(fd)
            path.unlink(missing_ok=True)
            raise
        self._fd, self._seq, self._size, self._dirty, self._torn = fd, seq, len(SEGMENT_MAGIC), False, False

    def _try_start_segment(self) -> None:
        """Starts segment ``self._seq`` now, or leaves it to the next append on a full disk."""
        try:
            self._start_segment(self._seq)
        except OSError as exc:
            if not is_disk_full(exc):
                raise
            log.warning("%s; the next append starts it", full_message(self.directory, "a new log segment"))

    def _rotate_locked(self) -> None:
        fd, torn = self._fd, self._torn
        self._fd, self._torn, self._seq = -1, False, self._seq + 1
        try:
            os.fdatasync(fd)  # the whole frames before a torn one need it as much
        except OSError:
            if not torn:
                raise
            log.exception("wal: syncing segment %d, left with a torn tail, failed", self._seq - 1)
        finally:
            os.close(fd)
        self._try_start_segment()

    def _cut_back(self, size: int) -> None:
        """Truncates the segment to ``size`` (the end of its last whole frame) and syncs it."""
        try:
            os.ftruncate(self._fd, size)
            os.fdatasync(self._fd)
        except OSError:
            # Left as it is, the torn frame would hide every later frame of the segment.
            log.exception("wal: cannot cut %s back to its last whole frame", self._seq)
            self._torn = True
        else:
            self._size = size

    def _refusal(self, exc: OSError) -> Exception:
        if is_disk_full(exc):
            return DiskFull(str(self.directory), full_message(self.directory, "the write-ahead log"))
        return exc

    def _sync_loop(self) -> None:
        assert isinstance(self.fsync, int)
        while not self._stop.wait(self.fsync / 1000.0):
            try:
                self.sync()
            except OSError:
                log.exception("wal fsync failed")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
