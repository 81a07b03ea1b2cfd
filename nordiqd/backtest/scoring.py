"""Scale-free scores of quantile forecasts: MASE, scaled quantile loss, coverage.

Every error is divided by the **seasonal-naive scale** of its series at that fold: the
mean absolute 1-day difference of the whole history before the origin (Hyndman's MASE
for seasonal data). A score of 1 means "as bad, per step, as yesterday's value was as a
forecast in the past". Series whose history is shorter than a day and one step, or flat
(scale 0), have no scale and are not scored.

- **MASE** of a bucket: per window (server x fold) and target, the mean absolute error
  of the median over the bucket's steps divided by the scale; then the mean over
  windows. Steps without an actual value are skipped.
- **P50 / P90 loss**: the mean pinball loss of the 0.5 / 0.9 quantile over the bucket's
  steps, divided by the same scale (so the P50 loss is half the median's scaled error).
- **Coverage**: the share of actual values inside the outermost quantiles (p10-p90 by
  default; 80 % is ideal); ``coverage_calibrated`` the same for the band after conformal
  calibration on the earlier folds (``calibrating``), where the engine calibrated.

A model is scored where it has a forecast; ``windows`` says on how many.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from nordiqd.backtest.folds import Bucket
from nordiqd.model.baseline import naive_scale
from nordiqd.model.params import ModelSpec

# Scales at or below this are flat series (naive_scale floors zero to 1e-6).
_FLAT = 1e-6
ALL = "all"  # the key of the whole horizon, and of all targets pooled


def seasonal_scale(history: np.ndarray, season: int) -> np.ndarray:
    """Mean absolute ``season``-step difference of each series' history, [n, k].

    Args:
        history: Array [n, T, k], NaN for gaps.
        season: The lag (a day of steps).

    Returns:
        The scale; NaN where there is no pair ``season`` apart or the series is flat.
    """
    series = np.moveaxis(np.asarray(history, dtype=np.float64), 1, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN series: NaN is the answer
        scale = naive_scale(series, season)
    return np.where(scale > _FLAT, scale, np.nan)


def pinball(actual: np.ndarray, forecast: np.ndarray, q: float) -> np.ndarray:
    """Pointwise pinball loss of quantile ``q`` (NaN propagates)."""
    err = actual - forecast
    return np.maximum(q * err, (q - 1.0) * err)


class FoldErrors:
    """Scaled pointwise errors of one model, fold after fold.

    Args:
        spec: The spec whose quantiles the forecasts carry.
    """

    def __init__(self, spec: ModelSpec) -> None:
        self.quantiles = tuple(spec.quantiles)
        self.median = spec.median_index
        self._abs: list[np.ndarray] = []
        self._loss: dict[float, list[np.ndarray]] = {q: [] for q in (0.5, 0.9) if q in self.quantiles}
        self._inside: list[np.ndarray] = []
        self._inside_cal: list[np.ndarray] = []

    @property
    def interval(self) -> tuple[float, float]:
        """The quantiles whose interval ``coverage`` refers to."""
        return self.quantiles[0], self.quantiles[-1]

    def add(
        self,
        actual: np.ndarray,
        forecast: np.ndarray,
        scale: np.ndarray,
        calibrated: np.ndarray | None = None,
    ) -> None:
        """Record one fold.

        Args:
            actual: Array [n, k, H] of true values (NaN: no value).
            forecast: Array [n, k, H, Q].
            scale: Array [n, k] from ``seasonal_scale``.
            calibrated: The same forecast with its band calibrated, if there is one.
        """
        ok = np.isfinite(actual) & np.isfinite(forecast).all(axis=-1) & np.isfinite(scale)[..., None]
        s = scale[..., None]
        with np.errstate(invalid="ignore"):
            self._abs.append(np.where(ok, np.abs(actual - forecast[..., self.median]) / s, np.nan))
            for q, store in self._loss.items():
                loss = pinball(actual, forecast[..., self.quantiles.index(q)], q) / s
                store.append(np.where(ok, loss, np.nan))
            self._inside.append(np.where(ok, _inside(actual, forecast), np.nan))
            if calibrated is not None:
                self._inside_cal.append(np.where(ok, _inside(actual, calibrated), np.nan))

    def extend(self, other: FoldErrors) -> None:
        """Record ``other``'s folds after these (the folds of another process's run)."""
        self._abs += other._abs
        for q, store in self._loss.items():
            store += other._loss[q]
        self._inside += other._inside

    def summary(
        self, targets: Sequence[str], buckets: Sequence[Bucket]
    ) -> dict[str, dict[str, dict[str, float]]]:
        """Scores per target (and ``all`` targets pooled) per bucket (and ``all`` steps).

        Returns:
            ``{target: {bucket: {"mase", "p50_loss", "p90_loss", "coverage",
            "coverage_calibrated", "windows"}}}``;
            a score with nothing to average is None, a missing quantile's loss too.
        """
        if not self._abs:
            return {}
        abs_err = np.concatenate(self._abs)  # [W, k, H]
        losses = {q: np.concatenate(v) for q, v in self._loss.items()}
        inside = np.concatenate(self._inside)
        inside_cal = np.concatenate(self._inside_cal) if len(self._inside_cal) == len(self._inside) else None
        horizon = abs_err.shape[-1]
        spans = [(b.name, b.start, b.stop) for b in buckets] + [(ALL, 0, horizon)]
        out: dict[str, dict[str, dict[str, float]]] = {}
        picks: list[tuple[str, slice]] = [(t, slice(i, i + 1)) for i, t in enumerate(targets)]
        if len(targets) > 1:
            picks.append((ALL, slice(None)))
        for target, ts in picks:
            out[target] = {}
            for name, lo, hi in spans:
                part = abs_err[:, ts, lo:hi]
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    per_window = np.nanmean(part, axis=-1)  # [W, k']
                finite = np.isfinite(per_window)
                cell: dict[str, float | None] = {
                    "mase": _mean(per_window[finite]),
                    "p50_loss": _mean(losses[0.5][:, ts, lo:hi]) if 0.5 in losses else None,
                    "p90_loss": _mean(losses[0.9][:, ts, lo:hi]) if 0.9 in losses else None,
                    "coverage": _mean(inside[:, ts, lo:hi]),
                    "coverage_calibrated": None if inside_cal is None else _mean(inside_cal[:, ts, lo:hi]),
                    "windows": int(finite.sum()),
                }
                out[target][name] = cell  # type: ignore[assignment]
        return out


def _inside(actual: np.ndarray, forecast: np.ndarray) -> np.ndarray:
    """1.0 where the actual lies in the outermost quantiles' band, else 0.0."""
    return ((actual >= forecast[..., 0]) & (actual <= forecast[..., -1])).astype(np.float64)


def _mean(values: np.ndarray) -> float | None:
    values = values[np.isfinite(values)]
    return float(values.mean()) if values.size else None
