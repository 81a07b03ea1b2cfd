"""Where simulated batches go: the zmq ingest endpoint, REST, or a file (dry run).

A sink's ``send`` returns how many records the daemon accepted, raises ``Transient``
for a failure worth retrying (timeout, connection refused, 502/503/504, a full disk) and
``BatchRefused`` when the daemon rejected the batch.
"""

from __future__ import annotations

import http.client
import urllib.parse
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

import msgspec
import pyarrow as pa
import pyarrow.parquet as pq

from ipc.client import RequestTimeout
from nordiqd.agent import IngestClient, IngestRejected
from nordiqd.simulate.batch import Batch
from nordiqd.simulate.errors import BatchRefused, SimulationError
from nordiqd.simulate.options import SimulationOptions


class Transient(Exception):
    """One attempt failed in a way worth retrying (timeout, connection refused, 503)."""


class Sink(Protocol):
    """Where batches go; ``send`` returns the records accepted, raises ``Transient`` to retry."""

    def send(self, batch: Batch) -> int: ...

    def close(self) -> None: ...


def record_fields(batch: Batch, metrics: Iterable[str]) -> list[dict[str, Any]]:
    """The batch's rows as record dicts holding only ``metrics`` (epoch-second timestamps)."""
    names = list(metrics)
    index = batch.server_index.tolist()
    columns = [
        batch.timestamps.tolist(),
        [batch.names[i] for i in index],
        [batch.profiles[i] for i in index],
        *(batch.metrics[m].tolist() for m in names),
    ]
    keys = ("timestamp", "server_name", "profile", *names)
    return [dict(zip(keys, row, strict=True)) for row in zip(*columns, strict=True)]


class ZmqSink:
    """Batches to the ingest endpoint, msgpack-encoded, through the agent's client."""

    def __init__(self, endpoint: str, metrics: tuple[str, ...], timeout_s: float) -> None:
        self._client = IngestClient(endpoint, timeout_s=timeout_s, retries=0)
        self._metrics = metrics
        self._encoder = msgspec.msgpack.Encoder()

    def send(self, batch: Batch) -> int:
        body = self._encoder.encode({"records": record_fields(batch, self._metrics)})
        try:
            ack = self._client.send_encoded(body)
        except RequestTimeout as exc:
            raise Transient(str(exc)) from None
        except IngestRejected as exc:
            if exc.kind == "disk_full":  # nothing stored; the same batch fits once there is room
                raise Transient(str(exc)) from None
            raise BatchRefused(f"the daemon rejected a batch: {exc}", exc.problems) from None
        return ack.accepted

    def close(self) -> None:
        self._client.close()


class RestSink:
    """Batches to ``POST {url}/feed/data`` as JSON, on one kept-alive connection."""

    def __init__(self, url: str, api_key: str, metrics: tuple[str, ...], timeout_s: float) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self._conn_class = (
            http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        )
        self._host = parts.hostname
        self._port = parts.port
        self._path = parts.path.rstrip("/") + "/feed/data"
        self._headers = {"Content-Type": "application/json", "X-API-Key": api_key}
        self._timeout = timeout_s
        self._metrics = metrics
        self._conn: http.client.HTTPConnection | None = None

    def send(self, batch: Batch) -> int:
        body = msgspec.json.encode({"records": record_fields(batch, self._metrics)})
        status, reply = self._post(body)
        if status == 200:
            return int(reply.get("accepted", len(batch)))
        error = str(reply.get("error") or f"HTTP {status}")
        if status in (502, 503, 504, 507):  # 507: the daemon's disk is full, nothing stored
            raise Transient(f"HTTP {status}: {error}")
        if status in (401, 403):
            raise SimulationError(f"the API refused the key (HTTP {status}): {error}")
        raise BatchRefused(f"the daemon rejected a batch (HTTP {status}): {error}", reply.get("problems"))

    def _post(self, body: bytes) -> tuple[int, dict[str, Any]]:
        # A kept-alive connection the server has closed fails on first use: retry that
        # once, at once, on a fresh one; any other failure is the caller's to back off.
        for fresh in (self._conn is None, True):
            if self._conn is None:
                self._conn = self._conn_class(self._host, self._port, timeout=self._timeout)
            try:
                self._conn.request("POST", self._path, body, self._headers)
                resp = self._conn.getresponse()
                data = resp.read()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                self.close()
                if fresh:
                    raise Transient(f"POST {self._path} on {self._host}:{self._port}: {exc}") from None
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                raise Transient(f"POST {self._path} on {self._host}:{self._port}: {exc}") from None
        try:
            reply = msgspec.json.decode(data) if data else {}
        except msgspec.DecodeError:
            reply = {"error": data[:200].decode(errors="replace")}
        return resp.status, reply if isinstance(reply, dict) else {}

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class FileSink:
    """Batches to a file instead of the daemon: Parquet for ``*.parquet``, else JSON lines."""

    def __init__(self, path: str, metrics: tuple[str, ...]) -> None:
        self.path = Path(path)
        self._metrics = metrics
        self._parquet = self.path.suffix == ".parquet"
        self._writer: pq.ParquetWriter | None = None
        self._fh = None if self._parquet else open(self.path, "wb")  # noqa: SIM115 (closed in close())
        self._encoder = msgspec.json.Encoder()

    def send(self, batch: Batch) -> int:
        if self._parquet:
            table = batch.to_arrow().select(["timestamp", "server_name", "profile", *self._metrics])
            if self._writer is None:
                self._writer = _parquet_writer(self.path, self._metrics)
            self._writer.write_table(table)
        else:
            assert self._fh is not None
            for record in record_fields(batch, self._metrics):
                self._fh.write(self._encoder.encode(record) + b"\n")
        return len(batch)

    def close(self) -> None:
        if self._parquet and self._writer is None:
            self._writer = _parquet_writer(self.path, self._metrics)  # no records: an empty file
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def _parquet_writer(path: Path, metrics: tuple[str, ...]) -> pq.ParquetWriter:
    fields = [
        pa.field("timestamp", pa.timestamp("ms", tz="UTC")),
        pa.field("server_name", pa.string()),
        pa.field("profile", pa.string()),
        *(pa.field(m, pa.float64()) for m in metrics),
    ]
    return pq.ParquetWriter(path, pa.schema(fields))


def open_sink(options: SimulationOptions, metrics: tuple[str, ...]) -> Sink:
    """The sink ``options.via`` names."""
    match options.via:
        case "zmq":
            return ZmqSink(options.endpoint, metrics, options.timeout_s)
        case "rest":
            return RestSink(options.url, options.api_key, metrics, options.timeout_s)
        case "file":
            return FileSink(options.out, metrics)
        case _:  # a caller that bypassed the type check
            raise ValueError(f"unknown destination {options.via!r}: use zmq, rest or file")
