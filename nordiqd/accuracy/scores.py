"""Running sums of scored points, so any window of data time can be answered.

Two tables of ``points.SUMS`` columns, both keyed by the data time of the *actual*
(the start of the step that was scored), not by when the forecast was made:

- **fleet**: ``(version, kind, hour)`` -> array [targets, lead buckets, NSUMS], with the
  first and last step scored in that hour (``spans``), for the ``from``/``to`` of a report.
- **per server**: ``(version, kind, day)`` -> array [servers, targets, NSUMS], rows in
  ``servers`` order. A day, not an hour, and no lead buckets: at 1,000 servers x 5 targets
  an hourly table would hold 1,440 x 280 KB per version over 60 days of retention, a
  daily one 17 MB; a per-server query is answered to whole days.

The book also keeps every (version, kind) in the order it was first served, since a
report lists versions in serving order. ``trim`` drops what is older than retention.
Not thread-safe: the owner (``LiveAccuracy``) serialises access.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from nordiqd.accuracy.buckets import BUCKETS
from nordiqd.accuracy.points import NAIVE_ABS_ERROR, NSUMS, POINTS

__all__ = ["DAY_S", "HOUR_S", "CellKey", "Kind", "ScoreBook"]

HOUR_S = 3600
DAY_S = 86400

Kind = Literal["tft", "baseline", "shadow"]  # shadow: a predecessor on probation (serving.probation)
CellKey = tuple[str, Kind, int]  # (version, kind, start of the hour or day, epoch seconds)


class ScoreBook:
    """The running sums; see the module docstring.

    Args:
        targets: Target names, in forecast order (the second axis of every cell).
    """

    def __init__(self, targets: Sequence[str]) -> None:
        self.targets = tuple(targets)
        self.fleet: dict[CellKey, np.ndarray] = {}
        self.spans: dict[CellKey, np.ndarray] = {}  # int64 [2]: first, last step start scored
        self.per_server: dict[CellKey, np.ndarray] = {}
        self.servers: list[str] = []
        self._server_ids: dict[str, int] = {}
        self.served: dict[tuple[str, Kind], int] = {}  # first issue time, in first-served order

    def serve(self, version: str, kind: Kind, at: int) -> None:
        """Note that ``version`` served a forecast issued at ``at`` (first time wins)."""
        self.served.setdefault((version, kind), at)

    def server_ids(self, names: Sequence[str]) -> np.ndarray:
        """Each server's row in the per-server cells, adding new servers at the end."""
        ids = self._server_ids
        for name in names:
            if name not in ids:
                ids[name] = len(self.servers)
                self.servers.append(name)
        return np.fromiter((ids[n] for n in names), dtype=np.int64, count=len(names))

    def known_ids(self, names: Sequence[str]) -> np.ndarray:
        """Each server's row in the per-server cells; -1 for a server never scored."""
        ids = self._server_ids
        return np.fromiter((ids.get(n, -1) for n in names), dtype=np.int64, count=len(names))

    def set_servers(self, names: Sequence[str]) -> None:
        """Replace the server list (when loading saved cells)."""
        self.servers = list(names)
        self._server_ids = {n: i for i, n in enumerate(self.servers)}

    def add(
        self,
        version: str,
        kind: Kind,
        step_start: np.ndarray,
        target: np.ndarray,
        bucket: np.ndarray,
        server: np.ndarray,
        sums: np.ndarray,
    ) -> None:
        """Add scored points of one version.

        Args:
            version: Model version (``baseline`` for the baseline).
            kind: ``tft`` or ``baseline``.
            step_start: Array [n] int64, start of each point's step (data time).
            target: Array [n], target index.
            bucket: Array [n], lead bucket index.
            server: Array [n], server id (``server_ids``).
            sums: Array [n, NSUMS] float64 (``points.point_sums``).
        """
        if not len(sums):
            return
        n_targets, n_buckets = len(self.targets), len(BUCKETS)
        hours = step_start - step_start % HOUR_S
        for hour in np.unique(hours):
            sel = hours == hour
            key: CellKey = (version, kind, int(hour))
            cell = self.fleet.get(key)
            if cell is None:
                cell = self.fleet[key] = np.zeros((n_targets, n_buckets, NSUMS))
            _add_rows(cell, target[sel] * n_buckets + bucket[sel], sums[sel])
            first, last = int(step_start[sel].min()), int(step_start[sel].max())
            span = self.spans.get(key)
            if span is None:
                self.spans[key] = np.array([first, last], dtype=np.int64)
            else:
                span[0], span[1] = min(int(span[0]), first), max(int(span[1]), last)
        days = step_start - step_start % DAY_S
        rows = len(self.servers)
        for day in np.unique(days):
            sel = days == day
            key = (version, kind, int(day))
            cell = self.per_server.get(key)
            if cell is None:
                cell = np.zeros((rows, n_targets, NSUMS))
            elif cell.shape[0] < rows:
                cell = np.concatenate([cell, np.zeros((rows - cell.shape[0], n_targets, NSUMS))])
            _add_rows(cell, server[sel] * n_targets + target[sel], sums[sel])
            self.per_server[key] = cell

    def scales(self, ids: np.ndarray) -> np.ndarray:
        """Each server's mean absolute 1-day difference per target, as scored so far.

        The seasonal-naive error of a point *is* the series' 1-day difference there, so
        the per-server sums (every version, every day held) give the MASE scale of each
        series from its own history, without a second day of window.

        Args:
            ids: Array [S] of server ids (``server_ids``).

        Returns:
            Array [S, targets] float32, NaN where a series has no scored point yet.
        """
        total = np.zeros((len(self.servers), len(self.targets), NSUMS))
        for cell in self.per_server.values():
            total[: cell.shape[0]] += cell
        mine = total[ids]
        with np.errstate(invalid="ignore", divide="ignore"):
            return (mine[..., NAIVE_ABS_ERROR] / mine[..., POINTS]).astype(np.float32)

    def trim(self, before: int) -> None:
        """Drop the hours and days that end at or before ``before`` (data time)."""
        for key in [k for k in self.fleet if k[2] + HOUR_S <= before]:
            del self.fleet[key], self.spans[key]
        for key in [k for k in self.per_server if k[2] + DAY_S <= before]:
            del self.per_server[key]
        live = {(v, k) for v, k, _ in self.fleet}
        for vk in [vk for vk, at in self.served.items() if at < before and vk not in live]:
            del self.served[vk]

    def fleet_sums(
        self, since: int | None, until: int | None
    ) -> dict[tuple[str, Kind], tuple[np.ndarray, int, int]]:
        """Per (version, kind): the summed [targets, buckets, NSUMS] cells and their span.

        An hour counts when it starts in ``[since, until)`` (None: unbounded), so a
        window is answered to whole hours.
        """
        out: dict[tuple[str, Kind], tuple[np.ndarray, int, int]] = {}
        for key, cell in self.fleet.items():
            version, kind, hour = key
            if (since is not None and hour < since) or (until is not None and hour >= until):
                continue
            span = self.spans[key]
            prev = out.get((version, kind))
            if prev is None:
                out[(version, kind)] = (cell.copy(), int(span[0]), int(span[1]))
            else:
                total, first, last = prev
                total += cell
                out[(version, kind)] = (total, min(first, int(span[0])), max(last, int(span[1])))
        return out

    def server_sums(self, since: int | None, until: int | None) -> dict[tuple[str, Kind], np.ndarray]:
        """Per (version, kind): the summed [servers, targets, NSUMS] cells of the days in range.

        A day counts when it overlaps ``[since, until)``.
        """
        out: dict[tuple[str, Kind], np.ndarray] = {}
        rows, n_targets = len(self.servers), len(self.targets)
        for (version, kind, day), cell in self.per_server.items():
            if (since is not None and day + DAY_S <= since) or (until is not None and day >= until):
                continue
            acc = out.setdefault((version, kind), np.zeros((rows, n_targets, NSUMS)))
            acc[: cell.shape[0]] += cell
        return out


def _add_rows(cell: np.ndarray, flat: np.ndarray, sums: np.ndarray) -> None:
    """Add row ``i`` of ``sums`` [n, NSUMS] to ``cell`` at flat index ``flat[i]`` of its leading axes.

    One ``bincount`` over (index, column) pairs: several times faster than ``np.add.at``.
    """
    index = (flat[:, None] * NSUMS + np.arange(NSUMS)).ravel()
    cell += np.bincount(index, weights=sums.ravel(), minlength=cell.size).reshape(cell.shape)
