"""HeldBatches: ingest requests that wait, unanswered, while the backlog is over its bound.

Push-back on senders, not growth. A batch that arrives while more than ``[buffer]
max_backlog_records`` acknowledged records wait for compaction (they live in ingest's
memory until they are in Parquet) is not read into the buffer yet: its request frames
and body wait here, first in first out, and the sender simply hears its ack later. A zmq
agent waits on its ack, so it slows down; the api's thread waits the same way, so REST
senders slow down too. Only a batch that waited ``backlog_wait_s``, or one that finds
``MAX_HELD_BYTES`` of bodies already waiting, is refused as busy (REST: 503 with
Retry-After). Nothing here has been acknowledged, so nothing acknowledged is dropped.

Memory: the waiting bodies, at most ``MAX_HELD_BYTES``; the backlog itself stays within
its bound plus one batch.

No thread, no socket: the ingest role decides when to admit and replies itself.
"""

from __future__ import annotations

from collections import deque
from typing import NamedTuple

__all__ = ["MAX_HELD_BYTES", "HeldBatch", "HeldBatches"]

# Bodies of waiting batches: a few dozen typical batches, or a few of the largest a
# REST body may be (16 MiB), without letting many senders grow ingest instead.
MAX_HELD_BYTES = 32 << 20


class HeldBatch(NamedTuple):
    """One waiting ``IngestBatch``: its ROUTER frames (identity, request id) and body."""

    frames: list[bytes]
    fmt: str
    body: bytes
    since: float  # monotonic seconds when it arrived


class HeldBatches:
    """A FIFO of waiting batches with the byte total of their bodies."""

    def __init__(self, wait_s: float, max_bytes: int = MAX_HELD_BYTES) -> None:
        """Args:
        wait_s: How long a batch may wait before ``expired`` hands it back.
        max_bytes: Bodies held at most; ``room_for`` says no beyond it.
        """
        self.wait_s = wait_s
        self._max_bytes = max_bytes
        self._queue: deque[HeldBatch] = deque()
        self.bytes = 0
        self.total = 0  # batches ever held, for /metrics
        self.refused = 0  # batches answered busy, for /metrics

    def __len__(self) -> int:
        return len(self._queue)

    def room_for(self, body: bytes) -> bool:
        """True when ``body`` may wait (one batch always may, however big)."""
        return not self._queue or self.bytes + len(body) <= self._max_bytes

    def hold(self, frames: list[bytes], fmt: str, body: bytes, now: float) -> None:
        """Keeps a batch, behind every batch already waiting."""
        self._queue.append(HeldBatch(frames[:2], fmt, body, now))
        self.bytes += len(body)
        self.total += 1

    def pop(self) -> HeldBatch:
        """Takes the batch that waited longest (to be ingested now)."""
        held = self._queue.popleft()
        self.bytes -= len(held.body)
        return held

    def expired(self, now: float) -> list[HeldBatch]:
        """Takes every batch that has waited ``wait_s`` or longer (to be refused as busy)."""
        out = []
        while self._queue and now - self._queue[0].since >= self.wait_s:
            out.append(self.pop())
        self.refused += len(out)
        return out

    def retry_after_s(self) -> int:
        """Whole seconds a refused sender should wait before it sends again."""
        return max(1, round(self.wait_s))
