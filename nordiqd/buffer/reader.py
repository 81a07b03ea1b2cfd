"""Reading the buffer back: time windows as Arrow tables, and statistics from footers.

Readers run in any process (trainer, api, a notebook) while ingest writes: every
visible file is complete, and the few races that remain (a merge deleting its inputs
between our listing and our read, a merged file briefly coexisting with its inputs,
log segments not yet checkpointed) are absorbed by re-listing on a missing file and by
deduplicating what was read.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .batch import TIMESTAMP_TYPE, conform, decode_batch, order_and_dedup
from .layout import DAY_MS, BufferLayout, day_name, file_info
from .wal import scan_segments, segment_numbers

__all__ = ["buffer_stats", "parquet_files", "read_window"]

_KEYS = ("timestamp", "server_name")
_DICTIONARY = ["server_name", "profile"]  # read as stored: no string copies
_ATTEMPTS = 5
Instant = dt.datetime | float | int


def read_window(
    buffer_dir: Path | str,
    *,
    days: float | None = None,
    start: Instant | None = None,
    end: Instant | None = None,
    columns: Sequence[str] | None = None,
    servers: Sequence[str] | None = None,
    include_log: bool = True,
    dictionary_names: bool = False,
    clock: Callable[[], float] = time.time,
) -> pa.Table:
    """Reads records of a time window, deduplicated, sorted by server then time.

    Args:
        buffer_dir: The ``buffer`` folder.
        days: The last ``days`` x 24 h up to ``clock()`` (and anything newer);
            exclusive with ``start``/``end``.
        start: Earliest timestamp included (datetime or epoch seconds); None: no bound.
        end: Timestamp bound, excluded; None: no bound.
        columns: Columns to return, in this order; None: every stored column. A
            metric no file holds comes back as nulls.
        servers: Only these servers; None: all.
        include_log: Also read records still in the write-ahead log (not yet in
            Parquet), so the window includes the last seconds.
        dictionary_names: Return server_name and profile dictionary-encoded, as
            stored (smaller and faster for millions of rows; pandas makes them
            categoricals); False casts them to plain strings.
        clock: Returns the current time as epoch seconds (for ``days``).

    Returns:
        A table with the requested columns, sorted by server_name then timestamp.
    """
    if days is not None and (start is not None or end is not None):
        raise ValueError("give either days or start/end, not both")
    start_ms = _ms(start) if days is None else (clock() - days * 86_400.0) * 1000.0
    end_ms = _ms(end)
    layout = BufferLayout(buffer_dir)
    for attempt in range(_ATTEMPTS):
        try:
            table = _read(layout, start_ms, end_ms, columns, servers, include_log)
            break
        except FileNotFoundError:
            if attempt == _ATTEMPTS - 1:
                raise
    for name in _DICTIONARY if not dictionary_names else ():
        if name in table.column_names:
            index = table.column_names.index(name)
            table = table.set_column(index, name, table.column(index).cast(pa.string()))
    return table


def parquet_files(buffer_dir: Path | str, start_ms: float | None, end_ms: float | None) -> list[str]:
    """The Parquet files holding a time window, relative to ``buffer_dir``, oldest day first.

    Day files and the parts no file replaces, as ``read_window`` reads them; records
    still in the write-ahead log are not among them. A reader on another machine
    (``buffer.shards``) reads these names under its own copy of the folder.
    """
    layout = BufferLayout(buffer_dir)
    first_day = -math.inf if start_ms is None else math.floor(start_ms / DAY_MS)
    last_day = math.inf if end_ms is None else math.floor(end_ms / DAY_MS)
    files, _ = _live_files(layout, first_day, last_day)
    return [os.path.relpath(path, layout.root) for _, path in files]


def buffer_stats(
    buffer_dir: Path | str, pending_records: int | None = None, pending_days: Sequence[int] = ()
) -> dict[str, Any]:
    """Returns the buffer's statistics from file footers, without reading data.

    Args:
        buffer_dir: The ``buffer`` folder.
        pending_records: Records not yet compacted, when the caller knows (the ingest
            store does); None: counted from the write-ahead log's frame headers.
        pending_days: Day numbers those pending records belong to, if known.

    Returns:
        ``{"total_records", "file_count" (days holding data: one daily file each),
        "date_range": {"start", "end"} (YYYY-MM-DD or None), "disk_usage_mb"}``.
    """
    layout = BufferLayout(buffer_dir)
    for attempt in range(_ATTEMPTS):
        try:
            return _stats(layout, pending_records, pending_days)
        except FileNotFoundError:
            if attempt == _ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def _ms(value: Instant | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ValueError("datetimes must carry a timezone")
        return value.timestamp() * 1000.0
    return float(value) * 1000.0


class _Compacted(FileNotFoundError):
    """A compaction under a read changed what it should have listed (the read is retried)."""


def _live_files(
    layout: BufferLayout, first_day: float, last_day: float
) -> tuple[list[tuple[int, Path]], int]:
    """Lists (day, file) of day files and unreplaced parts in a range, and the checkpoint."""
    files: list[tuple[int, Path]] = []
    wal_before = 0
    for day in layout.days():
        final = layout.final_path(day)
        parts = layout.parts(day)
        infos = {p.path: file_info(p.path) for p in parts}
        replaced: set[str] = set()
        if final.exists():
            info = file_info(final)
            replaced |= info.replaces
            wal_before = max(wal_before, info.wal_before)
        for info in infos.values():
            replaced |= info.replaces
            wal_before = max(wal_before, info.wal_before)
        if first_day <= day <= last_day:
            files += [(day, final)] if final.exists() else []
            files += [(day, p.path) for p in parts if p.path.name not in replaced]
    return files, wal_before


def _read(
    layout: BufferLayout,
    start_ms: float | None,
    end_ms: float | None,
    columns: Sequence[str] | None,
    servers: Sequence[str] | None,
    include_log: bool,
) -> pa.Table:
    first_day = -math.inf if start_ms is None else math.floor(start_ms / DAY_MS)
    last_day = math.inf if end_ms is None else math.floor(end_ms / DAY_MS)
    segments = segment_numbers(layout.wal_dir) if include_log else []
    files, wal_before = _live_files(layout, first_day, last_day)
    # Newest file first: its column order wins, older files' extra metrics follow.
    schemas = [pq.read_schema(path) for _, path in reversed(files)]
    log_tables = _log_tables(layout, wal_before) if include_log else []
    if include_log:
        # A log segment the listed files do not cover, gone by now, was compacted into a
        # file written after the listing: its records are in neither what was listed nor
        # what was read. Read again (the retry lists the new file).
        left = set(segment_numbers(layout.wal_dir))
        gone = [s for s in segments if s >= wal_before and s not in left]
        if gone:
            raise _Compacted(f"write-ahead log segments {gone} were compacted during the read")
    schemas += [t.schema for t in log_tables]
    if not schemas:
        return _empty(columns)
    schema = pa.unify_schemas([_dictionary_names(s.remove_metadata()) for s in schemas])
    wanted = list(columns) if columns is not None else schema.names
    for name in wanted:
        if name not in schema.names:
            schema = schema.append(pa.field(name, pa.float32()))
    read = list(dict.fromkeys([*_KEYS, *wanted]))
    schema = pa.schema([schema.field(name) for name in read])
    tables = []
    for day, path in files:
        # Days wholly inside the window need no per-row time filter.
        inside = (start_ms is None or day * DAY_MS >= start_ms) and (
            end_ms is None or (day + 1) * DAY_MS <= end_ms
        )
        predicate = _predicate(None if inside else start_ms, None if inside else end_ms, servers)
        tables.append(_read_file(path, schema, predicate))
    predicate = _predicate(start_ms, end_ms, servers)
    for table in log_tables:
        table = conform(table, schema)
        tables.append(table.filter(predicate) if predicate is not None else table)
    table = pa.concat_tables(tables).unify_dictionaries()
    del tables
    return order_and_dedup(table).select(wanted)


def _read_file(path: Path, schema: pa.Schema, predicate: Any) -> pa.Table:
    present = set(pq.read_schema(path).names)
    columns = [name for name in schema.names if name in present]
    if predicate is None:
        table = pq.read_table(path, columns=columns, read_dictionary=_DICTIONARY)
    else:
        table = pq.read_table(path, columns=columns, read_dictionary=_DICTIONARY, filters=predicate)
    return conform(table, schema)


def _log_tables(layout: BufferLayout, wal_before: int) -> list[pa.Table]:
    tables = []
    for frame in scan_segments(layout.wal_dir):
        if frame.segment >= wal_before and frame.payload is not None:
            table = decode_batch(frame.payload)
            for name in _DICTIONARY:
                index = table.column_names.index(name)
                table = table.set_column(index, name, table.column(index).dictionary_encode())
            tables.append(table)
    return tables


def _dictionary_names(schema: pa.Schema) -> pa.Schema:
    for name in _DICTIONARY:
        index = schema.get_field_index(name)
        if index >= 0:
            schema = schema.set(index, pa.field(name, pa.dictionary(pa.int32(), pa.string()), False))
    return schema


def _predicate(start_ms: float | None, end_ms: float | None, servers: Sequence[str] | None) -> Any:
    terms = []
    if start_ms is not None:
        terms.append(pc.field("timestamp") >= pa.scalar(math.ceil(start_ms), TIMESTAMP_TYPE))
    if end_ms is not None:
        terms.append(pc.field("timestamp") < pa.scalar(math.ceil(end_ms), TIMESTAMP_TYPE))
    if servers is not None:
        terms.append(pc.field("server_name").isin(pa.array(list(servers), pa.string())))
    predicate = None
    for term in terms:
        predicate = term if predicate is None else predicate & term
    return predicate


def _empty(columns: Sequence[str] | None) -> pa.Table:
    names = list(columns) if columns is not None else list(_KEYS)
    names_type = pa.dictionary(pa.int32(), pa.string())
    fields = {"timestamp": TIMESTAMP_TYPE, "server_name": names_type, "profile": names_type}
    return pa.schema([pa.field(n, fields.get(n, pa.float32())) for n in names]).empty_table()


def _stats(layout: BufferLayout, pending_records: int | None, pending_days: Sequence[int]) -> dict[str, Any]:
    total = 0
    days = []
    wal_before = 0
    for day in layout.days():
        final = layout.final_path(day)
        infos = {p.path.name: file_info(p.path) for p in layout.parts(day)}
        replaced: set[str] = set()
        rows = 0
        if final.exists():
            info = file_info(final)
            replaced |= info.replaces
            rows += info.rows
            wal_before = max(wal_before, info.wal_before)
        for info in infos.values():
            replaced |= info.replaces
            wal_before = max(wal_before, info.wal_before)
        rows += sum(info.rows for name, info in infos.items() if name not in replaced)
        if rows:
            days.append(day)
        total += rows
    days = sorted(set(days) | set(pending_days))
    if pending_records is None:
        pending_records = sum(
            f.records for f in scan_segments(layout.wal_dir, payloads=False) if f.segment >= wal_before
        )
    size = 0
    for folder, _, names in os.walk(layout.root):
        for name in names:
            try:
                size += os.stat(os.path.join(folder, name)).st_size
            except FileNotFoundError:
                continue
    return {
        "total_records": total + pending_records,
        "file_count": len(days),
        "date_range": {
            "start": day_name(days[0]) if days else None,
            "end": day_name(days[-1]) if days else None,
        },
        "disk_usage_mb": round(size / 1e6, 2),
    }
