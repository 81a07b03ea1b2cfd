"""A batch of records reduced to what the rolling windows need, before any state is touched.

``bucket_batch`` sorts records by (server, time) with integer keys and reduces them in
whole-array operations: per server its newest timestamp, profile and non-null value of
each metric, and per (server, bucket) run the sum and count of each metric's samples.
It reads no shared state, so ``RollingWindows`` runs it outside its lock and keeps the
locked part to a few scatter operations.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pyarrow as pa

__all__ = ["NEVER", "BucketedBatch", "bucket_batch"]

NEVER = np.iinfo(np.int64).min // 4  # bucket / timestamp of "no data yet"; safe to subtract from


class BucketedBatch(NamedTuple):
    """A batch reduced per server and per (server, bucket) run, before touching state."""

    names: np.ndarray  # object [u]: distinct server names of the batch
    group_code: np.ndarray  # intp [G]: index into names, one group per server
    group_newest: np.ndarray  # int64 [G]: newest timestamp (ms)
    group_profile: np.ndarray  # object [G]: profile of the newest record
    latest: np.ndarray  # float64 [G, m]: newest non-null value per metric
    latest_ts: np.ndarray  # int64 [G, m]: its timestamp (NEVER where none)
    run_group: np.ndarray  # intp [R]
    run_bucket: np.ndarray  # int64 [R]
    run_sums: np.ndarray  # float64 [R, m]
    run_counts: np.ndarray  # int32 [R, m]


def _encode(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values and per-record codes of a string (or dictionary) column."""
    if pa.types.is_dictionary(column.type):
        column = column.cast(pa.string())  # chunks may carry different dictionaries
    encoded = column.combine_chunks().dictionary_encode()
    codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.intp, copy=False)
    return encoded.dictionary.to_numpy(zero_copy_only=False), codes


def bucket_batch(table: pa.Table, metrics: Sequence[str], step_seconds: int) -> BucketedBatch:
    """Sort a non-empty batch by (server, time) and reduce it per server and per bucket.

    Args:
        table: Records with ``timestamp``, ``server_name``, ``profile`` and metric
            columns (a missing metric column counts as nulls).
        metrics: Metrics to reduce, in this order.
        step_seconds: Bucket length.
    """
    n, m = table.num_rows, len(metrics)
    step_ms = step_seconds * 1000
    ts = table.column("timestamp")
    if not pa.types.is_timestamp(ts.type) or ts.type.unit != "ms":
        ts = ts.cast(pa.timestamp("ms", tz="UTC"))
    ts_ms = ts.cast(pa.int64()).to_numpy()
    names, codes = _encode(table.column("server_name"))
    order = np.lexsort((ts_ms, codes))
    codes, ts_ms = codes[order], ts_ms[order]
    values = np.full((n, m), np.nan)
    present = set(table.column_names)
    for j, metric in enumerate(metrics):
        if metric in present:
            values[:, j] = table.column(metric).to_numpy()[order]
    finite = ~np.isnan(values)
    bucket = ts_ms // step_ms

    first = np.empty(n, dtype=bool)
    first[0], first[1:] = True, codes[1:] != codes[:-1]
    starts = np.flatnonzero(first)
    ends = np.append(starts[1:], n) - 1
    profiles = table.column("profile").take(pa.array(order[ends])).to_numpy(zero_copy_only=False)

    if finite.all():  # the usual batch: every record carries every metric
        latest, latest_ts = values[ends], np.repeat(ts_ms[ends][:, None], m, axis=1)
    else:
        # Newest non-null sample per server and metric: the last finite row so far,
        # taken at each server's last record, counts if it lies within that server's rows.
        row = np.where(finite.T, np.arange(n), -1)  # [m, n]: accumulates along contiguous rows
        last = np.maximum.accumulate(row, axis=1)[:, ends].T
        has = last >= starts[:, None]
        last = np.where(has, last, 0)
        latest = np.where(has, values[last, np.arange(m)], np.nan)
        latest_ts = np.where(has, ts_ms[last], NEVER)

    # Records are ordered by (server, time), so each (server, bucket) is one run.
    brk = first.copy()
    brk[1:] |= bucket[1:] != bucket[:-1]
    runs = np.flatnonzero(brk)
    run_of = np.cumsum(brk) - 1
    flat = (run_of[:, None] * m + np.arange(m)).ravel()
    size = len(runs) * m
    sums = np.bincount(flat, weights=np.where(finite, values, 0.0).ravel(), minlength=size)
    counts = np.bincount(flat, weights=finite.ravel(), minlength=size).astype(np.int32)
    return BucketedBatch(
        names=names,
        group_code=codes[starts],
        group_newest=ts_ms[ends],
        group_profile=profiles,
        latest=latest,
        latest_ts=latest_ts,
        run_group=(np.cumsum(first) - 1)[runs],
        run_bucket=bucket[runs],
        run_sums=sums.reshape(-1, m),
        run_counts=counts.reshape(-1, m),
    )
