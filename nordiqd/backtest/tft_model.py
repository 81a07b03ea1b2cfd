"""The TFT under test, forecasting through the served path (``WindowForecaster``).

Two ways in: ``Loaded`` wraps a model directory as it is (``--model DIR``), and
``Trained`` fits one with ``fitting.fit`` during the backtest (``--train``). ``Trained``
trains **once, on every step before the earliest fold's origin**, and forecasts all
folds with that model: no fold sees its own future, the run costs one fit instead of K,
and the later folds are forecast by a model up to (K - 1) horizons old, as a daemon that
retrains now and then would. ``retrain=True`` refits before every fold instead (K fits;
for when the run time is no concern). Each fit is published to a temporary models
folder and loaded back with ``artifacts.load``, so the backtest scores what would be
served, serialisation included.

A one-target spec trains as it is: ``fitting.fit`` builds a single-output network for it
and ``WindowForecaster`` returns [n, 1, H, Q], so no target is ever added or dropped.

torch is imported only here, and only when a TFT is used.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nordiqd.backtest.data import Grid
from nordiqd.backtest.engine import Origin
from nordiqd.backtest.folds import Fold
from nordiqd.model.params import ModelSpec


class Loaded:
    """Forecasts of an existing model; ``targets`` are the grid's (the model's first ones)."""

    name = "tft"

    def __init__(self, model: Any, targets: tuple[str, ...]) -> None:
        from nordiqd.model.forecast import WindowForecaster

        self.model = model
        self.targets = targets
        self._forecaster = WindowForecaster(model)

    def forecast(self, origin: Origin) -> np.ndarray:
        """[n, k, H, Q] forecasts from the last ``encoder_steps`` of history."""
        windows = np.asarray(origin.history[:, -self.model.spec.encoder_steps :])
        out = self._forecaster.forecast(windows, origin.servers, origin.profiles, origin.last_bucket)
        return out.values[:, : len(self.targets)].astype(np.float64)


@dataclass
class Fit:
    """What one training run during the backtest did."""

    fold: int
    seconds: float
    device: str
    records: int
    servers: int
    validation_mase_model: float
    validation_mase_seasonal_naive: float
    notes: list[str]


@dataclass
class Trained:
    """Trains a TFT inside the backtest (see the module docstring).

    Attributes:
        spec: The model spec (targets are the grid's).
        epochs: Epochs per fit.
        seed: Seed of every fit.
        threads: CPU threads torch may use.
        retrain: Refit before every fold instead of once.
        accelerator: "auto", "cpu" or "gpu".
    """

    spec: ModelSpec
    epochs: int
    seed: int = 0
    threads: int = 1
    retrain: bool = False
    accelerator: str = "auto"
    name: str = "tft"
    fits: list[Fit] = field(default_factory=list)
    _current: Loaded | None = None

    def prepare(self, grid: Grid, fold: Fold) -> None:
        """Fit on every step before ``fold``'s origin, unless a model exists and ``retrain`` is off."""
        if self._current is not None and not self.retrain:
            return
        from nordiqd.model import artifacts, fitting

        table = grid.table_before(fold.origin)
        started = time.perf_counter()
        trained = fitting.fit(
            table,
            self.spec,
            epochs=self.epochs,
            threads=self.threads,
            accelerator=self.accelerator,
            seed=self.seed,
        )
        with tempfile.TemporaryDirectory(prefix="nordiqd-backtest-") as root:
            loaded = artifacts.load(artifacts.publish(Path(root), trained))
        self._current = Loaded(loaded, self.spec.targets)
        v = trained.validation
        self.fits.append(
            Fit(
                fold=fold.number,
                seconds=time.perf_counter() - started,
                device=trained.device,
                records=trained.records,
                servers=trained.servers,
                validation_mase_model=v.mase_model,
                validation_mase_seasonal_naive=v.mase_seasonal_naive,
                notes=list(trained.notes),
            )
        )

    def forecast(self, origin: Origin) -> np.ndarray:
        """[n, k, H, Q] forecasts of the current fit."""
        if self._current is None:
            raise RuntimeError("Trained.forecast before prepare")
        return self._current.forecast(origin)
