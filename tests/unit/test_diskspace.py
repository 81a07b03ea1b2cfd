"""Free space of the data directory: measured, a full disk recognised, low space warned about."""

from __future__ import annotations

import errno
import logging
from pathlib import Path

import pytest

from nordiqd.diskspace import DiskWatch, disk_lines, full_message, is_disk_full, measure


def test_measure_reads_the_filesystem_of_the_path(tmp_path: Path) -> None:
    space = measure(tmp_path, warn_below_bytes=1)
    assert space.path == str(tmp_path) and 0 < space.free_bytes <= space.total_bytes
    assert space.low is False
    assert measure(tmp_path, warn_below_bytes=space.total_bytes + 1).low is True


class SafetensorError(Exception):
    """What safetensors raises: not an OSError, the errno only in its text."""


@pytest.mark.parametrize(
    ("exc", "full"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), True),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), True),
        (
            SafetensorError(
                'IoError(Os { code: 28, kind: StorageFull, message: "No space left on device" })'
            ),
            True,
        ),
        (OSError(errno.EIO, "Input/output error"), False),
        (ValueError("bad value"), False),
    ],
)
def test_a_full_disk_is_recognised_by_errno_or_by_its_words(exc: Exception, full: bool) -> None:
    assert is_disk_full(exc) is full


def test_a_full_disk_is_recognised_behind_the_error_it_caused() -> None:
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as inner:
            raise RuntimeError("saving the model failed") from inner
    except RuntimeError as outer:
        assert is_disk_full(outer)


def test_the_message_names_the_path_and_what_is_left(tmp_path: Path) -> None:
    text = full_message(tmp_path, "the write-ahead log")
    assert text.startswith(
        f"the disk is full: no space left on device for the write-ahead log in {tmp_path} ("
    )
    assert "free)" in text
    assert "free space unknown" in full_message(tmp_path / "gone", "x")


def test_metrics_lines_name_the_path(tmp_path: Path) -> None:
    text = disk_lines(tmp_path, warn_below_bytes=1)
    assert f'nordiqd_disk_free_bytes{{path="{tmp_path}"}} ' in text
    assert f'nordiqd_disk_low{{path="{tmp_path}"}} 0' in text
    assert disk_lines(tmp_path / "gone", 1) == ""


def test_low_space_is_warned_once_then_again_after_a_while_and_its_end_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    now = [0.0]
    huge = measure(tmp_path, 0).total_bytes + 1
    watch = DiskWatch(tmp_path, huge, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="nordiqd.diskspace"):
        for t in (0.0, 10.0, 599.0, 600.0):
            now[0] = t
            assert watch.check() is not None and watch.last is not None and watch.last.low
        watch.warn_below_bytes = 0
        watch.check()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2 and "low disk space" in warnings[0].getMessage()
    assert "[daemon] disk_free_warn_mb" in warnings[0].getMessage()
    assert caplog.records[-1].levelno == logging.INFO and "disk space back" in caplog.records[-1].getMessage()
