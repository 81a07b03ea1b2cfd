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
    service:   api/agents -> one role's ROUTER: that role's request union
               (``IngestRequest``, ``PredictorRequest``, ``TrainerRequest``, each with
               ``Ping`` and ``MetricsRequest``); replies ``ServiceReply``.

The messages live in one module per channel or role (``base``, ``supervision``,
``ingest``, ``training``, ``predictor``, ``service``); this package is the one name the
code imports them by: ``from ipc import messages as m``.
"""

from __future__ import annotations

from ipc.messages.base import (
    PROTOCOL_VERSION,
    Ack,
    DiskSpace,
    ErrorReply,
    JsonReply,
    Message,
    MetricsRequest,
    Ping,
    Pong,
    TextReply,
)
from ipc.messages.ingest import (
    AcceptedBatch,
    BufferStatsReply,
    BufferStatsRequest,
    IngestAck,
    IngestBatch,
    PublishMessage,
)
from ipc.messages.predictor import (
    AccuracyRequest,
    AlertsRequest,
    ModelInfoRequest,
    ModelsRequest,
    PredictionsRequest,
    ReloadModel,
    RollbackModel,
    ServerPredictionRequest,
)
from ipc.messages.service import (
    IngestRequest,
    PredictorRequest,
    ServiceReply,
    ServiceRequest,
    TrainerRequest,
)
from ipc.messages.supervision import (
    ChildMessage,
    ControlMessage,
    ControlReply,
    ControlRequest,
    EventMessage,
    Goodbye,
    Heartbeat,
    Ready,
    RestartRequest,
    RoleEvent,
    RoleStatus,
    Shutdown,
    StatusReply,
    StatusRequest,
    StopRequest,
)
from ipc.messages.training import (
    ACTIVE_JOB_STATES,
    JOB_STATES,
    JOB_TRIGGERS,
    TERMINAL_JOB_STATES,
    CancelReply,
    CancelTraining,
    JobFailed,
    JobFinished,
    JobGating,
    JobMessage,
    JobProgress,
    JobStarted,
    JobState,
    JobStatus,
    JobStatusReply,
    JobTrigger,
    PromoteModel,
    PromotionsRequest,
    TrainingStatsReply,
    TrainingStatsRequest,
    TrainingStatusRequest,
    TriggerReply,
    TriggerTraining,
)

__all__ = [
    "ACTIVE_JOB_STATES",
    "AcceptedBatch",
    "Ack",
    "AlertsRequest",
    "BufferStatsReply",
    "BufferStatsRequest",
    "CancelReply",
    "CancelTraining",
    "ChildMessage",
    "ControlMessage",
    "ControlReply",
    "ControlRequest",
    "DiskSpace",
    "ErrorReply",
    "EventMessage",
    "Goodbye",
    "Heartbeat",
    "IngestAck",
    "IngestBatch",
    "IngestRequest",
    "JOB_STATES",
    "JOB_TRIGGERS",
    "JobFailed",
    "JobFinished",
    "JobGating",
    "JobMessage",
    "JobProgress",
    "JobStarted",
    "JobState",
    "JobStatus",
    "JobStatusReply",
    "JobTrigger",
    "JsonReply",
    "Message",
    "MetricsRequest",
    "ModelInfoRequest",
    "ModelsRequest",
    "AccuracyRequest",
    "PROTOCOL_VERSION",
    "Ping",
    "Pong",
    "PredictionsRequest",
    "PromoteModel",
    "PromotionsRequest",
    "PredictorRequest",
    "PublishMessage",
    "Ready",
    "ReloadModel",
    "RestartRequest",
    "RoleEvent",
    "RoleStatus",
    "RollbackModel",
    "ServerPredictionRequest",
    "ServiceReply",
    "ServiceRequest",
    "Shutdown",
    "StatusReply",
    "StatusRequest",
    "StopRequest",
    "TERMINAL_JOB_STATES",
    "TextReply",
    "TrainerRequest",
    "TrainingStatsReply",
    "TrainingStatsRequest",
    "TrainingStatusRequest",
    "TriggerReply",
    "TriggerTraining",
]
