"""The recent band residuals that calibrate the served p10-p90 band, per series and bucket.

Conformal calibration (``nordiqd.calibration.conformal``, split conformal on the
conformalized-quantile-regression scores) needs each group's recent scores, not sums.
For every server x target x lead bucket this keeps the last ``SIZE`` scores of each
candidate in a ring, written as the served issue's points are scored (``ledger.py``):

- the model (``SCORES`` ``model_lo``, ``model_hi``): ``p10 - actual`` and ``actual -
  p90`` of its own band;
- last value, seasonal naive and the statistical challenger (``last_value``,
  ``seasonal_naive``, ``statistical``): the signed error ``actual - p50``. The ledger
  keeps only their p50, so their calibrated band is built around it: the edges move
  from the p50 by the conformal quantiles of these errors (a zero-width band, calibrated).

An issue covers many steps of one bucket and its errors are alike, so only
``PER_ISSUE`` evenly spaced leads of each bucket are written per issue: a ring of 48
then spans the last dozen issue points (hours) rather than the steps of one. float16
is exact enough for an error (3 significant digits) and halves the memory: at 1,000
servers x 5 targets x 3 buckets, 5 rings of 48 take 7.2 MB. Not thread-safe:
``LiveAccuracy`` serialises.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from nordiqd.accuracy.buckets import BUCKETS
from nordiqd.calibration.conformal import BandShift, shift

__all__ = ["PER_ISSUE", "SCORES", "SIZE", "ResidualRings", "sampled_leads"]

SCORES: tuple[str, ...] = ("model_lo", "model_hi", "last_value", "seasonal_naive", "statistical")
SIZE = 48
PER_ISSUE = 4


def sampled_leads(bucket: np.ndarray) -> np.ndarray:
    """Which lead indexes of a horizon are written: ``PER_ISSUE`` evenly spaced per bucket.

    Args:
        bucket: Array [H], each lead's bucket (``buckets.bucket_of_lead``).

    Returns:
        Bool array [H].
    """
    out = np.zeros(bucket.shape, dtype=bool)
    for b in np.unique(bucket):
        leads = np.flatnonzero(bucket == b)
        out[
            leads[np.unique(np.linspace(0, leads.size - 1, min(PER_ISSUE, leads.size)).round().astype(int))]
        ] = True
    return out


class ResidualRings:
    """The rings; see the module docstring.

    Args:
        targets: Target names, in forecast order.
    """

    def __init__(self, targets: Sequence[str]) -> None:
        self.targets = tuple(targets)
        self.scores = np.full((0, len(self.targets), len(BUCKETS), len(SCORES), SIZE), np.nan, np.float16)
        self.written = np.zeros((0, len(self.targets), len(BUCKETS), len(SCORES)), dtype=np.int64)

    @property
    def nbytes(self) -> int:
        """Bytes held."""
        return self.scores.nbytes + self.written.nbytes

    def add(self, rows: np.ndarray, target: np.ndarray, bucket: np.ndarray, scores: np.ndarray) -> None:
        """Write scores, in order.

        Args:
            rows: Array [n] of server ids; ``target``, ``bucket``: Arrays [n].
            scores: Array [n, len(SCORES)]; NaN where a candidate had no value (not written).
        """
        if not len(rows):
            return
        self._grow(int(rows.max()) + 1)
        n_t, n_b, n_s = len(self.targets), len(BUCKETS), len(SCORES)
        flat = ((rows[:, None] * n_t + target[:, None]) * n_b + bucket[:, None]) * n_s + np.arange(n_s)
        have = np.isfinite(scores)
        flat, values = flat[have], scores[have]
        order = np.argsort(flat, kind="stable")
        flat, values = flat[order], values[order]
        first = np.searchsorted(flat, flat, side="left")
        rank = np.arange(flat.size) - first  # the k-th score of its group in this call
        written = self.written.reshape(-1)
        slot = (written[flat] + rank) % SIZE
        self.scores.reshape(-1, SIZE)[flat, slot] = values
        groups, counts = np.unique(flat, return_counts=True)
        written[groups] += counts

    def shifts(self, rows: np.ndarray) -> BandShift:
        """The conformal shift of every candidate's band edges, per server, target and bucket.

        Args:
            rows: Array [S] of server ids; -1 for a server never scored.

        Returns:
            ``BandShift`` of arrays [S, targets, buckets, 4]: for the model (its band) and
            last value, seasonal naive and statistical (around their p50); ``points`` below
            the conformal minimum means that candidate keeps its own band there.
        """
        known = (rows >= 0) & (rows < self.scores.shape[0])
        scores = np.full((len(rows), *self.scores.shape[1:]), np.nan, np.float64)
        scores[known] = self.scores[rows[known]]
        model = shift(scores[..., 0, :], -scores[..., 1, :], np.zeros_like(scores[..., 0, :]))
        # The others: a zero-width band at the p50, so s_lo = p50 - y = -e and s_hi = y - p50 = e.
        errors = scores[..., 2:, :]
        others = shift(-errors, -errors, np.zeros_like(errors))
        return BandShift(
            lower=np.concatenate([model.lower[..., None], others.lower], axis=-1),
            upper=np.concatenate([model.upper[..., None], others.upper], axis=-1),
            points=np.concatenate([model.points[..., None], others.points], axis=-1),
        )

    def _grow(self, rows: int) -> None:
        have = self.scores.shape[0]
        if rows <= have:
            return
        extra = np.full((rows - have, *self.scores.shape[1:]), np.nan, np.float16)
        self.scores = np.concatenate([self.scores, extra])
        self.written = np.concatenate(
            [self.written, np.zeros((rows - have, *self.written.shape[1:]), np.int64)]
        )
