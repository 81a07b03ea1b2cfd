"""``nordiqd simulate``: arguments, dry-run determinism, what is printed and the exit codes."""

from __future__ import annotations

import argparse
import json
import threading
from pathlib import Path

import msgspec
import pyarrow.parquet as pq
import pytest

from nordiqd import config as config_mod
from nordiqd.simulate import METRICS, console
from nordiqd.simulate import cli as sim_cli
from nordiqd.simulate.errors import BatchRefused, DaemonUnavailable
from nordiqd.simulate.options import SimulationOptions
from nordiqd.simulate.scenarios import ScenarioError
from nordiqd.simulate.summary import Summary

START = "2026-11-01T00:00Z"
T0 = 1_793_491_200.0  # 2026-11-01T00:00:00Z


def parse(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="nordiqd simulate")
    sim_cli.add_arguments(p)
    return p.parse_args(list(argv))


def main(*argv: str) -> int:
    return sim_cli.run(parse(*argv))


# --- arguments ------------------------------------------------------------------------


def test_defaults() -> None:
    args = parse()
    assert (args.via, args.servers, args.interval, args.batch_size, args.speed) == ("zmq", 20, 5.0, 1000, 1.0)
    assert args.backfill_days == 0 and args.duration is None and not args.no_live and args.scenario == []


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--backfill-days", "-1"], "argument --backfill-days: must not be negative"),
        (["--servers", "0"], "argument --servers: must be at least 1"),
        (["--speed", "0"], "argument --speed: must be above 0"),
        (["--interval", "fast"], "argument --interval: 'fast' is not a number"),
        (["--scenario", "memory_leak:web-001"], "argument --scenario: bad scenario"),
        (["--scenario", "meltdown:web-001@+1h+1h"], "unknown kind 'meltdown'"),
        (["--start", "2026-11-01T00:00"], "has no UTC offset"),
        (["--start", "yesterday"], "is not an ISO-8601 time"),
        (["--via", "carrier-pigeon"], "invalid choice"),
    ],
)
def test_bad_arguments_are_clear_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        parse(*argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--dry-run"], "--dry-run needs --out"),
        (["--out", "x.jsonl"], "--out only goes with --dry-run"),
        (["--no-live"], "would send nothing"),
        (["--backfill-days", "1", "--no-live", "--duration", "5"], "--duration applies to live"),
        (["--batch-size", "200000"], "max_batch_records"),
        (["--via", "rest", "--url", "localhost:8000"], "is not an http:// or https:// URL"),
    ],
)
def test_arguments_that_do_not_go_together(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(*argv) == 2
    assert message in capsys.readouterr().err


def test_options_come_from_the_config(tmp_path: Path) -> None:
    (tmp_path / "key").write_text("k" * 32 + "\n")
    (tmp_path / "key").chmod(0o600)
    cfg = config_mod.from_dict(
        {
            "daemon": {"run_dir": str(tmp_path / "run")},
            "api": {"host": "0.0.0.0", "port": 8123, "key_file": str(tmp_path / "key")},
        }
    )
    # Only the accepted metric list matters here, not the sections that refer to it.
    cfg = msgspec.structs.replace(cfg, schema=config_mod.SchemaConfig(metrics=["cpu_user_pct", "gpu_pct"]))
    opts = sim_cli.options_from_args(parse("--via", "rest", "--start", START), cfg)
    assert opts.url == "http://127.0.0.1:8123" and opts.api_key == "k" * 32
    assert opts.endpoint == f"ipc://{tmp_path / 'run'}/ingest.sock"
    assert opts.metrics == ("cpu_user_pct", "gpu_pct") and opts.start == T0
    assert opts.cap_at_clock
    over = sim_cli.options_from_args(parse("--endpoint", "tcp://h:1", "--url", "http://h:2"), cfg)
    assert (over.endpoint, over.url, over.via) == ("tcp://h:1", "http://h:2", "zmq")


def test_a_missing_key_file_is_a_config_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main("--via", "rest", "--key-file", str(tmp_path / "nope")) == 78
    assert "does not exist" in capsys.readouterr().err


def test_a_scenario_on_a_server_the_fleet_lacks_is_refused_before_sending(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "x.jsonl"
    code = main(
        "--servers",
        "5",
        "--scenario",
        "memory_leak:web-042@+1h+1h",
        "--backfill-days",
        "1",
        "--no-live",
        "--dry-run",
        "--out",
        str(out),
    )
    assert code == 2
    assert "web-042, which is not in this fleet" in capsys.readouterr().err


def test_list_scenarios_names_kinds_and_servers(capsys: pytest.CaptureFixture[str]) -> None:
    assert main("--list-scenarios", "--servers", "8") == 0
    text = capsys.readouterr().out
    assert "KIND:SERVER" in text and "memory_leak" in text and "db_outage" in text and "web-001" in text


# --- dry run --------------------------------------------------------------------------


def dry(tmp_path: Path, name: str, *extra: str) -> Path:
    out = tmp_path / name
    assert (
        main(
            "--start",
            START,
            "--backfill-days",
            "0.25",
            "--interval",
            "60",
            "--no-live",
            "--dry-run",
            "--out",
            str(out),
            *extra,
        )
        == 0
    )
    return out


def test_dry_run_same_seed_same_file_other_seed_differs(tmp_path: Path) -> None:
    a = dry(tmp_path, "a.jsonl", "--seed", "1").read_bytes()
    b = dry(tmp_path, "b.jsonl", "--seed", "1").read_bytes()
    c = dry(tmp_path, "c.jsonl", "--seed", "2").read_bytes()
    assert a == b and a != c
    lines = a.decode().splitlines()
    assert len(lines) == 20 * 6 * 60  # 20 servers x 6 h at one sample a minute
    first = json.loads(lines[0])
    assert first["timestamp"] == T0 - 6 * 3600 and set(first) == {
        "timestamp",
        "server_name",
        "profile",
        *METRICS,
    }


def test_dry_run_parquet(tmp_path: Path) -> None:
    table = pq.read_table(dry(tmp_path, "a.parquet", "--seed", "1", "--servers", "3"))
    assert table.num_rows == 3 * 6 * 60
    assert table.column_names == ["timestamp", "server_name", "profile", *METRICS]


def test_a_rejected_batch_prints_the_problems_and_exits_non_zero(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def refuse(options: SimulationOptions, stop: threading.Event, **kw: object) -> None:
        raise BatchRefused(
            "the daemon rejected a batch: 2 bad records",
            [
                {"index": 3, "field": "timestamp", "message": "too far in the future"},
                {"index": 7, "field": "cpu_user_pct", "message": "not a number"},
            ],
        )

    monkeypatch.setattr(sim_cli, "run_simulation", refuse)
    assert main("--start", START) == 1
    err = capsys.readouterr().err
    assert "2 bad records" in err and "record 3, timestamp: too far in the future" in err
    assert "record 7, cpu_user_pct" in err


def test_each_outcome_prints_its_line_and_gets_its_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    done = Summary(records=1200, batches=3, elapsed_s=2.0, reason="duration")
    assert console.report(done) == 0
    out = capsys.readouterr()
    assert out.out == (
        "nordiqd simulate: sent 1,200 records in 3 batches over 2.0 s (600 records/s; 0 retries; duration)\n"
    )
    assert out.err == ""

    silent = DaemonUnavailable("the daemon did not take a batch after 6 attempt(s): no answer")
    silent.summary = Summary(records=1000, batches=1, retries=5)
    assert console.report(silent) == 69
    out = capsys.readouterr()
    assert "after 6 attempt(s)" in out.err and "sent 1,000 records in 1 batches" in out.out

    assert console.report(ScenarioError("web-099 is not in this fleet")) == 2
    assert "web-099" in capsys.readouterr().err

    problems = [{"index": i, "field": "cpu_user_pct", "message": "not a number"} for i in range(25)]
    assert console.report(BatchRefused("the daemon rejected a batch", problems)) == 1
    err = capsys.readouterr().err
    assert "record 19, cpu_user_pct" in err and "record 20," not in err and "... and 5 more" in err


def test_an_outcome_that_is_no_simulation_error_is_raised() -> None:
    with pytest.raises(KeyError):
        console.report(KeyError("a bug"))
