"""sd_notify: the systemd notification protocol, one datagram per state change.

Does nothing when ``NOTIFY_SOCKET`` is unset, so the daemon runs the same outside systemd.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)


class SystemdNotifier:
    """Send ``READY=1``, ``WATCHDOG=1``, ``STOPPING=1``, ``STATUS=...`` to systemd."""

    def __init__(self, address: str | None = None) -> None:
        addr = address if address is not None else os.environ.get("NOTIFY_SOCKET", "")
        if addr.startswith("@"):
            addr = "\0" + addr[1:]  # abstract namespace socket
        self._addr = addr or None
        self._sock: socket.socket | None = None
        if self._addr:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @property
    def enabled(self) -> bool:
        """Whether a notify socket is configured."""
        return self._sock is not None

    def watchdog_interval(self) -> float | None:
        """A quarter of systemd's WatchdogSec (from ``WATCHDOG_USEC``), or None.

        WATCHDOG=1 is only sent while every role checks out, so a ping skipped during a
        role's restart must still leave time for the next ones before systemd gives up.
        """
        usec = os.environ.get("WATCHDOG_USEC")
        pid = os.environ.get("WATCHDOG_PID")
        if not usec or (pid and pid != str(os.getpid())):
            return None
        return int(usec) / 1e6 / 4

    def send(self, *states: str) -> None:
        """Send one datagram with the given ``KEY=VALUE`` lines; errors are logged only."""
        if self._sock is None or self._addr is None:
            return
        try:
            self._sock.sendto("\n".join(states).encode(), self._addr)
        except OSError as exc:
            log.warning("sd_notify to %r failed: %s", self._addr, exc)

    def close(self) -> None:
        """Close the datagram socket."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
