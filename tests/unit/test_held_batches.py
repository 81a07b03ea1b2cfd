"""HeldBatches: first in first out, a byte cap that always admits one, expiry after wait_s."""

from __future__ import annotations

from nordiqd.roles.held import HeldBatches


def test_fifo_bytes_and_expiry() -> None:
    held = HeldBatches(wait_s=2.0, max_bytes=10)
    assert held.room_for(b"x" * 50), "one batch may always wait, however big"
    held.hold([b"id-a", b"rid-1", b"payload"], "json", b"x" * 6, now=100.0)
    assert not held.room_for(b"y" * 5) and held.room_for(b"y" * 4)
    held.hold([b"id-b", b"rid-2"], "msgpack", b"y" * 4, now=101.5)
    assert (len(held), held.bytes, held.total) == (2, 10, 2)
    assert held.expired(101.9) == []
    (first,) = held.expired(102.0)
    assert (first.frames, first.fmt, first.since) == ([b"id-a", b"rid-1"], "json", 100.0)
    assert (len(held), held.bytes, held.refused) == (1, 4, 1)
    assert held.pop().frames == [b"id-b", b"rid-2"] and held.bytes == 0 and not held
    assert held.retry_after_s() == 2 and HeldBatches(0.2).retry_after_s() == 1
