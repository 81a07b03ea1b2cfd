"""Every training job ever run, persisted in ``state/training_jobs.json``.

The file is rewritten atomically (temp file, fsync, rename) on every state change, so a
daemon restart, or a kill at any instant, finds the history as of the last transition
(on a full disk: as of the last one that could be written; the rest follows once there
is room).
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from pathlib import Path

import msgspec

from ipc.messages import ACTIVE_JOB_STATES, TERMINAL_JOB_STATES, JobState, JobStatus
from nordiqd.durable import write_atomic

log = logging.getLogger(__name__)


def iso(t: datetime) -> str:
    """A UTC time as the seed manual writes it (ISO 8601, seconds, no zone)."""
    return t.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="seconds")


class JobHistory:
    """The ordered list of jobs, oldest first; the last one is the current or latest job."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.unsaved = False  # the last save failed: memory is ahead of the file
        self.jobs: list[JobStatus] = self._load()

    def _load(self) -> list[JobStatus]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        try:
            return msgspec.json.decode(data, type=list[JobStatus])
        except msgspec.DecodeError as exc:
            # Keep the unreadable file for a person to look at; start a new history.
            broken = self.path.with_suffix(f".broken-{int(datetime.now(UTC).timestamp())}")
            os.replace(self.path, broken)
            log.error("training history %s unreadable (%s): moved to %s", self.path, exc, broken)
            return []

    def save(self) -> None:
        """Write the whole history atomically.

        A write that fails (a full disk) is logged, not raised: the history stays right
        in memory, ``unsaved`` is set, and the trainer saves again until it succeeds
        (``save_if_unsaved``), so a job still runs, ends and is reported on a full disk.
        """
        try:
            write_atomic(self.path, msgspec.json.format(msgspec.json.encode(self.jobs), indent=1))
        except OSError as exc:
            if not self.unsaved:
                log.error("cannot save the training history %s (%s); kept in memory, retried", self.path, exc)
            self.unsaved = True
            return
        if self.unsaved:
            log.info("training history saved to %s again", self.path)
        self.unsaved = False

    def save_if_unsaved(self) -> None:
        """Retry a save that failed."""
        if self.unsaved:
            self.save()

    def add(self, job: JobStatus) -> None:
        """Append a new job and persist."""
        self.jobs.append(job)
        self.save()

    def put(self, job: JobStatus, persist: bool = True) -> JobStatus:
        """Replace the job of the same id by ``job`` (and persist unless ``persist`` is False)."""
        for i, old in enumerate(self.jobs):
            if old.job_id == job.job_id:
                self.jobs[i] = job
                if persist:
                    self.save()
                return job
        raise KeyError(job.job_id)

    def update(self, job_id: str, persist: bool = True, **changes: object) -> JobStatus:
        """Replace fields of one job (and persist unless ``persist`` is False)."""
        job = self.get(job_id)
        if job is None:
            raise KeyError(job_id)
        return self.put(msgspec.structs.replace(job, **changes), persist)

    def get(self, job_id: str) -> JobStatus | None:
        """One job by id."""
        return next((j for j in reversed(self.jobs) if j.job_id == job_id), None)

    def latest(self) -> JobStatus | None:
        """The current job, else the most recent one."""
        return self.jobs[-1] if self.jobs else None

    def active(self) -> JobStatus | None:
        """The queued or running job, if any."""
        job = self.latest()
        return job if job is not None and job.status in ACTIVE_JOB_STATES else None

    def count(self, status: JobState) -> int:
        """How many jobs are in ``status``."""
        return sum(j.status == status for j in self.jobs)

    def fail_interrupted(self, at: str) -> list[str]:
        """Mark jobs left active by a previous trainer process as failed at ``at``; return their ids."""
        ids = [j.job_id for j in self.jobs if j.status in ACTIVE_JOB_STATES]
        for job_id in ids:
            self.update(
                job_id,
                persist=False,
                status="failed",
                completed_at=at,
                error="the trainer process restarted while this job was running",
            )
        if ids:
            self.save()
        return ids

    def summary(self) -> dict[str, object]:
        """The seed manual's ``history`` block."""
        starts = [j.started_at for j in self.jobs if j.started_at]
        return {
            "total_trainings": sum(j.status in TERMINAL_JOB_STATES for j in self.jobs),
            "successful": self.count("completed"),
            "failed": self.count("failed"),
            "cancelled": self.count("cancelled"),
            "last_training": max(starts) if starts else None,
        }
