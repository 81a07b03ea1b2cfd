"""The trainer role's requests and replies, job states, and the events a job subprocess
sends to its trainer."""

from __future__ import annotations

from typing import Any, Literal, Union, get_args

import msgspec

from ipc.messages.base import DiskSpace, Message

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

JobTrigger = Literal["manual", "schedule", "data", "skill", "coverage"]
"""What started a job: a request, or one of the ``[retrain]`` triggers."""

JOB_TRIGGERS: tuple[JobTrigger, ...] = get_args(JobTrigger)
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
    trigger: JobTrigger = "manual"
    stage: Literal["training", "gating"] | None = None
    promoted: bool | None = None
    gate: dict[str, Any] | None = None
    buffer_records: int | None = None
    backend: Literal["local", "ray"] = "local"  # where it trains: [training] backend
    workers: int = 1  # processes training it: 1 locally, [training] ray_workers on Ray


class TrainingStatusRequest(Message, frozen=True, tag="training_status"):
    """Service -> trainer: one job (``job_id``) or the current/last one. Reply: ``JobStatusReply``."""

    job_id: str | None = None


class JobStatusReply(Message, frozen=True, tag="job_status"):
    """Reply to ``TrainingStatusRequest``: the job, or None when there is none."""

    job: JobStatus | None


class TrainingStatsRequest(Message, frozen=True, tag="training_stats"):
    """Service -> trainer: the seed's training statistics. Reply: ``TrainingStatsReply``."""


class TrainingStatsReply(Message, frozen=True, tag="training_stats_reply"):
    """The seed manual's ``/admin/training-stats`` body, field for field, and ``disk``:
    the free space of the data directory (None when it could not be measured)."""

    current_job: dict[str, Any] | None
    history: dict[str, Any]
    data_buffer: dict[str, Any]
    ready_to_train: bool
    ready_reason: str
    config: dict[str, Any]
    disk: DiskSpace | None = None
    retrain: dict[str, Any] | None = None


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


class JobGating(Message, frozen=True, tag="job_gating"):
    """Job subprocess PUSH -> trainer: the candidate ``version`` is on disk (not served)
    and the promotion gate now scores it on the holdout."""

    job_id: str
    version: str


class JobFinished(Message, frozen=True, tag="job_finished"):
    """Job subprocess PUSH -> trainer: the candidate is on disk and gated; exits 0 next.

    ``model_path`` is the model directory relative to the data directory; ``validation``
    holds ``loss``, ``mase_model`` and ``mase_seasonal_naive``. ``gate`` holds the
    holdout figures (``nordiqd.promotion.holdout``) that the trainer's gate judges;
    the job never points ``current`` at its model itself.
    """

    job_id: str
    model_path: str
    records: int
    validation: dict[str, float]
    notes: list[str] = []
    gate: dict[str, Any] | None = None


class JobFailed(Message, frozen=True, tag="job_failed"):
    """Job subprocess PUSH -> trainer: the job stops without publishing.

    ``cancelled`` is True when it stopped on request (it then exits ``CANCELLED``).
    """

    job_id: str
    error: str
    cancelled: bool = False


JobMessage = Union[JobStarted, JobProgress, JobGating, JobFinished, JobFailed]


class PromoteModel(Message, frozen=True, tag="promote_model"):
    """Service -> trainer: serve ``version`` by hand, past the gate (logged ``forced``).

    Reply: ``JsonReply`` (the log entry), or ``ErrorReply`` of kind ``not_found`` (no
    such version) or ``conflict`` (a gate is running, or the version is unusable)."""

    version: str


class PromotionsRequest(Message, frozen=True, tag="promotions"):
    """Service -> trainer: the promotion log, newest first. Reply: ``JsonReply``."""
