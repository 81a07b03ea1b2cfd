"""Every message that crosses a nordiqd socket, one frozen tagged Struct each.

Each Struct's docstring is its protocol spec. Messages are grouped in one union per
channel; a decoder is built once per union. New fields always get defaults so that an
older peer can still decode a newer message (msgspec's schema-evolution rules), and
``PROTOCOL_VERSION`` is bumped only for changes that break that.

Channels:
    children:  child -> supervisor ``Ready``/``Heartbeat``/``Goodbye``;
               supervisor -> child ``Heartbeat``/``Shutdown``.
    control:   ``ctl``/api -> supervisor ``StatusRequest``/``RestartRequest``/``StopRequest``;
               replies ``StatusReply``/``Ack``/``ErrorReply``.
    events:    supervisor PUB ``RoleEvent``.
    service:   api -> roles ``Ping`` and the role requests added by each role; replies
               ``Pong``/``Ack``/``ErrorReply`` and the role replies.
"""

from __future__ import annotations

from typing import Any, Literal, Union, get_args

import msgspec

PROTOCOL_VERSION = 1


class Message(msgspec.Struct, frozen=True, tag_field="t", kw_only=True):
    """Base of every message: carries the protocol version ``v``."""

    v: int = PROTOCOL_VERSION


# --- children channel ------------------------------------------------------------


class Ready(Message, frozen=True, tag="ready"):
    """Child -> supervisor: the role finished ``init()`` and serves.

    Sent once after start; the supervisor starts the next role only after it.
    """

    role: str
    pid: int


class Heartbeat(Message, frozen=True, tag="hb"):
    """Either direction: the sender is alive. ``seq`` counts up per sender."""

    role: str = ""
    pid: int = 0
    seq: int = 0


class Goodbye(Message, frozen=True, tag="bye"):
    """Child -> supervisor: the role is exiting on its own, with a reason."""

    role: str
    pid: int
    reason: str = ""


class Shutdown(Message, frozen=True, tag="shutdown"):
    """Supervisor -> child: stop now, gracefully (same as SIGTERM)."""

    reason: str = ""


ChildMessage = Union[Ready, Heartbeat, Goodbye, Shutdown]


# --- control channel -------------------------------------------------------------


class StatusRequest(Message, frozen=True, tag="status"):
    """Control: ask for the state of every role. Reply: ``StatusReply``."""


class RestartRequest(Message, frozen=True, tag="restart"):
    """Control: restart one role. Reply ``Ack`` once it is Ready again, else ``ErrorReply``."""

    role: str


class StopRequest(Message, frozen=True, tag="stop"):
    """Control: stop the whole tree (same path as SIGTERM). Reply ``Ack`` before stopping."""


class RoleStatus(msgspec.Struct, frozen=True, kw_only=True):
    """State of one supervised role, as ``status`` reports it."""

    name: str
    state: str
    pid: int | None = None
    uptime_s: float | None = None
    restarts: int = 0
    last_exit: str | None = None


class StatusReply(Message, frozen=True, tag="status_reply"):
    """Reply to ``StatusRequest``: the supervisor's own pid and state, then each role."""

    pid: int
    state: str
    uptime_s: float
    roles: list[RoleStatus] = []


class Ack(Message, frozen=True, tag="ack"):
    """Generic success reply with a human-readable message."""

    message: str = ""


class ErrorReply(Message, frozen=True, tag="error"):
    """Generic failure reply: ``kind`` is a short machine name, ``message`` one sentence.

    ``details`` carries structured data (e.g. the list of rejected records).
    """

    kind: str
    message: str
    details: Any = None


ControlMessage = Union[StatusRequest, RestartRequest, StopRequest, StatusReply, Ack, ErrorReply]


# --- events channel --------------------------------------------------------------


class RoleEvent(Message, frozen=True, tag="role_event"):
    """Supervisor PUB: a role changed state (spawned, ready, exited, restarting, ...)."""

    role: str
    state: str
    pid: int | None = None
    detail: str = ""


EventMessage = Union[RoleEvent]


# --- service channel (api -> roles) ---------------------------------------------


class Ping(Message, frozen=True, tag="ping"):
    """Service: liveness probe of a role's request socket. Reply: ``Pong``."""


class Pong(Message, frozen=True, tag="pong"):
    """Reply to ``Ping``: the role's name and pid."""

    role: str
    pid: int


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
    time), so a subscriber can tell a gap from a restart.
    """

    epoch: float
    seq: int
    records: int
    arrow: bytes


PublishMessage = Union[AcceptedBatch]


# --- trainer (service requests) and its job subprocesses --------------------------


class TriggerTraining(Message, frozen=True, tag="trigger_training"):
    """Service -> trainer: start a job. Reply: ``TriggerReply`` (refused jobs included)."""

    epochs: int
    incremental: bool = True


class TriggerReply(Message, frozen=True, tag="trigger_reply"):
    """The seed manual's trigger response; ``status`` is "queued" or "rejected"."""

    success: bool
    status: str
    job_id: str | None = None
    message: str | None = None
    error: str | None = None
    epochs: int | None = None
    incremental: bool | None = None


JobState = Literal["queued", "running", "completed", "failed", "cancelled"]
"""A training job's state: queued -> running -> one of the three terminal states."""

JOB_STATES: tuple[JobState, ...] = get_args(JobState)
ACTIVE_JOB_STATES: frozenset[JobState] = frozenset({"queued", "running"})
TERMINAL_JOB_STATES: frozenset[JobState] = frozenset(JOB_STATES) - ACTIVE_JOB_STATES


class JobStatus(msgspec.Struct, frozen=True, kw_only=True):
    """One training job, with exactly the seed manual's status fields plus a few more."""

    job_id: str
    status: JobState
    progress_pct: float
    epochs: int
    incremental: bool
    started_at: str | None = None
    completed_at: str | None = None
    duration_seconds: float | None = None
    model_path: str | None = None
    error: str | None = None
    queued_at: str | None = None
    notes: list[str] = []
    records: int | None = None
    validation: dict[str, Any] | None = None


class TrainingStatusRequest(Message, frozen=True, tag="training_status"):
    """Service -> trainer: one job (``job_id``) or the current/last one. Reply: ``JobStatusReply``."""

    job_id: str | None = None


class JobStatusReply(Message, frozen=True, tag="job_status"):
    """Reply to ``TrainingStatusRequest``: the job, or None when there is none."""

    job: JobStatus | None


class TrainingStatsRequest(Message, frozen=True, tag="training_stats"):
    """Service -> trainer: the seed's training statistics. Reply: ``TrainingStatsReply``."""


class TrainingStatsReply(Message, frozen=True, tag="training_stats_reply"):
    """The seed manual's ``/admin/training-stats`` body, field for field."""

    current_job: dict[str, Any] | None
    history: dict[str, Any]
    data_buffer: dict[str, Any]
    ready_to_train: bool
    ready_reason: str
    config: dict[str, Any]


class CancelTraining(Message, frozen=True, tag="cancel_training"):
    """Service -> trainer: cancel the running job. Reply: ``CancelReply``."""


class CancelReply(Message, frozen=True, tag="cancel_reply"):
    """The seed manual's cancel response."""

    success: bool
    message: str
    job_id: str | None = None


class JobStarted(Message, frozen=True, tag="job_started"):
    """Job subprocess PUSH -> trainer: the job read its data and starts fitting."""

    job_id: str
    records: int


class JobProgress(Message, frozen=True, tag="job_progress"):
    """Job subprocess PUSH -> trainer: percent of the fit done (at most two a second)."""

    job_id: str
    progress_pct: float


class JobFinished(Message, frozen=True, tag="job_finished"):
    """Job subprocess PUSH -> trainer: the model is published; the job exits 0 next.

    ``model_path`` is the model directory relative to the data directory; ``validation``
    holds ``loss``, ``mase_model`` and ``mase_seasonal_naive``.
    """

    job_id: str
    model_path: str
    records: int
    validation: dict[str, float]
    notes: list[str] = []


class JobFailed(Message, frozen=True, tag="job_failed"):
    """Job subprocess PUSH -> trainer: the job stops without publishing.

    ``cancelled`` is True when it stopped on request (it then exits ``CANCELLED``).
    """

    job_id: str
    error: str
    cancelled: bool = False


JobMessage = Union[JobStarted, JobProgress, JobFinished, JobFailed]


# --- predictor (service requests) ------------------------------------------------


class PredictionsRequest(Message, frozen=True, tag="predictions"):
    """Service -> predictor: the whole fleet's cached forecasts, gzip-compressed.

    Reply: ``JsonReply`` with ``etag`` naming the forecast pass and ``encoding`` "gzip";
    when ``known`` already names the current pass, ``body`` is empty (not modified), so
    the api's copy is reused and megabytes do not cross the socket on every request.
    """

    known: str = ""


class ServerPredictionRequest(Message, frozen=True, tag="server_prediction"):
    """Service -> predictor: one server's forecast. Reply: ``JsonReply`` or ``ErrorReply``
    with kind ``not_found``."""

    server_name: str


class AlertsRequest(Message, frozen=True, tag="alerts"):
    """Service -> predictor: servers not ``ok``, worst first. Reply: ``JsonReply``."""


class ModelInfoRequest(Message, frozen=True, tag="model_info"):
    """Service -> predictor: the model being served. Reply: ``JsonReply``."""


class ModelsRequest(Message, frozen=True, tag="models"):
    """Service -> predictor: every model version on disk. Reply: ``JsonReply``."""


class ReloadModel(Message, frozen=True, tag="reload_model"):
    """Service -> predictor: load ``version`` (pointing ``current`` at it) or re-load
    ``current``. Reply ``JsonReply`` once loaded, or ``ErrorReply`` (kind
    ``reload_failed``/``not_found``) while the old model keeps serving."""

    version: str | None = None


class RollbackModel(Message, frozen=True, tag="rollback_model"):
    """Service -> predictor: point ``current`` at the previous version and load it.
    Replies as ``ReloadModel``."""


class MetricsRequest(Message, frozen=True, tag="metrics"):
    """Service -> any role: its Prometheus text lines. Reply: ``TextReply``."""


class JsonReply(Message, frozen=True, tag="json"):
    """A REST body, already encoded as JSON by the role that owns the data.

    ``encoding`` is "gzip" when ``body`` is compressed; ``etag`` names its version.
    """

    body: bytes
    etag: str = ""
    encoding: str = ""


class TextReply(Message, frozen=True, tag="text"):
    """A text body (Prometheus exposition format)."""

    body: bytes


ServiceMessage = Union[
    Ping, Pong, Ack, ErrorReply,
    IngestBatch, IngestAck, BufferStatsRequest, BufferStatsReply,
    TriggerTraining, TriggerReply, TrainingStatusRequest, JobStatusReply,
    TrainingStatsRequest, TrainingStatsReply, CancelTraining, CancelReply,
    PredictionsRequest, ServerPredictionRequest, AlertsRequest, ModelInfoRequest, ModelsRequest,
    ReloadModel, RollbackModel, MetricsRequest, JsonReply, TextReply,
]  # fmt: skip

# What the trainer's ``handle`` answers (the wire helper's name; the lead merges both).
TrainerRequest = Union[
    Ping, MetricsRequest, TriggerTraining, TrainingStatusRequest, TrainingStatsRequest, CancelTraining
]
