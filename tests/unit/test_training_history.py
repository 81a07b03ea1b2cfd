"""Job states and the persisted history: one set of names, the seed manual's shape."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from ipc import messages as m
from nordiqd.training.history import JobHistory

SEED_KEYS = [
    "job_id",
    "status",
    "progress_pct",
    "epochs",
    "incremental",
    "started_at",
    "completed_at",
    "duration_seconds",
    "model_path",
    "error",
]
PAUSED = b'{"job_id": "x", "status": "paused", "progress_pct": 0, "epochs": 1, "incremental": true}'


def test_active_and_terminal_states_split_every_state() -> None:
    assert m.ACTIVE_JOB_STATES == {"queued", "running"}
    assert m.TERMINAL_JOB_STATES == {"completed", "failed", "cancelled"}
    assert set(m.JOB_STATES) == m.ACTIVE_JOB_STATES | m.TERMINAL_JOB_STATES


def test_a_job_encodes_the_seed_fields_first_in_the_seed_order() -> None:
    job = m.JobStatus(job_id="train_1", status="running", progress_pct=65, epochs=10, incremental=True)
    body = msgspec.json.decode(msgspec.json.encode(job))
    assert list(body)[: len(SEED_KEYS)] == SEED_KEYS and body["status"] == "running"


def test_an_unknown_state_is_not_a_job() -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(PAUSED, type=m.JobStatus)


def test_history_counts_and_summarises(tmp_path: Path) -> None:
    history = JobHistory(tmp_path / "jobs.json")
    for i, state in enumerate(("completed", "failed", "completed", "running")):
        history.add(
            m.JobStatus(
                job_id=f"j{i}", status=state, progress_pct=0, epochs=1, incremental=False, started_at=f"t{i}"
            )
        )
    assert history.count("completed") == 2 and history.count("cancelled") == 0
    assert history.summary() == {
        "total_trainings": 3,
        "successful": 2,
        "failed": 1,
        "cancelled": 0,
        "last_training": "t3",
    }
    assert history.active() is not None and history.active().job_id == "j3"  # type: ignore[union-attr]
    assert JobHistory(tmp_path / "jobs.json").jobs == history.jobs


def test_an_unreadable_history_is_kept_aside(tmp_path: Path) -> None:
    path = tmp_path / "jobs.json"
    path.write_bytes(b"[" + PAUSED + b"]")
    assert JobHistory(path).jobs == []
    assert not path.exists() and len(list(tmp_path.glob("jobs.broken-*"))) == 1
