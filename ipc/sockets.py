"""The one socket factory: every nordiqd socket is made here, with ``linger=0``.

``linger=0`` means closing a socket never blocks the process on unsent messages, which
is what makes bounded shutdown possible.
"""

from __future__ import annotations

import os
from urllib.parse import urlparse

import zmq


def make_socket(
    ctx: zmq.Context[zmq.Socket[bytes]],
    kind: int,
    *,
    bind: str | None = None,
    connect: str | None = None,
    identity: bytes | None = None,
    hwm: int | None = None,
) -> zmq.Socket[bytes]:
    """Create a socket of ``kind`` with ``linger=0`` and bind or connect it.

    For ``ipc://`` binds, the parent folder is created and a stale socket file left by
    a killed process is removed first.
    """
    sock = ctx.socket(kind)
    sock.setsockopt(zmq.LINGER, 0)
    if identity is not None:
        sock.setsockopt(zmq.IDENTITY, identity)
    if hwm is not None:
        sock.setsockopt(zmq.SNDHWM, hwm)
        sock.setsockopt(zmq.RCVHWM, hwm)
    try:
        if bind is not None:
            _prepare_ipc_path(bind)
            sock.bind(bind)
        if connect is not None:
            sock.connect(connect)
    except zmq.ZMQError as exc:
        sock.close(0)
        where = bind or connect
        raise zmq.ZMQError(exc.errno, f"cannot {'bind' if bind else 'connect'} {where}: {exc}") from exc
    return sock


def ipc_path(endpoint: str) -> str | None:
    """The filesystem path of an ``ipc://`` endpoint, else ``None``."""
    if not endpoint.startswith("ipc://"):
        return None
    return endpoint[len("ipc://") :]


def _prepare_ipc_path(endpoint: str) -> None:
    path = ipc_path(endpoint)
    if path is None:
        urlparse(endpoint)
        return
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    if os.path.exists(path):
        # A killed process leaves its socket file behind; zmq would bind next to it.
        os.unlink(path)
