"""Training and validation windows as index pairs, and batches built from them as arrays.

A window is a (series, start) pair over ``FleetSeries``; a batch is one vectorised
gather of its windows' steps plus the arithmetic ``TimeSeriesDataSet.__getitem__`` and
its collate do per window in Python: each window's targets normalised by its own
encoder mean and standard deviation (``EncoderNormalizer``), that centre and scale
scaled as static inputs, the known time features, ``relative_time_idx``, the static
categories encoded. The result is the TFT's own input dict and target tuple, equal to
the dataset's collate to float tolerance (``tests/unit/test_model_windows.py``).

A hidden-name copy of a series (``unseen_share``: it teaches the unknown-server
embedding) is a flag on its entry in the index, not a copy of its data. The index
orders series by their id as the dataset's group encoder does (``<server>#<n>``, a copy
``<server>#<n>~hidden``), and each series' windows by start, so window ``i`` is the
dataset's window ``i`` and a sampler seeded alike draws the same windows.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from nordiqd.model.errors import InsufficientData, ModelError
from nordiqd.model.frames import TIME_FEATURES, time_features
from nordiqd.model.normalization import row_normalization
from nordiqd.model.params import ModelSpec
from nordiqd.model.series import FleetSeries
from nordiqd.model.shapes import single_target

_WEEK_S = 7 * 86_400
Batch = tuple[dict[str, Any], tuple[Any, None]]


@dataclass(frozen=True)
class WindowIndex:
    """Windows of a set of series: series ``v`` holds windows ``cum[v]`` to ``cum[v + 1]``.

    Attributes:
        series: Array [entries] int64, the ``FleetSeries`` index of each entry.
        hidden: Array [entries] bool, True for a hidden-name copy.
        offset: Array [entries] int64, the start (step within the series) of the
            entry's first window.
        cum: Array [entries + 1] int64, cumulative window counts.
        length: Steps of the part of each series the windows may use [entries].
    """

    series: np.ndarray
    hidden: np.ndarray
    offset: np.ndarray
    cum: np.ndarray
    length: np.ndarray

    def __len__(self) -> int:
        return int(self.cum[-1])

    def locate(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each window's entry and its start step within the series."""
        entry = np.searchsorted(self.cum, windows, side="right") - 1
        return entry, self.offset[entry] + (windows - self.cum[entry])


def _ordered(series: FleetSeries, rows: np.ndarray, hidden: np.ndarray) -> np.ndarray:
    """Positions of (series, hidden) entries sorted by their dataset id."""
    names = series.series_names()
    ids = [names[s] + ("~hidden" if h else "") for s, h in zip(rows.tolist(), hidden.tolist(), strict=True)]
    return np.asarray(sorted(range(len(ids)), key=ids.__getitem__), dtype=np.int64)


def training_windows(series: FleetSeries, spec: ModelSpec, seed: int = 0) -> WindowIndex:
    """Every full window of each series minus its last horizon, plus hidden-name copies.

    The last ``horizon_steps`` of each series are held out for validation; a series
    left without a full window is skipped. ``spec.unseen_share`` of the servers (drawn
    with ``seed``) get a hidden-name copy of each of their series.

    Raises:
        InsufficientData: No series keeps a full training window after the split.
    """
    span = spec.encoder_steps + spec.horizon_steps
    usable = series.lengths - spec.horizon_steps
    kept = np.flatnonzero(usable >= span)
    if kept.size == 0:
        raise InsufficientData(
            f"no series is long enough to hold out a {spec.horizon_steps}-step validation "
            f"horizon and keep a {span}-step training window"
        )
    servers = np.array(sorted({series.names[s] for s in series.server[kept].tolist()}))
    copies = np.zeros(0, dtype=np.int64)
    if spec.unseen_share > 0:
        count = max(1, int(round(spec.unseen_share * len(servers))))
        chosen = set(np.random.default_rng(seed).choice(servers, size=count, replace=False).tolist())
        copies = np.asarray(
            [s for s in kept.tolist() if series.names[series.server[s]] in chosen], dtype=np.int64
        )
    rows = np.concatenate([kept, copies])
    hidden = np.concatenate([np.zeros(kept.size, bool), np.ones(copies.size, bool)])
    order = _ordered(series, rows, hidden)
    rows, hidden = rows[order], hidden[order]
    length = usable[rows]
    counts = length - span + 1
    return WindowIndex(
        series=rows,
        hidden=hidden,
        offset=np.zeros(rows.size, dtype=np.int64),
        cum=np.concatenate(([0], np.cumsum(counts))).astype(np.int64),
        length=length,
    )


def validation_windows(series: FleetSeries, spec: ModelSpec) -> WindowIndex:
    """One window per series, ending at its last step (its last horizon is the target)."""
    span = spec.encoder_steps + spec.horizon_steps
    rows = np.arange(len(series.first_tick), dtype=np.int64)
    rows = rows[_ordered(series, rows, np.zeros(rows.size, bool))]
    length = series.lengths[rows]
    return WindowIndex(
        series=rows,
        hidden=np.zeros(rows.size, bool),
        offset=length - span,
        cum=np.arange(rows.size + 1, dtype=np.int64),
        length=length,
    )


class BatchSet(Dataset[Batch], ABC):
    """Collated batches by window number: ``batches[rows]`` is the batch of those windows."""

    @abstractmethod
    def __len__(self) -> int:
        """Windows to draw from."""

    @abstractmethod
    def __getitem__(self, windows: Sequence[int] | np.ndarray) -> Batch:
        """The collated batch of these windows: (input dict, (target, None))."""


class WindowBatches(BatchSet):
    """The TFT's batches of windows, built as arrays; a map-style dataset of batches.

    ``batches[rows]`` (``rows`` a sequence of window numbers) is one collated batch,
    so a ``DataLoader`` with a ``BatchSampler`` as its sampler and ``batch_size=None``
    serves them, in the calling process or in loader workers.

    Args:
        series: The fleet's series.
        index: The windows.
        spec: Model spec.
        parameters: Dataset parameters (``TimeSeriesDataSet.get_parameters()``): the
            label encoders and scalers.
        reals: The network's continuous inputs, in its order (``hparams.x_reals``).
        categoricals: Its categorical inputs (``hparams.x_categoricals``).

    Raises:
        ModelError: The network needs an input this builder cannot make.
    """

    def __init__(
        self,
        series: FleetSeries,
        index: WindowIndex,
        spec: ModelSpec,
        parameters: dict[str, Any],
        reals: Sequence[str],
        categoricals: Sequence[str],
    ) -> None:
        self.series, self.index, self.spec = series, index, spec
        self.reals, self.categoricals = list(reals), list(categoricals)
        known = {*TIME_FEATURES, "relative_time_idx", *spec.targets}
        known |= {f"{t}_{stat}" for t in spec.targets for stat in ("center", "scale")}
        unknown = [name for name in self.reals if name not in known]
        unknown += [name for name in self.categoricals if name not in ("server_name", "profile")]
        if unknown:
            raise ModelError(
                f"the model needs input {', '.join(unknown)}, which the window batches cannot build"
            )
        encoders = parameters["categorical_encoders"]
        labels = {"server_name": series.names, "profile": series.profiles}
        # Codes per server; a hidden copy's name is the unknown category, 0.
        self._codes = {
            name: np.fromiter(
                (encoders[name].classes_.get(v, 0) for v in labels[name]), np.int64, len(labels[name])
            )
            for name in self.categoricals
        }
        self._scalers = {
            name: (float(s.mean_[0]), float(s.scale_[0]))
            for name, s in parameters["scalers"].items()
            if s is not None and name in self.reals
        }
        enc, span = spec.encoder_steps, spec.encoder_steps + spec.horizon_steps
        self._steps = np.arange(span, dtype=np.int64)
        self._relative = torch.arange(-enc, spec.horizon_steps, dtype=torch.float32) / enc
        week = _WEEK_S // spec.step_seconds if _WEEK_S % spec.step_seconds == 0 else 0
        # The time features repeat every week: one table, looked up per step.
        self._week = week
        table = time_features(np.arange(week, dtype=np.int64) * spec.step_seconds) if week else None
        self._features = None if table is None else np.ascontiguousarray(table.T)

    def __len__(self) -> int:
        return len(self.index)

    def _time_features(self, ticks: np.ndarray) -> torch.Tensor:
        """The time features of steps ``ticks`` [n, span], as [features, n, span]."""
        if self._features is not None:
            return torch.from_numpy(np.take(self._features, ticks % self._week, axis=1))
        return torch.from_numpy(np.moveaxis(time_features(ticks * self.spec.step_seconds), -1, 0))

    def _scaled(self, name: str, values: torch.Tensor) -> torch.Tensor:
        if name not in self._scalers:
            return values
        mean, scale = self._scalers[name]
        return (values - mean) / scale

    def __getitem__(self, windows: Sequence[int] | np.ndarray) -> Batch:
        """The collated batch of these windows: (input dict, (target, None))."""
        spec = self.spec
        enc, hor = spec.encoder_steps, spec.horizon_steps
        rows = np.asarray(windows, dtype=np.int64)
        n = rows.size
        entry, start = self.index.locate(rows)
        series = self.index.series[entry]
        first = self.series.starts[series] + start
        # [n, m, span]: each target's steps contiguous, as the network reads them.
        y = torch.from_numpy(
            np.ascontiguousarray(self.series.values[first[:, None] + self._steps].transpose(0, 2, 1))
        )
        center, scale = row_normalization(y[..., :enc].contiguous())
        normed = (y - center[..., None]) / scale[..., None]
        tick0 = self.series.first_tick[series] + start
        columns: dict[str, torch.Tensor] = dict(
            zip(TIME_FEATURES, self._time_features(tick0[:, None] + self._steps), strict=True)
        )
        columns = {name: self._scaled(name, value) for name, value in columns.items()}
        columns["relative_time_idx"] = self._relative
        for i, name in enumerate(spec.targets):
            columns[name] = normed[:, i]
            for stat, value in (("center", center[:, i]), ("scale", scale[:, i])):
                scaled = f"{name}_{stat}"
                columns[scaled] = self._scaled(scaled, value)[:, None]
        # Laid out [n, span, inputs], as the dataset's collate gives it: the network's
        # step runs about 5 % faster on it than on a transposed view.
        cont = torch.empty(n, enc + hor, len(self.reals))
        for k, name in enumerate(self.reals):
            cont[..., k] = columns[name]
        server = self.series.server[series]
        codes = {name: codes[server] for name, codes in self._codes.items()}
        if "server_name" in codes:
            codes["server_name"] = np.where(self.index.hidden[entry], 0, codes["server_name"])
        cat = torch.from_numpy(np.stack([codes[name] for name in self.categoricals], axis=-1))
        # Materialised, not an expanded view: pinning copies into a tensor of the same
        # strides, which cannot hold overlapping elements.
        cat = cat[:, None].expand(n, enc + hor, -1).contiguous()
        m = len(spec.targets)
        enc_target = [y[:, i, :enc] for i in range(m)]
        dec_target = [y[:, i, enc:] for i in range(m)]
        target_scale = [torch.stack([center[:, i], scale[:, i]], dim=-1) for i in range(m)]
        one = single_target(spec)
        target: Any = dec_target[0] if one else dec_target
        x = {
            "encoder_cat": cat[:, :enc],
            "encoder_cont": cont[:, :enc],
            "encoder_target": enc_target[0] if one else enc_target,
            "encoder_lengths": torch.full((n,), enc, dtype=torch.long),
            "decoder_cat": cat[:, enc:],
            "decoder_cont": cont[:, enc:],
            "decoder_target": target,
            "decoder_lengths": torch.full((n,), hor, dtype=torch.long),
            "decoder_time_idx": torch.from_numpy(tick0 + enc)[:, None] + torch.arange(hor),
            "groups": torch.from_numpy(entry)[:, None],
            "target_scale": target_scale[0] if one else target_scale,
        }
        return x, (target, None)
