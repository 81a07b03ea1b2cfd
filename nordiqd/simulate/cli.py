"""``nordiqd simulate``: a simulated fleet sent to the daemon as a real client would.

Wired into ``nordiqd/cli.py`` as::

    add_arguments(sub.add_parser("simulate", help=...))
    ...
    if args.command == "simulate":
        return run(args)

How it runs and stops: the simulation runs in one worker thread; the main thread only
waits for it. SIGINT and SIGTERM set the stop event (signals only enqueue), the worker
finishes the batch in flight, and the summary line is printed. Exit codes: 0 done or
stopped, 1 a batch was rejected, 2 bad arguments or scenario, 69 the daemon did not
answer, 78 configuration error. What is printed, and which outcome gets which code,
is in ``console``.
"""

from __future__ import annotations

import argparse
import re
import signal
import threading
from datetime import datetime

from nordiqd import apikey
from nordiqd import config as config_mod
from nordiqd.simulate import console
from nordiqd.simulate.options import SimulationOptions, Via
from nordiqd.simulate.scenarios import SYNTAX, ScenarioError, parse_scenario
from nordiqd.simulate.sender import run_simulation
from nordiqd.simulate.summary import Summary
from supervisor import exitcodes

EXAMPLES = """\
examples:
  nordiqd simulate -c nordiqd.toml --backfill-days 7            7 days of history, then live
  nordiqd simulate -c nordiqd.toml --via rest --speed 60         live, one simulated minute per second
  nordiqd simulate --scenario memory_leak:web-003@+10m+2h        a leak starting 10 min into live
  nordiqd simulate --seed 1 --start 2026-11-01T00:00Z --backfill-days 1 --no-live \\
      --dry-run --out a.jsonl                                     records to a file, nothing sent
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the ``simulate`` options to ``p`` (its own ``-c/--config`` included)."""
    p.description = "Simulate a server fleet and send its metrics to the daemon (zmq or REST)."
    p.epilog = EXAMPLES
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument(
        "-c",
        "--config",
        default=None,
        help="TOML configuration: where the ingest endpoint, API and key are, which "
        "metrics are accepted (default: $NORDIQD_CONFIG, else built-in defaults)",
    )
    to = p.add_argument_group("destination")
    to.add_argument(
        "--via",
        choices=["zmq", "rest"],
        default="zmq",
        help="send through the zmq ingest endpoint (default) or REST POST /feed/data",
    )
    to.add_argument("--endpoint", help="zmq ingest endpoint (default: the config's)")
    to.add_argument("--url", help="API base URL (default: http://[api] host:port)")
    to.add_argument("--key-file", help="API key file (default: the config's [api] key_file)")
    to.add_argument(
        "--batch-size", type=_positive_int, default=1000, metavar="N", help="records per batch (default 1000)"
    )
    to.add_argument(
        "--timeout",
        type=_positive_float,
        default=10.0,
        metavar="S",
        help="seconds to wait for the daemon's answer to a batch before retrying (default 10)",
    )
    to.add_argument("--dry-run", action="store_true", help="write the records to --out instead of sending")
    to.add_argument(
        "--out", metavar="FILE", help="with --dry-run: FILE.parquet, or JSON lines for any other name"
    )
    fleet = p.add_argument_group("fleet")
    fleet.add_argument(
        "--servers", type=_positive_int, default=20, metavar="N", help="fleet size (default 20)"
    )
    fleet.add_argument(
        "--interval",
        type=_positive_float,
        default=5.0,
        metavar="S",
        help="seconds between samples of one server, simulated time (default 5)",
    )
    fleet.add_argument(
        "--seed", type=int, default=0, help="random seed; the same seed gives the same records"
    )
    fleet.add_argument(
        "--scenario",
        type=_scenario,
        action="append",
        default=[],
        metavar="SPEC",
        help=f"scripted incident {SYNTAX} (repeatable; see --list-scenarios)",
    )
    fleet.add_argument(
        "--list-scenarios",
        action="store_true",
        help="print the scenario syntax, kinds and this fleet's server names, and exit",
    )
    when = p.add_argument_group("time")
    when.add_argument(
        "--start",
        type=_iso_time,
        metavar="ISO",
        help="the simulated now, e.g. 2026-11-01T00:00Z (default: the clock's)",
    )
    when.add_argument(
        "--backfill-days",
        type=_non_negative_float,
        default=0.0,
        metavar="D",
        help="first send history from now-D days to now, as fast as ingest takes it (default 0)",
    )
    when.add_argument("--no-live", action="store_true", help="stop after the backfill")
    when.add_argument(
        "--speed",
        type=_positive_float,
        default=1.0,
        metavar="F",
        help="live: simulated time runs F x wall time (default 1)",
    )
    when.add_argument(
        "--duration",
        type=_positive_float,
        metavar="S",
        help="live: stop after S wall seconds (default: until Ctrl-C)",
    )


def options_from_args(args: argparse.Namespace, cfg: config_mod.Config) -> SimulationOptions:
    """The run's options from parsed arguments and a loaded config.

    Raises:
        ValueError: arguments that do not go together (the message says why).
        nordiqd.config.ConfigError: the API key file is missing or unusable (via rest).
    """
    if args.dry_run and not args.out:
        raise ValueError("--dry-run needs --out FILE (where the records go)")
    if args.out and not args.dry_run:
        raise ValueError("--out only goes with --dry-run (without it records are sent to the daemon)")
    if args.no_live and args.backfill_days == 0:
        raise ValueError("--no-live with no --backfill-days would send nothing")
    if args.no_live and args.duration is not None:
        raise ValueError("--duration applies to live streaming, which --no-live turns off")
    max_batch = cfg.buffer.max_batch_records
    if not args.dry_run and args.batch_size > max_batch:
        raise ValueError(
            f"--batch-size {args.batch_size} is over the daemon's [buffer] max_batch_records {max_batch}"
        )
    via: Via = "file" if args.dry_run else args.via
    url = args.url or f"http://{_client_host(cfg.api.host)}:{cfg.api.port}"
    api_key = ""
    if via == "rest" and not re.match(r"https?://[^/]", url):
        raise ValueError(f"--url {url!r} is not an http:// or https:// URL")
    if via == "rest":
        api_key = apikey.read(args.key_file or cfg.api.key_file)
    return SimulationOptions(
        servers=args.servers,
        interval_s=args.interval,
        seed=args.seed,
        scenarios=tuple(args.scenario),
        backfill_days=args.backfill_days,
        live=not args.no_live,
        speed=args.speed,
        duration_s=args.duration,
        start=args.start,
        batch_size=args.batch_size,
        metrics=tuple(cfg.schema.metrics),
        cap_at_clock=not args.dry_run,
        via=via,
        endpoint=args.endpoint or cfg.endpoint("ingest"),
        url=url,
        api_key=api_key,
        out=args.out or "",
        timeout_s=args.timeout,
    )


def run(args: argparse.Namespace) -> int:
    """Run ``nordiqd simulate`` with parsed ``args``; return the exit code."""
    if args.list_scenarios:
        print(console.scenario_help(args.servers, args.seed))
        return 0
    try:
        cfg = config_mod.load(args.config)
    except config_mod.ConfigError as exc:
        return console.fail(f"configuration error: {exc}", exitcodes.CONFIG)
    try:
        options = options_from_args(args, cfg)
    except config_mod.ConfigError as exc:
        return console.fail(str(exc), exitcodes.CONFIG)
    except ValueError as exc:
        return console.fail(str(exc), exitcodes.USAGE)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        outcome = _in_thread(options, stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return console.report(outcome)


def _in_thread(options: SimulationOptions, stop: threading.Event) -> Summary | BaseException:
    outcome: list[Summary | BaseException] = []
    progress = console.ProgressLine()

    def work() -> None:
        try:
            outcome.append(run_simulation(options, stop, on_progress=progress, notice=console.notice))
        except BaseException as exc:  # handed to the main thread, which reports it
            outcome.append(exc)

    console.announce(options)
    worker = threading.Thread(target=work, name="simulate")
    worker.start()
    while worker.is_alive():
        worker.join(0.2)
    return outcome[0]


def _client_host(host: str) -> str:
    # A daemon bound to every interface is reached on loopback from here.
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def _positive_float(text: str) -> float:
    value = _number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be above 0, not {text}")
    return value


def _non_negative_float(text: str) -> float:
    value = _number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, not {text}")
    return value


def _scenario(text: str) -> str:
    try:
        parse_scenario(text)
    except ScenarioError as exc:
        raise argparse.ArgumentTypeError(f"{exc}; see --list-scenarios") from None
    return text


def _iso_time(text: str) -> float:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO-8601 time like 2026-11-01T00:00Z") from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no UTC offset; add Z or +HH:MM")
    return value.timestamp()
