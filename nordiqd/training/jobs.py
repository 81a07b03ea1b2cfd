"""The training-job state machine: queued -> running -> completed, failed or cancelled.

One job at a time. A running job trains, then its candidate is gated (``stage``); a
completed job's candidate is judged by the ``Promoter`` and served only if it passes.
It knows no sockets and no real processes: it is given a ``spawn``
function that starts a job process, an ``inbox`` that yields the job events already
arrived, a readiness check and two clocks, so it is tested with fakes. Every state change
is persisted through ``JobHistory``.

How it runs: the trainer role calls ``trigger``/``status``/``stats``/``cancel`` for its
requests, ``receive`` when job events wait, and ``tick`` on every loop turn; ``tick``
enforces the cancel grace period and, once the process has exited, reads its last event
and exit code. How it stops: ``stop()`` terminates a running job, which is recorded as
failed (the daemon stopped).
"""

from __future__ import annotations

import logging
import signal
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import msgspec

from ipc import messages as m
from nordiqd.config import TrainingConfig
from nordiqd.training.history import JobHistory, iso
from nordiqd.training.promoter import Promoter
from nordiqd.training.readiness import Readiness
from supervisor import exitcodes

log = logging.getLogger(__name__)

MAX_EPOCHS = 1000
SAVE_RETRY_S = 5.0  # a history that could not be saved (full disk) is retried this often


class JobProcess(Protocol):
    """What the state machine needs of a job process; ``subprocess.Popen`` is one."""

    pid: int

    def poll(self) -> int | None: ...

    def send_signal(self, sig: int) -> None: ...

    def terminate(self) -> None: ...

    def kill(self) -> None: ...

    def wait(self, timeout: float | None = None) -> int: ...


Spawn = Callable[[str, int, bool], JobProcess]
"""Starts the job process for ``(job_id, epochs, incremental)``."""


def utc_now() -> datetime:
    """The wall clock the job ids and timestamps are read from."""
    return datetime.now(UTC)


@dataclass
class _Running:
    """The live process of the active job."""

    job_id: str
    proc: JobProcess
    started: float
    cancel_deadline: float | None = None
    final: m.JobFinished | m.JobFailed | None = None


class TrainingJobs:
    """Owns the training-job queue, the running job's process and the history.

    Args:
        history: the persisted jobs; jobs a previous trainer left active are failed here.
        settings: the ``[training]`` section (cancel grace, the stats' config block).
        spawn: starts a job process.
        inbox: yields the job events waiting, without blocking.
        readiness: whether the buffer holds enough data to train.
        promoter: judges a finished job's candidate (the promotion gate) and logs it.
        clock: monotonic seconds, for durations and the cancel deadline.
        wall: the wall clock (a zone-aware datetime), for job ids and timestamps.
        disk: the free space of the data directory, for the stats (None: unknown).
        memory_limit_mb: the jobs' memory cap, named when a job dies without a word.
    """

    def __init__(
        self,
        history: JobHistory,
        settings: TrainingConfig,
        spawn: Spawn,
        inbox: Callable[[], Iterable[m.JobMessage]],
        readiness: Callable[[], Readiness],
        promoter: Promoter,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = utc_now,
        disk: Callable[[], m.DiskSpace | None] = lambda: None,
        memory_limit_mb: int | None = None,
    ) -> None:
        self.history = history
        self._settings = settings
        self._spawn = spawn
        self._inbox = inbox
        self._readiness = readiness
        self.promoter = promoter
        self._clock = clock
        self._wall = wall
        self._disk = disk
        self._memory_limit_mb = memory_limit_mb
        self._save_tried = -SAVE_RETRY_S
        self.running: _Running | None = None
        for job_id in history.fail_interrupted(at=iso(wall())):
            log.warning("job %s was running when the trainer stopped: marked failed", job_id)

    # --- requests -----------------------------------------------------------------

    def trigger(self, epochs: int, incremental: bool, trigger: m.JobTrigger = "manual") -> m.TriggerReply:
        """Queue and start a job, or refuse it (``status`` "rejected") with the reason.

        ``trigger`` says what asked for it: a request (``manual``) or a ``[retrain]``
        trigger; the job records it, and the buffer's record count at its start.
        """
        active = self.history.active()
        if active is not None:
            return m.TriggerReply(
                success=False,
                status="rejected",
                job_id=active.job_id,
                error=f"Training already in progress: job {active.job_id} is {active.status}",
            )
        if not 1 <= epochs <= MAX_EPOCHS:
            return m.TriggerReply(
                success=False, status="rejected", error=f"epochs must be 1 to {MAX_EPOCHS}, not {epochs}"
            )
        verdict = self._readiness()
        if not verdict.ready:
            return m.TriggerReply(success=False, status="rejected", error=verdict.reason)
        job_id = self._new_job_id()
        self.history.add(
            m.JobStatus(
                job_id=job_id,
                status="queued",
                progress_pct=0,
                epochs=epochs,
                incremental=incremental,
                queued_at=iso(self._wall()),
                trigger=trigger,
                buffer_records=int(verdict.data_buffer.get("total_records", 0)),
                backend=self._settings.backend,
                workers=self._settings.ray_workers if self._settings.backend == "ray" else 1,
            )
        )
        self._start(job_id, epochs, incremental)
        return m.TriggerReply(
            success=True,
            job_id=job_id,
            status="queued",
            message="Training started in background",
            epochs=epochs,
            incremental=incremental,
        )

    def status(self, job_id: str | None) -> m.JobStatusReply:
        """One job by id, or the current/last one; None when there is none."""
        job = self.history.get(job_id) if job_id else self.history.latest()
        return m.JobStatusReply(job=self._live(job) if job else None)

    def stats(self) -> m.TrainingStatsReply:
        """The seed manual's training statistics."""
        verdict = self._readiness()
        active = self.history.active()
        current = None
        if active is not None:
            live = self._live(active)
            current = {"job_id": live.job_id, "status": live.status, "progress_pct": live.progress_pct}
        reason = (
            verdict.reason
            if active is None or not verdict.ready
            else f"Training in progress: job {active.job_id}"
        )
        return m.TrainingStatsReply(
            current_job=current,
            history=self.history.summary(),
            data_buffer=verdict.data_buffer,
            ready_to_train=verdict.ready and active is None,
            ready_reason=reason,
            config={
                "training_days": self._settings.training_days,
                "min_records_threshold": self._settings.min_records,
            },
            disk=self._disk(),
        )

    def cancel(self) -> m.CancelReply:
        """Ask the running job to stop (SIGTERM); it is killed after the grace period."""
        active = self.history.active()
        run = self.running
        if active is None or run is None:
            return m.CancelReply(success=False, message="No training job is running")
        if run.cancel_deadline is None:
            run.cancel_deadline = self._clock() + self._settings.cancel_grace_s
            run.proc.send_signal(signal.SIGTERM)
            log.info("job %s: cancel requested", active.job_id)
        return m.CancelReply(success=True, message="Training job marked as cancelled", job_id=active.job_id)

    # --- job events and the process -------------------------------------------------

    def receive(self) -> None:
        """Apply every job event waiting in the inbox."""
        for event in self._inbox():
            self._apply(event)

    def _apply(self, event: m.JobMessage) -> None:
        job = self.history.get(event.job_id)
        if job is None or job.status not in m.ACTIVE_JOB_STATES:
            return
        match event:
            case m.JobStarted(records=records):
                self.history.update(event.job_id, records=records, stage="training")
            case m.JobGating():
                self.history.update(event.job_id, stage="gating")
            case m.JobProgress(progress_pct=pct):
                # Progress is not persisted on every batch: a restart fails the job anyway.
                self.history.update(event.job_id, persist=False, progress_pct=max(job.progress_pct, pct))
            case m.JobFinished() | m.JobFailed():
                # Recorded when the process exits: its exit code has the last word.
                if self.running is not None and self.running.job_id == event.job_id:
                    self.running.final = event

    def gating(self) -> str | None:
        """The id of the job whose candidate the gate is scoring now, if any."""
        active = self.history.active()
        return active.job_id if active is not None and active.stage == "gating" else None

    def tick(self) -> None:
        """Kill a job past its cancel grace period; finish the job whose process exited;
        retry a history save that failed."""
        now = self._clock()
        if self.history.unsaved and now - self._save_tried >= SAVE_RETRY_S:
            self._save_tried = now
            self.history.save_if_unsaved()
        run = self.running
        if run is None:
            return
        code = run.proc.poll()
        if code is None:
            if run.cancel_deadline is not None and self._clock() > run.cancel_deadline:
                log.warning(
                    "job %s ignored cancel for %.0f s: killing", run.job_id, self._settings.cancel_grace_s
                )
                run.proc.kill()
            return
        self.receive()  # the last events may have arrived after the previous read
        self._finish(run, code)
        self.running = None

    def stop(self) -> None:
        """Terminate a running job (killing it after the grace period) and record it failed."""
        run = self.running
        if run is None or run.proc.poll() is not None:
            return
        run.proc.terminate()
        try:
            run.proc.wait(self._settings.cancel_grace_s)
        except subprocess.TimeoutExpired:
            run.proc.kill()
            run.proc.wait()
        self.history.update(
            run.job_id,
            status="failed",
            completed_at=iso(self._wall()),
            error="the daemon stopped while the job ran",
        )
        self.running = None

    def _start(self, job_id: str, epochs: int, incremental: bool) -> None:
        try:
            proc = self._spawn(job_id, epochs, incremental)
        except OSError as exc:
            # Left queued, the job would block every later trigger.
            self.history.update(
                job_id,
                status="failed",
                completed_at=iso(self._wall()),
                error=f"the training process could not start: {exc}",
            )
            raise
        self.running = _Running(job_id, proc, started=self._clock())
        self.history.update(job_id, status="running", started_at=iso(self._wall()))
        log.info(
            "job %s started in pid %d (%d epochs, incremental=%s)", job_id, proc.pid, epochs, incremental
        )

    def _finish(self, run: _Running, code: int) -> None:
        changes: dict[str, object] = {
            "stage": None,
            "completed_at": iso(self._wall()),
            "duration_seconds": round(self._clock() - run.started, 1),
        }
        final = run.final
        cancelled = (
            run.cancel_deadline is not None
            or code == exitcodes.CANCELLED
            or (isinstance(final, m.JobFailed) and final.cancelled)
        )
        match final:
            case m.JobFinished() if code == exitcodes.OK:
                changes.update(
                    status="completed",
                    progress_pct=100,
                    model_path=final.model_path,
                    validation=final.validation,
                    notes=list(final.notes),
                    records=final.records,
                )
            case _ if cancelled:
                changes.update(status="cancelled", error="cancelled on request")
            case m.JobFailed(error=error):
                changes.update(status="failed", error=error)
            case _:
                changes.update(status="failed", error=exit_text(code, self._memory_limit_mb))
        job = self.history.get(run.job_id)
        if job is None:  # only a hand-edited history loses a running job
            log.error("job %s vanished from the history while it ran", run.job_id)
            return
        done = msgspec.structs.replace(job, **changes)
        if done.status == "completed" and isinstance(final, m.JobFinished):
            # Completed whatever the verdict: a rejected candidate is simply not served.
            promoted, gate = self.promoter.judge(done, final.gate)
            done = msgspec.structs.replace(done, promoted=promoted, gate=gate)
        self.history.put(done)
        log.info("job %s %s (%s)", done.job_id, done.status, done.model_path or done.error or "")

    def _live(self, job: m.JobStatus) -> m.JobStatus:
        """The job with ``duration_seconds`` counted up to now while it runs."""
        run = self.running
        if run is not None and run.job_id == job.job_id and job.status == "running":
            return msgspec.structs.replace(job, duration_seconds=round(self._clock() - run.started, 1))
        return job

    def _new_job_id(self) -> str:
        base = "train_" + self._wall().astimezone(UTC).strftime("%Y%m%d_%H%M%S")
        job_id, n = base, 1
        while self.history.get(job_id) is not None:
            n += 1
            job_id = f"{base}_{n}"
        return job_id


# How a process that an allocation failed in C (not in Python) may end.
_CRASH_SIGNALS = frozenset({signal.SIGKILL, signal.SIGABRT, signal.SIGSEGV, signal.SIGBUS})


def exit_text(code: int, memory_limit_mb: int | None = None) -> str:
    """Why a job process that reported no result ended, from its exit code.

    A crash by a signal may be a native allocation failing under the memory cap (or the
    kernel's OOM killer): the cap is then named, as a possible cause.
    """
    if code < 0:
        sig = signal.Signals(-code)
        text = f"the training process was killed by {sig.name}"
        if memory_limit_mb is not None and sig in _CRASH_SIGNALS:
            text += f" (it may have run out of memory: limit {memory_limit_mb} MB)"
        return text
    return f"the training process exited with code {code} before reporting a result"
