"""The ingest role's requests and replies, and the PUB of the batches it accepted."""

from __future__ import annotations

from typing import Any, Union

from ipc.messages.base import Message

# --- ingest (service requests, and the PUB of accepted batches) -------------------


class IngestBatch(Message, frozen=True, tag="ingest"):
    """Service -> ingest: one batch, accepted or rejected as a whole.

    ``body`` is ``{"records": [...]}`` encoded as ``format`` ("json" from REST, "msgpack"
    from agents). Reply: ``IngestAck`` once the batch is in the write-ahead log, or
    ``ErrorReply`` with kind ``invalid_batch``/``batch_too_large`` and the problems (record
    index, field, message) in ``details``. Safe to retry: duplicates are stored once.
    """

    format: str
    body: bytes


class IngestAck(Message, frozen=True, tag="ingest_ack"):
    """Reply to ``IngestBatch``: records accepted (a record repeated inside the batch counts
    once); ``seq`` numbers the batches this ingest process has accepted."""

    accepted: int
    seq: int = 0


class BufferStatsRequest(Message, frozen=True, tag="buffer_stats"):
    """Service -> ingest: the buffer's statistics. Reply: ``BufferStatsReply``."""


class BufferStatsReply(Message, frozen=True, tag="buffer_stats_reply"):
    """The seed manual's ``data_buffer`` block (total_records, file_count, date_range,
    disk_usage_mb), read from Parquet metadata, plus ingest counters."""

    data_buffer: dict[str, Any]
    counters: dict[str, float] = {}


class AcceptedBatch(Message, frozen=True, tag="accepted"):
    """Ingest PUB -> predictor: an accepted batch, columnar, as Arrow IPC stream bytes.

    ``seq`` counts batches since the ingest process started (``epoch`` is its start
    time), so a subscriber can tell a gap from a restart. A batch of more than 5,000
    records comes as several messages of the same ``seq`` (so the PUB queue's 100
    messages bound it in bytes too).
    """

    epoch: float
    seq: int
    records: int
    arrow: bytes


PublishMessage = Union[AcceptedBatch]
