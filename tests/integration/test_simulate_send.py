"""``nordiqd simulate`` against a real daemon: backfill through zmq and REST lands exactly."""

from __future__ import annotations

import argparse
import math
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from nordiqd import config as config_mod
from nordiqd.buffer.reader import read_window
from nordiqd.simulate import SimulatedFleet
from nordiqd.simulate import cli as sim_cli
from nordiqd.simulate.sender import run_simulation

DAY = 86_400
STEP = 300  # 5-minute samples: 288 a day
SERVERS = 6


def parse(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="nordiqd simulate")
    sim_cli.add_arguments(p)
    return p.parse_args(list(argv))


def iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def stats_total(daemon) -> int:  # type: ignore[no-untyped-def]
    r = daemon.get("/admin/training-stats")
    assert r.status_code == 200, r.text
    return int(r.json()["data_buffer"]["total_records"])


def test_backfill_through_zmq_and_rest_lands_exactly(daemon) -> None:  # type: ignore[no-untyped-def]
    cfg = config_mod.load(str(daemon.config))
    now = math.floor(time.time() / STEP) * STEP
    # Two adjacent days: [now-2d, now-1d) through zmq, [now-1d, now) through REST.
    common = ["-c", str(daemon.config), "--servers", str(SERVERS), "--interval", str(STEP), "--seed", "3"]
    common += ["--backfill-days", "1", "--no-live"]
    rates = {}
    for via, start in (("zmq", now - DAY), ("rest", now)):
        options = sim_cli.options_from_args(parse(*common, "--via", via, "--start", iso(start)), cfg)
        summary = run_simulation(options)
        assert summary.records == summary.accepted == SERVERS * 288 and summary.retries == 0
        rates[via] = summary.rate
    print(f"send rates, records/s: {rates}")

    expected = SERVERS * 288 * 2
    deadline = time.monotonic() + 30
    while stats_total(daemon) != expected and time.monotonic() < deadline:
        time.sleep(0.2)
    assert stats_total(daemon) == expected

    table = read_window(cfg.buffer_dir, start=now - 2 * DAY, end=now + 1)
    assert table.num_rows == expected
    fleet = SimulatedFleet(SERVERS, seed=3, interval_s=STEP)
    sent = fleet.generate(now - 2 * DAY, now)
    got = {
        (s, int(t.timestamp()))
        for s, t in zip(
            table.column("server_name").to_pylist(), table.column("timestamp").to_pylist(), strict=True
        )
    }
    assert got == {
        (s, int(t)) for s, t in zip(sent.server_names.tolist(), sent.timestamps.tolist(), strict=True)
    }
    # The values are the generator's, at the buffer's float32 precision.
    mine = table.filter(table.column("server_name").to_numpy(zero_copy_only=False) == "web-001")
    assert np.allclose(
        mine.column("mem_used_pct").to_numpy(), sent.column("mem_used_pct", "web-001").astype(np.float32)
    )

    # Sending the same day again (what a retry after a lost ack does) stores nothing twice.
    assert sim_cli.run(parse(*common, "--via", "rest", "--start", iso(now))) == 0
    assert read_window(cfg.buffer_dir, start=now - 2 * DAY, end=now + 1).num_rows == expected


def test_a_rejected_batch_stops_with_the_daemons_problems(daemon, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    # A simulated now an hour ahead of the clock is past [buffer] max_future_s (300 s).
    ahead = iso(time.time() + 3600)
    code = sim_cli.run(
        parse(
            "-c",
            str(daemon.config),
            "--servers",
            "2",
            "--interval",
            "60",
            "--backfill-days",
            "0.01",
            "--no-live",
            "--start",
            ahead,
        )
    )
    assert code == 1
    err = capsys.readouterr().err
    assert "rejected a batch" in err and "record 0, timestamp" in err


# ``nordiqd simulate`` as its own process (the CLI's parser around this module's arguments).
ENTRY = (
    "import argparse, sys; from nordiqd.simulate import cli; "
    "p = argparse.ArgumentParser(prog='nordiqd simulate'); cli.add_arguments(p); "
    "sys.exit(cli.run(p.parse_args(sys.argv[1:])))"
)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_live_streams_until_a_signal_then_summarises(daemon, sig: signal.Signals) -> None:  # type: ignore[no-untyped-def]
    cfg = config_mod.load(str(daemon.config))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            ENTRY,
            "-c",
            str(daemon.config),
            "--servers",
            "4",
            "--interval",
            "1",
            "--via",
            "rest" if sig == signal.SIGTERM else "zmq",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if read_window(cfg.buffer_dir, days=1).num_rows >= 4 * 3:  # three live ticks in
                break
            time.sleep(0.2)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=15)
    finally:
        proc.kill()
    assert proc.returncode == 0, f"{out}\n{err}"
    assert "records/s" in out and "stopped" in out, f"{out}\n{err}"
    sent = int(out.split("sent ")[1].split(" records")[0].replace(",", ""))
    assert sent >= 12, f"{out}\n{err}"
    assert read_window(cfg.buffer_dir, days=1).num_rows == sent  # every sample exactly once
