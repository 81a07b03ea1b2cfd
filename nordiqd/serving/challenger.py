"""The statistical challenger: refitted in the background, sliced for every pass.

How it runs: ``start()`` starts one thread that, ``FIRST_DELAY_S`` after start (a
starting daemon's CPU goes to its refill, first passes and often a first training job,
which runs at the same idle priority as a refit) and then every ``[routing]
refit_hours``, runs ``python -m nordiqd.serving.refit`` as a child process at idle
priority (``serving.refit``: most series re-filtered with the parameters of their last
full fit, kept in ``state/statistical_params.msgpack``, a bounded share fitted again) and
loads the forecasts it wrote (``state/statistical.msgpack``).
A saved fit is loaded at start, so a restart serves it at once. A failed refit is
logged and the previous fit stays.

``forecast(names, start)`` is what a pass asks (``routes.Router.challenger``): each
server's quantiles for the ``horizon`` steps from ``start``, a slice of the fit's
path; NaN for a server the fit does not hold or steps past its path.

How it stops: ``close()`` sets the stop event, kills a refit in progress and joins.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from pathlib import Path

import msgspec
import numpy as np

from nordiqd.config import Config

log = logging.getLogger(__name__)

__all__ = ["FILE", "PARAMS_FILE", "Fit", "StatisticalChallenger"]

FILE = "statistical.msgpack"
PARAMS_FILE = "statistical_params.msgpack"  # the refit child's own: the predictor never reads it
FIRST_DELAY_S = 600.0
BACKLOG_GAP_S = 60.0  # between refits while series wait for their first fit (a new fleet)
REFIT_TIMEOUT_S = 3600.0


class Fit(msgspec.Struct, frozen=True, kw_only=True):
    """One refit's forecasts.

    Attributes:
        origin: Start of the first forecast step (epoch seconds, on the step grid).
        step_seconds: Model step.
        targets: Target names, the second axis.
        quantiles: Quantile levels, the last axis.
        servers: Server names, the first axis.
        models: Per server and target, the model chosen ("" where none could fit).
        values: float32 [servers, targets, steps, quantiles] bytes, NaN where no forecast.
        steps: Steps of every path.
        cpu_s: CPU seconds the refresh took.
        estimated: Series fitted in full (model chosen, parameters estimated).
        filtered: Series re-filtered with the parameters of their last full fit.
        failed: Series whose fit raised (logged; no forecast).
        waiting: Series waiting for their first full fit (past the refresh's share).
    """

    origin: int
    step_seconds: int
    targets: list[str]
    quantiles: list[float]
    servers: list[str]
    models: list[list[str]]
    values: bytes
    steps: int
    cpu_s: float
    estimated: int = 0
    filtered: int = 0
    failed: int = 0
    waiting: int = 0


class _Loaded:
    """A fit's arrays, indexed for slicing."""

    def __init__(self, fit: Fit) -> None:
        self.fit = fit
        shape = (len(fit.servers), len(fit.targets), fit.steps, len(fit.quantiles))
        self.values = np.frombuffer(fit.values, dtype="<f4").reshape(shape)
        self.rows = {name: i for i, name in enumerate(fit.servers)}


class StatisticalChallenger:
    """Refits in the background, answers passes from the newest fit; see the module docstring.

    Args:
        config: The daemon's configuration ([model], [routing], the state folder).
        first_delay_s: Seconds from ``start`` to the first refit.
        backlog_gap_s: Seconds between refits while series wait for their first fit.
    """

    def __init__(
        self, config: Config, first_delay_s: float = FIRST_DELAY_S, backlog_gap_s: float = BACKLOG_GAP_S
    ) -> None:
        self.config = config
        self.path = Path(config.state_dir) / FILE
        self.params_path = Path(config.state_dir) / PARAMS_FILE
        self.first_delay_s = first_delay_s
        self.backlog_gap_s = backlog_gap_s
        self.refits = 0  # refits completed (loaded)
        self.failures = 0
        self._loaded = self._load()
        self._stop = threading.Event()
        self._child: subprocess.Popen[bytes] | None = None
        self._thread = threading.Thread(target=self._loop, name="statistical-refit", daemon=True)

    @property
    def fit(self) -> Fit | None:
        """The fit served now."""
        loaded = self._loaded
        return None if loaded is None else loaded.fit

    def start(self) -> None:
        """Start the refit thread."""
        self._thread.start()

    def close(self) -> None:
        """Stop refitting (a refit in progress is killed)."""
        self._stop.set()
        child = self._child
        if child is not None and child.poll() is None:
            child.kill()
        if self._thread.is_alive():
            self._thread.join(timeout=5.0)

    def forecast(self, names: list[str], start: float) -> np.ndarray | None:
        """Each server's challenger quantiles [n, targets, horizon, quantiles] from ``start``.

        Returns:
            NaN rows for servers the fit lacks and steps past its path; None without a fit.
        """
        loaded = self._loaded
        if loaded is None:
            return None
        spec = self.config.model
        fit = loaded.fit
        out = np.full(
            (len(names), len(spec.targets), spec.horizon_steps, len(spec.quantiles)), np.nan, np.float32
        )
        offset = int(round((start - fit.origin) / fit.step_seconds))
        first, last = max(offset, 0), min(offset + spec.horizon_steps, fit.steps)
        if last <= first:
            return out
        rows = np.fromiter((loaded.rows.get(n, -1) for n in names), dtype=np.int64, count=len(names))
        have = rows >= 0
        out[have, :, first - offset : last - offset] = loaded.values[rows[have], :, first:last]
        return out

    def refit(self) -> bool:
        """Run one refit now (on the calling thread); True when a new fit was loaded."""
        started = time.monotonic()
        try:
            self._child = subprocess.Popen(
                [sys.executable, "-m", "nordiqd.serving.refit", str(self.path), str(self.params_path)]
            )
            code = self._child.wait(timeout=REFIT_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired) as exc:
            if self._child is not None:
                self._child.kill()
            log.warning("statistical refit did not finish: %s", exc)
            self.failures += 1
            return False
        finally:
            self._child = None
        if code != 0:
            if not self._stop.is_set():
                log.warning("statistical refit failed (exit %d); the previous fit stays", code)
                self.failures += 1
            return False
        loaded = self._load()
        if loaded is None:
            self.failures += 1
            return False
        self._loaded = loaded
        self.refits += 1
        log.info(
            "statistical challengers refreshed: %d servers from %d in %.1f s (%.1f CPU s; "
            "%d series fitted in full, %d re-filtered, %d waiting for their first fit)",
            len(loaded.fit.servers),
            loaded.fit.origin,
            time.monotonic() - started,
            loaded.fit.cpu_s,
            loaded.fit.estimated,
            loaded.fit.filtered,
            loaded.fit.waiting,
        )
        return True

    def _loop(self) -> None:
        period = self.config.routing.refit_hours * 3600
        if self._stop.wait(self.first_delay_s):
            return
        while not self._stop.is_set():
            self.refit()
            # A new fleet is fitted a share per refit: the next share comes soon, not in hours.
            fit = self.fit
            waiting = fit is not None and fit.waiting > 0
            if self._stop.wait(min(period, self.backlog_gap_s) if waiting else period):
                return

    def _load(self) -> _Loaded | None:
        spec = self.config.model
        try:
            fit = msgspec.msgpack.decode(self.path.read_bytes(), type=Fit)
            loaded = _Loaded(fit)
        except FileNotFoundError:
            return None
        except (OSError, msgspec.DecodeError, ValueError) as exc:
            log.warning("%s unreadable, no statistical challenger until the next refit: %s", self.path, exc)
            return None
        if (fit.targets, fit.quantiles, fit.step_seconds) != (
            list(spec.targets),
            list(spec.quantiles),
            spec.step_seconds,
        ):
            log.info("%s was fitted for another [model]; waiting for the next refit", self.path)
            return None
        return loaded
