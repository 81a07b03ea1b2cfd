"""``nordiqd run``: check the ground, then hand the role tree to the supervisor."""

from __future__ import annotations

import logging
import os
import sys

from nordiqd import apikey, logsetup
from nordiqd import config as config_mod
from nordiqd.roles import ORDER
from supervisor.arbiter import Arbiter, Settings
from supervisor.child import EX_CONFIG, ChildSpec
from supervisor.pidfile import PidFile, PidFileError

log = logging.getLogger("nordiqd")


def run(cfg: config_mod.Config, config_path: str | None) -> int:
    """Run the supervisor in the foreground until stopped; return the exit code."""
    logsetup.setup("supervisor", cfg.daemon.log_level)
    try:
        apikey.read(cfg.api.key_file)
        for path in (cfg.daemon.data_dir, cfg.buffer_dir, cfg.models_dir, cfg.state_dir, cfg.daemon.run_dir):
            _make_dir(path)
    except config_mod.ConfigError as exc:
        log.error("configuration error: %s", exc)
        return EX_CONFIG
    pidfile = PidFile(os.path.join(cfg.daemon.run_dir, "nordiqd.pid"))
    try:
        pidfile.acquire()
    except PidFileError as exc:
        log.error("not starting: %s", exc)
        return 1
    sv = cfg.supervisor
    settings = Settings(
        children_endpoint=cfg.endpoint("children"),
        control_endpoint=cfg.endpoint("control"),
        events_endpoint=cfg.endpoint("events"),
        heartbeat_interval=sv.heartbeat_interval_s,
        heartbeat_liveness=sv.heartbeat_liveness,
        start_timeout=sv.start_timeout_s,
        stop_grace=sv.stop_grace_s,
        backoff_initial=sv.backoff_initial_s,
        backoff_factor=sv.backoff_factor,
        backoff_max=sv.backoff_max_s,
        backoff_reset_after=sv.backoff_reset_after_s,
        max_restarts=sv.max_restarts,
        restart_period=sv.restart_period_s,
    )
    config_arg = ("-c", os.path.abspath(config_path)) if config_path else ()
    specs = [
        ChildSpec(role, (sys.executable, "-m", "nordiqd", "worker", role, *config_arg)) for role in ORDER
    ]
    try:
        return Arbiter(specs, settings, on_reload=lambda: _reload(cfg, config_path)).run()
    finally:
        pidfile.release()


def _make_dir(path: str) -> None:
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise config_mod.ConfigError(f"cannot create {path}: {exc.strerror}") from None


def _reload(running: config_mod.Config, config_path: str | None) -> None:
    """SIGHUP: re-read the file; report what changed (every key needs a restart for now)."""
    try:
        new = config_mod.load(config_path)
    except config_mod.ConfigError as exc:
        log.error("SIGHUP: new configuration refused, keeping the running one: %s", exc)
        return
    import msgspec

    old_d, new_d = msgspec.to_builtins(running), msgspec.to_builtins(new)
    changed = [
        f"{section}.{key}"
        for section in new_d
        for key in new_d[section]
        if old_d[section].get(key) != new_d[section][key]
    ]
    if not changed:
        log.info("SIGHUP: configuration unchanged")
    else:
        log.warning("SIGHUP: these keys changed but need a restart to apply: %s", ", ".join(changed))
