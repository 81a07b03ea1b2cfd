"""The TFT network: its loss, building a new one, and its constructor arguments as JSON.

A published model stores the network's plain hyperparameters (``network_hparams``) and
its weights; ``network_from_hparams`` rebuilds the same untrained network from them
and the dataset parameters, for ``artifacts.load`` to fill with the weights. The loss,
logging metrics, output transformer and dataset parameters are objects, rebuilt from
the spec and the dataset parameters rather than stored.

Serving loads models through this module, so it imports nothing of training (no
Lightning trainer, no dataset building).
"""

from __future__ import annotations

import json
import warnings
from typing import Any

import numpy as np
import torch
from pytorch_forecasting import TemporalFusionTransformer, TimeSeriesDataSet
from pytorch_forecasting.metrics import MultiLoss, QuantileLoss

from nordiqd.model.params import ModelSpec
from nordiqd.model.shapes import single_target

# Hyperparameters that are objects rebuilt from the spec and the dataset parameters
# rather than stored; everything else in ``model.hparams`` is plain data.
_REBUILT_HPARAMS = ("loss", "logging_metrics", "output_transformer", "dataset_parameters")


def quantile_loss(spec: ModelSpec, weights: list[float]) -> MultiLoss | QuantileLoss:
    """The training loss: a quantile loss per target, weighted by ``weights``."""
    # One target: the loss weight is a constant factor, so the plain loss is the same fit.
    if single_target(spec):
        return QuantileLoss(list(spec.quantiles))
    return MultiLoss([QuantileLoss(list(spec.quantiles)) for _ in spec.targets], weights=weights)


def build_network(
    dataset: TimeSeriesDataSet, spec: ModelSpec, loss_weights: list[float]
) -> TemporalFusionTransformer:
    """A new, untrained TFT sized by ``spec`` for ``dataset``."""
    with warnings.catch_warnings():
        # Lightning's advice to keep nn.Module hyperparameters out of hparams: they are.
        warnings.filterwarnings("ignore", message=".*is an instance of `nn.Module`.*")
        return TemporalFusionTransformer.from_dataset(
            dataset,
            hidden_size=spec.hidden_size,
            attention_head_size=spec.attention_heads,
            hidden_continuous_size=spec.hidden_continuous_size,
            dropout=spec.dropout,
            learning_rate=spec.learning_rate,
            output_size=(
                len(spec.quantiles) if single_target(spec) else [len(spec.quantiles)] * len(spec.targets)
            ),
            loss=quantile_loss(spec, loss_weights),
            log_interval=-1,
            # Effectively no plateau schedule: validation runs once after fitting. (None
            # breaks pytorch-forecasting 1.8's optimizer config under Lightning 2.6.)
            reduce_on_plateau_patience=1000,
        )


def network_hparams(network: TemporalFusionTransformer) -> dict[str, Any]:
    """The network's constructor arguments as JSON-ready data (objects left out)."""
    plain = {k: v for k, v in dict(network.hparams).items() if k not in _REBUILT_HPARAMS}
    # Round-trip through JSON so tuples and numpy values become what a load will see.
    hparams: dict[str, Any] = json.loads(json.dumps(plain, default=_json_default))
    return hparams


def _json_default(value: object) -> object:
    if isinstance(value, np.ndarray | np.generic):
        return value.tolist()
    if isinstance(value, dict):
        return dict(value)
    raise TypeError(f"hyperparameter of type {type(value).__name__} is not JSON data")


def network_from_hparams(
    hparams: dict[str, Any],
    dataset_parameters: dict[str, Any],
    spec: ModelSpec,
    loss_weights: list[float],
) -> TemporalFusionTransformer:
    """Rebuild an (untrained) TFT from stored hyperparameters and dataset parameters."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is an instance of `nn.Module`.*")
        return TemporalFusionTransformer(
            **hparams,
            loss=quantile_loss(spec, loss_weights),
            logging_metrics=torch.nn.ModuleList([]),
            output_transformer=dataset_parameters["target_normalizer"],
            dataset_parameters=dataset_parameters,
        )
