"""BufferStore: days, retention, dedup, compaction cost, crash recovery (fake clock)."""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nordiqd.buffer import compaction
from nordiqd.buffer.errors import BatchRejected
from nordiqd.buffer.records import RecordValidator
from nordiqd.buffer.store import BufferStore

DAY = 86_400.0
MIDNIGHT = 1_735_689_600.0  # 2025-01-01T00:00:00Z


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(MIDNIGHT + 3_600)


@pytest.fixture
def validator(clock: FakeClock) -> RecordValidator:
    return RecordValidator(clock=clock, max_future_seconds=10 * DAY)


@pytest.fixture
def store(tmp_path: Path, clock: FakeClock) -> Iterator[BufferStore]:
    s = BufferStore(tmp_path / "buffer", retention_days=3, clock=clock, fsync="always", flush_records=10**9)
    s.open()
    yield s
    s.close(flush=False)


def records(times: list[float], servers: int = 2, **metrics: float) -> list[dict[str, object]]:
    return [
        {"timestamp": t, "server_name": f"srv{s}", "cpu_user_pct": float(s), **metrics}
        for t in times
        for s in range(servers)
    ]


def file_rows(path: Path) -> list[tuple[str, int]]:
    table = pq.read_table(path, columns=["server_name", "timestamp"])
    return list(
        zip(
            table.column("server_name").to_pylist(),
            table.column("timestamp").cast(pa.int64()).to_pylist(),
            strict=True,
        )
    )


def total(store: BufferStore) -> int:
    return int(store.stats()["total_records"])


@pytest.mark.parametrize(
    "bad",
    [{"rogue": 1}, {"cpu_user_pct": "1"}, {"cpu_user_pct": float("nan")},
     {"timestamp": "2025-01-01T00:00:00"},
     {"server_name": "a b"}, {"timestamp": MIDNIGHT + 30 * DAY}],
)  # fmt: skip
def test_rejected_batch_leaves_the_record_count_unchanged(
    store: BufferStore, validator: RecordValidator, bad: dict[str, object]
) -> None:
    store.append(validator.from_records(records([MIDNIGHT + 10, MIDNIGHT + 20])))
    store.flush()
    store.append(validator.from_records(records([MIDNIGHT + 30])))
    before = total(store)
    batch = records([MIDNIGHT + 40, MIDNIGHT + 50])
    batch[3].update(bad)
    with pytest.raises(BatchRejected) as err:
        store.append(validator.from_records(batch))
    assert err.value.problems[0].index == 3 and err.value.problems[0].field in {*bad, "cpu_user_pct"}
    assert total(store) == before == 6


def test_records_around_midnight_land_in_their_utc_day(
    store: BufferStore, validator: RecordValidator, clock: FakeClock
) -> None:
    just_before, midnight = MIDNIGHT + DAY - 0.001, MIDNIGHT + DAY
    offset = dt.datetime.fromtimestamp(midnight, dt.timezone(dt.timedelta(hours=2))).isoformat()
    store.append(validator.from_records([
        {"timestamp": just_before, "server_name": "a"},
        {"timestamp": offset, "server_name": "b"},  # 02:00+02:00 is 00:00Z of Jan 2
    ]))  # fmt: skip
    clock.now = midnight + 3 * DAY / 2  # Jan 2 is over too (noon, Jan 3)
    store.maintain()
    root = store.layout.root
    assert file_rows(root / "metrics_2025-01-01.parquet") == [("a", int(just_before * 1000))]
    assert file_rows(root / "metrics_2025-01-02.parquet") == [("b", int(midnight * 1000))]


def test_a_day_stays_open_until_grace_after_midnight(
    store: BufferStore, validator: RecordValidator, clock: FakeClock
) -> None:
    store.append(validator.from_records(records([MIDNIGHT + 10])))
    clock.now = MIDNIGHT + DAY + 100  # within the 300 s grace
    store.maintain()
    store.flush()
    assert not (store.layout.root / "metrics_2025-01-01.parquet").exists()
    clock.now = MIDNIGHT + DAY + 301
    assert store.maintain()["closed"] == 1
    assert (store.layout.root / "metrics_2025-01-01.parquet").exists()
    assert store.layout.part_days() == []


def test_retention_deletes_whole_days_past_the_limit(
    store: BufferStore, validator: RecordValidator, clock: FakeClock
) -> None:
    for day in range(6):  # Jan 1 .. Jan 6
        store.append(validator.from_records(records([MIDNIGHT + day * DAY + 60])))
    clock.now = MIDNIGHT + 5 * DAY + 3_600  # Jan 6, 01:00
    store.maintain()
    store.flush()
    store.maintain()
    # retention 3: Jan 2 ended on Jan 3 00:00, more than 3 days ago; Jan 3 did not.
    assert store.stats()["date_range"] == {"start": "2025-01-03", "end": "2025-01-06"}
    names = sorted(p.name for p in store.layout.root.glob("metrics_*.parquet"))
    assert names == ["metrics_2025-01-03.parquet", "metrics_2025-01-04.parquet", "metrics_2025-01-05.parquet"]
    clock.now += DAY
    store.maintain()
    assert store.stats()["date_range"]["start"] == "2025-01-04"


def test_stats_match_what_was_written(
    store: BufferStore, validator: RecordValidator, clock: FakeClock
) -> None:
    assert store.stats() == {
        "total_records": 0, "file_count": 0, "date_range": {"start": None, "end": None}, "disk_usage_mb": 0.0,
    }  # fmt: skip
    store.append(validator.from_records(records([MIDNIGHT - 50, MIDNIGHT + 50], servers=3)))
    assert total(store) == 6  # pending only, counted
    store.flush()
    store.append(validator.from_records(records([MIDNIGHT + 100], servers=3)))
    stats = store.stats()
    assert stats["total_records"] == 9 and stats["file_count"] == 2
    assert stats["date_range"] == {"start": "2024-12-31", "end": "2025-01-01"}
    assert stats["disk_usage_mb"] > 0


def test_duplicates_are_stored_once(
    tmp_path: Path, store: BufferStore, validator: RecordValidator, clock: FakeClock
) -> None:
    first = validator.from_records(records([MIDNIGHT + 10, MIDNIGHT + 20], cpu_sys_pct=1.0))
    again = validator.from_records(records([MIDNIGHT + 20, MIDNIGHT + 30], cpu_sys_pct=2.0))
    store.append(first)
    store.append(again)  # duplicate within pending
    store.flush()
    store.append(first)  # duplicate of flushed parts (a retried batch)
    store.flush()
    assert total(store) == 6
    clock.now = MIDNIGHT + DAY + 600
    store.maintain()  # the day closes
    store.append(again)  # duplicate of a closed day
    store.flush()
    assert total(store) == 6
    table = pq.read_table(store.layout.root / "metrics_2025-01-01.parquet")
    assert table.num_rows == 6
    by_key = {(r["server_name"], r["timestamp"]): r["cpu_sys_pct"] for r in table.to_pylist()}
    assert by_key[("srv0", dt.datetime.fromtimestamp(MIDNIGHT + 20, dt.UTC))] == 1.0  # first wins


def test_late_records_for_a_closed_day_land_in_it(
    store: BufferStore, validator: RecordValidator, clock: FakeClock
) -> None:
    store.append(validator.from_records(records([MIDNIGHT + 10])))
    clock.now = MIDNIGHT + DAY + 600
    store.maintain()
    store.append(validator.from_records(records([MIDNIGHT + 5])))  # late for Jan 1
    store.flush()
    assert total(store) == 4
    assert store.maintain()["closed"] == 0  # waits for late records to go quiet
    clock.now += 301
    assert store.maintain()["closed"] == 1
    rows = file_rows(store.layout.root / "metrics_2025-01-01.parquet")
    assert [t for _, t in rows] == [int((MIDNIGHT + s) * 1000) for s in (5, 10, 5, 10)]
    assert not store.layout.part_days()


def test_compaction_cost_per_record_stays_flat(
    tmp_path: Path, validator: RecordValidator, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    merged_rows: list[int] = []
    real = compaction.merge_files

    def counting(sources, dest, schema, metadata):  # type: ignore[no-untyped-def]
        merged_rows.append(sum(pq.read_metadata(p).num_rows for p in sources))
        return real(sources, dest, schema, metadata)

    monkeypatch.setattr(compaction, "merge_files", counting)
    s = BufferStore(tmp_path / "b", clock=clock, fsync="always", flush_records=1, merge_fanout=4)
    s.open()
    for flush in range(64):
        s.append(validator.from_records(records([MIDNIGHT + flush * 10], servers=50)))
        s.maintain()
    # 64 parts, fanout 4: each record is rewritten log4(64) = 3 times, not once per flush.
    assert sum(merged_rows) == 3 * 64 * 50
    assert len(s.layout.parts(s.layout.part_days()[0])) == 1
    assert total(s) == 64 * 50
    s.close()


def test_log_replay_after_a_crash_keeps_every_complete_frame(
    tmp_path: Path, validator: RecordValidator, clock: FakeClock
) -> None:
    s = BufferStore(tmp_path / "buffer", clock=clock, fsync="always")
    s.open()
    for i in range(4):
        s.append(validator.from_records(records([MIDNIGHT + i])))
    s.close(flush=False)  # as if killed: nothing compacted
    [segment] = sorted((tmp_path / "buffer" / "wal").glob("*.wal"))
    segment.write_bytes(segment.read_bytes()[:-100])  # the last frame torn
    again = BufferStore(tmp_path / "buffer", clock=clock)
    assert again.open() == 6
    again.append(validator.from_records(records([MIDNIGHT + 100])))
    again.close()
    third = BufferStore(tmp_path / "buffer", clock=clock)
    assert third.open() == 0 and total(third) == 8
    third.close()


def test_crash_after_merge_before_unlink_is_repaired(
    tmp_path: Path, store: BufferStore, validator: RecordValidator, clock: FakeClock
) -> None:
    for i in range(3):
        store.append(validator.from_records(records([MIDNIGHT + i])))
        store.flush()
    parts_dir = store.layout.part_dir(store.layout.part_days()[0])
    saved = tmp_path / "saved"
    shutil.copytree(parts_dir, saved)
    clock.now = MIDNIGHT + DAY + 600
    store.maintain()  # closes the day, deletes the parts
    store.close()
    shutil.copytree(saved, parts_dir)  # as if the unlinks never happened
    reopened = BufferStore(store.layout.root, clock=clock)
    reopened.open()
    assert not list(parts_dir.glob("*.parquet"))
    assert total(reopened) == 6
    reopened.close()


def test_replayed_records_already_compacted_are_not_doubled(
    tmp_path: Path, validator: RecordValidator, clock: FakeClock
) -> None:
    s = BufferStore(tmp_path / "buffer", clock=clock, fsync="always")
    s.open()
    s.append(validator.from_records(records([MIDNIGHT + 1, MIDNIGHT + 2])))
    wal = tmp_path / "buffer" / "wal"
    saved = {p.name: p.read_bytes() for p in wal.glob("*.wal")}
    s.flush()  # parts written, log checkpointed
    s.close()
    for name, data in saved.items():  # as if killed before the checkpoint deleted them
        (wal / name).write_bytes(data)
    again = BufferStore(tmp_path / "buffer", clock=clock)
    assert again.open() == 4
    again.flush()
    assert total(again) == 4
    again.close()
