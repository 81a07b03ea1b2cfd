"""One supervised child: its spec, its process and its observable state."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field

from supervisor import exitcodes
from supervisor.backoff import Backoff

log = logging.getLogger("supervisor")

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
    """Runtime state of one child; the arbiter is its only mutator."""

    spec: ChildSpec
    backoff: Backoff
    state: str = State.STOPPED
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    ready_at: float = 0.0
    last_seen: float = 0.0
    restarts: int = 0
    last_exit: str | None = None
    respawn_at: float = 0.0
    stop_deadline: float = 0.0
    kill_reason: str | None = None
    goodbye: str | None = None
    spawns: list[float] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def spawn(self, now: float) -> None:
        """Start the process (exec of a fresh interpreter, never a fork of ours)."""
        env = dict(os.environ)
        env.update(dict(self.spec.env))
        self.proc = subprocess.Popen(list(self.spec.argv), env=env, close_fds=True)
        self.state = State.STARTING
        self.started_at = self.last_seen = now
        self.kill_reason = self.goodbye = None
        self.spawns.append(time.monotonic())
        log.info("spawned %s pid=%d", self.name, self.proc.pid)

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the process if it still runs."""
        if self.proc is not None and self.proc.returncode is None:
            try:
                os.kill(self.proc.pid, sig)
            except ProcessLookupError:
                pass

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
