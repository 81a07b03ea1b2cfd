"""The ingest role: validates batches, logs them ahead, publishes them, compacts them.

How it runs: batches arrive as ``IngestBatch`` on the service ROUTER (from the api role
for REST, straight from agents over zmq). Each is validated as a whole, appended to the
write-ahead log (that is when it may be acknowledged), acknowledged, and published
columnar on the PUB socket for the predictor. A compaction thread calls
``BufferStore.maintain`` every ``[buffer] compact_interval_s`` (flush to daily Parquet,
tiered merges, day close, retention), so a long merge never delays an acknowledgement.

How it stops: ``close()`` stops the compaction thread, flushes what is pending and
closes the log. After a kill the next start replays the log tail.
"""

from __future__ import annotations

import logging
import threading
import time

import pyarrow as pa
import zmq

from ipc import codec
from ipc import messages as m
from ipc.sockets import make_socket
from nordiqd.buffer.batch import encode_batch
from nordiqd.buffer.errors import BatchRejected, BatchTooLarge
from nordiqd.buffer.records import RecordValidator
from nordiqd.buffer.store import BufferStore
from nordiqd.config import applying
from nordiqd.promtext import family
from nordiqd.roles.base import ServiceRole

log = logging.getLogger(__name__)

PUB_HWM = 100  # batches (~8 MB): a stalled subscriber must not grow ingest; it refills from the buffer
FLUSH_RECORDS = 50_000  # pending records that make the compaction thread flush at once


class IngestRole(ServiceRole[m.IngestRequest]):
    """Owns every sample the fleet sends."""

    name = "ingest"
    requests = codec.ingest_requests

    def init(self, ctx: zmq.Context[zmq.Socket[bytes]]) -> None:
        # Arrow's own allocators keep freed flush buffers mapped; glibc's returns them
        # (the store trims after each compaction), which keeps the role's RSS bounded.
        pa.set_memory_pool(pa.system_memory_pool())
        cfg = self.config
        with applying("schema.metrics", "schema.profile_patterns"):
            self.validator = RecordValidator(
                cfg.schema.metrics,
                profile_patterns=cfg.schema.profile_patterns,
                max_future_seconds=cfg.buffer.max_future_s,
                max_batch_records=cfg.buffer.max_batch_records,
            )
        with applying("buffer.fsync", "buffer.retention_days"):
            self.store = BufferStore(
                cfg.buffer_dir,
                cfg.schema.metrics,
                cfg.buffer.retention_days,
                fsync=cfg.buffer.fsync_policy,
                flush_records=FLUSH_RECORDS,
            )
        replayed = self.store.open()
        if replayed:
            log.info("write-ahead log replayed: %d records back in the buffer", replayed)
        super().init(ctx)
        with applying("endpoints.ingest_publish", catch=(zmq.ZMQError,)):
            self.pub = make_socket(ctx, zmq.PUB, bind=cfg.endpoint("ingest_publish"), hwm=PUB_HWM)
        self.epoch = time.time()
        self.seq = 0
        self.counters = {"batches_accepted": 0.0, "batches_rejected": 0.0, "records_accepted": 0.0}
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._compactor = threading.Thread(target=self._compact_loop, name="compactor", daemon=True)
        self._compactor.start()

    def handle(self, msg: m.IngestRequest) -> m.ServiceReply | None:
        match msg:
            case m.IngestBatch(format=fmt, body=body):
                return self._ingest(fmt, body)
            case m.BufferStatsRequest():
                return m.BufferStatsReply(data_buffer=self.store.stats(), counters=dict(self.counters))
            case _:
                return super().handle(msg)

    def _ingest(self, fmt: str, body: bytes) -> m.IngestAck | m.ErrorReply:
        try:
            if fmt == "json":
                batch = self.validator.from_json(body)
            elif fmt == "msgpack":
                batch = self.validator.from_msgpack(body)
            else:
                return m.ErrorReply(
                    kind="invalid_batch", message=f"unknown batch format {fmt!r}: use json or msgpack"
                )
        except BatchRejected as exc:
            self.counters["batches_rejected"] += 1
            kind = "batch_too_large" if isinstance(exc, BatchTooLarge) else "invalid_batch"
            return m.ErrorReply(kind=kind, message=str(exc), details=exc.to_dict())
        payload = encode_batch(batch)
        self.store.append(batch, payload)  # durable per the fsync policy: now it may be acked
        if self.store.pending_records >= FLUSH_RECORDS:
            self._wake.set()  # flush now rather than at the next interval: memory stays bounded
        self.seq += 1
        self.counters["batches_accepted"] += 1
        self.counters["records_accepted"] += batch.num_rows
        event = m.AcceptedBatch(epoch=self.epoch, seq=self.seq, records=batch.num_rows, arrow=payload)
        try:
            self.pub.send(codec.publish.encode(event), zmq.NOBLOCK)
        except zmq.Again:
            pass  # no room for a slow subscriber; it refills from the buffer on restart
        return m.IngestAck(accepted=batch.num_rows, seq=self.seq)

    def metrics_text(self) -> str:
        c = self.counters
        return (
            family(
                "nordiqd_ingest_records_total",
                "counter",
                "Records accepted into the buffer.",
                [({}, c["records_accepted"])],
            )
            + family(
                "nordiqd_ingest_batches_total",
                "counter",
                "Batches received, by result.",
                [
                    ({"result": "accepted"}, c["batches_accepted"]),
                    ({"result": "rejected"}, c["batches_rejected"]),
                ],
            )
            + family(
                "nordiqd_buffer_pending_records",
                "gauge",
                "Records in the write-ahead log, not yet in Parquet.",
                [({}, self.store.pending_records)],
            )
        )

    def _compact_loop(self) -> None:
        interval = self.config.buffer.compact_interval_s
        while not self._stop.is_set():
            self._wake.wait(interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                done = self.store.maintain()
                if any(done.values()):
                    log.debug("compaction: %s", done)
            except Exception:
                log.exception("compaction failed; records stay in the write-ahead log and are retried")

    def close(self) -> None:
        if hasattr(self, "_stop"):
            self._stop.set()
            self._wake.set()
            self._compactor.join(timeout=30)
        if hasattr(self, "store"):
            self.store.close()
