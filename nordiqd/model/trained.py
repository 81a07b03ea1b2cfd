"""What a fit produces: the trained network, its validation figures and their provenance.

``fitting.fit`` builds a ``TrainedModel`` and ``artifacts.publish`` writes one, so the
value lives apart from both: publishing needs no training code, and fitting can name
the ``artifacts.LoadedModel`` it continues from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from nordiqd.model.params import ModelSpec

if TYPE_CHECKING:
    # For the annotation only: ``artifacts`` imports this module and must list and
    # verify models without paying for torch (see its docstring). No cycle is involved.
    from pytorch_forecasting import TemporalFusionTransformer


@dataclass(frozen=True)
class Validation:
    """Validation figures on the last horizon of every series."""

    loss: float
    mase_model: float
    mase_seasonal_naive: float
    windows: int


@dataclass
class TrainedModel:
    """A fitted network and everything needed to publish it."""

    network: TemporalFusionTransformer
    dataset_parameters: dict[str, Any]
    spec: ModelSpec
    loss_weights: list[float]
    epochs: int
    incremental: bool
    validation: Validation
    training_window: tuple[datetime, datetime]
    records: int
    servers: int
    seconds: float
    device: str
    notes: list[str] = field(default_factory=list)
