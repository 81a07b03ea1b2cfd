"""Every message that crosses a nordiqd socket, one frozen tagged Struct each.

Each Struct's docstring is its protocol spec. Messages are grouped in one union per
channel; a decoder is built once per union. New fields always get defaults so that an
older peer can still decode a newer message (msgspec's schema-evolution rules), and
``PROTOCOL_VERSION`` is bumped only for changes that break that.

Channels:
    children:  child -> supervisor ``Ready``/``Heartbeat``/``Goodbye``;
               supervisor -> child ``Heartbeat``/``Shutdown``.
    control:   ``ctl``/api -> supervisor ``StatusRequest``/``RestartRequest``/``StopRequest``;
               replies ``StatusReply``/``Ack``/``ErrorReply``.
    events:    supervisor PUB ``RoleEvent``.
    service:   api -> roles ``Ping`` and the role requests added by each role; replies
               ``Pong``/``Ack``/``ErrorReply`` and the role replies.
"""

from __future__ import annotations

from typing import Any, Union

import msgspec

PROTOCOL_VERSION = 1


class Message(msgspec.Struct, frozen=True, tag_field="t", kw_only=True):
    """Base of every message: carries the protocol version ``v``."""

    v: int = PROTOCOL_VERSION


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


class Ack(Message, frozen=True, tag="ack"):
    """Generic success reply with a human-readable message."""

    message: str = ""


class ErrorReply(Message, frozen=True, tag="error"):
    """Generic failure reply: ``kind`` is a short machine name, ``message`` one sentence.

    ``details`` carries structured data (e.g. the list of rejected records).
    """

    kind: str
    message: str
    details: Any = None


ControlMessage = Union[StatusRequest, RestartRequest, StopRequest, StatusReply, Ack, ErrorReply]


# --- events channel --------------------------------------------------------------


class RoleEvent(Message, frozen=True, tag="role_event"):
    """Supervisor PUB: a role changed state (spawned, ready, exited, restarting, ...)."""

    role: str
    state: str
    pid: int | None = None
    detail: str = ""


EventMessage = Union[RoleEvent]


# --- service channel (api -> roles) ---------------------------------------------


class Ping(Message, frozen=True, tag="ping"):
    """Service: liveness probe of a role's request socket. Reply: ``Pong``."""


class Pong(Message, frozen=True, tag="pong"):
    """Reply to ``Ping``: the role's name and pid."""

    role: str
    pid: int


ServiceMessage = Union[Ping, Pong, Ack, ErrorReply]
