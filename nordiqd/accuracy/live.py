"""``LiveAccuracy``: the ledger, its scores and their file, as the predictor holds them.

The owner drives it in data time, in this order for every batch of final step means:

1. ``due(after, until)``: the issue points the data time crossed. For each, in order:
   snapshot the windows as they stood then (``snapshot(targets, now=at - 1)``), hand
   its final steps to ``observe``, then ``issue`` the forecast made from that snapshot
   (the seasonal-naive reference and the MASE scale are filled in here).
2. ``observe`` (or ``actuals``) with the final step means of the newest windows.
3. ``save()`` after an issue point (sums and ledger together, atomically) and on close.

A restart loads the file; delivering again every complete step in the refilled windows
scores only what the saved masks have not, so nothing is lost and nothing counted twice.
Queries: ``report`` (``GET /admin/accuracy``) and ``trailing`` (``/metrics``, the last
``[accuracy] window_hours`` of data time).

Thread-safe: one lock, so the forecast thread can issue while the role thread answers.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nordiqd.accuracy import persist
from nordiqd.accuracy.ledger import ForecastLedger, issue_points
from nordiqd.accuracy.reference import last_values, seasonal_naive_steps
from nordiqd.accuracy.report import AccuracyReport, build_report
from nordiqd.accuracy.residuals import ResidualRings
from nordiqd.accuracy.routing import RoutingBook
from nordiqd.accuracy.scores import HOUR_S, Kind, ScoreBook
from nordiqd.calibration.conformal import BandShift
from nordiqd.config import AccuracyConfig, Config
from nordiqd.model.params import ModelSpec
from nordiqd.routing import RoutingConfig

__all__ = ["FILE_NAME", "LiveAccuracy"]

FILE_NAME = "accuracy.msgpack"


class LiveAccuracy:
    """Scores every served forecast as its actuals arrive; see the module docstring.

    Args:
        path: The state file (loaded now if it exists).
        spec: Targets, quantiles, step and horizon of the served forecasts.
        accuracy: The ``[accuracy]`` section.
        retention_days: Sums older than this many days of data time are dropped.
        routing: The ``[routing]`` section; enabled, the served issues also score the
            routing candidates (``routing.RoutingBook``), and ``routes`` answers from them;
            with ``calibrate``, their band residuals are kept (``residuals.ResidualRings``)
            and ``bands`` answers from them.
    """

    def __init__(
        self,
        path: Path | str,
        spec: ModelSpec,
        accuracy: AccuracyConfig,
        retention_days: int,
        routing: RoutingConfig | None = None,
    ) -> None:
        self.path = Path(path)
        self.settings = accuracy
        self.routing = routing if routing is not None and routing.enabled else None
        self.retention_s = retention_days * 86400
        # An hour's grace (one issue interval) past the horizon: a batch may arrive that
        # much out of order and still be scored by every forecast that covered it.
        routed = self.routing
        empty = ForecastLedger(
            ScoreBook(spec.targets),
            spec.quantiles,
            spec.step_seconds,
            spec.horizon_steps,
            grace_s=accuracy.issue_every_s,
            routes=None if routed is None else RoutingBook(spec.targets, routed.half_life_hours * 3600),
            rings=ResidualRings(spec.targets) if routed is not None and routed.calibrate else None,
        )
        self.ledger = persist.load(self.path, empty)
        self._lock = threading.Lock()
        self._bands: BandShift | None = None  # every row's shifts, as of ``refresh_bands``
        self.refresh_bands()  # from the saved rings: a restart serves calibrated bands at once

    @classmethod
    def from_config(cls, config: Config) -> LiveAccuracy:
        """The live accuracy of ``config``, its file in ``data_dir/state``."""
        return cls(
            Path(config.state_dir) / FILE_NAME,
            config.model,
            config.accuracy,
            config.buffer.retention_days,
            config.routing,
        )

    @property
    def scored_through(self) -> int | None:
        """End of the newest step delivered (data time), None before the first."""
        return self.ledger.scored_through

    def due(self, after: float, until: float) -> list[int]:
        """The issue points in the data-time interval ``(after, until]``, oldest first."""
        return issue_points(after, until, self.settings.issue_every_s)

    def issue(
        self,
        at: int,
        version: str,
        kind: Kind,
        servers: Sequence[str],
        forecasts: np.ndarray,
        windows: np.ndarray,
        scale: np.ndarray | None = None,
        challenger: np.ndarray | None = None,
    ) -> bool:
        """Keep the forecasts served at issue point ``at`` (see ``ForecastLedger.issue``).

        Args:
            at: The issue point (data time).
            version: Model version (``baseline`` for the baseline).
            kind: ``tft``, ``baseline`` or ``shadow``.
            servers: Server of each row.
            forecasts: Array [S, T, H, Q], the quantiles served.
            windows: Array [S, L, T], the windows the forecasts were made from (their last
                slot the step right before ``at``): the seasonal-naive reference.
            scale: Array [S, T], each series' mean absolute 1-day difference; None: as
                the scores measured it so far (``ScoreBook.scales``).
            challenger: Array [S, T, H], the statistical challenger's p50 for the same
                steps (a routing candidate; NaN where it has none); None: not fitted.
        """
        ledger = self.ledger
        naive = seasonal_naive_steps(windows, ledger.horizon, 86400 // ledger.step)
        routed = ledger.routes is not None and kind != "shadow"
        last = last_values(windows) if routed else None
        with self._lock:
            if scale is None:
                scale = ledger.book.scales(ledger.book.server_ids(servers))
            return ledger.issue(
                at, version, kind, servers, forecasts, naive, scale, last, challenger if routed else None
            )

    def routes(self, servers: Sequence[str], absent: np.ndarray | None = None) -> np.ndarray | None:
        """The routing candidate of every server, target and lead bucket (``RoutingBook.choose``).

        Args:
            servers: Server names.
            absent: Bool [S, targets, candidates]: candidates without a forecast now.

        Returns:
            Array [S, targets, buckets] int8 of indexes into ``routing.CANDIDATES``; None
            when routing is off.
        """
        if self.routing is None or self.ledger.routes is None:
            return None
        with self._lock:
            ids = self.ledger.book.known_ids(servers)
            return self.ledger.routes.choose(ids, self.routing.min_points, absent)

    def bands(self, servers: Sequence[str]) -> BandShift | None:
        """Each server's conformal band shifts per target, bucket and candidate.

        Answered from what ``refresh_bands`` computed last (for every server at once), so a
        pass never pays for the conformal quantiles.

        Returns:
            Arrays [S, targets, buckets, 4] (model, last value, seasonal naive,
            statistical); None when calibration is off or nothing was computed yet.
        """
        with self._lock:
            every = self._bands
            ids = self.ledger.book.known_ids(servers)
        if every is None:
            return None
        known = (ids >= 0) & (ids < every.lower.shape[0])
        picked = []
        for arr in (every.lower, every.upper, every.points):
            out = np.zeros((len(ids), *arr.shape[1:]), dtype=arr.dtype)
            out[known] = arr[ids[known]]
            picked.append(out)
        return BandShift(lower=picked[0], upper=picked[1], points=picked[2])

    def refresh_bands(self) -> None:
        """Compute every server's band shifts from the rings (``ResidualRings.shifts``).

        Called by the accuracy thread, the rings' only writer, after each issue point:
        the conformal quantiles of the whole fleet take a few hundred ms, once an issue
        interval rather than in every pass.
        """
        rings = self.ledger.rings
        if rings is None:
            return
        every = rings.shifts(np.arange(rings.scores.shape[0]))
        with self._lock:
            self._bands = every

    def observe(
        self, servers: Sequence[str], windows: np.ndarray, last_bucket_start: int, through: int
    ) -> int:
        """Score the final steps of a window snapshot that outstanding issues still need.

        Steps that end at or before ``through`` are final; of those, only the ones from the
        watermark on are handed over (older ones were, before this process or the last
        save), so a pass costs the new steps, not the whole window. A step handed over
        again is not scored again, so overlapping snapshots are harmless.

        Args:
            servers: Server of each row.
            windows: Array [S, L, T] of step means (NaN: a gap).
            last_bucket_start: Start of the last slot (epoch seconds).
            through: Data time up to which steps are final.

        Returns:
            Points scored.
        """
        ledger = self.ledger
        length = windows.shape[1]
        starts = last_bucket_start - (length - 1 - np.arange(length, dtype=np.int64)) * ledger.step
        with self._lock:
            if not ledger.issues:
                return 0
            floor = ledger.issues[0].at
            if ledger.scored_through is not None:
                # Steps inside the grace are handed over again: a late batch may have filled
                # one that was a gap; the masks keep what was scored from counting twice.
                floor = max(floor, ledger.scored_through - ledger.grace_s)
        slots = np.flatnonzero((starts >= floor) & (starts + ledger.step <= through))
        if not slots.size:
            return 0
        n = len(servers)
        rows = windows[:, slots, :].reshape(n * slots.size, -1)
        names = [name for name in servers for _ in range(slots.size)]
        return self.actuals(names, np.tile(starts[slots], n), rows)

    def actuals(self, servers: Sequence[str], step_start: np.ndarray, values: np.ndarray) -> int:
        """Score final step means (see ``ForecastLedger.actuals``); return the points scored."""
        with self._lock:
            scored = self.ledger.actuals(servers, step_start, values)
            if self.ledger.scored_through is not None:
                self.ledger.book.trim(self.ledger.scored_through - self.retention_s)
            return scored

    def save(self) -> None:
        """Write sums and ledger atomically."""
        with self._lock:
            persist.save(self.path, self.ledger)

    def report(
        self,
        since: int | None = None,
        until: int | None = None,
        target: str | None = None,
        server: str | None = None,
        hours: bool = True,
    ) -> AccuracyReport:
        """Scores over ``[since, until)`` of data time (epoch seconds; None: unbounded)."""
        with self._lock:
            ledger = self.ledger
            return build_report(
                ledger.book, ledger.scored_through, len(ledger.quantiles), since, until, target, server, hours
            )

    def trailing(self) -> AccuracyReport:
        """Scores over the last ``window_hours`` of data time, whole hours, for ``/metrics``."""
        with self._lock:
            through = self.ledger.scored_through
        if through is None:
            return self.report(hours=False)
        until = through - through % HOUR_S + (HOUR_S if through % HOUR_S else 0)
        return self.report(since=until - self.settings.window_hours * HOUR_S, until=until, hours=False)
