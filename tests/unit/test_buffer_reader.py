"""Reading windows back, and statistics from Parquet footers."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pytest

from nordiqd.buffer import reader
from nordiqd.buffer.reader import buffer_stats, read_window
from nordiqd.buffer.records import RecordValidator
from nordiqd.buffer.store import BufferStore

DAY = 86_400.0
MIDNIGHT = 1_735_689_600.0  # 2025-01-01T00:00:00Z
NOW = MIDNIGHT + 2 * DAY + 7_200  # Jan 3, 02:00


def clock() -> float:
    return NOW


def fill(root: Path, metrics: tuple[str, ...] = ("cpu_user_pct", "mem_used_pct")) -> BufferStore:
    """Jan 1 closed, Jan 2 closed, Jan 3 in parts and in the log; servers b, a."""
    store = BufferStore(root, metrics, clock=clock, fsync="always")
    store.open()
    validator = RecordValidator(metrics, clock=clock)
    for day in range(3):
        for hour in (1, 0):  # written out of order on purpose
            store.append(validator.from_records([
                {
                    "timestamp": MIDNIGHT + day * DAY + hour * 3600,
                    "server_name": name,
                    "cpu_user_pct": day + hour / 10,
                }
                for name in ("b", "a")
            ]))  # fmt: skip
        store.flush()
    store.maintain()
    store.append(validator.from_records([{"timestamp": NOW - 1, "server_name": "a", "cpu_user_pct": 9.0}]))
    return store


def keys(table: pa.Table) -> list[tuple[str, float]]:
    seconds = (table.column("timestamp").cast(pa.int64()).to_numpy() / 1000 - MIDNIGHT).tolist()
    return list(zip(table.column("server_name").to_pylist(), seconds, strict=True))


def test_reads_everything_sorted_by_server_then_time(tmp_path: Path) -> None:
    store = fill(tmp_path)
    assert sorted(p.name for p in tmp_path.glob("metrics_*")) == [
        "metrics_2025-01-01.parquet",
        "metrics_2025-01-02.parquet",
    ]
    table = read_window(tmp_path)
    expected_times = [0, 3600, DAY, DAY + 3600, 2 * DAY, 2 * DAY + 3600]
    assert keys(table) == [("a", t) for t in [*expected_times, NOW - 1 - MIDNIGHT]] + [
        ("b", t) for t in expected_times
    ]
    assert table.column_names == ["timestamp", "server_name", "profile", "cpu_user_pct", "mem_used_pct"]
    assert table.schema.field("server_name").type == pa.string()
    assert table.column("mem_used_pct").null_count == table.num_rows
    store.close(flush=False)


def test_windows_columns_servers_and_the_log(tmp_path: Path) -> None:
    store = fill(tmp_path)
    last_day = read_window(tmp_path, days=1, clock=clock, columns=["server_name", "cpu_user_pct"])
    assert last_day.column_names == ["server_name", "cpu_user_pct"]
    assert last_day.column("cpu_user_pct").to_pylist() == pytest.approx(
        [2.0, 2.1, 9.0, 2.0, 2.1]
    )  # from Jan 2 02:00
    window = read_window(
        tmp_path,
        start=dt.datetime(2025, 1, 2, tzinfo=dt.UTC),
        end=MIDNIGHT + 2 * DAY,
        servers=["b"],
        dictionary_names=True,
    )
    assert keys(window) == [("b", DAY), ("b", DAY + 3600)]
    assert pa.types.is_dictionary(window.schema.field("server_name").type)
    without_log = read_window(tmp_path, days=1, clock=clock, include_log=False)
    assert ("a", NOW - 1 - MIDNIGHT) not in keys(without_log)
    with pytest.raises(ValueError):
        read_window(tmp_path, days=1, start=MIDNIGHT)
    store.close(flush=False)


def test_a_metric_added_later_reads_as_nulls_in_older_files(tmp_path: Path) -> None:
    fill(tmp_path, metrics=("cpu_user_pct",)).close()
    table = read_window(tmp_path, columns=["server_name", "cpu_user_pct", "swap_used_pct"])
    assert table.column("swap_used_pct").null_count == table.num_rows == 13


def test_duplicates_across_files_and_log_read_once(tmp_path: Path) -> None:
    store = fill(tmp_path)
    validator = RecordValidator(("cpu_user_pct", "mem_used_pct"), clock=clock)
    # Still pending in the log: duplicates of a closed day's records.
    store.append(validator.from_records([{"timestamp": MIDNIGHT, "server_name": n} for n in ("a", "b")]))
    table = read_window(tmp_path)
    assert len(set(keys(table))) == table.num_rows == 13
    store.close(flush=False)


def test_stats_from_footers_and_log(tmp_path: Path) -> None:
    empty = buffer_stats(tmp_path / "nothing")
    assert empty == {
        "total_records": 0,
        "file_count": 0,
        "date_range": {"start": None, "end": None},
        "disk_usage_mb": 0.0,
    }
    store = fill(tmp_path)
    stats = buffer_stats(tmp_path)  # pending counted from the log's frame headers
    assert stats["total_records"] == 13 == store.stats()["total_records"]
    assert stats["file_count"] == 3
    assert stats["date_range"] == {"start": "2025-01-01", "end": "2025-01-03"}
    size = sum(p.stat().st_size for p in tmp_path.rglob("*") if p.is_file())
    assert stats["disk_usage_mb"] == round(size / 1e6, 2)
    store.close()
    assert buffer_stats(tmp_path)["total_records"] == 13


def test_a_flush_between_the_listing_and_the_log_read_is_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The race a reader in another process meets: it lists the Parquet files, then the
    # ingest flushes the log into a new part and deletes the log's segment, then it reads
    # the log. The records are in neither what it listed nor what is left of the log.
    store = fill(tmp_path)
    validator = RecordValidator(("cpu_user_pct", "mem_used_pct"), clock=clock)
    late = [{"timestamp": NOW - 10 - i, "server_name": "c", "cpu_user_pct": 1.0} for i in range(5)]
    store.append(validator.from_records(late))
    listed = reader._live_files
    calls: list[int] = []

    def listing_then_flush(*args):  # type: ignore[no-untyped-def]
        files = listed(*args)
        if not calls:
            store.flush()  # between this read's listing and its log read
        calls.append(1)
        return files

    monkeypatch.setattr(reader, "_live_files", listing_then_flush)
    table = read_window(tmp_path, servers=["c"])
    assert table.num_rows == 5 and len(calls) == 2  # the stale listing was read again
    store.close(flush=False)
