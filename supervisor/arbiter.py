"""The supervisor's loop: spawn roles in order, watch them, restart them, stop them.

How it runs: ``Arbiter.run()`` owns every socket and child and loops on one zmq poller
(children ROUTER, control ROUTER, and a self-pipe that signal handlers write to). Signal
handlers only enqueue; the loop dispatches to ``handle_<signal>``. Control commands are
queued and served one at a time, so a ``restart`` in progress delays, never refuses, the
commands behind it.

How it stops: SIGTERM, SIGINT or a ``stop`` command set ``stopping``; the loop then stops
the children in reverse start order (TERM, grace, KILL), sends STOPPING=1 and returns the
exit code. A role that exceeds its restart intensity, or exits with the configuration
error code, stops the tree the same way with a non-zero code.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import zmq

from ipc import codec
from ipc import messages as m
from ipc.client import reply
from ipc.codec import ProtocolError
from ipc.sockets import make_socket
from supervisor import exitcodes
from supervisor.backoff import Backoff, RestartIntensity
from supervisor.child import Child, ChildSpec, State
from supervisor.notify import SystemdNotifier

log = logging.getLogger("supervisor")

@dataclass(frozen=True)
class Settings:
    """Supervision parameters; every duration in seconds."""

    children_endpoint: str
    control_endpoint: str
    events_endpoint: str
    heartbeat_interval: float = 1.0
    heartbeat_liveness: int = 3
    start_timeout: float = 60.0
    stop_grace: float = 10.0
    backoff_initial: float = 0.1
    backoff_factor: float = 2.0
    backoff_max: float = 30.0
    backoff_reset_after: float = 60.0
    max_restarts: int = 5
    restart_period: float = 60.0


@dataclass
class _Command:
    frames: list[bytes]
    msg: m.ControlMessage
    waiting_for: str | None = None
    since: float = 0.0
    deadline: float = 0.0


class Arbiter:
    """Supervises an ordered list of children; see the module docstring."""

    def __init__(
        self,
        specs: list[ChildSpec],
        settings: Settings,
        *,
        on_reload: Callable[[], None] | None = None,
        notifier: SystemdNotifier | None = None,
    ) -> None:
        self.settings = settings
        self.children = [
            Child(
                spec,
                Backoff(
                    settings.backoff_initial,
                    settings.backoff_factor,
                    settings.backoff_max,
                    settings.backoff_reset_after,
                ),
            )
            for spec in specs
        ]
        self._by_name = {c.name: c for c in self.children}
        self._intensity = {
            c.name: RestartIntensity(settings.max_restarts, settings.restart_period) for c in self.children
        }
        self._on_reload = on_reload
        self._notify = notifier or SystemdNotifier()
        self._signals: deque[int] = deque()
        self._commands: deque[_Command] = deque()
        self._stopping = False
        self._exit_code = exitcodes.OK
        self._all_ready_once = False
        self._started = time.monotonic()
        self._hb_seq = 0
        self._next_hb = 0.0
        self._next_watchdog = 0.0
        self._watchdog_every = self._notify.watchdog_interval() or settings.heartbeat_interval

    # --- public -----------------------------------------------------------------

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
            self._kids = make_socket(ctx, zmq.ROUTER, bind=self.settings.children_endpoint)
            self._kids.setsockopt(zmq.ROUTER_HANDOVER, 1)
            self._ctl = make_socket(ctx, zmq.ROUTER, bind=self.settings.control_endpoint)
            self._pub = make_socket(ctx, zmq.PUB, bind=self.settings.events_endpoint)
            poller = zmq.Poller()
            poller.register(self._kids, zmq.POLLIN)
            poller.register(self._ctl, zmq.POLLIN)
            poller.register(wake_r.fileno(), zmq.POLLIN)
            log.info("supervisor pid=%d starting %d roles", os.getpid(), len(self.children))
            self._spawn_next_in_order(time.monotonic())
            while not self._stopping:
                timeout_ms = int(self._next_deadline() * 1000)
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
                    self._drain_control()
                self._tick(time.monotonic())
            self._shutdown()
        finally:
            for s, h in old_handlers.items():
                signal.signal(s, h)
            signal.set_wakeup_fd(old_wakeup)
            wake_r.close()
            wake_w.close()
            ctx.destroy(0)
            self._notify.close()
        return self._exit_code

    def status(self) -> m.StatusReply:
        """The supervisor's status, as ``ctl status`` shows it."""
        now = time.monotonic()
        roles = [
            m.RoleStatus(
                name=c.name,
                state=c.state,
                pid=c.pid if c.state not in (State.STOPPED, State.BACKOFF, State.FAILED) else None,
                uptime_s=round(now - c.started_at, 3) if c.state == State.READY else None,
                restarts=c.restarts,
                last_exit=c.last_exit,
            )
            for c in self.children
        ]
        state = "stopping" if self._stopping else ("running" if self._all_ready() else "starting")
        return m.StatusReply(
            pid=os.getpid(), state=state, uptime_s=round(now - self._started, 3), roles=roles
        )

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
        self._begin_stop(exitcodes.OK)

    def handle_sigint(self) -> None:
        """SIGINT (Ctrl-C): same as SIGTERM."""
        log.info("SIGINT received: stopping")
        self._begin_stop(exitcodes.OK)

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

    def _next_deadline(self) -> float:
        now = time.monotonic()
        deadlines = [self._next_hb, self._next_watchdog]
        for c in self.children:
            if c.state == State.BACKOFF:
                deadlines.append(c.respawn_at)
        return max(0.0, min(min(deadlines) - now, 0.25))

    def _tick(self, now: float) -> None:
        self._reap(now)
        self._check_liveness(now)
        for c in self.children:
            if c.state == State.BACKOFF and now >= c.respawn_at and not self._stopping:
                self._spawn(c, now)
        self._beat(now)
        if now >= self._next_watchdog:
            self._next_watchdog = now + self._watchdog_every
            if self._all_ready() and self._all_fresh(now):
                self._notify.send("WATCHDOG=1")
        self._serve_commands(now)

    def _beat(self, now: float) -> None:
        """Heartbeat every running child once per interval."""
        if now < self._next_hb:
            return
        self._next_hb = now + self.settings.heartbeat_interval
        self._hb_seq += 1
        beat = codec.children.encode(m.Heartbeat(role="supervisor", pid=os.getpid(), seq=self._hb_seq))
        for c in self.children:
            if c.proc is not None and c.proc.returncode is None:
                self._send_child(c, beat)

    def _send_child(self, c: Child, payload: bytes) -> None:
        try:
            self._kids.send_multipart([c.name.encode(), payload], zmq.NOBLOCK)
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
            c = self._by_name.get(ident.decode(errors="replace"))
            if c is None or c.pid != getattr(msg, "pid", None):
                continue  # a stranger, or a message from a previous incarnation
            now = time.monotonic()
            c.last_seen = now
            match msg:
                case m.Ready():
                    if c.state == State.STARTING:
                        c.state = State.READY
                        c.ready_at = now
                        log.info("%s pid=%d ready in %.2f s", c.name, c.pid, now - c.started_at)
                        self._publish(c, "ready")
                        self._on_child_ready(now)
                case m.Goodbye(reason=reason):
                    c.goodbye = reason
                case _:
                    pass

    def _on_child_ready(self, now: float) -> None:
        if not self._all_ready_once:
            if self._all_ready():
                self._all_ready_once = True
                log.info("all %d roles ready", len(self.children))
                self._notify.send("READY=1", "STATUS=all roles ready")
            else:
                self._spawn_next_in_order(now)

    def _spawn_next_in_order(self, now: float) -> None:
        for c in self.children:
            if c.state == State.STOPPED:
                self._spawn(c, now)
                return
            if c.state != State.READY:
                return  # wait for this one before starting the next

    def _spawn(self, c: Child, now: float) -> None:
        try:
            c.spawn(now)
        except OSError as exc:
            c.last_exit = f"could not start: {exc}"
            log.error("%s could not start: %s", c.name, exc)
            self._schedule_restart(c, now, 0.0)
            return
        self._publish(c, "spawned")

    def _reap(self, now: float) -> None:
        for c in self.children:
            if c.state not in (State.STARTING, State.READY, State.STOPPING):
                continue
            code = c.poll_exit()
            if code is None:
                continue
            reason = c.exit_reason(code)
            ran_for = now - c.started_at
            c.last_exit = reason
            log.warning("%s pid=%d %s after %.1f s", c.name, c.pid, reason, ran_for)
            self._publish(c, "exited", reason)
            if self._stopping:
                c.state = State.STOPPED
            elif code == exitcodes.CONFIG:
                c.state = State.FAILED
                log.error("%s reports a configuration error: stopping the tree", c.name)
                self._begin_stop(exitcodes.CONFIG)
            elif c.state == State.STOPPING:  # a restart that was asked for
                c.backoff.reset()
                self._schedule_restart(c, now, 0.0)
            else:
                self._schedule_restart(c, now, ran_for)

    def _schedule_restart(self, c: Child, now: float, ran_for: float) -> None:
        if not self._intensity[c.name].allow(now):
            c.state = State.FAILED
            log.error(
                "%s exceeded its restart intensity (%d in %.0f s): stopping the tree",
                c.name,
                self.settings.max_restarts,
                self.settings.restart_period,
            )
            self._begin_stop(exitcodes.FAILURE)
            return
        delay = c.backoff.next_delay(ran_for)
        c.state = State.BACKOFF
        c.respawn_at = now + delay
        c.restarts += 1
        log.info("%s restarts in %.2f s (restart #%d)", c.name, delay, c.restarts)

    def _check_liveness(self, now: float) -> None:
        silence = self.settings.heartbeat_interval * self.settings.heartbeat_liveness
        for c in self.children:
            if c.kill_reason:
                continue
            if c.state == State.READY and now - c.last_seen > silence:
                log.error("%s pid=%d missed heartbeats for %.1f s: killing", c.name, c.pid, now - c.last_seen)
                c.kill("missed heartbeats")
            elif c.state == State.STARTING and now - c.started_at > self.settings.start_timeout:
                log.error(
                    "%s pid=%d not ready after %.0f s: killing", c.name, c.pid, self.settings.start_timeout
                )
                c.kill("start timeout")
            elif c.state == State.STOPPING and now > c.stop_deadline:
                c.kill("did not stop within the grace period")

    def _all_ready(self) -> bool:
        return all(c.state == State.READY for c in self.children)

    def _all_fresh(self, now: float) -> bool:
        silence = self.settings.heartbeat_interval * self.settings.heartbeat_liveness
        return all(now - c.last_seen <= silence for c in self.children)

    def _publish(self, c: Child, state: str, detail: str = "") -> None:
        event = m.RoleEvent(role=c.name, state=state, pid=c.pid, detail=detail)
        try:
            self._pub.send(codec.events.encode(event), zmq.NOBLOCK)
        except zmq.ZMQError:
            pass

    # --- control ----------------------------------------------------------------

    def _drain_control(self) -> None:
        while True:
            try:
                frames = self._ctl.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            if len(frames) != 3:
                continue
            try:
                msg = codec.control.decode(frames[2])
            except ProtocolError as exc:
                reply(
                    self._ctl, frames, codec.control.encode(m.ErrorReply(kind="protocol", message=str(exc)))
                )
                continue
            self._commands.append(_Command(frames, msg))

    def _answer(self, cmd: _Command, msg: m.Message) -> None:
        reply(self._ctl, cmd.frames, codec.control.encode(msg))

    def _serve_commands(self, now: float) -> None:
        while self._commands:
            cmd = self._commands[0]
            if cmd.waiting_for is not None:
                c = self._by_name[cmd.waiting_for]
                if c.state == State.READY and c.ready_at > cmd.since:
                    self._answer(cmd, m.Ack(message=f"{c.name} restarted (pid {c.pid})"))
                elif c.state == State.FAILED or now > cmd.deadline:
                    self._answer(
                        cmd,
                        m.ErrorReply(
                            kind="restart_failed", message=f"{c.name} did not come back: {c.last_exit}"
                        ),
                    )
                else:
                    return  # still waiting; the commands behind it stay queued
                self._commands.popleft()
                continue
            self._commands.popleft()
            match cmd.msg:
                case m.StatusRequest():
                    self._answer(cmd, self.status())
                case m.StopRequest():
                    self._answer(cmd, m.Ack(message="stopping"))
                    log.info("stop requested over the control socket")
                    self._begin_stop(exitcodes.OK)
                    return
                case m.RestartRequest(role=role):
                    target = self._by_name.get(role)
                    if target is None:
                        names = ", ".join(self._by_name)
                        self._answer(
                            cmd,
                            m.ErrorReply(
                                kind="unknown_role", message=f"no role named {role!r}; roles: {names}"
                            ),
                        )
                        continue
                    self._restart(target, now)
                    cmd.waiting_for = target.name
                    cmd.since = now
                    cmd.deadline = now + self.settings.stop_grace + self.settings.start_timeout
                    self._commands.appendleft(cmd)
                    return
                case _:
                    self._answer(
                        cmd,
                        m.ErrorReply(
                            kind="bad_request", message=f"not a control command: {type(cmd.msg).__name__}"
                        ),
                    )

    def _restart(self, c: Child, now: float) -> None:
        log.info("restart of %s requested", c.name)
        if c.state in (State.STARTING, State.READY):
            c.state = State.STOPPING
            c.stop_deadline = now + self.settings.stop_grace
            c.signal(signal.SIGTERM)
        elif c.state in (State.BACKOFF, State.STOPPED, State.FAILED):
            c.backoff.reset()
            self._spawn(c, now)

    # --- shutdown ---------------------------------------------------------------

    def _begin_stop(self, code: int) -> None:
        if not self._stopping:
            self._stopping = True
            self._exit_code = code
            self._notify.send("STOPPING=1", "STATUS=stopping")

    def _shutdown(self) -> None:
        """Stop children in reverse start order: TERM, wait ``stop_grace``, KILL."""
        for cmd in self._commands:
            self._answer(cmd, m.ErrorReply(kind="stopping", message="the supervisor is stopping"))
        self._commands.clear()
        for c in reversed(self.children):
            if c.proc is None or c.proc.returncode is not None:
                continue
            c.signal(signal.SIGTERM)
            deadline = time.monotonic() + self.settings.stop_grace
            while c.proc.poll() is None and time.monotonic() < deadline:
                self._beat(time.monotonic())  # the roles still running must not think we died
                time.sleep(0.02)
            if c.proc.poll() is None:
                log.warning(
                    "%s pid=%d ignored SIGTERM for %.0f s: killing", c.name, c.pid, self.settings.stop_grace
                )
                c.signal(signal.SIGKILL)
                c.proc.wait()
            log.info("%s pid=%d stopped (%s)", c.name, c.pid, c.exit_reason(c.proc.returncode or 0))
            c.state = State.STOPPED
        log.info("supervisor stopped with exit code %d", self._exit_code)
