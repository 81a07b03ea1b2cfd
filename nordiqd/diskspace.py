"""Free space of the data directory: measured, recognised when it runs out, warned about.

Every process that reports free space (the api's ``/health``, ingest's ``/metrics``
lines, the trainer's ``/admin/training-stats``) measures it with ``measure``; every
place that can meet a full disk recognises it with ``is_disk_full`` and says so with
``full_message``, naming the path and what is left. ``DiskWatch`` logs a warning when
free space falls below ``[daemon] disk_free_warn_mb`` and again while it stays there.
"""

from __future__ import annotations

import errno
import logging
import os
import time
from collections.abc import Callable

from ipc.messages import DiskSpace
from nordiqd.promtext import family

log = logging.getLogger(__name__)

FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
# What libraries that do not raise OSError (safetensors, Arrow) put in their messages.
_FULL_TEXTS = ("No space left on device", "Disk quota exceeded", "StorageFull")
REPEAT_WARNING_S = 600.0  # while space stays low, the warning is logged again this often


def measure(path: str | os.PathLike[str], warn_below_bytes: int) -> DiskSpace:
    """Free space (for this unprivileged process) and size of the filesystem of ``path``."""
    st = os.statvfs(path)
    free = st.f_bavail * st.f_frsize
    return DiskSpace(
        path=os.fspath(path),
        free_bytes=free,
        total_bytes=st.f_blocks * st.f_frsize,
        warn_below_bytes=warn_below_bytes,
        low=free < warn_below_bytes,
    )


def disk_lines(path: str | os.PathLike[str], warn_below_bytes: int) -> str:
    """The ``/metrics`` lines of the filesystem of ``path`` (none if it cannot be measured)."""
    try:
        space = measure(path, warn_below_bytes)
    except OSError:
        return ""
    labels = {"path": space.path}
    return (
        family("nordiqd_disk_free_bytes", "gauge", "Free space of the data directory's filesystem.",
               [(labels, space.free_bytes)])
        + family("nordiqd_disk_size_bytes", "gauge", "Size of the data directory's filesystem.",
                 [(labels, space.total_bytes)])
        + family("nordiqd_disk_low", "gauge", "Whether free space is below [daemon] disk_free_warn_mb.",
                 [(labels, int(space.low))])
    )  # fmt: skip


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc``, or an exception it was raised from, says the disk is full."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in FULL_ERRNOS:
            return True
        if any(text in str(current) for text in _FULL_TEXTS):
            return True
        current = current.__cause__ or current.__context__
    return False


def full_message(path: str | os.PathLike[str], what: str) -> str:
    """One sentence: the disk is full, where, what could not be written and what is left."""
    try:
        left = f"{_size(measure(path, 0).free_bytes)} free"
    except OSError:
        left = "free space unknown"
    return f"the disk is full: no space left on device for {what} in {os.fspath(path)} ({left})"


def _size(nbytes: int) -> str:
    value = float(nbytes)
    for unit in ("bytes", "KB", "MB"):
        if value < 1024:
            return f"{nbytes} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


class DiskWatch:
    """Logs a warning when free space drops below the threshold, and when it comes back.

    Called from a loop that runs anyway (ingest's compaction thread); each ``check``
    measures once. While space stays low the warning is repeated every
    ``REPEAT_WARNING_S``, so a log reader does not miss it.
    """

    def __init__(
        self, path: str | os.PathLike[str], warn_below_bytes: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.path = path
        self.warn_below_bytes = warn_below_bytes
        self._clock = clock
        self._warned_at: float | None = None
        self.last: DiskSpace | None = None

    def check(self) -> DiskSpace | None:
        """Measure, log on a change (or a repeat due); the measurement, or None if it failed."""
        try:
            space = measure(self.path, self.warn_below_bytes)
        except OSError as exc:
            log.warning("cannot measure free space of %s: %s", self.path, exc)
            return None
        self.last = space
        now = self._clock()
        if space.low and (self._warned_at is None or now - self._warned_at >= REPEAT_WARNING_S):
            log.warning(
                "low disk space: %s free of %s in %s (warning below %s, [daemon] disk_free_warn_mb); "
                "once it is full, ingest refuses batches with 507 and training jobs fail",
                _size(space.free_bytes),
                _size(space.total_bytes),
                space.path,
                _size(space.warn_below_bytes),
            )
            self._warned_at = now
        elif not space.low and self._warned_at is not None:
            log.info("disk space back: %s free in %s", _size(space.free_bytes), space.path)
            self._warned_at = None
        return space
