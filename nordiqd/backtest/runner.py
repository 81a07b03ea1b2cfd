"""One backtest from options to report: load, fold, forecast, score.

``backtest`` is what ``nordiqd backtest`` and ``bench/accuracy.py`` call. It runs in
the calling thread and returns the report dict (``report.build``); the TFT, when asked
for, is trained or loaded here (see ``tft_model`` for when it trains).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nordiqd.backtest import baselines, challengers, data, engine, report, tft_model
from nordiqd.backtest.folds import DEFAULT_BUCKET_HOURS, make_buckets, make_folds
from nordiqd.model.params import ModelSpec

# Ensembles scored whenever there is a TFT: its quantiles averaged with those of the
# served seasonal naive, and with those of last-value naive.
ENSEMBLE = "tft+seasonal_naive_1d"
ENSEMBLES = (
    engine.Combination(ENSEMBLE, ("tft", "seasonal_naive_1d")),
    engine.Combination("tft+naive", ("tft", "naive")),
)


@dataclass(frozen=True)
class Options:
    """What to backtest and how.

    Attributes:
        data: CSV/Parquet file or buffer folder.
        spec: Model spec (targets, step, encoder, horizon, quantiles, training sizes);
            ignored with ``model``, whose own spec is used.
        model: A model directory to score as it is.
        train: Train a TFT during the backtest (see ``tft_model.Trained``).
        retrain: With ``train``, refit before every fold.
        folds: K, the number of folds.
        epochs: Epochs per fit.
        seed: Training seed.
        threads: CPU threads for training.
        device: "auto", "cpu" or "gpu" for training.
        bucket_hours: Horizon bucket edges in hours.
        plot: PNG path for one server's latest fold (needs matplotlib).
        statistical: Score the statistical challengers (AutoETS, AutoTheta, MSTL) too.
        route: Score the ``routed`` entry (per server, target and bucket the candidate
            best on the earlier folds).
        ray: A Ray cluster's address: the folds and fits run there as tasks
            (``ray_folds``), each of ``ray_cpus`` CPUs.
    """

    data: Path
    spec: ModelSpec
    model: Path | None = None
    train: bool = False
    retrain: bool = False
    folds: int = 3
    epochs: int = 5
    seed: int = 0
    threads: int = 1
    device: str = "auto"
    bucket_hours: tuple[float, ...] = DEFAULT_BUCKET_HOURS
    plot: Path | None = None
    statistical: bool = True
    route: bool = True
    ray: str | None = None
    ray_cpus: float = 1.0


def backtest(options: Options) -> dict[str, Any]:
    """Run the backtest; the report as a dict.

    Raises:
        BacktestError: Bad data or too little history.
        ValueError: A bad option value.
        ModelError: The model cannot be loaded, or training failed.
    """
    started = time.perf_counter()
    spec, loaded = options.spec, None
    if options.retrain and not options.train:
        raise ValueError("retrain needs train")
    if options.model is not None:
        from nordiqd.model import artifacts

        loaded = artifacts.load(options.model)
        spec = loaded.spec
    if options.train and options.epochs < 1:
        raise ValueError("epochs must be at least 1")
    buckets = make_buckets(spec, options.bucket_hours)
    table = data.load_table(options.data, spec.targets)
    grid = data.to_grid(table, spec)
    load_s = time.perf_counter() - started
    fold_list = make_folds(grid, spec, options.folds, where=str(options.data))

    models: list[engine.Forecaster] = list(baselines.all_baselines(spec))
    if options.statistical:
        models += challengers.all_challengers(spec)
    tft: Any = None
    if loaded is not None:
        tft = tft_model.Loaded(loaded, spec.targets)
    elif options.train:
        tft = tft_model.Trained(
            spec,
            epochs=options.epochs,
            seed=options.seed,
            threads=options.threads,
            retrain=options.retrain,
            accelerator=options.device,
        )
    combos: tuple[engine.Combination, ...] = ()
    if tft is not None:
        models.insert(0, tft)
        combos = ENSEMBLES
    if options.ray is not None:
        from nordiqd.backtest import ray_folds  # Ray is an optional extra: imported only when asked for

        # Each fold is a task of its own, scored apart: routing and calibration learn from the
        # earlier folds in order, so a Ray run leaves the routed entry and calibration out.
        print(
            "nordiqd backtest: --ray scores the folds apart: no routed entry, no calibrated coverage",
            file=sys.stderr,
        )
        outcome = ray_folds.run(options.ray, grid, spec, fold_list, models, combos, options.ray_cpus)
    else:
        outcome = engine.run(grid, spec, fold_list, models, combos, buckets=buckets, route=options.route)
    if options.plot and not report.plot(outcome, spec, options.plot):
        print("nordiqd backtest: no plot: matplotlib is not installed", file=sys.stderr)
    timings = {"load_s": load_s, **{f"{k}_s": v for k, v in outcome.seconds.items()}}
    timings["total_s"] = time.perf_counter() - started
    return report.build(
        data=report.data_summary(grid, str(options.data), table.num_rows),
        spec=spec,
        folds=fold_list,
        buckets=buckets,
        outcome=outcome,
        tft=_tft_info(tft, loaded),
        timings=timings,
        seed=options.seed,
    )


def _tft_info(tft: Any, loaded: Any) -> dict[str, Any] | None:
    if tft is None:
        return None
    if loaded is not None:
        return {"mode": "model", "model": str(loaded.path), "version": loaded.version}
    return {
        "mode": "retrain every fold" if tft.retrain else "train once before the earliest fold",
        "epochs": tft.epochs,
        "seed": tft.seed,
        "threads": tft.threads,
        "fits": [{k: _plain(v) for k, v in vars(f).items()} for f in tft.fits],
    }


def _plain(value: Any) -> Any:
    """NaN and infinities as None: the report is strict JSON."""
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    return value
