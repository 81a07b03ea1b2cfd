"""``nordiqd run``: check the ground, then hand the role tree to the supervisor."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

from nordiqd import apikey, logsetup
from nordiqd import config as config_mod
from nordiqd.roles import ORDER
from supervisor import exitcodes
from supervisor.arbiter import Arbiter
from supervisor.child import ChildSpec
from supervisor.pidfile import PidFile, PidFileError
from supervisor.settings import Settings

log = logging.getLogger("nordiqd")


def run(cfg: config_mod.Config, config_path: str | None) -> int:
    """Run the supervisor in the foreground until stopped; return the exit code."""
    logsetup.setup("supervisor", cfg.daemon.log_level)
    try:
        apikey.read(cfg.api.key_file)
        for key, path in (
            ("daemon.data_dir", cfg.daemon.data_dir),
            ("daemon.data_dir", cfg.buffer_dir),
            ("daemon.data_dir", cfg.models_dir),
            ("daemon.data_dir", cfg.state_dir),
            ("daemon.run_dir", cfg.daemon.run_dir),
        ):
            _make_dir(key, path)
        _check_backend(cfg)
    except config_mod.ConfigError as exc:
        log.error("configuration error: %s", exc)
        return exitcodes.CONFIG
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
    # torch writes compile caches to /tmp/torchinductor_<user> unless told otherwise: keep
    # every file the daemon makes under its own data_dir (purged with the package).
    os.environ.setdefault(
        "TORCHINDUCTOR_CACHE_DIR", os.path.join(cfg.daemon.data_dir, "cache", "torchinductor")
    )
    config_arg = ("-c", os.path.abspath(config_path)) if config_path else ()
    specs = [
        ChildSpec(role, (sys.executable, "-m", "nordiqd", "worker", role, *config_arg)) for role in ORDER
    ]
    try:
        return Arbiter(specs, settings, on_reload=lambda: _reload(cfg, config_path)).run()
    finally:
        pidfile.release()


def _check_backend(cfg: config_mod.Config) -> None:
    """With ``[training] backend = "ray"``, Ray must import here, or no job could ever run.

    Imported in a child interpreter: the supervisor itself never loads Ray.
    """
    if cfg.training.backend != "ray":
        return
    probe = subprocess.run(
        [sys.executable, "-c", "import ray.train"], capture_output=True, text=True, timeout=300
    )
    if probe.returncode != 0:
        lines = probe.stderr.strip().splitlines()
        raise config_mod.ConfigError(
            f"key 'training.backend': \"ray\" needs Ray, which does not import here "
            f"({lines[-1] if lines else f'exit {probe.returncode}'}): pip install nordiqd[ray]"
        )


def _make_dir(key: str, path: str) -> None:
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise config_mod.ConfigError(f"key '{key}': cannot create {path}: {exc.strerror}") from None


def _reload(running: config_mod.Config, config_path: str | None) -> None:
    """SIGHUP (``systemctl reload nordiqd``): re-read the file, apply what can change live.

    Live: ``[daemon] log_level``, applied at once to the supervisor's logging, compared
    with the level in force (so a second reload back to the old level applies too).
    Every other key is compared with the configuration the daemon started with; a
    changed one is refused, logged by name with its old and new values, and keeps its
    running value until ``systemctl restart nordiqd``. A file that fails to load is
    refused whole and changes nothing.
    """
    import msgspec

    def short(value: object) -> str:
        text = repr(value)
        return text if len(text) <= 60 else text[:57] + "..."

    try:
        new = config_mod.load(config_path)
    except config_mod.ConfigError as exc:
        log.error("SIGHUP: configuration refused, nothing changed: %s", exc)
        return
    level = new.daemon.log_level
    current = logging.getLevelName(logging.getLogger().level).lower()
    if level != current:
        logsetup.setup("supervisor", level)
        log.log(
            max(logging.INFO, logging.getLogger().level),
            "SIGHUP: daemon.log_level %s -> %s applied to the supervisor "
            "(roles take it when they next start)",
            current,
            level,
        )
    old_d, new_d = msgspec.to_builtins(running), msgspec.to_builtins(new)
    refused = [
        f"{section}.{key} ({short(old_d[section].get(key))} -> {short(value)})"
        for section, keys in new_d.items()
        for key, value in keys.items()
        if old_d[section].get(key) != value and (section, key) != ("daemon", "log_level")
    ]
    if refused:
        log.warning(
            "SIGHUP: not applied, these keys need 'systemctl restart nordiqd' (until then the "
            "running values stay; a role restarted alone would read the new file): %s",
            "; ".join(refused),
        )
    elif level == current:
        log.info("SIGHUP: configuration unchanged")
