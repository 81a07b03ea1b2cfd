"""One training job, run as a fresh subprocess: ``python -m nordiqd.training.job ...``.

How it runs: reads the last ``training_days`` of the buffer straight from Parquet, fits
the TFT on all but the newest ``[promotion] holdout_hours`` (continuing the current model
when incremental), writes the model directory as a candidate (``current`` does not move),
scores it beside the champion and seasonal naive on that holdout
(``nordiqd.promotion.holdout``; the figures go into its manifest) and reports them: the
trainer's gate decides whether it is served. Job events (``ipc.messages.JobMessage``)
go over a PUSH socket to the trainer role. It runs below the serving roles
(``nordiqd.training.priority``: SCHED_IDLE, nice +10, its own lowest-weight autogroup)
with a bounded number of torch threads (or on CUDA when present), so ingest and
predictions keep the machine.

With ``[training] backend = "ray"`` the fit's Lightning run happens on a Ray cluster
instead (``ray_backend.RayTraining``); everything around it is the same.

Its memory is capped (``[training] max_memory_mb``, ``nordiqd.training.memory``) before
anything else runs; a job over the cap, or one that meets a full disk, fails with that
reason named, and publishes nothing (the served model stays).

How it stops: SIGTERM (a cancel) sets a flag the fit checks before every batch; the job
then reports ``JobFailed`` with ``cancelled=True`` and exits 3, leaving no model behind
(a candidate cancelled during its gate is deleted). If the
trainer role dies (its pid is no longer our parent) the job stops the same way, and ends
itself after ``[training] cancel_grace_s`` if it has not stopped by then.
Exit codes: 0 completed, 1 failed, 3 cancelled.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import zmq

from ipc import codec
from ipc import messages as m
from ipc.sockets import make_socket
from nordiqd import config as config_mod
from nordiqd import logsetup
from nordiqd.diskspace import full_message, is_disk_full
from nordiqd.model.errors import TrainingCancelled
from nordiqd.training import job_command, memory
from nordiqd.training.priority import lower_priority, wind_down
from supervisor import exitcodes

if TYPE_CHECKING:  # the annotations only: torch is imported after the priority drops
    from nordiqd.model.artifacts import LoadedModel
    from nordiqd.model.fitting import NetworkTraining

log = logging.getLogger("nordiqd.training.job")

PROGRESS_EVERY_S = 0.5  # at most two progress events a second, however fast batches go


class _Reporter:
    """Sends job events to the trainer; progress is rate-limited, the rest is not."""

    def __init__(self, ctx: zmq.Context[zmq.Socket[bytes]], endpoint: str, job_id: str) -> None:
        self._sock = make_socket(ctx, zmq.PUSH, connect=endpoint)
        self.job_id = job_id
        self._last = 0.0

    def send(self, event: m.JobMessage) -> None:
        self._sock.send(codec.job.encode(event))

    def progress(self, pct: float) -> None:
        now = time.monotonic()
        if now - self._last >= PROGRESS_EVERY_S or pct >= 100.0:
            self._last = now
            self.send(m.JobProgress(job_id=self.job_id, progress_pct=round(min(100.0, pct), 1)))

    def close(self) -> None:
        # Give queued events a moment to leave before the socket goes (linger is 0).
        self._sock.setsockopt(zmq.LINGER, 2000)
        self._sock.close()


def run(
    cfg: config_mod.Config,
    job_id: str,
    epochs: int,
    incremental: bool,
    events: str,
    parent: int | None = None,
    memory_limit_mb: int | None = None,
) -> int:
    """Run the job; return the exit code. ``parent`` is the trainer's pid (default: ours now).

    ``memory_limit_mb`` is the cap ``main`` already set on this process, named in the
    failure of a job that runs out of memory.
    """
    parent = os.getppid() if parent is None else parent
    stop = os.getppid() != parent  # the trainer died while we started

    def on_term(_sig: int, _frame: object) -> None:
        nonlocal stop
        stop = True
        wind_down()
        if os.getppid() != parent:
            # No trainer is left to kill a job that does not stop within the grace period
            # (one in a phase without stop checks): the job ends itself, publishing nothing.
            ender = threading.Timer(cfg.training.cancel_grace_s, os._exit, (exitcodes.CANCELLED,))
            ender.daemon = True
            ender.start()

    def should_stop() -> bool:
        return stop or os.getppid() != parent

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    lower_priority(cfg.training.cpu_priority, parent)
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    report = _Reporter(ctx, events, job_id)
    try:
        return _train(cfg, epochs, incremental, report, should_stop, memory_limit_mb)
    finally:
        report.close()
        ctx.term()


def _train(
    cfg: config_mod.Config,
    epochs: int,
    incremental: bool,
    report: _Reporter,
    should_stop: Callable[[], bool],
    memory_limit_mb: int | None,
) -> int:
    spec = cfg.model
    try:
        # Imported here, after ``run`` lowered this process's priority: torch and
        # Lightning take seconds of CPU to import, which must not compete with ingest and
        # predictions; and inside the ``try``, as an import can meet the memory cap too.
        import pyarrow as pa
        import pyarrow.compute as pc

        from nordiqd.buffer.reader import read_window
        from nordiqd.model import artifacts
        from nordiqd.model.fitting import fit
        from nordiqd.model.series import fleet_series
        from nordiqd.promotion import holdout

        columns = ["timestamp", "server_name", "profile", *spec.targets]
        # Names as stored, dictionary-encoded: framing codes them anyway, and millions of
        # rows of strings were a fifth of the table. One clock for the whole job, so that Ray
        # workers read the window the driver framed.
        now = time.time()
        table = read_window(
            cfg.buffer_dir,
            days=cfg.training.training_days,
            columns=columns,
            dictionary_names=True,
            clock=lambda: now,
        )
        span = pc.min_max(table["timestamp"])
        first, last = span["min"].as_py(), span["max"].as_py()
        # The newest hours are the gate's holdout: the model never trains on them.
        rows, cutoff = holdout.split(table, cfg.promotion.holdout_hours)
        # Training needs only the framed series: the rows go before the network's memory
        # comes (they outweigh the series several times), and the gate reads them again.
        del table
        report.send(m.JobStarted(job_id=report.job_id, records=rows.num_rows))
        log.info(
            "training on %d records before %s, %d epochs, incremental=%s",
            rows.num_rows, cutoff, epochs, incremental,
        )  # fmt: skip
        series = fleet_series(rows, spec)
        del rows
        memory.release_freed()
        pa.default_memory_pool().release_unused()
        champion = _champion(cfg)
        base = champion
        current = os.path.join(cfg.models_dir, "current")
        if incremental and base is None and os.path.exists(current):
            base = artifacts.load(current)  # of another shape: fit says why it starts afresh
        trained = fit(
            series,
            spec,
            epochs=epochs,
            incremental=incremental,
            base=base if incremental else None,
            threads=cfg.training.cpu_threads,
            on_progress=report.progress,
            should_stop=should_stop,
            train=_ray_training(cfg, report, should_stop, memory_limit_mb, epochs, now, cutoff),
        )
        del series
        if should_stop():
            raise TrainingCancelled("cancelled after the last batch")
        path = artifacts.publish(cfg.models_dir, trained, serve=False)
        try:
            report.send(m.JobGating(job_id=report.job_id, version=path.name))
            candidate = artifacts.load(path, expect=spec)
            # The span read before training, holdout included (``end`` is exclusive).
            end = last + timedelta(milliseconds=1)
            table = read_window(cfg.buffer_dir, start=first, end=end, columns=columns)
            gate = holdout.score(table, spec, cfg.promotion.holdout_hours, cutoff, candidate, champion)
            if should_stop():
                raise TrainingCancelled("cancelled during the gate")
            artifacts.record_gate(path, gate)
        except BaseException:
            shutil.rmtree(path, ignore_errors=True)  # a candidate without its gate is no candidate
            raise
    except TrainingCancelled:
        log.info("cancelled")
        report.send(m.JobFailed(job_id=report.job_id, error="cancelled on request", cancelled=True))
        return exitcodes.CANCELLED
    except Exception as exc:
        log.exception("training failed")
        report.send(m.JobFailed(job_id=report.job_id, error=failure_text(cfg, exc, memory_limit_mb)))
        return exitcodes.FAILURE
    v = trained.validation
    validation = {"loss": v.loss, "mase_model": v.mase_model, "mase_seasonal_naive": v.mase_seasonal_naive}
    report.send(
        m.JobFinished(
            job_id=report.job_id,
            model_path=os.path.relpath(path, cfg.daemon.data_dir),
            records=trained.records,
            notes=list(trained.notes),
            validation=validation,
            gate=gate,
        )
    )
    log.info("candidate %s gated in %.1f s of training", path.name, trained.seconds)
    return exitcodes.OK


def _ray_training(
    cfg: config_mod.Config,
    report: _Reporter,
    should_stop: Callable[[], bool],
    memory_limit_mb: int | None,
    epochs: int,
    now: float,
    cutoff: datetime,
) -> NetworkTraining | None:
    """The Ray Train run that fits the network with ``backend = "ray"``; None: in this process.

    The workers read the same window as this job: ``training_days`` back from ``now``
    up to the holdout's ``cutoff``.
    """
    if cfg.training.backend != "ray":
        return None
    from nordiqd.training.ray_backend import RayTraining

    return RayTraining(
        cfg.training,
        cfg.model,
        buffer_dir=cfg.buffer_dir,
        window=((now - cfg.training.training_days * 86_400.0) * 1000.0, cutoff.timestamp() * 1000.0),
        epochs=epochs,
        job_id=report.job_id,
        on_progress=report.progress,
        should_stop=should_stop,
        memory_limit_mb=memory_limit_mb,
    )


def failure_text(cfg: config_mod.Config, exc: BaseException, memory_limit_mb: int | None) -> str:
    """Why the job failed, in the words the history keeps: out of memory and a full disk
    are named as such (with the cap, or the path), anything else as the error it was."""
    detail = f"{type(exc).__name__}: {exc}"
    if memory_limit_mb is not None and memory.is_out_of_memory(exc):
        return f"{memory.out_of_memory(memory_limit_mb)}: {detail}"
    if is_disk_full(exc):
        return f"{full_message(_written_folder(exc) or cfg.models_dir, 'the new model')}: {detail}"
    return detail


def _written_folder(exc: BaseException) -> str | None:
    """The existing folder of the file an ``OSError`` (or its cause) names, if any."""
    current: BaseException | None = exc
    while current is not None:
        name = getattr(current, "filename", None)
        if isinstance(name, str):
            folder = os.path.dirname(os.path.abspath(name))
            while folder and not os.path.isdir(folder):  # a staging folder, removed since
                folder = os.path.dirname(folder)
            return folder or None
        current = current.__cause__ or current.__context__
    return None


def _champion(cfg: config_mod.Config) -> LoadedModel | None:
    """The model ``current`` names now, when it forecasts what the config asks (else None)."""
    from nordiqd.model import artifacts
    from nordiqd.model.errors import ModelError

    current = os.path.join(cfg.models_dir, "current")
    if not os.path.exists(current):
        return None
    try:
        return artifacts.load(current, expect=cfg.model)
    except ModelError as exc:
        log.warning("the current model is not comparable, the gate judges without it: %s", exc)
        return None


def main(argv: list[str] | None = None) -> int:
    """Entry point of the job subprocess."""
    args = job_command.parse(argv)
    if args.max_memory_mb is not None:
        memory.apply(args.max_memory_mb)  # first: every allocation of the job falls under it
    cfg = config_mod.load(args.config)
    logsetup.setup(f"train:{args.job_id}", cfg.daemon.log_level)
    return run(cfg, args.job_id, args.epochs, args.incremental, args.events, args.parent, args.max_memory_mb)


if __name__ == "__main__":
    sys.exit(main())
