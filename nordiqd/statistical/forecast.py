"""One statistical model's quantile forecast of one series, and the choice between them."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from nordiqd.statistical.coarse import DAYS, bins_for, to_coarse, to_steps
from nordiqd.statistical.models import FITS

log = logging.getLogger(__name__)

MODELS: tuple[str, ...] = tuple(FITS)
FLAT = 1e-9  # relative range of the bin means below which a series is constant


def forecast(
    model: str,
    history: np.ndarray,
    step_s: int,
    horizon_steps: int,
    quantiles: Sequence[float],
    *,
    days: int = DAYS,
) -> np.ndarray:
    """Quantile forecast of the ``horizon_steps`` steps after ``history``.

    Args:
        model: One of ``MODELS``.
        history: Array [T] of step values, oldest first, NaN for gaps.
        step_s: Seconds per step (a divisor of an hour).
        horizon_steps: Steps to forecast.
        quantiles: Increasing quantile levels in (0, 1), as ``ModelSpec.quantiles``.
        days: Days of history the model is fitted on.

    Returns:
        Array [horizon_steps, len(quantiles)], float64, unclipped; all NaN when the
        series has under two days of data or the model cannot be fitted to it (logged
        at debug: an odd series is expected in a fleet, not an error). A series whose
        bin means are constant is forecast as that constant by every model, its band
        the within-bin spread.

    Raises:
        ValueError: Unknown model, or a step that does not divide an hour.
    """
    if model not in FITS:
        raise ValueError(f"unknown statistical model {model!r}; known: {', '.join(MODELS)}")
    out = np.full((horizon_steps, len(quantiles)), np.nan)
    coarse = to_coarse(history, step_s, days=days)
    if coarse is None:
        return out
    level = coarse.values[-1]
    if np.ptp(coarse.values) <= FLAT * max(1.0, abs(level)):
        # A constant series (an idle swap, a full disk): every model's answer is its value.
        # Theta's trend fit turns the float noise of such a series into a steep slope.
        ahead = bins_for(horizon_steps, coarse.per_bin)
        return to_steps(coarse, np.full(ahead, level), np.zeros(ahead), horizon_steps, quantiles)
    try:
        mean, std = FITS[model](coarse, bins_for(horizon_steps, coarse.per_bin))
    except (ValueError, np.linalg.LinAlgError) as exc:
        log.debug("%s could not be fitted: %s", model, exc)
        return out
    if not (np.isfinite(mean).all() and np.isfinite(std).all()):
        return out
    return to_steps(coarse, mean, std, horizon_steps, quantiles)


def choose(
    history: np.ndarray, step_s: int, horizon_steps: int, *, models: Sequence[str] = MODELS, days: int = DAYS
) -> str | None:
    """The model in ``models`` whose median best forecast the series' own last horizon.

    Each model is fitted on ``history`` without its last ``horizon_steps`` steps and
    scored by the mean absolute error of its median over them.

    Returns:
        The model's name, or None when no model could forecast (too little history).
    """
    history = np.asarray(history, dtype=np.float64)
    head, tail = history[:-horizon_steps], history[-horizon_steps:]
    best, best_err = None, np.inf
    for model in models:
        median = forecast(model, head, step_s, horizon_steps, (0.5,), days=days)[:, 0]
        with np.errstate(invalid="ignore"):
            err = np.abs(median - tail)
        if np.isfinite(err).any() and (score := float(np.nanmean(err))) < best_err:
            best, best_err = model, score
    return best
