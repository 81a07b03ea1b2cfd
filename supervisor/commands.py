"""The control-command queue: ``status``, ``restart ROLE`` and ``stop``, in arrival order.

How it runs: the arbiter's loop hands the control ROUTER (which it owns) to ``drain``
whenever requests wait on it, and calls ``serve(now)`` once per pass. Commands are
answered one at a time, in the order they arrived; a ``restart`` stays at the head of
the queue until its role is Ready again (or has failed, or ran out of time), so it
delays, never refuses, the commands behind it. How it stops: a ``stop`` is answered
before the tree stops, and ``refuse_all`` answers whatever is still queued then.
"""

from __future__ import annotations

import logging
import signal
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import zmq

from ipc import codec
from ipc import messages as m
from ipc.codec import ProtocolError
from supervisor import exitcodes
from supervisor.child import Child, State
from supervisor.tree import Tree

log = logging.getLogger("supervisor")

Answer = Callable[[list[bytes], m.Message], None]
"""Send one reply to the request that arrived as ``frames`` (``[identity, rid, body]``)."""


@dataclass
class _Command:
    """One queued request; a ``restart`` in progress also says whom it waits for."""

    frames: list[bytes]
    msg: m.ControlMessage
    waiting_for: str | None = None
    since: float = 0.0
    deadline: float = 0.0


class CommandQueue:
    """Control requests waiting for their answer; see the module docstring."""

    def __init__(self, tree: Tree, answer: Answer) -> None:
        self._tree = tree
        self._answer = answer
        self._commands: deque[_Command] = deque()

    def drain(self, sock: zmq.Socket[bytes]) -> None:
        """Queue every request waiting on the control socket, without blocking."""
        while True:
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            self.receive(frames)

    def receive(self, frames: list[bytes]) -> None:
        """Queue one request; one that does not decode is answered at once."""
        if len(frames) != 3:
            return
        try:
            msg = codec.control.decode(frames[2])
        except ProtocolError as exc:
            self._answer(frames, m.ErrorReply(kind="protocol", message=str(exc)))
            return
        self._commands.append(_Command(frames, msg))

    def serve(self, now: float) -> None:
        """Answer queued commands in order until one has to wait (a restart) or stops the tree."""
        while self._commands:
            cmd = self._commands[0]
            if cmd.waiting_for is not None:
                if not self._finish_restart(cmd, self._tree.by_name[cmd.waiting_for], now):
                    return  # still waiting; the commands behind it stay queued
                self._commands.popleft()
                continue
            self._commands.popleft()
            match cmd.msg:
                case m.StatusRequest():
                    self._answer(cmd.frames, self._tree.status(now))
                case m.StopRequest():
                    self._answer(cmd.frames, m.Ack(message="stopping"))
                    log.info("stop requested over the control socket")
                    self._tree.stop(exitcodes.OK)
                    return
                case m.RestartRequest(role=role):
                    target = self._tree.by_name.get(role)
                    if target is None:
                        names = ", ".join(self._tree.by_name)
                        self._answer(
                            cmd.frames,
                            m.ErrorReply(
                                kind="unknown_role", message=f"no role named {role!r}; roles: {names}"
                            ),
                        )
                        continue
                    self._restart(target, now)
                    cmd.waiting_for = target.name
                    cmd.since = now
                    settings = self._tree.settings
                    cmd.deadline = now + settings.stop_grace + settings.start_timeout
                    self._commands.appendleft(cmd)
                    return
                case _:
                    self._answer(
                        cmd.frames,
                        m.ErrorReply(
                            kind="bad_request", message=f"not a control command: {type(cmd.msg).__name__}"
                        ),
                    )

    def refuse_all(self) -> None:
        """Answer every queued command with a "stopping" error and forget them."""
        for cmd in self._commands:
            self._answer(cmd.frames, m.ErrorReply(kind="stopping", message="the supervisor is stopping"))
        self._commands.clear()

    def _finish_restart(self, cmd: _Command, c: Child, now: float) -> bool:
        """Answer the restart of ``c`` once its outcome is known; False while it is not."""
        if c.state == State.READY and c.ready_at > cmd.since:
            self._answer(cmd.frames, m.Ack(message=f"{c.name} restarted (pid {c.pid})"))
        elif c.state == State.FAILED or now > cmd.deadline:
            self._answer(
                cmd.frames,
                m.ErrorReply(kind="restart_failed", message=f"{c.name} did not come back: {c.last_exit}"),
            )
        else:
            return False
        return True

    def _restart(self, c: Child, now: float) -> None:
        """TERM a running child (the tree respawns it at once); start a stopped one now."""
        log.info("restart of %s requested", c.name)
        if c.state in (State.STARTING, State.READY):
            c.state = State.STOPPING
            c.stop_deadline = now + self._tree.settings.stop_grace
            c.signal(signal.SIGTERM)
        elif c.state in (State.BACKOFF, State.STOPPED, State.FAILED):
            c.backoff.reset()
            self._tree.spawn(c, now)
