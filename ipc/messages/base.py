"""The base of every message, and the replies and probes that every channel shares."""

from __future__ import annotations

import msgspec

PROTOCOL_VERSION = 1


class Message(msgspec.Struct, frozen=True, tag_field="t", kw_only=True):
    """Base of every message: carries the protocol version ``v``."""

    v: int = PROTOCOL_VERSION



class DiskSpace(msgspec.Struct, frozen=True, kw_only=True):
    """Free space of the filesystem that holds ``path`` (the data directory).

    ``low`` is True below ``warn_below_bytes`` (``[daemon] disk_free_warn_mb``): ingest
    refuses batches (507) once the disk is actually full, and warns before it.
    """

    path: str
    free_bytes: int
    total_bytes: int
    warn_below_bytes: int
    low: bool


class Ack(Message, frozen=True, tag="ack"):
    """Generic success reply with a human-readable message."""

    message: str = ""


class ErrorReply(Message, frozen=True, tag="error"):
    """Generic failure reply: ``kind`` is a short machine name, ``message`` one sentence.

    ``details`` carries structured data, a JSON-like map (e.g. the rejected records).
    """

    kind: str
    message: str
    details: dict[str, object] | None = None



class Ping(Message, frozen=True, tag="ping"):
    """Service: liveness probe of a role's request socket. Reply: ``Pong``."""


class Pong(Message, frozen=True, tag="pong"):
    """Reply to ``Ping``: the role's name and pid."""

    role: str
    pid: int


class MetricsRequest(Message, frozen=True, tag="metrics"):
    """Service -> any role: its Prometheus text lines. Reply: ``TextReply``."""


class TextReply(Message, frozen=True, tag="text"):
    """A text body (Prometheus exposition format)."""

    body: bytes



class JsonReply(Message, frozen=True, tag="json"):
    """A REST body, already encoded as JSON by the role that owns the data.

    ``encoding`` is "gzip" when ``body`` is compressed; ``etag`` names its version.
    """

    body: bytes
    etag: str = ""
    encoding: str = ""
