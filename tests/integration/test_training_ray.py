"""Training on a Ray cluster (``[training] backend = "ray"``), on the real daemon and a
real local Ray head (``ray start --head --num-cpus 2`` on 127.0.0.1, stopped after).

One head serves every test here. The daemon trains a tiny model on 2 Ray workers of 1
CPU each: the candidate goes through the gate and the predictor serves it; a cancel
stops the run, publishes nothing and leaves no Ray actor; a Ray worker killed mid-run
fails the job with the reason and the daemon serves on; an address nothing answers
fails the job within seconds, naming it. And without Ray importable, ``nordiqd run``
with ``backend = "ray"`` stops at once with exit 78 and says how to install it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fleetdata import OPEN_GATE, TINY_MODEL, backfill
from tests.harness import Daemon, free_port, wait_for

pytest.importorskip("ray", reason="the Ray tests need the extra: pip install nordiqd[ray]")

ROOT = Path(__file__).resolve().parents[2]
RAY = Path(sys.executable).with_name("ray")
# Ray's own processes, by the titles it gives them: what a finished job must not leave.
ACTOR_TITLES = ("ray::RayTrainWorker", "ray::TrainController", "ray::JobBridge")


class RayHead:
    """``ray start --head --block`` in its own session; stopping it ends every Ray process."""

    def __init__(self) -> None:
        self.port = free_port()
        # Ray's socket paths must stay short: not under pytest's deep tmp folders.
        self.temp = tempfile.mkdtemp(prefix="nqray-", dir="/tmp")
        self.address = f"127.0.0.1:{self.port}"
        env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_USAGE_STATS_ENABLED": "0"}
        self.log = open(Path(self.temp) / "head.log", "wb")
        self.proc = subprocess.Popen(
            [
                str(RAY), "start", "--head", "--block", "--num-cpus", "2", "--num-gpus", "0",
                "--node-ip-address", "127.0.0.1", "--port", str(self.port),
                "--include-dashboard", "false", "--temp-dir", self.temp,
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )  # fmt: skip
        if not wait_for(self._answers, 120, step=0.5):
            self.stop()
            raise AssertionError(f"the Ray head did not start:\n{self.text()}")

    def _answers(self) -> bool:
        assert self.proc.poll() is None, self.text()
        done = subprocess.run(
            [str(RAY), "status", "--address", self.address], capture_output=True, text=True, timeout=60
        )
        return done.returncode == 0 and "CPU" in done.stdout

    def text(self) -> str:
        return (Path(self.temp) / "head.log").read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(10)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.log.close()
        shutil.rmtree(self.temp, ignore_errors=True)


def ray_processes(*titles: str) -> list[int]:
    """Pids of this machine's processes whose command line starts with one of ``titles``."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if cmd.startswith(titles):
            found.append(int(pid))
    return found


def parquet_files(folder: Path) -> int:
    """Parquet files under ``folder``, the day files and the parts in ``.parts/``."""
    return sum(name.endswith(".parquet") for _, _, names in os.walk(folder) for name in names)


@pytest.fixture(scope="module")
def head() -> Iterator[RayHead]:
    h = RayHead()
    yield h
    h.stop()


def ray_daemon(root: Path, address: str) -> Daemon:
    return Daemon(
        root,
        {
            "training": {
                "min_records": 3000,
                "cpu_priority": "nice",
                "backend": "ray",
                "ray_address": address,
                "ray_workers": 2,
                "ray_cpus_per_worker": 1.0,
                "cancel_grace_s": 20.0,
            },
            "model": dict(TINY_MODEL),
            "promotion": dict(OPEN_GATE),
        },
    )


@pytest.fixture(scope="module")
def trained(head: RayHead, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """A daemon training on the head, with two days of an 8-server fleet in Parquet."""
    d = ray_daemon(tmp_path_factory.mktemp("ray"), head.address)
    d.start()
    d.wait_ready(60)
    sent = backfill(d.endpoint("ingest"), servers=8, days=2.0)
    # The workers read compacted Parquet only (records still in the log are the newest).
    assert wait_for(lambda: parquet_files(d.root / "data" / "buffer") >= 2, 180)
    stats = wait_for(
        lambda: (s := d.get("/admin/training-stats").json())["data_buffer"]["total_records"] == sent and s,
        60,
    )
    assert stats and stats["ready_to_train"], stats
    yield d
    d.kill_group()


def start_job(d: Daemon, epochs: int) -> str:
    body = d.post(f"/admin/trigger-training?epochs={epochs}&incremental=false").json()
    assert body["success"], body
    return str(body["job_id"])


def wait_progress(d: Daemon, job_id: str, timeout: float = 240) -> dict:  # type: ignore[type-arg]
    job = wait_for(
        lambda: (j := d.get(f"/admin/training-status?job_id={job_id}").json())["progress_pct"] >= 1
        or j["status"] not in ("queued", "running"),
        timeout,
        step=0.5,
    )
    job = d.get(f"/admin/training-status?job_id={job_id}").json()
    assert job["status"] == "running", f"{job}\n{d.log_text()[-4000:]}"
    return job  # type: ignore[no-any-return]


def test_trains_on_two_workers_and_the_predictor_serves_it(trained: Daemon) -> None:
    d = trained
    job_id = start_job(d, 2)
    job = d.job_end(job_id, 400)
    assert job is not None and job["status"] == "completed", f"{job}\n{d.log_text()[-4000:]}"
    assert job["backend"] == "ray" and job["workers"] == 2
    assert job["promoted"] is True and job["gate"]["candidate"]["mase"] is not None, job
    version = Path(job["model_path"]).name
    assert os.readlink(d.root / "data" / "models" / "current") == version
    assert wait_for(lambda: d.get("/admin/model-info").json()["version"] == version, 60)
    log = d.log_text()
    assert "Ray run at" in log and "2 workers" in log and "shards of 4/4 servers" in log
    assert wait_for(lambda: not ray_processes(*ACTOR_TITLES), 30), ray_processes(*ACTOR_TITLES)


def test_cancel_stops_the_ray_run_publishes_nothing_and_leaves_no_actor(trained: Daemon) -> None:
    d = trained
    models = d.root / "data" / "models"
    before = sorted(p.name for p in models.iterdir())
    job_id = start_job(d, 500)
    wait_progress(d, job_id)
    assert ray_processes("ray::RayTrainWorker"), "no Ray Train worker runs the job"
    asked = time.monotonic()
    assert d.post("/admin/cancel-training").json()["success"] is True
    job = d.job_end(job_id, 60)
    assert job is not None and job["status"] == "cancelled", job
    assert time.monotonic() - asked < 30  # at the next batch, not after the 20 s grace's kill
    assert sorted(p.name for p in models.iterdir()) == before
    assert wait_for(lambda: not ray_processes(*ACTOR_TITLES), 30), ray_processes(*ACTOR_TITLES)


def test_a_killed_ray_worker_fails_the_job_and_the_daemon_serves_on(trained: Daemon) -> None:
    d = trained
    job_id = start_job(d, 500)
    wait_progress(d, job_id)
    workers = ray_processes("ray::RayTrainWorker")
    assert workers
    os.kill(workers[-1], signal.SIGKILL)
    job = d.job_end(job_id, 120)
    assert job is not None and job["status"] == "failed", job
    assert "Ray run" in job["error"] and ("died" in job["error"] or "dead" in job["error"]), job["error"]
    assert d.get("/health", key=None).status_code == 200
    assert d.get("/predictions/current").status_code == 200
    assert wait_for(lambda: not ray_processes(*ACTOR_TITLES), 60), ray_processes(*ACTOR_TITLES)


def test_an_address_that_does_not_answer_fails_the_job_within_seconds(
    trained: Daemon, tmp_path: Path
) -> None:
    silent = f"127.0.0.1:{free_port()}"
    d = ray_daemon(tmp_path / "silent", silent)
    # The same data, copied: readiness and the job's read see a fleet to train on.
    shutil.copytree(trained.root / "data" / "buffer", tmp_path / "silent" / "data" / "buffer")
    d.start()
    try:
        d.wait_ready(60)
        job_id = start_job(d, 1)
        job = d.job_end(job_id, 120)
        assert job is not None and job["status"] == "failed", job
        assert silent in job["error"] and "does not answer" in job["error"], job["error"]
        # Seconds after the job started fitting: its reading and framing come first.
        assert job["duration_seconds"] < 60, job
    finally:
        d.kill_group()


def test_backend_ray_without_ray_stops_startup_with_exit_78(tmp_path: Path) -> None:
    fake = tmp_path / "noray" / "ray"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text('raise ImportError("no Ray in this environment")\n')
    d = ray_daemon(tmp_path / "d", "auto")
    env = {"PYTHONPATH": f"{fake.parent}{os.pathsep}{os.environ.get('PYTHONPATH', ROOT)}"}
    d.start(env=env)
    try:
        assert d.wait_exit(120) == 78
        log = d.log_text()
        assert "pip install nordiqd[ray]" in log and "training.backend" in log, log
    finally:
        d.kill_group()


def uncalibrated(targets: dict[str, dict[str, dict[str, Any]]]) -> dict[str, dict[str, dict[str, Any]]]:
    """A report's per-target figures without ``coverage_calibrated``."""
    return {
        t: {b: {k: v for k, v in fig.items() if k != "coverage_calibrated"} for b, fig in buckets.items()}
        for t, buckets in targets.items()
    }


def test_backtest_fans_folds_and_fits_out_as_ray_tasks(head: RayHead, tmp_path: Path) -> None:
    from tests.unit.test_backtest_cli import write_csv

    data = write_csv(tmp_path / "fleet.csv", days=1.5, servers=3)
    config = tmp_path / "nordiqd.toml"
    config.write_text(
        "[model]\ntargets = ['cpu_user_pct']\nencoder_steps = 24\nhorizon_steps = 12\nhidden_size = 4\n"
        "attention_heads = 1\nhidden_continuous_size = 2\nbatch_size = 32\nmax_windows_per_epoch = 64\n"
    )
    argv = ["backtest", "--data", str(data), "-c", str(config), "--train", "--retrain", "--epochs", "1"]
    argv += ["--folds", "2", "--device", "cpu", "--no-statistical", "--no-routing"]
    nordiqd = [sys.executable, "-m", "nordiqd"]
    reports = {}
    for where, extra in (("local", []), ("ray", ["--ray", head.address])):
        out = tmp_path / f"{where}.json"
        done = subprocess.run(
            [*nordiqd, *argv, *extra, "--json", str(out)],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        reports[where] = json.loads(out.read_text())
    local, ray = reports["local"], reports["ray"]
    folds = [sorted(f["fold"] for f in r["tft"]["fits"]) for r in (local, ray)]
    assert folds == [[1, 2], [1, 2]]  # one fit per fold, each in its fold's task
    for name in ("naive", "seasonal_naive_1d"):  # the same folds, scored the same
        # Calibration learns from the earlier folds in order; a Ray run scores folds apart.
        apart, in_order = (uncalibrated(r["models"][name]["targets"]) for r in (ray, local))
        assert apart == in_order, name
    assert "routed" not in ray["models"]
    assert ray["models"]["tft"]["targets"]["cpu_user_pct"]["all"]["windows"] == 6
    silent = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    done = subprocess.run(
        [*nordiqd, *argv, "--ray", silent, "--json", str(tmp_path / "x.json")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1 and silent in done.stderr and "does not answer" in done.stderr, done.stderr
    assert time.monotonic() - started < 60
