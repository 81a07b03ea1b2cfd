"""Quantile forecasts for many servers in one batched forward pass, from their windows.

``model.predict(DataFrame)`` builds a ``TimeSeriesDataSet`` and a dataloader on every
call: label-encoding every row, fitting normalisers per window and collating in Python.
``WindowForecaster`` does the same arithmetic once per pass on whole arrays: it encodes
names with the model's saved label encoders, normalises each window by its own encoder
mean and standard deviation (what ``EncoderNormalizer`` does per sample), scales the
static inputs with the saved scalers, builds the TFT's input dict and runs the network's
forecast-only forward pass (``nordiqd.model.inference``) on batches of windows that end
at the same step.
``reference.predict_via_dataframe`` is the slow reference path, kept for tests and
benchmarks.

This is serving code: it imports no training module (no dataset building, no Lightning
trainer), and ``tests/unit/test_model_serving_imports.py`` holds it to that.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import torch
from pytorch_forecasting.data.encoders import EncoderNormalizer, MultiNormalizer

from nordiqd.model.artifacts import LoadedModel
from nordiqd.model.errors import ForecastCancelled, ModelError
from nordiqd.model.frames import TIME_FEATURES, time_features
from nordiqd.model.inference import TftInference
from nordiqd.model.normalization import encoder_normalization
from nordiqd.model.shapes import per_target, single_target

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QuantileForecasts:
    """Quantile forecasts for many servers, from one pass.

    Attributes:
        values: Array [n_servers, n_targets, horizon, n_quantiles] in metric units;
            NaN for servers whose window had no data for some target.
        valid: Array [n_servers] of bool, False where ``values`` is NaN.
        server_names: Servers in ``values`` order.
        targets: Targets in ``values`` order.
        quantiles: Quantiles in ``values`` order.
        first_bucket: UTC epoch seconds of the first forecast step, per server.
    """

    values: np.ndarray
    valid: np.ndarray
    server_names: list[str]
    targets: tuple[str, ...]
    quantiles: tuple[float, ...]
    first_bucket: np.ndarray

    def for_server(self, index: int) -> dict[str, np.ndarray]:
        """Per target, the array [horizon, n_quantiles] of server ``index``."""
        return {t: self.values[index, i] for i, t in enumerate(self.targets)}


def bucket_starts(last_bucket: int | float | datetime | np.ndarray, n: int) -> np.ndarray:
    """Each window's last bucket start as int64 epoch seconds [n], from one value or n."""
    if isinstance(last_bucket, datetime):
        last_bucket = last_bucket.timestamp()
    out = np.broadcast_to(np.asarray(last_bucket, dtype=np.float64), (n,))
    return out.astype(np.int64)


def _fill(windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Carry values forward then backward over NaNs; mark windows with an empty target."""
    x = np.array(windows, dtype=np.float64, copy=True)  # [n, T, m]
    finite = np.isfinite(x)
    if finite.all():  # the usual case: nothing to fill
        return x, np.ones(x.shape[0], dtype=bool)
    valid = np.asarray(finite.any(axis=1).all(axis=-1))
    t = np.arange(x.shape[1])[None, :, None]
    last = np.maximum.accumulate(np.where(finite, t, 0), axis=1)
    x = np.take_along_axis(x, last, axis=1)  # forward fill (leading NaNs stay)
    first = np.argmax(np.isfinite(x), axis=1)[:, None, :]
    lead = np.take_along_axis(x, first, axis=1)
    x = np.where(np.isfinite(x), x, lead)
    return np.nan_to_num(x), valid


class WindowForecaster:
    """Batched TFT forecasts for many servers at once from aggregated windows.

    Args:
        model: A loaded model.
        batch_size: Servers per forward pass; bounds memory, not results. On a CPU a
            few dozen is fastest: at the default size, 256 windows of activations no
            longer fit the caches and the pass gets slower per server.
        workers: Threads that run the batches of a pass side by side. Each runs whole
            forward passes with torch's own threads (one, in the predictor), so a busy
            core slows one batch instead of stalling every thread at an op's barrier.
        device: Torch device for the network.
    """

    def __init__(
        self, model: LoadedModel, *, batch_size: int = 64, workers: int = 1, device: str = "cpu"
    ) -> None:
        self.model = model
        self.spec = model.spec
        self.batch_size = batch_size
        self.workers = workers
        self.device = torch.device(device)
        self.network = model.network.to(self.device).eval()
        try:
            self._forward: Any = TftInference(self.network)
        except ModelError as exc:
            log.warning("%s; forecasts use the network's own forward pass", exc)
            self._forward = lambda x: self.network(x)["prediction"]
        params = model.dataset_parameters
        normalizer = params["target_normalizer"]
        normalizers = normalizer.normalizers if isinstance(normalizer, MultiNormalizer) else [normalizer]
        for norm in normalizers:
            if not isinstance(norm, EncoderNormalizer) or norm.method != "standard" or not norm.center:
                raise ModelError("the window forecaster needs standard EncoderNormalizer targets")
            if norm.transformation is not None or norm.max_length is not None:
                raise ModelError("the window forecaster does not support target transformations")
        self._encoders = params["categorical_encoders"]
        self._scalers = params["scalers"]
        self._x_reals: list[str] = list(model.hparams["x_reals"])
        self._x_cats: list[str] = list(model.hparams["x_categoricals"])

    def _codes(self, name: str, labels: Sequence[str]) -> np.ndarray:
        classes = self._encoders[name].classes_
        return np.fromiter((classes.get(label, 0) for label in labels), dtype=np.int64, count=len(labels))

    def _scaled(self, name: str, values: torch.Tensor) -> torch.Tensor:
        scaler = self._scalers.get(name)
        if scaler is None:
            return values
        mean = torch.as_tensor(scaler.mean_[0], dtype=values.dtype)
        return (values - mean) / torch.as_tensor(scaler.scale_[0], dtype=values.dtype)

    def inputs(
        self,
        windows: np.ndarray,
        server_names: Sequence[str],
        profiles: Sequence[str],
        last_bucket: np.ndarray,
    ) -> dict[str, Any]:
        """The network's input dict for already filled windows [n, encoder, targets].

        ``target_scale`` is a list of [n, 2] (centre, scale) tensors, one per target, or
        the bare tensor for a single-target model, as the model's dataset collates it.
        """
        spec = self.spec
        n, enc, hor = windows.shape[0], spec.encoder_steps, spec.horizon_steps
        y = torch.as_tensor(windows, dtype=torch.float32)
        center, scale = encoder_normalization(y)
        steps = np.arange(-enc + 1, hor + 1, dtype=np.int64) * spec.step_seconds
        # Windows that end at the same step (a whole batch, as forecast() orders them)
        # have the same time features: computed once, broadcast.
        ends, row = np.unique(last_bucket, return_inverse=True)
        feats = torch.as_tensor(time_features(ends[:, None] + steps[None, :]))[torch.as_tensor(row.ravel())]
        columns: dict[str, torch.Tensor] = {}
        for i, name in enumerate(TIME_FEATURES):
            columns[name] = self._scaled(name, feats[..., i])
        columns["relative_time_idx"] = (torch.arange(-enc, hor, dtype=torch.float32) / enc).expand(n, -1)
        for i, target in enumerate(spec.targets):
            normed = (y[:, :, i] - center[:, i, None]) / scale[:, i, None]
            columns[target] = torch.cat([normed, torch.zeros(n, hor)], dim=1)
            for stat, value in (("center", center[:, i]), ("scale", scale[:, i])):
                columns[f"{target}_{stat}"] = self._scaled(f"{target}_{stat}", value)[:, None].expand(
                    n, enc + hor
                )
        try:
            cont = torch.stack([columns[name] for name in self._x_reals], dim=-1)
        except KeyError as exc:
            raise ModelError(
                f"the model needs input {exc}, which the window forecaster cannot build"
            ) from None
        labels = {"server_name": server_names, "profile": profiles}
        cat = torch.stack(
            [
                torch.as_tensor(self._codes(name, labels[name]))[:, None].expand(n, enc + hor)
                for name in self._x_cats
            ],
            dim=-1,
        )
        target_scale = [torch.stack([center[:, i], scale[:, i]], dim=-1) for i in range(len(spec.targets))]
        return {
            "encoder_cat": cat[:, :enc],
            "decoder_cat": cat[:, enc:],
            "encoder_cont": cont[:, :enc],
            "decoder_cont": cont[:, enc:],
            "encoder_lengths": torch.full((n,), enc, dtype=torch.long),
            "decoder_lengths": torch.full((n,), hor, dtype=torch.long),
            "target_scale": target_scale[0] if single_target(spec) else target_scale,
        }

    def forecast(
        self,
        windows: np.ndarray,
        server_names: Sequence[str],
        profiles: Sequence[str],
        last_bucket: int | float | datetime | np.ndarray,
        *,
        cancelled: Callable[[], bool] | None = None,
    ) -> QuantileForecasts:
        """Forecast every server in one batched pass (chunked by ``batch_size``).

        Args:
            windows: Array [n_servers, encoder_steps, n_targets], the model step means of
                ``spec.targets`` in order, oldest first; NaN gaps are carried over.
            server_names: Names, one per window; unknown names use the unseen-server path.
            profiles: Profiles, one per window.
            last_bucket: UTC start (epoch seconds or datetime) of each window's last
                step; one value for all or one per server.
            cancelled: Asked before every batch; True abandons the pass.

        Returns:
            The forecasts, in metric units.

        Raises:
            ForecastCancelled: ``cancelled`` said so.
        """
        spec = self.spec
        windows = np.asarray(windows)
        n = windows.shape[0]
        if windows.ndim != 3 or windows.shape[1:] != (spec.encoder_steps, len(spec.targets)):
            raise ModelError(
                f"windows must be [n, {spec.encoder_steps}, {len(spec.targets)}], got {list(windows.shape)}"
            )
        if len(server_names) != n or len(profiles) != n:
            raise ModelError("server_names and profiles must have one entry per window")
        filled, valid = _fill(windows)
        last = bucket_starts(last_bucket, n)
        out = np.full((n, len(spec.targets), spec.horizon_steps, len(spec.quantiles)), np.nan, np.float32)
        names, profs = list(map(str, server_names)), list(map(str, profiles))
        # Windows that end at the same step share their time inputs: batch them together.
        order = np.argsort(last, kind="stable")
        batches = [order[lo : lo + self.batch_size] for lo in range(0, n, self.batch_size)]
        done = [0]

        def run(rows: np.ndarray) -> None:
            if cancelled is not None and cancelled():
                raise ForecastCancelled(f"forecast abandoned after {done[0]} of {n} servers")
            with torch.inference_mode():
                x = self.inputs(filled[rows], [names[i] for i in rows], [profs[i] for i in rows], last[rows])
                x = {
                    k: [t.to(self.device) for t in v] if isinstance(v, list) else v.to(self.device)
                    for k, v in x.items()
                }
                pred = per_target(self._forward(x))
                out[rows] = torch.stack([p.float() for p in pred], dim=1).cpu().numpy()
            done[0] += len(rows)

        if self.workers > 1 and len(batches) > 1:
            with ThreadPoolExecutor(min(self.workers, len(batches)), thread_name_prefix="forecast") as pool:
                for _ in pool.map(run, batches):  # re-raises the first failure
                    pass
        else:
            for rows in batches:
                run(rows)
        out[~valid] = np.nan
        return QuantileForecasts(
            values=out,
            valid=valid,
            server_names=names,
            targets=spec.targets,
            quantiles=spec.quantiles,
            first_bucket=last + spec.step_seconds,
        )
