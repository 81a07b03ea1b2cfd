"""The simulated fleet: the one generator behind backfill and live samples.

Samples sit on a fixed grid of absolute times, ``k * interval_s`` seconds since
the Unix epoch, and every value is a pure function of the seed, the fleet's
parameters, the server and ``k``. So the same seed gives the same records,
and generating ``[t0, t1)`` then ``[t1, t2)`` gives exactly the records of
``[t0, t2)``: backfill and live streaming are the same call over different
ranges.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

import numpy as np

from nordiqd.simulate.batch import Batch
from nordiqd.simulate.incidents import FELT_BY_DEPENDENTS, Incident, IncidentPlan
from nordiqd.simulate.metric_model import METRICS, MetricModel
from nordiqd.simulate.profiles import compose
from nordiqd.simulate.scenarios import Scenario, ScenarioError, parse_scenario
from nordiqd.simulate.servers import Server, ServerTable

Time = float | datetime
# Cells (servers x samples) computed per numpy pass: big enough to amortise
# per-call overhead, small enough to stay in cache-friendly memory.
_CELLS_PER_PASS = 200_000


def epoch(t: Time) -> float:
    """Epoch seconds of a time given as epoch seconds or an aware datetime.

    Raises:
        ValueError: a naive datetime (its time zone would be a guess).
    """
    if isinstance(t, datetime):
        if t.tzinfo is None:
            raise ValueError(f"time {t.isoformat()} has no time zone; use an aware datetime")
        return t.timestamp()
    return float(t)


class SimulatedFleet:
    """A deterministic simulated fleet.

    For live streaming, call ``generate(last, now)`` with each ``now`` becoming
    the next call's ``last``: the half-open ranges tile time, so every sample
    comes out exactly once and equal to what a backfill over it would give.

    Example:
        >>> fleet = SimulatedFleet(size=20, seed=1, interval_s=5.0)
        >>> batch = fleet.generate(1_790_000_000, 1_790_000_060)   # 12 steps x 20 servers
        >>> table = batch.to_arrow()
    """

    def __init__(
        self,
        size: int = 20,
        seed: int = 0,
        interval_s: float = 5.0,
        scenarios: Iterable[Scenario | str] = (),
        start: Time | None = None,
        shares: dict[str, float] | None = None,
        incident_rate_per_week: float = 0.5,
        utc_offset_h: float = 0.0,
    ) -> None:
        """Builds the fleet and checks its scenarios.

        Args:
            size: number of servers, split over profiles by ``shares``.
            seed: the seed every random draw derives from.
            interval_s: seconds between samples of one server.
            scenarios: scripted incidents, as ``Scenario`` or spec strings.
            start: what relative scenario starts (``@+30m``) count from.
            shares: profile name -> weight of the fleet; defaults to the profiles'.
            incident_rate_per_week: mean spontaneous incidents per server per week.
            utc_offset_h: offset of the fleet's business hours from UTC.

        Raises:
            ValueError: a bad size, interval or composition.
            ScenarioError: a scenario that does not parse or does not fit the fleet.
        """
        if not interval_s > 0:
            raise ValueError(f"interval_s must be positive, got {interval_s}")
        self.seed = seed
        self.interval_s = float(interval_s)
        self.start = None if start is None else epoch(start)
        self._table = ServerTable(seed, compose(size, shares))
        self.servers: list[Server] = self._table.servers()
        self._by_name = {s.name: s for s in self.servers}
        self._names = tuple(s.name for s in self.servers)
        self._profiles = tuple(s.profile for s in self.servers)
        self.scenarios = [parse_scenario(s) if isinstance(s, str) else s for s in scenarios]
        self._plan = IncidentPlan(self._table, self._scripted(), incident_rate_per_week)
        self._model = MetricModel(self._table, utc_offset_h)

    def _scripted(self) -> list[Incident]:
        out = []
        for sc in self.scenarios:
            start = sc.start_at(self.start)
            for name in sc.servers:
                server = self._by_name.get(name)
                if server is None:
                    raise ScenarioError(
                        f"scenario {sc.text or sc.kind!r} names {name}, which is not in this "
                        f"fleet of {len(self.servers)} servers ({self._name_ranges()})"
                    )
                if sc.kind == "db_outage" and server.profile != "database":
                    raise ScenarioError(
                        f"scenario {sc.text or sc.kind!r}: db_outage needs a database "
                        f"server, but {name} is a {server.profile} server"
                    )
                affects: tuple[str, ...] = ()
                if sc.kind in FELT_BY_DEPENDENTS:
                    affects = tuple(s.name for s in self.servers if s.database == name)
                out.append(
                    Incident(sc.kind, name, start, start + sc.duration_s, sc.severity, "scenario", affects)
                )
        return out

    def _name_ranges(self) -> str:
        first: dict[str, str] = {}
        last: dict[str, str] = {}
        for s in self.servers:
            first.setdefault(s.profile, s.name)
            last[s.profile] = s.name
        return ", ".join(f"{first[p]}..{last[p]}" if first[p] != last[p] else first[p] for p in first)

    @property
    def names(self) -> list[str]:
        """Server names in fleet order."""
        return list(self._names)

    def server(self, name: str) -> Server:
        """The server called ``name`` (KeyError if none)."""
        return self._by_name[name]

    def steps(self, t0: Time, t1: Time) -> np.ndarray:
        """Step indices ``k`` with ``t0 <= k * interval_s < t1``."""
        a, b, dt = epoch(t0), epoch(t1), self.interval_s
        first = math.floor(a / dt)
        while first * dt < a:
            first += 1
        stop = math.floor(b / dt) + 1
        while stop > first and (stop - 1) * dt >= b:
            stop -= 1
        return np.arange(first, max(first, stop), dtype=np.int64)

    def step_times(self, t0: Time, t1: Time) -> np.ndarray:
        """Sample times (epoch seconds) in ``[t0, t1)``."""
        return self.steps(t0, t1).astype(np.float64) * self.interval_s

    def generate(self, t0: Time, t1: Time) -> Batch:
        """All servers' records for the sample times in ``[t0, t1)``, as columns.

        For long ranges prefer ``batches``, which bounds memory.
        """
        parts = list(self._passes(self.steps(t0, t1)))
        if len(parts) == 1:
            return parts[0]
        return Batch(
            np.concatenate([p.timestamps for p in parts]),
            np.concatenate([p.server_index for p in parts]),
            self._names,
            self._profiles,
            {k: np.concatenate([p.metrics[k] for p in parts]) for k in parts[0].metrics},
        )

    def records(self, t0: Time, t1: Time, iso_timestamps: bool = False) -> list[dict[str, Any]]:
        """Records for ``[t0, t1)`` as dicts (see ``Batch.to_records``)."""
        return self.generate(t0, t1).to_records(iso_timestamps)

    def batches(self, t0: Time, t1: Time, max_records: int = 1000) -> Iterator[Batch]:
        """Records for ``[t0, t1)`` in time order, in batches of at most ``max_records``.

        Computes large blocks and slices them, so small batches cost no speed.
        """
        if max_records < 1:
            raise ValueError(f"max_records must be at least 1, got {max_records}")
        for block in self._passes(self.steps(t0, t1)):
            for i in range(0, len(block), max_records):
                yield block[i : i + max_records]

    def incidents(self, t0: Time, t1: Time) -> list[Incident]:
        """Ground truth: scripted and spontaneous incidents overlapping ``[t0, t1)``."""
        return self._plan.between(epoch(t0), epoch(t1))

    def _passes(self, steps: np.ndarray) -> Iterator[Batch]:
        n = len(self.servers)
        per_pass = max(1, _CELLS_PER_PASS // n)
        if not len(steps):
            yield self._block(steps)
            return
        for i in range(0, len(steps), per_pass):
            yield self._block(steps[i : i + per_pass])

    def _block(self, steps: np.ndarray) -> Batch:
        n = len(self.servers)
        t = steps.astype(np.float64) * self.interval_s
        values = self._model.compute(t, steps, self._plan.intensities(t)) if len(t) else {}
        # (servers, samples) -> time-major rows: all servers of one timestamp together.
        metrics = {k: np.ascontiguousarray(v.T).ravel() for k, v in values.items()}
        if not len(t):
            metrics = {k: np.zeros(0) for k in METRICS}
        return Batch(
            np.repeat(t, n),
            np.tile(np.arange(n, dtype=np.int32), len(t)),
            self._names,
            self._profiles,
            metrics,
        )
