"""Resources of the ingest role: POST /feed/data."""

from __future__ import annotations

from typing import Any

import falcon

from ipc import messages as m
from nordiqd.api.errors import ApiError

REJECTION_STATUS = {"invalid_batch": 400, "batch_too_large": 413}


def ingest_reply(reply: Any) -> m.IngestAck:
    """The ack, or the ``ApiError`` a rejection maps to (400/413 with every problem)."""
    if isinstance(reply, m.ErrorReply):
        details = reply.details if isinstance(reply.details, dict) else {}
        extra = {k: v for k, v in details.items() if k not in ("success", "error")}
        raise ApiError(REJECTION_STATUS.get(reply.kind, 503), reply.message, **extra)
    if not isinstance(reply, m.IngestAck):
        raise ApiError(502, f"ingest answered {type(reply).__name__} to a batch")
    return reply


class Feed:
    """POST /feed/data: ``{"records": [...]}``, validated as a whole, acked once durable."""

    def __init__(self, backends: Any, max_body_bytes: int) -> None:
        self._backends = backends
        self._max = max_body_bytes

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        length = req.content_length
        if length is not None and length > self._max:
            raise ApiError(413, f"request body of {length} bytes is over the limit of {self._max} bytes")
        body = req.bounded_stream.read(self._max + 1)
        if len(body) > self._max:
            raise ApiError(413, f"request body is over the limit of {self._max} bytes")
        if not body:
            raise ApiError(400, 'empty body: send JSON {"records": [...]}')
        ack = ingest_reply(self._backends.service("ingest", m.IngestBatch(format="json", body=body)))
        resp.media = {"success": True, "accepted": ack.accepted}
