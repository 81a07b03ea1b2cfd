"""The forecast cycle: a ``ForecastPass`` over every server at every model step.

How it runs: ``ForecastCycle.start()`` starts one thread that runs a pass at every model
step boundary (``[predictor] refresh_s`` overrides the period) and whenever ``trigger()``
is called (a model swap, the end of a refill). A pass reads one snapshot of the rolling
windows and one reference to the served model, taken at its start, so a pass never
mixes two models; a swap in the middle of a pass abandons it between batches and the
next pass starts at once on the new model. The thread publishes each pass by one
assignment to ``latest``, which requests only read; then it builds the pass's Prometheus
text (a large string, so the bodies answer first) and publishes it the same way in
``metrics_text``, which until then still holds the previous pass's.

Issue points (live accuracy) ride on passes. The data-time feed hands the cycle the
windows as they stood right before an issue point (``issue``); the thread forecasts them
once, gives the forecasts to the accuracy thread through the event's future, and, when
they are the newest in data time and from the model still served, publishes them as a
pass. With live data, the step boundary that is an issue point waits for that pass (up
to ``ISSUE_WAIT_S``) instead of running its own, so keeping the served forecasts costs
no second forecast of the fleet. Issue points a backfill crosses in a burst are only
forecast; the last of the burst is published if it is the newest.

How it stops: ``close()`` sets the stop event and joins the thread; issues still queued
have their futures cancelled (the accuracy thread then forecasts them itself).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

import numpy as np

from nordiqd.config import Config
from nordiqd.model.errors import ForecastCancelled
from nordiqd.predict.windows import RollingWindows
from nordiqd.serving.exposition import forecast_metrics
from nordiqd.serving.forecast_pass import ForecastPass, run_pass, snapshot_pass
from nordiqd.serving.outlook import forecast_snapshot
from nordiqd.serving.routes import Router
from nordiqd.serving.scoring import IssueAt
from nordiqd.serving.slot import ModelSlot

log = logging.getLogger(__name__)

ISSUE_WAIT_S = 60.0  # how long a live issue point's boundary waits for the feed to cross it


class ForecastCycle:
    """Runs ``ForecastPass``es on its own thread; see the module docstring.

    Args:
        config: The daemon's configuration.
        windows: The rolling windows.
        slot: The model slot.
        watermark: The data-time feed's newest record time (None before any), which
            says whether an issue point is about to be crossed live.
        router: Routes each series' lead buckets to their best candidate
            (``serving.routes``); None: the model serves every step.
    """

    def __init__(
        self,
        config: Config,
        windows: RollingWindows,
        slot: ModelSlot,
        watermark: Callable[[], float | None] = lambda: None,
        router: Router | None = None,
    ) -> None:
        self.config = config
        self.router = router
        self.windows = windows
        self.slot = slot
        self.watermark = watermark
        self.cycles = 0
        self.latest = self.compute(time.time())
        self.metrics_text = self.exposition(self.latest)
        self._issues: queue.Queue[IssueAt] = queue.Queue()
        self._served_boundary = -1.0  # newest step boundary a pass (timer or issue) was run for
        self._pass_wanted = False
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="forecast-cycle", daemon=True)

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def trigger(self) -> None:
        """Run a new pass now (from any thread)."""
        self._pass_wanted = True
        self._wake.set()

    def issue(self, event: IssueAt) -> None:
        """Forecast an issue point's windows on the cycle's thread; the result goes to ``event.forecast``."""
        self._issues.put(event)
        self._wake.set()

    def close(self) -> None:
        """Stop the thread; queued issues have their futures cancelled."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=1.0)  # a pass in progress only reads: no need to wait it out
        for event in self._drain():
            if event.forecast is not None:
                event.forecast.cancel()

    def compute(self, now: float) -> ForecastPass:
        """One pass with the model served now; abandoned if another is swapped in meanwhile."""
        served = self.slot.served
        return run_pass(
            self.config,
            self.windows,
            served,
            now,
            cancelled=lambda: self.slot.served is not served,
            router=self.router,
        )

    def exposition(self, forecast_pass: ForecastPass) -> str:
        """The Prometheus text of ``forecast_pass``, with the slot's and the cycle's counters now."""
        slot = self.slot
        return forecast_metrics(
            forecast_pass, self.config.model, slot.stats, slot.served is not None, self.cycles
        )

    def _loop(self) -> None:
        period = self.config.predictor.refresh_s or float(self.config.model.step_seconds)
        while not self._stop.is_set():
            now = time.time()
            boundary = float(np.floor(now / period) * period)
            if self._awaits_issue(boundary):
                deadline = time.monotonic() + ISSUE_WAIT_S
                while self._awaits_issue(boundary) and (left := deadline - time.monotonic()) > 0:
                    self._wake.wait(left)
                    self._wake.clear()
                    self._run_issues()
            self._run_issues()
            if self._pass_wanted or boundary > self._served_boundary:
                self._pass_wanted = False
                self._served_boundary = max(self._served_boundary, boundary)
                if not self._timer_pass():
                    self._pass_wanted = True  # cancelled by a swap: again at once, with the new model
                    continue
            wait = (np.floor(now / period) + 1) * period - time.time()
            if self._issues.empty() and not self._pass_wanted:
                self._wake.wait(max(0.0, wait))
            self._wake.clear()

    def _timer_pass(self) -> bool:
        """Run and publish a pass now; False when a swap cancelled it (run another at once)."""
        try:
            latest = self.latest = self.compute(time.time())
        except ForecastCancelled:
            log.info("a new model was swapped in mid-pass: forecasting again with it")
            return False
        except Exception:
            log.exception("forecast pass failed; the previous pass stays served")
            return True
        self._published(latest)
        return True

    def _published(self, latest: ForecastPass) -> None:
        self.cycles += 1
        log.info(
            "forecast pass: %d servers with %s %s in %.2f s",
            latest.outlook.forecast_count,
            latest.outlook.model.kind,
            latest.outlook.model.version or "",
            latest.duration_s,
        )
        self.metrics_text = self.exposition(latest)

    def _awaits_issue(self, boundary: float) -> bool:
        """Whether live data is about to cross the issue point ``boundary`` (wait for its pass)."""
        step, every = self.config.model.step_seconds, self.config.accuracy.issue_every_s
        mark = self.watermark()
        return (
            not self._stop.is_set()
            and not self._pass_wanted
            and boundary % every == 0
            and boundary > self._served_boundary
            and mark is not None
            and boundary - 2 * step <= mark < boundary
        )

    def _drain(self) -> list[IssueAt]:
        pending: list[IssueAt] = []
        while True:
            try:
                pending.append(self._issues.get_nowait())
            except queue.Empty:
                return pending

    def _run_issues(self) -> None:
        """Forecast the queued issue points in order; publish the last if it is the newest."""
        pending = self._drain()
        for k, event in enumerate(pending):
            future = event.forecast
            if future is not None and not future.set_running_or_notify_cancel():
                continue  # the accuracy thread gave up on it
            try:
                latest = self.latest.outlook
                newest = latest.forecast_start is None or event.at >= latest.forecast_start
                if k == len(pending) - 1 and newest and event.served is self.slot.served:
                    metrics = tuple(self.windows.metrics)
                    made = snapshot_pass(
                        self.config, metrics, event.snap, event.served, event.at, self.router
                    )
                    self.latest = made
                    self._served_boundary = max(self._served_boundary, float(event.at))
                    self._published(made)
                    # The ledger keeps the model's own forecast; routing scores the others beside it.
                    result = (made.outlook.raw, made.outlook.eligible, made.outlook.model)
                else:
                    result = forecast_snapshot(self.config, event.snap, event.served, lambda: False)
            except Exception as exc:
                log.exception("issue point %d: forecast failed", event.at)
                if future is not None:
                    future.set_exception(exc)
                continue
            if future is not None:
                future.set_result(result)
