"""A share of the fleet's servers, read from the buffer's Parquet files by another machine.

A Ray Train worker (``nordiqd.training.ray_worker``) trains on its shard of the servers
only and reads only those servers' rows. The driver assigns the shards
(``server_shards``) and lists the files of the window (``reader.parquet_files``); the
worker reads those names under ``uri`` through ``pyarrow.fs``: the buffer folder itself
when the workers share it (the same path on every node, an NFS mount), or an object
store the buffer is synced to (``s3://bucket/nordiqd/buffer``, credentials from the
environment as pyarrow's S3 filesystem takes them). Row groups whose statistics rule
out the servers read are skipped: a file is sorted by server name, so a worker that
reads its shard a run of consecutive names at a time (``ray_worker.shard_batches``)
decodes about that run's share of each file, one row group at a time, although the
shards themselves are dealt by hash.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from .batch import METRIC_TYPE, TIMESTAMP_TYPE, conform, order_and_dedup

__all__ = ["read_shard", "server_shards"]

_NAMES = pa.dictionary(pa.int32(), pa.string())


def _digest(name: str) -> bytes:
    return hashlib.blake2b(name.encode(), digest_size=8).digest()


def server_shards(names: Sequence[str], shards: int) -> list[list[str]]:
    """The servers of each of ``shards`` shards, assigned by the hash of their names.

    Servers in the order of their hashes are dealt out in turn, so the shards differ by
    at most one server and a server's shard does not depend on the order of ``names``.
    """
    if shards < 1:
        raise ValueError(f"shards must be at least 1, not {shards}")
    order = sorted(set(names), key=lambda n: (_digest(n), n))
    return [sorted(order[k::shards]) for k in range(shards)]


def read_shard(
    uri: str,
    files: Sequence[str],
    targets: Sequence[str],
    servers: Sequence[str],
    start_ms: float | None,
    end_ms: float | None,
) -> pa.Table:
    """The rows of ``servers`` in [start_ms, end_ms) from ``files`` under ``uri``.

    Returns ``timestamp``, ``server_name``, ``profile`` (strings) and ``targets``,
    sorted by server then time and deduplicated, as ``reader.read_window`` returns them.

    Raises:
        OSError: A file cannot be read (the message names it).
    """
    fs, root = pafs.FileSystem.from_uri(uri)
    schema = pa.schema(
        [
            pa.field("timestamp", TIMESTAMP_TYPE),
            pa.field("server_name", _NAMES),
            pa.field("profile", _NAMES),
            *[pa.field(t, METRIC_TYPE) for t in targets],
        ]
    )
    wanted = pa.array(sorted(set(servers)), pa.string())
    if len(wanted) == 0:
        return schema.empty_table().cast(_plain(schema))
    since = None if start_ms is None else pa.scalar(math.ceil(start_ms), TIMESTAMP_TYPE)
    until = None if end_ms is None else pa.scalar(math.ceil(end_ms), TIMESTAMP_TYPE)
    names = (wanted[0].as_py(), wanted[-1].as_py())
    tables = []
    for name in files:
        path = f"{root.rstrip('/')}/{name}"
        try:
            with fs.open_input_file(path) as source:
                parquet = pq.ParquetFile(source, read_dictionary=["server_name", "profile"])
                columns = [f.name for f in schema if f.name in parquet.schema_arrow.names]
                # One row group in memory at a time, and only those that can hold the servers.
                for group in _groups(parquet.metadata, names):
                    rows = parquet.read_row_group(group, columns=columns, use_threads=False)
                    tables.append(_kept(conform(rows, schema), wanted, since, until))
                    del rows
        except (OSError, pa.ArrowException) as exc:
            raise OSError(f"cannot read the buffer file {uri.rstrip('/')}/{name}: {exc}") from exc
    if not tables:
        return schema.empty_table().cast(_plain(schema))
    table = order_and_dedup(pa.concat_tables(tables).unify_dictionaries())
    return table.cast(_plain(schema))


def _kept(rows: pa.Table, wanted: pa.Array, since: pa.Scalar | None, until: pa.Scalar | None) -> pa.Table:
    """The rows of ``wanted`` servers in [since, until)."""
    mask = pc.is_in(rows["server_name"], value_set=wanted)
    if since is not None:
        mask = pc.and_(mask, pc.greater_equal(rows["timestamp"], since))
    if until is not None:
        mask = pc.and_(mask, pc.less(rows["timestamp"], until))
    return rows.filter(mask)


def _groups(metadata: pq.FileMetaData, names: tuple[str, str]) -> list[int]:
    """The row groups whose ``server_name`` statistics overlap [names[0], names[1]].

    A buffer file is sorted by server name, so a run of consecutive names touches a few
    of its row groups; a group without statistics (or with other than string ones) is read.
    """
    column = metadata.schema.names.index("server_name") if "server_name" in metadata.schema.names else -1
    kept = []
    for group in range(metadata.num_row_groups):
        stats = metadata.row_group(group).column(column).statistics if column >= 0 else None
        if stats is None or not stats.has_min_max or not isinstance(stats.min, str):
            kept.append(group)
        elif stats.max >= names[0] and stats.min <= names[1]:
            kept.append(group)
    return kept


def _plain(schema: pa.Schema) -> pa.Schema:
    """``schema`` with the names as plain strings, as ``read_window`` returns them."""
    return pa.schema([pa.field(f.name, pa.string()) if f.type == _NAMES else f for f in schema])
