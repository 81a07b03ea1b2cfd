"""Per-server rolling windows of metric bucket means, as numpy ring buffers.

Samples arrive at any rate (typically every few seconds) and are averaged into buckets
of ``step_seconds`` aligned to epoch multiples of the step. Each server keeps its last
``length`` buckets in one row of fleet-wide arrays ``sums`` and ``counts`` of shape
[capacity, length, n_metrics]; bucket ``b`` (epoch seconds // step) lives in slot
``b % length``. A record in a bucket newer than the server's newest (its *head*)
advances the ring, emptying the buckets it skipped (a gap reads as NaN); a record
older than the ring is ignored; any other record lands in its bucket, in whatever
order it arrives. Rows are added as servers appear and the arrays double when full.
Memory: 12 bytes x length x n_metrics per server (48 KB for 288 steps of 14 metrics).

Every ``snapshot`` ends at one common fleet bucket: the bucket holding ``now`` (the
current, still filling bucket), or without ``now`` the newest bucket any server has.
A common end keeps the forecast grid the same for the whole fleet and puts the
seasonal lag on real time: a server that went silent shows trailing NaNs (which the
forecasters carry forward) instead of silently forecasting from hours ago. Buckets
after the end (clock skew) are left out until the clock reaches them.

Threading: one writer (``add``/``refill``) and any number of readers. A single lock
guards the arrays; the writer converts Arrow to numpy outside it, readers copy under
it and compute means outside it.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pyarrow as pa

from nordiqd.predict.bucketing import NEVER, BucketedBatch, bucket_batch

__all__ = ["RollingWindows", "WindowSnapshot"]

_INITIAL_CAPACITY = 64
_REFILL_ROWS = 1 << 18  # records converted at once by refill: bounds its memory


class WindowSnapshot(NamedTuple):
    """A consistent copy of the fleet's windows, one entry per server (row order).

    Attributes:
        names: Server names.
        profiles: Profile of each server (from its newest record).
        windows: Array [n, length, k] of bucket means, oldest first, NaN where a bucket
            has no sample; the last slot is the bucket starting at ``last_bucket_start``.
        last_bucket_start: Array [n] int64, epoch seconds of the last window slot (the
            same for every server; an array because the forecaster takes one per server).
        filled_steps: Array [n] int64, window slots with at least one sample of the
            requested metrics.
        last_seen: Array [n] float64, epoch seconds of the server's newest record.
        current: Array [n, n_metrics] float64, the newest raw sample of every metric in
            ``RollingWindows.metrics`` order (NaN where never seen).
    """

    names: list[str]
    profiles: list[str]
    windows: np.ndarray
    last_bucket_start: np.ndarray
    filled_steps: np.ndarray
    last_seen: np.ndarray
    current: np.ndarray


class RollingWindows:
    """The last ``length`` step buckets of every metric of every server.

    Args:
        metrics: Metric columns to keep, in this order.
        step_seconds: Bucket length.
        length: Buckets per server (the model's encoder_steps).
    """

    # Fleet arrays, one row per server (first ``len(self._names)`` rows in use).
    _sums: np.ndarray  # float64 [capacity, length, m]: sum of samples per bucket
    _counts: np.ndarray  # int32 [capacity, length, m]: samples per bucket
    _head: np.ndarray  # int64 [capacity]: newest bucket (epoch s // step)
    _seen_ms: np.ndarray  # int64 [capacity]: newest record timestamp
    _latest: np.ndarray  # float64 [capacity, m]: newest non-null sample
    _latest_ts: np.ndarray  # int64 [capacity, m]: its timestamp
    _profiles: np.ndarray  # object [capacity]

    def __init__(self, metrics: Sequence[str], step_seconds: int, length: int) -> None:
        if not metrics or step_seconds < 1 or length < 1:
            raise ValueError("need at least one metric, step_seconds >= 1 and length >= 1")
        self.metrics: tuple[str, ...] = tuple(metrics)
        self.step_seconds = int(step_seconds)
        self.length = int(length)
        self._column = {m: i for i, m in enumerate(self.metrics)}
        self._lock = threading.Lock()
        self._index: dict[str, int] = {}
        self._names: list[str] = []
        self._allocate(_INITIAL_CAPACITY)

    def _allocate(self, capacity: int) -> None:
        m, n = len(self.metrics), len(self._names)
        old = getattr(self, "_sums", None)  # None on the first allocation
        sums = np.zeros((capacity, self.length, m))
        counts = np.zeros((capacity, self.length, m), dtype=np.int32)
        head = np.full(capacity, NEVER, dtype=np.int64)
        seen = np.full(capacity, NEVER, dtype=np.int64)
        latest = np.full((capacity, m), np.nan)
        latest_ts = np.full((capacity, m), NEVER, dtype=np.int64)
        profiles = np.full(capacity, "", dtype=object)
        if old is not None:
            sums[:n], counts[:n] = self._sums[:n], self._counts[:n]
            head[:n], seen[:n] = self._head[:n], self._seen_ms[:n]
            latest[:n], latest_ts[:n], profiles[:n] = (
                self._latest[:n],
                self._latest_ts[:n],
                self._profiles[:n],
            )
        self._sums, self._counts, self._head, self._seen_ms = sums, counts, head, seen
        self._latest, self._latest_ts, self._profiles = latest, latest_ts, profiles

    # ----------------------------------------------------------------- writing

    def add(self, table: pa.Table | pa.RecordBatch) -> None:
        """Add a batch of records (``timestamp``, ``server_name``, ``profile``, metrics).

        Metric columns the table lacks count as missing samples; extra columns are
        ignored. Vectorised over the batch; the only Python loop is over servers seen
        for the first time.
        """
        if isinstance(table, pa.RecordBatch):
            table = pa.Table.from_batches([table])
        if table.num_rows == 0:
            return
        prepared = bucket_batch(table, self.metrics, self.step_seconds)
        with self._lock:
            self._apply(prepared)

    def refill(self, table: pa.Table | pa.RecordBatch) -> None:
        """Add a large table (e.g. the buffer's last ``length`` steps at start-up).

        Same result as ``add``; converts ``_REFILL_ROWS`` records at a time so a day of
        a large fleet never exists as one float64 matrix.
        """
        if isinstance(table, pa.RecordBatch):
            table = pa.Table.from_batches([table])
        for offset in range(0, table.num_rows, _REFILL_ROWS):
            self.add(table.slice(offset, _REFILL_ROWS))

    def _rows_for(self, names: np.ndarray) -> np.ndarray:
        index = self._index
        rows = np.fromiter((index.get(name, -1) for name in names), dtype=np.intp, count=len(names))
        missing = np.flatnonzero(rows < 0)
        if missing.size:
            need = len(self._names) + missing.size
            if need > len(self._head):
                self._allocate(max(need, 2 * len(self._head)))
            for i in missing:
                name = str(names[i])
                rows[i] = index[name] = len(self._names)
                self._names.append(name)
        return rows

    def _apply(self, p: BucketedBatch) -> None:
        srv = self._rows_for(p.names)[p.group_code]
        newer = p.group_newest >= self._seen_ms[srv]
        self._profiles[srv[newer]] = p.group_profile[newer]
        self._seen_ms[srv] = np.maximum(self._seen_ms[srv], p.group_newest)

        take = p.latest_ts >= self._latest_ts[srv]  # ties: the later batch wins
        g, j = np.nonzero(take & (p.latest_ts != NEVER))
        self._latest[srv[g], j] = p.latest[g, j]
        self._latest_ts[srv[g], j] = p.latest_ts[g, j]

        old_head = self._head[srv]
        new_head = np.maximum(old_head, p.group_newest // (self.step_seconds * 1000))
        self._clear(srv, old_head, new_head)
        self._head[srv] = new_head

        keep = p.run_bucket > new_head[p.run_group] - self.length  # inside the ring
        rows, slots = srv[p.run_group[keep]], p.run_bucket[keep] % self.length
        self._sums[rows, slots] += p.run_sums[keep]
        self._counts[rows, slots] += p.run_counts[keep]

    def _clear(self, srv: np.ndarray, old: np.ndarray, new: np.ndarray) -> None:
        """Empty the slots of buckets (old, new] of each server that advances."""
        delta = new - old
        full = delta >= self.length  # also every server's first bucket (old is NEVER)
        if full.any():
            self._sums[srv[full]] = 0.0
            self._counts[srv[full]] = 0
        part = (delta > 0) & ~full
        if part.any():
            k = delta[part]
            offsets = np.arange(k.sum()) - np.repeat(np.cumsum(k) - k, k)
            slots = (np.repeat(old[part] + 1, k) + offsets) % self.length
            rows = np.repeat(srv[part], k)
            self._sums[rows, slots] = 0.0
            self._counts[rows, slots] = 0

    # ----------------------------------------------------------------- reading

    def _columns(self, metrics: Sequence[str] | None) -> np.ndarray:
        if metrics is None:
            return np.arange(len(self.metrics))
        try:
            return np.array([self._column[m] for m in metrics], dtype=np.intp)
        except KeyError as exc:
            raise KeyError(f"metric {exc.args[0]!r} is not kept in the windows") from None

    def snapshot(self, metrics: Sequence[str] | None = None, now: float | None = None) -> WindowSnapshot:
        """Copy every server's window of ``metrics`` (None: all) ending at a common bucket.

        Args:
            metrics: Metrics for ``windows``, in this order (e.g. the model targets).
            now: Epoch seconds; the window ends with the bucket holding ``now``. None:
                it ends with the newest bucket of any server.

        Returns:
            The snapshot; servers in the order they first appeared.
        """
        cols = self._columns(metrics)
        length = self.length
        with self._lock:
            n = len(self._names)
            names = list(self._names)
            head = self._head[:n].copy()
            if now is not None:
                end = math.floor(now / self.step_seconds)
            else:
                end = int(head.max()) if n else 0
            sums = np.take(self._sums[:n], cols, axis=2)
            counts = np.take(self._counts[:n], cols, axis=2)
            profiles = self._profiles[:n].tolist()
            seen = self._seen_ms[:n].copy()
            current = self._latest[:n].copy()
        buckets = end - length + 1 + np.arange(length)
        slots = buckets % length
        sums, counts = np.take(sums, slots, axis=1), np.take(counts, slots, axis=1)
        # A slot holds this window's bucket only if that bucket is inside the server's ring.
        inside = (buckets[None, :] <= head[:, None]) & (buckets[None, :] > head[:, None] - length)
        counts[~inside] = 0
        filled = counts > 0
        windows = np.full(sums.shape, np.nan)
        np.divide(sums, counts, out=windows, where=filled)
        return WindowSnapshot(
            names=names,
            profiles=profiles,
            windows=windows,
            last_bucket_start=np.full(n, end * self.step_seconds, dtype=np.int64),
            filled_steps=filled.any(axis=2).sum(axis=1),
            last_seen=np.where(seen == NEVER, np.nan, seen / 1000.0),
            current=current,
        )

    def history(self, name: str, metrics: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """One server's ring in time order, for charts.

        Returns:
            ``(bucket_starts [k] int64 epoch s, means [k, n_metrics])`` from the oldest
            bucket with data to the server's newest, NaN where a bucket is empty.

        Raises:
            KeyError: Unknown server.
        """
        cols = self._columns(metrics)
        with self._lock:
            row = self._index[name]
            head = int(self._head[row])
            buckets = head - self.length + 1 + np.arange(self.length)
            slots = buckets % self.length
            sums = self._sums[row][slots][:, cols]
            counts = self._counts[row][slots][:, cols]
        with np.errstate(invalid="ignore", divide="ignore"):
            means = np.where(counts > 0, sums / counts, np.nan)
        filled = np.flatnonzero(counts.any(axis=1))
        lo = filled[0] if filled.size else self.length
        return buckets[lo:] * self.step_seconds, means[lo:]

    def current(self, name: str) -> dict[str, float | None]:
        """Newest raw sample of each metric of one server (None where never seen).

        Raises:
            KeyError: Unknown server.
        """
        with self._lock:
            values = self._latest[self._index[name]].tolist()
        return {m: (None if math.isnan(v) else v) for m, v in zip(self.metrics, values, strict=True)}

    def profile(self, name: str) -> str:
        """Profile of one server's newest record. Raises KeyError for an unknown server."""
        with self._lock:
            return str(self._profiles[self._index[name]])

    def last_seen(self, name: str) -> float:
        """Epoch seconds of one server's newest record. Raises KeyError for an unknown server."""
        with self._lock:
            return float(self._seen_ms[self._index[name]]) / 1000.0

    def names(self) -> list[str]:
        """Servers in row order."""
        with self._lock:
            return list(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, name: object) -> bool:
        return name in self._index
