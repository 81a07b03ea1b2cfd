"""Whether there is enough data to train, and the seed manual's reason text."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nordiqd.buffer.reader import buffer_stats


@dataclass(frozen=True)
class Readiness:
    """The verdict, its reason, and the ``data_buffer`` block it was based on."""

    ready: bool
    reason: str
    data_buffer: dict[str, Any]


def check(buffer_dir: str, min_records: int) -> Readiness:
    """Ready when the buffer holds at least ``min_records`` records (footers only, no data read)."""
    stats = buffer_stats(buffer_dir)
    total = int(stats["total_records"])
    if total < min_records:
        return Readiness(False, f"Insufficient data: {total} < {min_records} records", stats)
    return Readiness(True, "Ready to train", stats)
