"""The trainer role as a thin adapter: its requests reach the state machine; its metrics."""

from __future__ import annotations

from pathlib import Path

import pytest

from ipc import messages as m
from nordiqd.config import load
from nordiqd.roles.trainer import TrainerRole
from tests.unit.test_training_jobs import World


@pytest.fixture
def role(tmp_path: Path) -> tuple[TrainerRole, World]:
    world = World(tmp_path / "training_jobs.json")
    trainer = TrainerRole(load(None))
    trainer.jobs = world.jobs()  # what init() builds, without sockets or processes
    return trainer, world


def test_requests_reach_the_state_machine(role: tuple[TrainerRole, World]) -> None:
    trainer, world = role
    reply = trainer.handle(m.TriggerTraining(epochs=3, incremental=False))
    assert isinstance(reply, m.TriggerReply) and reply.success and world.spawned[0][1:] == (3, False)
    status = trainer.handle(m.TrainingStatusRequest())
    assert isinstance(status, m.JobStatusReply) and status.job is not None
    assert status.job.job_id == reply.job_id and status.job.status == "running"
    stats = trainer.handle(m.TrainingStatsRequest())
    assert isinstance(stats, m.TrainingStatsReply) and stats.ready_to_train is False
    cancel = trainer.handle(m.CancelTraining())
    assert isinstance(cancel, m.CancelReply) and cancel.job_id == reply.job_id
    world.procs[0].code = 3
    trainer.tick(0.0)
    done = trainer.handle(m.TrainingStatusRequest(job_id=reply.job_id))
    assert isinstance(done, m.JobStatusReply) and done.job is not None and done.job.status == "cancelled"


def test_a_request_for_another_role_is_a_bad_request(role: tuple[TrainerRole, World]) -> None:
    trainer, _ = role
    reply = trainer.handle(m.AlertsRequest())  # type: ignore[arg-type]
    assert isinstance(reply, m.ErrorReply) and reply.kind == "bad_request"
    assert "AlertsRequest" in reply.message


def test_metrics_name_the_last_state_and_count_the_results(role: tuple[TrainerRole, World]) -> None:
    trainer, world = role
    assert 'nordiqd_training_job_state{state="none"} 1' in trainer.metrics_text()
    trainer.handle(m.TriggerTraining(epochs=1))
    world.procs[0].code = -9
    trainer.tick(0.0)
    trainer.handle(m.TriggerTraining(epochs=1))
    world.inbox.append(m.JobProgress(job_id=trainer.jobs.history.jobs[-1].job_id, progress_pct=40.0))
    trainer.jobs.receive()
    lines = trainer.metrics_text().splitlines()
    assert [ln for ln in lines if ln.startswith("nordiqd_training_job_state{")] == [
        'nordiqd_training_job_state{state="none"} 0',
        'nordiqd_training_job_state{state="queued"} 0',
        'nordiqd_training_job_state{state="running"} 1',
        'nordiqd_training_job_state{state="completed"} 0',
        'nordiqd_training_job_state{state="failed"} 0',
        'nordiqd_training_job_state{state="cancelled"} 0',
    ]
    assert "nordiqd_training_progress_pct 40" in lines
    assert [ln for ln in lines if ln.startswith("nordiqd_training_jobs_total{")] == [
        'nordiqd_training_jobs_total{result="completed"} 0',
        'nordiqd_training_jobs_total{result="failed"} 1',
        'nordiqd_training_jobs_total{result="cancelled"} 0',
    ]
