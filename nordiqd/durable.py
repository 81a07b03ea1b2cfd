"""Durable file writes: the one place that fsyncs files and folders and renames into place.

Every file the daemon must find whole after a crash or a power loss is written the same
way: under a temporary name in the destination folder, fsynced, renamed over the final
name with ``os.replace`` (atomic on POSIX), and the folder fsynced so that the rename
itself survives.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path


def fsync_dir(directory: Path | str) -> None:
    """Make renames, creations and unlinks inside ``directory`` survive power loss."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path | str) -> None:
    """Flush a file that was written and closed elsewhere to stable storage."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_synced(path: Path | str, data: bytes) -> None:
    """Write ``data`` to ``path`` and fsync it (no rename: for files inside a staging folder)."""
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def publish(tmp: Path | str, path: Path | str) -> None:
    """Fsync the finished temp file ``tmp``, rename it over ``path`` and fsync the folder."""
    fsync_file(tmp)
    os.replace(tmp, path)
    fsync_dir(Path(path).parent)


def write_atomic(path: Path | str, data: bytes) -> None:
    """Replace ``path`` with ``data`` so a reader sees the old or the new file, never a part.

    The temp name is hidden and unique, so concurrent writers never share one; a failed
    write leaves the old file as it was and no temp file behind.
    """
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.tmp")
    try:
        write_synced(tmp, data)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(dest.parent)


def append_synced(path: Path | str, data: bytes) -> None:
    """Append ``data`` to ``path`` in one write and fsync it (and the folder, when it is new).

    For append-only logs: what was there is never rewritten, so a crash can at worst cut
    the last line short, which the reader skips.
    """
    new = not os.path.exists(path)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    if new:
        fsync_dir(Path(path).parent)
