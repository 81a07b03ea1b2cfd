"""The role lifecycle: a pure constructor, ``init()`` in the child, ``handle()``, ``close()``.

A role that serves requests binds a ROUTER on its service endpoint; ``ServiceRole`` reads
``[identity, rid, request]`` frames, decodes them with its request union's codec, calls
``handle(msg)`` and sends the reply. A message of another role is answered ``bad_request``;
an unexpected exception becomes an ``ErrorReply`` with the traceback in the log.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Generic, TypeVar

import zmq

from ipc import codec
from ipc import messages as m
from ipc.client import reply
from ipc.codec import Codec, ProtocolError, UnexpectedMessage
from ipc.sockets import make_socket
from nordiqd.config import Config, applying

log = logging.getLogger(__name__)

R = TypeVar("R", bound=m.Message)


class Role:
    """Base of every role. Subclasses override the lifecycle hooks they need."""

    name: str = ""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.ctx: zmq.Context[zmq.Socket[bytes]] | None = None

    def init(self, ctx: zmq.Context[zmq.Socket[bytes]]) -> None:
        """Open sockets and load state; runs in the child before Ready is sent."""
        self.ctx = ctx

    def sockets(self) -> list[zmq.Socket[bytes]]:
        """Sockets the runner polls and hands to ``on_readable``."""
        return []

    def on_readable(self, sock: zmq.Socket[bytes]) -> None:
        """Serve what arrived on ``sock``."""

    def tick(self, now: float) -> None:
        """Periodic work, called at least every poll interval."""

    def close(self) -> None:
        """Release sockets and files; runs once on the way out."""


class ServiceRole(Role, Generic[R]):
    """A role answering requests of its union ``R`` on its own ROUTER (``[endpoints] <name>``).

    Subclasses set ``requests`` to the codec of ``R`` (``codec.ingest_requests``...).
    """

    requests: Codec[R]

    def init(self, ctx: zmq.Context[zmq.Socket[bytes]]) -> None:
        super().init(ctx)
        with applying(f"endpoints.{self.name}", catch=(zmq.ZMQError,)):
            self.service = make_socket(ctx, zmq.ROUTER, bind=self.config.endpoint(self.name))

    def sockets(self) -> list[zmq.Socket[bytes]]:
        return [self.service]

    def on_readable(self, sock: zmq.Socket[bytes]) -> None:
        if sock is not self.service:
            return
        for _ in range(64):  # bounded, so ticks are not starved by a flood
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            if len(frames) != 3:
                continue
            self.request_frames = frames
            answer = self._answer(frames[2])
            if answer is not None:
                reply(sock, frames, codec.service_replies.encode(answer))

    def reply_later(self, frames: list[bytes], msg: m.ServiceReply) -> None:
        """Answer a request whose ``handle`` returned None (deferred)."""
        reply(self.service, frames, codec.service_replies.encode(msg))

    def metrics_text(self) -> str:
        """This role's lines for GET /metrics (Prometheus text format)."""
        return ""

    def _answer(self, payload: bytes) -> m.ServiceReply | None:
        started = time.monotonic()
        try:
            msg = self.requests.decode(payload)
        except UnexpectedMessage as exc:
            return self.refuse(exc.name)
        except ProtocolError as exc:
            return m.ErrorReply(kind="protocol", message=str(exc))
        try:
            result = self.handle(msg)
        except Exception as exc:
            log.exception("%s failed on %s", self.name, type(msg).__name__)
            return m.ErrorReply(kind="internal", message=f"{self.name} failed: {exc}")
        elapsed = time.monotonic() - started
        if elapsed > 1.0:
            log.info("%s took %.2f s for %s", self.name, elapsed, type(msg).__name__)
        return result

    def handle(self, msg: R) -> m.ServiceReply | None:
        """Answer one request; subclasses extend the match with their own messages.

        Returning None defers the answer: keep ``self.request_frames`` and call
        ``reply_later`` when the result is ready.
        """
        match msg:
            case m.Ping():
                return m.Pong(role=self.name, pid=os.getpid())
            case m.MetricsRequest():
                return m.TextReply(body=self.metrics_text().encode())
            case _:
                return self.refuse(type(msg).__name__)

    def refuse(self, name: str) -> m.ErrorReply:
        """The answer to a request this role does not handle: ``bad_request`` naming it."""
        return m.ErrorReply(kind="bad_request", message=f"{self.name} does not handle {name}")
