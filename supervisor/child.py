"""One supervised child: its spec, its process and its observable state.

The process is reached only through the small ``Process`` protocol and started only
through a ``Launch`` function (``popen`` in production), so tests hand in fake processes
that record the signals they get and exit when the test says.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from supervisor import exitcodes
from supervisor.backoff import Backoff

log = logging.getLogger("supervisor")


class Process(Protocol):
    """What the supervisor needs of a started process (``subprocess.Popen`` has it)."""

    @property
    def pid(self) -> int: ...

    @property
    def returncode(self) -> int | None: ...

    def poll(self) -> int | None:
        """The exit code once the process has ended (reaping it), else None."""

    def wait(self, timeout: float | None = None) -> int:
        """Block until the process ends; return its exit code."""

    def send_signal(self, sig: int) -> None:
        """Send ``sig`` unless the process has already been reaped."""


Launch = Callable[[list[str], dict[str, str]], Process]
"""Start ``argv`` with environment ``env``; raise ``OSError`` when it cannot start."""


def popen(argv: list[str], env: dict[str, str]) -> Process:
    """Start a fresh interpreter (an exec, never a fork of ours) with no inherited fds."""
    return subprocess.Popen(argv, env=env, close_fds=True)


@dataclass(frozen=True)
class ChildSpec:
    """How to start one role: a fresh interpreter with its endpoints as arguments."""

    name: str
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()


class State:
    """Names of a child's states, as ``status`` shows them."""

    STOPPED = "stopped"
    STARTING = "starting"
    READY = "ready"
    STOPPING = "stopping"
    BACKOFF = "backoff"
    FAILED = "failed"


@dataclass
class Child:
    """Runtime state of one child; the supervisor's loop is its only mutator."""

    spec: ChildSpec
    backoff: Backoff
    launch: Launch = popen
    state: str = State.STOPPED
    proc: Process | None = None
    started_at: float = 0.0
    ready_at: float = 0.0
    last_seen: float = 0.0
    restarts: int = 0
    last_exit: str | None = None
    respawn_at: float = 0.0
    stop_deadline: float = 0.0
    kill_reason: str | None = None
    goodbye: str | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def spawn(self, now: float) -> None:
        """Start the process with our environment plus the spec's; raise ``OSError``."""
        env = dict(os.environ)
        env.update(dict(self.spec.env))
        self.proc = self.launch(list(self.spec.argv), env)
        self.state = State.STARTING
        self.started_at = self.last_seen = now
        self.kill_reason = self.goodbye = None
        log.info("spawned %s pid=%d", self.name, self.proc.pid)

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the process if it still runs."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(sig)

    def kill(self, reason: str) -> None:
        """SIGKILL the process and remember why (shown as its exit reason)."""
        self.kill_reason = reason
        self.signal(signal.SIGKILL)

    def poll_exit(self) -> int | None:
        """The exit code once the process has ended (reaping it), else None."""
        if self.proc is None:
            return None
        return self.proc.poll()

    def exit_reason(self, code: int) -> str:
        """A sentence saying why the process ended."""
        if code < 0:
            try:
                what = f"killed by {signal.Signals(-code).name}"
            except ValueError:
                what = f"killed by signal {-code}"
        elif code == exitcodes.CONFIG:
            what = f"exited with code {code} (configuration error)"
        else:
            what = f"exited with code {code}"
        if self.kill_reason:
            what = f"{self.kill_reason}; {what}"
        if self.goodbye:
            what = f"{what}: {self.goodbye}"
        return what
