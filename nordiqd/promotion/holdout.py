"""The gate's evidence: candidate, champion and seasonal naive on the newest data.

Runs in the training job. ``split`` cuts the newest ``[promotion] holdout_hours`` off the
rows the job read, so the candidate never trains on them; ``score`` runs the backtest
engine (``nordiqd.backtest.engine``) over that holdout, one fold per forecast horizon
(origins ``L - H``, ``L - 2H``, ...: every fold forecasts steps inside the holdout from
the history before them), for the candidate, the champion (the model ``current`` named
when the job started) and the served seasonal naive, on exactly the same windows.

The figures per model: ``mase`` and ``coverage`` of every target and lead bucket
pooled (what the gate judges), ``windows`` scored, and ``targets``: per target (and
``all`` pooled) per lead bucket the backtest's MASE, p50/p90 loss and coverage. The
champion's also say how many hours of the holdout it trained on (``seen_holdout_hours``:
one trained within the last ``holdout_hours`` has seen part of it).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from nordiqd.backtest import baselines, engine, tft_model
from nordiqd.backtest.data import to_grid
from nordiqd.backtest.folds import make_buckets, make_folds
from nordiqd.backtest.scoring import ALL
from nordiqd.model.artifacts import LoadedModel
from nordiqd.model.params import ModelSpec


def split(table: pa.Table, hours: float) -> tuple[pa.Table, datetime]:
    """The rows before the holdout, and where the holdout begins (last timestamp - hours)."""
    last = pc.max(table["timestamp"]).as_py()
    cutoff = last - timedelta(hours=hours)
    bound = pa.scalar(cutoff, type=table["timestamp"].type)
    return table.filter(pc.less(table["timestamp"], bound)), cutoff


def _figures(errors: Any, spec: ModelSpec, version: str | None) -> dict[str, Any]:
    buckets = make_buckets(spec)
    summary = errors.summary(spec.targets, buckets)
    pooled = summary.get(ALL if len(spec.targets) > 1 else spec.targets[0], {}).get(ALL, {})
    return {
        "version": version,
        "mase": pooled.get("mase"),
        "coverage": pooled.get("coverage"),
        "windows": pooled.get("windows", 0),
        "targets": summary,
    }


def score(
    table: pa.Table,
    spec: ModelSpec,
    hours: float,
    cutoff: datetime,
    candidate: LoadedModel,
    champion: LoadedModel | None,
) -> dict[str, Any]:
    """The gate's figures: ``holdout``, ``candidate``, ``champion`` (None without one) and
    ``baseline``; see the module docstring."""
    grid = to_grid(table, spec)
    folds = make_folds(grid, spec, max(1, int(hours * 3600 // (spec.horizon_steps * spec.step_seconds))))
    models: list[engine.Forecaster] = [_named(candidate, spec, "candidate")]
    if champion is not None:
        models.append(_named(champion, spec, "champion"))
    models.append(baselines.ServedSeasonalNaive(spec, name="baseline"))
    outcome = engine.run(grid, spec, folds, models)
    champion_figures = None
    if champion is not None:
        champion_figures = _figures(outcome.errors["champion"], spec, champion.version)
        champion_figures["seen_holdout_hours"] = _seen_hours(champion, cutoff)
    return {
        "holdout": {
            "hours": hours,
            "start": cutoff.isoformat().replace("+00:00", "Z"),
            "folds": len(folds),
        },
        "candidate": _figures(outcome.errors["candidate"], spec, candidate.version),
        "champion": champion_figures,
        "baseline": _figures(outcome.errors["baseline"], spec, "seasonal_naive"),
    }


def _seen_hours(model: LoadedModel, cutoff: datetime) -> float:
    """Hours of the holdout the champion trained on (a champion trained lately has seen
    part of it, which favours it; the gate says so)."""
    try:
        end = datetime.fromisoformat(str(model.manifest["training_window"]["end"]).replace("Z", "+00:00"))
    except (KeyError, TypeError, ValueError):
        return 0.0
    return round(max(0.0, (end - cutoff).total_seconds() / 3600), 2)


def _named(model: LoadedModel, spec: ModelSpec, name: str) -> tft_model.Loaded:
    forecaster = tft_model.Loaded(model, spec.targets)
    forecaster.name = name  # the engine keys its errors by name
    return forecaster
