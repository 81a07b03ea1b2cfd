"""``nordiqd backtest --ray ADDRESS``: the folds, and the fits, as Ray tasks.

``run`` does what ``engine.run`` does, spread over a Ray cluster: the grid goes into
the object store once, and every fold is one task that runs ``engine.run`` on that
fold alone, with its own copies of the models. A TFT that retrains every fold fits
inside its fold's task, so the K fits run side by side; one that trains once fits in a
task of its own first, and the folds' tasks get the fitted model. The driver merges the
outcomes in fold order (``FoldErrors.extend``), so the report is the one a local run
of the same folds gives. Each task asks for ``cpus`` CPUs.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence

import ray
import ray.exceptions

from nordiqd.backtest import engine
from nordiqd.backtest.data import Grid
from nordiqd.backtest.folds import Fold
from nordiqd.backtest.tft_model import Fit, Trained
from nordiqd.model.errors import ModelError
from nordiqd.model.params import ModelSpec
from nordiqd.training.ray_cluster import connect


def _fold(
    grid: Grid,
    spec: ModelSpec,
    fold: Fold,
    models: Sequence[engine.Forecaster],
    combinations: Sequence[engine.Combination],
) -> tuple[engine.Outcome, list[Fit]]:
    """One fold, as ``engine.run`` scores it; with the fits its TFT made, if any."""
    outcome = engine.run(grid, spec, [fold], models, combinations)
    fits = [f for m in models if isinstance(m, Trained) for f in m.fits]
    return outcome, fits


def _fit_once(grid: Grid, fold: Fold, tft: Trained) -> tuple[Trained, float]:
    """The train-once TFT fitted before ``fold`` (the earliest), and the seconds it took."""
    started = time.perf_counter()
    tft.prepare(grid, fold)
    return tft, time.perf_counter() - started


def run(
    address: str,
    grid: Grid,
    spec: ModelSpec,
    folds: Sequence[Fold],
    models: Sequence[engine.Forecaster],
    combinations: Sequence[engine.Combination] = (),
    cpus: float = 1.0,
) -> engine.Outcome:
    """Score every fold with every model on the cluster at ``address``.

    A ``Trained`` TFT among ``models`` gets the fits the tasks made in its ``fits``.

    Raises:
        RayUnavailable: The cluster does not answer.
        ModelError: A task failed (a worker died, or the fold raised).
    """
    connect(address)
    try:
        return _run(grid, spec, folds, list(models), combinations, cpus)
    except ray.exceptions.RayError as exc:
        first = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        raise ModelError(f"a backtest task on the Ray cluster at {address} failed: {first}") from exc
    finally:
        ray.shutdown()


def _run(
    grid: Grid,
    spec: ModelSpec,
    folds: Sequence[Fold],
    models: list[engine.Forecaster],
    combinations: Sequence[engine.Combination],
    cpus: float,
) -> engine.Outcome:
    grid_ref = ray.put(grid)
    fold_task = ray.remote(num_cpus=cpus, max_retries=0)(_fold)
    tft = next((m for m in models if isinstance(m, Trained)), None)
    fit_seconds = 0.0
    fits: list[Fit] = []
    if tft is not None and not tft.retrain:
        fit_task = ray.remote(num_cpus=cpus, max_retries=0)(_fit_once)
        fitted, fit_seconds = ray.get(fit_task.remote(grid_ref, folds[0], copy.deepcopy(tft)))
        fits += fitted.fits
        models = [fitted if m is tft else m for m in models]
    pending = [
        fold_task.remote(grid_ref, spec, fold, [copy.deepcopy(m) for m in models], combinations)
        for fold in folds
    ]
    results: list[tuple[engine.Outcome, list[Fit]]] = ray.get(pending)
    names = [m.name for m in models] + [c.name for c in combinations]
    merged = engine.Outcome(errors={}, seconds=dict.fromkeys(names, 0.0))
    for outcome, fold_fits in results:
        for name in names:
            if name in merged.errors:
                merged.errors[name].extend(outcome.errors[name])
            else:
                merged.errors[name] = outcome.errors[name]
            merged.seconds[name] += outcome.seconds[name]
        if tft is not None and tft.retrain:
            fits += fold_fits
    last = results[-1][0]
    merged.last_fold, merged.last_history = last.last_fold, last.last_history
    merged.last_actual, merged.last_servers = last.last_actual, last.last_servers
    if tft is not None:
        merged.seconds[tft.name] += fit_seconds
        tft.fits[:] = fits
    return merged
