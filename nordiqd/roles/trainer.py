"""The trainer role: one training job at a time, each in a fresh subprocess.

How it runs: requests (trigger, status, stats, cancel) arrive on the service ROUTER;
the job subprocess reports ``JobEvent``s on a PULL socket; ``tick`` reaps the subprocess,
enforces the cancel grace period and keeps ``duration_seconds`` live. Every state change
is persisted to ``state/training_jobs.json``. How it stops: ``close()`` terminates a
running job (it is recorded as failed: the daemon stopped) and closes the sockets.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from typing import Any

import msgspec
import zmq

from ipc import codec
from ipc import messages as m
from ipc.sockets import make_socket
from nordiqd.promtext import family
from nordiqd.roles.base import ServiceRole
from nordiqd.training import readiness
from nordiqd.training.history import JobHistory, now_iso
from supervisor import exitcodes

log = logging.getLogger(__name__)



class _Running:
    """The live subprocess of the active job."""

    def __init__(self, job_id: str, proc: subprocess.Popen[bytes]) -> None:
        self.job_id = job_id
        self.proc = proc
        self.started = time.monotonic()
        self.cancel_deadline: float | None = None
        self.final: m.JobEvent | None = None


class TrainerRole(ServiceRole[m.TrainerRequest]):
    """Owns the training-job queue and history."""

    name = "trainer"
    requests = codec.trainer_requests

    def init(self, ctx: zmq.Context[zmq.Socket[bytes]]) -> None:
        super().init(ctx)
        self.history = JobHistory(os.path.join(self.config.state_dir, "training_jobs.json"))
        for job_id in self.history.fail_interrupted():
            log.warning("job %s was running when the trainer stopped: marked failed", job_id)
        self._events_endpoint = self.config.endpoint("trainer_jobs")
        self.events = make_socket(ctx, zmq.PULL, bind=self._events_endpoint)
        self.running: _Running | None = None

    def sockets(self) -> list[zmq.Socket[bytes]]:
        return [self.service, self.events]

    def on_readable(self, sock: zmq.Socket[bytes]) -> None:
        if sock is self.events:
            self._drain_events()
        else:
            super().on_readable(sock)

    # --- requests ---------------------------------------------------------------

    def handle(self, msg: m.TrainerRequest) -> m.ServiceReply | None:
        match msg:
            case m.TriggerTraining(epochs=epochs, incremental=incremental):
                return self._trigger(epochs, incremental)
            case m.TrainingStatusRequest(job_id=job_id):
                job = self.history.get(job_id) if job_id else self.history.latest()
                return m.JobStatusReply(job=self._live(job) if job else None)
            case m.TrainingStatsRequest():
                return self._stats()
            case m.CancelTraining():
                return self._cancel()
            case _:
                return super().handle(msg)

    def _trigger(self, epochs: int, incremental: bool) -> m.TriggerReply:
        active = self.history.active()
        if active is not None:
            return m.TriggerReply(
                success=False,
                status="rejected",
                job_id=active.job_id,
                error=f"Training already in progress: job {active.job_id} is {active.status}",
            )
        if not 1 <= epochs <= 1000:
            return m.TriggerReply(
                success=False, status="rejected", error=f"epochs must be 1 to 1000, not {epochs}"
            )
        verdict = readiness.check(self.config.buffer_dir, self.config.training.min_records)
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
                queued_at=now_iso(),
            )
        )
        self._spawn(job_id, epochs, incremental)
        return m.TriggerReply(
            success=True,
            job_id=job_id,
            status="queued",
            message="Training started in background",
            epochs=epochs,
            incremental=incremental,
        )

    def _new_job_id(self) -> str:
        base = "train_" + datetime.now(UTC).strftime("%Y%m%d_%H%M%S")
        job_id, n = base, 1
        while self.history.get(job_id) is not None:
            n += 1
            job_id = f"{base}_{n}"
        return job_id

    def _spawn(self, job_id: str, epochs: int, incremental: bool) -> None:
        argv = [sys.executable, "-m", "nordiqd.training.job", "--job-id", job_id, "--epochs", str(epochs)]
        argv += ["--events", self._events_endpoint, "--parent", str(os.getpid())]
        if incremental:
            argv.append("--incremental")
        config_path = os.environ.get("NORDIQD_CONFIG")
        if config_path:
            argv += ["--config", config_path]
        proc = subprocess.Popen(argv, close_fds=True)
        self.running = _Running(job_id, proc)
        self.history.update(job_id, status="running", started_at=now_iso())
        log.info(
            "job %s started in pid %d (%d epochs, incremental=%s)", job_id, proc.pid, epochs, incremental
        )

    def _cancel(self) -> m.CancelReply:
        active = self.history.active()
        if active is None or self.running is None:
            return m.CancelReply(success=False, message="No training job is running")
        if self.running.cancel_deadline is None:
            self.running.cancel_deadline = time.monotonic() + self.config.training.cancel_grace_s
            self.running.proc.send_signal(signal.SIGTERM)
            log.info("job %s: cancel requested", active.job_id)
        return m.CancelReply(success=True, message="Training job marked as cancelled", job_id=active.job_id)

    def _stats(self) -> m.TrainingStatsReply:
        verdict = readiness.check(self.config.buffer_dir, self.config.training.min_records)
        active = self.history.active()
        current = None
        if active is not None:
            live = self._live(active)
            current = {"job_id": live.job_id, "status": live.status, "progress_pct": live.progress_pct}
        ready = verdict.ready and active is None
        reason = (
            verdict.reason
            if active is None or not verdict.ready
            else f"Training in progress: job {active.job_id}"
        )
        return m.TrainingStatsReply(
            current_job=current,
            history=self.history.summary(),
            data_buffer=verdict.data_buffer,
            ready_to_train=ready,
            ready_reason=reason,
            config={
                "training_days": self.config.training.training_days,
                "min_records_threshold": self.config.training.min_records,
            },
        )

    def _live(self, job: m.JobStatus) -> m.JobStatus:
        """The job with ``duration_seconds`` counted up to now while it runs."""
        if self.running is not None and self.running.job_id == job.job_id and job.status == "running":
            return msgspec.structs.replace(
                job, duration_seconds=round(time.monotonic() - self.running.started, 1)
            )
        return job

    def metrics_text(self) -> str:
        job = self.history.latest()
        state = job.status if job is not None else "none"
        states = ("none", "queued", "running", "completed", "failed", "cancelled")
        summary = self.history.summary()
        return (
            family(
                "nordiqd_training_job_state",
                "gauge",
                "State of the current or last training job.",
                [({"state": s}, float(s == state)) for s in states],
            )
            + family(
                "nordiqd_training_progress_pct",
                "gauge",
                "Progress of the current or last job.",
                [({}, job.progress_pct if job else 0.0)],
            )
            + family(
                "nordiqd_training_jobs_total",
                "counter",
                "Finished training jobs, by result.",
                [
                    ({"result": r}, float(summary[k] or 0))  # type: ignore[arg-type]
                    for r, k in (
                        ("completed", "successful"),
                        ("failed", "failed"),
                        ("cancelled", "cancelled"),
                    )
                ],
            )
        )

    # --- job events and reaping --------------------------------------------------

    def _drain_events(self) -> None:
        for ev in codec.drain(self.events, codec.job):
            job = self.history.get(ev.job_id)
            if job is None or job.status not in ("queued", "running"):
                continue
            match ev.kind:
                case "started":
                    self.history.update(ev.job_id, records=ev.records)
                case "progress":
                    # Progress is not persisted on every batch: a restart fails the job anyway.
                    self.history.update(
                        ev.job_id, persist=False, progress_pct=max(job.progress_pct, ev.progress_pct)
                    )
                case "finished" | "failed":
                    if self.running is not None and self.running.job_id == ev.job_id:
                        self.running.final = ev

    def tick(self, now: float) -> None:
        run = self.running
        if run is None:
            return
        code = run.proc.poll()
        if code is None:
            if run.cancel_deadline is not None and now > run.cancel_deadline:
                log.warning(
                    "job %s ignored cancel for %.0f s: killing",
                    run.job_id,
                    self.config.training.cancel_grace_s,
                )
                run.proc.kill()
            return
        self._drain_events()
        self._finish(run, code)
        self.running = None

    def _finish(self, run: _Running, code: int) -> None:
        job = self.history.get(run.job_id)
        assert job is not None
        ev = run.final
        changes: dict[str, Any] = {
            "completed_at": now_iso(),
            "duration_seconds": round(time.monotonic() - run.started, 1),
        }
        if code == 0 and ev is not None and ev.kind == "finished":
            changes.update(
                status="completed",
                progress_pct=100,
                model_path=ev.model_path,
                validation=ev.validation,
                notes=list(ev.notes),
            )
            if ev.records is not None:
                changes["records"] = ev.records
        elif run.cancel_deadline is not None:
            changes.update(status="cancelled", error="cancelled on request")
        else:
            why = ev.error if ev is not None and ev.error else _exit_text(code)
            changes.update(status="failed", error=why)
        done = self.history.update(run.job_id, **changes)
        log.info("job %s %s (%s)", done.job_id, done.status, done.model_path or done.error or "")

    def close(self) -> None:
        run = self.running
        if run is not None and run.proc.poll() is None:
            run.proc.terminate()
            try:
                run.proc.wait(self.config.training.cancel_grace_s)
            except subprocess.TimeoutExpired:
                run.proc.kill()
                run.proc.wait()
            self.history.update(
                run.job_id,
                status="failed",
                completed_at=now_iso(),
                error="the daemon stopped while the job ran",
            )


def _exit_text(code: int) -> str:
    if code < 0:
        return f"the training process was killed by {signal.Signals(-code).name}"
    if code == exitcodes.CANCELLED:
        return "the training process stopped on request"
    return f"the training process exited with code {code} before reporting a result"
