"""The Temporal Fusion Transformer: its dataset, its network, and fitting it.

``fit`` runs in whatever process calls it (the trainer runs it in a job subprocess). It
trains with Lightning in the calling thread, reports progress after every batch through
``on_progress`` and checks ``should_stop`` before every batch; a stop request raises
``TrainingCancelled`` before the next batch runs, so a cancelled fit returns nothing
that could be published.

Normalisation is chosen so the model generalises to servers it never saw: each target
is scaled by the mean and standard deviation of the window's own encoder history
(``EncoderNormalizer``), and that centre and scale are fed to the network as static
inputs, scaled by a fleet-wide ``StandardScaler``. Nothing is fitted per server name, so
an unseen server needs nothing but its history and its profile.

One target is not a list of one: pytorch-forecasting counts targets from the loss, and
a ``MultiLoss`` of one metric makes it build a one-target network with a list-valued
output size, which fails. A single-target spec therefore gets a plain target name, an
``EncoderNormalizer``, a ``QuantileLoss`` and an integer output size, and the network
returns bare tensors where a multi-target one returns lists; ``per_target`` gives every
consumer the list form.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import torch
from pytorch_forecasting import TemporalFusionTransformer, TimeSeriesDataSet
from pytorch_forecasting.data.encoders import EncoderNormalizer, MultiNormalizer, NaNLabelEncoder
from pytorch_forecasting.metrics import MultiLoss, QuantileLoss
from sklearn.preprocessing import StandardScaler

from nordiqd.model.errors import InsufficientData, ModelError
from nordiqd.model.frames import TIME_FEATURES, to_frame
from nordiqd.model.params import ModelSpec

# Hyperparameters that are objects rebuilt from the spec and the dataset parameters
# rather than stored; everything else in ``model.hparams`` is plain data.
_REBUILT_HPARAMS = ("loss", "logging_metrics", "output_transformer", "dataset_parameters")
# Name given to the hidden copy of a server: any label the encoder does not know maps
# to the unknown category (index 0).
_HIDDEN_NAME = ""


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


def single_target(spec: ModelSpec) -> bool:
    """Whether ``spec`` builds the single-target network (plain tensors, no lists)."""
    return len(spec.targets) == 1


def per_target(value: torch.Tensor | Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """A network output, target or target scale as one tensor per target.

    A single-target network and its dataset give a bare tensor; a multi-target one a
    list with one tensor per target.
    """
    return [value] if isinstance(value, torch.Tensor) else list(value)


def _loss(spec: ModelSpec, weights: list[float]) -> MultiLoss | QuantileLoss:
    # One target: the loss weight is a constant factor, so the plain loss is the same fit.
    if single_target(spec):
        return QuantileLoss(list(spec.quantiles))
    return MultiLoss([QuantileLoss(list(spec.quantiles)) for _ in spec.targets], weights=weights)


def _scale_scalers(frame: pd.DataFrame, spec: ModelSpec) -> dict[str, StandardScaler]:
    """Fleet-wide scalers for the per-window target centre and scale inputs.

    Fitted on per-series means and standard deviations, which is what the per-window
    values look like; fitting on the dataset's own column would see one constant.
    """
    stats = frame.groupby("series", sort=False)[list(spec.targets)].agg(["mean", "std"]).fillna(0.0)
    scalers: dict[str, StandardScaler] = {}
    for target in spec.targets:
        for stat, name in (("mean", "center"), ("std", "scale")):
            column = stats[(target, stat)].to_numpy(np.float64).reshape(-1, 1)
            scalers[f"{target}_{name}"] = StandardScaler().fit(column)
    return scalers


def _label_encoder(values: pd.Series) -> NaNLabelEncoder:
    # warn=False: unseen servers are expected, not worth a warning per batch.
    return NaNLabelEncoder(add_nan=True, warn=False).fit(values.astype(str))


def dataset_kwargs(frame: pd.DataFrame, spec: ModelSpec) -> dict[str, Any]:
    """Constructor arguments of a fresh ``TimeSeriesDataSet`` for this frame and spec."""
    targets = list(spec.targets)
    scalers: dict[str, Any] = {name: None for name in (*TIME_FEATURES, "relative_time_idx")}
    scalers.update(_scale_scalers(frame, spec))
    real_names = frame.loc[frame["server_name"] != _HIDDEN_NAME, "server_name"]
    normalizer: EncoderNormalizer | MultiNormalizer
    if single_target(spec):
        normalizer = EncoderNormalizer(method="standard")
    else:
        normalizer = MultiNormalizer([EncoderNormalizer(method="standard") for _ in targets])
    return dict(
        time_idx="time_idx",
        target=targets[0] if single_target(spec) else targets,
        group_ids=["series"],
        max_encoder_length=spec.encoder_steps,
        min_encoder_length=spec.encoder_steps,
        max_prediction_length=spec.horizon_steps,
        min_prediction_length=spec.horizon_steps,
        static_categoricals=["server_name", "profile"],
        time_varying_known_reals=list(TIME_FEATURES),
        time_varying_unknown_reals=targets,
        target_normalizer=normalizer,
        categorical_encoders={
            "server_name": _label_encoder(real_names),
            "profile": _label_encoder(frame["profile"]),
        },
        scalers=scalers,
        add_relative_time_idx=True,
        add_target_scales=True,
        add_encoder_length=False,
    )


def model_parameters(parameters: dict[str, Any]) -> dict[str, Any]:
    """Dataset parameters without the series-id encoders.

    Series ids name the segments of one frame; a later frame has other ones, and a
    fitted id encoder would refuse them. Every dataset refits its own.
    """
    groups = set(parameters["group_ids"])
    out = dict(parameters)
    out["categorical_encoders"] = {
        k: v
        for k, v in parameters["categorical_encoders"].items()
        if k not in groups and not k.startswith("__group_id__")
    }
    return out


def build_dataset(
    frame: pd.DataFrame,
    spec: ModelSpec,
    parameters: dict[str, Any] | None = None,
    *,
    predict: bool = False,
) -> TimeSeriesDataSet:
    """Dataset over ``frame``: fresh encoders, or those of ``parameters`` (a trained model's).

    Args:
        frame: Output of ``frames.to_frame`` (possibly with hidden-name copies).
        spec: Model spec.
        parameters: ``TimeSeriesDataSet.get_parameters()`` of an existing model; its
            encoders and scalers are reused unchanged.
        predict: One window per series, ending at the series' last step.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning)
        if parameters is None:
            dataset = TimeSeriesDataSet(frame, **dataset_kwargs(frame, spec))
            if predict:
                dataset = TimeSeriesDataSet.from_dataset(dataset, frame, predict=True)
            return dataset
        return TimeSeriesDataSet.from_parameters(model_parameters(parameters), frame, predict=predict)


def build_network(
    dataset: TimeSeriesDataSet, spec: ModelSpec, loss_weights: list[float]
) -> TemporalFusionTransformer:
    """A new, untrained TFT sized by ``spec`` for ``dataset``."""
    with warnings.catch_warnings():
        # Lightning's advice to keep nn.Module hyperparameters out of hparams: they are.
        warnings.filterwarnings("ignore", message=".*is an instance of `nn.Module`.*")
        return _new_network(dataset, spec, loss_weights)


def _new_network(
    dataset: TimeSeriesDataSet, spec: ModelSpec, loss_weights: list[float]
) -> TemporalFusionTransformer:
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
        loss=_loss(spec, loss_weights),
        log_interval=-1,
        # Effectively no plateau schedule: validation runs once after fitting. (None
        # breaks pytorch-forecasting 1.8's optimizer config under Lightning 2.6.)
        reduce_on_plateau_patience=1000,
    )


def network_hparams(network: TemporalFusionTransformer) -> dict[str, Any]:
    """The network's constructor arguments as JSON-ready data (objects left out)."""
    plain = {k: v for k, v in dict(network.hparams).items() if k not in _REBUILT_HPARAMS}
    # Round-trip through JSON so tuples and numpy values become what a load will see.
    return json.loads(json.dumps(plain, default=_json_default))


def _json_default(value: Any) -> Any:
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
            loss=_loss(spec, loss_weights),
            logging_metrics=torch.nn.ModuleList([]),
            output_transformer=dataset_parameters["target_normalizer"],
            dataset_parameters=dataset_parameters,
        )


def hide_names(frame: pd.DataFrame, share: float, seed: int = 0) -> pd.DataFrame:
    """Append copies of a share of the servers with their name hidden.

    Without this the unknown-server embedding (category 0) never trains, and a server
    the model never saw would be forecast through random weights. The copies teach it
    to forecast from history and profile alone.
    """
    servers = np.array(sorted(frame["server_name"].unique()))
    if share <= 0 or len(servers) == 0:
        return frame
    count = max(1, int(round(share * len(servers))))
    chosen = np.random.default_rng(seed).choice(servers, size=count, replace=False)
    copies = frame[frame["server_name"].isin(chosen)].copy()
    copies["series"] = copies["series"] + "~hidden"
    copies["server_name"] = _HIDDEN_NAME
    return pd.concat([frame, copies], ignore_index=True)


def loss_weights(frame: pd.DataFrame, spec: ModelSpec) -> list[float]:
    """Per-target loss weights: inverse fleet-wide spread, averaging 1.

    The quantile loss is taken in each metric's own units; unweighted, percentages
    would drown out load average.
    """
    spread = frame[list(spec.targets)].std().fillna(1.0).clip(lower=1e-3).to_numpy()
    inv = 1.0 / spread
    return [float(w) for w in inv / inv.mean()]


def split_validation(frame: pd.DataFrame, spec: ModelSpec) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Training rows (each series minus its last horizon) and the validation series.

    Raises:
        InsufficientData: No series keeps a full training window after the split.
    """
    size = frame.groupby("series", sort=False)["time_idx"].transform("size")
    rank = frame.groupby("series", sort=False).cumcount()
    train = frame[rank < size - spec.horizon_steps]
    train_size = train.groupby("series", sort=False)["time_idx"].transform("size")
    train = train[train_size >= spec.encoder_steps + spec.horizon_steps]
    if train.empty:
        raise InsufficientData(
            f"no series is long enough to hold out a {spec.horizon_steps}-step validation "
            f"horizon and keep a {spec.encoder_steps + spec.horizon_steps}-step training window"
        )
    return train.reset_index(drop=True), frame


def fit(
    table: pa.Table,
    spec: ModelSpec,
    *,
    epochs: int,
    incremental: bool = False,
    base: Any | None = None,
    threads: int = 1,
    on_progress: Callable[[float], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    accelerator: str = "auto",
    seed: int = 0,
) -> TrainedModel:
    """Train a TFT on buffer rows, from scratch or continuing a published model.

    Args:
        table: Buffer rows (see ``frames.aggregate``).
        spec: Model spec; for incremental training it must match the base model's
            structure, otherwise training falls back to scratch and says why in ``notes``.
        epochs: Passes over (at most ``spec.max_windows_per_epoch``) training windows.
        incremental: Continue from ``base`` (an ``artifacts.LoadedModel``).
        base: The current model, or None; with ``incremental`` and no base, training
            starts from scratch and says so in ``notes``.
        threads: CPU threads torch may use when training on the CPU.
        on_progress: Called after every batch with the percentage done (0-100).
        should_stop: Polled before every batch; True cancels the fit.
        accelerator: "auto" (CUDA when present), "cpu" or "gpu".
        seed: Seed for weights, window sampling and the hidden-name copies.

    Raises:
        InsufficientData: Too little contiguous data for one training window.
        TrainingCancelled: ``should_stop`` returned True.
    """
    from nordiqd.model.fitting import run_trainer, validate  # keeps Lightning wiring apart

    started = time.monotonic()
    notes: list[str] = []
    torch.manual_seed(seed)
    frame = to_frame(table, spec)
    train_frame, val_frame = split_validation(frame, spec)
    train_frame = hide_names(train_frame, spec.unseen_share, seed)

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
            parameters = base.dataset_parameters
    continued = base is not None and parameters is not None

    train_ds = build_dataset(train_frame, spec, parameters)
    if continued and base is not None:
        weights = list(base.loss_weights)
        network = network_from_hparams(
            base.hparams, model_parameters(train_ds.get_parameters()), spec, weights
        )
        network.load_state_dict(base.network.state_dict())
    else:
        weights = loss_weights(train_frame, spec)
        network = build_network(train_ds, spec, weights)
    params_out = model_parameters(train_ds.get_parameters())
    device = run_trainer(
        network, train_ds, spec, epochs, threads, accelerator, on_progress, should_stop, seed
    )
    network = network.cpu().eval()
    val_ds = build_dataset(val_frame, spec, params_out, predict=True)
    validation = validate(network, val_ds, spec)

    ts = pc.min_max(table["timestamp"])
    window = (ts["min"].as_py(), ts["max"].as_py())
    if not isinstance(window[0], datetime):
        raise ModelError("the timestamp column is not a timestamp type")
    return TrainedModel(
        network=network,
        dataset_parameters=params_out,
        spec=spec,
        loss_weights=weights,
        epochs=epochs,
        incremental=continued,
        validation=validation,
        training_window=window,
        records=table.num_rows,
        servers=int(frame["server_name"].nunique()),
        seconds=time.monotonic() - started,
        device=device,
        notes=notes,
    )
