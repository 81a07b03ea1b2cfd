"""The accuracy thread: keeps served forecasts at issue points and scores them in data time.

How it runs: the predictor's role thread applies batches to the rolling windows in data
time and enqueues, in order, ``IssueAt`` (the windows as they stood right before an issue
point, and the model served then) and ``Observe`` (a step boundary was crossed). One
thread takes them off one queue, so an issue is always kept before the steps it covers
are scored. ``IssueAt`` scores the snapshot's final steps, takes the snapshot's forecast
from the forecast cycle (which forecasts it as a pass, ``serving.cycle``, and answers
through the event's future), keeps it in the ledger and saves; when the cycle cannot
answer (it stopped, or its forecast failed) the thread forecasts the snapshot itself,
the same way (``outlook.forecast_snapshot``); then probation runs (``serving.probation``:
a new champion's predecessor forecasts the same snapshot in shadow). ``Observe`` scores
the final steps of its snapshot, which holds only the steps that became final since the
last one. A failed
event is logged and skipped: scoring never stops forecasting.

Memory stays bounded when a backfill outruns the thread: at most
``MAX_PENDING_BYTES`` of issue snapshots wait; an issue point beyond that is skipped
with a warning (its forecasts are not scored: a gap, never a wrong score).

How it stops: ``close()`` enqueues a stop, joins the thread (it finishes the events
before it) and saves the ledger.
"""

from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import CancelledError, Future
from dataclasses import dataclass

import numpy as np

from nordiqd.accuracy.live import LiveAccuracy
from nordiqd.config import Config
from nordiqd.predict.windows import WindowSnapshot
from nordiqd.serving.challenger import StatisticalChallenger
from nordiqd.serving.outlook import ModelIdentity, forecast_snapshot
from nordiqd.serving.probation import Probation
from nordiqd.serving.slot import ServedModel

log = logging.getLogger(__name__)

__all__ = ["IssueAt", "Issued", "Observe", "Scoring"]

CLOSE_TIMEOUT_S = 30.0  # a TFT forecast of the fleet may be in progress
CYCLE_TIMEOUT_S = 300.0  # the cycle forecasts a backfill's issue points in order, ~1 s each

# An issue point's forecasts: values [n, targets, horizon, quantiles], eligible rows, model.
Issued = tuple[np.ndarray, np.ndarray, ModelIdentity]
MAX_PENDING_BYTES = 256 << 20  # issue snapshots waiting: 22 of 1,000 servers x 288 steps x 5 targets


@dataclass(frozen=True)
class IssueAt:
    """Keep the forecast served at issue point ``at``.

    Attributes:
        at: The issue point (data time, epoch seconds).
        snap: Target windows as they stood then (``snapshot(targets, now=at - 1)``).
        served: The model served then; None for the baseline.
        forecast: Where the forecast cycle answers with the snapshot's forecasts; None:
            the accuracy thread forecasts it itself.
    """

    at: int
    snap: WindowSnapshot
    served: ServedModel | None
    forecast: Future[Issued] | None = None


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
        max_pending_bytes: Issue snapshots allowed to wait (see the module docstring).
        probation: Runs probation at each issue point, after the served forecast is kept.
        challenger: The statistical challenger, whose p50 at each issue point is kept
            beside the served forecast for routing (None: no challenger).
    """

    def __init__(
        self,
        config: Config,
        live: LiveAccuracy,
        max_pending_bytes: int = MAX_PENDING_BYTES,
        probation: Probation | None = None,
        challenger: StatisticalChallenger | None = None,
    ) -> None:
        self.config = config
        self.live = live
        self.probation = probation
        self.challenger = challenger
        self.max_pending_bytes = max_pending_bytes
        self.skipped = 0  # issue points skipped because the thread was behind
        self._pending_bytes = 0
        self._pending_lock = threading.Lock()
        self._events: queue.Queue[Event | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="accuracy", daemon=True)

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def put(self, event: Event) -> bool:
        """Enqueue an event (events run in the order they are put).

        Returns:
            False when ``event`` is an issue and ``max_pending_bytes`` of issues already
            wait: it is dropped.
        """
        if isinstance(event, IssueAt):  # the first always fits, however large
            with self._pending_lock:
                size = event.snap.windows.nbytes
                full = self._pending_bytes and self._pending_bytes + size > self.max_pending_bytes
                if not full:
                    self._pending_bytes += size
            if full:
                self.skipped += 1
                log.warning(
                    "accuracy thread behind: issue point %d skipped (%d so far)", event.at, self.skipped
                )
                return False
        self._events.put(event)
        return True

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
            finally:
                if isinstance(event, IssueAt):
                    with self._pending_lock:
                        self._pending_bytes -= event.snap.windows.nbytes

    def handle(self, event: Event) -> None:
        """Run one event on the calling thread."""
        match event:
            case IssueAt(at=at, snap=snap):
                self._observe(snap, at)
                if not snap.names:
                    return
                values, eligible, model = self._forecasts(event)
                if eligible.size:
                    names = [snap.names[i] for i in eligible]
                    self.live.issue(
                        at,
                        model.label,
                        model.kind,
                        names,
                        values[eligible],
                        snap.windows[eligible],
                        challenger=self._challenger(names, at),
                    )
                self.live.refresh_bands()
                if self.probation is not None:
                    try:
                        self.probation.at_issue(at, snap, event.served)
                    except Exception:  # probation never stops scoring
                        log.exception("issue point %d: probation failed", at)
                self.live.save()
            case Observe(snap=snap, through=through):
                self._observe(snap, through)

    def _forecasts(self, event: IssueAt) -> Issued:
        """The cycle's forecasts of the issue point, or the thread's own when it has none."""
        if event.forecast is not None:
            try:
                return event.forecast.result(timeout=CYCLE_TIMEOUT_S)
            except CancelledError:
                pass  # the cycle stopped first
            except TimeoutError:
                event.forecast.cancel()
                log.warning("issue point %d: no forecast from the cycle in time; forecast here", event.at)
            except Exception:
                log.warning("issue point %d: the cycle's forecast failed; forecasting it here", event.at)
        return forecast_snapshot(self.config, event.snap, event.served, lambda: False)

    def _challenger(self, names: list[str], at: int) -> np.ndarray | None:
        """The statistical challenger's p50 [n, targets, horizon] for the steps from ``at``."""
        if self.challenger is None:
            return None
        made = self.challenger.forecast(names, float(at))
        return None if made is None else made[..., self.config.model.median_index]

    def _observe(self, snap: WindowSnapshot, through: int) -> None:
        if snap.names:
            self.live.observe(snap.names, snap.windows, int(snap.last_bucket_start[0]), through)
