"""Dataset parameters to JSON and back, without pickle.

A ``TimeSeriesDataSet``'s parameters hold fitted objects: label encoders, scalers and
target normalizers. Pickling them would let a model directory run code on load, so each
supported class is written as a tagged JSON object of its settings and fitted state, and
rebuilt from exactly that. Any other class is refused on write and on read.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from pytorch_forecasting.data.encoders import (
    EncoderNormalizer,
    MultiNormalizer,
    NaNLabelEncoder,
    TorchNormalizer,
)
from sklearn.preprocessing import StandardScaler

from nordiqd.model.errors import ModelError

_KIND = "__kind__"
# Settings that describe one particular frame, not the model; from_parameters must
# recompute them for whatever data it is given.
_FRAME_SPECIFIC = ("min_prediction_idx", "predict_mode")


def to_json(parameters: dict[str, Any]) -> dict[str, Any]:
    """Encode ``TimeSeriesDataSet.get_parameters()`` as JSON-ready builtins.

    Series-id encoders are left out: they name the series of one frame and every
    dataset refits its own.

    Raises:
        ModelError: A parameter holds an object of a class this module cannot write.
    """
    out: dict[str, Any] = {}
    for key, value in parameters.items():
        if key in _FRAME_SPECIFIC:
            continue
        if key == "categorical_encoders":
            groups = set(parameters["group_ids"])
            value = {k: v for k, v in value.items() if k not in groups and not k.startswith("__group_id__")}
        out[key] = _encode(value, key)
    return out


def from_json(data: dict[str, Any]) -> dict[str, Any]:
    """Rebuild parameters for ``TimeSeriesDataSet.from_parameters`` from ``to_json`` output.

    Raises:
        ModelError: An object has an unknown kind or misses a field.
    """
    params = {key: _decode(value, key) for key, value in data.items()}
    params["min_prediction_idx"] = None
    params["predict_mode"] = False
    return params


def _plain(value: Any) -> Any:
    """Numpy scalars and arrays to Python numbers and lists."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _encode(value: Any, where: str) -> Any:
    value = _plain(value)
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ModelError(f"dataset parameter {where} is not finite")
        return value
    if isinstance(value, list | tuple):
        return [_encode(v, where) for v in value]
    if isinstance(value, dict):
        return {str(k): _encode(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, MultiNormalizer):
        return {_KIND: "MultiNormalizer", "normalizers": [_encode(n, where) for n in value.normalizers]}
    if isinstance(value, EncoderNormalizer):
        return {
            _KIND: "EncoderNormalizer",
            "method": value.method,
            "center": value.center,
            "max_length": _encode(value.max_length, where),
            "transformation": _transformation(value.transformation, where),
            "method_kwargs": _encode(value.method_kwargs, where),
        }
    if type(value) is TorchNormalizer:  # subclasses (GroupNormalizer) hold more state
        fitted = hasattr(value, "center_")
        return {
            _KIND: "TorchNormalizer",
            "method": value.method,
            "center": value.center,
            "transformation": _transformation(value.transformation, where),
            "method_kwargs": _encode(value.method_kwargs, where),
            "center_": _encode(np.asarray(value.center_, dtype=np.float64), where) if fitted else None,
            "scale_": _encode(np.asarray(value.scale_, dtype=np.float64), where) if fitted else None,
        }
    if isinstance(value, NaNLabelEncoder):
        return {
            _KIND: "NaNLabelEncoder",
            "add_nan": value.add_nan,
            "warn": value.warn,
            # Pairs, not an object: labels need not be strings and order matters.
            "classes": [[_plain(k), int(v)] for k, v in getattr(value, "classes_", {}).items()],
        }
    if isinstance(value, StandardScaler):
        return {
            _KIND: "StandardScaler",
            "with_mean": value.with_mean,
            "with_std": value.with_std,
            "mean_": _encode(value.mean_, where),
            "scale_": _encode(value.scale_, where),
            "var_": _encode(value.var_, where),
            "n_samples_seen_": _encode(value.n_samples_seen_, where),
        }
    raise ModelError(f"dataset parameter {where} holds a {type(value).__name__}, which cannot be saved")


def _transformation(value: Any, where: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise ModelError(f"dataset parameter {where} uses a custom transformation, which cannot be saved")


def _decode(value: Any, where: str) -> Any:
    if isinstance(value, list):
        return [_decode(v, where) for v in value]
    if not isinstance(value, dict):
        return value
    kind = value.get(_KIND)
    if kind is None:
        return {k: _decode(v, f"{where}.{k}") for k, v in value.items()}
    try:
        return _BUILDERS[kind](value)
    except KeyError as exc:
        if kind not in _BUILDERS:
            raise ModelError(f"dataset parameter {where} has unknown kind {kind!r}") from None
        raise ModelError(f"dataset parameter {where} ({kind}) lacks {exc}") from None


def _multi(value: dict[str, Any]) -> MultiNormalizer:
    return MultiNormalizer([_decode(n, "normalizers") for n in value["normalizers"]])


def _encoder_normalizer(value: dict[str, Any]) -> EncoderNormalizer:
    return EncoderNormalizer(
        method=value["method"],
        center=value["center"],
        max_length=value["max_length"],
        transformation=value["transformation"],
        method_kwargs=value["method_kwargs"],
    )


def _torch_normalizer(value: dict[str, Any]) -> TorchNormalizer:
    norm = TorchNormalizer(
        method=value["method"],
        center=value["center"],
        transformation=value["transformation"],
        method_kwargs=value["method_kwargs"],
    )
    if value["center_"] is not None:
        norm.center_ = np.asarray(value["center_"], dtype=np.float64)
        norm.scale_ = np.asarray(value["scale_"], dtype=np.float64)
    return norm


def _label_encoder(value: dict[str, Any]) -> NaNLabelEncoder:
    enc = NaNLabelEncoder(add_nan=value["add_nan"], warn=value["warn"])
    if value["classes"]:
        enc.classes_ = {label: int(code) for label, code in value["classes"]}
        enc.classes_vector_ = np.array(list(enc.classes_))
    return enc


def _standard_scaler(value: dict[str, Any]) -> StandardScaler:
    scaler = StandardScaler(with_mean=value["with_mean"], with_std=value["with_std"])
    scaler.mean_ = np.asarray(value["mean_"], dtype=np.float64)
    scaler.scale_ = np.asarray(value["scale_"], dtype=np.float64)
    scaler.var_ = np.asarray(value["var_"], dtype=np.float64)
    scaler.n_samples_seen_ = value["n_samples_seen_"]
    scaler.n_features_in_ = int(scaler.mean_.shape[0])
    return scaler


_BUILDERS: dict[str, Any] = {
    "MultiNormalizer": _multi,
    "EncoderNormalizer": _encoder_normalizer,
    "TorchNormalizer": _torch_normalizer,
    "NaNLabelEncoder": _label_encoder,
    "StandardScaler": _standard_scaler,
}
