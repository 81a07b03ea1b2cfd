"""A Ray worker's shard of the buffer: servers dealt by hash, read through pyarrow.fs."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nordiqd.buffer.batch import TIMESTAMP_TYPE
from nordiqd.buffer.reader import parquet_files, read_window
from nordiqd.buffer.shards import _groups, read_shard, server_shards
from tests.unit.test_buffer_reader import DAY, MIDNIGHT, NOW, fill, keys


def test_shards_are_balanced_disjoint_and_independent_of_order() -> None:
    names = [f"srv-{i:04d}" for i in range(1001)]
    shards = server_shards(names, 4)
    assert sorted(len(s) for s in shards) == [250, 250, 250, 251]
    assert sorted(n for s in shards for n in s) == names
    assert server_shards(list(reversed(names)), 4) == shards
    # By hash, not by name: the shards are not runs of neighbouring names.
    assert shards[0] != names[: len(shards[0])]
    assert server_shards(["a", "b", "c"], 5)[3:] == [[], []]
    with pytest.raises(ValueError, match="at least 1"):
        server_shards(names, 0)


def test_a_shard_reads_its_servers_in_the_window_as_read_window_does(tmp_path: Path) -> None:
    store = fill(tmp_path)
    start, end = (MIDNIGHT + 3600) * 1000, (MIDNIGHT + 2 * DAY + 3600) * 1000
    files = parquet_files(tmp_path, start, end)
    assert files[:2] == ["metrics_2025-01-01.parquet", "metrics_2025-01-02.parquet"]
    assert all(f.startswith(".parts/2025-01-03/") for f in files[2:]) and files[2:]
    targets = ["cpu_user_pct", "mem_used_pct"]
    shard = read_shard(str(tmp_path), files, targets, ["b"], start, end)
    expected = read_window(
        tmp_path, start=start / 1000, end=end / 1000, servers=["b"], include_log=False,
        columns=["timestamp", "server_name", "profile", *targets],
    )  # fmt: skip
    assert shard.equals(expected.cast(shard.schema))
    assert keys(shard) == [("b", t) for t in (3600, DAY, DAY + 3600, 2 * DAY)]
    assert shard.schema.field("server_name").type == pa.string()
    # The same through a URI, as a worker on another machine names it.
    assert read_shard(f"file://{tmp_path}", files, targets, ["b"], start, end).equals(shard)
    assert read_shard(str(tmp_path), [], targets, ["b"], start, end).num_rows == 0
    with pytest.raises(OSError, match="cannot read the buffer file .*/gone.parquet"):
        read_shard(str(tmp_path), ["gone.parquet"], targets, ["b"], start, end)
    # Records still in the write-ahead log are in no Parquet file: a worker does not see them.
    everything = read_shard(str(tmp_path), parquet_files(tmp_path, None, None), targets, ["a"], None, None)
    assert keys(everything)[-1] == ("a", 2 * DAY + 3600) and read_window(tmp_path).num_rows == 13
    assert ("a", NOW - 1 - MIDNIGHT) in keys(read_window(tmp_path))
    store.close(flush=False)


def test_a_run_of_names_decodes_only_the_row_groups_that_can_hold_it(tmp_path: Path) -> None:
    names = [f"s{i:02d}" for i in range(10)]
    table = pa.table(
        {
            "timestamp": pa.array([t * 1000 for _ in names for t in range(4)], TIMESTAMP_TYPE),
            "server_name": [n for n in names for _ in range(4)],
            "profile": ["web"] * 40,
            "cpu_user_pct": pa.array([float(i) for i in range(40)], pa.float32()),
        }
    )
    pq.write_table(table, tmp_path / "metrics_2025-01-01.parquet", row_group_size=8)  # 2 servers a group
    metadata = pq.read_metadata(tmp_path / "metrics_2025-01-01.parquet")
    assert _groups(metadata, ("s02", "s03")) == [1]
    assert _groups(metadata, ("s03", "s06")) == [1, 2, 3]
    assert _groups(metadata, ("s99", "s99")) == []
    got = read_shard(
        str(tmp_path), ["metrics_2025-01-01.parquet"], ["cpu_user_pct"], ["s05", "s03"], 1000, 3000
    )
    assert got["server_name"].to_pylist() == ["s03", "s03", "s05", "s05"]
    assert got["timestamp"].cast(pa.int64()).to_pylist() == [1000, 2000, 1000, 2000]
    assert got["cpu_user_pct"].to_pylist() == [13.0, 14.0, 21.0, 22.0]
    assert (
        read_shard(str(tmp_path), ["metrics_2025-01-01.parquet"], ["cpu_user_pct"], [], None, None).num_rows
        == 0
    )
