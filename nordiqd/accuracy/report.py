"""A query over the running sums: the body of ``GET /admin/accuracy``.

``build_report(book, scored_through, since, until, target, server)`` sums the cells of the
window and turns sums into scores (``points`` says how). Without ``server`` it reads the
hourly fleet cells: every version in first-served order, with its lead buckets and its
targets (each with its own buckets). With ``server`` it reads the daily per-server cells,
which hold no lead buckets, so ``buckets`` is empty and the window is whole days. A score
whose denominator is zero (no point, no naive error, no scale) is null.

Each fleet version also carries ``hours``: its skill and coverage hour by hour (all lead
buckets together), the series the fleet page charts. The per-server view has none, since
its cells are daily.

``worst_servers`` ranks the servers of the last version served in the window by skill,
worst first.
"""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import numpy as np

from nordiqd.accuracy.buckets import ALL, BUCKETS
from nordiqd.accuracy.points import (
    ABS_ACTUAL,
    ABS_ERROR,
    INSIDE,
    MASE_POINTS,
    NAIVE_ABS_ERROR,
    PINBALL,
    POINTS,
    SCALED_ERROR,
)
from nordiqd.accuracy.scores import Kind, ScoreBook

__all__ = [
    "AccuracyReport",
    "HourScores",
    "Scores",
    "ServerScores",
    "TargetScores",
    "VersionScores",
    "build_report",
    "scores",
]

WORST_SERVERS = 10


class Scores(msgspec.Struct, frozen=True, kw_only=True):
    """Scores over a set of points; null where there is nothing to divide by."""

    points: int
    mae: float | None
    skill: float | None
    mase: float | None
    coverage: float | None
    wql: float | None


class TargetScores(Scores, frozen=True, kw_only=True):
    """Scores of one target, and of each lead bucket (``0-1h``, ``1-4h``, ``4-8h``, ``all``)."""

    buckets: dict[str, Scores]


class HourScores(msgspec.Struct, frozen=True, kw_only=True):
    """One version's scores over the steps that start in one hour, every lead bucket together."""

    hour: str
    points: int
    skill: float | None
    coverage: float | None


class VersionScores(TargetScores, frozen=True, kw_only=True):
    """One model version's scores in the window: overall, per bucket and per target.

    ``from`` and ``to`` are the first and last step scored in the window (ISO 8601, UTC);
    ``hours`` is the hourly series in time order (empty with ``server``).
    """

    version: str
    kind: Kind
    from_: str | None = msgspec.field(name="from")
    to: str | None
    targets: dict[str, TargetScores]
    hours: list[HourScores] = msgspec.field(default_factory=list)


class ServerScores(Scores, frozen=True, kw_only=True):
    """One server's scores under one version, all targets together."""

    server: str
    version: str


class AccuracyReport(msgspec.Struct, frozen=True, kw_only=True):
    """The body of ``GET /admin/accuracy``."""

    scored_through: str | None
    versions: list[VersionScores]
    worst_servers: list[ServerScores]


def iso(epoch_s: int | None) -> str | None:
    """Epoch seconds as ISO 8601 UTC with a ``Z`` (None stays None)."""
    if epoch_s is None:
        return None
    return datetime.fromtimestamp(epoch_s, UTC).isoformat().replace("+00:00", "Z")


def _ratio(num: float, den: float) -> float | None:
    return float(num / den) if den > 0 else None


def scores(sums: np.ndarray, n_quantiles: int) -> Scores:
    """Scores from one row of ``points.SUMS`` (already summed over whatever it covers)."""
    n = float(sums[POINTS])
    return Scores(
        points=int(round(n)),
        mae=_ratio(sums[ABS_ERROR], n),
        skill=_ratio(sums[ABS_ERROR], sums[NAIVE_ABS_ERROR]),
        mase=_ratio(sums[SCALED_ERROR], sums[MASE_POINTS]),
        coverage=_ratio(sums[INSIDE], n),
        wql=_ratio(2.0 * sums[PINBALL], n_quantiles * sums[ABS_ACTUAL]),
    )


def _with_buckets(cell: np.ndarray, n_quantiles: int) -> TargetScores:
    """TargetScores from [buckets, NSUMS] (empty buckets when ``cell`` is [NSUMS])."""
    if cell.ndim == 1:
        return TargetScores(**msgspec.structs.asdict(scores(cell, n_quantiles)), buckets={})
    buckets = {name: scores(cell[b], n_quantiles) for b, name in enumerate(BUCKETS)}
    total = scores(cell.sum(axis=0), n_quantiles)
    buckets[ALL] = total
    return TargetScores(**msgspec.structs.asdict(total), buckets=buckets)


def build_report(
    book: ScoreBook,
    scored_through: int | None,
    n_quantiles: int,
    since: int | None = None,
    until: int | None = None,
    target: str | None = None,
    server: str | None = None,
    hours: bool = True,
) -> AccuracyReport:
    """Scores of every version over ``[since, until)`` (data time; None: unbounded).

    Args:
        book: The running sums.
        scored_through: The ledger's watermark.
        n_quantiles: Quantiles per forecast (the weighted quantile loss averages over them).
        since: Window start, epoch seconds.
        until: Window end, epoch seconds.
        target: Only this target (unknown: no versions).
        server: Only this server, from the daily per-server sums.
        hours: Build each version's hourly series (the page's chart; /metrics needs none).

    Returns:
        The report; versions in first-served order.
    """
    keep = [i for i, t in enumerate(book.targets) if target is None or t == target]
    fleet = book.fleet_sums(since, until)
    per_server = book.server_sums(since, until)
    row = book.servers.index(server) if server in book.servers else None
    # The per-server cells are daily: no hourly series for one server.
    hourly = _hours(book, keep, since, until, n_quantiles) if hours and server is None and keep else {}
    versions: list[VersionScores] = []
    for version, kind in book.served:
        found = fleet.get((version, kind))
        if found is None or not keep:
            continue
        cells, first, last = found
        if server is not None:
            mine = per_server.get((version, kind))
            if row is None or mine is None or row >= len(mine):
                continue
            cells = mine[row]  # [targets, NSUMS]
        cells = cells[keep]
        if not cells[..., POINTS].sum():
            continue
        total = _with_buckets(cells.sum(axis=0), n_quantiles)
        versions.append(
            VersionScores(
                **msgspec.structs.asdict(total),
                version=version,
                kind=kind,
                from_=iso(first),
                to=iso(last),
                targets={book.targets[k]: _with_buckets(cells[j], n_quantiles) for j, k in enumerate(keep)},
                hours=hourly.get((version, kind), []),
            )
        )
    worst: list[ServerScores] = []
    served = [v for v in versions if v.kind != "shadow"]  # worst servers: of the model served last
    if served:
        last_version = served[-1]
        mine = per_server.get((last_version.version, last_version.kind))
        if mine is not None:
            worst = _worst(book, mine[:, keep].sum(axis=1), last_version.version, n_quantiles)
    return AccuracyReport(scored_through=iso(scored_through), versions=versions, worst_servers=worst)


def _hours(
    book: ScoreBook, keep: list[int], since: int | None, until: int | None, n_quantiles: int
) -> dict[tuple[str, Kind], list[HourScores]]:
    """Per (version, kind): its hourly cells in ``[since, until)``, kept targets only, in time order."""
    series: dict[tuple[str, Kind], list[HourScores]] = {}
    for (version, kind, hour), cell in sorted(book.fleet.items(), key=lambda item: item[0][2]):
        if (since is not None and hour < since) or (until is not None and hour >= until):
            continue
        s = scores(cell[keep].sum(axis=(0, 1)), n_quantiles)
        if s.points:
            at = iso(hour) or ""
            hours = series.setdefault((version, kind), [])
            hours.append(HourScores(hour=at, points=s.points, skill=s.skill, coverage=s.coverage))
    return series


def _worst(book: ScoreBook, sums: np.ndarray, version: str, n_quantiles: int) -> list[ServerScores]:
    rated = [
        (name, scores(sums[i], n_quantiles))
        for i, name in enumerate(book.servers[: len(sums)])
        if sums[i, NAIVE_ABS_ERROR] > 0
    ]
    rated.sort(key=lambda pair: (-(pair[1].skill or 0.0), pair[0]))
    return [
        ServerScores(**msgspec.structs.asdict(s), server=name, version=version)
        for name, s in rated[:WORST_SERVERS]
    ]
