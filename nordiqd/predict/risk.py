"""Valid ranges, and risk scores and alert levels from forecasts against thresholds.

How the risk score is computed (vectorised over servers; H forecast steps of Δ seconds):

For every metric with a warning threshold W and/or a critical threshold C (a missing W
is taken as C, a missing C as +inf), two paths over steps k = 0..H are built: the
**median path** m (k = 0 is the current value, k >= 1 the p50 forecast k·Δ after the
window's last bucket) and the **upper path** u (the current value, then the highest
forecast quantile, p90 by default). A metric that has thresholds but is not forecast
has only its current value (k = 0). For a path x and a threshold θ:

- first crossing  K(x, θ) = the smallest k with x_k >= θ (infinite if none);
- urgency         U(K) = 1 - K / (H + 1)  (1 now, 1/(H+1) at the last step, 0 never);
- overshoot       O(θ) = clip((max_k m_k - θ) / D, 0, 1), with the band D = C - W
                  (10 % of the threshold, or 1, where there is no band);
- proximity       P = clip(max_k m_k / W, 0, 1).

The metric's level is **critical** if the median path reaches C (K(m, C) finite),
else **warning** if it reaches W, else **ok**; its score lies in that level's band:

    critical:  70 + 30 · (U(K(m, C)) + O(C)) / 2
    warning:   40 + 30 · (U(K(m, W)) + O(W) + U(K(u, C))) / 3
    ok:        40 · (U(K(u, W)) + P) / 2

A server's ``risk_score`` and ``alert_level`` are those of its highest-scoring metric
(the *driving* metric); it reports that metric, the threshold of its level, and the
minutes until the median path crosses it, K·Δ/60 (0 when the current value is already
over). Scores are monotone: a crossing that comes sooner, a peak that goes further past
the threshold, or a crossing that is more likely (by the median rather than only the
upper quantile, or by the upper quantile as well) never lowers the score, and the bands
keep every critical server above every warning server above every ok one. The level
follows the median only, so a wide upper quantile raises a score without raising an
alert.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["LEVELS", "Assessment", "assess", "clip", "summary", "valid_range"]

LEVELS = ("ok", "warning", "critical")
_OK, _WARNING, _CRITICAL = 0, 1, 2


def valid_range(metric: str) -> tuple[float, float]:
    """The range a metric's values can take: ``*_pct`` in [0, 100], others >= 0."""
    return (0.0, 100.0) if metric.endswith("_pct") else (0.0, np.inf)


def clip(values: np.ndarray, metrics: Sequence[str], axis: int = 1) -> np.ndarray:
    """Clip ``values`` to each metric's valid range; NaN stays NaN.

    Args:
        values: Array with one entry per metric along ``axis`` (the default fits both
            ``QuantileForecasts.values`` [n, targets, H, Q] and current values [n, metrics]).
        metrics: Metric names along ``axis``.
        axis: The metric axis.

    Returns:
        A new array of the same shape and dtype.
    """
    values = np.asarray(values)
    bounds = np.array([valid_range(m) for m in metrics]).T  # [2, k]
    shape = [1] * values.ndim
    shape[axis] = len(metrics)
    lo, hi = bounds[0].reshape(shape), bounds[1].reshape(shape)
    return np.clip(values, lo, hi).astype(values.dtype, copy=False)


@dataclass(frozen=True)
class Assessment:
    """Risk of every server, in input order.

    Attributes:
        score: Array [n] float64, the risk score 0-100.
        level: Array [n] int8, index into ``LEVELS`` (0 ok, 1 warning, 2 critical).
        metric: Driving metric per server (None when no metric has thresholds).
        threshold: Array [n], the driving metric's threshold for its level (the warning
            threshold for ok servers); NaN without a driving metric.
        minutes: Array [n], minutes until the median path crosses ``threshold``; 0 when
            the current value is over it; NaN for ok servers.
        metrics: The thresholded metrics, in ``metric_scores`` column order.
        metric_scores: Array [n, len(metrics)], each metric's score.
        metric_levels: Array [n, len(metrics)] int8, each metric's level.
    """

    score: np.ndarray
    level: np.ndarray
    metric: list[str | None]
    threshold: np.ndarray
    minutes: np.ndarray
    metrics: tuple[str, ...]
    metric_scores: np.ndarray
    metric_levels: np.ndarray

    @property
    def alert_level(self) -> list[str]:
        """Level names per server."""
        return [LEVELS[i] for i in self.level.tolist()]

    def for_server(self, index: int) -> dict[str, Any]:
        """JSON-ready risk of one server: score, level, metric, threshold, crossing."""
        level = LEVELS[int(self.level[index])]
        threshold, minutes = float(self.threshold[index]), float(self.minutes[index])
        return {
            "risk_score": round(float(self.score[index]), 1),
            "alert_level": level,
            "metric": self.metric[index],
            "threshold": None if np.isnan(threshold) else threshold,
            "crossed": None if level == "ok" else level,
            "minutes_to_crossing": None if np.isnan(minutes) else minutes,
        }


def _first(over: np.ndarray) -> np.ndarray:
    """Index of the first True along the last axis, as float; inf where none."""
    return np.where(over.any(axis=-1), np.argmax(over, axis=-1), np.inf)


def assess(
    values: np.ndarray | None,
    current: np.ndarray,
    *,
    targets: Sequence[str],
    metrics: Sequence[str],
    quantiles: Sequence[float],
    warning: Mapping[str, float],
    critical: Mapping[str, float],
    step_seconds: int,
    profiles: Sequence[str] | None = None,
    by_profile: Mapping[str, tuple[Mapping[str, float], Mapping[str, float]]] | None = None,
) -> Assessment:
    """Score every server's risk from its forecasts and current values (module docstring).

    Args:
        values: Forecasts [n, len(targets), H, len(quantiles)] in metric units (NaN for
            servers without one), or None to judge current values only.
        current: Array [n, len(metrics)] of the newest raw values (NaN where unknown).
        targets: Forecast metrics, in ``values`` order.
        metrics: Metrics of ``current``, in column order.
        quantiles: Quantile levels of ``values``; must contain 0.5.
        warning: Warning threshold per metric.
        critical: Critical threshold per metric.
        step_seconds: Forecast step length.
        profiles: Each server's profile, when ``by_profile`` is given.
        by_profile: Per profile, (warning, critical) thresholds that replace the
            defaults for the metrics they name (a 64-core box is not loaded at 16).

    Returns:
        The assessment of every server.
    """
    current = np.asarray(current, dtype=np.float64)
    n = current.shape[0]
    horizon = 0 if values is None else values.shape[2]
    known = list(metrics) + [t for t in targets if t not in metrics]
    overrides = by_profile or {}
    named = set(warning) | set(critical) | {m for w, c in overrides.values() for m in (*w, *c)}
    names = tuple(m for m in known if m in named)
    j = len(names)

    def limits(warn_map: Mapping[str, float], crit_map: Mapping[str, float]) -> tuple[np.ndarray, np.ndarray]:
        c = np.array([crit_map.get(m, np.inf) for m in names], dtype=np.float64)
        w = np.array([warn_map.get(m, crit_map.get(m, np.inf)) for m in names], dtype=np.float64)
        return w, c

    base_w, base_c = limits(warning, critical)
    warn = np.broadcast_to(base_w, (n, j)).copy()
    crit = np.broadcast_to(base_c, (n, j)).copy()
    if overrides and profiles is not None:
        prof = np.asarray(list(profiles), dtype=object)
        for profile, (w_map, c_map) in overrides.items():
            rows_p = prof == profile
            if rows_p.any():
                warn[rows_p], crit[rows_p] = limits({**warning, **w_map}, {**critical, **c_map})
    one = np.where(np.isfinite(warn), warn, crit)
    band = np.where(np.isfinite(crit) & (crit > warn), crit - warn, np.abs(one) * 0.1)
    band = np.where(band > 0, band, 1.0)

    median = np.full((n, j, horizon + 1), np.nan)
    upper = np.full((n, j, horizon + 1), np.nan)
    for col, name in enumerate(names):
        if name in metrics:
            median[:, col, 0] = upper[:, col, 0] = current[:, list(metrics).index(name)]
        if values is not None and name in targets:
            t = list(targets).index(name)
            median[:, col, 1:] = values[:, t, :, list(quantiles).index(0.5)]
            upper[:, col, 1:] = values[:, t, :, -1]

    w, c = warn[:, :, None], crit[:, :, None]
    with np.errstate(invalid="ignore"):
        k_mc, k_mw = _first(median >= c), _first(median >= w)
        k_uc, k_uw = _first(upper >= c), _first(upper >= w)
    steps = horizon + 1

    def urgency(k: np.ndarray) -> np.ndarray:
        return np.where(np.isfinite(k), 1.0 - np.minimum(k, steps) / steps, 0.0)

    peak = np.fmax.reduce(median, axis=-1)  # NaN only where the path is all NaN
    peak = np.nan_to_num(peak, nan=-np.inf)
    with np.errstate(invalid="ignore", divide="ignore"):
        over_c = np.clip((peak - crit) / band, 0.0, 1.0)
        over_w = np.clip((peak - warn) / band, 0.0, 1.0)
        near = np.where(warn > 0, np.clip(peak / warn, 0.0, 1.0), 0.0)
    over_c, over_w, near = (np.nan_to_num(a) for a in (over_c, over_w, near))

    is_crit, is_warn = np.isfinite(k_mc), np.isfinite(k_mw)
    level = np.where(is_crit, _CRITICAL, np.where(is_warn, _WARNING, _OK)).astype(np.int8)
    score = np.where(
        is_crit,
        70.0 + 30.0 * (urgency(k_mc) + over_c) / 2.0,
        np.where(
            is_warn,
            40.0 + 30.0 * (urgency(k_mw) + over_w + urgency(k_uc)) / 3.0,
            40.0 * (urgency(k_uw) + near) / 2.0,
        ),
    )
    crossing = np.where(is_crit, k_mc, np.where(is_warn, k_mw, np.nan))

    rows = np.arange(n)
    if j:
        drive = np.argmax(score, axis=1)
        server_level = level[rows, drive]
        threshold = np.where(server_level == _CRITICAL, crit[rows, drive], warn[rows, drive])
        minutes = crossing[rows, drive] * step_seconds / 60.0
        driving: list[str | None] = [names[i] for i in drive.tolist()]
        server_score = score[rows, drive]
    else:
        server_level = np.zeros(n, dtype=np.int8)
        threshold, minutes, server_score = np.full(n, np.nan), np.full(n, np.nan), np.zeros(n)
        driving = [None] * n
    return Assessment(
        score=server_score,
        level=server_level,
        metric=driving,
        threshold=np.where(np.isfinite(threshold), threshold, np.nan),
        minutes=minutes,
        metrics=names,
        metric_scores=score,
        metric_levels=level,
    )


def summary(levels: Iterable[int | str] | np.ndarray) -> dict[str, int]:
    """Count servers per level: ``{"servers", "ok", "warning", "critical"}``.

    Args:
        levels: Level codes (``Assessment.level``) or names (``Assessment.alert_level``).
    """
    counts = dict.fromkeys(LEVELS, 0)
    total = 0
    for level in np.asarray(levels).tolist() if isinstance(levels, np.ndarray) else levels:
        counts[LEVELS[level] if isinstance(level, int) else level] += 1
        total += 1
    return {"servers": total, **counts}
