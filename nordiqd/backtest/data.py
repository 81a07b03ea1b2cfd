"""Backtest input: a wide file or a buffer folder, laid on a per-server step grid.

Accepted inputs:

- a **CSV or Parquet file** (``.csv``, ``.parquet``, ``.pq``) in the buffer's wide shape:
  ``timestamp``, ``server_name``, optional ``profile`` and one column per metric. The
  timestamp may be a timestamp column (naive times are taken as UTC), ISO text, or
  numbers of epoch seconds. Without ``server_name`` the file is one server named after
  the file; without ``profile`` every server gets ``default``.
- a **nordiqd buffer folder** (the daemon's ``buffer``), read with ``read_window``.

``Grid`` holds the step means (``frames.aggregate``, the trainer's own bucketing) of
every server right-aligned on its last step: index ``L - 1`` is each server's last
step, earlier indexes step back one model step at a time, and NaN marks gaps and the
padding before a server's first step. Folds are then the same index for every server,
whatever calendar time its data ends at (the NAB series end months apart).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from nordiqd.backtest.errors import BadData
from nordiqd.model.frames import aggregate
from nordiqd.model.params import ModelSpec

TIMESTAMP = pa.timestamp("ms", tz="UTC")
DEFAULT_PROFILE = "default"
_FILE_SUFFIXES = (".csv", ".parquet", ".pq")
_KEYS = ("timestamp", "server_name", "profile")


@dataclass(frozen=True)
class Grid:
    """Step means of every server, right-aligned on each server's last step.

    Attributes:
        values: Array [n_servers, L, n_targets] float64; NaN for gaps and padding.
        servers: Server names, in ``values`` order.
        profiles: Each server's latest profile.
        targets: Metric names along the last axis.
        last_bucket: Array [n_servers] int64, UTC epoch seconds of index ``L - 1``.
        first_index: Array [n_servers] int64, each server's first step with data.
        step_seconds: Model step.
    """

    values: np.ndarray
    servers: list[str]
    profiles: list[str]
    targets: tuple[str, ...]
    last_bucket: np.ndarray
    first_index: np.ndarray
    step_seconds: int

    @property
    def length(self) -> int:
        """L, the steps of the longest server."""
        return int(self.values.shape[1])

    def bucket_at(self, index: int) -> np.ndarray:
        """UTC epoch seconds of grid ``index`` for every server, [n_servers] int64."""
        return self.last_bucket + (index - (self.length - 1)) * self.step_seconds

    def table_before(self, index: int) -> pa.Table:
        """Buffer-shaped rows of every step before ``index`` that has a value.

        One row per server and step (the step mean), so ``frames.aggregate`` gives back
        exactly this grid's values.
        """
        hist = self.values[:, :index]
        keep = np.isfinite(hist).any(axis=-1)  # [n, index]
        srv, idx = np.nonzero(keep)
        stamps = (self.bucket_at(0)[srv] + idx * self.step_seconds) * 1000
        columns: dict[str, pa.Array] = {
            "timestamp": pa.array(stamps, type=pa.int64()).cast(TIMESTAMP),
            "server_name": pa.array(np.asarray(self.servers, dtype=object)[srv], type=pa.string()),
            "profile": pa.array(np.asarray(self.profiles, dtype=object)[srv], type=pa.string()),
        }
        for i, target in enumerate(self.targets):
            col = hist[srv, idx, i]
            columns[target] = pa.array(col, mask=~np.isfinite(col), type=pa.float64())
        return pa.table(columns)


def load_table(path: Path | str, targets: Sequence[str]) -> pa.Table:
    """Read ``path`` as buffer rows with ``timestamp``, ``server_name``, ``profile`` and ``targets``.

    Raises:
        BadData: The path is missing or of an unknown kind, a column is missing or of
            the wrong type, or there are no rows; the message names the column and path.
    """
    path = Path(path)
    if not path.exists():
        raise BadData(f"{path}: no such file or folder")
    if path.is_dir():
        table = _read_buffer(path, targets)
    elif path.suffix.lower() in _FILE_SUFFIXES:
        table = _read_file(path)
    else:
        raise BadData(f"{path}: not a buffer folder and not a {'/'.join(_FILE_SUFFIXES)} file")
    if table.num_rows == 0:
        raise BadData(f"{path}: no rows")
    return _conform(table, path, targets)


def _read_file(path: Path) -> pa.Table:
    try:
        if path.suffix.lower() == ".csv":
            from pyarrow import csv

            return csv.read_csv(path)
        import pyarrow.parquet as pq

        return pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise BadData(f"{path}: cannot read it ({exc})") from None


def _read_buffer(path: Path, targets: Sequence[str]) -> pa.Table:
    from nordiqd.buffer.reader import read_window

    try:
        table = read_window(path, columns=[*_KEYS, *targets])
    except (OSError, pa.ArrowInvalid, ValueError) as exc:
        raise BadData(f"{path}: cannot read it as a nordiqd buffer folder ({exc})") from None
    for target in targets:
        if table.num_rows and table[target].null_count == table.num_rows:
            raise BadData(f"{path}: unknown metric {target!r}: the buffer holds no value of it")
    return table


def _timestamps(column: pa.ChunkedArray, path: Path) -> pa.ChunkedArray:
    kind = column.type
    try:
        if pa.types.is_timestamp(kind):
            if kind.tz is None:  # naive times are UTC
                column = pc.assume_timezone(column, "UTC")
            return column.cast(TIMESTAMP)
        if pa.types.is_integer(kind) or pa.types.is_floating(kind):
            return pc.multiply(column.cast(pa.float64()), 1000.0).cast(pa.int64()).cast(TIMESTAMP)
        if pa.types.is_string(kind) or pa.types.is_large_string(kind):
            import pandas as pd

            parsed = pd.to_datetime(column.to_pandas(), utc=True)
            return pa.chunked_array([pa.array(parsed).cast(TIMESTAMP)])
    except (pa.ArrowInvalid, ValueError, TypeError) as exc:
        raise BadData(f"{path}: column 'timestamp' is not readable as times ({exc})") from None
    raise BadData(f"{path}: column 'timestamp' has type {kind}, not times or epoch seconds")


def _conform(table: pa.Table, path: Path, targets: Sequence[str]) -> pa.Table:
    names = table.column_names
    if "timestamp" not in names:
        raise BadData(f"{path}: no 'timestamp' column (columns: {', '.join(names)})")
    metrics = [c for c in names if c not in _KEYS]
    for target in targets:
        if target not in names:
            raise BadData(
                f"{path}: unknown metric {target!r}: no such column (metric columns: "
                f"{', '.join(metrics) or 'none'})"
            )
    n = table.num_rows
    if "server_name" in names:
        servers = table["server_name"].cast(pa.string())
    else:
        servers = pa.chunked_array([pa.array([path.stem] * n, type=pa.string())])
    if "profile" in names:
        profiles = pc.fill_null(table["profile"].cast(pa.string()), DEFAULT_PROFILE)
    else:
        profiles = pa.chunked_array([pa.array([DEFAULT_PROFILE] * n, type=pa.string())])
    columns = {
        "timestamp": _timestamps(table["timestamp"], path),
        "server_name": servers,
        "profile": profiles,
    }
    for target in targets:
        column = table[target]
        if not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)):
            raise BadData(f"{path}: metric {target!r} has type {column.type}, not numbers")
        columns[target] = column.cast(pa.float64())
    out = pa.table(columns)
    if out["timestamp"].null_count or out["server_name"].null_count:
        out = out.filter(pc.and_(pc.is_valid(out["timestamp"]), pc.is_valid(out["server_name"])))
    return out


def to_grid(table: pa.Table, spec: ModelSpec) -> Grid:
    """Lay buffer rows on the right-aligned step grid (see the module docstring)."""
    targets = list(spec.targets)
    agg = aggregate(table, spec, targets)
    step = spec.step_seconds
    names, codes = np.unique(agg["server_name"].to_numpy(dtype=object).astype(str), return_inverse=True)
    ticks = agg["bucket"].to_numpy(np.int64) // step
    last = np.full(len(names), np.iinfo(np.int64).min)
    np.maximum.at(last, codes, ticks)
    first = np.full(len(names), np.iinfo(np.int64).max)
    np.minimum.at(first, codes, ticks)
    length = int((last - first).max()) + 1
    values = np.full((len(names), length, len(targets)), np.nan)
    values[codes, length - 1 - (last[codes] - ticks)] = agg[targets].to_numpy(np.float64)
    profiles = agg.groupby("server_name", sort=True)["profile"].last()
    return Grid(
        values=values,
        servers=[str(s) for s in names],
        profiles=[str(profiles[s]) for s in names],
        targets=tuple(targets),
        last_bucket=last * step,
        first_index=length - 1 - (last - first),
        step_seconds=step,
    )
