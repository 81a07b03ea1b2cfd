"""The training-job state machine with a fake process, a fake inbox and fake clocks."""

from __future__ import annotations

import signal
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ipc import messages as m
from nordiqd.config import TrainingConfig
from nordiqd.promotion.log import PromotionLog
from nordiqd.retraining import PromotionConfig
from nordiqd.training.history import JobHistory
from nordiqd.training.jobs import TrainingJobs
from nordiqd.training.promoter import Promoter
from nordiqd.training.readiness import Readiness
from supervisor import exitcodes

READY = Readiness(True, "Ready to train", {"total_records": 5000})
VALIDATION = {"loss": 0.5, "mase_model": 0.8, "mase_seasonal_naive": 1.0}


class FakeProcess:
    """A job process whose exit the test decides; ``kill`` ends it at once."""

    def __init__(self, pid: int, obeys_term: bool = True) -> None:
        self.pid = pid
        self.code: int | None = None
        self.signals: list[int] = []
        self.obeys_term = obeys_term

    def poll(self) -> int | None:
        return self.code

    def send_signal(self, sig: int) -> None:
        self.signals.append(sig)

    def terminate(self) -> None:
        self.signals.append(signal.SIGTERM)
        if self.obeys_term:
            self.code = exitcodes.CANCELLED

    def kill(self) -> None:
        self.signals.append(signal.SIGKILL)
        self.code = -signal.SIGKILL

    def wait(self, timeout: float | None = None) -> int:
        if self.code is None:
            raise subprocess.TimeoutExpired("job", timeout or 0.0)
        return self.code


class World:
    """The state machine's surroundings: clocks, inbox, spawned processes, readiness."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.now = 100.0
        self.wall = datetime(2025, 1, 30, 14, 30, 22, tzinfo=UTC)
        self.inbox: list[m.JobMessage] = []
        self.spawned: list[tuple[str, int, bool]] = []
        self.procs: list[FakeProcess] = []
        self.readiness = READY
        self.obeys_term = True

    def spawn(self, job_id: str, epochs: int, incremental: bool) -> FakeProcess:
        self.spawned.append((job_id, epochs, incremental))
        self.procs.append(FakeProcess(1000 + len(self.procs), self.obeys_term))
        return self.procs[-1]

    def take(self) -> list[m.JobMessage]:
        taken, self.inbox = self.inbox, []
        return taken

    def jobs(self) -> TrainingJobs:
        return TrainingJobs(
            JobHistory(self.path),
            TrainingConfig(training_days=7, min_records=3000, cancel_grace_s=10.0),
            spawn=self.spawn,
            inbox=self.take,
            readiness=lambda: self.readiness,
            promoter=Promoter(
                PromotionLog(self.path.parent), PromotionConfig(), str(self.path.parent / "models")
            ),
            clock=lambda: self.now,
            wall=lambda: self.wall,
        )

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.wall += timedelta(seconds=seconds)


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path / "training_jobs.json")


def started(world: World, jobs: TrainingJobs, epochs: int = 5) -> str:
    reply = jobs.trigger(epochs, incremental=True)
    assert reply.success and reply.job_id is not None, reply
    return reply.job_id


def test_trigger_queues_and_starts_a_job(world: World) -> None:
    jobs = world.jobs()
    reply = jobs.trigger(10, incremental=True)
    assert reply == m.TriggerReply(
        success=True,
        job_id="train_20250130_143022",
        status="queued",
        message="Training started in background",
        epochs=10,
        incremental=True,
    )
    assert world.spawned == [("train_20250130_143022", 10, True)]
    job = jobs.status(None).job
    assert job is not None and job.status == "running"
    assert job.queued_at == job.started_at == "2025-01-30T14:30:22"


def test_trigger_while_running_is_rejected(world: World) -> None:
    jobs = world.jobs()
    job_id = started(world, jobs)
    reply = jobs.trigger(1, incremental=False)
    assert not reply.success and reply.status == "rejected" and reply.job_id == job_id
    assert reply.error == f"Training already in progress: job {job_id} is running"
    assert len(world.spawned) == 1


@pytest.mark.parametrize("epochs", [0, 1001])
def test_epochs_out_of_range_are_rejected(world: World, epochs: int) -> None:
    reply = world.jobs().trigger(epochs, incremental=True)
    assert reply.status == "rejected" and reply.error == f"epochs must be 1 to 1000, not {epochs}"
    assert world.spawned == []


def test_too_little_data_is_rejected_with_the_reason(world: World) -> None:
    world.readiness = Readiness(False, "Insufficient data: 1 < 3000 records", {"total_records": 1})
    jobs = world.jobs()
    reply = jobs.trigger(5, incremental=True)
    assert reply.status == "rejected" and reply.error == "Insufficient data: 1 < 3000 records"
    assert jobs.status(None).job is None and world.spawned == []


def test_progress_events_raise_progress_and_never_lower_it(world: World) -> None:
    jobs = world.jobs()
    job_id = started(world, jobs)
    seen = []
    for pct in (10.0, 42.5, 30.0):
        world.inbox.append(m.JobProgress(job_id=job_id, progress_pct=pct))
        jobs.receive()
        job = jobs.status(job_id).job
        assert job is not None
        seen.append(job.progress_pct)
    assert seen == [10.0, 42.5, 42.5]


def test_status_counts_duration_up_while_running(world: World) -> None:
    jobs = world.jobs()
    job_id = started(world, jobs)
    world.advance(12.34)
    job = jobs.status(job_id).job
    assert job is not None and job.duration_seconds == 12.3


def test_finished_job_is_completed_with_its_model(world: World) -> None:
    jobs = world.jobs()
    job_id = started(world, jobs)
    world.inbox.append(m.JobStarted(job_id=job_id, records=4800))
    jobs.receive()
    assert jobs.status(job_id).job.records == 4800  # type: ignore[union-attr]
    world.advance(60.0)
    # The final event is still in flight when the process exits: tick reads it first.
    world.inbox.append(
        m.JobFinished(
            job_id=job_id, model_path="models/tft_model_x", records=4900, validation=VALIDATION, notes=["n"]
        )
    )
    world.procs[0].code = exitcodes.OK
    jobs.tick()
    job = jobs.status(job_id).job
    assert job is not None and job.status == "completed" and job.progress_pct == 100
    assert job.model_path == "models/tft_model_x" and job.error is None
    assert job.validation == VALIDATION and job.notes == ["n"] and job.records == 4900
    assert job.duration_seconds == 60.0 and job.completed_at == "2025-01-30T14:31:22"
    assert jobs.running is None and jobs.history.summary()["successful"] == 1


def test_killed_without_a_final_event_fails_naming_the_signal(world: World) -> None:
    jobs = world.jobs()
    job_id = started(world, jobs)
    world.procs[0].code = -signal.SIGKILL
    jobs.tick()
    job = jobs.status(job_id).job
    assert job is not None and job.status == "failed" and job.model_path is None
    assert job.error == "the training process was killed by SIGKILL"
    assert started(world, jobs) != job_id  # the next job may run


def test_a_finished_event_with_a_failing_exit_is_a_failure(world: World) -> None:
    jobs = world.jobs()
    job_id = started(world, jobs)
    world.inbox.append(m.JobFinished(job_id=job_id, model_path="models/x", records=1, validation=VALIDATION))
    world.procs[0].code = 1
    jobs.tick()
    job = jobs.status(job_id).job
    assert job is not None and job.status == "failed" and job.model_path is None
    assert job.error == "the training process exited with code 1 before reporting a result"


def test_a_failed_event_gives_its_error(world: World) -> None:
    jobs = world.jobs()
    job_id = started(world, jobs)
    world.inbox.append(m.JobFailed(job_id=job_id, error="ValueError: no rows"))
    world.procs[0].code = exitcodes.FAILURE
    jobs.tick()
    job = jobs.status(job_id).job
    assert job is not None and job.status == "failed" and job.error == "ValueError: no rows"


def test_cancel_sends_sigterm_and_ends_cancelled_without_a_model(world: World) -> None:
    jobs = world.jobs()
    job_id = started(world, jobs)
    assert jobs.cancel() == m.CancelReply(
        success=True, message="Training job marked as cancelled", job_id=job_id
    )
    assert world.procs[0].signals == [signal.SIGTERM]
    jobs.cancel()  # a second request signals no more
    assert world.procs[0].signals == [signal.SIGTERM]
    world.inbox.append(m.JobFailed(job_id=job_id, error="cancelled on request", cancelled=True))
    world.procs[0].code = exitcodes.CANCELLED
    jobs.tick()
    job = jobs.status(job_id).job
    assert job is not None and job.status == "cancelled" and job.model_path is None
    assert jobs.cancel().success is False


def test_a_job_ignoring_cancel_is_killed_after_the_grace_period(world: World) -> None:
    jobs = world.jobs()
    job_id = started(world, jobs)
    jobs.cancel()
    world.advance(9.0)
    jobs.tick()
    assert world.procs[0].signals == [signal.SIGTERM]
    world.advance(2.0)
    jobs.tick()
    assert world.procs[0].signals == [signal.SIGTERM, signal.SIGKILL]
    jobs.tick()
    job = jobs.status(job_id).job
    assert job is not None and job.status == "cancelled" and job.error == "cancelled on request"


def test_exit_code_cancelled_maps_to_cancelled(world: World) -> None:
    jobs = world.jobs()
    job_id = started(world, jobs)
    world.procs[0].code = exitcodes.CANCELLED  # stopped by a SIGTERM from elsewhere
    jobs.tick()
    job = jobs.status(job_id).job
    assert job is not None and job.status == "cancelled"


def test_events_for_other_or_finished_jobs_are_ignored(world: World) -> None:
    jobs = world.jobs()
    job_id = started(world, jobs)
    world.procs[0].code = -signal.SIGKILL
    jobs.tick()
    world.inbox += [m.JobProgress(job_id=job_id, progress_pct=99.0), m.JobStarted(job_id="nope", records=1)]
    jobs.receive()
    job = jobs.status(job_id).job
    assert job is not None and job.status == "failed" and job.progress_pct == 0


def test_stats_while_running(world: World) -> None:
    jobs = world.jobs()
    job_id = started(world, jobs)
    world.inbox.append(m.JobProgress(job_id=job_id, progress_pct=25.0))
    jobs.receive()
    stats = jobs.stats()
    assert stats.current_job == {"job_id": job_id, "status": "running", "progress_pct": 25.0}
    assert stats.ready_to_train is False and stats.ready_reason == f"Training in progress: job {job_id}"
    assert stats.config == {"training_days": 7, "min_records_threshold": 3000}
    assert stats.data_buffer == {"total_records": 5000}


def test_job_ids_in_the_same_second_stay_unique(world: World) -> None:
    jobs = world.jobs()
    first = started(world, jobs)
    world.procs[0].code = 0
    jobs.tick()
    assert started(world, jobs) == first + "_2"


def test_a_spawn_that_fails_leaves_no_active_job(world: World) -> None:
    def broken(job_id: str, epochs: int, incremental: bool) -> FakeProcess:
        raise OSError("no python")

    world.spawn = broken  # type: ignore[method-assign]
    jobs = world.jobs()
    with pytest.raises(OSError):
        jobs.trigger(5, incremental=True)
    job = jobs.status(None).job
    assert job is not None and job.status == "failed" and "no python" in (job.error or "")
    assert jobs.history.active() is None


def test_stop_terminates_the_running_job_and_records_it_failed(world: World) -> None:
    world.obeys_term = False
    jobs = world.jobs()
    job_id = started(world, jobs)
    jobs.stop()
    assert world.procs[0].signals == [signal.SIGTERM, signal.SIGKILL]
    job = jobs.status(job_id).job
    assert job is not None and job.status == "failed"
    assert job.error == "the daemon stopped while the job ran"


def test_history_survives_a_new_instance(world: World) -> None:
    jobs = world.jobs()
    done = started(world, jobs)
    world.inbox.append(m.JobFinished(job_id=done, model_path="models/a", records=1, validation=VALIDATION))
    world.procs[0].code = 0
    jobs.tick()
    world.advance(1.0)
    interrupted = started(world, jobs)
    # A new trainer process: the finished job is kept, the one it was running is failed.
    again = world.jobs()
    first, second = again.status(done).job, again.status(interrupted).job
    assert first is not None and first.status == "completed" and first.model_path == "models/a"
    assert second is not None and second.status == "failed"
    assert second.error == "the trainer process restarted while this job was running"
    assert again.history.summary()["total_trainings"] == 2
    assert JobHistory(world.path).jobs == again.history.jobs  # the failure was persisted


def test_a_history_that_cannot_be_saved_is_kept_and_saved_once_it_can(world: World) -> None:
    jobs = world.jobs()
    world.path.mkdir()  # a folder where the file goes: every save fails, as on a full disk
    job_id = started(world, jobs)  # the job starts although its state cannot be written
    world.procs[0].code = exitcodes.FAILURE
    jobs.tick()
    job = jobs.status(job_id).job
    assert job is not None and job.status == "failed" and jobs.history.unsaved
    world.path.rmdir()  # the space is back
    world.advance(1.0)
    jobs.tick()
    assert not world.path.exists()  # retried every few seconds, not on every tick
    world.advance(5.0)
    jobs.tick()
    assert not jobs.history.unsaved
    assert JobHistory(world.path).get(job_id) == job
