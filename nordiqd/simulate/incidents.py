"""Incidents: spontaneous ones drawn per server, scripted ones from scenarios.

Spontaneous incidents are rare on purpose. Time is cut into one-day slots per
server (UTC days); a slot holds at most one incident, with probability
``rate_per_week / 7``, and that incident starts and ends inside its slot, so
no server ever has more than one spontaneous incident a day. Whether a slot
has an incident, and its kind, start, length and severity, are drawn from
``(server key, slot index)``, so any time range can be generated alone and
agree with every other.

Each incident becomes an intensity curve in [0, 1] per sample: a ramp for
``memory_leak`` and ``disk_fill`` (the quantity grows steadily over the window,
then the process is restarted or the disk cleaned), a trapezoid for the others.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from nordiqd.simulate.noise import F64, Stream, substream, uniform, uniform_cells
from nordiqd.simulate.profiles import PROFILES
from nordiqd.simulate.scenarios import SCENARIO_KINDS
from nordiqd.simulate.servers import ServerTable

SLOT_S = 86400.0
WEEK_S = 7 * 86400.0
_MIN_S = 20 * 60.0
_MAX_S = 3 * 3600.0
RAMPS = frozenset({"memory_leak", "disk_fill"})
# Incidents on a database that the servers using it feel (see ``intensities``).
FELT_BY_DEPENDENTS = frozenset({"db_outage", "io_storm"})
KINDS = tuple(SCENARIO_KINDS)


@dataclass(frozen=True)
class Incident:
    """One incident on one server.

    Attributes:
        kind: one of ``SCENARIO_KINDS``.
        server: the server it happens on.
        start: start, epoch seconds.
        end: end, epoch seconds (exclusive).
        severity: strength in (0, 1].
        cause: ``scenario`` (scripted) or ``spontaneous``.
        affects: other servers it degrades (the dependents of a database).
    """

    kind: str
    server: str
    start: float
    end: float
    severity: float
    cause: str
    affects: tuple[str, ...] = field(default=())


class IncidentPlan:
    """All incidents of a fleet: scripted ones fixed, spontaneous ones drawn on demand."""

    def __init__(self, table: ServerTable, scripted: list[Incident], rate_per_week: float) -> None:
        """Builds the plan.

        Args:
            table: the fleet's server parameters.
            scripted: incidents from scenarios, already checked against the fleet.
            rate_per_week: mean spontaneous incidents per server per week
                (at most one a day, so capped at 7).
        """
        self._table = table
        self._scripted = scripted
        self._p = min(1.0, max(0.0, rate_per_week) * SLOT_S / WEEK_S)
        self._keys = substream(table.keys, Stream.INCIDENT)
        self._kinds = [PROFILES[p].incident_kinds for p in table.profile_names]
        self._row = {name: i for i, name in enumerate(table.names)}

    def between(self, t0: float, t1: float) -> list[Incident]:
        """Incidents overlapping ``[t0, t1)``, ordered by start then server."""
        found = [i for i in self._scripted if i.start < t1 and i.end > t0]
        if self._p > 0 and t1 > t0:
            found += self._spontaneous(t0, t1)
        found.sort(key=lambda i: (i.start, self._row[i.server]))
        return found

    def _spontaneous(self, t0: float, t1: float) -> list[Incident]:
        slots = np.arange(np.floor(t0 / SLOT_S), np.floor(t1 / SLOT_S) + 1).astype(np.int64)
        occurs = uniform(self._keys, slots) < self._p
        rows, cols = np.nonzero(occurs)
        if not len(rows):
            return []
        # Details come from further independent draws of the same (server, slot).
        picked = slots[cols]
        detail = [uniform_cells(substream(self._keys[rows], 0, salt=k), picked) for k in range(1, 5)]
        out = []
        for j, (r, s) in enumerate(zip(rows, picked, strict=True)):
            kinds = self._kinds[r]
            if not kinds:
                continue
            kind = kinds[int(detail[0][j] * len(kinds))]
            length = _MIN_S + (_MAX_S - _MIN_S) * detail[1][j]
            start = float(s) * SLOT_S + (SLOT_S - length) * detail[2][j]
            if start >= t1 or start + length <= t0:
                continue
            out.append(
                Incident(
                    kind,
                    self._table.names[r],
                    float(start),
                    float(start + length),
                    round(0.35 + 0.65 * float(detail[3][j]), 3),
                    "spontaneous",
                    self.dependents(int(r)) if kind in FELT_BY_DEPENDENTS else (),
                )
            )
        return out

    def dependents(self, row: int) -> tuple[str, ...]:
        """Names of the servers that query the database in ``row``."""
        return tuple(self._table.names[i] for i in np.nonzero(self._table.db_row == row)[0])

    def intensities(self, t: F64) -> dict[str, F64]:
        """Intensity curves per kind, shape ``(n_servers, len(t))``, kinds present only.

        ``db_wait`` is a database's incident as felt by each server that uses it.
        """
        if not len(t):
            return {}
        n = self._table.n
        out: dict[str, F64] = {}
        for inc in self.between(float(t[0]), float(t[-1]) + 1e-6):
            lo, hi = np.searchsorted(t, [inc.start, inc.end], side="left")
            if lo == hi:
                continue
            shape = envelope(inc.kind, t[lo:hi], inc.start, inc.end) * inc.severity
            arr = out.setdefault(inc.kind, np.zeros((n, len(t))))
            row = self._row[inc.server]
            arr[row, lo:hi] = np.maximum(arr[row, lo:hi], shape)
        # Dependents feel their database: fully in an outage, partly in its I/O storm
        # (slow queries hold connections longer).
        felt = np.maximum(out.get("db_outage", 0.0), 0.35 * out.get("io_storm", 0.0))
        dependent = self._table.db_row >= 0
        if np.ndim(felt) and dependent.any():
            wait = np.zeros((n, len(t)))
            wait[dependent] = felt[self._table.db_row[dependent]]
            if wait.any():
                out["db_wait"] = wait
        return out


def envelope(kind: str, t: F64, start: float, end: float) -> F64:
    """Intensity in [0, 1] of one incident at times ``t`` inside its window.

    A leak or a filling disk grows linearly to the end of the window; the
    others rise quickly (a database pile-up more slowly), hold, then recover.
    """
    length = end - start
    if kind in RAMPS:
        return (t - start) / length
    rise = min(0.25 * length, 1200.0) if kind == "db_outage" else min(0.15 * length, 600.0)
    fall = min(0.1 * length, 600.0)
    return np.minimum(1.0, np.minimum((t - start + 1.0) / rise, (end - t) / fall))
