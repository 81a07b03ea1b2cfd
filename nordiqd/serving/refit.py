"""``python -m nordiqd.serving.refit OUT``: fit the statistical challengers of the fleet.

The predictor's ``StatisticalChallenger`` starts this as a child process every
``[routing] refit_hours`` (a fresh interpreter: statsmodels and pandas never load into
the predictor). It lowers its own priority first (nice 19 and ``SCHED_IDLE``, as a
training job does, for the reasons ``training/priority.py`` gives), so serving threads
always run before it. Then it reads the last ``statistical.DAYS`` days of every target
from the buffer into step means, and for every series picks the best statistical model
(``statistical.choose``: AutoETS, AutoTheta or MSTL, by its forecast of the series' own
last horizon; the previous fit's choice is kept for ``CHOOSE_EVERY_S`` of data time,
since choosing costs three fits a series) and forecasts with it from the newest step on,
over the horizon plus the refit interval (``path_steps``), so each pass until the next
refit finds its steps in the path. A series whose fit raises is logged and left without
a forecast; the others go on.
The configuration is the one ``NORDIQD_CONFIG`` names (a role's child inherits it).

It writes ``OUT`` atomically: msgpack (``challenger.Fit``), the quantiles as raw float32 bytes.
Exit 0 after writing, 1 on a failure (logged).
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

__all__ = ["CHOOSE_EVERY_S", "fit_fleet", "main", "path_steps"]

CHOOSE_EVERY_S = 86400


def path_steps(cfg: config_mod.Config) -> int:
    """Steps each path covers: a horizon past the next refit."""
    spec = cfg.model
    return spec.horizon_steps + int(np.ceil(cfg.routing.refit_hours * 3600 / spec.step_seconds))


def fit_fleet(cfg: config_mod.Config, now: float, previous: Fit | None = None) -> Fit:
    """Fit every series of the buffer's last ``statistical.DAYS`` days (see the module docstring).

    Args:
        cfg: The configuration.
        now: The clock: the window read ends here.
        previous: The last fit, whose model choices are kept for ``CHOOSE_EVERY_S``.
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
    steps = path_steps(cfg)
    values = np.full((len(snap.names), len(targets), steps, len(spec.quantiles)), np.nan, np.float32)
    models = [[""] * len(targets) for _ in snap.names]
    origin = int(snap.last_bucket_start[0]) + step if snap.names else int(now // step) * step
    kept: dict[str, list[str]] = {}
    if previous is not None and previous.targets == targets and origin < previous.chosen_at + CHOOSE_EVERY_S:
        kept = dict(zip(previous.servers, previous.models, strict=True))
    started, failed = time.process_time(), 0
    for i, name in enumerate(snap.names):
        for j in range(len(targets)):
            history = snap.windows[i, :, j]
            try:
                model = kept.get(name, [""] * len(targets))[j] or _choose(history, step, spec.horizon_steps)
                if model is None:
                    continue
                models[i][j] = model
                values[i, j] = statistical.forecast(model, history, step, steps, spec.quantiles)
            except Exception:  # one series' fit never stops the fleet's (statsmodels raises odd errors)
                log.exception("statistical fit of %s %s failed", name, targets[j])
                failed += 1
    values = clip(values, targets, axis=1).astype(np.float32)
    return Fit(
        origin=origin,
        step_seconds=step,
        targets=targets,
        quantiles=list(spec.quantiles),
        servers=list(snap.names),
        models=models,
        values=values.astype("<f4").tobytes(),
        steps=steps,
        cpu_s=time.process_time() - started,
        chosen_at=previous.chosen_at if kept and previous is not None else origin,
        failed=failed,
    )


def _choose(history: np.ndarray, step: int, horizon: int) -> str | None:
    """``statistical.choose``; when a model raises (statsmodels' MSTL can), among the others."""
    try:
        return statistical.choose(history, step, horizon)
    except Exception:
        usable = []
        for model in statistical.MODELS:
            try:
                statistical.choose(history, step, horizon, models=(model,))
            except Exception:
                log.debug("%s cannot fit this series", model, exc_info=True)
                continue
            usable.append(model)
        return statistical.choose(history, step, horizon, models=usable) if usable else None


def _lower_priority() -> None:
    try:
        os.nice(19)
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError) as exc:  # not Linux, or refused: nice alone
        log.info("statistical refit keeps a normal scheduling class: %s", exc)


def main(argv: list[str]) -> int:
    """Fit and write ``argv[0]``; the exit code."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s refit: %(message)s")
    if len(argv) != 1:
        print("usage: python -m nordiqd.serving.refit OUT", file=sys.stderr)
        return 2
    _lower_priority()
    try:
        cfg = config_mod.load(None)
        try:
            previous: Fit | None = msgspec.msgpack.decode(Path(argv[0]).read_bytes(), type=Fit)
        except (OSError, msgspec.DecodeError):
            previous = None
        fit = fit_fleet(cfg, time.time(), previous)
        write_atomic(argv[0], msgspec.msgpack.encode(fit))
    except Exception:
        log.exception("statistical refit failed")
        return 1
    fitted = sum(1 for row in fit.models for m in row if m)
    log.info(
        "fitted %d of %d series in %.1f CPU s (%d failed)",
        fitted,
        len(fit.servers) * len(fit.targets),
        fit.cpu_s,
        fit.failed,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
