"""How the api role talks to the supervisor and the other roles: one client per thread.

zmq sockets belong to one thread, and waitress serves on several, so each thread gets
its own ``RequestClient`` per endpoint, created on first use.
"""

from __future__ import annotations

import threading
from typing import Any

import zmq

from ipc import codec
from ipc import messages as m
from ipc.client import RequestClient
from nordiqd.config import Config


class Backends:
    """Request/reply access to the control socket and each role's service socket."""

    def __init__(self, ctx: zmq.Context[zmq.Socket[bytes]], config: Config) -> None:
        self._ctx = ctx
        self._config = config
        self._local = threading.local()

    def control(self, msg: m.Message, timeout_s: float | None = None) -> Any:
        """Ask the supervisor (``status``...)."""
        return self._client("control", codec.control).request(msg, timeout_s=timeout_s)

    def service(self, role: str, msg: m.Message, timeout_s: float | None = None) -> Any:
        """Ask one role's service socket."""
        return self._client(role, codec.service).request(msg, timeout_s=timeout_s)

    def _client(self, name: str, channel: codec.Codec[Any]) -> RequestClient:
        clients: dict[str, RequestClient] = getattr(self._local, "clients", None) or {}
        self._local.clients = clients
        if name not in clients:
            clients[name] = RequestClient(
                self._ctx,
                self._config.endpoint(name),
                channel,
                timeout_s=self._config.api.request_timeout_s,
            )
        return clients[name]
