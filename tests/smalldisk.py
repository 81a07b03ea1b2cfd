"""A small real filesystem to fill: a tmpfs mounted for one test, unmounted at its end.

Mounting needs root (CI runs as root); elsewhere the tests that use it are skipped.
``fill`` takes every free byte with a filler file, ``leave`` gives back a few bytes
(less than a batch, so the next write is cut short half-way, the case that used to leave
a torn frame in the write-ahead log) and ``free`` deletes the filler.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CHUNK = 1 << 20


class SmallDisk:
    """A mounted tmpfs of ``size_mb`` at ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.filler = path / "filler"

    def free_bytes(self) -> int:
        st = os.statvfs(self.path)
        return st.f_bavail * st.f_frsize

    def fill(self) -> None:
        """Write the filler until the filesystem refuses another byte."""
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        chunk = b"\0" * CHUNK
        try:
            while True:
                try:
                    if os.write(fd, chunk) == 0:
                        break
                except OSError:
                    break
        finally:
            os.close(fd)
        assert self.free_bytes() == 0, self.free_bytes()

    def leave(self, nbytes: int) -> None:
        """Give back ``nbytes`` (rounded to pages) of the filler."""
        os.truncate(self.filler, max(0, self.filler.stat().st_size - nbytes))

    def free(self) -> None:
        """Delete the filler: the space is back."""
        self.filler.unlink(missing_ok=True)


@contextmanager
def small_disk(path: Path, size_mb: int) -> Iterator[SmallDisk]:
    """Mount a ``size_mb`` tmpfs at ``path`` (created) for the block; skip without root."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(path)], check=True)
    try:
        yield SmallDisk(path)
    finally:
        # Lazy: a process still holding a file there (a killed daemon's last child) must
        # not make the unmount fail; the memory goes once the last file is closed.
        subprocess.run(["umount", "-l", str(path)], check=False)
