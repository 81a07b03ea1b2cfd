"""pytorch-forecasting's own paths, the references tests and benchmarks hold ours to.

``predict_via_dataframe`` is ``model.predict(DataFrame)``: it builds a
``TimeSeriesDataSet`` and runs Lightning's predict loop, about six times as slow as
``forecast.WindowForecaster``. ``DatasetBatches`` serves training batches the way the
trainer drew them before ``windows.WindowBatches``: each window cut and normalised by
``TimeSeriesDataSet.__getitem__``, then collated. Nothing serves or trains through
either.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from datetime import datetime

import numpy as np
import pandas as pd
import torch
from pytorch_forecasting import TimeSeriesDataSet

from nordiqd.model.artifacts import LoadedModel
from nordiqd.model.forecast import bucket_starts
from nordiqd.model.frames import TIME_FEATURES, time_features
from nordiqd.model.shapes import per_target
from nordiqd.model.windows import Batch, BatchSet


def predict_via_dataframe(
    model: LoadedModel,
    windows: np.ndarray,
    server_names: Sequence[str],
    profiles: Sequence[str],
    last_bucket: int | float | datetime | np.ndarray,
    *,
    batch_size: int = 256,
) -> np.ndarray:
    """Reference path: the same forecasts through ``model.predict(DataFrame)``.

    Windows must be complete (no NaN). Returns [n_servers, n_targets, horizon, n_quantiles].
    """
    spec = model.spec
    n, enc, hor = windows.shape[0], spec.encoder_steps, spec.horizon_steps
    last = bucket_starts(last_bucket, n)
    ticks = (last[:, None] // spec.step_seconds) + np.arange(-enc + 1, hor + 1)[None, :]
    frame = pd.DataFrame(
        {
            # Zero-padded ids keep the dataset's group order equal to the input order.
            "series": np.repeat([f"{i:09d}" for i in range(n)], enc + hor).astype(object),
            "server_name": np.repeat(np.asarray(server_names, dtype=object), enc + hor),
            "profile": np.repeat(np.asarray(profiles, dtype=object), enc + hor),
            "time_idx": ticks.reshape(-1).astype(np.int64),
        }
    )
    feats = time_features(ticks.reshape(-1) * spec.step_seconds)
    for i, name in enumerate(TIME_FEATURES):
        frame[name] = feats[:, i]
    future = np.zeros((n, hor, len(spec.targets)))  # unknown in the decoder; never read
    values = np.concatenate([np.asarray(windows, dtype=np.float64), future], axis=1)
    for i, target in enumerate(spec.targets):
        frame[target] = values[:, :, i].reshape(-1)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*feature names.*")
        warnings.filterwarnings("ignore", message=".*tensorboardX.*")
        warnings.filterwarnings("ignore", message=".*LeafSpec.*")
        pred = model.network.predict(
            frame, mode="quantiles", batch_size=batch_size, trainer_kwargs={"logger": False}
        )
    return torch.stack([p.float() for p in per_target(pred)], dim=1).cpu().numpy()


class DatasetBatches(BatchSet):
    """Batches of a ``TimeSeriesDataSet``'s windows through its own ``__getitem__`` and collate."""

    def __init__(self, dataset: TimeSeriesDataSet) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, windows: Sequence[int] | np.ndarray) -> Batch:
        """The dataset's collate of these windows."""
        with warnings.catch_warnings():
            # sklearn notes the scalers were fitted on arrays; the dataset passes frames.
            warnings.filterwarnings("ignore", message=".*feature names.*")
            batch: Batch = self.dataset._collate_fn([self.dataset[int(i)] for i in windows])
        return batch
