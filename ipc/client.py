"""Request client with a timeout and retries (the Lazy Pirate pattern over DEALER).

Each request carries a request id frame; replies with another id are stale answers to an
earlier, timed-out attempt and are dropped. After a timeout the socket is closed and
reopened, so a lost peer never wedges the client. A client is owned by one thread.
"""

from __future__ import annotations

import itertools
import os
import time
from typing import Generic, TypeVar

import zmq

from ipc import messages as m
from ipc.codec import Codec
from ipc.sockets import make_socket

R = TypeVar("R", bound=m.Message)


class RequestTimeout(Exception):
    """No reply from ``endpoint`` within the timeout, after every retry."""

    def __init__(self, endpoint: str, timeout_s: float, attempts: int) -> None:
        super().__init__(f"no reply from {endpoint} within {timeout_s:g} s ({attempts} attempt(s))")
        self.endpoint = endpoint
        self.timeout_s = timeout_s
        self.attempts = attempts


class RequestClient(Generic[R]):
    """Synchronous request/reply client for one endpoint; ``codec`` decodes its replies ``R``."""

    _ids = itertools.count(1)

    def __init__(
        self,
        ctx: zmq.Context[zmq.Socket[bytes]],
        endpoint: str,
        codec: Codec[R],
        *,
        timeout_s: float = 5.0,
        retries: int = 0,
    ) -> None:
        self.endpoint = endpoint
        self._ctx = ctx
        self._codec = codec
        self.timeout_s = timeout_s
        self.retries = retries
        self._sock: zmq.Socket[bytes] | None = None

    def request(self, msg: m.Message, *, timeout_s: float | None = None, retries: int | None = None) -> R:
        """Send ``msg`` and return the decoded reply; raise ``RequestTimeout``.

        Only idempotent requests should be retried: a retry after a lost reply sends
        the request a second time.
        """
        timeout = self.timeout_s if timeout_s is None else timeout_s
        attempts = 1 + (self.retries if retries is None else retries)
        payload = self._codec.encode(msg)
        for _ in range(attempts):
            rid = f"{os.getpid()}-{next(self._ids)}".encode()
            sock = self._socket()
            sock.send_multipart([rid, payload])
            reply = self._await(sock, rid, timeout)
            if reply is not None:
                return self._codec.decode(reply)
            self._reset()
        raise RequestTimeout(self.endpoint, timeout, attempts)

    def close(self) -> None:
        """Close the socket (idempotent)."""
        self._reset()

    def _socket(self) -> zmq.Socket[bytes]:
        if self._sock is None:
            self._sock = make_socket(self._ctx, zmq.DEALER, connect=self.endpoint)
        return self._sock

    def _reset(self) -> None:
        if self._sock is not None:
            self._sock.close(0)
            self._sock = None

    def _await(self, sock: zmq.Socket[bytes], rid: bytes, timeout: float) -> bytes | None:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not sock.poll(int(left * 1000) + 1, zmq.POLLIN):
                return None
            frames = sock.recv_multipart()
            if len(frames) == 2 and frames[0] == rid:
                return frames[1]
            # A stale reply to an earlier attempt: drop it and keep waiting.


def reply(sock: zmq.Socket[bytes], frames: list[bytes], payload: bytes) -> None:
    """Answer a request received on a ROUTER as ``[identity, rid, request]``."""
    sock.send_multipart([frames[0], frames[1], payload])
