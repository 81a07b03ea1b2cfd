"""Encoders and decoders for each channel, built once at import.

``decode_*`` raise ``ProtocolError`` for bytes that are not a message of that channel or
that carry another protocol version, so a receiver can log and drop them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any, Generic, TypeVar

import msgspec
import zmq

from ipc import messages as m

T = TypeVar("T")

log = logging.getLogger(__name__)


class ProtocolError(Exception):
    """Bytes on a socket that are not a valid message for that channel."""


class Codec(Generic[T]):
    """msgpack encoder/decoder pair for one channel's union type."""

    def __init__(self, union: Any) -> None:
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder: msgspec.msgpack.Decoder[Any] = msgspec.msgpack.Decoder(union)

    def encode(self, msg: m.Message) -> bytes:
        """Serialize one message."""
        return self._encoder.encode(msg)

    def decode(self, data: bytes) -> T:
        """Parse one message; raise ``ProtocolError`` when it is not valid here."""
        try:
            msg = self._decoder.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise ProtocolError(f"undecodable message: {exc}") from exc
        if msg.v != m.PROTOCOL_VERSION:
            raise ProtocolError(f"protocol version {msg.v} received, this peer speaks {m.PROTOCOL_VERSION}")
        return msg  # type: ignore[no-any-return]


def drain(sock: zmq.Socket[bytes], channel: Codec[T], limit: int | None = None) -> Iterator[T]:
    """Decode what waits on a single-frame socket (SUB, PULL) without blocking.

    Stops when nothing is left or after ``limit`` messages (so a flood cannot starve
    the caller's loop); a message that is not valid on ``channel`` is logged and dropped.
    """
    count = 0
    while limit is None or count < limit:
        try:
            data = sock.recv(zmq.NOBLOCK)
        except zmq.Again:
            return
        count += 1
        try:
            yield channel.decode(data)
        except ProtocolError as exc:
            log.warning("dropped a message: %s", exc)


children: Codec[m.ChildMessage] = Codec(m.ChildMessage)
control: Codec[m.ControlMessage] = Codec(m.ControlMessage)
events: Codec[m.EventMessage] = Codec(m.EventMessage)
service: Codec[m.ServiceMessage] = Codec(m.ServiceMessage)
publish: Codec[m.PublishMessage] = Codec(m.PublishMessage)
job: Codec[m.JobMessage] = Codec(m.JobMessage)
