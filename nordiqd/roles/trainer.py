"""The trainer role: the process adapter around the training-job state machine.

How it runs: requests (trigger, status, stats, cancel) arrive on the service ROUTER and
job events on a PULL socket from the job subprocess; both go to
``nordiqd.training.jobs.TrainingJobs``, which owns the job states, and ``tick`` lets it
reap the subprocess. Every state change is persisted to ``state/training_jobs.json``.
How it stops: ``close()`` terminates a running job (it is recorded as failed: the daemon
stopped) and closes the sockets.
"""

from __future__ import annotations

import logging
import os
import subprocess

import zmq

from ipc import codec
from ipc import messages as m
from ipc.sockets import make_socket
from nordiqd.config import applying
from nordiqd.diskspace import measure
from nordiqd.promtext import family
from nordiqd.roles.base import ServiceRole
from nordiqd.training import job_command, memory, readiness
from nordiqd.training.history import JobHistory
from nordiqd.training.jobs import JobProcess, TrainingJobs
from nordiqd.training.readiness import Readiness

log = logging.getLogger(__name__)


class TrainerRole(ServiceRole[m.TrainerRequest]):
    """Serves the training requests and feeds job events to the state machine."""

    name = "trainer"
    requests = codec.trainer_requests

    def init(self, ctx: zmq.Context[zmq.Socket[bytes]]) -> None:
        super().init(ctx)
        self._events_endpoint = self.config.endpoint("trainer_jobs")
        with applying("endpoints.trainer_jobs", catch=(zmq.ZMQError,)):
            self.events = make_socket(ctx, zmq.PULL, bind=self._events_endpoint)
        self.memory_limit_mb = memory.limit_mb(self.config.training.max_memory_mb)
        log.info("training jobs are capped at %d MB ([training] max_memory_mb)", self.memory_limit_mb)
        self.jobs = TrainingJobs(
            JobHistory(os.path.join(self.config.state_dir, "training_jobs.json")),
            self.config.training,
            spawn=self._spawn,
            inbox=lambda: codec.drain(self.events, codec.job),
            readiness=self._readiness,
            disk=self._disk,
            memory_limit_mb=self.memory_limit_mb,
        )

    def sockets(self) -> list[zmq.Socket[bytes]]:
        return [self.service, self.events]

    def on_readable(self, sock: zmq.Socket[bytes]) -> None:
        if sock is self.events:
            self.jobs.receive()
        else:
            super().on_readable(sock)

    def handle(self, msg: m.TrainerRequest) -> m.ServiceReply | None:
        match msg:
            case m.TriggerTraining(epochs=epochs, incremental=incremental):
                return self.jobs.trigger(epochs, incremental)
            case m.TrainingStatusRequest(job_id=job_id):
                return self.jobs.status(job_id)
            case m.TrainingStatsRequest():
                return self.jobs.stats()
            case m.CancelTraining():
                return self.jobs.cancel()
            case _:
                return super().handle(msg)

    def tick(self, now: float) -> None:
        self.jobs.tick()

    def close(self) -> None:
        self.jobs.stop()
        super().close()

    def _spawn(self, job_id: str, epochs: int, incremental: bool) -> JobProcess:
        argv = job_command.command(
            job_id,
            epochs,
            incremental,
            events=self._events_endpoint,
            parent=os.getpid(),
            config=os.environ.get("NORDIQD_CONFIG"),
            max_memory_mb=self.memory_limit_mb,
        )
        return subprocess.Popen(argv, close_fds=True)

    def _disk(self) -> m.DiskSpace | None:
        try:
            return measure(self.config.daemon.data_dir, self.config.daemon.disk_free_warn_mb << 20)
        except OSError:
            return None

    def _readiness(self) -> Readiness:
        return readiness.check(self.config.buffer_dir, self.config.training.min_records)

    def metrics_text(self) -> str:
        history = self.jobs.history
        last = history.latest()
        state = last.status if last is not None else "none"
        return (
            family(
                "nordiqd_training_job_state",
                "gauge",
                "State of the current or last training job.",
                [({"state": s}, float(s == state)) for s in ("none", *m.JOB_STATES)],
            )
            + family(
                "nordiqd_training_progress_pct",
                "gauge",
                "Progress of the current or last job.",
                [({}, last.progress_pct if last else 0.0)],
            )
            + family(
                "nordiqd_training_jobs_total",
                "counter",
                "Finished training jobs, by result.",
                [
                    ({"result": s}, float(history.count(s)))
                    for s in m.JOB_STATES
                    if s in m.TERMINAL_JOB_STATES
                ],
            )
        )
