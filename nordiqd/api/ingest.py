"""Resources of the ingest role: POST /feed/data."""

from __future__ import annotations

import falcon

from ipc import messages as m
from nordiqd.api.backends import Backends
from nordiqd.api.bodies import IngestAccepted
from nordiqd.api.errors import ApiError, expected

REJECTION_STATUS = {"invalid_batch": 400, "batch_too_large": 413, "disk_full": 507}


class Feed:
    """POST /feed/data: ``{"records": [...]}``, validated as a whole, acked once durable."""

    def __init__(self, backends: Backends, max_body_bytes: int) -> None:
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
        reply = self._backends.service("ingest", m.IngestBatch(format="json", body=body))
        # A rejection: 400/413 with every problem; a full disk: 507 naming the path.
        ack = expected(reply, m.IngestAck, REJECTION_STATUS)
        resp.media = IngestAccepted(accepted=ack.accepted)
