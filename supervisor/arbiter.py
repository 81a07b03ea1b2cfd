"""The supervisor's loop: the one owner of its sockets, signal handlers and clock.

How it runs: ``Arbiter.run()`` binds the children ROUTER, the control ROUTER and the
events PUB, and loops on one zmq poller (both ROUTERs and a self-pipe that signal
handlers write to). Signal handlers only enqueue; the loop dispatches to
``handle_<signal>``. Each pass reads the clock once and hands the time to the process
tree (``supervisor.tree``: spawning, reaping, restarts, liveness) and to the control
command queue (``supervisor.commands``: served one at a time, so a ``restart`` in
progress delays, never refuses, the commands behind it), then heartbeats the children
and pings systemd's watchdog.

How it stops: SIGTERM, SIGINT or a ``stop`` command stop the tree; the loop then refuses
the queued commands, stops the children in reverse start order (TERM, grace, KILL),
heartbeating the ones still running, and returns the exit code. A role that exceeds its
restart intensity, or exits with the configuration error code, stops the tree the same
way with a non-zero code.

The clock, the sleep and the function that starts processes are injected (production
passes nothing), so the loop's pieces run under a fake clock with fake processes.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import socket
import time
from collections import deque
from collections.abc import Callable

import zmq

from ipc import codec
from ipc import messages as m
from ipc.client import reply
from ipc.codec import ProtocolError
from ipc.sockets import make_socket
from supervisor import exitcodes
from supervisor.child import ChildSpec, Launch, popen
from supervisor.commands import CommandQueue
from supervisor.notify import SystemdNotifier
from supervisor.settings import Settings
from supervisor.tree import Tree

log = logging.getLogger("supervisor")

# The loop wakes at least this often even with nothing due, so a missed wake-up costs
# at most this long.
_MAX_POLL_S = 0.25


class Arbiter:
    """Supervises an ordered list of children; see the module docstring."""

    def __init__(
        self,
        specs: list[ChildSpec],
        settings: Settings,
        *,
        on_reload: Callable[[], None] | None = None,
        notifier: SystemdNotifier | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        launch: Launch = popen,
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._sleep = sleep
        self._on_reload = on_reload
        self._notify = notifier or SystemdNotifier()
        self.tree = Tree(
            specs, settings, started=clock(), publish=self._publish, notifier=self._notify, launch=launch
        )
        self.commands = CommandQueue(self.tree, self._answer)
        self._signals: deque[int] = deque()
        self._hb_seq = 0
        self._next_hb = 0.0
        self._next_watchdog = 0.0
        self._watchdog_every = self._notify.watchdog_interval() or settings.heartbeat_interval

    def run(self) -> int:
        """Run until stopped; return the process exit code."""
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        wake_r, wake_w = socket.socketpair()
        wake_r.setblocking(False)
        wake_w.setblocking(False)
        old_wakeup = signal.set_wakeup_fd(wake_w.fileno())
        handled = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD)
        old_handlers = {s: signal.signal(s, self._enqueue_signal) for s in handled}
        try:
            bound = self._bind(ctx)
            if isinstance(bound, int):
                return bound
            self._kids, self._ctl, self._pub = bound
            self._kids.setsockopt(zmq.ROUTER_HANDOVER, 1)
            poller = zmq.Poller()
            poller.register(self._kids, zmq.POLLIN)
            poller.register(self._ctl, zmq.POLLIN)
            poller.register(wake_r.fileno(), zmq.POLLIN)
            log.info("supervisor pid=%d starting %d roles", os.getpid(), len(self.tree.children))
            self.tree.start(self._clock())
            while not self.tree.stopping:
                timeout_ms = int(self._next_deadline(self._clock()) * 1000)
                events = dict(poller.poll(max(1, timeout_ms)))
                if wake_r.fileno() in events:
                    try:
                        while wake_r.recv(4096):
                            pass
                    except BlockingIOError:
                        pass
                self._dispatch_signals()
                if self._kids in events:
                    self._drain_children()
                if self._ctl in events:
                    self.commands.drain(self._ctl)
                self._tick(self._clock())
            self.commands.refuse_all()
            self.tree.stop_all(self._clock, self._sleep, self._beat)
            log.info("supervisor stopped with exit code %d", self.tree.exit_code)
        finally:
            for s, h in old_handlers.items():
                signal.signal(s, h)
            signal.set_wakeup_fd(old_wakeup)
            wake_r.close()
            wake_w.close()
            ctx.destroy(0)
            self._notify.close()
        return self.tree.exit_code

    def _bind(self, ctx: zmq.Context[zmq.Socket[bytes]]) -> tuple[zmq.Socket[bytes], ...] | int:
        """The children ROUTER, control ROUTER and events PUB, or the exit code (logged)
        when an endpoint cannot be bound: ``CONFIG`` for an address unusable as written
        (not retried), ``FAILURE`` for one another process holds (it may be freed)."""
        socks: list[zmq.Socket[bytes]] = []
        for kind, name in ((zmq.ROUTER, "children"), (zmq.ROUTER, "control"), (zmq.PUB, "events")):
            endpoint = getattr(self.settings, f"{name}_endpoint")
            try:
                socks.append(make_socket(ctx, kind, bind=endpoint))
            except zmq.ZMQError as exc:
                for sock in socks:
                    sock.close(0)
                if exc.errno == errno.EADDRINUSE:
                    log.error("cannot bind the %s endpoint %s: %s", name, endpoint, exc)
                    return exitcodes.FAILURE
                log.error("configuration error: cannot bind the %s endpoint %s: %s", name, endpoint, exc)
                return exitcodes.CONFIG
        return tuple(socks)

    # --- signals ----------------------------------------------------------------

    def _enqueue_signal(self, signum: int, _frame: object) -> None:
        self._signals.append(signum)

    def _dispatch_signals(self) -> None:
        while self._signals:
            sig = self._signals.popleft()
            handler = getattr(self, f"handle_{signal.Signals(sig).name.lower()}", None)
            if handler is not None:
                handler()

    def handle_sigterm(self) -> None:
        """SIGTERM: ordered shutdown, exit 0."""
        log.info("SIGTERM received: stopping")
        self.tree.stop(exitcodes.OK)

    def handle_sigint(self) -> None:
        """SIGINT (Ctrl-C): same as SIGTERM."""
        log.info("SIGINT received: stopping")
        self.tree.stop(exitcodes.OK)

    def handle_sighup(self) -> None:
        """SIGHUP: hand over to the product's reload hook."""
        log.info("SIGHUP received: reloading configuration")
        if self._on_reload is not None:
            try:
                self._on_reload()
            except Exception:
                log.exception("reload failed; keeping the running configuration")

    def handle_sigchld(self) -> None:
        """SIGCHLD: only wakes the loop; exits are reaped in ``_tick``."""

    # --- loop pieces ------------------------------------------------------------

    def _next_deadline(self, now: float) -> float:
        """Seconds the poll may sleep: until the next heartbeat, watchdog ping or respawn."""
        deadlines = [self._next_hb, self._next_watchdog, *self.tree.respawn_times()]
        return max(0.0, min(min(deadlines) - now, _MAX_POLL_S))

    def _tick(self, now: float) -> None:
        self.tree.tick(now)
        self._beat(now)
        if now >= self._next_watchdog:
            self._next_watchdog = now + self._watchdog_every
            if self.tree.all_ready() and self.tree.all_fresh(now):
                self._notify.send("WATCHDOG=1")
        self.commands.serve(now)

    def _beat(self, now: float) -> None:
        """Heartbeat every running child once per interval."""
        if now < self._next_hb:
            return
        self._next_hb = now + self.settings.heartbeat_interval
        self._hb_seq += 1
        beat = codec.children.encode(m.Heartbeat(role="supervisor", pid=os.getpid(), seq=self._hb_seq))
        for c in self.tree.children:
            if c.proc is not None and c.proc.returncode is None:
                try:
                    self._kids.send_multipart([c.name.encode(), beat], zmq.NOBLOCK)
                except zmq.ZMQError:
                    pass  # not connected yet, or its queue is full: it will hear the next one

    def _drain_children(self) -> None:
        while True:
            try:
                ident, payload = self._kids.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            except ValueError:
                continue
            try:
                msg = codec.children.decode(payload)
            except ProtocolError as exc:
                log.warning("dropped message from %r: %s", ident, exc)
                continue
            self.tree.heard(ident.decode(errors="replace"), msg, self._clock())

    def _publish(self, event: m.RoleEvent) -> None:
        try:
            self._pub.send(codec.events.encode(event), zmq.NOBLOCK)
        except zmq.ZMQError:
            pass

    def _answer(self, frames: list[bytes], msg: m.Message) -> None:
        reply(self._ctl, frames, codec.control.encode(msg))
