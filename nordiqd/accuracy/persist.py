"""The scores and the outstanding ledger on disk: ``state/accuracy.msgpack``.

Sums and ledger (forecasts and scored masks) are saved together in one file, written with
``durable.write_atomic``, with the ledger's ``scored_through`` watermark: after a
restart the same points are scored, none lost and none twice. The file is msgpack
(msgspec Structs, never pickle); arrays travel as raw little-endian bytes whose shapes
follow from the lists beside them, so a truncated or altered array is caught on load.

The routing candidates' trailing errors (``routing.RoutingBook``) travel in the same file,
as do each issue's candidate values; a file written before routing loads with none.

A file that cannot be read, or was written for other targets, quantiles, step or
horizon, is moved aside (``accuracy.broken-<epoch>``) for a person to look at, and the
scores start empty, with a log line.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import msgspec
import numpy as np

from nordiqd.accuracy.buckets import BUCKETS
from nordiqd.accuracy.ledger import ForecastLedger, Issue
from nordiqd.accuracy.points import NSUMS
from nordiqd.accuracy.residuals import SCORES, SIZE, ResidualRings
from nordiqd.accuracy.routing import CANDIDATES, RoutingBook
from nordiqd.accuracy.scores import Kind, ScoreBook
from nordiqd.durable import write_atomic

__all__ = ["FORMAT", "load", "save"]

log = logging.getLogger(__name__)

FORMAT = 1
_F4, _F8, _I8 = np.dtype("<f4"), np.dtype("<f8"), np.dtype("<i8")


class _Cell(msgspec.Struct, frozen=True, array_like=True):
    version: str
    kind: Kind
    start: int
    sums: bytes  # fleet: [targets, buckets, NSUMS] float64; per server: [rows, targets, NSUMS]
    span: bytes = b""  # fleet only: int64 [first, last step start scored]


class _Issue(msgspec.Struct, frozen=True, array_like=True):
    at: int
    version: str
    kind: Kind
    servers: list[str]
    forecasts: bytes
    naive: bytes
    scale: bytes
    scored: bytes  # np.packbits of the bool mask
    last: bytes = b""  # routing candidates; empty: not kept
    challenger: bytes = b""


class _Routing(msgspec.Struct, frozen=True, kw_only=True):
    decayed_to: int | None
    error: bytes  # [rows, targets, buckets, candidates] float64
    weight: bytes
    points: bytes  # int64


class _Rings(msgspec.Struct, frozen=True, kw_only=True):
    scores: bytes  # [rows, targets, buckets, SCORES, SIZE] float16
    written: bytes  # [rows, targets, buckets, SCORES] int64


class _Saved(msgspec.Struct, frozen=True, kw_only=True):
    format: int
    targets: list[str]
    quantiles: list[float]
    step_seconds: int
    horizon_steps: int
    scored_through: int | None
    served: list[tuple[str, Kind, int]]
    servers: list[str]
    fleet: list[_Cell]
    per_server: list[_Cell]
    issues: list[_Issue]
    routing: _Routing | None = None
    rings: _Rings | None = None


class _Damaged(Exception):
    """The file decoded, but does not hold what it says."""


def save(path: Path | str, ledger: ForecastLedger) -> None:
    """Write the ledger and its book atomically to ``path``."""
    book = ledger.book
    saved = _Saved(
        format=FORMAT,
        targets=list(book.targets),
        quantiles=list(ledger.quantiles),
        step_seconds=ledger.step,
        horizon_steps=ledger.horizon,
        scored_through=ledger.scored_through,
        served=[(v, k, at) for (v, k), at in book.served.items()],
        servers=list(book.servers),
        fleet=[
            _Cell(v, k, s, cell.astype(_F8).tobytes(), book.spans[(v, k, s)].astype(_I8).tobytes())
            for (v, k, s), cell in book.fleet.items()
        ],
        per_server=[
            _Cell(v, k, s, cell.astype(_F8).tobytes()) for (v, k, s), cell in book.per_server.items()
        ],
        issues=[
            _Issue(
                i.at,
                i.version,
                i.kind,
                i.servers,
                i.forecasts.astype(_F4).tobytes(),
                i.naive.astype(_F4).tobytes(),
                i.scale.astype(_F4).tobytes(),
                np.packbits(i.scored).tobytes(),
                b"" if i.last is None else i.last.astype(_F4).tobytes(),
                b"" if i.challenger is None else i.challenger.astype("<f2").tobytes(),
            )
            for i in ledger.issues
        ],
        routing=None if ledger.routes is None else _routing(ledger.routes),
        rings=None
        if ledger.rings is None
        else _Rings(
            scores=ledger.rings.scores.astype("<f2").tobytes(),
            written=ledger.rings.written.astype(_I8).tobytes(),
        ),
    )
    write_atomic(path, msgspec.msgpack.encode(saved))


def _routing(routes: RoutingBook) -> _Routing:
    return _Routing(
        decayed_to=routes.decayed_to,
        error=routes.error.astype(_F8).tobytes(),
        weight=routes.weight.astype(_F8).tobytes(),
        points=routes.points.astype(_I8).tobytes(),
    )


def load(path: Path | str, empty: ForecastLedger) -> ForecastLedger:
    """The ledger (and its book) saved at ``path``, for the settings of ``empty``.

    Returns:
        A new ledger holding the saved state; ``empty`` itself when there was none, or
        it was unusable and has been moved aside.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return empty
    routes = None if empty.routes is None else RoutingBook(empty.routes.targets, empty.routes.half_life_s)
    rings = None if empty.rings is None else ResidualRings(empty.rings.targets)
    ledger = ForecastLedger(
        ScoreBook(empty.book.targets),
        empty.quantiles,
        empty.step,
        empty.horizon,
        empty.grace_s,
        routes,
        rings,
    )
    try:
        saved = msgspec.msgpack.decode(data, type=_Saved)
        _check_fits(saved, ledger)
        _restore(saved, ledger)
    except (msgspec.DecodeError, _Damaged) as exc:
        broken = path.with_name(f"{path.stem}.broken-{int(time.time())}")
        os.replace(path, broken)
        log.error("accuracy scores %s unusable (%s): moved to %s; scoring starts afresh", path, exc, broken)
        return empty
    return ledger


def _check_fits(saved: _Saved, ledger: ForecastLedger) -> None:
    if saved.format != FORMAT:
        raise _Damaged(f"format {saved.format}, this version reads {FORMAT}")
    ours = (list(ledger.book.targets), list(ledger.quantiles), ledger.step, ledger.horizon)
    theirs = (saved.targets, saved.quantiles, saved.step_seconds, saved.horizon_steps)
    if ours != theirs:
        raise _Damaged(f"written for targets, quantiles, step and horizon {theirs}, not {ours}")


def _array(raw: bytes, dtype: np.dtype[np.generic], shape: tuple[int, ...], what: str) -> np.ndarray:
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) != expected:
        raise _Damaged(f"{what}: {len(raw)} bytes, expected {expected}")
    return np.frombuffer(raw, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def _restore(saved: _Saved, ledger: ForecastLedger) -> None:
    book = ledger.book
    n_t, n_q, n_h = len(saved.targets), len(saved.quantiles), saved.horizon_steps
    book.set_servers(saved.servers)
    for v, k, at in saved.served:
        book.serve(v, k, at)
    for c in saved.fleet:
        book.fleet[(c.version, c.kind, c.start)] = _array(
            c.sums, _F8, (n_t, len(BUCKETS), NSUMS), "fleet sums"
        )
        book.spans[(c.version, c.kind, c.start)] = _array(c.span, _I8, (2,), "fleet span")
    for c in saved.per_server:
        rows, rest = divmod(len(c.sums), n_t * NSUMS * _F8.itemsize)
        if rest or rows > len(saved.servers):
            raise _Damaged(f"per-server sums of {len(c.sums)} bytes for {len(saved.servers)} servers")
        book.per_server[(c.version, c.kind, c.start)] = _array(c.sums, _F8, (rows, n_t, NSUMS), "server sums")
    for i in saved.issues:
        s = len(i.servers)
        mask = np.unpackbits(_array(i.scored, np.dtype(np.uint8), ((s * n_t * n_h + 7) // 8,), "scored mask"))
        ledger.restore(
            Issue(
                at=i.at,
                version=i.version,
                kind=i.kind,
                servers=list(i.servers),
                forecasts=_array(i.forecasts, _F4, (s, n_t, n_h, n_q), "forecasts"),
                naive=_array(i.naive, _F4, (s, n_t, n_h), "naive"),
                scale=_array(i.scale, _F4, (s, n_t), "scale"),
                scored=mask[: s * n_t * n_h].astype(bool).reshape(s, n_t, n_h),
                last=_array(i.last, _F4, (s, n_t), "last values") if i.last else None,
                challenger=_array(i.challenger, np.dtype("<f2"), (s, n_t, n_h), "challenger")
                if i.challenger
                else None,
            )
        )
    ledger.scored_through = saved.scored_through
    if saved.routing is not None and ledger.routes is not None:
        _restore_routing(saved.routing, ledger.routes, len(saved.servers))
    if saved.rings is not None and ledger.rings is not None:
        rows, rest = divmod(len(saved.rings.written), n_t * len(BUCKETS) * len(SCORES) * _I8.itemsize)
        if rest or rows > len(saved.servers):
            raise _Damaged(
                f"band residuals of {len(saved.rings.written)} bytes for {len(saved.servers)} servers"
            )
        shape = (rows, n_t, len(BUCKETS), len(SCORES))
        ledger.rings.written = _array(saved.rings.written, _I8, shape, "residual counts")
        ledger.rings.scores = _array(saved.rings.scores, np.dtype("<f2"), (*shape, SIZE), "residuals")


def _restore_routing(saved: _Routing, routes: RoutingBook, servers: int) -> None:
    cell = len(routes.targets) * len(BUCKETS) * len(CANDIDATES)
    rows, rest = divmod(len(saved.error), cell * _F8.itemsize)
    if rest or rows > servers:
        raise _Damaged(f"routing errors of {len(saved.error)} bytes for {servers} servers")
    shape = (rows, len(routes.targets), len(BUCKETS), len(CANDIDATES))
    routes.error = _array(saved.error, _F8, shape, "routing errors")
    routes.weight = _array(saved.weight, _F8, shape, "routing weights")
    routes.points = _array(saved.points, _I8, shape, "routing points")
    routes.decayed_to = saved.decayed_to
