"""A block of simulated records in columnar form, and its conversions.

Rows are ordered by time, then by server in fleet order: every server's sample
for one timestamp before the next timestamp, the order an agent fleet sends.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from nordiqd.simulate.metric_model import METRICS


class Batch:
    """Simulated records as columns.

    Attributes:
        timestamps: epoch seconds per row, float64.
        server_index: row -> index into ``names``, int32.
        names: server names of the fleet, in fleet order.
        profiles: profile name of each server in ``names``.
        metrics: metric name -> float64 values per row.
    """

    def __init__(
        self,
        timestamps: NDArray[np.float64],
        server_index: NDArray[np.int32],
        names: tuple[str, ...],
        profiles: tuple[str, ...],
        metrics: dict[str, NDArray[np.float64]],
    ) -> None:
        """Wraps columns of equal length (no copy)."""
        self.timestamps = timestamps
        self.server_index = server_index
        self.names = names
        self.profiles = profiles
        self.metrics = metrics

    def __len__(self) -> int:
        return len(self.timestamps)

    def __getitem__(self, rows: slice) -> Batch:
        """A view of a contiguous range of rows."""
        return Batch(
            self.timestamps[rows],
            self.server_index[rows],
            self.names,
            self.profiles,
            {k: v[rows] for k, v in self.metrics.items()},
        )

    @property
    def server_names(self) -> NDArray[np.str_]:
        """Server name per row."""
        return np.asarray(self.names)[self.server_index]

    @property
    def profile_names(self) -> NDArray[np.str_]:
        """Profile name per row."""
        return np.asarray(self.profiles)[self.server_index]

    def column(self, metric: str, server: str) -> NDArray[np.float64]:
        """One metric of one server over the batch, in time order."""
        return self.metrics[metric][self.server_index == self.names.index(server)]

    def to_arrow(self) -> pa.Table:
        """The batch as a pyarrow Table.

        Columns: ``timestamp`` (``timestamp[ms, tz=UTC]``), ``server_name`` and
        ``profile`` (strings), then the metrics as float64 in ``METRICS`` order.
        """
        millis = np.floor(self.timestamps * 1000.0 + 0.5).astype(np.int64)
        index = pa.array(self.server_index, type=pa.int32())
        names = pa.DictionaryArray.from_arrays(index, pa.array(self.names, pa.string()))
        profiles = pa.DictionaryArray.from_arrays(index, pa.array(self.profiles, pa.string()))
        columns = {
            "timestamp": pa.array(millis, type=pa.timestamp("ms", tz="UTC")),
            "server_name": names.cast(pa.string()),
            "profile": profiles.cast(pa.string()),
        }
        columns.update({m: pa.array(self.metrics[m], type=pa.float64()) for m in METRICS})
        return pa.table(columns)

    def to_records(self, iso_timestamps: bool = False) -> list[dict[str, Any]]:
        """The batch as a list of plain dicts, one per record.

        Args:
            iso_timestamps: timestamps as ISO-8601 strings with ``+00:00``
                instead of epoch seconds (float).

        Returns:
            ``{"timestamp", "server_name", "profile", <metric>: float, ...}`` dicts.
        """
        if iso_timestamps:
            # One string per distinct time: a whole fleet shares each timestamp.
            iso: dict[float, str] = {}
            stamps: list[Any] = [
                iso.get(s) or iso.setdefault(s, datetime.fromtimestamp(s, UTC).isoformat())
                for s in self.timestamps.tolist()
            ]
        else:
            stamps = self.timestamps.tolist()
        names = [self.names[i] for i in self.server_index.tolist()]
        profiles = [self.profiles[i] for i in self.server_index.tolist()]
        keys = ("timestamp", "server_name", "profile", *METRICS)
        columns = [stamps, names, profiles, *(self.metrics[m].tolist() for m in METRICS)]
        return [dict(zip(keys, row, strict=True)) for row in zip(*columns, strict=True)]
