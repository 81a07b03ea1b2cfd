"""``python -m nordiqd.serving.refit OUT PARAMS``: refresh the statistical challengers of the fleet.

The predictor's ``StatisticalChallenger`` starts this as a child process every
``[routing] refit_hours`` (a fresh interpreter: statsmodels and pandas never load into
the predictor). It lowers its own priority first (nice 19 and ``SCHED_IDLE``, as a
training job does, for the reasons ``training/priority.py`` gives), so serving threads
always run before it. Then it reads the last ``statistical.DAYS`` days of every target
from the buffer into step means and runs ``statistical.refresh`` over them: a series seen
for the first time, or whose turn it is (each refresh about ``1/[routing]
reestimate_every`` of the fleet), is fitted in full (first sights too at most that share
per refresh: a new fleet is fitted over refreshes a minute apart,
``challenger.BACKLOG_GAP_S``): the best statistical model chosen
(``statistical.select``: AutoETS, AutoTheta or MSTL, by its forecast of the series' own
last horizon) and its parameters estimated; every other series is re-filtered over the
new data with the model and parameters of its last full fit (no optimiser), as
``PARAMS`` (``statistical.FleetParams``, msgpack) kept them. Each forecast runs from the
newest step over the horizon plus the refit interval (``path_steps``), so each pass until
the next refit finds its steps in the path. A series whose fit raises is logged and left
without a forecast; the others go on.
The configuration is the one ``NORDIQD_CONFIG`` names (a role's child inherits it).

It writes ``OUT`` (msgpack ``challenger.Fit``, the quantiles as raw float32 bytes), then
``PARAMS``, each atomically. Exit 0 after writing, 1 on a failure (logged).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

import msgspec
import numpy as np

from nordiqd import config as config_mod
from nordiqd import statistical
from nordiqd.buffer.reader import read_window
from nordiqd.durable import write_atomic
from nordiqd.predict.risk import clip
from nordiqd.predict.windows import RollingWindows
from nordiqd.serving.challenger import Fit

log = logging.getLogger("nordiqd.serving.refit")

__all__ = ["fit_fleet", "main", "path_steps"]


def path_steps(cfg: config_mod.Config) -> int:
    """Steps each path covers: a horizon past the next refit."""
    spec = cfg.model
    return spec.horizon_steps + int(np.ceil(cfg.routing.refit_hours * 3600 / spec.step_seconds))


def fit_fleet(
    cfg: config_mod.Config, now: float, previous: statistical.FleetParams | None = None
) -> tuple[Fit, statistical.FleetParams]:
    """Refresh every series of the buffer's last ``statistical.DAYS`` days (see the module docstring).

    Args:
        cfg: The configuration.
        now: The clock: the window read ends here.
        previous: What the last refresh kept (None: every series is fitted in full).

    Returns:
        The forecasts to serve, and what the next refresh starts from.
    """
    spec = cfg.model
    targets = list(spec.targets)
    step = spec.step_seconds
    length = statistical.DAYS * 86400 // step
    table = read_window(
        cfg.buffer_dir,
        start=now - (statistical.DAYS * 86400 + step),
        columns=["timestamp", "server_name", "profile", *targets],
        dictionary_names=True,
    )
    windows = RollingWindows(targets, step, length)
    windows.refill(table)
    newest = (
        float(table.column("timestamp").to_numpy().max().astype("int64") / 1e3) if table.num_rows else now
    )
    snap = windows.snapshot(targets, newest)
    origin = int(snap.last_bucket_start[0]) + step if snap.names else int(now // step) * step
    done = statistical.refresh(
        snap.windows,
        snap.names,
        targets,
        step_s=step,
        end_s=float(origin),
        horizon_steps=spec.horizon_steps,
        steps=path_steps(cfg),
        quantiles=spec.quantiles,
        previous=previous,
        every=cfg.routing.reestimate_every,
    )
    values = clip(done.values, targets, axis=1).astype("<f4")
    fit = Fit(
        origin=origin,
        step_seconds=step,
        targets=targets,
        quantiles=list(spec.quantiles),
        servers=list(snap.names),
        models=done.models,
        values=values.tobytes(),
        steps=path_steps(cfg),
        cpu_s=done.cpu_s,
        estimated=done.estimated,
        filtered=done.filtered,
        failed=done.failed,
        waiting=done.waiting,
    )
    return fit, done.params


def _lower_priority() -> None:
    try:
        os.nice(19)
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError) as exc:  # not Linux, or refused: nice alone
        log.info("statistical refit keeps a normal scheduling class: %s", exc)


def main(argv: list[str]) -> int:
    """Refresh, then write ``argv[0]`` (the forecasts) and ``argv[1]`` (the parameters); the exit code."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s refit: %(message)s")
    if len(argv) != 2:
        print("usage: python -m nordiqd.serving.refit OUT PARAMS", file=sys.stderr)
        return 2
    _lower_priority()
    try:
        cfg = config_mod.load(None)
        try:
            previous: statistical.FleetParams | None = msgspec.msgpack.decode(
                Path(argv[1]).read_bytes(), type=statistical.FleetParams
            )
        except FileNotFoundError:
            previous = None
        except (OSError, msgspec.DecodeError) as exc:
            log.warning("%s unreadable, every series is fitted in full: %s", argv[1], exc)
            previous = None
        fit, params = fit_fleet(cfg, time.time(), previous)
        write_atomic(argv[0], msgspec.msgpack.encode(fit))
        write_atomic(argv[1], msgspec.msgpack.encode(params))
    except Exception:
        log.exception("statistical refit failed")
        return 1
    log.info(
        "refreshed %d series in %.1f CPU s: %d fitted in full, %d filtered with kept parameters, "
        "%d failed, %d waiting for their first fit",
        len(fit.servers) * len(fit.targets),
        fit.cpu_s,
        fit.estimated,
        fit.filtered,
        fit.failed,
        fit.waiting,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
