"""One statistical model's quantile forecast of one series, and the choice between them."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from nordiqd.statistical.coarse import DAYS, Coarse, bins_for, to_coarse, to_steps
from nordiqd.statistical.models import FITS
from nordiqd.statistical.params import Params, model_of

log = logging.getLogger(__name__)

MODELS: tuple[str, ...] = tuple(FITS)
FLAT = 1e-9  # relative range of the bin means below which a series is constant


def is_flat(coarse: Coarse) -> bool:
    """Whether the bin means are constant (an idle swap, a full disk).

    Every model's answer for such a series is its value; Theta's trend fit turns the
    float noise of such a series into a steep slope.
    """
    return bool(np.ptp(coarse.values) <= FLAT * max(1.0, abs(coarse.values[-1])))


def constant(coarse: Coarse, horizon_steps: int, quantiles: Sequence[float]) -> np.ndarray:
    """The forecast of a flat series: its value, the band its within-bin spread."""
    ahead = bins_for(horizon_steps, coarse.per_bin)
    return to_steps(coarse, np.full(ahead, coarse.values[-1]), np.zeros(ahead), horizon_steps, quantiles)


def forecast(
    model: str,
    history: np.ndarray,
    step_s: int,
    horizon_steps: int,
    quantiles: Sequence[float],
    *,
    days: int = DAYS,
) -> np.ndarray:
    """Quantile forecast of the ``horizon_steps`` steps after ``history``, by a full fit.

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
    if is_flat(coarse):
        return constant(coarse, horizon_steps, quantiles)
    try:
        mean, std, _ = FITS[model](coarse, bins_for(horizon_steps, coarse.per_bin))
    except (ValueError, np.linalg.LinAlgError) as exc:
        log.debug("%s could not be fitted: %s", model, exc)
        return out
    if not (np.isfinite(mean).all() and np.isfinite(std).all()):
        return out
    return to_steps(coarse, mean, std, horizon_steps, quantiles)


def select(
    history: np.ndarray,
    step_s: int,
    horizon_steps: int,
    *,
    end_s: float = 0.0,
    models: Sequence[str] = MODELS,
    days: int = DAYS,
) -> Params | None:
    """The model in ``models`` whose median best forecast the series' own last horizon.

    Each model is fitted on ``history`` without its last ``horizon_steps`` steps and
    scored by the mean absolute error of its median over them; a model that cannot be
    fitted there (statsmodels raises odd errors on odd series, MSTL most) is left out.
    Where that earlier part is flat there is nothing to score, and the first of
    ``models`` is fitted on the whole history (every model forecasts a flat series
    alike).

    Args:
        history: Array [T] of step values, oldest first, NaN for gaps.
        step_s: Seconds per step.
        horizon_steps: Steps held out to score on.
        end_s: When ``history`` ends (epoch seconds): saved with MSTL's seasons.
        models: The candidates.
        days: Days of history each model is fitted on.

    Returns:
        The winner's parameters, fitted on ``history`` less its last horizon (a refresh
        filters the whole history with them), or None when no model could forecast
        (too little history).
    """
    history = np.asarray(history, dtype=np.float64)
    head, tail = history[:-horizon_steps], history[-horizon_steps:]
    coarse = to_coarse(head, step_s, days=days, end_s=end_s - horizon_steps * step_s)
    if coarse is None:
        return None
    if is_flat(coarse):
        whole = to_coarse(history, step_s, days=days, end_s=end_s)
        if whole is None or is_flat(whole):
            return None
        coarse, models = whole, models[:1]
    ahead = bins_for(horizon_steps, coarse.per_bin)
    best, best_err = None, np.inf
    for model in models:
        try:
            mean, std, params = FITS[model](coarse, ahead)
        except Exception:  # one model's failure leaves the others to choose from
            log.debug("%s cannot fit this series", model, exc_info=True)
            continue
        if not (np.isfinite(mean).all() and np.isfinite(std).all()):
            continue
        if len(models) == 1:
            return params
        median = to_steps(coarse, mean, std, horizon_steps, (0.5,))[:, 0]
        with np.errstate(invalid="ignore"):
            err = np.abs(median - tail)
        if np.isfinite(err).any() and (score := float(np.nanmean(err))) < best_err:
            best, best_err = params, score
    return best


def choose(
    history: np.ndarray, step_s: int, horizon_steps: int, *, models: Sequence[str] = MODELS, days: int = DAYS
) -> str | None:
    """The name of the model ``select`` picks, or None when no model could forecast."""
    params = select(history, step_s, horizon_steps, models=models, days=days)
    return None if params is None else model_of(params)
