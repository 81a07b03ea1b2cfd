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

How it stops: ``close()`` sets the stop event and joins the thread.
"""

from __future__ import annotations

import logging
import threading
import time

import numpy as np

from nordiqd.config import Config
from nordiqd.model.errors import ForecastCancelled
from nordiqd.predict.windows import RollingWindows
from nordiqd.serving.exposition import forecast_metrics
from nordiqd.serving.forecast_pass import ForecastPass, run_pass
from nordiqd.serving.slot import ModelSlot

log = logging.getLogger(__name__)


class ForecastCycle:
    """Runs ``ForecastPass``es on its own thread; see the module docstring."""

    def __init__(self, config: Config, windows: RollingWindows, slot: ModelSlot) -> None:
        self.config = config
        self.windows = windows
        self.slot = slot
        self.cycles = 0
        self.latest = self.compute(time.time())
        self.metrics_text = self.exposition(self.latest)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="forecast-cycle", daemon=True)

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def trigger(self) -> None:
        """Run a new pass now (from any thread)."""
        self._wake.set()

    def close(self) -> None:
        """Stop the thread."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=1.0)  # a pass in progress only reads: no need to wait it out

    def compute(self, now: float) -> ForecastPass:
        """One pass with the model served now; abandoned if another is swapped in meanwhile."""
        served = self.slot.served
        return run_pass(
            self.config, self.windows, served, now, cancelled=lambda: self.slot.served is not served
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
            try:
                latest = self.latest = self.compute(now)
                self.cycles += 1
                log.info(
                    "forecast pass: %d servers with %s %s in %.2f s",
                    latest.outlook.forecast_count,
                    latest.outlook.model.kind,
                    latest.outlook.model.version or "",
                    latest.duration_s,
                )
                self.metrics_text = self.exposition(latest)
            except ForecastCancelled:
                log.info("a new model was swapped in mid-pass: forecasting again with it")
                continue
            except Exception:
                log.exception("forecast pass failed; the previous pass stays served")
            wait = (np.floor(now / period) + 1) * period - time.time()
            self._wake.wait(max(0.0, wait))
            self._wake.clear()
