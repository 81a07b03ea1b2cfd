"""Split conformal calibration of a forecast band, tail by tail.

From past forecasts of a group (a server x target x lead bucket) and what then
happened, ``shift`` learns how far to move each edge of the band so that it would have
held its nominal share: the conformalized-quantile-regression scores of Romano et al.
(2019), asymmetric, one per tail,

    s_lo = lo - y        (> 0: the actual fell below the band)
    s_hi = y - hi        (> 0: it rose above)

and the edge moves by the finite-sample ``(1 - a)`` quantile of its scores, ``a`` each
tail's nominal miss rate (0.1 for p10 and p90), at level ``ceil((n + 1)(1 - a)) / n``
(capped at 1). A band too wide gets a negative shift and narrows; a biased band moves
one edge out and the other in. With fewer than ``min_points`` scores a group keeps its
band (shift 0): a handful of residuals says too little.

``apply`` moves the edges and keeps the quantiles ordered: an edge never crosses the
median, which calibration does not touch. Calibrating on a recent window (the ledger's
last days, the backtest's earlier folds) lets the shift follow the data as it changes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_POINTS = 20


@dataclass(frozen=True)
class BandShift:
    """How far to move each edge, per group.

    Attributes:
        lower: Array [...]: subtract from the lower edge (positive widens).
        upper: Array [...]: add to the upper edge (positive widens).
        points: Array [...] int: scores each group's shift was learned from.
    """

    lower: np.ndarray
    upper: np.ndarray
    points: np.ndarray


def _tail_quantile(scores: np.ndarray, miss: float, min_points: int) -> tuple[np.ndarray, np.ndarray]:
    """Finite-sample conformal quantile of ``scores`` [..., N] (NaN skipped) per group."""
    ok = np.isfinite(scores)
    n = ok.sum(axis=-1)
    ordered = np.sort(np.where(ok, scores, np.inf), axis=-1)  # NaN sorted last as +inf
    rank = np.minimum(np.ceil((n + 1) * (1.0 - miss)), n).astype(np.int64)  # 1-based
    picked = np.take_along_axis(ordered, np.maximum(rank - 1, 0)[..., None], axis=-1)[..., 0]
    return np.where(n >= min_points, picked, 0.0), n


def shift(
    lower: np.ndarray,
    upper: np.ndarray,
    actual: np.ndarray,
    *,
    interval: tuple[float, float] = (0.1, 0.9),
    min_points: int = MIN_POINTS,
) -> BandShift:
    """Learn each group's band shift from its past forecasts and outcomes.

    Args:
        lower: Array [..., N]: past lower edges (the ``interval[0]`` quantile).
        upper: Array [..., N]: the matching upper edges.
        actual: Array [..., N]: what happened; NaN where nothing was observed (skipped,
            as are points whose edges are NaN).
        interval: The quantile levels of the two edges; each tail's nominal miss rate
            is ``interval[0]`` and ``1 - interval[1]``.
        min_points: Scores a group needs before its band moves.

    Returns:
        The shifts, shaped like the leading axes ``[...]``.

    Raises:
        ValueError: Shapes differ, or the interval is not ``0 < lo < hi < 1``.
    """
    lower, upper, actual = (np.asarray(a, dtype=np.float64) for a in (lower, upper, actual))
    if not lower.shape == upper.shape == actual.shape or lower.ndim < 1:
        raise ValueError(
            f"lower, upper and actual must have one shape [..., N], got {lower.shape}, {upper.shape}, "
            f"{actual.shape}"
        )
    lo_q, hi_q = interval
    if not 0.0 < lo_q < hi_q < 1.0:
        raise ValueError(f"interval must be two quantile levels 0 < lo < hi < 1, got {interval}")
    with np.errstate(invalid="ignore"):
        d_lo, n_lo = _tail_quantile(lower - actual, lo_q, min_points)
        d_hi, n_hi = _tail_quantile(actual - upper, 1.0 - hi_q, min_points)
    return BandShift(lower=d_lo, upper=d_hi, points=np.minimum(n_lo, n_hi))


def apply(quantiles: np.ndarray, band: BandShift, median_index: int) -> np.ndarray:
    """Move the outermost quantiles of ``quantiles`` [..., H, Q] by ``band`` (shaped [...]).

    The first quantile moves down by ``band.lower``, the last up by ``band.upper``, each
    clamped at the median so the quantiles stay ordered; inner quantiles are kept.
    Returns a new array.
    """
    out = np.array(quantiles, dtype=np.float64, copy=True)
    median = out[..., median_index]
    lo = out[..., 0] - np.asarray(band.lower)[..., None]
    hi = out[..., -1] + np.asarray(band.upper)[..., None]
    out[..., 0] = np.minimum(lo, median)
    out[..., -1] = np.maximum(hi, median)
    return out
