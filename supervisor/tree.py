"""The supervised children and the rules applied to them, with no socket and no clock.

``Tree`` starts children in order (each Ready before the next starts), reaps their
exits, restarts them with back-off under a restart intensity, kills the frozen and the
stuck, and stops them in reverse order. The arbiter's loop reads the clock once per pass
and hands ``now`` to every step; processes start through an injected ``Launch``; what
happens leaves through the ``publish`` callback (role events) and the notifier
(``READY=1``, ``STOPPING=1``). So every rule is tested with a fake clock and fake
processes.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable

from ipc import messages as m
from supervisor import exitcodes
from supervisor.backoff import Backoff, RestartIntensity
from supervisor.child import Child, ChildSpec, Launch, State, popen
from supervisor.notify import SystemdNotifier
from supervisor.settings import Settings

log = logging.getLogger("supervisor")

# A child in these states has a process the supervisor still has to reap.
_RUNNING = (State.STARTING, State.READY, State.STOPPING)


class Tree:
    """An ordered list of children under one restart policy; see the module docstring."""

    def __init__(
        self,
        specs: list[ChildSpec],
        settings: Settings,
        *,
        started: float,
        publish: Callable[[m.RoleEvent], None],
        notifier: SystemdNotifier,
        launch: Launch = popen,
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
                launch,
            )
            for spec in specs
        ]
        self.by_name = {c.name: c for c in self.children}
        self._intensity = {
            c.name: RestartIntensity(settings.max_restarts, settings.restart_period) for c in self.children
        }
        self._publish = publish
        self._notify = notifier
        self._started = started
        self._all_ready_once = False
        self.stopping = False
        self.exit_code = exitcodes.OK

    # --- the loop's steps -------------------------------------------------------

    def start(self, now: float) -> None:
        """Spawn the first child; the others follow, each once the one before is Ready."""
        self._spawn_next_in_order(now)

    def heard(self, name: str, msg: m.ChildMessage, now: float) -> None:
        """Take one message from child ``name``; any message from it proves it alive."""
        c = self.by_name.get(name)
        if c is None or c.pid != getattr(msg, "pid", None):
            return  # a stranger, or a message from a previous incarnation
        c.last_seen = now
        match msg:
            case m.Ready():
                if c.state == State.STARTING:
                    c.state = State.READY
                    c.ready_at = now
                    log.info("%s pid=%d ready in %.2f s", c.name, c.pid, now - c.started_at)
                    self._event(c, "ready")
                    self._on_child_ready(now)
            case m.Goodbye(reason=reason):
                c.goodbye = reason
            case _:
                pass

    def tick(self, now: float) -> None:
        """Reap exits, kill the silent and the stuck, respawn what has backed off long enough."""
        self._reap(now)
        self._check_liveness(now)
        for c in self.children:
            if c.state == State.BACKOFF and now >= c.respawn_at and not self.stopping:
                self.spawn(c, now)

    def spawn(self, c: Child, now: float) -> None:
        """Start ``c``; a process that cannot even start counts as a failed run."""
        try:
            c.spawn(now)
        except OSError as exc:
            c.last_exit = f"could not start: {exc}"
            log.error("%s could not start: %s", c.name, exc)
            self._schedule_restart(c, now, 0.0)
            return
        self._event(c, "spawned")

    def stop(self, code: int) -> None:
        """Start stopping the tree; the first reason given sets the exit code."""
        if not self.stopping:
            self.stopping = True
            self.exit_code = code
            self._notify.send("STOPPING=1", "STATUS=stopping")

    def respawn_times(self) -> list[float]:
        """When each backed-off child is due to be respawned (the loop wakes for them)."""
        return [c.respawn_at for c in self.children if c.state == State.BACKOFF]

    # --- what the loop reads ----------------------------------------------------

    def all_ready(self) -> bool:
        """Whether every child is Ready."""
        return all(c.state == State.READY for c in self.children)

    def all_fresh(self, now: float) -> bool:
        """Whether every child has been heard from within the liveness window."""
        return all(now - c.last_seen <= self.settings.silence for c in self.children)

    def status(self, now: float) -> m.StatusReply:
        """The supervisor's status, as ``ctl status`` shows it."""
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
        state = "stopping" if self.stopping else ("running" if self.all_ready() else "starting")
        return m.StatusReply(
            pid=os.getpid(), state=state, uptime_s=round(now - self._started, 3), roles=roles
        )

    # --- shutdown ---------------------------------------------------------------

    def stop_all(
        self, clock: Callable[[], float], sleep: Callable[[float], None], beat: Callable[[float], None]
    ) -> None:
        """Stop children in reverse start order: TERM, wait ``stop_grace``, KILL.

        ``beat`` runs between polls with the time, so that the roles still running keep
        hearing the supervisor while an earlier one takes its time to stop.
        """
        for c in reversed(self.children):
            proc = c.proc
            if proc is None or proc.returncode is not None:
                continue
            c.signal(signal.SIGTERM)
            deadline = clock() + self.settings.stop_grace
            while proc.poll() is None and clock() < deadline:
                beat(clock())
                sleep(0.02)
            if proc.poll() is None:
                log.warning(
                    "%s pid=%d ignored SIGTERM for %.0f s: killing", c.name, c.pid, self.settings.stop_grace
                )
                c.signal(signal.SIGKILL)
                proc.wait()
            log.info("%s pid=%d stopped (%s)", c.name, c.pid, c.exit_reason(proc.returncode or 0))
            c.state = State.STOPPED

    # --- rules ------------------------------------------------------------------

    def _on_child_ready(self, now: float) -> None:
        if not self._all_ready_once:
            if self.all_ready():
                self._all_ready_once = True
                log.info("all %d roles ready", len(self.children))
                self._notify.send("READY=1", "STATUS=all roles ready")
            else:
                self._spawn_next_in_order(now)

    def _spawn_next_in_order(self, now: float) -> None:
        for c in self.children:
            if c.state == State.STOPPED:
                self.spawn(c, now)
                return
            if c.state != State.READY:
                return  # wait for this one before starting the next

    def _reap(self, now: float) -> None:
        for c in self.children:
            if c.state not in _RUNNING:
                continue
            code = c.poll_exit()
            if code is None:
                continue
            reason = c.exit_reason(code)
            ran_for = now - c.started_at
            c.last_exit = reason
            log.warning("%s pid=%d %s after %.1f s", c.name, c.pid, reason, ran_for)
            self._event(c, "exited", reason)
            if self.stopping:
                c.state = State.STOPPED
            elif code == exitcodes.CONFIG:
                c.state = State.FAILED
                log.error("%s reports a configuration error: stopping the tree", c.name)
                self.stop(exitcodes.CONFIG)
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
            self.stop(exitcodes.FAILURE)
            return
        delay = c.backoff.next_delay(ran_for)
        c.state = State.BACKOFF
        c.respawn_at = now + delay
        c.restarts += 1
        log.info("%s restarts in %.2f s (restart #%d)", c.name, delay, c.restarts)

    def _check_liveness(self, now: float) -> None:
        for c in self.children:
            if c.kill_reason:
                continue
            if c.state == State.READY and now - c.last_seen > self.settings.silence:
                log.error("%s pid=%d missed heartbeats for %.1f s: killing", c.name, c.pid, now - c.last_seen)
                c.kill("missed heartbeats")
            elif c.state == State.STARTING and now - c.started_at > self.settings.start_timeout:
                log.error(
                    "%s pid=%d not ready after %.0f s: killing", c.name, c.pid, self.settings.start_timeout
                )
                c.kill("start timeout")
            elif c.state == State.STOPPING and now > c.stop_deadline:
                c.kill("did not stop within the grace period")

    def _event(self, c: Child, state: str, detail: str = "") -> None:
        self._publish(m.RoleEvent(role=c.name, state=state, pid=c.pid, detail=detail))
