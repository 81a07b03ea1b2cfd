"""Tiny TFT end to end: train, publish, load, forecast, incremental, cancel, corruption."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from nordiqd.model import artifacts, fitting
from nordiqd.model.errors import IncompatibleModel, ModelLoadError, TrainingCancelled
from nordiqd.model.forecast import WindowForecaster
from nordiqd.model.frames import to_frame
from nordiqd.model.params import ModelSpec
from nordiqd.model.reference import predict_via_dataframe
from nordiqd.model.trained import TrainedModel

SPEC = ModelSpec(
    encoder_steps=24,
    horizon_steps=6,
    hidden_size=8,
    attention_heads=1,
    hidden_continuous_size=4,
    batch_size=32,
    max_windows_per_epoch=256,
)
T0_MS = 1_735_689_600_000  # 2025-01-01T00:00:00Z
PROFILES = ("web", "db")


def fleet(servers: list[str], hours: int = 12, seed: int = 0) -> pa.Table:
    """One sample a minute per server: a daily sine per metric plus noise, a few gaps."""
    rng = np.random.default_rng(seed)
    parts = []
    for k, name in enumerate(servers):
        ts = T0_MS + np.arange(0, hours * 3600 * 1000, 60_000)
        ts = ts[rng.random(ts.size) > 0.05]  # dropped samples
        cols: dict[str, Any] = {
            "timestamp": pa.array(ts, pa.timestamp("ms", tz="UTC")),
            "server_name": [name] * ts.size,
            "profile": [PROFILES[k % 2]] * ts.size,
        }
        phase = 2 * np.pi * ts / 86_400_000
        for j, metric in enumerate(SPEC.targets):
            base = 10.0 + 8 * j + 3 * (k % 2)
            cols[metric] = base + 5 * np.sin(phase + k) + rng.normal(0, 0.5, ts.size)
        parts.append(pa.table(cols))
    return pa.concat_tables(parts)


@pytest.fixture(scope="module")
def trained() -> tuple[TrainedModel, list[float]]:
    progress: list[float] = []
    result = fitting.fit(fleet(["s0", "s1", "s2", "s3"]), SPEC, epochs=1, on_progress=progress.append)
    return result, progress


@pytest.fixture(scope="module")
def published(trained: tuple[TrainedModel, list[float]], tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    artifacts.publish(root, trained[0])
    return root


def windows_of(
    table: pa.Table, rename: dict[str, str] | None = None
) -> tuple[np.ndarray, list[str], list[str], int]:
    frame = to_frame(table, SPEC)
    wins, names, profiles = [], [], []
    for name, rows in frame.groupby("server_name", sort=True):
        tail = rows.tail(SPEC.encoder_steps)
        wins.append(tail[list(SPEC.targets)].to_numpy())
        names.append((rename or {}).get(str(name), str(name)))
        profiles.append(str(tail["profile"].iloc[-1]))
    return np.stack(wins), names, profiles, int(frame["bucket"].max())


def test_fit_reports_validation_and_progress_to_100(trained: tuple[TrainedModel, list[float]]) -> None:
    result, progress = trained
    assert progress and progress[-1] == 100.0
    assert all(b >= a for a, b in zip(progress, progress[1:], strict=False))
    assert len(progress) > 3  # one report per batch, then the final 100
    val = result.validation
    assert val.windows == 4 and np.isfinite([val.loss, val.mase_model, val.mase_seasonal_naive]).all()
    assert not result.incremental and result.records > 0


def test_publish_writes_manifest_and_points_current(published: Path) -> None:
    version = artifacts.current_version(published)
    assert version is not None and artifacts.list_versions(published) == [version]
    manifest = json.loads((published / version / artifacts.MANIFEST).read_text())
    assert manifest["version"] == version and version.startswith("tft_model_")
    assert manifest["targets"] == list(SPEC.targets) and manifest["quantiles"] == [0.1, 0.5, 0.9]
    assert set(manifest["files"]) == {artifacts.WEIGHTS, artifacts.DATASET, artifacts.HPARAMS}
    assert set(manifest["validation"]) >= {"loss", "mase_model", "mase_seasonal_naive"}
    assert manifest["training_window"]["start"].startswith("2025-01-01T00:0")
    assert not list(published.glob(".*"))  # no staging dir or temp link left behind


def test_loaded_model_forecasts_known_and_unseen_servers(published: Path) -> None:
    model = artifacts.load(published / artifacts.CURRENT, expect=SPEC)
    wins, names, profiles, last = windows_of(fleet(["s0", "s1", "s2", "s3"]), rename={"s3": "never-seen"})
    result = WindowForecaster(model).forecast(wins, names, profiles, last)
    assert result.values.shape == (4, len(SPEC.targets), SPEC.horizon_steps, 3)
    assert result.valid.all() and np.isfinite(result.values).all()
    unseen = result.for_server(names.index("never-seen"))
    assert set(unseen) == set(SPEC.targets) and unseen["mem_used_pct"].shape == (SPEC.horizon_steps, 3)
    # The unseen name takes the unknown category, so its forecast differs from s3's own.
    known = WindowForecaster(model).forecast(wins[3:], ["s3"], profiles[3:], last)
    assert not np.allclose(known.values[0], result.values[3])


def test_batched_forecast_matches_model_predict_on_a_dataframe(published: Path) -> None:
    model = artifacts.load(published / artifacts.CURRENT)
    wins, names, profiles, last = windows_of(fleet(["s0", "s1", "s2", "s3"]), rename={"s1": "other"})
    fast = WindowForecaster(model, batch_size=3).forecast(wins, names, profiles, last).values
    slow = predict_via_dataframe(model, wins, names, profiles, last)
    np.testing.assert_allclose(fast, slow, rtol=1e-4, atol=1e-4)


def test_forecaster_fills_gaps_and_marks_empty_windows(published: Path) -> None:
    model = artifacts.load(published / artifacts.CURRENT)
    wins, names, profiles, last = windows_of(fleet(["s0", "s1"]))
    wins[0, 5:8, :] = np.nan
    wins[1, :, 2] = np.nan
    result = WindowForecaster(model).forecast(wins, names, profiles, last)
    assert result.valid.tolist() == [True, False]
    assert np.isfinite(result.values[0]).all() and np.isnan(result.values[1]).all()


def test_incremental_training_keeps_encoders_and_forecasts_new_servers(published: Path) -> None:
    base = artifacts.load(published / artifacts.CURRENT)
    data = fleet(["s0", "s1", "s4", "s5"], seed=1)
    result = fitting.fit(data, SPEC, epochs=1, incremental=True, base=base)
    assert result.incremental and result.notes == []
    classes = result.dataset_parameters["categorical_encoders"]["server_name"].classes_
    assert (
        "s4" not in classes
        and classes == base.dataset_parameters["categorical_encoders"]["server_name"].classes_
    )
    path = artifacts.publish(published, result)
    assert artifacts.current_version(published) == path.name
    again = artifacts.load(path, expect=SPEC)
    assert again.manifest["incremental"] is True
    wins, names, profiles, last = windows_of(data)
    forecast = WindowForecaster(again).forecast(wins, names, profiles, last)
    assert np.isfinite(forecast.values).all()
    # Rollback: point current back at the first version.
    first = artifacts.previous_version(published)
    assert first is not None and first != path.name
    artifacts.point_current(published, first)
    assert artifacts.current_version(published) == first


def test_incremental_without_a_model_trains_from_scratch_and_says_so() -> None:
    result = fitting.fit(fleet(["s0", "s1"]), SPEC, epochs=1, incremental=True, base=None)
    assert not result.incremental and "no current model" in result.notes[0]


def test_should_stop_cancels_at_the_next_batch() -> None:
    progress: list[float] = []
    with pytest.raises(TrainingCancelled):
        fitting.fit(fleet(["s0", "s1"]), SPEC, epochs=3, on_progress=progress.append,
                should_stop=lambda: len(progress) >= 2)  # fmt: skip
    assert len(progress) == 2 and progress[-1] < 100.0


@pytest.fixture
def copy(published: Path, tmp_path: Path) -> Path:
    source = published / artifacts.list_versions(published)[0]
    target = tmp_path / source.name
    shutil.copytree(source, target)
    return target


def test_checksum_mismatch_is_refused(copy: Path) -> None:
    data = json.loads((copy / artifacts.DATASET).read_text())
    data["max_encoder_length"] = 99
    (copy / artifacts.DATASET).write_text(json.dumps(data))
    with pytest.raises(ModelLoadError, match=r"checksum mismatch for dataset_parameters\.json"):
        artifacts.load(copy)


def test_truncated_weights_are_refused(copy: Path) -> None:
    weights = copy / artifacts.WEIGHTS
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(ModelLoadError, match=r"weights\.safetensors is truncated"):
        artifacts.load(copy)


def test_missing_file_is_refused(copy: Path) -> None:
    (copy / artifacts.HPARAMS).unlink()
    with pytest.raises(ModelLoadError, match=r"hyperparameters\.json is missing"):
        artifacts.load(copy)


def test_manifest_with_other_targets_is_refused(copy: Path) -> None:
    manifest = json.loads((copy / artifacts.MANIFEST).read_text())
    manifest["targets"] = ["cpu_user_pct"]
    (copy / artifacts.MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ModelLoadError, match="manifest targets"):
        artifacts.load(copy)


def test_model_for_other_targets_than_configured_is_refused(copy: Path) -> None:
    with pytest.raises(IncompatibleModel, match="targets"):
        artifacts.load(copy, expect=ModelSpec(targets=("cpu_user_pct", "load_average")))


def test_unknown_object_kind_in_dataset_parameters_is_refused(copy: Path) -> None:
    data = json.loads((copy / artifacts.DATASET).read_text())
    data["scalers"]["hour_sin"] = {"__kind__": "builtins.eval", "source": "1"}
    (copy / artifacts.DATASET).write_bytes(json.dumps(data).encode())
    manifest = json.loads((copy / artifacts.MANIFEST).read_text())
    manifest["files"][artifacts.DATASET] = artifacts._sha256(copy / artifacts.DATASET)
    (copy / artifacts.MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ModelLoadError, match="unknown kind 'builtins.eval'"):
        artifacts.load(copy)


def test_point_current_refuses_an_unknown_version(published: Path) -> None:
    with pytest.raises(ModelLoadError, match="no model version"):
        artifacts.point_current(published, "tft_model_19990101_000000")
