"""The supervisor's channels: children (Ready, Heartbeat, Goodbye, Shutdown), control
(status, restart, stop) and the events PUB."""

from __future__ import annotations

from typing import Union

import msgspec

from ipc.messages.base import Ack, ErrorReply, Message

# --- children channel ------------------------------------------------------------


class Ready(Message, frozen=True, tag="ready"):
    """Child -> supervisor: the role finished ``init()`` and serves.

    Sent once after start; the supervisor starts the next role only after it.
    """

    role: str
    pid: int


class Heartbeat(Message, frozen=True, tag="hb"):
    """Either direction: the sender is alive. ``seq`` counts up per sender."""

    role: str = ""
    pid: int = 0
    seq: int = 0


class Goodbye(Message, frozen=True, tag="bye"):
    """Child -> supervisor: the role is exiting on its own, with a reason."""

    role: str
    pid: int
    reason: str = ""


class Shutdown(Message, frozen=True, tag="shutdown"):
    """Supervisor -> child: stop now, gracefully (same as SIGTERM)."""

    reason: str = ""


ChildMessage = Union[Ready, Heartbeat, Goodbye, Shutdown]


# --- control channel -------------------------------------------------------------


class StatusRequest(Message, frozen=True, tag="status"):
    """Control: ask for the state of every role. Reply: ``StatusReply``."""


class RestartRequest(Message, frozen=True, tag="restart"):
    """Control: restart one role. Reply ``Ack`` once it is Ready again, else ``ErrorReply``."""

    role: str


class StopRequest(Message, frozen=True, tag="stop"):
    """Control: stop the whole tree (same path as SIGTERM). Reply ``Ack`` before stopping."""


class RoleStatus(msgspec.Struct, frozen=True, kw_only=True):
    """State of one supervised role, as ``status`` reports it."""

    name: str
    state: str
    pid: int | None = None
    uptime_s: float | None = None
    restarts: int = 0
    last_exit: str | None = None


class StatusReply(Message, frozen=True, tag="status_reply"):
    """Reply to ``StatusRequest``: the supervisor's own pid and state, then each role."""

    pid: int
    state: str
    uptime_s: float
    roles: list[RoleStatus] = []


ControlRequest = Union[StatusRequest, RestartRequest, StopRequest]
ControlReply = Union[StatusReply, Ack, ErrorReply]
ControlMessage = Union[ControlRequest, ControlReply]


# --- events channel --------------------------------------------------------------


class RoleEvent(Message, frozen=True, tag="role_event"):
    """Supervisor PUB: a role changed state (spawned, ready, exited, restarting, ...)."""

    role: str
    state: str
    pid: int | None = None
    detail: str = ""


EventMessage = Union[RoleEvent]
