"""The child's end of supervision: Ready, heartbeats both ways, orphan detection.

How it runs: ``SupervisorLink.start()`` starts one daemon thread that owns the DEALER
socket to the supervisor. It sends a heartbeat every interval (so long work in the
role's main thread cannot starve it), sends Ready and Goodbye when the role asks, and
watches the supervisor's heartbeats. How it stops: ``close()`` sends Goodbye and joins
the thread; if the supervisor is silent for ``liveness`` intervals the thread calls
``on_orphaned`` (by default: SIGTERM to this process, then a hard exit after a grace).
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import threading
import time
from collections.abc import Callable

import zmq

from ipc import codec
from ipc import messages as m
from ipc.codec import ProtocolError
from ipc.sockets import make_socket
from supervisor import exitcodes

log = logging.getLogger("supervisor.link")

ORPHAN_EXIT_GRACE_S = 5.0


class SupervisorLink:
    """Keeps a child connected to its supervisor; see the module docstring."""

    def __init__(
        self,
        endpoint: str,
        role: str,
        *,
        interval: float = 1.0,
        liveness: int = 3,
        on_orphaned: Callable[[], None] | None = None,
        on_shutdown: Callable[[], None] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.role = role
        self.interval = interval
        self.liveness = liveness
        self._on_orphaned = on_orphaned or _default_orphaned
        self._on_shutdown = on_shutdown or (lambda: os.kill(os.getpid(), signal.SIGTERM))
        self._outbox: queue.Queue[m.Message] = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="supervisor-link", daemon=True)

    def start(self) -> None:
        """Connect and start heartbeating."""
        self._thread.start()

    def ready(self) -> None:
        """Tell the supervisor that the role serves."""
        self._outbox.put(m.Ready(role=self.role, pid=os.getpid()))

    def close(self, reason: str = "") -> None:
        """Say goodbye (with a reason) and stop the thread."""
        if self._thread.is_alive():
            self._outbox.put(m.Goodbye(role=self.role, pid=os.getpid(), reason=reason))
            self._stop.set()
            self._thread.join(timeout=2.0)

    def _run(self) -> None:
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        sock = make_socket(ctx, zmq.DEALER, connect=self.endpoint, identity=self.role.encode())
        pid = os.getpid()
        seq = 0
        last_heard = time.monotonic()
        next_beat = 0.0
        try:
            while True:
                while not self._outbox.empty():
                    sock.send(codec.children.encode(self._outbox.get_nowait()))
                if self._stop.is_set():
                    return
                now = time.monotonic()
                if now >= next_beat:
                    seq += 1
                    sock.send(codec.children.encode(m.Heartbeat(role=self.role, pid=pid, seq=seq)))
                    next_beat = now + self.interval
                if sock.poll(50, zmq.POLLIN):
                    try:
                        msg = codec.children.decode(sock.recv())
                    except ProtocolError as exc:
                        log.warning("dropped message from the supervisor: %s", exc)
                        continue
                    last_heard = time.monotonic()
                    if isinstance(msg, m.Shutdown):
                        log.info("shutdown requested by the supervisor: %s", msg.reason)
                        self._on_shutdown()
                elif time.monotonic() - last_heard > self.interval * self.liveness:
                    log.error("supervisor silent for %.1f s: exiting", time.monotonic() - last_heard)
                    self._on_orphaned()
                    return
        finally:
            sock.close(0)
            ctx.term()


def _default_orphaned() -> None:
    os.kill(os.getpid(), signal.SIGTERM)
    timer = threading.Timer(ORPHAN_EXIT_GRACE_S, lambda: os._exit(exitcodes.FAILURE))
    timer.daemon = True
    timer.start()
