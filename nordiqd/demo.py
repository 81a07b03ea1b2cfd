"""``nordiqd demo``: the whole job on a simulated fleet, on this machine, in one command.

What it does, in order: writes a config and an API key under ``~/.nordiqd-demo`` (or
``--dir``), starts ``nordiqd run`` as a child process, backfills days of history for a
simulated fleet through the real ingest endpoint, streams live samples (with a few
scripted incidents so that forecasts have something to catch), triggers the first
training through the REST API, and reports what happens until Ctrl-C, the live accuracy
of the served forecasts included (the backfill is scored too, so scores come at once).

How it stops: Ctrl-C (or SIGTERM) stops the simulator, then sends SIGTERM to the daemon
and waits for its ordered shutdown.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nordiqd import apikey
from nordiqd import config as config_mod
from supervisor import exitcodes

DEMO_CONFIG = """\
# nordiqd demo configuration, written by `nordiqd demo` (edit freely; it is kept).
[daemon]
data_dir = "{root}/data"
run_dir = "{root}/run"

[api]
host = "127.0.0.1"
port = {port}
key_file = "{root}/api_key"

[training]
min_records = {min_records}
default_epochs = {epochs}
cpu_threads = 1

[predictor]
refresh_s = 30

[promotion]
holdout_hours = 4  # the gate scores each candidate on the newest 4 h, which it does not train on
must_beat_baseline = false  # the demo's first, one-epoch model serves even if naive does better

[model]
{model}
"""
FULL_MODEL = "max_windows_per_epoch = 3000  # a few minutes per epoch on 2 cores\n"
# The small model keeps a day of window all the same: live accuracy scores every forecast
# against seasonal naive (the value one day earlier), which the windows must still hold.
SMALL_MODEL = """encoder_steps = 288
horizon_steps = 12
hidden_size = 8
attention_heads = 1
hidden_continuous_size = 4
batch_size = 64
max_windows_per_epoch = 256
"""
# Incidents that start soon after live streaming begins, so that forecasts catch them
# rising: (kind, profile of the server it hits, start, duration and severity).
INCIDENTS = (
    ("memory_leak", "web", "+10m+8h"),
    ("io_storm", "database", "+40m+1h*0.8"),
    ("cpu_runaway", "ml_compute", "+90m+2h"),
)


def scenarios(servers: int, seed: int, interval_s: float) -> tuple[str, ...]:
    """The demo's incidents, on the last server of each profile the fleet has."""
    from nordiqd.simulate import SimulatedFleet

    fleet = SimulatedFleet(servers, seed, interval_s)
    last = {s.profile: s.name for s in fleet.servers}
    return tuple(f"{kind}:{last[profile]}@{when}" for kind, profile, when in INCIDENTS if profile in last)


@dataclass(frozen=True)
class DemoOptions:
    """What ``nordiqd demo`` was asked for."""

    root: Path
    port: int = 8000
    servers: int = 20
    interval_s: float = 30.0
    backfill_days: float = 3.0
    epochs: int = 2
    small_model: bool = False
    seed: int = 1
    run_for_s: float | None = None  # stop by itself after this long (tests, CI)


def prepare(opts: DemoOptions) -> Path:
    """Create the demo folder, its config (kept if present) and key; return the config path."""
    opts.root.mkdir(parents=True, exist_ok=True)
    cfg_path = opts.root / "nordiqd.toml"
    if not cfg_path.exists():
        model = SMALL_MODEL if opts.small_model else FULL_MODEL
        min_records = 2000 if opts.small_model else 50000
        cfg_path.write_text(
            DEMO_CONFIG.format(
                root=opts.root, port=opts.port, epochs=opts.epochs, model=model, min_records=min_records
            )
        )
    return cfg_path


class _Api:
    """A few REST calls with the stdlib, as any client would make them."""

    def __init__(self, url: str, key: str) -> None:
        self.url, self.key = url, key

    def call(self, method: str, path: str, timeout: float = 10.0) -> tuple[int, Any]:
        req = urllib.request.Request(self.url + path, method=method, headers={"X-API-Key": self.key})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def main(opts: DemoOptions) -> int:
    """Run the demo until Ctrl-C (or ``run_for_s``); return the exit code."""
    # Here, not at the top: `nordiqd` parses every command line through this module, and
    # the simulator brings numpy and pyarrow.
    from nordiqd.simulate.options import SimulationOptions
    from nordiqd.simulate.sender import run_simulation

    cfg_path = prepare(opts)
    try:
        cfg = config_mod.load(str(cfg_path))
    except config_mod.ConfigError as exc:
        print(f"nordiqd demo: configuration error: {exc}", file=sys.stderr)
        return exitcodes.CONFIG
    if not _port_free(cfg.api.host, cfg.api.port):
        print(
            f"nordiqd demo: port {cfg.api.port} is in use; pass --port or stop what listens there",
            file=sys.stderr,
        )
        return exitcodes.UNAVAILABLE
    key, _ = apikey.generate(cfg.api.key_file)
    url = f"http://{'localhost' if cfg.api.host == '127.0.0.1' else cfg.api.host}:{cfg.api.port}"
    api = _Api(url, key)
    log = open(opts.root / "daemon.log", "ab")
    daemon = subprocess.Popen(
        [sys.executable, "-m", "nordiqd", "run", "-c", str(cfg_path)],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    t0 = time.monotonic()

    def say(text: str) -> None:
        print(f"[{time.monotonic() - t0:6.1f}s] {text}", flush=True)

    try:
        if not _wait_health(api, daemon, stop):
            print(f"nordiqd demo: the daemon did not start; see {opts.root / 'daemon.log'}", file=sys.stderr)
            return exitcodes.FAILURE
        say(f"daemon up (pid {daemon.pid}), log in {opts.root / 'daemon.log'}")
        _banner(url, key, cfg.api.key_file, opts.root)
        now = time.time()
        incidents = scenarios(opts.servers, opts.seed, opts.interval_s)
        common: dict[str, Any] = {
            "servers": opts.servers,
            "interval_s": opts.interval_s,
            "seed": opts.seed,
            "start": now,
            "endpoint": cfg.endpoint("ingest"),
            "metrics": tuple(cfg.schema.metrics),
            "scenarios": incidents,
        }
        days, n, every = opts.backfill_days, opts.servers, opts.interval_s
        say(f"backfilling {days:g} days of {n} servers every {every:g} s ...")
        summary = run_simulation(
            SimulationOptions(backfill_days=opts.backfill_days, live=False, **common), stop
        )
        say(f"backfill done: {summary.records:,} records in {summary.elapsed_s:.1f} s")
        live = threading.Thread(
            target=run_simulation,
            args=(SimulationOptions(live=True, cap_at_clock=True, speed=10.0, **common), stop),
            name="live",
            daemon=True,
        )
        live.start()
        say("streaming live samples (incidents scripted: " + ", ".join(incidents) + ")")
        code, body = api.call("POST", f"/admin/trigger-training?epochs={opts.epochs}&incremental=false")
        if body and body.get("success"):
            say(f"training {body['job_id']} queued ({opts.epochs} epochs)")
        else:
            say(f"training not started: {body.get('error') if body else code}")
        _watch(api, stop, say, opts.run_for_s)
    except Exception as exc:  # the simulator or the API failed: say what, then stop cleanly
        print(f"nordiqd demo: {type(exc).__name__}: {exc}", file=sys.stderr)
        code = 1
    else:
        code = 0
    finally:
        stop.set()
        say("stopping the daemon ...")
        if daemon.poll() is None:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(daemon.pid, signal.SIGKILL)
                daemon.wait()
        say(f"daemon stopped (exit code {daemon.returncode}); data kept in {opts.root}")
        log.close()
    return code


def _wait_health(api: _Api, daemon: subprocess.Popen[bytes], stop: threading.Event) -> bool:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not stop.is_set():
        if daemon.poll() is not None:
            return False
        try:
            if api.call("GET", "/health", timeout=2)[0] == 200:
                return True
        except OSError:
            pass
        time.sleep(0.25)
    return False


def _banner(url: str, key: str, key_file: str, root: Path) -> None:
    print(
        f"""
  Fleet page:  {url}/#key={key}
  API key:     {key}   (in {key_file})

  Try (as in the NordIQ manual):
    export API_KEY={key}
    curl -H "X-API-Key: $API_KEY" {url}/admin/training-stats
    curl -H "X-API-Key: $API_KEY" {url}/admin/training-status
    curl -H "X-API-Key: $API_KEY" {url}/admin/model-info
    curl -H "X-API-Key: $API_KEY" {url}/alerts/active
    curl -H "X-API-Key: $API_KEY" {url}/admin/accuracy
    curl -X POST -H "X-API-Key: $API_KEY" "{url}/admin/trigger-training?epochs=10&incremental=true"
    nordiqd ctl -c {root / "nordiqd.toml"} status

  Ctrl-C stops everything.
""",
        flush=True,
    )


def _watch(api: _Api, stop: threading.Event, say: Any, run_for_s: float | None) -> None:
    """Report what matters: first forecasts, training, model swaps, alerts, live accuracy."""
    started = time.monotonic()
    last: dict[str, Any] = {}
    while not stop.wait(2.0):
        if run_for_s is not None and time.monotonic() - started > run_for_s:
            return
        try:
            _, pred = api.call("GET", "/predictions/current", timeout=30)
            _, job = api.call("GET", "/admin/training-status")
        except OSError as exc:
            say(f"the API did not answer: {exc}")
            continue
        model = pred.get("model", {}) if isinstance(pred, dict) else {}
        forecasts = pred.get("summary", {}).get("forecast", 0) if isinstance(pred, dict) else 0
        if forecasts and not last.get("forecasts"):
            say(f"{model.get('kind')} forecasts served for {forecasts} servers")
        if model.get("version") and model.get("version") != last.get("version"):
            say(f"now serving trained model {model['version']}")
        if isinstance(job, dict) and job.get("status"):
            state = (job["status"], job.get("progress_pct", 0) // 10)
            if state != last.get("job"):
                say(f"training {job['job_id']}: {job['status']} {job.get('progress_pct', 0)}%"
                    + (f" ({job['error']})" if job.get("error") else ""))  # fmt: skip
                gate = job.get("gate") or {}
                if gate.get("decision"):
                    say(f"promotion gate: {gate['decision']} ({'; '.join(gate.get('reasons', []))})")
            last["job"] = state
        summary = pred.get("summary", {}) if isinstance(pred, dict) else {}
        alerts = (summary.get("warning", 0), summary.get("critical", 0))
        if forecasts and alerts != last.get("alerts"):
            say(f"alerts: {alerts[0]} warning, {alerts[1]} critical")
        last.update(forecasts=forecasts, version=model.get("version"), alerts=alerts)
        _report_accuracy(api, say, model.get("version") or "baseline", last)


def _report_accuracy(api: _Api, say: Any, served: str, last: dict[str, Any]) -> None:
    """Say the live skill and coverage of the served model (else of the newest one scored).

    Once per model and hour of data time scored: the backfill is scored through the same
    data-time issue points as live data, so the baseline has scores within seconds.
    """
    try:
        code, body = api.call("GET", "/admin/accuracy")
    except OSError:
        return
    versions = body.get("versions", []) if code == 200 and isinstance(body, dict) else []
    scored = [v for v in versions if v.get("points") and v.get("kind") != "shadow"]
    if not scored:
        return
    v = next((v for v in scored if v["version"] == served), scored[-1])
    through = str(body.get("scored_through") or "")
    mark = (v["version"], through[:13])  # per model and hour of data time
    if mark == last.get("accuracy"):
        return
    last["accuracy"] = mark
    buckets = ", ".join(
        f"{name} {b['skill']:.2f}"
        for name, b in v.get("buckets", {}).items()
        if name != "all" and b.get("points") and b.get("skill") is not None
    )
    skill = "n/a" if v.get("skill") is None else f"{v['skill']:.2f}"
    coverage = "n/a" if v.get("coverage") is None else f"{v['coverage']:.0%}"
    name = "the baseline" if v["kind"] == "baseline" else f"TFT {v['version']}"
    say(
        f"live accuracy of {name}: skill {skill} (below 1 beats seasonal naive; "
        f"by lead {buckets or 'n/a'}), p10-p90 coverage {coverage}, {v['points']:,} points "
        f"scored through {through}"
    )
