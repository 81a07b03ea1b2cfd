"""The ingest role: validates batches, logs them ahead, publishes them, compacts them.

How it runs: batches arrive as ``IngestBatch`` on the service ROUTER (from the api role
for REST, straight from agents over zmq). Each is validated as a whole, appended to the
write-ahead log (that is when it may be acknowledged), acknowledged, and published
columnar on the PUB socket for the predictor. A compaction thread calls
``BufferStore.maintain`` every ``[buffer] compact_interval_s`` (flush to daily Parquet,
tiered merges, day close, retention), so a long merge never delays an acknowledgement.
It also watches the data directory's free space (a warning below ``[daemon]
disk_free_warn_mb``). On a full disk a batch is refused (``disk_full``, REST 507) with
nothing of it kept, compaction keeps trying, and the first batch that fits is accepted
again: there is no state to recover.

Bounded memory: acknowledged records stay in memory until compaction has them in
Parquet. While more than ``[buffer] max_backlog_records`` wait, new batches wait
unanswered in ``HeldBatches`` (the senders hear their acks later, so they slow down)
and are taken in order as compaction catches up; the compaction thread says so on an
inproc socket after each flush. A batch held ``backlog_wait_s`` is refused as busy
(REST: 503 with Retry-After); nothing acknowledged is ever dropped.

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
from nordiqd.buffer.errors import BatchRejected, BatchTooLarge, DiskFull
from nordiqd.buffer.records import RecordValidator
from nordiqd.buffer.store import BufferStore
from nordiqd.config import applying
from nordiqd.diskspace import DiskWatch, disk_lines, full_message, is_disk_full
from nordiqd.promtext import family
from nordiqd.roles.base import ServiceRole
from nordiqd.roles.held import HeldBatches

log = logging.getLogger(__name__)

PUB_HWM = 100  # messages: a stalled subscriber must not grow ingest; it refills from the buffer
PUBLISH_RECORDS = 5_000  # records per published message at most: the queue stays under ~40 MB
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
        self.counters = {
            "batches_accepted": 0.0,
            "batches_rejected": 0.0,
            "batches_refused": 0.0,
            "records_accepted": 0.0,
        }
        self._refusing = False  # the last batch met a full disk
        self.disk = DiskWatch(cfg.daemon.data_dir, cfg.daemon.disk_free_warn_mb << 20)
        self.disk.check()
        self.max_backlog = cfg.buffer.max_backlog_records
        self.held = HeldBatches(cfg.buffer.backlog_wait_s)
        # The compaction thread's word that the backlog shrank; each end used by one thread.
        flushed = f"inproc://ingest-flushed-{id(self)}"
        self._flushed = make_socket(ctx, zmq.PAIR, bind=flushed)
        self._flushed_tx = make_socket(ctx, zmq.PAIR, connect=flushed)
        self._stop = threading.Event()
        self._compaction_ok = True  # a full disk is logged once per spell, not every round
        self._wake = threading.Event()
        self._compactor = threading.Thread(target=self._compact_loop, name="compactor", daemon=True)
        self._compactor.start()

    def handle(self, msg: m.IngestRequest) -> m.ServiceReply | None:
        match msg:
            case m.IngestBatch(format=fmt, body=body):
                if not self.held and self.store.pending_records < self.max_backlog:
                    return self._ingest(fmt, body)
                if not self.held.room_for(body):
                    self.held.refused += 1
                    return self._busy()
                self.held.hold(self.request_frames, fmt, body, time.monotonic())
                self._wake.set()
                return None  # answered by _admit once the backlog is under its bound
            case m.BufferStatsRequest():
                return m.BufferStatsReply(data_buffer=self.store.stats(), counters=dict(self.counters))
            case _:
                return super().handle(msg)

    def sockets(self) -> list[zmq.Socket[bytes]]:
        return [*super().sockets(), self._flushed]

    def on_readable(self, sock: zmq.Socket[bytes]) -> None:
        if sock is self._flushed:
            while sock.poll(0):
                sock.recv()
            self._admit(time.monotonic())
            return
        super().on_readable(sock)

    def tick(self, now: float) -> None:
        self._admit(now)

    def _admit(self, now: float) -> None:
        """Ingests waiting batches while the backlog allows; refuses those waited too long."""
        while self.held and self.store.pending_records < self.max_backlog:
            batch = self.held.pop()
            self.reply_later(batch.frames, self._answer_batch(batch.fmt, batch.body))
        for batch in self.held.expired(now):
            self.reply_later(batch.frames, self._busy())
        if self.held:
            self._wake.set()  # compaction flushes now rather than at its interval

    def _answer_batch(self, fmt: str, body: bytes) -> m.ServiceReply:
        try:
            return self._ingest(fmt, body)
        except Exception as exc:  # as ServiceRole._answer does for a request answered at once
            log.exception("ingest failed on a held IngestBatch")
            return m.ErrorReply(kind="internal", message=f"ingest failed: {exc}")

    def _busy(self) -> m.ErrorReply:
        wait = self.held.retry_after_s()
        return m.ErrorReply(
            kind="busy",
            message=(
                f"ingest is busy: {self.store.pending_records:,} acknowledged records wait for "
                f"compaction (bound [buffer] max_backlog_records = {self.max_backlog:,}); "
                f"nothing of this batch was stored, send it again in {wait} s"
            ),
            details={"retry_after_s": wait},
        )

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
        try:
            self.store.append(batch, payload)  # durable per the fsync policy: now it may be acked
        except DiskFull as exc:
            self.counters["batches_refused"] += 1
            if not self._refusing:
                log.warning("refusing batches: %s", exc)
                self._refusing = True
            return m.ErrorReply(kind="disk_full", message=f"{exc}; retry later", details={"path": exc.path})
        if self._refusing:
            log.info("accepting batches again: the write-ahead log has room")
            self._refusing = False
        if self.store.pending_records >= FLUSH_RECORDS:
            self._wake.set()  # flush now rather than at the next interval: memory stays bounded
        self.seq += 1
        self.counters["batches_accepted"] += 1
        self.counters["records_accepted"] += batch.num_rows
        # A large batch goes out in slices, so PUB_HWM messages bound the queue in bytes too.
        n = batch.num_rows
        for start in range(0, n, PUBLISH_RECORDS):
            part = batch.slice(start, PUBLISH_RECORDS)
            arrow = payload if n <= PUBLISH_RECORDS else encode_batch(part)
            event = m.AcceptedBatch(epoch=self.epoch, seq=self.seq, records=part.num_rows, arrow=arrow)
            try:
                self.pub.send(codec.publish.encode(event), zmq.NOBLOCK)
            except zmq.Again:
                break  # no room for a slow subscriber; it refills from the buffer on restart
        return m.IngestAck(accepted=n, seq=self.seq)

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
                    ({"result": "refused_disk_full"}, c["batches_refused"]),
                ],
            )
            + family(
                "nordiqd_buffer_pending_records",
                "gauge",
                "Records in the write-ahead log, not yet in Parquet.",
                [({}, self.store.pending_records)],
            )
            + disk_lines(self.disk.path, self.disk.warn_below_bytes)
            + family(
                "nordiqd_ingest_held_batches",
                "gauge",
                "Batches waiting unanswered for the backlog to drop under [buffer] max_backlog_records.",
                [({}, len(self.held))],
            )
            + family(
                "nordiqd_ingest_pushback_total",
                "counter",
                "Batches held back by the backlog bound, by outcome (busy: refused, to be sent again).",
                [({"outcome": "held"}, self.held.total), ({"outcome": "busy"}, self.held.refused)],
            )
        )

    def _compact_loop(self) -> None:
        interval = self.config.buffer.compact_interval_s
        while not self._stop.is_set():
            self._wake.wait(interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            self.disk.check()
            try:
                if self.store.pending_records >= FLUSH_RECORDS or self.held:
                    self.store.flush()  # first, and said at once: held batches wait on it
                    self._say_flushed()
                done = self.store.maintain()
                if any(done.values()):
                    log.debug("compaction: %s", done)
                    self._say_flushed()
            except Exception as exc:
                if not is_disk_full(exc):
                    log.exception("compaction failed; records stay in the write-ahead log and are retried")
                elif self._compaction_ok:
                    where = full_message(self.config.buffer_dir, "compaction")
                    log.warning("%s; records stay in the write-ahead log and are retried", where)
                self._compaction_ok = False
            else:
                self._compaction_ok = True

    def _say_flushed(self) -> None:
        try:
            self._flushed_tx.send(b"", zmq.NOBLOCK)
        except zmq.Again:
            pass  # a word is already waiting: one is enough

    def close(self) -> None:
        if hasattr(self, "_stop"):
            self._stop.set()
            self._wake.set()
            self._compactor.join(timeout=30)
            self._flushed_tx.close(0)
            self._flushed.close(0)
        if hasattr(self, "store"):
            self.store.close()
