"""A one-target TFT (data with only CPU) trains, publishes, loads, forecasts and continues."""

from __future__ import annotations

from pathlib import Path

import msgspec
import numpy as np
import pyarrow as pa
import pytest

from nordiqd.model import artifacts, fitting
from nordiqd.model.forecast import WindowForecaster
from nordiqd.model.frames import to_frame
from nordiqd.model.params import ModelSpec
from nordiqd.model.reference import predict_via_dataframe
from tests.unit.test_model_training import SPEC as MULTI_SPEC
from tests.unit.test_model_training import fleet

SPEC: ModelSpec = msgspec.structs.replace(MULTI_SPEC, targets=("cpu_user_pct",))
SERVERS = ["s0", "s1", "s2", "s3"]


def cpu_only(servers: list[str], seed: int = 0) -> pa.Table:
    """The test fleet with every metric column but CPU dropped, as a CPU-only source sends."""
    table = fleet(servers, seed=seed)
    return table.select(["timestamp", "server_name", "profile", "cpu_user_pct"])


def windows_of(table: pa.Table) -> tuple[np.ndarray, list[str], list[str], int]:
    frame = to_frame(table, SPEC)
    wins, names, profiles = [], [], []
    for name, rows in frame.groupby("server_name", sort=True):
        tail = rows.tail(SPEC.encoder_steps)
        wins.append(tail[list(SPEC.targets)].to_numpy())
        names.append(str(name))
        profiles.append(str(tail["profile"].iloc[-1]))
    return np.stack(wins), names, profiles, int(frame["bucket"].max())


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Path:
    trained = fitting.fit(cpu_only(SERVERS), SPEC, epochs=1)
    val = trained.validation
    assert val.windows == 4 and np.isfinite([val.loss, val.mase_model, val.mase_seasonal_naive]).all()
    assert trained.dataset_parameters["target"] == "cpu_user_pct"
    root = tmp_path_factory.mktemp("models")
    artifacts.publish(root, trained)
    return root


def test_single_target_model_round_trips_and_forecasts(published: Path) -> None:
    model = artifacts.load(published / artifacts.CURRENT, expect=SPEC)
    assert model.manifest["targets"] == ["cpu_user_pct"]
    assert model.dataset_parameters["target"] == "cpu_user_pct"
    wins, names, profiles, last = windows_of(cpu_only(SERVERS))
    names[3] = "never-seen"
    result = WindowForecaster(model, batch_size=3).forecast(wins, names, profiles, last)
    assert result.values.shape == (4, 1, SPEC.horizon_steps, len(SPEC.quantiles))
    assert result.valid.all() and np.isfinite(result.values).all()
    assert set(result.for_server(0)) == {"cpu_user_pct"}
    slow = predict_via_dataframe(model, wins, names, profiles, last)
    np.testing.assert_allclose(result.values, slow, rtol=1e-4, atol=1e-4)


def test_incremental_training_continues_a_single_target_model(published: Path) -> None:
    base = artifacts.load(published / artifacts.CURRENT)
    data = cpu_only(["s0", "s1", "s4", "s5"], seed=1)
    result = fitting.fit(data, SPEC, epochs=1, incremental=True, base=base)
    assert result.incremental and result.notes == []
    again = artifacts.load(artifacts.publish(published, result), expect=SPEC)
    assert again.manifest["incremental"] is True
    wins, names, profiles, last = windows_of(data)
    forecast = WindowForecaster(again).forecast(wins, names, profiles, last)
    assert forecast.values.shape == (4, 1, SPEC.horizon_steps, len(SPEC.quantiles))
    assert np.isfinite(forecast.values).all()
