"""The client agents use to send metrics straight to the ingest endpoint over zmq.

Example::

    from nordiqd.agent import IngestClient
    with IngestClient("tcp://nordiqd.example:5555") as client:
        ack = client.send([{"timestamp": 1764100000, "server_name": "web-001", "cpu_user_pct": 12.5}])

A batch is acknowledged only once it is in the daemon's write-ahead log. Sending is
retried on timeout; that is safe because the daemon stores a (server, timestamp) once.
When the daemon pushes back (its backlog is over ``[buffer] max_backlog_records``) the
ack comes later; a batch it refuses as busy is sent again after the wait it names, for
up to ``busy_wait_s``, so to the caller push-back is only a slower ``send``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec
import zmq

from ipc import codec
from ipc import messages as m
from ipc.client import RequestClient


class IngestRejected(Exception):
    """The daemon refused the batch; ``problems`` lists each (index, field, message).

    ``kind`` is the daemon's ``ErrorReply`` kind: ``invalid_batch`` or ``batch_too_large``
    (fix the batch), ``disk_full`` or ``busy`` (nothing was stored; the same batch may be
    sent again later).
    """

    def __init__(self, message: str, details: Any, kind: str = "invalid_batch") -> None:
        super().__init__(message)
        self.kind = kind
        self.details = details or {}
        self.problems: list[dict[str, Any]] = list(self.details.get("problems", []))


class IngestBusy(IngestRejected):
    """The daemon stayed busy for ``busy_wait_s``: nothing of the batch was stored."""


class IngestClient:
    """Sends batches of records to ``endpoint`` and waits for each acknowledgement."""

    def __init__(
        self, endpoint: str, *, timeout_s: float = 10.0, retries: int = 3, busy_wait_s: float = 120.0
    ) -> None:
        self.busy_wait_s = busy_wait_s
        self.busy_replies = 0  # batches the daemon refused as busy, each sent again
        self._ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self._client = RequestClient(
            self._ctx, endpoint, codec.service_replies, timeout_s=timeout_s, retries=retries
        )
        self._encoder = msgspec.msgpack.Encoder()

    def send(self, records: Sequence[Mapping[str, Any]]) -> m.IngestAck:
        """Send one batch; return the ack or raise ``IngestRejected`` / ``RequestTimeout``."""
        body = self._encoder.encode({"records": records})
        return self.send_encoded(body)

    def send_encoded(self, body: bytes) -> m.IngestAck:
        """Send an already msgpack-encoded ``{"records": [...]}`` body."""
        request = m.IngestBatch(format="msgpack", body=body)
        deadline = time.monotonic() + self.busy_wait_s
        reply = self._client.request(request)
        while isinstance(reply, m.ErrorReply) and reply.kind == "busy":
            wait = float((reply.details or {}).get("retry_after_s", 1))  # type: ignore[arg-type]
            if time.monotonic() + wait > deadline:
                raise IngestBusy(reply.message, reply.details, reply.kind)
            self.busy_replies += 1
            time.sleep(wait)
            reply = self._client.request(request)
        if isinstance(reply, m.ErrorReply):
            raise IngestRejected(reply.message, reply.details, reply.kind)
        if not isinstance(reply, m.IngestAck):
            raise IngestRejected(f"unexpected reply {type(reply).__name__}", None, "protocol")
        return reply

    def close(self) -> None:
        """Close the socket and its context."""
        self._client.close()
        self._ctx.term()

    def __enter__(self) -> IngestClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
