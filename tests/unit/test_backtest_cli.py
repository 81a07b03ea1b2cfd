"""``nordiqd backtest`` end to end: input files, clear errors, the report, a tiny trained TFT."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nordiqd.backtest import cli, runner
from nordiqd.backtest.data import load_table
from nordiqd.backtest.errors import BadData

T0 = 1_735_689_600  # 2025-01-01T00:00:00Z (a Wednesday)


def parse(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    cli.add_arguments(p)
    return p.parse_args(list(argv))


def write_csv(path: Path, days: float = 3, servers: int = 2, profile: bool = True) -> Path:
    """Wide CSV, 5-minute samples with ISO times: a daily cycle plus noise per server."""
    rng = np.random.default_rng(0)
    steps = int(days * 288)
    lines = ["timestamp,server_name," + ("profile," if profile else "") + "cpu_user_pct,mem_used_pct"]
    for s in range(servers):
        for i in range(steps):
            t = T0 + i * 300
            cpu = 40 + 20 * np.sin(2 * np.pi * t / 86_400 + s) + rng.normal(0, 2)
            stamp = np.datetime64(t, "s").astype(str)
            lines.append(f"{stamp},srv{s}," + ("web," if profile else "") + f"{cpu:.3f},{50 + s:.1f}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_csv_report_and_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = write_csv(tmp_path / "fleet.csv", profile=False)
    out = tmp_path / "out" / "report.json"
    args = parse(
        "--data", str(data), "--targets", "cpu_user_pct,mem_used_pct", "--folds", "2", "--json", str(out)
    )
    assert cli.run(args) == 0
    report = json.loads(out.read_text())
    assert report["data"]["servers"] == 2 and report["data"]["profiles"] == ["default"]
    assert [f["number"] for f in report["folds"]] == [2, 1]
    assert set(report["models"]) == {
        "naive",
        "seasonal_naive_1d",
        "seasonal_naive_1w",
        "linear_trend",
        "auto_ets",
        "auto_theta",
        "mstl",
        "routed",
    }
    cell = report["models"]["seasonal_naive_1d"]["targets"]["cpu_user_pct"]["4-8h"]
    assert cell["windows"] == 4 and 0 < cell["mase"] < 2
    # mem_used_pct is flat: no scale, so not scored rather than infinitely bad.
    assert report["models"]["naive"]["targets"]["mem_used_pct"]["all"]["windows"] == 0
    assert report["timings"]["total_s"] > 0
    printed = capsys.readouterr().out
    assert "cpu_user_pct: MASE" in printed and "seasonal_naive_1d" in printed


@pytest.mark.parametrize(
    ("setup", "argv", "message"),
    [
        (None, ["--targets", "cpu_user_pct"], "missing.csv: no such file or folder"),
        ("csv", ["--targets", "disk_pct"], "unknown metric 'disk_pct': no such column"),
        ("nots", ["--targets", "cpu_user_pct"], "no 'timestamp' column"),
        (
            "short",
            ["--targets", "cpu_user_pct"],
            "too little history: one fold needs 288 encoder + 96 horizon",
        ),
        ("csv", ["--targets", "cpu_user_pct", "--folds", "0"], "folds must be at least 1"),
        ("csv", ["--targets", "cpu_user_pct", "--retrain"], "--retrain needs --train"),
    ],
)
def test_bad_input_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], setup: str | None, argv: list[str], message: str
) -> None:
    data = tmp_path / "missing.csv"
    if setup == "csv":
        data = write_csv(tmp_path / "f.csv", days=2)
    elif setup == "short":
        data = write_csv(tmp_path / "f.csv", days=1)
    elif setup == "nots":
        data = tmp_path / "f.csv"
        data.write_text("time,server_name,cpu_user_pct\n1,a,2\n")
    assert cli.run(parse("--data", str(data), *argv, "--json", str(tmp_path / "r.json"))) == 2
    err = capsys.readouterr().err
    assert message in err
    if not message.startswith(("folds", "--")):  # data errors name the file
        assert str(data) in err
    assert not (tmp_path / "r.json").exists()


def test_parquet_with_epoch_seconds_and_one_server(tmp_path: Path) -> None:
    path = tmp_path / "one.parquet"
    pq.write_table(pa.table({"timestamp": [T0, T0 + 300], "cpu_user_pct": [1.0, 2.0]}), path)
    table = load_table(path, ["cpu_user_pct"])
    assert table["server_name"].to_pylist() == ["one", "one"]
    assert table["timestamp"].type == pa.timestamp("ms", tz="UTC")
    assert table["timestamp"][1].as_py().timestamp() == T0 + 300
    pq.write_table(pa.table({"timestamp": ["x"], "cpu_user_pct": ["high"]}), path)
    with pytest.raises(BadData, match="'timestamp' is not readable as times"):
        load_table(path, ["cpu_user_pct"])


def test_buffer_folder(tmp_path: Path) -> None:
    from nordiqd.buffer.records import RecordValidator
    from nordiqd.buffer.store import BufferStore

    now = float(T0 + 86_400)
    metrics = ("cpu_user_pct", "mem_used_pct")
    store = BufferStore(tmp_path / "buffer", metrics, clock=lambda: now, fsync="always")
    store.open()
    records = [{"timestamp": T0 + i * 300, "server_name": "a", "cpu_user_pct": float(i)} for i in range(10)]
    store.append(RecordValidator(metrics, clock=lambda: now).from_records(records))
    store.flush()
    store.close()
    table = load_table(tmp_path / "buffer", ["cpu_user_pct"])
    assert table.num_rows == 10 and table["cpu_user_pct"].to_pylist()[-1] == 9.0
    with pytest.raises(BadData, match="unknown metric 'mem_used_pct': the buffer holds no value"):
        load_table(tmp_path / "buffer", ["mem_used_pct"])


def test_train_tiny_tft(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--train fits the one-target spec as it is, once before the earliest fold, and scores it."""
    from nordiqd.model import fitting

    seen: list[tuple[tuple[str, ...], list[str]]] = []
    real_fit = fitting.fit

    def spy(table: pa.Table, spec: Any, **kwargs: Any) -> Any:
        seen.append((spec.targets, table.column_names))
        return real_fit(table, spec, **kwargs)

    monkeypatch.setattr(fitting, "fit", spy)
    data = write_csv(tmp_path / "fleet.csv", days=1.5, servers=3)
    config = tmp_path / "nordiqd.toml"
    config.write_text(
        "[model]\ntargets = ['cpu_user_pct']\nencoder_steps = 24\nhorizon_steps = 12\nhidden_size = 4\n"
        "attention_heads = 1\nhidden_continuous_size = 2\nbatch_size = 32\nmax_windows_per_epoch = 64\n"
    )
    out = tmp_path / "r.json"
    argv = [
        "--data",
        str(data),
        "-c",
        str(config),
        "--train",
        "--epochs",
        "1",
        "--folds",
        "2",
        "--json",
        str(out),
    ]
    assert cli.run(parse(*argv, "--device", "cpu")) == 0
    report = json.loads(out.read_text())
    assert report["tft"]["mode"] == "train once before the earliest fold"
    assert [f["fold"] for f in report["tft"]["fits"]] == [2]
    assert seen == [(("cpu_user_pct",), ["timestamp", "server_name", "profile", "cpu_user_pct"])]
    for name in ("tft", *(c.name for c in runner.ENSEMBLES)):
        assert report["models"][name]["targets"]["cpu_user_pct"]["all"]["windows"] == 6


def test_plot_png_when_matplotlib_is_there(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    data = write_csv(tmp_path / "fleet.csv", days=2)
    png = tmp_path / "plot.png"
    argv = ["--data", str(data), "--targets", "cpu_user_pct", "--json", str(tmp_path / "r.json")]
    assert cli.run(parse(*argv, "--folds", "1", "--plot", str(png))) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
