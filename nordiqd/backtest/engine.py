"""Run forecasters over the folds of a grid and collect their scaled errors.

``run`` is a plain loop: for each fold (earliest first) it calls every forecaster's
optional ``prepare`` (the TFT trains there), asks each for the fold's forecasts, forms
the combinations and, with ``route``, the ``routed`` entry (``routing``: per server,
target and bucket the candidate best on the earlier folds), and hands forecasts and
actuals to ``scoring.FoldErrors``. With ``buckets`` each model's band is also calibrated
on the earlier folds (``calibrating``) and scored both ways. Only then are the fold's
errors and bands added to what routes and calibrates the next fold: no fold sees its
own future. It runs in the calling thread and returns when the last fold is scored.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from nordiqd.backtest.calibrating import BandHistory
from nordiqd.backtest.data import Grid
from nordiqd.backtest.folds import Bucket, Fold
from nordiqd.backtest.routing import CANDIDATES, ROUTED, Router
from nordiqd.backtest.scoring import FoldErrors, seasonal_scale
from nordiqd.model.params import ModelSpec


@dataclass(frozen=True)
class Origin:
    """What a forecaster sees at one fold: the history before the origin.

    Attributes:
        history: Array [n, T, k] of every step before the origin, oldest first
            (right-aligned: leading NaN is padding before a server's first step).
        last_bucket: Array [n] int64, UTC epoch seconds of ``history[:, -1]``.
        servers: Server names.
        profiles: Server profiles.
    """

    history: np.ndarray
    last_bucket: np.ndarray
    servers: list[str]
    profiles: list[str]


@runtime_checkable
class Forecaster(Protocol):
    """A model under test. ``forecast`` returns [n, k, H, Q] in ``spec.quantiles`` order."""

    @property
    def name(self) -> str: ...

    def forecast(self, origin: Origin) -> np.ndarray: ...


@runtime_checkable
class Prepared(Protocol):
    """A forecaster that must see each fold's grid and origin first (to train)."""

    def prepare(self, grid: Grid, fold: Fold) -> None: ...


@dataclass(frozen=True)
class Combination:
    """The quantile-wise mean of other models' forecasts (a simple ensemble)."""

    name: str
    members: tuple[str, ...]

    def combine(self, forecasts: dict[str, np.ndarray]) -> np.ndarray:
        """Mean of the members' forecasts, quantile by quantile."""
        return np.mean([forecasts[m] for m in self.members], axis=0)


@dataclass
class Outcome:
    """Everything ``run`` measured.

    Attributes:
        errors: Per model, the scaled errors of every fold (see ``scoring``).
        seconds: Per model, seconds spent in ``prepare`` and ``forecast``.
        last_fold: Per model, the last fold's forecasts [n_fold, k, H, Q], with the
            history and actuals, for plotting.
    """

    errors: dict[str, FoldErrors]
    seconds: dict[str, float]
    last_fold: dict[str, np.ndarray] = field(default_factory=dict)
    last_history: np.ndarray | None = None
    last_actual: np.ndarray | None = None
    last_servers: list[str] = field(default_factory=list)


def run(
    grid: Grid,
    spec: ModelSpec,
    folds: Sequence[Fold],
    models: Sequence[Forecaster],
    combinations: Sequence[Combination] = (),
    *,
    buckets: Sequence[Bucket] = (),
    route: bool = False,
) -> Outcome:
    """Forecast every fold with every model and collect the errors (module docstring).

    Args:
        grid: The data.
        spec: Targets, horizon and quantiles.
        folds: Folds, earliest first.
        models: The forecasters.
        combinations: Ensembles of their forecasts.
        buckets: Horizon buckets to calibrate bands in and route by; none: no calibration.
        route: Add the ``routed`` entry (needs ``buckets``).
    """
    if route and not buckets:
        raise ValueError("routing needs the horizon buckets")
    names = [m.name for m in models] + [c.name for c in combinations] + ([ROUTED] if route else [])
    if len(set(names)) != len(names):
        raise ValueError(f"model names must be unique, got {names}")
    errors = {name: FoldErrors(spec) for name in names}
    seconds = dict.fromkeys(names, 0.0)
    outcome = Outcome(errors=errors, seconds=seconds)
    horizon = spec.horizon_steps
    router = Router(CANDIDATES, buckets, len(grid.servers), len(spec.targets)) if route else None
    bands = {name: BandHistory(buckets, len(grid.servers), errors[name].interval) for name in names}
    for fold in folds:
        idx = fold.servers
        history = grid.values[idx, : fold.origin]
        actual = grid.values[idx, fold.origin : fold.origin + horizon]  # [n, H, k]
        origin = Origin(
            history=history,
            last_bucket=grid.bucket_at(fold.origin - 1)[idx],
            servers=[grid.servers[i] for i in idx],
            profiles=[grid.profiles[i] for i in idx],
        )
        scale = seasonal_scale(history, spec.season_steps)
        forecasts: dict[str, np.ndarray] = {}
        for model in models:
            started = time.perf_counter()
            if isinstance(model, Prepared):
                model.prepare(grid, fold)
            forecasts[model.name] = np.asarray(model.forecast(origin), dtype=np.float64)
            seconds[model.name] += time.perf_counter() - started
        for combo in combinations:
            forecasts[combo.name] = combo.combine(forecasts)
        truth = np.moveaxis(actual, 1, 2)  # [n, k, H]
        if router is not None:
            forecasts[ROUTED] = router.route(idx, forecasts)
            router.observe(idx, forecasts, truth, scale, spec.median_index)
        for name, values in forecasts.items():
            calibrated = bands[name].calibrated(idx, values, spec.median_index) if buckets else None
            errors[name].add(truth, values, scale, calibrated)
            bands[name].record(idx, values, truth)
        if fold is folds[-1]:
            outcome.last_fold = forecasts
            outcome.last_history = history
            outcome.last_actual = truth
            outcome.last_servers = origin.servers
    return outcome
