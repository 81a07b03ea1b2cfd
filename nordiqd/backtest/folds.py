"""Rolling forecast origins and the horizon buckets errors are reported in.

Fold ``f`` (1 = the most recent) forecasts grid steps ``[L - f*H, L - f*H + H)`` from
everything before them, so the K folds tile the last K horizons of every server without
overlap, and each fold's origin steps back by one horizon from the next one's. A server
takes part in a fold when it has at least one encoder window of history before the
origin.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from nordiqd.backtest.data import Grid
from nordiqd.backtest.errors import TooLittleHistory
from nordiqd.model.params import ModelSpec

# Edges of the reported horizon buckets, in hours: first hour, 1-4 h, 4-8 h.
DEFAULT_BUCKET_HOURS: tuple[float, ...] = (1.0, 4.0, 8.0)


@dataclass(frozen=True)
class Fold:
    """One forecast origin.

    Attributes:
        number: 1 for the most recent horizon, K for the earliest.
        origin: Grid index of the first forecast step.
        servers: Indexes of the servers with an encoder window of history before it.
    """

    number: int
    origin: int
    servers: np.ndarray


@dataclass(frozen=True)
class Bucket:
    """A range of forecast steps ``[start, stop)`` reported together."""

    name: str
    start: int
    stop: int


def make_folds(grid: Grid, spec: ModelSpec, count: int, *, where: str = "the data") -> list[Fold]:
    """The ``count`` most recent folds, earliest first.

    Raises:
        ValueError: ``count`` is below 1.
        TooLittleHistory: No server has ``encoder_steps + horizon_steps`` steps before
            the end of even the most recent fold; names the longest server.
    """
    if count < 1:
        raise ValueError("folds must be at least 1")
    horizon, encoder = spec.horizon_steps, spec.encoder_steps
    folds = []
    for number in range(count, 0, -1):
        origin = grid.length - number * horizon
        servers = np.flatnonzero(origin - grid.first_index >= encoder) if origin > 0 else np.array([], int)
        if servers.size:
            folds.append(Fold(number=number, origin=origin, servers=servers))
    if not folds:
        longest = int(np.argmin(grid.first_index))
        steps = grid.length - int(grid.first_index[longest])
        raise TooLittleHistory(
            f"{where}: too little history: one fold needs {encoder} encoder + {horizon} horizon "
            f"= {encoder + horizon} steps of {spec.step_seconds} s, and the longest server, "
            f"{grid.servers[longest]!r}, has {steps}"
        )
    return folds


def make_buckets(spec: ModelSpec, hours: Sequence[float] = DEFAULT_BUCKET_HOURS) -> list[Bucket]:
    """Horizon buckets from hour edges, in steps; empty buckets are dropped.

    Edges are rounded up to whole steps and cut at the horizon; steps beyond the last
    edge form one more bucket. Names give the hours the steps cover ("0-1h").

    Raises:
        ValueError: The edges are not positive and increasing.
    """
    if not hours or any(h <= 0 for h in hours) or any(b <= a for a, b in zip(hours, hours[1:], strict=False)):
        raise ValueError("bucket edges must be positive hours in increasing order")
    horizon, hour = spec.horizon_steps, 3600 / spec.step_seconds
    edges = [min(horizon, math.ceil(h * hour - 1e-9)) for h in hours]
    if edges[-1] < horizon:
        edges.append(horizon)
    out: list[Bucket] = []
    start = 0
    for stop in edges:
        if stop > start:  # named by the hours the steps really cover
            out.append(Bucket(name=f"{start / hour:g}-{stop / hour:g}h", start=start, stop=stop))
            start = stop
    return out
