"""Training batches built as arrays equal what ``TimeSeriesDataSet`` and its collate give.

The reference is pytorch-forecasting's own path, as the trainer used it before batches
were built as arrays: ``frames.to_frame``, the validation split, hidden-name copies, a
``TimeSeriesDataSet`` over the frame and its ``_collate_fn``. For the same windows, the
input dict and the target tuple must agree to float tolerance, and so must the dataset
parameters a model is saved with, the loss weights and the validation windows.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import torch
from torch.utils.data import BatchSampler, RandomSampler

from nordiqd.model import series as series_module
from nordiqd.model.dataset import (
    build_dataset,
    fitted_dataset,
    hide_names,
    loss_weights,
    model_parameters,
    split_validation,
)
from nordiqd.model.dataset_params import to_json
from nordiqd.model.frames import to_frame
from nordiqd.model.network import build_network
from nordiqd.model.params import ModelSpec
from nordiqd.model.reference import DatasetBatches
from nordiqd.model.series import fleet_series
from nordiqd.model.trainer import EpochBatches
from nordiqd.model.windows import WindowBatches, training_windows, validation_windows

T0_MS = 1_735_689_600_000  # 2025-01-01T00:00:00Z
SPEC = ModelSpec(
    encoder_steps=24,
    horizon_steps=6,
    hidden_size=8,
    attention_heads=1,
    hidden_continuous_size=4,
    batch_size=32,
    unseen_share=0.3,
)
SINGLE = ModelSpec(**{**SPEC.to_dict(), "targets": ["cpu_user_pct"]})


def fleet(spec: ModelSpec, servers: int = 7, hours: int = 10, seed: int = 3) -> pa.Table:
    """Samples every 100 s: daily sines with noise, dropped samples, an outage that splits
    one server into two series, a server re-profiled, and a metric stuck at a constant."""
    rng = np.random.default_rng(seed)
    parts = []
    for k in range(servers):
        ts = T0_MS + np.arange(0, hours * 3_600_000, 100_000)
        ts = ts[rng.random(ts.size) > 0.05]
        if k == 2:  # a 50-minute outage: two series
            ts = ts[(ts < T0_MS + 4 * 3_600_000) | (ts > T0_MS + 4 * 3_600_000 + 3_000_000)]
        profile = np.where(ts < T0_MS + 3_600_000, "old", ("web", "db", "cache")[k % 3]) if k == 4 else None
        cols: dict[str, Any] = {
            "timestamp": pa.array(ts, pa.timestamp("ms", tz="UTC")),
            "server_name": [f"srv-{k:02d}"] * ts.size,
            "profile": profile if profile is not None else [("web", "db", "cache")[k % 3]] * ts.size,
        }
        phase = 2 * np.pi * ts / 86_400_000
        for j, metric in enumerate(spec.targets):
            values = 10.0 + 7 * j + 4 * k + 5 * np.sin(phase + k) + rng.normal(0, 0.7, ts.size)
            if metric == "swap_used_pct" and k % 2:
                values = np.full(ts.size, 13.7)  # never moves: the scale is eps
            cols[metric] = values
        parts.append(pa.table(cols))
    return pa.concat_tables(parts)


def reference(spec: ModelSpec, table: pa.Table, seed: int = 5) -> tuple[Any, Any, Any]:
    frame = to_frame(table, spec)
    train, val = split_validation(frame, spec)
    train = hide_names(train, spec.unseen_share, seed)
    return frame, train, build_dataset(train, spec)


def collate(dataset: Any, rows: list[int]) -> tuple[dict[str, Any], Any]:
    return DatasetBatches(dataset)[rows]


def assert_close(ours: Any, theirs: Any, where: str) -> None:
    if isinstance(theirs, list | tuple):
        assert isinstance(ours, list | tuple) and len(ours) == len(theirs), where
        for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            assert_close(a, b, f"{where}[{i}]")
    elif theirs is None:
        assert ours is None, where
    else:
        assert ours.shape == theirs.shape, f"{where}: {tuple(ours.shape)} != {tuple(theirs.shape)}"
        assert ours.dtype == theirs.dtype, f"{where}: {ours.dtype} != {theirs.dtype}"
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5, msg=lambda m: f"{where}: {m}")


def assert_json_close(ours: Any, theirs: Any, where: str = "") -> None:
    if isinstance(theirs, dict):
        assert set(ours) == set(theirs), where
        for key in theirs:
            assert_json_close(ours[key], theirs[key], f"{where}.{key}")
    elif isinstance(theirs, list):
        assert len(ours) == len(theirs), where
        for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            assert_json_close(a, b, f"{where}[{i}]")
    elif isinstance(theirs, float):
        assert ours == pytest.approx(theirs, rel=1e-5, abs=1e-6), where
    else:
        assert ours == theirs, where


@pytest.mark.parametrize("spec", [SPEC, SINGLE], ids=["five-targets", "one-target"])
def test_batches_equal_the_dataset_collate_for_the_same_windows(spec: ModelSpec) -> None:
    table = fleet(spec)
    frame, train, dataset = reference(spec, table)
    series = fleet_series(table, spec)
    index = training_windows(series, spec, seed=5)
    assert len(index) == len(dataset)
    # Window i is the dataset's window i: same series (hidden copies included), same start.
    decoded = dataset.decoded_index
    ids = series.series_names()
    entry, start = index.locate(np.arange(len(index)))
    ours = [ids[index.series[e]] + ("~hidden" if index.hidden[e] else "") for e in entry]
    assert ours == decoded["series"].tolist()
    assert (series.first_tick[index.series[entry]] + start).tolist() == decoded["time_idx_first"].tolist()
    assert index.hidden.any() and (~index.hidden).any()

    prototype, weights = fitted_dataset(series, index, spec)
    params = model_parameters(prototype.get_parameters())
    assert_json_close(to_json(params), to_json(model_parameters(dataset.get_parameters())))
    assert weights == pytest.approx(loss_weights(train, spec), rel=1e-5)

    network = build_network(dataset, spec, weights)
    batches = WindowBatches(
        series, index, spec, params, network.hparams.x_reals, network.hparams.x_categoricals
    )
    rng = np.random.default_rng(0)
    for rows in (list(range(len(index))), rng.choice(len(index), 40, replace=False).tolist()):
        x, y = batches[rows]
        ref_x, ref_y = collate(dataset, rows)
        assert set(x) == set(ref_x)
        for key in ref_x:
            assert_close(x[key], ref_x[key], key)
        assert_close(list(y), list(ref_y), "target")
    # The network trains on them as on the dataset's: the same loss.
    network.eval()
    with torch.no_grad():
        ours_loss = network.loss(network(x)["prediction"], y)
        theirs_loss = network.loss(network(ref_x)["prediction"], ref_y)
    torch.testing.assert_close(ours_loss, theirs_loss, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("spec", [SPEC, SINGLE], ids=["five-targets", "one-target"])
def test_validation_windows_equal_the_predict_dataset(spec: ModelSpec) -> None:
    table = fleet(spec)
    frame, _, dataset = reference(spec, table)
    params = model_parameters(dataset.get_parameters())
    predict = build_dataset(frame, spec, params, predict=True)
    series = fleet_series(table, spec)
    index = validation_windows(series, spec)
    assert len(index) == len(predict) == len(frame["series"].unique())
    network = build_network(dataset, spec, [1.0] * len(spec.targets))
    batches = WindowBatches(
        series, index, spec, params, network.hparams.x_reals, network.hparams.x_categoricals
    )
    rows = list(range(len(index)))
    x, y = batches[rows]
    ref_x, ref_y = collate(predict, rows)
    for key in ref_x:
        assert_close(x[key], ref_x[key], key)
    assert_close(list(y), list(ref_y), "target")


def dictionary_names(table: pa.Table) -> pa.Table:
    """Names dictionary-encoded as the buffer stores them, a dictionary per chunk."""
    half = table.num_rows // 2
    parts = []
    for part in (table.slice(0, half), table.slice(half)):
        for name in ("server_name", "profile"):
            idx = part.column_names.index(name)
            part = part.set_column(idx, name, pc.dictionary_encode(part[name]))
        parts.append(part)
    return pa.concat_tables(parts)


@pytest.mark.parametrize("nulls", [False, True], ids=["dense", "nulls-and-shuffled"])
@pytest.mark.parametrize("names", ["strings", "dictionary"])
def test_series_frame_equals_to_frame(nulls: bool, names: str) -> None:
    table = fleet(SPEC)
    if nulls:
        # Null metric values (skipped by a step's mean; a step of nulls only is a gap, which
        # the fill interpolates or splits on) and rows in no particular order.
        rng = np.random.default_rng(8)
        for name in SPEC.targets[:2]:
            column = table[name].to_numpy()
            mask = rng.random(len(column)) < 0.2
            mask[1500:1560] = True  # a long gap in one metric: the series splits there
            idx = table.column_names.index(name)
            table = table.set_column(idx, name, pa.array(column, mask=mask))
        table = table.take(pa.array(rng.permutation(table.num_rows)))
    if names == "dictionary":
        ours = fleet_series(dictionary_names(table), SPEC).to_frame()
        assert ours.equals(fleet_series(table, SPEC).to_frame())
    ours = fleet_series(table, SPEC).to_frame()
    theirs = to_frame(table, SPEC)
    assert list(ours.columns) == list(theirs.columns) or set(ours.columns) == set(theirs.columns)
    ours = ours[theirs.columns]
    for name in ("series", "server_name", "profile", "time_idx", "bucket"):
        assert ours[name].tolist() == theirs[name].tolist(), name
    for name in ("hour_sin", "hour_cos", "dow_sin", "dow_cos", *SPEC.targets):
        np.testing.assert_allclose(ours[name].to_numpy(), theirs[name].to_numpy(), rtol=1e-6, err_msg=name)
    assert ours["series"].nunique() == (9 if nulls else 8)  # the outage split one server
    assert set(ours.loc[ours["server_name"] == "srv-04", "profile"]) == {"db"}  # its latest, not "old"


@pytest.mark.parametrize(("count", "limit", "size"), [(1000, 300, 128), (500, 500, 64), (50, 200, 16)])
def test_epoch_batches_draw_what_random_sampler_drew(count: int, limit: int, size: int) -> None:
    """Two epochs of the same windows in the same batches as the trainer's old sampler."""
    old = torch.Generator().manual_seed(3)
    ref = [
        batch
        for _ in range(2)
        for batch in BatchSampler(
            RandomSampler(range(count), num_samples=min(limit, count), generator=old), size, False
        )
    ]
    sampler = EpochBatches(count, limit, size, torch.Generator().manual_seed(3))
    assert [*sampler, *sampler] == ref
    assert len(sampler) == len(ref) // 2


def test_series_framed_in_small_blocks_equal_one_block(monkeypatch: pytest.MonkeyPatch) -> None:
    """Step means gathered a few steps at a time (as millions are) equal one gather."""
    rng = np.random.default_rng(2)
    table = fleet(SPEC)
    column = table["cpu_user_pct"].to_numpy()
    table = table.set_column(
        table.column_names.index("cpu_user_pct"),
        "cpu_user_pct",
        pa.array(column, mask=rng.random(len(column)) < 0.3),
    )
    table = table.take(pa.array(rng.permutation(table.num_rows)))
    whole = fleet_series(table, SPEC)
    monkeypatch.setattr(series_module, "_BLOCK_STEPS", 7)
    blocks = fleet_series(table, SPEC)
    np.testing.assert_array_equal(blocks.values, whole.values)
    np.testing.assert_array_equal(blocks.starts, whole.starts)
