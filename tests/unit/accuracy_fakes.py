"""A small fake fleet for the accuracy tests, and a brute-force scorer to hold them to.

Step 30 min and a horizon of 16 steps (8 h), so every lead bucket has steps: leads 0-1
are ``0-1h``, 2-7 ``1-4h`` and 8-15 ``4-8h``. Issues every hour (two steps), kept an
hour past their horizon, as ``LiveAccuracy`` keeps them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from nordiqd.accuracy.buckets import BUCKETS
from nordiqd.accuracy.ledger import ForecastLedger
from nordiqd.accuracy.scores import ScoreBook

STEP = 1800
HORIZON = 16
EVERY = 3600
TARGETS = ("cpu", "mem")
QUANTILES = (0.1, 0.5, 0.9)
T0 = 1_700_000_000 - 1_700_000_000 % 86400  # a day boundary
SERVERS = ("a", "b", "c")


def new_ledger() -> ForecastLedger:
    return ForecastLedger(ScoreBook(TARGETS), QUANTILES, STEP, HORIZON, grace_s=EVERY)


@dataclass
class FakeIssue:
    at: int
    version: str
    forecasts: np.ndarray  # [S, T, H, Q]
    naive: np.ndarray  # [S, T, H]
    scale: np.ndarray  # [S, T]


def fake_issue(rng: np.random.Generator, at: int, version: str = "v1", nan_share: float = 0.1) -> FakeIssue:
    s, t = len(SERVERS), len(TARGETS)
    mid = rng.normal(50, 10, (s, t, HORIZON))
    spread = rng.uniform(0.5, 5, (s, t, HORIZON))
    forecasts = np.stack([mid - spread, mid, mid + spread], axis=-1).astype(np.float32)
    naive = (mid + rng.normal(0, 5, mid.shape)).astype(np.float32)
    naive[rng.random(naive.shape) < nan_share] = np.nan
    scale = rng.uniform(0, 3, (s, t)).astype(np.float32)
    scale[rng.random(scale.shape) < nan_share] = np.nan
    return FakeIssue(at, version, forecasts, naive, scale)


def put(ledger: ForecastLedger, issue: FakeIssue) -> bool:
    return ledger.issue(issue.at, issue.version, "tft", SERVERS, issue.forecasts, issue.naive, issue.scale)


Rows = tuple[list[str], np.ndarray, np.ndarray]  # servers, step starts, values [N, targets]


def actual_rows(rng: np.random.Generator, start: int, steps: int, nan_share: float = 0.1) -> Rows:
    """Every server's actuals for ``steps`` steps from ``start``: (servers, starts, values)."""
    servers: list[str] = []
    starts: list[int] = []
    for k in range(steps):
        for name in SERVERS:
            servers.append(name)
            starts.append(start + k * STEP)
    values = rng.normal(50, 10, (len(servers), len(TARGETS)))
    values[rng.random(values.shape) < nan_share] = np.nan
    return servers, np.array(starts, dtype=np.int64), values


def brute_force(
    issues: Iterable[FakeIssue], servers: list[str], starts: np.ndarray, values: np.ndarray
) -> dict[tuple[str, int, str, int], list[float]]:
    """(version, hour, target, bucket) -> the eight sums, one point at a time in plain Python.

    Each (issue, server, step) counts once (its first row with a finite value), only while
    the issue is outstanding, i.e. all rows are taken as one delivery.
    """
    out: dict[tuple[str, int, str, int], list[float]] = {}
    for issue in issues:
        done: set[tuple[str, int, int]] = set()
        for name, start, row in zip(servers, starts.tolist(), values, strict=True):
            lead, rest = divmod(start - issue.at, STEP)
            if rest or not 0 <= lead < HORIZON:
                continue
            s = SERVERS.index(name)
            for t, target in enumerate(TARGETS):
                y = float(row[t])
                if (name, t, lead) in done or math.isnan(y):
                    continue
                done.add((name, t, lead))
                f = [float(v) for v in issue.forecasts[s, t, lead]]
                nv, sc = float(issue.naive[s, t, lead]), float(issue.scale[s, t])
                if any(math.isnan(v) for v in f) or math.isnan(nv):
                    continue
                lead_s = (lead + 1) * STEP
                bucket = 0 if lead_s <= 3600 else 1 if lead_s <= 4 * 3600 else 2
                pinball = sum(max(q * (y - v), (q - 1) * (y - v)) for q, v in zip(QUANTILES, f, strict=True))
                usable = not math.isnan(sc) and sc > 0
                sums = [
                    1.0,
                    abs(f[1] - y),
                    abs(nv - y),
                    1.0 if usable else 0.0,
                    abs(f[1] - y) / sc if usable else 0.0,
                    pinball,
                    abs(y),
                    1.0 if f[0] <= y <= f[-1] else 0.0,
                ]
                key = (issue.version, start - start % 3600, target, bucket)
                acc = out.setdefault(key, [0.0] * 8)
                for i, v in enumerate(sums):
                    acc[i] += v
    return out


def book_sums(book: ScoreBook) -> dict[tuple[str, int, str, int], list[float]]:
    """The book's fleet cells in ``brute_force``'s shape (cells without points left out)."""
    out: dict[tuple[str, int, str, int], list[float]] = {}
    for (version, _kind, hour), cell in book.fleet.items():
        for t, target in enumerate(book.targets):
            for b in range(len(BUCKETS)):
                if cell[t, b, 0]:
                    out[(version, hour, target, b)] = [float(v) for v in cell[t, b]]
    return out


def assert_same_sums(
    a: dict[tuple[str, int, str, int], list[float]], b: dict[tuple[str, int, str, int], list[float]]
) -> None:
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-9, atol=1e-9, err_msg=str(key))
