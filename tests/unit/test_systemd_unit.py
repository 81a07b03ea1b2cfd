"""etc/nordiqd.service: systemd accepts it, and it matches what the supervisor does."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from nordiqd import config
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
