"""The forecast ledger: served forecasts kept until their horizon has passed, then scored.

At every issue point (data time, a multiple of ``[accuracy] issue_every_s``) the owner
calls ``issue`` with the forecast it served for every server: all quantiles over the
whole horizon, the seasonal-naive values for the same steps and each series' scale.
Step ``h`` of an issue at ``t`` covers ``[t + h*step, t + (h+1)*step)``.

Beside it, an issue may hold what other candidates would have served (``last``, the
window's last value; ``challenger``, the statistical model's p50): with a ``RoutingBook``
the served issue's scored points also score them, and seasonal naive, per lead bucket
(``routing.py``). A model in shadow is not a routing candidate.

``actuals`` takes final step means, many (server, step) rows at once, in any order. Each
outstanding issue that covers a row's step scores it into the ``ScoreBook``, and marks
the (server, target, step) scored, so a step delivered twice is scored once. A NaN
actual is a gap: nothing is scored, and the point stays open. Time is the data's own:
the newest step end delivered is the ``scored_through`` watermark, and an issue whose
horizon ended ``grace_s`` or more before it is evicted. The grace lets a batch arrive out
of order by up to that much without losing points; a step that arrives after every
issue covering it has gone is a gap, never a wrong score.

Memory: float32 forecasts, naive values and scales and a bool mask per issue; at 1,000
servers x 5 targets x 96 steps x 3 quantiles an issue holds 8.2 MB; with hourly issues,
an 8 h horizon and an hour's grace, nine are outstanding at once (74 MB). The routing
candidates add 20 KB per issue for ``last`` and 0.96 MB for a ``challenger``, kept as
float16 offsets from ``last`` (a routing error needs 3 significant digits of the offset,
not 7 of the value), so the whole stays within 100 MB.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from nordiqd.accuracy.buckets import bucket_of_lead
from nordiqd.accuracy.points import point_sums
from nordiqd.accuracy.residuals import ResidualRings, sampled_leads
from nordiqd.accuracy.routing import CANDIDATES, LAST_VALUE, MODEL, SEASONAL_NAIVE, STATISTICAL, RoutingBook
from nordiqd.accuracy.scores import Kind, ScoreBook

__all__ = ["ForecastLedger", "Issue", "issue_points"]


def issue_points(after: float, until: float, every: int) -> list[int]:
    """The issue points a data-time interval ``(after, until]`` crosses, oldest first."""
    first = int(np.floor(after / every)) + 1
    last = int(np.floor(until / every))
    return [k * every for k in range(first, last + 1)]


@dataclass
class Issue:
    """One issue point's forecasts for every server, and which points are scored.

    Attributes:
        at: Issue time (data time, epoch seconds): the start of step 0.
        version: Model version (``baseline`` for the baseline).
        kind: ``tft``, ``baseline`` or ``shadow`` (forecast beside the champion, not served).
        servers: Server names, the rows of every array.
        forecasts: Array [S, T, H, Q] float32.
        naive: Array [S, T, H] float32, the value one day before each step (NaN: unknown).
        scale: Array [S, T] float32, mean absolute 1-day difference (NaN: unknown).
        scored: Array [S, T, H] bool, points already scored.
        last: Array [S, T] float32, each series' last value before ``at`` (a routing
            candidate; NaN: unknown); None when not kept.
        challenger: Array [S, T, H] float16, the statistical challenger's p50 less
            ``last`` (less 0 where ``last`` is NaN; NaN where it has none); None when not kept.
    """

    at: int
    version: str
    kind: Kind
    servers: list[str]
    forecasts: np.ndarray
    naive: np.ndarray
    scale: np.ndarray
    scored: np.ndarray
    last: np.ndarray | None = None
    challenger: np.ndarray | None = None
    rows: dict[str, int] = field(init=False, repr=False)
    ids: np.ndarray = field(init=False, repr=False)  # each row's server id in the book

    def __post_init__(self) -> None:
        self.rows = {name: i for i, name in enumerate(self.servers)}

    @property
    def nbytes(self) -> int:
        """Bytes held by the arrays."""
        extra = sum(a.nbytes for a in (self.last, self.challenger) if a is not None)
        return self.forecasts.nbytes + self.naive.nbytes + self.scale.nbytes + self.scored.nbytes + extra


def _offsets(challenger: np.ndarray, last: np.ndarray | None) -> np.ndarray:
    """The challenger's p50 as float16 offsets from the last value (see ``Issue.challenger``)."""
    base = 0.0 if last is None else np.nan_to_num(np.asarray(last, dtype=np.float64))[..., None]
    return (np.asarray(challenger, dtype=np.float64) - base).astype(np.float16)


def _key(at: int, version: str, kind: Kind) -> tuple[int, str | None]:
    """What makes an issue one of a kind: its point, and the version of a model in shadow."""
    return at, version if kind == "shadow" else None


class ForecastLedger:
    """The outstanding issues, oldest first; see the module docstring.

    Args:
        book: Where scored points go.
        quantiles: Quantile levels of every forecast, increasing, containing 0.5.
        step_seconds: Model step.
        horizon_steps: Steps of every forecast.
        grace_s: How long past its horizon (in data time) an issue is kept for late steps.
        routes: Where the routing candidates' errors go; None: they are not scored.
        rings: Where the served issue's band residuals go (calibration); None: not kept.
    """

    def __init__(
        self,
        book: ScoreBook,
        quantiles: Sequence[float],
        step_seconds: int,
        horizon_steps: int,
        grace_s: int = 0,
        routes: RoutingBook | None = None,
        rings: ResidualRings | None = None,
    ) -> None:
        self.book = book
        self.routes = routes
        self.rings = rings
        self.quantiles = tuple(quantiles)
        self.step = step_seconds
        self.horizon = horizon_steps
        self.grace_s = grace_s
        self.issues: list[Issue] = []
        self.scored_through: int | None = None
        self._bucket = bucket_of_lead(horizon_steps, step_seconds)
        self._median = self.quantiles.index(0.5)
        self._sampled = sampled_leads(self._bucket)

    @property
    def nbytes(self) -> int:
        """Bytes held by the outstanding issues' arrays and the routing book."""
        extra = sum(x.nbytes for x in (self.routes, self.rings) if x is not None)
        return sum(i.nbytes for i in self.issues) + extra

    def issue(
        self,
        at: int,
        version: str,
        kind: Kind,
        servers: Sequence[str],
        forecasts: np.ndarray,
        naive: np.ndarray,
        scale: np.ndarray,
        last: np.ndarray | None = None,
        challenger: np.ndarray | None = None,
    ) -> bool:
        """Keep the forecasts served at issue point ``at`` (and the candidates beside them).

        Returns:
            False when ``at`` is already held (a restart issuing again, perhaps with
            another model loaded by then) or its horizon has already passed; nothing is
            kept then. The served forecast is one issue at ``at``, and each model in
            shadow keeps one of its own beside it.

        Raises:
            ValueError: ``at`` is off the step grid, or an array's shape does not match
                the servers, targets, horizon and quantiles.
        """
        if at % self.step:
            raise ValueError(f"issue point {at} is not on the {self.step} s step grid")
        s, t, h, q = len(servers), len(self.book.targets), self.horizon, len(self.quantiles)
        checks = [
            ("forecasts", forecasts, (s, t, h, q)),
            ("naive", naive, (s, t, h)),
            ("scale", scale, (s, t)),
            ("last", last, (s, t)),
            ("challenger", challenger, (s, t, h)),
        ]
        for name, arr, shape in checks:
            if arr is not None and np.shape(arr) != shape:
                raise ValueError(f"{name} has shape {np.shape(arr)}, expected {shape}")
        key = _key(at, version, kind)
        if any(_key(i.at, i.version, i.kind) == key for i in self.issues) or self._expired(at):
            return False
        kept = Issue(
            at=int(at),
            version=version,
            kind=kind,
            servers=list(servers),
            forecasts=np.array(forecasts, dtype=np.float32),
            naive=np.array(naive, dtype=np.float32),
            scale=np.array(scale, dtype=np.float32),
            scored=np.zeros((s, t, h), dtype=bool),
            last=None if last is None else np.array(last, dtype=np.float32),
            challenger=None if challenger is None else _offsets(challenger, last),
        )
        self.restore(kept)
        return True

    def restore(self, kept: Issue) -> None:
        """Hold ``kept`` (a new issue, or one loaded from disk) in time order."""
        self.book.serve(kept.version, kept.kind, kept.at)
        kept.ids = self.book.server_ids(kept.servers)
        self.issues.append(kept)
        self.issues.sort(key=lambda i: i.at)

    def actuals(self, servers: Sequence[str], step_start: np.ndarray, values: np.ndarray) -> int:
        """Score final step means against every outstanding issue that covers them.

        Args:
            servers: Server of each row.
            step_start: Array [N] int, start of each row's step (epoch seconds, on the
                step grid).
            values: Array [N, T], the step means of every target (NaN: a gap).

        Returns:
            Points scored.
        """
        starts = np.asarray(step_start, dtype=np.int64)
        vals = np.asarray(values, dtype=np.float64)
        if not len(starts):
            return 0
        scored = sum(self._score(issue, servers, starts, vals) for issue in self.issues)
        newest = int(starts.max()) + self.step
        if self.scored_through is None or newest > self.scored_through:
            self.scored_through = newest
        self.issues = [i for i in self.issues if not self._expired(i.at)]
        return scored

    def _expired(self, at: int) -> bool:
        end = at + self.horizon * self.step
        return self.scored_through is not None and end + self.grace_s <= self.scored_through

    def _score(self, issue: Issue, servers: Sequence[str], starts: np.ndarray, vals: np.ndarray) -> int:
        offset = starts - issue.at
        lead = offset // self.step
        row = np.fromiter((issue.rows.get(n, -1) for n in servers), dtype=np.int64, count=len(servers))
        ok = (offset >= 0) & (offset % self.step == 0) & (lead < self.horizon) & (row >= 0)
        if not ok.any():
            return 0
        # A (server, step) twice in one call counts once: keep its first row.
        idx = np.flatnonzero(ok)
        _, first = np.unique(row[idx] * self.horizon + lead[idx], return_index=True)
        idx = idx[np.sort(first)]
        r, h = row[idx][:, None], lead[idx][:, None]
        tt = np.arange(len(self.book.targets))[None, :]
        y = np.where(issue.scored[r, tt, h], np.nan, vals[idx])
        result = point_sums(
            y, issue.forecasts[r, tt, h], issue.naive[r, tt, h], issue.scale[r[:, 0]], self.quantiles
        )
        issue.scored[r, tt, h] |= np.isfinite(y)
        i, t = np.nonzero(result.scored)
        self.book.add(
            issue.version,
            issue.kind,
            starts[idx][i],
            t,
            self._bucket[lead[idx][i]],
            issue.ids[row[idx][i]],
            result.sums,
        )
        if (self.routes is not None or self.rings is not None) and issue.kind != "shadow" and len(i):
            self._route(issue, y[i, t], row[idx][i], lead[idx][i], t, int(starts[idx].max()))
        return len(i)

    def _route(
        self, issue: Issue, y: np.ndarray, row: np.ndarray, lead: np.ndarray, t: np.ndarray, at: int
    ) -> None:
        """Score each candidate's p50 (routing) and band (calibration) on the served issue's points."""
        signed = np.full((len(y), len(CANDIDATES)), np.nan)  # actual - p50
        signed[:, MODEL] = y - issue.forecasts[row, t, lead, self._median]
        signed[:, SEASONAL_NAIVE] = y - issue.naive[row, t, lead]
        if issue.last is not None:
            signed[:, LAST_VALUE] = y - issue.last[row, t]
        if issue.challenger is not None:
            base = 0.0 if issue.last is None else np.nan_to_num(issue.last[row, t])
            signed[:, STATISTICAL] = y - (issue.challenger[row, t, lead].astype(np.float64) + base)
        ids, bucket = issue.ids[row], self._bucket[lead]
        if self.routes is not None:
            self.routes.add(at, ids, t, bucket, np.abs(signed))
        if self.rings is not None:
            keep = self._sampled[lead]
            edges = issue.forecasts[row[keep], t[keep], lead[keep]]
            scores = np.column_stack(
                [edges[:, 0] - y[keep], y[keep] - edges[:, -1], signed[keep][:, MODEL + 1 :]]
            )
            self.rings.add(ids[keep], t[keep], bucket[keep], scores)
