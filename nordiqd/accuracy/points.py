"""What one scored point adds to the running sums.

A point is one (forecast, server, target, step) with an actual. It is **scored** only
where the actual, every quantile of the forecast and the seasonal-naive value are all
finite, so the model's MAE and the naive MAE (and hence ``skill``) are always over the
same points; a point without a naive value (less than a day of history) is not scored at
all. MASE also needs the series' scale; points whose scale is unknown or zero count in
``mase_points`` only when it is there, so MASE is the mean over those points.

The sums, one column each (``SUMS`` order):

- ``points``: points scored.
- ``abs_error``: sum |p50 - actual|.
- ``naive_abs_error``: sum |naive - actual|.
- ``mase_points``: points with a usable scale.
- ``scaled_error``: sum |p50 - actual| / scale over those.
- ``pinball``: sum over quantiles of the pinball loss.
- ``abs_actual``: sum |actual|.
- ``inside``: points with lowest quantile <= actual <= highest quantile.

From them: MAE = abs_error / points; skill = abs_error / naive_abs_error (below 1 beats
seasonal naive); MASE = scaled_error / mase_points; weighted quantile loss, the GluonTS
convention averaged over the Q quantiles, = 2 * pinball / (Q * abs_actual); coverage =
inside / points.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

__all__ = [
    "ABS_ACTUAL",
    "ABS_ERROR",
    "INSIDE",
    "MASE_POINTS",
    "NAIVE_ABS_ERROR",
    "NSUMS",
    "PINBALL",
    "POINTS",
    "SCALED_ERROR",
    "SUMS",
    "PointSums",
    "point_sums",
]

SUMS: tuple[str, ...] = (
    "points",
    "abs_error",
    "naive_abs_error",
    "mase_points",
    "scaled_error",
    "pinball",
    "abs_actual",
    "inside",
)
NSUMS = len(SUMS)
POINTS, ABS_ERROR, NAIVE_ABS_ERROR, MASE_POINTS, SCALED_ERROR, PINBALL, ABS_ACTUAL, INSIDE = range(NSUMS)


class PointSums(NamedTuple):
    """The scored points of a batch and what each adds.

    Attributes:
        scored: Bool array [...], True where the point was scored.
        sums: Array [n_scored, NSUMS] float64, one row per True of ``scored`` (C order).
    """

    scored: np.ndarray
    sums: np.ndarray


def point_sums(
    actual: np.ndarray,
    forecast: np.ndarray,
    naive: np.ndarray,
    scale: np.ndarray,
    quantiles: Sequence[float],
) -> PointSums:
    """Score a batch of points.

    Args:
        actual: Array [...], the step means (NaN: a gap).
        forecast: Array [..., Q], the quantiles forecast for those steps, increasing.
        naive: Array [...], the seasonal-naive values (NaN: unknown).
        scale: Array [...], the series' mean absolute 1-day difference (NaN: unknown).
        quantiles: The Q quantile levels, increasing, containing 0.5.

    Returns:
        The scored mask and each scored point's sums.
    """
    y = np.asarray(actual, dtype=np.float64)
    f = np.asarray(forecast, dtype=np.float64)
    nv = np.asarray(naive, dtype=np.float64)
    sc = np.asarray(scale, dtype=np.float64)
    scored = np.isfinite(y) & np.isfinite(f).all(axis=-1) & np.isfinite(nv)
    y, f, nv, sc = y[scored], f[scored], nv[scored], sc[scored]
    levels = np.asarray(quantiles, dtype=np.float64)
    p50 = f[:, int(np.flatnonzero(np.isclose(levels, 0.5))[0])]
    abs_error = np.abs(p50 - y)
    usable = np.isfinite(sc) & (sc > 0)
    diff = y[:, None] - f
    pinball = np.maximum(levels * diff, (levels - 1.0) * diff).sum(axis=1)
    sums = np.empty((y.size, NSUMS), dtype=np.float64)
    sums[:, POINTS] = 1.0
    sums[:, ABS_ERROR] = abs_error
    sums[:, NAIVE_ABS_ERROR] = np.abs(nv - y)
    sums[:, MASE_POINTS] = usable
    sums[:, SCALED_ERROR] = np.divide(abs_error, sc, out=np.zeros_like(abs_error), where=usable)
    sums[:, PINBALL] = pinball
    sums[:, ABS_ACTUAL] = np.abs(y)
    sums[:, INSIDE] = (f[:, 0] <= y) & (y <= f[:, -1])
    return PointSums(scored, sums)
