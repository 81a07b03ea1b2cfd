"""Where the buffer's files live, and how a file becomes visible: complete or not at all.

::

    <buffer_dir>/metrics_YYYY-MM-DD.parquet          a closed UTC day, one file
    <buffer_dir>/.parts/YYYY-MM-DD/L<l>-<seq>.parquet  immutable parts of a day that is
                                                     still open (or got late records)
    <buffer_dir>/wal/<seq>.wal                       the write-ahead log (wal.py)

Every Parquet file is sorted by server_name then timestamp and free of duplicates.
Its key-value metadata says which earlier files it replaces (``nordiqd.replaces``,
names of parts in the same day), so a crash between writing a merged file and
deleting its inputs is repaired on the next start and never double counted; parts
also carry the per-server latest timestamp (``nordiqd.server_max``) and the WAL
segment they were checkpointed from (``nordiqd.wal_before``). Files starting with "."
are invisible to DuckDB, Spark and pyarrow datasets reading the folder.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import uuid
from pathlib import Path
from typing import Any, NamedTuple

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from nordiqd.durable import publish

__all__ = [
    "DAY_MS",
    "BufferLayout",
    "Part",
    "day_name",
    "file_info",
    "parquet_options",
]

DAY_MS = 86_400_000
_EPOCH = dt.date(1970, 1, 1)
_FINAL_RE = re.compile(r"^metrics_(\d{4}-\d{2}-\d{2})\.parquet$")
_PART_RE = re.compile(r"^L(\d+)-(\d{12})\.parquet$")
_SAMPLE_ROWS = 32_768


def day_name(day: int) -> str:
    """Returns ``YYYY-MM-DD`` for a day number (days since 1970-01-01, UTC)."""
    return (_EPOCH + dt.timedelta(days=day)).isoformat()


def day_number(name: str) -> int:
    """Returns the day number of a ``YYYY-MM-DD`` string."""
    return (dt.date.fromisoformat(name) - _EPOCH).days


class Part(NamedTuple):
    """One immutable part file of a day; older parts have lower ``seq``."""

    day: int
    level: int
    seq: int
    path: Path


class FileInfo(NamedTuple):
    """What a Parquet file's footer says, read without touching its data."""

    rows: int
    replaces: frozenset[str]
    server_max: dict[str, int]
    wal_before: int


def file_info(path: Path) -> FileInfo:
    """Reads the footer of one buffer file (row count and nordiqd metadata)."""
    meta = pq.read_metadata(path)
    kv = meta.metadata or {}
    return FileInfo(
        meta.num_rows,
        frozenset(json.loads(kv.get(b"nordiqd.replaces", b"[]"))),
        json.loads(kv.get(b"nordiqd.server_max", b"{}")),
        int(kv.get(b"nordiqd.wal_before", b"0")),
    )


def parquet_options(sample: pa.Table, level: int = 3) -> dict[str, Any]:
    """Chooses Parquet writer options for tables shaped like ``sample``.

    Measured on simulated fleet metrics (1.8 MB per 100,000 records, 14 metrics):
    dictionary encoding wins for the many columns with few distinct values (rounded
    percentages, counters, shared timestamps), byte-stream-split for the columns whose
    values are nearly all distinct (uptime, throughput), zstd on top of both.
    """
    head = sample.slice(0, _SAMPLE_ROWS)
    dictionary, split = [], {}
    for field in head.schema:
        if pa.types.is_floating(field.type) and head.num_rows >= 64:
            distinct = pc.count_distinct(head.column(field.name)).as_py()
            if distinct > head.num_rows // 8:
                split[field.name] = "BYTE_STREAM_SPLIT"
                continue
        dictionary.append(field.name)
    return {
        "compression": "zstd",
        "compression_level": level,
        "use_dictionary": dictionary,
        "column_encoding": split or None,
        "write_statistics": True,
    }


def file_metadata(
    replaces: list[str] | None = None,
    server_max: dict[str, int] | None = None,
    wal_before: int = 0,
) -> dict[bytes, bytes]:
    """Returns the nordiqd key-value metadata to store in a file footer."""
    return {
        b"nordiqd.replaces": json.dumps(sorted(replaces or [])).encode(),
        b"nordiqd.server_max": json.dumps(server_max or {}, separators=(",", ":")).encode(),
        b"nordiqd.wal_before": str(wal_before).encode(),
    }


class BufferLayout:
    """Names and lists the files of one buffer directory."""

    def __init__(self, buffer_dir: Path | str) -> None:
        """Remembers the directory; ``ensure`` creates it."""
        self.root = Path(buffer_dir)
        self.parts_root = self.root / ".parts"
        self.wal_dir = self.root / "wal"

    def ensure(self) -> None:
        """Creates the folders and removes temporary files a crash left behind."""
        for folder in (self.root, self.parts_root, self.wal_dir):
            folder.mkdir(parents=True, exist_ok=True)
        for folder in [self.root, *self.parts_root.iterdir()]:
            if folder.is_dir():
                for stale in folder.glob(".tmp-*"):
                    stale.unlink(missing_ok=True)

    def final_path(self, day: int) -> Path:
        """Returns the path of a day's closed file (which may not exist)."""
        return self.root / f"metrics_{day_name(day)}.parquet"

    def part_dir(self, day: int) -> Path:
        """Returns the folder holding a day's parts."""
        return self.parts_root / day_name(day)

    def part_path(self, day: int, level: int, seq: int) -> Path:
        """Returns the path for a new part."""
        return self.part_dir(day) / f"L{level}-{seq:012d}.parquet"

    def final_days(self) -> list[int]:
        """Returns the days with a closed file, oldest first."""
        days = [day_number(m.group(1)) for m in map(_FINAL_RE.match, _listdir(self.root)) if m]
        return sorted(days)

    def part_days(self) -> list[int]:
        """Returns the days with a parts folder, oldest first."""
        days = []
        for name in _listdir(self.parts_root):
            try:
                days.append(day_number(name))
            except ValueError:
                continue
        return sorted(days)

    def days(self) -> list[int]:
        """Returns every day holding data, closed or open, oldest first."""
        return sorted(set(self.final_days()) | set(self.part_days()))

    def parts(self, day: int) -> list[Part]:
        """Returns a day's parts ordered oldest first (by seq)."""
        found = []
        folder = self.part_dir(day)
        for m in map(_PART_RE.match, _listdir(folder)):
            if m:
                level, seq = int(m.group(1)), int(m.group(2))
                found.append(Part(day, level, seq, folder / m.group(0)))
        return sorted(found, key=lambda p: p.seq)

    def write_atomic(self, path: Path, table: pa.Table, metadata: dict[bytes, bytes]) -> None:
        """Writes ``table`` to ``path``: temp name, fsync, rename, fsync the folder."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".tmp-{uuid.uuid4().hex}.parquet"
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
        try:
            pq.write_table(table, tmp, row_group_size=131_072, **parquet_options(table))
            publish(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)


def _listdir(folder: Path) -> list[str]:
    try:
        return os.listdir(folder)
    except FileNotFoundError:
        return []
