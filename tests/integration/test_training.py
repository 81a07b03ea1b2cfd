"""The seed manual's training workflow against the real daemon, with a tiny real TFT."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.fleetdata import TINY_MODEL, backfill
from tests.harness import Daemon, alive, wait_for

# A verbatim copy of the seed manual (the manual whose scripts must run unchanged);
# tests/unit/test_seed_copy.py checks it is still byte for byte the original.
SEED = Path(__file__).resolve().parents[1] / "data" / "seed_manual.txt"


def wait_job(d: Daemon, job_id: str, states: tuple[str, ...], timeout: float = 240.0) -> dict:  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = d.get(f"/admin/training-status?job_id={job_id}").json()
        if job["status"] in states:
            return job  # type: ignore[no-any-return]
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} not in {states} after {timeout} s: {job}\n{d.log_text()[-3000:]}")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A daemon with two days of an 8-server fleet, tiny model settings."""
    from tests.harness import FAST_SUPERVISION

    d = Daemon(
        tmp_path_factory.mktemp("training"),
        {
            "supervisor": dict(FAST_SUPERVISION),
            "training": {"min_records": 3000},
            "model": dict(TINY_MODEL),
            # Every candidate serves: these tests follow the job; test_promotion.py the gate.
            "promotion": {"holdout_hours": 6, "tolerance": 10.0, "must_beat_baseline": False},
        },
    )
    d.start()
    d.wait_ready()
    d.sent = backfill(d.endpoint("ingest"), servers=8, days=2.0)  # type: ignore[attr-defined]
    yield d
    d.kill_group()


def job_pid(job_id: str) -> int:
    """The pid of a running training job's subprocess."""
    out = subprocess.run(
        ["pgrep", "-f", f"nordiqd.training.job --job-id {job_id}"], capture_output=True, text=True
    )
    return int(out.stdout.split()[0])


def start_long_job(d: Daemon) -> tuple[str, int]:
    """Start a 500-epoch job and wait until it runs; its id and pid."""
    job_id = str(d.post("/admin/trigger-training?epochs=500").json()["job_id"])
    wait_job(d, job_id, ("running",))
    return job_id, job_pid(job_id)


def test_manual_workflow(trained: Daemon) -> None:
    d = trained
    stats = d.get("/admin/training-stats").json()
    assert stats["ready_to_train"] is True and stats["ready_reason"] == "Ready to train"
    assert stats["data_buffer"]["total_records"] == d.sent  # type: ignore[attr-defined]
    assert stats["config"] == {"training_days": 30, "min_records_threshold": 3000}
    r = d.post("/admin/trigger-training?epochs=25&incremental=true")
    body = r.json()
    assert body["success"] is True and body["status"] == "queued", body
    assert body["epochs"] == 25 and body["incremental"] is True and body["job_id"].startswith("train_")
    job_id = body["job_id"]
    # A second trigger while it runs is refused, in the seed's shape.
    second = d.post("/admin/trigger-training?epochs=1")
    assert second.status_code == 409
    assert second.json()["success"] is False and second.json()["status"] == "rejected"
    assert job_id in second.json()["error"]
    seen: list[int] = []
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        job = d.get("/admin/training-status").json()
        if job["status"] == "running":
            seen.append(job["progress_pct"])
            assert job["duration_seconds"] is not None
        if job["status"] not in ("queued", "running"):
            break
        time.sleep(0.1)
    assert job["status"] == "completed", job
    assert len(set(seen)) >= 3 and seen == sorted(seen), seen
    assert job["progress_pct"] == 100 and job["error"] is None
    assert job["model_path"].startswith("models/tft_model_")
    current = os.path.realpath(d.root / "data" / "models" / "current")
    assert current == str(d.root / "data" / job["model_path"])
    manifest = (Path(current) / "manifest.json").read_text()
    assert '"mase_seasonal_naive"' in manifest and '"records"' in manifest
    assert d.get("/admin/training-stats").json()["history"]["successful"] == 1


def test_cancel_mid_run_publishes_nothing(trained: Daemon) -> None:
    d = trained
    models = d.root / "data" / "models"
    before = sorted(p.name for p in models.iterdir())
    job_id = d.post("/admin/trigger-training?epochs=500&incremental=false").json()["job_id"]
    deadline = time.monotonic() + 120
    while d.get(f"/admin/training-status?job_id={job_id}").json()["progress_pct"] < 1:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    # The job runs below serving: SCHED_IDLE at nice +10, every thread of it.
    pid = job_pid(job_id)
    threads = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    assert len(threads) > 1 and {os.sched_getscheduler(t) for t in threads} == {os.SCHED_IDLE}
    trainer = d.role("trainer").pid
    assert trainer is not None
    assert os.getpriority(os.PRIO_PROCESS, pid) == os.getpriority(os.PRIO_PROCESS, trainer) + 10
    assert os.getsid(pid) == pid != os.getsid(trainer)  # its own session, so its own autogroup
    if Path("/proc/self/autogroup").exists():
        assert Path(f"/proc/{pid}/autogroup").read_text().split()[-1] == "19"
    r = d.post("/admin/cancel-training")
    assert r.json() == {"success": True, "message": "Training job marked as cancelled", "job_id": job_id}
    job = wait_job(d, job_id, ("cancelled", "failed", "completed"), timeout=60)
    assert job["status"] == "cancelled" and job["model_path"] is None
    assert sorted(p.name for p in models.iterdir()) == before
    assert d.post("/admin/cancel-training").status_code == 409


def test_killed_training_process_fails_the_job_and_the_next_runs(trained: Daemon) -> None:
    d = trained
    job_id, pid = start_long_job(d)
    os.kill(pid, signal.SIGKILL)
    job = wait_job(d, job_id, ("failed", "cancelled", "completed"), timeout=30)
    assert job["status"] == "failed" and "SIGKILL" in job["error"]
    assert d.get("/health", key=None).status_code == 200
    nxt = d.post("/admin/trigger-training?epochs=1&incremental=true").json()
    assert nxt["success"] is True
    assert wait_job(d, nxt["job_id"], ("completed", "failed"))["status"] == "completed"


def test_a_job_in_its_own_session_stops_when_the_trainer_dies(trained: Daemon) -> None:
    d = trained
    job_id, pid = start_long_job(d)
    trainer = d.role("trainer").pid
    assert trainer is not None
    os.kill(trainer, signal.SIGKILL)
    assert wait_for(lambda: not alive(pid), 30), d.log_text()[-3000:]
    assert wait_for(lambda: d.role("trainer").state == "ready" and d.role("trainer").pid != trainer, 15)


def test_incremental_with_new_servers_forecasts_them(trained: Daemon) -> None:
    import numpy as np

    from nordiqd.buffer.reader import read_window
    from nordiqd.model import artifacts
    from nordiqd.model.forecast import WindowForecaster

    d = trained
    # A larger fleet: servers beyond the first 8 are new to the model.
    backfill(d.endpoint("ingest"), servers=14, days=2.0, seed=1)
    old = os.path.realpath(d.root / "data" / "models" / "current")
    job_id = d.post("/admin/trigger-training?epochs=1&incremental=true").json()["job_id"]
    job = wait_job(d, job_id, ("completed", "failed"))
    assert job["status"] == "completed", job
    assert not any("from scratch" in n for n in job["notes"]), job["notes"]
    new = os.path.realpath(d.root / "data" / "models" / "current")
    assert new != old
    model = artifacts.load(new)
    spec = model.spec
    table = read_window(
        d.root / "data" / "buffer", columns=["timestamp", "server_name", "profile", *spec.targets]
    )
    names = sorted(set(table.column("server_name").to_pylist()) - {f"{p}-001" for p in ()})
    forecaster = WindowForecaster(model)
    fresh = [n for n in names if n.endswith(("-002", "-003", "-004"))]
    assert fresh, names
    windows = np.random.default_rng(0).uniform(10, 60, (len(fresh), spec.encoder_steps, len(spec.targets)))
    profiles = [
        {
            "web": "web",
            "api": "api",
            "db": "database",
            "ml": "ml_compute",
            "etl": "batch_etl",
            "cache": "cache",
        }[n.split("-")[0]]
        for n in fresh
    ]
    fc = forecaster.forecast(windows, fresh, profiles, time.time() // 300 * 300)
    assert fc.values.shape == (len(fresh), len(spec.targets), spec.horizon_steps, len(spec.quantiles))
    assert np.isfinite(fc.values).all()


def _seed_block(start: str, end: str) -> str:
    text = SEED.read_text()
    return text[text.index(start) : text.index(end, text.index(start))]


@pytest.mark.skipif(
    shutil.which("jq") is None, reason="the seed's cron script needs jq (installed by .ci/run)"
)
def test_seed_cron_script_runs_unchanged(trained: Daemon, tmp_path: Path) -> None:
    d = trained
    wait_idle(d)
    script = _seed_block("#!/bin/bash\n# weekly_retrain.sh", "```")
    script = script.replace("/path/to/.nordiq_key", str(d.key_file)).replace("http://localhost:8000", d.url)
    path = tmp_path / "weekly_retrain.sh"
    path.write_text(script)
    out = subprocess.run(["bash", str(path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Training started: train_" in out.stdout and "Weekly retraining complete!" in out.stdout
    wait_idle(d)


def test_seed_python_scheduler_function_runs_unchanged(
    trained: Daemon, tmp_path: Path, capsys, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    d = trained
    wait_idle(d)
    code = _seed_block("# scheduled_retraining.py", "# Schedule every Sunday")
    code = code.replace('"http://localhost:8000"', repr(d.url))
    (tmp_path / ".nordiq_key").write_text(d.key + "\n")
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    exec(compile(code, "scheduled_retraining.py", "exec"), namespace)
    namespace["weekly_retrain"]()  # type: ignore[operator]
    assert "Training started: train_" in capsys.readouterr().out
    wait_idle(d)


def wait_idle(d: Daemon) -> None:
    deadline = time.monotonic() + 240
    while d.get("/admin/training-stats").json()["current_job"] is not None:
        assert time.monotonic() < deadline, "a job is still running"
        time.sleep(0.3)


def test_history_survives_a_restart(trained: Daemon) -> None:
    d = trained
    before = d.get("/admin/training-stats").json()["history"]
    assert before["total_trainings"] >= 4
    os.kill(d.proc.pid, signal.SIGTERM)
    d.wait_exit(30)
    d.start()
    d.wait_ready()
    assert d.get("/admin/training-stats").json()["history"] == before


def test_too_little_data_takes_the_seed_not_ready_path(daemon_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    d = daemon_factory(training={"min_records": 100000})
    d.start()
    d.wait_ready()
    d.post(
        "/feed/data",
        json={"records": [{"timestamp": time.time() - 60, "server_name": "web-001", "cpu_user_pct": 5.0}]},
    )
    r = d.post("/admin/trigger-training?epochs=5&incremental=true")
    assert r.json() == {
        "success": False,
        "error": "Insufficient data: 1 < 100000 records",
        "status": "rejected",
    }
    if shutil.which("jq"):
        script = _seed_block("#!/bin/bash\n# weekly_retrain.sh", "```")
        script = script.replace("/path/to/.nordiq_key", str(d.key_file)).replace(
            "http://localhost:8000", d.url
        )
        (tmp_path / "w.sh").write_text(script)
        out = subprocess.run(["bash", str(tmp_path / "w.sh")], capture_output=True, text=True, timeout=60)
        assert out.returncode == 1
        assert "Not ready to train: Insufficient data: 1 < 100000 records" in out.stdout


def test_stopping_the_daemon_stops_a_running_job(trained: Daemon) -> None:
    # Last in this module: it stops the shared daemon. The job has its own session, so
    # the process group cannot take it along; the trainer's close() must.
    d = trained
    _, pid = start_long_job(d)
    assert d.proc is not None
    d.proc.send_signal(signal.SIGTERM)
    assert d.proc.wait(60) == 0
    assert wait_for(lambda: not alive(pid), 15), "the job outlived the daemon"
