"""Fitting a TFT on buffer rows, from scratch or continuing a model, and validating it.

``fit`` runs in whatever process calls it (the trainer runs it in a job subprocess). It
frames the rows into contiguous arrays (``series``), splits off a validation horizon
and indexes the training windows (``windows``), fits the encoders and scalers
(``dataset``) and builds the network (``network``), trains with Lightning in the
calling thread (``trainer``) on batches built as arrays, and validates the result.
Progress goes to ``on_progress`` after every batch and ``should_stop`` is checked
before every batch; a stop request raises ``TrainingCancelled`` before the next batch
runs, so a cancelled fit returns nothing that could be published. ``train`` replaces the
in-process Lightning run (``nordiqd.training.ray_backend`` trains the same network on a
Ray cluster): the windows, encoders and scalers are still fitted here, once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import torch
from pytorch_forecasting import TemporalFusionTransformer

from nordiqd.model.artifacts import LoadedModel
from nordiqd.model.baseline import mase, seasonal_naive
from nordiqd.model.dataset import fitted_dataset, model_parameters
from nordiqd.model.network import build_network, network_from_hparams
from nordiqd.model.params import ModelSpec
from nordiqd.model.series import FleetSeries, fleet_series
from nordiqd.model.shapes import per_target, single_target
from nordiqd.model.trained import TrainedModel, Validation
from nordiqd.model.trainer import run_trainer
from nordiqd.model.windows import BatchSet, WindowBatches, training_windows, validation_windows

NetworkTraining = Callable[[TemporalFusionTransformer, WindowBatches, dict[str, Any], list[float]], str]
"""Trains the network in place on (the fleet behind) these batches, with the dataset
parameters and loss weights it was built from; returns the device it ran on."""


def fit(
    data: pa.Table | FleetSeries,
    spec: ModelSpec,
    *,
    epochs: int,
    incremental: bool = False,
    base: LoadedModel | None = None,
    threads: int = 1,
    on_progress: Callable[[float], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    accelerator: str = "auto",
    seed: int = 0,
    train: NetworkTraining | None = None,
) -> TrainedModel:
    """Train a TFT on buffer rows, from scratch or continuing a published model.

    Args:
        data: Buffer rows (see ``frames.aggregate``), or their series already framed
            (``series.fleet_series``), so that a caller can let go of the rows before
            training: a training job's table outweighs its series several times.
        spec: Model spec; for incremental training it must match the base model's
            structure, otherwise training falls back to scratch and says why in ``notes``.
        epochs: Passes over (at most ``spec.max_windows_per_epoch``) training windows.
        incremental: Continue from ``base``.
        base: The current model, or None; with ``incremental`` and no base, training
            starts from scratch and says so in ``notes``.
        threads: CPU threads torch may use when training on the CPU.
        on_progress: Called after every batch with the percentage done (0-100).
        should_stop: Polled before every batch; True cancels the fit.
        accelerator: "auto" (CUDA when present), "cpu" or "gpu".
        seed: Seed for weights, window sampling and the hidden-name copies.
        train: Trains the network instead of ``trainer.run_trainer`` in this process
            (``epochs``, ``threads``, ``accelerator``, ``on_progress`` and
            ``should_stop`` are then its business).

    Raises:
        InsufficientData: Too little contiguous data for one training window.
        TrainingCancelled: ``should_stop`` returned True.
    """
    started = time.monotonic()
    notes: list[str] = []
    torch.manual_seed(seed)
    match data:
        case FleetSeries():
            series = data
        case _:
            series = fleet_series(data, spec)
    del data  # the caller's reference is the only one left to the rows
    windows = training_windows(series, spec, seed)

    parameters: dict[str, Any] | None = None
    if incremental:
        if base is None:
            notes.append("incremental requested but there is no current model: trained from scratch")
        elif base.spec.structure() != spec.structure():
            notes.append(
                "incremental requested but the current model's shape differs from the config: "
                "trained from scratch"
            )
        else:
            parameters = model_parameters(base.dataset_parameters)
    continued = base is not None and parameters is not None

    if continued and base is not None and parameters is not None:
        weights = list(base.loss_weights)
        network = network_from_hparams(base.hparams, parameters, spec, weights)
        network.load_state_dict(base.network.state_dict())
        params_out = parameters
    else:
        prototype, weights = fitted_dataset(series, windows, spec)
        network = build_network(prototype, spec, weights)
        params_out = model_parameters(prototype.get_parameters())
    inputs = (params_out, network.hparams["x_reals"], network.hparams["x_categoricals"])
    batches = WindowBatches(series, windows, spec, *inputs)
    if train is None:
        device = run_trainer(
            network, batches, spec, epochs, threads, accelerator, on_progress, should_stop, seed, notes
        )
    else:
        device = train(network, batches, params_out, weights)
    network = network.cpu().eval()
    validation = validate(
        network, WindowBatches(series, validation_windows(series, spec), spec, *inputs), spec
    )

    return TrainedModel(
        network=network,
        dataset_parameters=params_out,
        spec=spec,
        loss_weights=weights,
        epochs=epochs,
        incremental=continued,
        validation=validation,
        training_window=series.window,
        records=series.records,
        servers=len(set(series.server.tolist())),
        seconds=time.monotonic() - started,
        device=device,
        notes=notes,
    )


def validate(network: TemporalFusionTransformer, batches: BatchSet, spec: ModelSpec) -> Validation:
    """Loss and MASE of the model and of seasonal naive on the same validation windows.

    Both MASEs scale the windows' errors by the one-step naive error of their encoder
    histories, pooled per target across windows (``baseline.mase`` says why); the
    seasonal-naive forecast sees the same encoder history as the model (a day back when
    the encoder holds a day, else the last value).
    """
    # In micro-batches too: the memory training's parts freed serves these passes, which
    # at 256 windows raised the job's peak by 0.3 GB over training's.
    size = spec.micro_batch_size
    chunks = [range(lo, min(lo + size, len(batches))) for lo in range(0, len(batches), size)]
    preds: list[list[torch.Tensor]] = [[] for _ in spec.targets]
    actual: list[list[torch.Tensor]] = [[] for _ in spec.targets]
    history: list[list[torch.Tensor]] = [[] for _ in spec.targets]
    network.eval()
    with torch.no_grad():
        for chunk in chunks:
            x, (y, _) = batches[chunk]
            out = per_target(network(x)["prediction"])
            ys, hs = per_target(y), per_target(x["encoder_target"])
            for i in range(len(spec.targets)):
                preds[i].append(out[i].float())
                actual[i].append(ys[i].float())
                history[i].append(hs[i].float())
    pred_t = [torch.cat(p) for p in preds]
    y_t = [torch.cat(a) for a in actual]
    if single_target(spec):  # QuantileLoss takes bare tensors
        loss = float(network.loss(pred_t[0], (y_t[0], None)))
    else:
        loss = float(network.loss(pred_t, (y_t, None)))
    pred = np.stack([p.numpy() for p in pred_t], axis=1)  # [B, targets, H, Q]
    truth = np.stack([a.numpy() for a in y_t], axis=1)  # [B, targets, H]
    hist = np.stack([torch.cat(h).numpy() for h in history], axis=1)  # [B, targets, T]
    naive = seasonal_naive(hist, spec.horizon_steps, spec.season_steps)
    return Validation(
        loss=loss,
        mase_model=mase(truth, pred[..., spec.median_index], hist),
        mase_seasonal_naive=mase(truth, naive, hist),
        windows=int(truth.shape[0]),
    )
