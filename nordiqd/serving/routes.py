"""Per-series routing: each server x target x lead bucket served by its best candidate.

``LiveAccuracy.routes`` says, from the ledger's trailing live errors, which candidate
(``accuracy.routing.CANDIDATES``) serves each server's target in each lead bucket
(``0-1h``, ``1-4h``, ``4-8h``). ``route`` builds the served forecast from them:

- **model**: the served model's own quantiles (the TFT, or the baseline before one);
- **last_value**: the window's last value held over the horizon, with the band of the
  series' own h-step changes (``predict.naive.change_scale``: for a held value the h-step
  change *is* the error, so the band is that error's empirical scale);
- **seasonal_naive**: the predictor's seasonal-naive baseline (``predict.naive``);
- **statistical**: the statistical challenger's quantiles, where one was fitted (else
  the model serves there).

Bucket edges are cross-faded as in the backtest's ``routed`` entry (``predict.blend``):
the weight of each candidate at step h is the share of steps within ``blend_steps`` of h
whose bucket it serves, so the served path moves from one candidate to the next over
``2 x blend_steps + 1`` steps instead of jumping. The
present is joined too: the level of step h is pulled towards the last value by
``(blend_steps + 1 - h) / (blend_steps + 1)`` (1, 3/4, 1/2, 1/4 with 3 steps), so the
path starts where the series is (the next step's p50 is its last value, its band the
candidate's) and reaches the first bucket's candidate at step ``blend_steps + 1`` (with
the 0-1h bucket on the last value this changes nothing; a model or a day-old value that
leaps away at the first step becomes a ramp from the present). A convex mix of
increasing quantiles is increasing, so the quantiles stay ordered. Only the candidates
some series uses are computed; with ``blend_steps`` 0 and every series on the model, the
model's array is served as it is. ``sources`` names each bucket's candidate.

**Calibrated bands.** Given the conformal shifts of every candidate per series, target
and bucket (``LiveAccuracy.bands``, from the ledger's recent residuals with
``calibration.conformal``), each candidate's band is calibrated before the mix: the
model's p10 and p90 move by its shifts (``conformal.apply``); last value, seasonal naive
and the challenger, whose residuals the ledger has around their p50, get edges at the
p50 moved by theirs. A candidate with fewer residuals than the conformal minimum in a
bucket keeps its own band there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from nordiqd.accuracy.buckets import bucket_of_lead
from nordiqd.accuracy.reference import last_values
from nordiqd.accuracy.routing import CANDIDATES, LAST_VALUE, MODEL, SEASONAL_NAIVE, STATISTICAL
from nordiqd.calibration.conformal import MIN_POINTS, BandShift, apply
from nordiqd.model.baseline import seasonal_naive
from nordiqd.model.params import ModelSpec
from nordiqd.predict import blend
from nordiqd.predict.naive import change_scale
from nordiqd.predict.risk import clip

__all__ = ["Router", "present_weights", "route", "step_weights"]


def _z(quantiles: tuple[float, ...]) -> np.ndarray:
    return np.array([0.0 if q == 0.5 else NormalDist().inv_cdf(q) for q in quantiles])


def step_weights(choice: np.ndarray, horizon: int, step_seconds: int, blend_steps: int) -> np.ndarray:
    """Each candidate's weight at every step, bucket edges cross-faded (``predict.blend``).

    Args:
        choice: Array [n, targets, buckets] of candidate indexes.
        horizon: Steps forecast.
        step_seconds: Model step.
        blend_steps: Steps each side of an edge the cross-fade spans (0: a hard switch).

    Returns:
        Array [n, targets, horizon, candidates] float32; each step's weights sum to 1.
    """
    per_step = bucket_of_lead(horizon, step_seconds)
    bounds = np.searchsorted(per_step, np.arange(choice.shape[-1] + 1))  # buckets are runs in lead order
    spans = list(zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True))
    weights = blend.weights(choice, spans, len(CANDIDATES), 2 * blend_steps + 1)  # [C, n, T, H]
    return np.moveaxis(weights, 0, -1).astype(np.float32)


def present_weights(horizon: int, blend_steps: int) -> np.ndarray:
    """How far each step's level is pulled to the last value: ``(k + 1 - h) / (k + 1)``, 0 from step k + 1.

    With ``blend_steps`` 0 nothing is pulled.
    """
    k = blend_steps
    h = np.arange(horizon)
    return np.clip((k + 1 - h) / (k + 1), 0.0, None) if k else np.zeros(horizon)


def route(
    windows: np.ndarray,
    model: np.ndarray,
    choice: np.ndarray,
    spec: ModelSpec,
    blend_steps: int,
    challenger: np.ndarray | None = None,
    bands: BandShift | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The served forecast of every routed series, and where each bucket came from.

    Args:
        windows: Array [n, L, targets], the windows the forecasts were made from.
        model: Array [n, targets, horizon, quantiles], the model's forecasts.
        choice: Array [n, targets, buckets], each bucket's candidate (``RoutingBook.choose``).
        spec: The ``[model]`` section.
        blend_steps: ``[routing] blend_steps``.
        challenger: Array [n, targets, horizon, quantiles], the statistical challenger's
            forecasts (NaN where it has none); None: no challenger fitted.
        bands: Conformal shifts [n, targets, buckets, 4] of each candidate's band
            (``LiveAccuracy.bands``); None: bands as the candidates make them.

    Returns:
        The served values [n, targets, horizon, quantiles] float32, and the candidate each
        bucket was served from [n, targets, buckets] int8 (a challenger chosen where it
        has no forecast falls back to the model).
    """
    choice = np.asarray(choice, dtype=np.int8).copy()
    if challenger is None:
        choice[choice == STATISTICAL] = MODEL
    else:
        missing = ~np.isfinite(challenger).all(axis=(-1, -2))  # [n, T]
        choice[(choice == STATISTICAL) & missing[..., None]] = MODEL
    if not choice.any() and not blend_steps and bands is None:
        return model, choice
    weights = step_weights(choice, spec.horizon_steps, spec.step_seconds, blend_steps)
    uses = np.any(weights > 0, axis=2)  # [n, T, candidates]: the series each candidate serves a step of
    series = np.moveaxis(np.asarray(windows, dtype=np.float64), 1, 2)  # [n, T, L]
    last: np.ndarray = last_values(windows).astype(np.float64)  # [n, T]
    # The baselines' own band (their h-step change scale): one FFT pass for both, over the
    # series that use one and whose calibrated band does not replace it everywhere.
    own_band: np.ndarray = uses[..., LAST_VALUE] | uses[..., SEASONAL_NAIVE]
    if bands is not None:
        calibrated = (bands.points[..., [LAST_VALUE, SEASONAL_NAIVE]] >= MIN_POINTS).all(axis=(-1, -2))
        own_band &= ~calibrated
    sigma = change_scale(series[own_band], spec.horizon_steps)  # [m, H]
    spread = np.zeros((*own_band.shape, spec.horizon_steps, len(spec.quantiles)))
    spread[own_band] = sigma[..., None] * _z(spec.quantiles)
    served = np.zeros(model.shape, dtype=np.float64)
    for c in np.flatnonzero(uses.any(axis=(0, 1))).tolist():
        sel = uses[..., c]
        if c in (LAST_VALUE, SEASONAL_NAIVE):
            own = spread[sel]  # [m, H, Q]
            if c == LAST_VALUE:
                values = last[sel][:, None, None] + own
            else:
                values = seasonal_naive(series[sel], spec.horizon_steps, spec.season_steps)[..., None] + own
        elif c == STATISTICAL and challenger is not None:
            values = challenger[sel].astype(np.float64)
        else:
            values = model[sel].astype(np.float64)
        if bands is not None:
            values = _calibrated(values, c, bands, sel, spec)
        w = weights[..., c][sel][..., None]
        # 0 x NaN would spoil a step another candidate serves: a zero weight adds nothing.
        served[sel] += np.where(w > 0, w * values, 0.0)
    pull = present_weights(spec.horizon_steps, blend_steps)
    if pull.any():
        # The path starts from the present: each step's level moves towards the last value.
        p50 = served[..., spec.median_index]
        gap = np.where(np.isfinite(last), last, 0.0)[..., None] - p50
        served += (pull * np.where(np.isfinite(gap), gap, 0.0))[..., None]
    # A candidate without a value at some step (a target its window never held) leaves
    # that step to the model.
    served = clip(served, list(spec.targets), axis=1)
    served = np.where(np.isfinite(served), served, model)
    return served.astype(np.float32), choice


def _calibrated(
    values: np.ndarray, candidate: int, bands: BandShift, sel: np.ndarray, spec: ModelSpec
) -> np.ndarray:
    """Candidate ``values`` [m, H, Q] of the ``sel`` series with its outer quantiles calibrated.

    See the module docstring; ``bands`` holds every series' shifts [n, T, buckets, 4].
    """
    per_step = bucket_of_lead(spec.horizon_steps, spec.step_seconds)
    lower = bands.lower[sel][:, per_step, candidate]  # [m, H]
    upper = bands.upper[sel][:, per_step, candidate]
    enough = bands.points[sel][:, per_step, candidate] >= MIN_POINTS
    median = spec.median_index
    band = BandShift(lower=np.where(enough, lower, 0.0), upper=np.where(enough, upper, 0.0), points=enough)
    if candidate == MODEL:
        return apply(values[..., None, :], band, median)[..., 0, :]
    at_p50 = np.repeat(values[..., median : median + 1], values.shape[-1], axis=-1)
    at_p50[..., 1:-1] = values[..., 1:-1]  # inner quantiles stay; the edges start at the p50
    moved = np.where(enough[..., None], apply(at_p50[..., None, :], band, median)[..., 0, :], values)
    return np.sort(moved, axis=-1)


@dataclass(frozen=True)
class Router:
    """What a pass needs to route: the choices, the cross-fade and the challenger.

    Attributes:
        choose: Server names and which candidates have no forecast now ([n, targets,
            candidates], None: all have) -> each one's candidate per target and bucket
            (``LiveAccuracy.routes``); None when routing is off.
        blend_steps: ``[routing] blend_steps``.
        challenger: Server names and the first forecast step's start -> the statistical
            challenger's forecasts [n, targets, horizon, quantiles] (NaN where it has
            none; None when none is fitted); None: no challenger.
        bands: Server names -> the conformal shifts of every candidate's band
            (``LiveAccuracy.bands``; None when calibration is off); None: no calibration.
    """

    choose: Callable[[list[str], np.ndarray | None], np.ndarray | None]
    blend_steps: int
    challenger: Callable[[list[str], float], np.ndarray | None] | None = None
    bands: Callable[[list[str]], BandShift | None] | None = None
