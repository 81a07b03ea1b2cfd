"""Runs one role in this process: ``python -m nordiqd worker <role> -c CONFIG``.

How it runs: logging and signals are set up, the supervisor link starts heartbeating,
``role.init()`` runs, Ready is sent, then the main thread polls the role's sockets and
calls ``tick()``. How it stops: SIGTERM (or the supervisor's Shutdown, or its silence)
sets a flag that the loop checks at least every 200 ms; then ``close()`` runs and the
link says Goodbye. SIGINT is ignored: Ctrl-C belongs to the supervisor, which stops the
roles in order.
"""

from __future__ import annotations

import gc
import importlib
import logging
import os
import signal
import sys
import time

import zmq

from nordiqd import config as config_mod
from nordiqd import logsetup
from nordiqd.roles.base import Role
from supervisor import exitcodes
from supervisor.link import SupervisorLink

log = logging.getLogger(__name__)

ROLE_CLASSES = {
    "ingest": "nordiqd.roles.ingest:IngestRole",
    "predictor": "nordiqd.roles.predictor:PredictorRole",
    "trainer": "nordiqd.roles.trainer:TrainerRole",
    "api": "nordiqd.roles.api:ApiRole",
}
POLL_MS = 200


def run_role(name: str, config_path: str | None) -> int:
    """Run role ``name`` until stopped; return the exit code."""
    try:
        cfg = config_mod.load(config_path)
    except config_mod.ConfigError as exc:
        logsetup.setup(name)
        log.error("configuration error: %s", exc)
        return exitcodes.CONFIG
    logsetup.setup(name, cfg.daemon.log_level)
    if config_path:
        # Subprocesses of the role (training jobs) read the same file.
        os.environ["NORDIQD_CONFIG"] = os.path.abspath(config_path)
    module, _, cls = ROLE_CLASSES[name].partition(":")
    role: Role = getattr(importlib.import_module(module), cls)(cfg)

    stopping = False

    def on_term(_sig: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sv = cfg.supervisor
    link = SupervisorLink(
        cfg.endpoint("children"), name, interval=sv.heartbeat_interval_s, liveness=sv.heartbeat_liveness
    )
    link.start()
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    reason = "stopped"
    code = 0
    try:
        role.init(ctx)
        # What init() built (imported modules, sockets, buffers) lives as long as the
        # process: frozen out of the cyclic collector, it is not walked again by every
        # full collection. (The predictor imports torch later, in its model loader,
        # which freezes again: serving/slot.py.)
        gc.collect()
        gc.freeze()
        link.ready()
        log.info("%s ready", name)
        poller = zmq.Poller()
        for sock in role.sockets():
            poller.register(sock, zmq.POLLIN)
        polled = role.sockets()
        while not stopping:
            if polled:
                for sock, _ in poller.poll(POLL_MS):
                    role.on_readable(sock)
            else:
                time.sleep(POLL_MS / 1000)  # zmq returns at once from a poll on no sockets
            role.tick(time.monotonic())
    except config_mod.ConfigError as exc:
        log.error("configuration error: %s", exc)
        reason, code = f"configuration error: {exc}", exitcodes.CONFIG
    except Exception as exc:
        log.exception("%s failed", name)
        reason, code = f"{type(exc).__name__}: {exc}", 1
    finally:
        try:
            role.close()
        except Exception:
            log.exception("%s failed to close cleanly", name)
        link.close(reason)
        ctx.destroy(0)
    log.info("%s exiting (%s)", name, reason)
    return code


def main(argv: list[str]) -> int:
    """Entry for ``python -m nordiqd worker ROLE [-c CONFIG]``."""
    import argparse

    parser = argparse.ArgumentParser(prog="nordiqd worker")
    parser.add_argument("role", choices=sorted(ROLE_CLASSES))
    parser.add_argument("-c", "--config", default=None)
    args = parser.parse_args(argv)
    code = run_role(args.role, args.config)
    # Everything is closed and flushed: skip the interpreter's final garbage collection,
    # which takes seconds once torch and pandas are loaded and only delays the stop.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
