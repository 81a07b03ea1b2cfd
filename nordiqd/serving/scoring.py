"""The accuracy thread: keeps served forecasts at issue points and scores them in data time.

How it runs: the predictor's role thread applies batches to the rolling windows in data
time and enqueues, in order, ``IssueAt`` (the windows as they stood right before an issue
point, and the model served then) and ``Observe`` (the windows after a step boundary was
crossed). One thread takes them off one queue, so an issue is always kept before the
steps it covers are scored. ``IssueAt`` scores the snapshot's final steps, forecasts the
snapshot exactly as a forecast pass does (``outlook.forecast_snapshot``), keeps it in the
ledger and saves; ``Observe`` scores the final steps. A failed event is logged and
skipped: scoring never stops forecasting.

How it stops: ``close()`` enqueues a stop, joins the thread (it finishes the events
before it) and saves the ledger.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass

from nordiqd.accuracy.live import LiveAccuracy
from nordiqd.config import Config
from nordiqd.predict.windows import WindowSnapshot
from nordiqd.serving.outlook import forecast_snapshot
from nordiqd.serving.slot import ServedModel

log = logging.getLogger(__name__)

__all__ = ["IssueAt", "Observe", "Scoring"]

CLOSE_TIMEOUT_S = 30.0  # a TFT forecast of the fleet may be in progress


@dataclass(frozen=True)
class IssueAt:
    """Keep the forecast served at issue point ``at``.

    Attributes:
        at: The issue point (data time, epoch seconds).
        snap: Target windows as they stood then (``snapshot(targets, now=at - 1)``).
        served: The model served then; None for the baseline.
    """

    at: int
    snap: WindowSnapshot
    served: ServedModel | None


@dataclass(frozen=True)
class Observe:
    """Score the final steps of ``snap``: those that end at or before ``through``."""

    snap: WindowSnapshot
    through: int


Event = IssueAt | Observe


class Scoring:
    """Runs the accuracy events on one thread; see the module docstring.

    Args:
        config: The daemon's configuration.
        live: The ledger and its scores.
    """

    def __init__(self, config: Config, live: LiveAccuracy) -> None:
        self.config = config
        self.live = live
        self._events: queue.Queue[Event | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="accuracy", daemon=True)

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def put(self, event: Event) -> None:
        """Enqueue an event (events run in the order they are put)."""
        self._events.put(event)

    def close(self) -> None:
        """Finish the queued events, stop the thread and save."""
        if self._thread.is_alive():
            self._events.put(None)
            self._thread.join(timeout=CLOSE_TIMEOUT_S)
        self.live.save()

    def _loop(self) -> None:
        while (event := self._events.get()) is not None:
            try:
                self.handle(event)
            except Exception:
                log.exception("accuracy event failed; its points stay unscored")

    def handle(self, event: Event) -> None:
        """Run one event on the calling thread."""
        match event:
            case IssueAt(at=at, snap=snap, served=served):
                self._observe(snap, at)
                if not snap.names:
                    return
                values, eligible, model = forecast_snapshot(self.config, snap, served, lambda: False)
                if eligible.size:
                    self.live.issue(
                        at,
                        model.label,
                        model.kind,
                        [snap.names[i] for i in eligible],
                        values[eligible],
                        snap.windows[eligible],
                    )
                self.live.save()
            case Observe(snap=snap, through=through):
                self._observe(snap, through)

    def _observe(self, snap: WindowSnapshot, through: int) -> None:
        if snap.names:
            self.live.observe(snap.names, snap.windows, int(snap.last_bucket_start[0]), through)
