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

How it stops: SIGTERM (a cancel) sets a flag the fit checks before every batch; the job
then reports ``JobFailed`` with ``cancelled=True`` and exits 3, leaving no model behind
(a candidate cancelled during its gate is deleted). If the
trainer role dies (its pid is no longer our parent) the job stops the same way.
Exit codes: 0 completed, 1 failed, 3 cancelled.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import zmq

from ipc import codec
from ipc import messages as m
from ipc.sockets import make_socket
from nordiqd import config as config_mod
from nordiqd import logsetup
from nordiqd.training import job_command
from nordiqd.training.priority import lower_priority
from supervisor import exitcodes

if TYPE_CHECKING:  # the annotation only: torch is imported after the priority drops
    from nordiqd.model.artifacts import LoadedModel

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
) -> int:
    """Run the job; return the exit code. ``parent`` is the trainer's pid (default: ours now)."""
    parent = os.getppid() if parent is None else parent
    stop = os.getppid() != parent  # the trainer died while we started

    def on_term(_sig: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    lower_priority(cfg.training.cpu_priority, parent)
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    report = _Reporter(ctx, events, job_id)
    try:
        return _train(cfg, epochs, incremental, report, lambda: stop or os.getppid() != parent)
    finally:
        report.close()
        ctx.term()


def _train(
    cfg: config_mod.Config,
    epochs: int,
    incremental: bool,
    report: _Reporter,
    should_stop: Callable[[], bool],
) -> int:
    # Imported here, after ``run`` lowered this process's priority: torch and Lightning
    # take seconds of CPU to import, which must not compete with ingest and predictions.
    from nordiqd.buffer.reader import read_window
    from nordiqd.model import artifacts
    from nordiqd.model.errors import TrainingCancelled
    from nordiqd.model.fitting import fit
    from nordiqd.promotion import holdout

    spec = cfg.model
    try:
        columns = ["timestamp", "server_name", "profile", *spec.targets]
        table = read_window(cfg.buffer_dir, days=cfg.training.training_days, columns=columns)
        # The newest hours are the gate's holdout: the model never trains on them.
        rows, cutoff = holdout.split(table, cfg.promotion.holdout_hours)
        report.send(m.JobStarted(job_id=report.job_id, records=rows.num_rows))
        log.info(
            "training on %d records before %s, %d epochs, incremental=%s",
            rows.num_rows, cutoff, epochs, incremental,
        )  # fmt: skip
        champion = _champion(cfg)
        base = champion
        current = os.path.join(cfg.models_dir, "current")
        if incremental and base is None and os.path.exists(current):
            base = artifacts.load(current)  # of another shape: fit says why it starts afresh
        trained = fit(
            rows,
            spec,
            epochs=epochs,
            incremental=incremental,
            base=base if incremental else None,
            threads=cfg.training.cpu_threads,
            on_progress=report.progress,
            should_stop=should_stop,
        )
        if should_stop():
            raise TrainingCancelled("cancelled after the last batch")
        path = artifacts.publish(cfg.models_dir, trained, serve=False)
        try:
            report.send(m.JobGating(job_id=report.job_id, version=path.name))
            candidate = artifacts.load(path, expect=spec)
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
        report.send(m.JobFailed(job_id=report.job_id, error=f"{type(exc).__name__}: {exc}"))
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
    cfg = config_mod.load(args.config)
    logsetup.setup(f"train:{args.job_id}", cfg.daemon.log_level)
    return run(cfg, args.job_id, args.epochs, args.incremental, args.events, args.parent)


if __name__ == "__main__":
    sys.exit(main())
