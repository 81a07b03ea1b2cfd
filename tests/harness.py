"""A real ``nordiqd run`` in its own process group, on a temporary directory."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests
import zmq

from ipc import codec
from ipc import messages as m
from ipc.client import RequestClient

FAST_SUPERVISION = {
    "heartbeat_interval_s": 0.25,
    "heartbeat_liveness": 6,  # 1.5 s of silence: fast, yet not fooled by a loaded 2-core CI machine
    "backoff_initial_s": 0.1,
    "backoff_max_s": 2.0,
    "stop_grace_s": 5.0,
    "start_timeout_s": 60.0,
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        # JSON's escapes are TOML's; DEL is the one control character JSON leaves raw.
        return json.dumps(v, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):  # an inline table; quoted keys hold any name
        return "{" + ", ".join(f"{_toml_value(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"
    return repr(v)  # numbers; TOML spells nan and inf as Python does


def write_config(path: Path, sections: dict[str, dict[str, Any]]) -> None:
    lines = []
    for name, keys in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in keys.items()]
    path.write_text("\n".join(lines) + "\n")


def wait_for(pred, timeout: float, step: float = 0.05):  # type: ignore[no-untyped-def]
    """Poll ``pred`` until it returns something truthy (returned) or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(step)
    return pred()


def _stat(pid: int) -> list[str]:
    """The fields of ``/proc/<pid>/stat`` after the command name (state first)."""
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().rsplit(")", 1)[1].split()


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        return _stat(pid)[0] != "Z"
    except FileNotFoundError:
        return False


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` so far."""
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Daemon:
    """Config, process and clients of one test daemon."""

    def __init__(self, root: Path, overrides: dict[str, Any]) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.key_file = root / "api_key"
        sections: dict[str, dict[str, Any]] = {
            "daemon": {"data_dir": str(root / "data"), "run_dir": str(root / "run")},
            "supervisor": dict(FAST_SUPERVISION),
            "api": {"port": self.port, "key_file": str(self.key_file)},
        }
        for section, keys in overrides.items():
            sections.setdefault(section, {}).update(keys)  # type: ignore[arg-type]
        self.config = root / "nordiqd.toml"
        write_config(self.config, sections)
        self.log = root / "daemon.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"http://127.0.0.1:{self.port}"
        self._ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()

    # --- lifecycle --------------------------------------------------------------

    def cli(
        self, *args: str, timeout: float = 60, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "nordiqd", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, **(env or {})},
        )

    def start(self, env: dict[str, str] | None = None, keygen: bool = True) -> None:
        if keygen and not self.key_file.exists():
            assert self.cli("keygen", "-c", str(self.config)).returncode == 0
        self.key = self.key_file.read_text().strip() if self.key_file.exists() else ""
        self._logfh = open(self.log, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "nordiqd", "run", "-c", str(self.config)],
            stdout=self._logfh,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 30.0) -> float:
        """Wait until every role is ready; return the seconds it took."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited with {self.proc.returncode}:\n{self.log_text()}")
            try:
                st = self.status(timeout_s=1.0)
                if st.state == "running" and all(r.state == "ready" for r in st.roles):
                    return time.monotonic() - t0
            except Exception:
                pass
            time.sleep(0.05)
        raise AssertionError(f"not ready after {timeout} s:\n{self.log_text()}")

    def status(self, timeout_s: float = 5.0) -> m.StatusReply:
        client = RequestClient(self._ctx, self.endpoint("control"), codec.control, timeout_s=timeout_s)
        try:
            return client.request(m.StatusRequest())  # type: ignore[no-any-return]
        finally:
            client.close()

    def role(self, name: str) -> m.RoleStatus:
        return next(r for r in self.status().roles if r.name == name)

    def endpoint(self, name: str) -> str:
        return f"ipc://{self.root / 'run' / name}.sock"

    def tree_pids(self) -> list[int]:
        assert self.proc is not None
        return [self.proc.pid, *[r.pid for r in self.status().roles if r.pid]]

    def wait_exit(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def kill_group(self) -> None:
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
        self._ctx.destroy(0)

    def job_end(self, job_id: str, timeout: float, step: float = 0.5) -> dict[str, Any] | None:
        """The job's training-status body once it ended (None if it runs past ``timeout``)."""
        ended = ("completed", "failed", "cancelled")
        job: dict[str, Any] | None = wait_for(
            lambda: (
                (j := self.get(f"/admin/training-status?job_id={job_id}").json())["status"] in ended and j
            ),
            timeout,
            step=step,
        )
        return job

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    # --- REST -------------------------------------------------------------------

    def get(self, path: str, key: str | None = "default", **kw: Any) -> requests.Response:
        return requests.get(self.url + path, headers=self._headers(key), timeout=30, **kw)

    def post(self, path: str, key: str | None = "default", **kw: Any) -> requests.Response:
        kw.setdefault("timeout", 60)
        return requests.post(self.url + path, headers=self._headers(key), **kw)

    def _headers(self, key: str | None) -> dict[str, str]:
        if key is None:
            return {}
        return {"X-API-Key": self.key if key == "default" else key}
