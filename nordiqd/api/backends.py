"""How the REST layer talks to the supervisor and the roles.

``Backends`` is what every resource calls; ``ZmqBackends`` is the real one, over the
daemon's sockets, and the unit tests pass fakes. zmq sockets belong to one thread, and
waitress serves on several, so ``ZmqBackends`` gives each thread its own
``RequestClient`` per endpoint, created on first use.
"""

from __future__ import annotations

import threading
from typing import Protocol, TypeVar

import zmq

from ipc import codec
from ipc import messages as m
from ipc.client import RequestClient
from nordiqd.config import Config

R = TypeVar("R", bound=m.Message)


class Backends(Protocol):
    """Request/reply access to the supervisor's control socket and each role's service socket.

    Both raise ``ipc.client.RequestTimeout`` when no reply comes in time (a 503 at the edge).
    """

    def control(self, msg: m.ControlRequest, timeout_s: float | None = None) -> m.ControlReply:
        """Ask the supervisor (``StatusRequest``...)."""
        ...

    def service(self, role: str, msg: m.ServiceRequest, timeout_s: float | None = None) -> m.ServiceReply:
        """Ask the service socket of ``role`` (one of ``nordiqd.roles.SERVICES``)."""
        ...


class ZmqBackends:
    """``Backends`` over the daemon's zmq sockets, one client per thread and endpoint."""

    def __init__(self, ctx: zmq.Context[zmq.Socket[bytes]], config: Config) -> None:
        self._ctx = ctx
        self._config = config
        self._local = threading.local()

    def control(self, msg: m.ControlRequest, timeout_s: float | None = None) -> m.ControlReply:
        """Ask the supervisor (``StatusRequest``...)."""
        client: RequestClient[m.ControlReply] | None = getattr(self._local, "control", None)
        if client is None:
            client = self._local.control = self._connect("control", codec.control_replies)
        return client.request(msg, timeout_s=timeout_s)

    def service(self, role: str, msg: m.ServiceRequest, timeout_s: float | None = None) -> m.ServiceReply:
        """Ask the service socket of ``role``."""
        clients: dict[str, RequestClient[m.ServiceReply]] | None = getattr(self._local, "services", None)
        if clients is None:
            clients = self._local.services = {}
        if role not in clients:
            clients[role] = self._connect(role, codec.service_replies)
        return clients[role].request(msg, timeout_s=timeout_s)

    def _connect(self, name: str, replies: codec.Codec[R]) -> RequestClient[R]:
        timeout_s = self._config.api.request_timeout_s
        return RequestClient(self._ctx, self._config.endpoint(name), replies, timeout_s=timeout_s)
