"""The trainer role: the process adapter around the training-job state machine.

How it runs: requests (trigger, status, stats, cancel, promote, promotions) arrive on the
service ROUTER and job events on a PULL socket from the job subprocess; both go to
``nordiqd.training.jobs.TrainingJobs``, which owns the job states, and ``tick`` lets it
reap the subprocess. Every state change is persisted to ``state/training_jobs.json``,
every promotion decision to ``state/promotions.jsonl``. Every ``CHECK_EVERY_S`` the
``[retrain]`` triggers (``nordiqd.training.retrain``) are checked and a due one starts a
job; when a trigger reads live skill or coverage, the predictor is asked for the
champion's scores (``AccuracyRequest``) at most every ``LIVE_EVERY_S``.
How it stops: ``close()`` terminates a running job (it is recorded as failed: the daemon
stopped) and closes the sockets.
"""

from __future__ import annotations

import logging
import os
import subprocess
from datetime import UTC, datetime

import msgspec
import zmq

from ipc import codec
from ipc import messages as m
from ipc.client import RequestClient, RequestTimeout
from ipc.sockets import make_socket
from nordiqd.config import Config, applying
from nordiqd.diskspace import measure
from nordiqd.model import artifacts
from nordiqd.promotion.log import PromotionLog
from nordiqd.promtext import family
from nordiqd.roles.base import ServiceRole
from nordiqd.training import job_command, memory, readiness
from nordiqd.training.history import JobHistory
from nordiqd.training.jobs import JobProcess, TrainingJobs
from nordiqd.training.promoter import CannotPromote, Promoter, UnknownVersion
from nordiqd.training.readiness import Readiness
from nordiqd.training.retrain import Live, RetrainTriggers, live_scores

log = logging.getLogger(__name__)

CHECK_EVERY_S = 2.0  # how often the [retrain] triggers are checked (wall time)
LIVE_EVERY_S = 5.0  # how often the predictor is asked for live scores, when a trigger needs them
LIVE_TIMEOUT_S = 2.0


class TrainerRole(ServiceRole[m.TrainerRequest]):
    """Serves the training requests and feeds job events to the state machine."""

    name = "trainer"
    requests = codec.trainer_requests

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.retrain = RetrainTriggers(config.retrain, wall=lambda: datetime.now(UTC))
        self._predictor: RequestClient[m.ServiceReply] | None = None
        self._next_check = self._next_live = 0.0
        self._through: int | None = None
        self._refused: str | None = None

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
            promoter=Promoter(
                PromotionLog(self.config.state_dir), self.config.promotion, self.config.models_dir
            ),
        )
        self._predictor = RequestClient(
            ctx, self.config.endpoint("predictor"), codec.service_replies, timeout_s=LIVE_TIMEOUT_S
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
                stats = self.jobs.stats()
                retrain = self.retrain.state(self.jobs.history.latest())
                served = self.jobs.promoter.log.newest()
                retrain["champion"] = artifacts.current_version(self.config.models_dir)
                retrain["last_decision"] = msgspec.to_builtins(served) if served else None
                return msgspec.structs.replace(stats, retrain=retrain)
            case m.CancelTraining():
                return self.jobs.cancel()
            case m.PromoteModel(version=version):
                return self._promote(version)
            case m.PromotionsRequest():
                entries = self.jobs.promoter.log.entries()[::-1]
                return m.JsonReply(body=msgspec.json.encode({"promotions": entries}))
            case _:
                return super().handle(msg)

    def tick(self, now: float) -> None:
        self.jobs.tick()
        if now >= self._next_check:
            self._next_check = now + CHECK_EVERY_S
            self._check_triggers(now)

    def close(self) -> None:
        self.jobs.stop()
        if self._predictor is not None:
            self._predictor.close()
        super().close()

    def _promote(self, version: str) -> m.ServiceReply:
        gating = self.jobs.gating()
        if gating is not None:
            why = f"the gate is judging job {gating}'s candidate: try again after it"
            return m.ErrorReply(kind="conflict", message=why)
        try:
            entry = self.jobs.promoter.force(version)
        except UnknownVersion as exc:
            return m.ErrorReply(kind="not_found", message=str(exc))
        except CannotPromote as exc:
            return m.ErrorReply(kind="conflict", message=str(exc))
        return m.JsonReply(body=msgspec.json.encode(entry))

    def _check_triggers(self, now: float) -> None:
        if self.retrain.wants_live and now >= self._next_live:
            self._next_live = now + LIVE_EVERY_S
            self.retrain.live = self._live_scores()
        settings = self.config.retrain
        last = self.jobs.history.latest()
        # The buffer's footers are read only when the data trigger needs the count.
        total = (
            int(self._readiness().data_buffer.get("total_records", 0)) if settings.min_new_records else None
        )
        trigger = self.retrain.due(last, total)
        if trigger is None:
            return
        reply = self.jobs.trigger(settings.epochs, settings.incremental, trigger)
        if reply.success:
            self.retrain.started(trigger)
            log.info("retrain: %s trigger started job %s", trigger, reply.job_id)
            return
        refused = f"{trigger} fired: no job started: {reply.error}"
        if refused != self._refused:  # said once, not every check while the data is short
            log.info("retrain: %s", refused)
        self._refused = self.retrain.waiting = refused

    def _live_scores(self) -> Live:
        """The champion's live scores over the trigger window, from the predictor."""
        settings = self.config.retrain
        champion = artifacts.current_version(self.config.models_dir)
        window = int(settings.skill_window_hours * 3600)
        since = self._through - window if self._through is not None else None
        if self._predictor is None:
            return Live(version=champion, error="no connection to the predictor")
        try:
            reply = self._predictor.request(m.AccuracyRequest(since=since))
        except RequestTimeout as exc:
            return Live(version=champion, error=f"the predictor did not answer: {exc}")
        if not isinstance(reply, m.JsonReply):
            return Live(version=champion, error=f"the predictor answered {type(reply).__name__}")
        report = msgspec.json.decode(reply.body)
        through = report.get("scored_through")
        self._through = int(datetime.fromisoformat(through).timestamp()) if through else None
        slack = self.config.accuracy.issue_every_s + self.config.model.step_seconds
        return live_scores(report, champion, since, slack)

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
                "nordiqd_promotions_total",
                "counter",
                "Promotion decisions, by decision (rolled_back: rollbacks).",
                [({"decision": d}, float(n)) for d, n in self.jobs.promoter.log.counts().items()],
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
