"""The servers of a simulated fleet and their static, per-server parameters.

Parameters are drawn once, when the fleet is built, from each server's key
(seed + name), and stored as one numpy array per parameter so the metric model
can work on all servers at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from nordiqd.simulate.noise import Stream, server_keys, substream, uniform_per_key
from nordiqd.simulate.profiles import PROFILES

_DAY = 86400.0


@dataclass(frozen=True)
class Server:
    """One simulated server.

    Attributes:
        name: server name, e.g. ``web-003``.
        profile: profile name, e.g. ``web``.
        cores: CPU cores (load_average is relative to these).
        database: name of the database server it queries, or None.
    """

    name: str
    profile: str
    cores: int
    database: str | None


class ServerTable:
    """Per-server parameters as arrays of shape ``(n_servers,)``.

    Rows follow the fleet's order, which groups servers by profile, so
    ``profile_rows`` maps each profile to a contiguous slice.
    """

    def __init__(self, seed: int, members: list[tuple[str, str]]) -> None:
        """Draws every server's parameters from its key.

        Args:
            seed: simulation seed.
            members: ``(name, profile)`` pairs in fleet order, grouped by profile.
        """
        names = [n for n, _ in members]
        profiles = [PROFILES[p] for _, p in members]
        self.names = names
        self.profile_names = [p.name for p in profiles]
        self.keys = server_keys(seed, names)
        self.n = len(names)
        self.profile_rows: dict[str, slice] = {}
        for i, p in enumerate(self.profile_names):
            s = self.profile_rows.get(p)
            self.profile_rows[p] = slice(i if s is None else s.start, i + 1)

        params = substream(self.keys, Stream.PARAMS)
        draws = iter(range(1, 100))

        def draw(low: list[float], high: list[float]) -> NDArray[np.float64]:
            u = uniform_per_key(params, next(draws))
            return np.asarray(low) + (np.asarray(high) - np.asarray(low)) * u

        def spread(field: str) -> NDArray[np.float64]:
            rng = [getattr(p, field) for p in profiles]
            return draw([r[0] for r in rng], [r[1] for r in rng])

        def const(field: str) -> NDArray[np.float64]:
            return np.array([float(getattr(p, field)) for p in profiles])

        core_u = uniform_per_key(params, 0)
        self.cores = np.array(
            [p.cores[int(u * len(p.cores))] for p, u in zip(profiles, core_u, strict=True)],
            dtype=np.float64,
        )
        # Servers of one profile are not clones: some run hotter, peak earlier.
        self.level = draw([0.75] * self.n, [1.1] * self.n)
        self.shift_h = draw([-0.75] * self.n, [0.75] * self.n)
        self.user0 = np.array([p.user[0] for p in profiles])
        self.user1 = np.array([p.user[1] for p in profiles])
        self.io0 = np.array([p.iowait[0] for p in profiles])
        self.io1 = np.array([p.iowait[1] for p in profiles])
        self.sys_ratio = const("sys_ratio")
        self.weekend = const("weekend")
        self.java_share = spread("java_share")
        self.mem_base = spread("mem_base")
        self.mem_span = const("mem_span")
        self.net_in = const("net_in") * draw([0.6] * self.n, [1.2] * self.n)
        self.net_out_ratio = const("net_out_ratio")
        self.cw_back = np.array([p.close_wait[0] for p in profiles])
        self.cw_front = np.array([p.close_wait[1] for p in profiles])
        self.disk_base = spread("disk_base")
        self.disk_fill = spread("disk_fill")
        self.cleanup_s = spread("cleanup_days") * _DAY
        self.cleanup_phase = draw([0.0] * self.n, [1.0] * self.n) * self.cleanup_s
        self.reboot_s = spread("reboot_days") * _DAY
        self.reboot_phase = draw([0.0] * self.n, [1.0] * self.n) * self.reboot_s
        self.swap_base = draw([0.0] * self.n, [1.5] * self.n)
        # The slow leak may use the headroom below the swap threshold (85 %) but
        # never more, so a healthy server never swaps. Most servers leak little.
        peak = self.mem_base + self.mem_span + 3.0
        self.leak_cap = np.maximum(0.0, 84.0 - peak)
        leak_u = draw([0.0] * self.n, [1.0] * self.n)
        self.leak_per_day = self.leak_cap * leak_u * leak_u / (self.reboot_s / _DAY)
        self.ml_threshold = draw([-0.2] * self.n, [0.05] * self.n)
        self.db_row = self._database_rows(profiles)

    def _database_rows(self, profiles: list) -> NDArray[np.int64]:
        """Row of the database each dependent server queries (-1 for none).

        Dependents are spread round-robin over the database servers by ordinal,
        so ``web-001`` uses ``db-001``, ``web-002`` uses ``db-002`` and so on.
        """
        dbs = self.profile_rows.get("database")
        rows = np.full(self.n, -1, dtype=np.int64)
        if dbs is None:
            return rows
        n_db = dbs.stop - dbs.start
        for i, (name, p) in enumerate(zip(self.names, profiles, strict=True)):
            if p.depends_on_db:
                ordinal = int(name.rsplit("-", 1)[1])
                rows[i] = dbs.start + (ordinal - 1) % n_db
        return rows

    def servers(self) -> list[Server]:
        """The servers as plain records."""
        return [
            Server(
                name,
                profile,
                int(self.cores[i]),
                self.names[self.db_row[i]] if self.db_row[i] >= 0 else None,
            )
            for i, (name, profile) in enumerate(zip(self.names, self.profile_names, strict=True))
        ]
