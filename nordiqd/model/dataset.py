"""The TFT's training data: ``TimeSeriesDataSet`` arguments, scalers, encoders and splits.

Normalisation is chosen so the model generalises to servers it never saw: each target
is scaled by the mean and standard deviation of the window's own encoder history
(``EncoderNormalizer``), and that centre and scale are fed to the network as static
inputs, scaled by a ``StandardScaler`` fitted across all servers. Nothing is fitted per
server name, so an unseen server needs nothing but its history and its profile.

Training builds no dataset over its data either: ``fitted_dataset`` fits the encoders,
scalers and loss weights on the arrays of ``series``/``windows`` and wraps them in a
one-window ``TimeSeriesDataSet``, whose parameters are what a model is saved with and
from which the network is built; ``windows.WindowBatches`` then builds the batches. The
frame path (``build_dataset``, ``split_validation``, ``hide_names``) is the reference
tests and benchmarks hold those to. Serving never builds a dataset:
``forecast.WindowForecaster`` applies the saved encoders and scalers to whole arrays
itself, so only training imports this module.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

import numpy as np
import pandas as pd
from pytorch_forecasting import TimeSeriesDataSet
from pytorch_forecasting.data.encoders import EncoderNormalizer, MultiNormalizer, NaNLabelEncoder
from sklearn.preprocessing import StandardScaler

from nordiqd.model.errors import InsufficientData
from nordiqd.model.frames import TIME_FEATURES
from nordiqd.model.params import ModelSpec
from nordiqd.model.series import FleetSeries
from nordiqd.model.shapes import single_target
from nordiqd.model.windows import WindowIndex

# Name given to the hidden copy of a server: any label the encoder does not know maps
# to the unknown category (index 0).
_HIDDEN_NAME = ""


def _scale_scalers(frame: pd.DataFrame, spec: ModelSpec) -> dict[str, StandardScaler]:
    """Scalers, across all servers, for the per-window target centre and scale inputs.

    Fitted on per-series means and standard deviations, which is what the per-window
    values look like; fitting on the dataset's own column would see one constant.
    """
    stats = frame.groupby("series", sort=False)[list(spec.targets)].agg(["mean", "std"]).fillna(0.0)
    return _stat_scalers(
        spec,
        {t: stats[(t, "mean")].to_numpy(np.float64) for t in spec.targets},
        {t: stats[(t, "std")].to_numpy(np.float64) for t in spec.targets},
    )


def _stat_scalers(
    spec: ModelSpec, means: dict[str, np.ndarray], stds: dict[str, np.ndarray]
) -> dict[str, StandardScaler]:
    scalers: dict[str, StandardScaler] = {}
    for target in spec.targets:
        for values, name in ((means[target], "center"), (stds[target], "scale")):
            scalers[f"{target}_{name}"] = StandardScaler().fit(values.reshape(-1, 1))
    return scalers


def _label_encoder(values: pd.Series) -> NaNLabelEncoder:
    # warn=False: unseen servers are expected, not worth a warning per batch.
    return NaNLabelEncoder(add_nan=True, warn=False).fit(values.astype(str))


def dataset_kwargs(frame: pd.DataFrame, spec: ModelSpec) -> dict[str, Any]:
    """Constructor arguments of a fresh ``TimeSeriesDataSet`` for this frame and spec."""
    real_names = frame.loc[frame["server_name"] != _HIDDEN_NAME, "server_name"]
    encoders = {"server_name": _label_encoder(real_names), "profile": _label_encoder(frame["profile"])}
    return _kwargs(spec, encoders, _scale_scalers(frame, spec))


def _kwargs(
    spec: ModelSpec, encoders: dict[str, NaNLabelEncoder], target_scalers: dict[str, StandardScaler]
) -> dict[str, Any]:
    targets = list(spec.targets)
    scalers: dict[str, StandardScaler | None] = {name: None for name in (*TIME_FEATURES, "relative_time_idx")}
    scalers.update(target_scalers)
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
        categorical_encoders=encoders,
        scalers=scalers,
        add_relative_time_idx=True,
        add_target_scales=True,
        add_encoder_length=False,
    )


def _entry_moments(series: FleetSeries, index: WindowIndex) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows, mean and sum of squared deviations [entries, targets] of each entry's usable steps."""
    n = index.length.astype(np.float64)
    mean = np.empty((len(n), len(series.targets)))
    m2 = np.empty_like(mean)
    done: dict[int, int] = {}
    for e, (s, length) in enumerate(zip(index.series.tolist(), index.length.tolist(), strict=True)):
        if s in done:  # a hidden copy: the same steps as its series
            mean[e], m2[e] = mean[done[s]], m2[done[s]]
            continue
        done[s] = e
        rows = series.values[series.starts[s] : series.starts[s] + length].astype(np.float64)
        mean[e] = rows.mean(axis=0)
        m2[e] = ((rows - mean[e]) ** 2).sum(axis=0)
    return n, mean, m2


def fitted_dataset(
    series: FleetSeries, index: WindowIndex, spec: ModelSpec
) -> tuple[TimeSeriesDataSet, list[float]]:
    """A one-window dataset whose parameters are those of the whole training set, and loss weights.

    The label encoders and scalers are fitted on every training window's series (hidden
    copies included, as a dataset over the frame with its copies would fit them); the
    dataset itself holds one window, so building it costs nothing, yet its
    ``get_parameters()`` and the network ``from_dataset`` builds are the ones a dataset
    over every window would give.
    """
    n, mean, m2 = _entry_moments(series, index)
    std = np.sqrt(m2 / np.maximum(n - 1, 1)[:, None])
    scalers = _stat_scalers(
        spec,
        {t: mean[:, i] for i, t in enumerate(spec.targets)},
        {t: std[:, i] for i, t in enumerate(spec.targets)},
    )
    real = {series.names[s] for s in series.server[index.series[~index.hidden]].tolist()}
    profiles = {series.profiles[s] for s in series.server[index.series].tolist()}
    encoders = {
        "server_name": _label_encoder(pd.Series(sorted(real))),
        "profile": _label_encoder(pd.Series(sorted(profiles))),
    }
    first = int(index.series[0])
    span = spec.encoder_steps + spec.horizon_steps
    lo = int(series.starts[first])
    one = dataclasses.replace(
        series,
        values=series.values[lo : lo + span],
        starts=np.array([0, span], dtype=np.int64),
        first_tick=series.first_tick[first : first + 1],
        server=series.server[first : first + 1],
        segment=series.segment[first : first + 1],
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning)
        dataset = TimeSeriesDataSet(one.to_frame(), **_kwargs(spec, encoders, scalers))
    # Pooled over every row of every entry, as the frame's column std (ddof 1) is.
    total = n.sum()
    grand = (n[:, None] * mean).sum(axis=0) / total
    pooled = (m2 + n[:, None] * (mean - grand) ** 2).sum(axis=0) / max(total - 1, 1)
    return dataset, _inverse_spread_weights(np.sqrt(pooled))


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
    """Per-target loss weights: inverse spread across all servers, averaging 1.

    The quantile loss is taken in each metric's own units; unweighted, percentages
    would drown out load average.
    """
    return _inverse_spread_weights(frame[list(spec.targets)].std().fillna(1.0).to_numpy())


def _inverse_spread_weights(spread: np.ndarray) -> list[float]:
    inv = 1.0 / np.clip(spread, 1e-3, None)
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
