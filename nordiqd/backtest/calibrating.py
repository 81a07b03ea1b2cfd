"""Coverage after calibration: each fold's band calibrated on the earlier folds only.

``BandHistory`` keeps, per model, the outer quantiles (p10, p90) and the actual values
of every fold already scored. Before a fold is scored, ``calibrated`` moves that fold's
band per server x target x horizon bucket by ``nordiqd.calibration.shift`` learned from
the same group's earlier folds, as the live predictor calibrates from the ledger's past
residuals; then ``record`` adds the fold. The earliest fold (and any group with fewer
than ``min_points`` earlier points) keeps its band.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from nordiqd import calibration
from nordiqd.backtest.folds import Bucket


class BandHistory:
    """One model's past bands and outcomes, per fold.

    Args:
        buckets: Horizon buckets calibrated separately.
        servers: Servers in the grid.
        interval: The quantile levels of the outer band.
        min_points: Earlier points a group needs before its band moves.
    """

    def __init__(
        self,
        buckets: Sequence[Bucket],
        servers: int,
        interval: tuple[float, float],
        min_points: int = calibration.MIN_POINTS,
    ) -> None:
        self.buckets = tuple(buckets)
        self.servers = servers
        self.interval = interval
        self.min_points = min_points
        self._folds: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []

    def _past(self, servers: np.ndarray, bucket: Bucket) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Earlier lower edges, upper edges and actuals of ``servers`` [n, k, N] in ``bucket``."""
        parts: list[list[np.ndarray]] = [[], [], []]
        for fold_servers, lower, upper, truth in self._folds:
            where = np.full(self.servers, -1)
            where[fold_servers] = np.arange(fold_servers.size)
            rows = where[servers]
            took = rows >= 0
            for store, values in zip(parts, (lower, upper, truth), strict=True):
                part = values[np.maximum(rows, 0), :, bucket.start : bucket.stop]
                store.append(np.where(took[:, None, None], part, np.nan))
        lo, hi, y = (np.concatenate(p, axis=-1) for p in parts)
        return lo, hi, y

    def calibrated(self, servers: np.ndarray, forecast: np.ndarray, median: int) -> np.ndarray:
        """``forecast`` [n, k, H, Q] with its outer band calibrated on the earlier folds."""
        if not self._folds:
            return forecast
        out = forecast.copy()
        for bucket in self.buckets:
            lo, hi, y = self._past(servers, bucket)
            band = calibration.shift(lo, hi, y, interval=self.interval, min_points=self.min_points)
            span = slice(bucket.start, bucket.stop)
            out[:, :, span] = calibration.apply(forecast[:, :, span], band, median)
        return out

    def record(self, servers: np.ndarray, forecast: np.ndarray, truth: np.ndarray) -> None:
        """Add a scored fold: its servers, band [n, k, H] edges and actuals [n, k, H]."""
        self._folds.append((servers, forecast[..., 0], forecast[..., -1], truth))
