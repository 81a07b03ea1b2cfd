"""The service channel's unions: what each role decodes, and what its clients decode."""

from __future__ import annotations

from typing import Union

from ipc.messages.base import Ack, ErrorReply, JsonReply, MetricsRequest, Ping, Pong, TextReply
from ipc.messages.ingest import BufferStatsReply, BufferStatsRequest, IngestAck, IngestBatch
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
from ipc.messages.training import (
    CancelReply,
    CancelTraining,
    JobStatusReply,
    PromoteModel,
    PromotionsRequest,
    TrainingStatsReply,
    TrainingStatsRequest,
    TrainingStatusRequest,
    TriggerReply,
    TriggerTraining,
)

# --- the service channel's unions: what each role decodes, what its clients decode ---

IngestRequest = Union[Ping, MetricsRequest, IngestBatch, BufferStatsRequest]
PredictorRequest = Union[
    Ping, MetricsRequest, PredictionsRequest, ServerPredictionRequest, AlertsRequest,
    ModelInfoRequest, ModelsRequest, ReloadModel, RollbackModel, AccuracyRequest,
]  # fmt: skip
TrainerRequest = Union[
    Ping, MetricsRequest, TriggerTraining, TrainingStatusRequest, TrainingStatsRequest, CancelTraining,
    PromoteModel, PromotionsRequest,
]  # fmt: skip
ServiceRequest = Union[IngestRequest, PredictorRequest, TrainerRequest]
ServiceReply = Union[
    Pong, Ack, ErrorReply, TextReply, JsonReply, IngestAck, BufferStatsReply,
    TriggerReply, JobStatusReply, TrainingStatsReply, CancelReply,
]  # fmt: skip
