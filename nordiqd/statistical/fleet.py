"""A refresh of the statistical challengers of a fleet: most series filtered, a share re-fitted.

A full fit of a series (``select``: the three models fitted and scored on its last
horizon, the best one's form and parameters kept) costs a hundred times a filter pass of
the kept model over the latest data (``models.apply``). So a refresh, as production
forecasters run them, re-estimates a series only:

- on first sight (no parameters kept for it, or kept for another ``[model]``), at most
  ``ceil(series / every)`` of them per refresh, the steady share: a new fleet (or a
  change of ``[model]``) is fitted over several refreshes, each costing what a steady one
  does, instead of all at once (the rest are ``waiting``: no forecast yet; the daemon
  runs the next refresh soon while any wait, ``serving.challenger``);
- on its turn: each series has a fixed slot among ``every`` refreshes (a hash of its
  server and target), so each refresh re-estimates about ``1/every`` of the fleet and
  no series' parameters are more than ``every`` refreshes old. Turns are skipped while
  the last refresh left series waiting: every kept parameter is then a few refreshes old;
- when the filter with its kept parameters fails or gives no finite forecast.

Every other series is filtered with its kept parameters. A flat series is forecast as
its value, with no fit at all. ``refresh`` is the whole scheme, pure over arrays: the
daemon's refit child (``serving.refit``) and ``bench/statfit.py`` both run it.
"""

from __future__ import annotations

import logging
import math
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import msgspec
import numpy as np

from nordiqd.statistical.coarse import bins_for, to_coarse, to_steps
from nordiqd.statistical.forecast import MODELS, constant, is_flat, select
from nordiqd.statistical.models import apply
from nordiqd.statistical.params import Params, model_of

log = logging.getLogger(__name__)

__all__ = ["FleetParams", "Refreshed", "is_due", "refresh"]


class FleetParams(msgspec.Struct, frozen=True, kw_only=True):
    """What the refreshes of a fleet keep between them.

    Attributes:
        refreshes: Refreshes run so far (the clock of the slots).
        step_seconds: Model step the parameters were fitted at.
        targets: Target names, the order of each server's list.
        series: Per server, per target, the kept parameters (None: none yet).
        waiting: Series left without a first fit by the refresh that kept these.
    """

    refreshes: int
    step_seconds: int
    targets: list[str]
    series: dict[str, list[Params | None]]
    waiting: int = 0


@dataclass(frozen=True)
class Refreshed:
    """One refresh's forecasts and what it kept.

    Attributes:
        values: float64 [servers, targets, steps, quantiles], NaN where no forecast.
        models: Per server and target, the model forecasting ("" where none could fit; a
            flat series, forecast as its value, the first of ``MODELS``: every model
            forecasts it alike).
        params: What the next refresh starts from.
        estimated: Series fully fitted (first sight, their turn, or a failed filter).
        filtered: Series filtered with their kept parameters.
        failed: Series whose fit raised (logged; no forecast).
        waiting: Series seen for the first time past this refresh's share of full fits
            (no forecast; fitted by a following refresh).
        cpu_s: CPU seconds this refresh took.
    """

    values: np.ndarray
    models: list[list[str]]
    params: FleetParams
    estimated: int
    filtered: int
    failed: int
    waiting: int
    cpu_s: float


def is_due(server: str, target: str, refresh_no: int, every: int) -> bool:
    """Whether a series is re-estimated at refresh ``refresh_no`` (its slot among ``every``)."""
    return (refresh_no - zlib.crc32(f"{server}\x00{target}".encode())) % every == 0


def refresh(
    windows: np.ndarray,
    names: Sequence[str],
    targets: Sequence[str],
    *,
    step_s: int,
    end_s: float,
    horizon_steps: int,
    steps: int,
    quantiles: Sequence[float],
    previous: FleetParams | None,
    every: int,
) -> Refreshed:
    """Forecast every series of ``windows`` (module docstring).

    Args:
        windows: Array [servers, T, targets] of step values ending at ``end_s``, NaN for gaps.
        names: Server names, the first axis.
        targets: Target names, the last axis.
        step_s: Seconds per step.
        end_s: When the windows end: the first forecast step starts here.
        horizon_steps: The model's horizon: the held-out stretch a full fit scores on.
        steps: Steps to forecast (the horizon and the time to the next refresh).
        quantiles: Quantile levels.
        previous: The last refresh's ``params``; None on the first.
        every: Refreshes between two full fits of a series (1: every refresh fits all).

    Raises:
        ValueError: ``every`` below 1 or ``windows`` of another shape.
    """
    if every < 1:
        raise ValueError(f"re-estimating every {every} refreshes: at least 1")
    if windows.shape[0] != len(names) or windows.shape[2] != len(targets):
        raise ValueError(f"windows {windows.shape} for {len(names)} servers x {len(targets)} targets")
    started = time.process_time()
    kept: dict[str, list[Params | None]] = {}
    refresh_no = 0
    turns = True  # re-estimations on each series' turn; not while first fits wait
    if previous is not None:
        refresh_no = previous.refreshes
        if (previous.targets, previous.step_seconds) == (list(targets), step_s):
            kept = previous.series
            turns = not previous.waiting
    first_fits = math.ceil(len(names) * len(targets) / every)  # the steady share of full fits
    values = np.full((len(names), len(targets), steps, len(quantiles)), np.nan)
    models = [[""] * len(targets) for _ in names]
    series: dict[str, list[Params | None]] = {}
    estimated = filtered = failed = waiting = 0
    for i, name in enumerate(names):
        row = list(kept.get(name, [None] * len(targets)))
        for j, target in enumerate(targets):
            first = row[j] is None
            due = first or (turns and is_due(name, target, refresh_no, every))
            may_fit = not first or first_fits > 0
            try:
                out, params, how = _series(
                    windows[i, :, j], row[j], due, may_fit, step_s, end_s, horizon_steps, steps, quantiles
                )
            except Exception:  # one series' fit never stops the fleet's (statsmodels raises odd errors)
                log.exception("statistical fit of %s %s failed", name, target)
                failed += 1
                continue
            values[i, j], row[j] = out, params
            estimated += how == "fit"
            filtered += how == "filter"
            waiting += how == "wait"
            first_fits -= first and how == "fit"
            if np.isfinite(out).any():
                models[i][j] = MODELS[0] if params is None else model_of(params)
        series[name] = row
    kept_now = FleetParams(
        refreshes=refresh_no + 1, step_seconds=step_s, targets=list(targets), series=series, waiting=waiting
    )
    return Refreshed(
        values, models, kept_now, estimated, filtered, failed, waiting, time.process_time() - started
    )


def _series(
    history: np.ndarray,
    kept: Params | None,
    due: bool,
    may_fit: bool,
    step_s: int,
    end_s: float,
    horizon_steps: int,
    steps: int,
    quantiles: Sequence[float],
) -> tuple[np.ndarray, Params | None, str]:
    """One series' forecast [steps, Q], its parameters now, and how: "fit", "filter", "wait"
    (a first fit past the refresh's share) or "" (neither: too short, or flat)."""
    nan = np.full((steps, len(quantiles)), np.nan)
    coarse = to_coarse(history, step_s, end_s=end_s)
    if coarse is None:
        return nan, kept, ""
    if is_flat(coarse):
        return constant(coarse, steps, quantiles), kept, ""
    ahead = bins_for(steps, coarse.per_bin)
    if kept is not None and not due:
        try:
            mean, std = apply(kept, coarse, ahead)
        except (ValueError, np.linalg.LinAlgError) as exc:
            log.debug("kept %s parameters failed, fitting again: %s", model_of(kept), exc)
        else:
            if np.isfinite(mean).all() and np.isfinite(std).all():
                return to_steps(coarse, mean, std, steps, quantiles), kept, "filter"
    if not may_fit:
        return nan, None, "wait"
    params = select(history, step_s, horizon_steps, end_s=end_s)
    if params is None:
        return nan, None, "fit"
    mean, std = apply(params, coarse, ahead)
    if not (np.isfinite(mean).all() and np.isfinite(std).all()):
        return nan, params, "fit"
    return to_steps(coarse, mean, std, steps, quantiles), params, "fit"
