"""etc/nordiqd.service: systemd accepts it, it matches what the supervisor does, and
its ExecReload (SIGHUP) applies what can change live and refuses the rest by name."""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from nordiqd import config
from nordiqd.daemon import _reload
from nordiqd.roles import ORDER

UNIT = Path(__file__).resolve().parents[2] / "etc" / "nordiqd.service"
HOST_UNITS = Path("/usr/lib/systemd/system")


def _directives() -> dict[str, dict[str, str]]:
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] = {}
    for raw in UNIT.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if m := re.fullmatch(r"\[(\w+)\]", line):
            current = sections.setdefault(m.group(1), {})
            continue
        key, _, value = line.partition("=")
        current[key.strip()] = value.strip()
    return sections


def _seconds(value: str) -> float:
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)\s*(min|ms|s|h)?", value):
        total += float(number) * {"ms": 0.001, "s": 1, "min": 60, "h": 3600, "": 1}[unit]
    return total


def test_service_contract() -> None:
    svc = _directives()["Service"]
    expected = {
        "Type": "notify",
        "NotifyAccess": "main",
        "ExecStart": "/usr/bin/nordiqd run -c /etc/nordiqd/nordiqd.toml",
        "ExecReload": "/bin/kill -HUP $MAINPID",
        "Restart": "on-failure",
        "KillMode": "mixed",
        "User": "nordiq",
        "Group": "nordiq",
        "StateDirectory": "nordiqd",
        "RuntimeDirectory": "nordiqd",
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "RestartPreventExitStatus": "78",
    }
    wrong = {k: svc.get(k) for k, v in expected.items() if svc.get(k) != v}
    assert not wrong, f"nordiqd.service: these directives differ from {expected}: {wrong}"
    assert _seconds(svc["WatchdogSec"]) > 0
    assert _seconds(svc["RestartSec"]) > 0


def test_timeouts_cover_the_supervisor() -> None:
    svc = _directives()["Service"]
    sv = config.Config().supervisor
    total_grace = len(ORDER) * sv.stop_grace_s
    assert _seconds(svc["TimeoutStopSec"]) >= total_grace + 10, (
        f"TimeoutStopSec={svc['TimeoutStopSec']} must exceed {len(ORDER)} roles x "
        f"stop_grace_s {sv.stop_grace_s} s = {total_grace} s with a margin"
    )
    total_start = len(ORDER) * sv.start_timeout_s
    assert _seconds(svc["TimeoutStartSec"]) >= total_start, (
        f"TimeoutStartSec={svc['TimeoutStartSec']} must cover {len(ORDER)} x start_timeout_s"
    )


def test_directories_are_the_default_config_paths() -> None:
    cfg = config.Config()
    assert cfg.daemon.data_dir == "/var/lib/" + _directives()["Service"]["StateDirectory"]
    assert cfg.daemon.run_dir == "/run/" + _directives()["Service"]["RuntimeDirectory"]


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    """``systemd-analyze verify`` accepts the unit, byte for byte.

    verify checks that every Exec*= command exists, and /usr/bin/nordiqd only exists once
    the package is installed. So the unit is verified in a scratch root (``--root``) that
    holds a copy of the host's own units (sysinit.target and the rest of the default
    dependencies), the unit itself, and stand-ins for /usr/bin/nordiqd and /bin/kill.
    Nothing is modified in the unit. tests/deb verifies the installed one without --root.
    """
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is missing: apt-get install systemd (.ci/run does)")
    if not (HOST_UNITS / "sysinit.target").exists():
        pytest.skip(f"{HOST_UNITS} has no sysinit.target: the systemd package is not complete here")
    root = tmp_path / "root"
    (root / "usr/lib/systemd").mkdir(parents=True)
    shutil.copytree(HOST_UNITS, root / "usr/lib/systemd/system", symlinks=True)
    unit_dir = root / "etc/systemd/system"
    unit_dir.mkdir(parents=True)
    shutil.copy(UNIT, unit_dir / "nordiqd.service")
    for stand_in in ("usr/bin/nordiqd", "bin/kill"):
        path = root / stand_in
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("#!/bin/sh\nexit 0\n")
        path.chmod(0o755)
    proc = subprocess.run(
        [tool, "verify", "--man=no", f"--root={root}", "/etc/systemd/system/nordiqd.service"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = (proc.stdout + proc.stderr).strip()
    assert proc.returncode == 0, f"systemd-analyze verify failed (rc {proc.returncode}):\n{output}"
    complaints = [line for line in output.splitlines() if "nordiqd" in line]
    assert not complaints, "systemd-analyze verify complains:\n" + "\n".join(complaints)


# --- ExecReload: what SIGHUP does (nordiqd.daemon._reload) ----------------------------


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[tuple[int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((record.levelno, record.getMessage()))


@pytest.fixture
def reload_log() -> Iterator[_Records]:
    """Records of the ``nordiqd`` logger; the root logger's setup is restored afterwards."""
    root = logging.getLogger()
    saved = (root.level, root.handlers[:])
    records = _Records()
    logger = logging.getLogger("nordiqd")
    logger.addHandler(records)
    root.setLevel(logging.INFO)
    try:
        yield records
    finally:
        logger.removeHandler(records)
        root.setLevel(saved[0])
        root.handlers[:] = saved[1]


def _write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "nordiqd.toml"
    path.write_text(text)
    return str(path)


def test_sighup_applies_log_level_live(tmp_path: Path, reload_log: _Records) -> None:
    running = config.Config()
    _reload(running, _write(tmp_path, '[daemon]\nlog_level = "debug"\n'))
    assert logging.getLogger().level == logging.DEBUG
    assert any("log_level info -> debug applied" in msg for _, msg in reload_log.lines)
    # Back to the level the daemon started with: compared with the level in force, so applied.
    _reload(running, _write(tmp_path, '[daemon]\nlog_level = "info"\n'))
    assert logging.getLogger().level == logging.INFO
    assert not any(lvl >= logging.WARNING for lvl, _ in reload_log.lines)


def test_sighup_refuses_other_keys_by_name(tmp_path: Path, reload_log: _Records) -> None:
    _reload(config.Config(), _write(tmp_path, "[api]\nport = 8001\n[buffer]\nretention_days = 7\n"))
    warnings = [msg for lvl, msg in reload_log.lines if lvl == logging.WARNING]
    assert len(warnings) == 1
    assert "api.port (8000 -> 8001)" in warnings[0] and "buffer.retention_days (60 -> 7)" in warnings[0]
    assert "systemctl restart nordiqd" in warnings[0]
    assert logging.getLogger().level == logging.INFO


def test_sighup_keeps_everything_on_a_bad_file(tmp_path: Path, reload_log: _Records) -> None:
    _reload(config.Config(), _write(tmp_path, '[daemon]\nlog_level = "debug"\n[api]\nport = "x"\n'))
    errors = [msg for lvl, msg in reload_log.lines if lvl == logging.ERROR]
    assert errors and "api.port" in errors[0] and "nothing changed" in errors[0]
    assert logging.getLogger().level == logging.INFO


def test_sighup_unchanged(tmp_path: Path, reload_log: _Records) -> None:
    _reload(config.Config(), _write(tmp_path, ""))
    assert reload_log.lines == [(logging.INFO, "SIGHUP: configuration unchanged")]
