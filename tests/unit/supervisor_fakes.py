"""Fakes for supervisor unit tests: a clock, processes, a launcher and a notifier.

A ``FakeProcess`` exits when the test says (``exit``) or when it gets a signal that would
end a real one; like a real child, the exit is seen only once the supervisor polls it.
"""

from __future__ import annotations

import dataclasses
import itertools
import signal

from ipc import messages as m
from nordiqd.roles import ORDER
from supervisor.child import Child, ChildSpec
from supervisor.notify import SystemdNotifier
from supervisor.settings import Settings
from supervisor.tree import Tree

ROLES = ORDER


class FakeClock:
    """Monotonic time that moves only when told; ``sleep`` moves it."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


class FakeProcess:
    """A started child that records the signals it receives."""

    _pids = itertools.count(4000)

    def __init__(
        self, argv: list[str], journal: list[tuple[str, int]], *, ignores_term: bool = False
    ) -> None:
        self.argv = argv
        self.pid = next(self._pids)
        self.returncode: int | None = None
        self.signals: list[int] = []
        self.ignores_term = ignores_term
        self.frozen = False  # a frozen process sends no heartbeats
        self._journal = journal
        self._exited: int | None = None  # ended, not yet reaped

    @property
    def running(self) -> bool:
        return self._exited is None

    def exit(self, code: int) -> None:
        self._exited = code

    def poll(self) -> int | None:
        if self.returncode is None and self._exited is not None:
            self.returncode = self._exited
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        code = self.poll()
        if code is None:
            raise AssertionError(f"wait() on pid {self.pid}, which is still running, would block")
        return code

    def send_signal(self, sig: int) -> None:
        self.signals.append(sig)
        self._journal.append((self.argv[-1], sig))
        if sig == signal.SIGKILL or (sig == signal.SIGTERM and not self.ignores_term):
            self.exit(-sig)


class FakeLauncher:
    """Starts ``FakeProcess`` objects and remembers them per role (``argv[-1]``)."""

    def __init__(self) -> None:
        self.started: list[FakeProcess] = []
        self.journal: list[tuple[str, int]] = []  # (role, signal) across every process, in order
        self.ignores_term: set[str] = set()
        self.refuse: set[str] = set()

    def __call__(self, argv: list[str], env: dict[str, str]) -> FakeProcess:
        if argv[-1] in self.refuse:
            raise FileNotFoundError(2, "No such file or directory", argv[0])
        proc = FakeProcess(argv, self.journal, ignores_term=argv[-1] in self.ignores_term)
        self.started.append(proc)
        return proc

    def of(self, role: str) -> list[FakeProcess]:
        """Every process started for ``role``, oldest first."""
        return [p for p in self.started if p.argv[-1] == role]

    def last(self, role: str) -> FakeProcess:
        return self.of(role)[-1]


class RecordingNotifier(SystemdNotifier):
    """A notifier outside systemd that keeps what it would have sent."""

    def __init__(self) -> None:
        super().__init__(address="")
        self.sent: list[str] = []

    def watchdog_interval(self) -> float | None:
        return None

    def send(self, *states: str) -> None:
        self.sent.extend(states)


BASE = Settings(
    "inproc://children",
    "inproc://control",
    "inproc://events",
    heartbeat_interval=1.0,
    heartbeat_liveness=3,
    start_timeout=20.0,
    stop_grace=5.0,
    backoff_initial=0.1,
    backoff_factor=2.0,
    backoff_max=1.0,
    backoff_reset_after=60.0,
    max_restarts=5,
    restart_period=60.0,
)
"""Round numbers, so that the tests read as arithmetic."""


class Rig:
    """A ``Tree`` over fake processes and a fake clock, with what it published."""

    def __init__(self, **overrides: float) -> None:
        self.clock = FakeClock()
        self.launch = FakeLauncher()
        self.notifier = RecordingNotifier()
        self.events: list[m.RoleEvent] = []
        self.tree = Tree(
            [ChildSpec(role, ("python", "-m", "nordiqd", "worker", role)) for role in ROLES],
            dataclasses.replace(BASE, **overrides),
            started=self.clock(),
            publish=self.events.append,
            notifier=self.notifier,
            launch=self.launch,
        )

    def ready(self, role: str) -> None:
        """The latest process of ``role`` says Ready, now."""
        self.tree.heard(role, m.Ready(role=role, pid=self.launch.last(role).pid), self.clock())

    def beat(self, role: str) -> None:
        self.tree.heard(role, m.Heartbeat(role=role, pid=self.launch.last(role).pid), self.clock())

    def start_all(self) -> None:
        """Start the tree and make each role Ready in turn."""
        self.tree.start(self.clock())
        for role in ROLES:
            self.ready(role)

    def tick(self, after: float = 0.0) -> None:
        """Let ``after`` seconds pass, every live process that is not frozen heartbeating, then tick."""
        now = self.clock.advance(after)
        for proc in self.launch.started:
            role = proc.argv[-1]
            if proc.running and not proc.frozen and self.tree.by_name[role].proc is proc:
                self.tree.heard(role, m.Heartbeat(role=role, pid=proc.pid), now)
        self.tree.tick(now)

    def child(self, role: str) -> Child:
        return self.tree.by_name[role]
