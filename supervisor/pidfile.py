"""Pid file: refuse to start twice, remove on exit."""

from __future__ import annotations

import os


class PidFileError(Exception):
    """Another live process holds the pid file."""


class PidFile:
    """``<run_dir>/nordiqd.pid``-style pid file, created exclusively."""

    def __init__(self, path: str) -> None:
        self.path = path

    def acquire(self) -> None:
        """Write our pid; raise ``PidFileError`` if a live process already owns the file."""
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        try:
            with open(self.path) as fh:
                other = int(fh.read().strip() or 0)
        except (FileNotFoundError, ValueError):
            other = 0
        if other and other != os.getpid() and _alive(other):
            raise PidFileError(f"{self.path} says pid {other} is already running")
        tmp = f"{self.path}.{os.getpid()}"
        with open(tmp, "w") as fh:
            fh.write(f"{os.getpid()}\n")
        os.replace(tmp, self.path)

    def release(self) -> None:
        """Remove the file if it is still ours."""
        try:
            with open(self.path) as fh:
                if int(fh.read().strip() or 0) == os.getpid():
                    os.unlink(self.path)
        except (FileNotFoundError, ValueError):
            pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
