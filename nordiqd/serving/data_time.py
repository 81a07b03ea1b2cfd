"""Batches applied to the rolling windows in data time, with the accuracy events they cause.

``DataTimeFeed`` keeps the windows' watermark, the newest record time applied. A batch
that crosses issue points (``[accuracy] issue_every_s``) is applied in time order: the
records before each point first, then the windows as they stood right before it and the
model served at that moment go to the accuracy thread as an ``IssueAt``. A batch that
moves the watermark across a step boundary hands it the steps now final (``Observe``),
only those, so a backfill's queue stays small. A late batch (all older than the
watermark) lands in its buckets; a step already handed over is not handed over again.
At start the refill goes the same way from the ledger's saved watermark, so the issue
points crossed while the predictor was down are issued, each from the windows as they
stood then (``refilled``).

One writer: the predictor calls ``apply`` and ``refilled`` from one thread at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from nordiqd.accuracy.live import LiveAccuracy
from nordiqd.model.params import ModelSpec
from nordiqd.predict.windows import RollingWindows
from nordiqd.serving.cycle import ForecastCycle
from nordiqd.serving.scoring import IssueAt, Issued, Observe, Scoring
from nordiqd.serving.slot import ModelSlot

__all__ = ["DataTimeFeed"]


def newest_time(table: pa.Table) -> float | None:
    """Epoch seconds of the newest record of ``table`` (None when it is empty)."""
    newest = pc.max(table.column("timestamp").cast(pa.int64())).as_py()
    return None if newest is None else float(newest) / 1000.0


class DataTimeFeed:
    """Applies batches to ``windows`` in data time; see the module docstring.

    Args:
        windows: The rolling windows.
        spec: The ``[model]`` section (targets, step).
        live: The ledger (which issue points are due).
        scoring: The accuracy thread the events go to.
        slot: The model slot (the model served at an issue point).
        cycle: The forecast cycle, which forecasts each issue point as a pass; None: the
            accuracy thread forecasts them.
    """

    def __init__(
        self,
        windows: RollingWindows,
        spec: ModelSpec,
        live: LiveAccuracy,
        scoring: Scoring,
        slot: ModelSlot,
        cycle: ForecastCycle | None = None,
    ) -> None:
        self.windows = windows
        self.targets = list(spec.targets)
        self.step = spec.step_seconds
        self.reach = spec.horizon_steps * spec.step_seconds  # a forecast's span of data time
        self.live = live
        self.scoring = scoring
        self.slot = slot
        self.cycle = cycle
        self.watermark: float | None = None
        self._observed: int | None = None  # ``through`` of the last Observe

    def apply(self, table: pa.Table) -> None:
        """Add a batch; each issue point it crosses sees only the records before it."""
        newest = newest_time(table)
        if newest is None:
            return
        before = self.watermark
        stamps = table.column("timestamp").cast(pa.int64())  # epoch ms
        points = self._due(before, stamps.to_numpy()) if before is not None else []
        table = self._fill(table, points, self.windows.add)
        if before is not None and newest <= before:
            # A late batch: the steps it filled are handed over again (within the grace).
            oldest = pc.min(table.column("timestamp").cast(pa.int64())).as_py()
            self.observe(since=float(oldest) / 1000.0)
            return
        self.watermark = newest
        if before is None or newest // self.step > before // self.step:
            self.observe()

    def _due(self, before: float, stamps_ms: np.ndarray) -> list[int]:
        """The issue points after ``before`` whose horizon holds a record of this batch.

        One whose whole horizon lies in a gap of data time has nothing to be scored
        against: without this, a batch after a long silence (or one record from years
        ago) would issue a forecast at every point of the gap, hundreds of thousands.
        The newest record is in the batch, so every point whose horizon reaches past it
        is kept for the batches to come.
        """
        seconds = np.unique(stamps_ms // 1000).astype(np.float64)
        breaks = np.flatnonzero(np.diff(seconds) >= self.reach) + 1
        due: list[int] = []
        for run in np.split(seconds, breaks):  # records closer than a horizon: one span
            lo = max(before, float(run[0]) - self.reach)
            due += [at for at in self.live.due(lo, float(run[-1])) if not due or at > due[-1]]
        return due

    def refilled(
        self, table: pa.Table, since: int | None, settle: Callable[[], object] = lambda: None
    ) -> None:
        """Refill the windows from ``table`` (the buffer, read at start), in data time.

        Args:
            table: Records from a window before ``since`` to the newest in the buffer.
            since: The ledger's saved watermark (``scored_through``): the issue points
                after it that the table crosses were missed while the predictor was down,
                and are issued now, each from the windows as they stood then. None: no
                catch-up (a first start).
            settle: Called once the records before the first such point are in the
                windows, before it is issued (the predictor waits there for its model).

        A restart delivers the steps before ``since`` again; the ledger's saved masks stop
        them being counted twice.
        """
        newest = newest_time(table) if table.num_rows else None
        stamps = table.column("timestamp").cast(pa.int64()).to_numpy()  # epoch ms
        points = self._due(since, stamps) if since is not None and newest is not None else []
        self._fill(table, points, self.windows.refill, settle)
        if newest is not None and (self.watermark is None or newest > self.watermark):
            self.watermark = newest
        self.observe()

    def _fill(
        self,
        table: pa.Table,
        points: list[int],
        add: Callable[[pa.Table], None],
        settle: Callable[[], object] | None = None,
    ) -> pa.Table:
        """Add the records before each point, then issue at it; return the records after the last."""
        stamps = table.column("timestamp").cast(pa.int64())  # epoch ms
        for k, at in enumerate(points):
            head = pc.less(stamps, at * 1000)
            add(table.filter(head))
            if k == 0 and settle is not None:
                settle()
            rest = pc.invert(head)
            table, stamps = table.filter(rest), stamps.filter(rest)
            self.issue(at)
        add(table)
        return table

    def issue(self, at: int) -> None:
        """Hand over the windows as they stand now, right before issue point ``at``."""
        snap = self.windows.snapshot(self.targets, now=at - 1)
        forecast: Future[Issued] | None = Future() if self.cycle is not None else None
        event = IssueAt(at, snap, self.slot.served, forecast)
        if self.scoring.put(event) and self.cycle is not None:
            self.cycle.issue(event)

    def observe(self, since: float | None = None) -> None:
        """Have the accuracy thread score the steps final by the watermark.

        Args:
            since: Also hand over the final steps from the one holding ``since`` on (a late
                batch's oldest record); None: only the steps final since the last observe.
        """
        if self.watermark is None:
            return
        through = int(self.watermark // self.step) * self.step
        snap = self.windows.snapshot(self.targets, now=through - 1)
        # Only the steps final since the last observe travel (one more is harmless: a step
        # handed over again is not scored again).
        fresh = self.windows.length if self._observed is None else (through - self._observed) // self.step + 1
        if since is not None:
            fresh = max(fresh, (through - int(since // self.step) * self.step) // self.step)
        keep = max(1, min(self.windows.length, fresh))
        self.scoring.put(Observe(snap._replace(windows=snap.windows[:, -keep:].copy()), through))
        self._observed = through
