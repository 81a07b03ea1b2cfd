"""The ``nordiqd`` command line: run, ctl, keygen, version (and the internal ``worker``)."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from nordiqd import __version__
from nordiqd import config as config_mod
from supervisor import exitcodes

log = logging.getLogger("nordiqd")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="nordiqd", description="Predictive monitoring daemon for a server fleet."
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_config(sp: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sp.add_argument(
            "-c",
            "--config",
            default=None,
            help="TOML configuration (default: $NORDIQD_CONFIG, else built-in defaults)",
        )
        return sp

    with_config(sub.add_parser("run", help="run the daemon in the foreground (the systemd entry point)"))
    ctl = with_config(sub.add_parser("ctl", help="talk to a running daemon's control socket"))
    ctl.add_argument("action", choices=["status", "restart", "stop"])
    ctl.add_argument("role", nargs="?", help="the role to restart")
    ctl.add_argument("--json", action="store_true", help="print the raw reply as JSON")
    ctl.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the reply (default 30)")
    with_config(sub.add_parser("keygen", help="create the API key file (0600) if missing and print the key"))
    demo = sub.add_parser("demo", help="the whole job on a simulated fleet, under ~/.nordiqd-demo")
    demo.add_argument("--dir", default=None, help="demo folder (default ~/.nordiqd-demo)")
    demo.add_argument("--port", type=int, default=8000, help="REST port (default 8000)")
    demo.add_argument("--servers", type=int, default=20, help="simulated fleet size (default 20)")
    demo.add_argument("--interval", type=float, default=30.0, help="seconds between samples (default 30)")
    demo.add_argument("--backfill-days", type=float, default=3.0, help="history sent first (default 3)")
    demo.add_argument("--epochs", type=int, default=2, help="epochs of the first training (default 2)")
    demo.add_argument("--small-model", action="store_true", help="a tiny model, for a quick smoke run")
    demo.add_argument("--run-for", type=float, default=None, help="stop by itself after this many seconds")
    from nordiqd.simulate import cli as simulate_cli

    simulate_cli.add_arguments(
        sub.add_parser("simulate", help="simulate a fleet and send its metrics to the daemon")
    )
    from nordiqd.backtest import cli as backtest_cli

    backtest_cli.add_arguments(
        sub.add_parser("backtest", help="rolling-origin accuracy of the TFT against honest baselines")
    )
    sub.add_parser("version", help="print the version")
    worker = sub.add_parser("worker")  # internal: how the supervisor starts a role
    worker.add_argument("rest", nargs=argparse.REMAINDER)
    return p


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the command; return the exit code."""
    args = _parser().parse_args(argv)
    if args.command == "worker":
        from nordiqd.roles.runner import main as worker_main

        return worker_main(args.rest)
    if args.command == "simulate":
        from nordiqd.simulate import cli as simulate_cli

        return simulate_cli.run(args)
    if args.command == "backtest":
        from nordiqd.backtest import cli as backtest_cli

        return backtest_cli.run(args)
    if args.command == "demo":
        from pathlib import Path

        from nordiqd.demo import DemoOptions
        from nordiqd.demo import main as demo_main

        root = Path(args.dir or Path.home() / ".nordiqd-demo").resolve()
        return demo_main(
            DemoOptions(
                root=root, port=args.port, servers=args.servers, interval_s=args.interval,
                backfill_days=args.backfill_days, epochs=args.epochs, small_model=args.small_model,
                run_for_s=args.run_for,
            )
        )  # fmt: skip
    if args.command == "version":
        print(f"nordiqd {__version__}")
        return 0
    try:
        cfg = config_mod.load(args.config)
    except config_mod.ConfigError as exc:
        print(f"nordiqd: configuration error: {exc}", file=sys.stderr)
        return exitcodes.CONFIG
    if args.command == "run":
        from nordiqd.daemon import run

        return run(cfg, args.config)
    if args.command == "keygen":
        from nordiqd import apikey

        key, created = apikey.generate(cfg.api.key_file)
        print(key)
        print(f"{'created' if created else 'kept existing'} {cfg.api.key_file}", file=sys.stderr)
        return 0
    return _ctl(cfg, args)


def _ctl(cfg: config_mod.Config, args: argparse.Namespace) -> int:
    import zmq

    from ipc import codec
    from ipc import messages as m
    from ipc.client import RequestClient, RequestTimeout

    if args.action == "restart" and not args.role:
        print(
            "nordiqd ctl restart: name the role to restart (ingest, predictor, trainer, api)", file=sys.stderr
        )
        return 2
    msg: m.Message = {
        "status": m.StatusRequest(),
        "stop": m.StopRequest(),
        "restart": m.RestartRequest(role=args.role or ""),
    }[args.action]
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    client = RequestClient(ctx, cfg.endpoint("control"), codec.control, timeout_s=args.timeout)
    try:
        reply = client.request(msg)
    except RequestTimeout as exc:
        print(f"nordiqd ctl: is the daemon running? {exc}", file=sys.stderr)
        return exitcodes.UNAVAILABLE
    finally:
        client.close()
        ctx.term()
    import msgspec

    if args.json:
        print(json.dumps(msgspec.to_builtins(reply), indent=2))
    elif isinstance(reply, m.StatusReply):
        print(f"supervisor pid {reply.pid} {reply.state}, up {reply.uptime_s:.0f} s")
        print(f"{'ROLE':<10} {'STATE':<9} {'PID':>7} {'UPTIME':>9} {'RESTARTS':>8}  LAST EXIT")
        for r in reply.roles:
            up = f"{r.uptime_s:.0f}s" if r.uptime_s is not None else "-"
            print(
                f"{r.name:<10} {r.state:<9} {r.pid or '-':>7} {up:>9} {r.restarts:>8}  {r.last_exit or '-'}"
            )
    elif isinstance(reply, m.ErrorReply):
        print(f"nordiqd ctl: {reply.message}", file=sys.stderr)
    else:
        print(getattr(reply, "message", reply))
    return 1 if isinstance(reply, m.ErrorReply) else 0
