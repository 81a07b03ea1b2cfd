"""Encoders and decoders for each channel, built once at import.

``decode`` raises ``ProtocolError`` for bytes that are not a message of that channel or
that carry another protocol version, so a receiver can log and drop them. A valid
message of another channel (a predictor request sent to ingest) raises the subclass
``UnexpectedMessage``, which names it, so the receiver can answer "does not handle X".
"""

from __future__ import annotations

import logging
import typing
from collections.abc import Iterator
from typing import Generic, TypeVar

import msgspec
import zmq

from ipc import messages as m

T = TypeVar("T", bound=m.Message, covariant=True)  # a Codec only produces T

log = logging.getLogger(__name__)


class ProtocolError(Exception):
    """Bytes on a socket that are not a valid message for that channel."""


class UnexpectedMessage(ProtocolError):
    """A valid message that belongs to another channel; ``name`` is its class name."""

    def __init__(self, name: str) -> None:
        super().__init__(f"{name} is not a message of this channel")
        self.name = name


class _Envelope(msgspec.Struct):
    """Just the tag of any message, read when a channel's union refused it."""

    t: str = ""


def _message_names() -> dict[str, str]:
    """The tag of every message class, mapped to its class name."""
    names: dict[str, str] = {}
    pending = [m.Message]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        tag = cls.__struct_config__.tag
        if isinstance(tag, str):
            names[tag] = cls.__name__
    return names


class Codec(Generic[T]):
    """msgpack encoder/decoder pair for one channel's union type ``T``."""

    def __init__(self, union: object) -> None:
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder: msgspec.msgpack.Decoder[T] = msgspec.msgpack.Decoder(union)
        members = typing.get_args(union) or (union,)
        self._tags = frozenset(c.__struct_config__.tag for c in members if issubclass(c, m.Message))

    def encode(self, msg: m.Message) -> bytes:
        """Serialize one message."""
        return self._encoder.encode(msg)

    def decode(self, data: bytes) -> T:
        """Parse one message; raise ``ProtocolError`` when it is not valid here."""
        try:
            msg = self._decoder.decode(data)
        except msgspec.ValidationError as exc:
            self._refuse_foreign(data)
            raise ProtocolError(f"undecodable message: {exc}") from exc
        except msgspec.DecodeError as exc:
            raise ProtocolError(f"undecodable message: {exc}") from exc
        if msg.v != m.PROTOCOL_VERSION:
            raise ProtocolError(f"protocol version {msg.v} received, this peer speaks {m.PROTOCOL_VERSION}")
        return msg

    def _refuse_foreign(self, data: bytes) -> None:
        try:
            tag = msgspec.msgpack.decode(data, type=_Envelope).t
        except (msgspec.DecodeError, msgspec.ValidationError):
            return
        name = _NAMES.get(tag)
        if name is not None and tag not in self._tags:
            raise UnexpectedMessage(name)


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


_NAMES = _message_names()

children: Codec[m.ChildMessage] = Codec(m.ChildMessage)
control: Codec[m.ControlMessage] = Codec(m.ControlMessage)
control_replies: Codec[m.ControlReply] = Codec(m.ControlReply)
events: Codec[m.EventMessage] = Codec(m.EventMessage)
publish: Codec[m.PublishMessage] = Codec(m.PublishMessage)
job: Codec[m.JobMessage] = Codec(m.JobMessage)
# The service channel: each role decodes its own request union, its clients the replies.
ingest_requests: Codec[m.IngestRequest] = Codec(m.IngestRequest)
predictor_requests: Codec[m.PredictorRequest] = Codec(m.PredictorRequest)
trainer_requests: Codec[m.TrainerRequest] = Codec(m.TrainerRequest)
service_replies: Codec[m.ServiceReply] = Codec(m.ServiceReply)
