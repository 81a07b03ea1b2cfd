"""BufferStore: the durable buffer of one ingest process (WAL + daily Parquet files).

Write path. ``append`` writes the batch to the write-ahead log first (that is what
makes an acknowledgement safe) and keeps it in memory as pending. ``maintain`` (called
by the ingest role every second or so) flushes pending records into an immutable
level-0 part of their UTC day once ``flush_records`` are pending or the oldest is
``flush_seconds`` old, then checkpoints the log (deletes the segments those records
came from). Parts of a day are merged in tiers: ``merge_fanout`` parts of one level
become one part of the next, so each record is rewritten about log_fanout(parts per
day) times, never once per flush. ``close_grace_seconds`` after UTC midnight the day's
parts are merged, streaming, into ``metrics_YYYY-MM-DD.parquet``. Records that arrive
for a closed day land in new parts of that day and are merged into its file once no
more have arrived for ``close_grace_seconds``; readers see them meanwhile.

Deduplication (same server_name and timestamp: the first stored wins). Inside what is
flushed together, a sort on integer keys drops repeats. Against what is already on
disk, each open day keeps a high-water mark per server (the latest timestamp stored,
also written into each part's footer so it is rebuilt on start without reading
data): a record newer than its server's mark cannot be a duplicate, which is the
normal case and costs one array comparison. Only older records (retries, replays
after a crash, late arrivals, closed days) are looked up in that day's files, reading
just their servers' row groups and timestamp range. Memory is one integer per server
and open day, whatever the volume.

Concurrency: ``append`` and ``stats`` may run on one thread while ``maintain`` runs on
another; a lock makes the log append and the pending list change together, so a
checkpoint never drops a record that is only in the log. The store owns no thread
itself (the log's fsync thread belongs to ``WriteAheadLog``).
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from .batch import batch_schema, conform, decode_batch, encode_batch, order_and_dedup
from .compaction import close_day, delete_day, merge_tiers, remove_dir, repair_day, seq_of
from .errors import StoreClosed
from .layout import DAY_MS, BufferLayout, day_name, file_info, file_metadata
from .merge import release_memory
from .reader import buffer_stats
from .records import DEFAULT_METRICS
from .wal import FsyncPolicy, WriteAheadLog

__all__ = ["BufferStore"]

log = logging.getLogger(__name__)


class BufferStore:
    """Owns a buffer directory: its write-ahead log and its daily Parquet files."""

    def __init__(
        self,
        buffer_dir: Path | str,
        metrics: Sequence[str] = DEFAULT_METRICS,
        retention_days: int = 60,
        clock: Callable[[], float] = time.time,
        fsync: FsyncPolicy = 1000,
        *,
        flush_records: int = 100_000,
        flush_seconds: float = 60.0,
        close_grace_seconds: float = 300.0,
        merge_fanout: int = 8,
    ) -> None:
        """Configures the store; ``open`` touches the disk.

        Args:
            buffer_dir: The ``buffer`` folder under the data directory.
            metrics: Metric column names, in order (``[schema] metrics``).
            retention_days: Whole UTC days that ended more than this many days before
                ``clock()`` are deleted.
            clock: Returns the current time as epoch seconds (injectable for tests).
            fsync: Write-ahead log policy: ``"always"`` or an interval in ms.
            flush_records: Pending records that make ``maintain`` flush.
            flush_seconds: Age of the oldest pending record that makes it flush.
            close_grace_seconds: How long after UTC midnight a day stays open (and
                how quiet late records must be before a closed day is re-merged).
            merge_fanout: Parts of one level merged into one part of the next.
        """
        if retention_days < 1 or merge_fanout < 2:
            raise ValueError("retention_days must be >= 1 and merge_fanout >= 2")
        self.layout = BufferLayout(buffer_dir)
        self.schema = batch_schema(metrics)
        self.retention_days = retention_days
        self._clock = clock
        self._wal = WriteAheadLog(self.layout.wal_dir, fsync)
        self._flush_records = flush_records
        self._flush_seconds = flush_seconds
        self._grace_ms = close_grace_seconds * 1000.0
        self._fanout = merge_fanout
        self._lock = threading.Lock()  # pending list + log append
        self._compact_lock = threading.Lock()  # one flush/merge/close at a time
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0
        self._flushing_rows = 0
        self._pending_since: float | None = None
        self._marks: dict[int, dict[str, int]] = {}  # open day -> server -> latest ms
        self._late_at: dict[int, float] = {}  # closed day -> when late records came
        self._seq = 1
        self._open = False

    # -- lifecycle -----------------------------------------------------------------

    def open(self) -> int:
        """Repairs what a crash left, rebuilds the marks, replays the log tail.

        Returns:
            The number of records replayed from the log into pending.
        """
        self.layout.ensure()
        self._quarantine_unreadable()
        seq = 0
        for day in self.layout.part_days():
            seq = max(seq, self._repair_day(day))
        for day in self.layout.final_days():
            names = file_info(self.layout.final_path(day)).replaces
            seq = max([seq, *(seq_of(n) for n in names)])
        self._seq = seq + 1
        replayed = 0
        for frame in self._wal.open():
            assert frame.payload is not None
            for batch in decode_batch(frame.payload).to_batches():
                self._pending.append(_as_batch(conform(batch, self.schema)))
                replayed += batch.num_rows
        self._pending_rows = replayed
        self._pending_since = self._clock() if replayed else None
        self._open = True
        if replayed:
            log.info("replayed %d records from the write-ahead log", replayed)
        return replayed

    def _quarantine_unreadable(self) -> None:
        """Moves files whose Parquet footer cannot be read to ``buffer/quarantine/``.

        A damaged file (disk error, a copy cut short by hand) must not stop ingest from
        starting: its records are lost to the daemon but kept for a person to look at.
        """
        files = [self.layout.final_path(day) for day in self.layout.final_days()]
        files += [part.path for day in self.layout.part_days() for part in self.layout.parts(day)]
        for path in files:
            try:
                file_info(path)
            except (OSError, ValueError, pa.ArrowException) as exc:
                target = self.layout.root / "quarantine" / f"{path.name}.{int(time.time())}"
                target.parent.mkdir(exist_ok=True)
                os.replace(path, target)
                log.error("unreadable buffer file %s (%s): moved to %s", path, exc, target)

    def close(self, flush: bool = True) -> None:
        """Flushes pending records (unless ``flush`` is False) and closes the log."""
        if not self._open:
            return
        try:
            if flush:
                self.flush()
        finally:
            self._open = False
            self._wal.close()

    # -- write path ----------------------------------------------------------------

    def append(self, batch: pa.RecordBatch, payload: bytes | None = None) -> None:
        """Logs a validated batch; when this returns, the batch may be acknowledged.

        Args:
            batch: A batch from ``RecordValidator`` (schema ``self.schema``).
            payload: ``encode_batch(batch)`` when the caller already has it (it
                publishes the same bytes), to encode once.

        Raises:
            StoreClosed: The store is not open.
            DiskFull: The disk has no room for the batch; nothing of it was kept.
        """
        if batch.num_rows == 0:
            return
        if not batch.schema.equals(self.schema):
            batch = _as_batch(conform(batch, self.schema))
            payload = None
        payload = payload if payload is not None else encode_batch(batch)
        with self._lock:
            if not self._open:
                raise StoreClosed("the buffer store is closed")
            self._wal.append(payload, batch.num_rows)
            self._pending.append(batch)
            self._pending_rows += batch.num_rows
            if self._pending_since is None:
                self._pending_since = self._clock()

    @property
    def pending_records(self) -> int:
        """Records logged but not yet in Parquet (duplicates not yet removed)."""
        return self._pending_rows + self._flushing_rows

    def flush(self) -> int:
        """Writes every pending record to Parquet parts now and checkpoints the log.

        Returns:
            The number of records written (after deduplication and retention).
        """
        with self._compact_lock:
            return self._flush(self._clock())

    def maintain(self, now: float | None = None) -> dict[str, int]:
        """Does whatever compaction is due; cheap when nothing is.

        Deletes days past retention, flushes pending records when due, merges part
        tiers, closes days past UTC midnight (plus grace) and re-merges closed days
        that got late records. A step that fails (a full disk) raises; the records
        stay pending and in the log, and the next call tries again.

        Returns:
            Counts of what was done: flushed records, merges, closed days, deleted days.
        """
        now = self._clock() if now is None else now
        done = {"flushed": 0, "merged": 0, "closed": 0, "deleted": 0}
        with self._compact_lock:
            now_ms = now * 1000.0
            today = math.floor(now_ms / DAY_MS)
            cutoff = today - self.retention_days
            # Retention first: on a full disk, what it deletes is the room the flush needs.
            for day in self.layout.days():
                if day < cutoff:
                    self._delete_day(day)
                    done["deleted"] += 1
            done["flushed"] = self._flush_if_due(now)
            for day in self.layout.part_days():
                if day < cutoff:
                    continue
                if not self.layout.parts(day):
                    remove_dir(self.layout.part_dir(day))
                    continue
                over = now_ms >= (day + 1) * DAY_MS + self._grace_ms
                quiet = now - self._late_at.get(day, -math.inf) >= self._grace_ms / 1000.0
                if over and quiet:
                    self._close_day(day)
                    done["closed"] += 1
                else:  # flushes between merges: a long merge must not hold ingest's backlog
                    done["merged"] += self._merge_tiers(day, lambda: self._flush_if_due(self._clock()))
        if any(done.values()):
            release_memory()
        return done

    def stats(self) -> dict[str, Any]:
        """Returns the ``data_buffer`` statistics block, pending records included."""
        with self._lock:
            pending = list(self._pending)
            count = self.pending_records
        days: set[int] = set()
        for batch in pending:
            ms = batch.column(0).cast(pa.int64()).to_numpy()
            days.update(np.unique(ms // DAY_MS).tolist())
        return buffer_stats(self.layout.root, pending_records=count, pending_days=sorted(days))

    # -- compaction ----------------------------------------------------------------

    def _flush_if_due(self, now: float) -> int:
        since = self._pending_since
        due = self._pending_rows >= self._flush_records or (
            since is not None and now - since >= self._flush_seconds
        )
        return self._flush(now) if due else 0

    def _flush(self, now: float) -> int:
        with self._lock:
            if not self._pending:
                return 0
            checkpoint = self._wal.rotate()  # first: if it fails, the records stay pending
            batches, self._pending = self._pending, []
            self._flushing_rows, self._pending_rows = self._pending_rows, 0
            self._pending_since = None
        try:
            written = self._write_parts(pa.Table.from_batches(batches, self.schema), now, checkpoint)
            self._wal.drop_before(checkpoint)
        except BaseException:
            # Still in the log too; keep them pending so a later flush retries.
            with self._lock:
                self._pending[:0] = batches
                self._pending_rows += sum(b.num_rows for b in batches)
                self._pending_since = self._pending_since or now
            raise
        finally:
            self._flushing_rows = 0
        return written

    def _write_parts(self, table: pa.Table, now: float, checkpoint: int) -> int:
        table = order_and_dedup(table)
        ms = table.column("timestamp").combine_chunks().cast(pa.int64()).to_numpy()
        days = ms // DAY_MS
        cutoff = math.floor(now * 1000.0 / DAY_MS) - self.retention_days
        written = 0
        unique_days = np.unique(days).tolist()
        for day in unique_days:
            rows = table if len(unique_days) == 1 else table.filter(pa.array(days == day))
            if day < cutoff:
                log.warning("dropping %d records for %s, past retention", rows.num_rows, day_name(day))
                continue
            closed = self.layout.final_path(day).exists()
            rows = self._drop_stored(day, rows, closed)
            if rows.num_rows:
                marks = _latest_per_server(rows)
                path = self.layout.part_path(day, 0, self._next_seq())
                meta = file_metadata(server_max=marks, wal_before=checkpoint)
                self.layout.write_atomic(path, rows, meta)
                if closed:
                    self._late_at[day] = now
                else:
                    day_marks = self._marks.setdefault(day, {})
                    for server, latest in marks.items():
                        day_marks[server] = max(latest, day_marks.get(server, latest))
                written += rows.num_rows
        return written

    def _drop_stored(self, day: int, rows: pa.Table, closed: bool) -> pa.Table:
        """Removes rows whose (server, timestamp) is already in the day's files."""
        marks = self._marks.get(day)
        if not closed and not marks:
            return rows  # nothing stored for this day yet
        ms = rows.column("timestamp").combine_chunks().cast(pa.int64()).to_numpy()
        if closed:
            older = np.ones(len(ms), dtype=bool)
        else:
            assert marks is not None
            encoded = rows.column("server_name").combine_chunks().dictionary_encode()
            latest = np.array([marks.get(s, -1) for s in encoded.dictionary.to_pylist()], dtype=np.int64)
            older = ms <= latest[encoded.indices.to_numpy(zero_copy_only=False)]
        if not older.any():
            return rows
        mask = pa.array(older)
        suspects = rows.filter(mask)
        files = [str(p.path) for p in self.layout.parts(day)]
        if closed:
            files.insert(0, str(self.layout.final_path(day)))
        stamps = suspects.column("timestamp")
        stored = ds.dataset(files, format="parquet").to_table(
            columns=["server_name", "timestamp"],
            filter=(
                pc.field("server_name").isin(pc.unique(suspects.column("server_name")))
                & (pc.field("timestamp") >= pc.min(stamps))
                & (pc.field("timestamp") <= pc.max(stamps))
            ),
        )
        if stored.num_rows == 0:
            return rows
        fresh = suspects.join(stored, keys=["server_name", "timestamp"], join_type="left anti")
        kept = pa.concat_tables(
            [rows.filter(pc.invert(mask)), fresh.select(rows.column_names).cast(rows.schema)]
        )
        return order_and_dedup(kept)

    def _merge_tiers(self, day: int, between: Callable[[], object]) -> int:
        return merge_tiers(self.layout, self.schema, day, self._fanout, between)

    def _close_day(self, day: int) -> None:
        close_day(self.layout, self.schema, day)
        self._marks.pop(day, None)
        self._late_at.pop(day, None)

    def _delete_day(self, day: int) -> None:
        delete_day(self.layout, day)
        self._marks.pop(day, None)
        self._late_at.pop(day, None)
        log.info("deleted %s (retention %d days)", day_name(day), self.retention_days)

    def _repair_day(self, day: int) -> int:
        seq, marks = repair_day(self.layout, day)
        if marks is not None:
            self._marks[day] = marks
        return seq

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq - 1


def _latest_per_server(rows: pa.Table) -> dict[str, int]:
    grouped = rows.group_by("server_name").aggregate([("timestamp", "max")])
    latest = grouped.column("timestamp_max").cast(pa.int64()).to_pylist()
    return dict(zip(grouped.column("server_name").to_pylist(), latest, strict=True))


def _as_batch(table: pa.Table) -> pa.RecordBatch:
    return (
        table.combine_chunks().to_batches()[0]
        if table.num_rows
        else pa.RecordBatch.from_pylist([], table.schema)
    )
