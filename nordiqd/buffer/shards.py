"""A share of the fleet's servers, read from the buffer's Parquet files by another machine.

A Ray Train worker (``nordiqd.model.ray_train``) trains on its shard of the servers
only and reads only those servers' rows. The driver assigns the shards
(``server_shards``) and lists the files of the window (``reader.parquet_files``); the
worker reads those names under ``uri`` through ``pyarrow.fs``: the buffer folder itself
when the workers share it (the same path on every node, an NFS mount), or an object
store the buffer is synced to (``s3://bucket/nordiqd/buffer``, credentials from the
environment as pyarrow's S3 filesystem takes them). Row groups whose statistics rule
out the shard's servers or the window are skipped by the Parquet reader.
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
    terms = [pc.field("server_name").isin(pa.array(list(servers), pa.string()))]
    if start_ms is not None:
        terms.append(pc.field("timestamp") >= pa.scalar(math.ceil(start_ms), TIMESTAMP_TYPE))
    if end_ms is not None:
        terms.append(pc.field("timestamp") < pa.scalar(math.ceil(end_ms), TIMESTAMP_TYPE))
    predicate = terms[0]
    for term in terms[1:]:
        predicate = predicate & term
    tables = []
    for name in files:
        path = f"{root.rstrip('/')}/{name}"
        try:
            present = set(pq.read_schema(path, filesystem=fs).names)
            columns = [f.name for f in schema if f.name in present]
            table = pq.read_table(
                path,
                filesystem=fs,
                columns=columns,
                filters=predicate,
                read_dictionary=["server_name", "profile"],
                use_threads=False,  # a worker has its CPUs; one row group in flight, not many
            )
        except (OSError, pa.ArrowException) as exc:
            raise OSError(f"cannot read the buffer file {uri.rstrip('/')}/{name}: {exc}") from exc
        tables.append(conform(table, schema))
    if not tables:
        return schema.empty_table().cast(_plain(schema))
    table = order_and_dedup(pa.concat_tables(tables).unify_dictionaries())
    return table.cast(_plain(schema))


def _plain(schema: pa.Schema) -> pa.Schema:
    """``schema`` with the names as plain strings, as ``read_window`` returns them."""
    return pa.schema([pa.field(f.name, pa.string()) if f.type == _NAMES else f for f in schema])
