"""Trailing live error of every routing candidate, per server x target x lead bucket.

The served issue of each issue point is scored by the ledger (``ledger.py``); beside its
own p50 the ledger scores, on the same points, the p50 of each candidate that could have
served instead (``CANDIDATES``): the last value of the window, seasonal naive (the
ledger's reference), and the statistical challenger when one was fitted. For each
candidate and cell (server, target, lead bucket) the book keeps three numbers:

- ``error``: the sum of |p50 - actual|, each point's weight halved every
  ``half_life_s`` of data time since (so the sums trail the data as it changes);
- ``weight``: the same weights' sum, so ``error / weight`` is the trailing MAE;
- ``points``: points scored, not decayed: what ``[routing] min_points`` counts.

That is all routing needs: at 1,000 servers x 5 targets x 3 buckets x 4 candidates,
three float64 arrays of 60,000 cells, 1.4 MB, however long the history.

The model candidate is the served model's own forecast, whatever its version: the
column is the serving slot's record. A new version takes it over and its errors replace
the old ones' within a few half-lives, so a promotion does not bring back, for
``min_points``, a forecast the record had routed away from (the leap from the present
value at the first step that routing exists to remove). Not thread-safe: ``LiveAccuracy`` serialises.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from nordiqd.accuracy.buckets import BUCKETS

__all__ = ["CANDIDATES", "LAST_VALUE", "MODEL", "SEASONAL_NAIVE", "STATISTICAL", "RoutingBook"]

CANDIDATES: tuple[str, ...] = ("model", "last_value", "seasonal_naive", "statistical")
MODEL, LAST_VALUE, SEASONAL_NAIVE, STATISTICAL = range(len(CANDIDATES))


class RoutingBook:
    """The candidates' trailing errors; see the module docstring.

    Args:
        targets: Target names, in forecast order.
        half_life_s: Data time over which a scored point's weight halves.
    """

    def __init__(self, targets: Sequence[str], half_life_s: float) -> None:
        self.targets = tuple(targets)
        self.half_life_s = float(half_life_s)
        shape = (0, len(self.targets), len(BUCKETS), len(CANDIDATES))
        self.error = np.zeros(shape)
        self.weight = np.zeros(shape)
        self.points = np.zeros(shape, dtype=np.int64)
        self.decayed_to: int | None = None  # data time the weights are relative to

    @property
    def nbytes(self) -> int:
        """Bytes held by the arrays."""
        return self.error.nbytes + self.weight.nbytes + self.points.nbytes

    def add(
        self, at: int, rows: np.ndarray, target: np.ndarray, bucket: np.ndarray, errors: np.ndarray
    ) -> None:
        """Add scored points.

        Args:
            at: Data time of the newest point (weights decay to it).
            rows: Array [n], each point's server id (``ScoreBook.server_ids``).
            target: Array [n], target index.
            bucket: Array [n], lead bucket index.
            errors: Array [n, len(CANDIDATES)], |p50 - actual| of each candidate; NaN where
                a candidate had no forecast for the point.
        """
        if not len(errors):
            return
        self._decay(at)
        self._grow(int(rows.max()) + 1)
        cells = (rows * len(self.targets) + target) * len(BUCKETS) + bucket
        index = (cells[:, None] * len(CANDIDATES) + np.arange(len(CANDIDATES))).ravel()
        have = np.isfinite(errors).ravel()
        size = self.error.size
        shape = self.error.shape
        self.error += np.bincount(index[have], weights=errors.ravel()[have], minlength=size).reshape(shape)
        counted = np.bincount(index[have], minlength=size).reshape(shape)
        self.weight += counted
        self.points += counted

    def choose(self, rows: np.ndarray, min_points: int, absent: np.ndarray | None = None) -> np.ndarray:
        """The candidate each server's target and bucket is served from.

        A candidate may serve where it has ``min_points`` scored points and a forecast
        now; of those, the one with the lowest trailing MAE serves. Where the model itself
        has fewer points, the model serves (nothing is known yet against which to judge it).

        Args:
            rows: Array [S] of server ids; -1 (or an id never scored) for a new server.
            min_points: ``[routing] min_points``.
            absent: Bool array [S, targets, len(CANDIDATES)]: candidates without a
                forecast for that series now (the challenger of a series not fitted yet);
                the best of the others serves there. None: every candidate has one.

        Returns:
            Array [S, targets, buckets] int8 of indexes into ``CANDIDATES``.
        """
        out = np.zeros((len(rows), len(self.targets), len(BUCKETS)), dtype=np.int8)
        known = (rows >= 0) & (rows < self.error.shape[0])
        if not known.any():
            return out
        r = rows[known]
        with np.errstate(invalid="ignore", divide="ignore"):
            mae = self.error[r] / self.weight[r]
        ready = (self.points[r] >= min_points) & np.isfinite(mae)
        if absent is not None:
            ready &= ~absent[known][:, :, None, :]
        mae = np.where(ready, mae, np.inf)
        best = np.argmin(mae, axis=-1)  # ties go to the lower index: the model first
        out[known] = np.where(ready[..., MODEL], best, MODEL)
        return out

    def _decay(self, at: int) -> None:
        if self.decayed_to is None:
            self.decayed_to = at
        elif at > self.decayed_to:
            factor = 0.5 ** ((at - self.decayed_to) / self.half_life_s)
            self.error *= factor
            self.weight *= factor
            self.decayed_to = at

    def _grow(self, rows: int) -> None:
        have = self.error.shape[0]
        if rows <= have:
            return
        pad = ((0, rows - have), (0, 0), (0, 0), (0, 0))
        self.error = np.pad(self.error, pad)
        self.weight = np.pad(self.weight, pad)
        self.points = np.pad(self.points, pad)
