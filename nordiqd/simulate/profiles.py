"""Server profiles: what each kind of server does, and how a fleet is composed.

A profile is plain data: the daily activity curve (local hour -> 0..1), how
quiet weekends are, and the ranges that per-server parameters are drawn from.
The arithmetic that turns these into metrics lives in ``metrics.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

Range = tuple[float, float]


@dataclass(frozen=True)
class Profile:
    """Shape of one kind of server.

    Attributes:
        name: profile name as it appears in records (``web``, ``database``...).
        prefix: server name prefix (``web`` -> ``web-001``).
        share: default fraction of the fleet.
        day_curve: activity at each local hour 0..23 (linearly interpolated).
        weekend: activity multiplier on Saturday and Sunday.
        cores: core counts to pick from.
        user: cpu_user_pct = user[0] + user[1] * activity.
        sys_ratio: cpu_sys_pct as a fraction of cpu_user_pct.
        iowait: cpu_iowait_pct = iowait[0] + iowait[1] * io activity.
        java_share: range of the share of user CPU spent in the JVM.
        mem_base: range of the resting memory use in percent.
        mem_span: extra memory percent at full activity.
        net_in: inbound MB/s at full activity.
        net_out_ratio: outbound / inbound traffic.
        close_wait: (back, front) CLOSE_WAIT sockets at full activity.
        disk_base: range of disk use right after a cleanup.
        disk_fill: range of percent added between two cleanups.
        cleanup_days: range of days between cleanups (log rotation, WAL archive).
        reboot_days: range of days between maintenance reboots.
        depends_on_db: whether the servers query a database server.
        incident_kinds: spontaneous incident kinds this profile can suffer.
    """

    name: str
    prefix: str
    share: float
    day_curve: tuple[float, ...]
    weekend: float
    cores: tuple[int, ...]
    user: Range
    sys_ratio: float
    iowait: Range
    java_share: Range
    mem_base: Range
    mem_span: float
    net_in: float
    net_out_ratio: float
    close_wait: Range
    disk_base: Range
    disk_fill: Range
    cleanup_days: Range
    reboot_days: Range
    depends_on_db: bool
    incident_kinds: tuple[str, ...]


# Business hours: quiet night, morning ramp, plateau, evening tail.
_OFFICE = (
    0.15,
    0.12,
    0.1,
    0.1,
    0.1,
    0.13,
    0.22,
    0.45,
    0.75,
    0.92,
    0.97,
    1.0,
    0.93,
    0.97,
    1.0,
    0.96,
    0.9,
    0.78,
    0.62,
    0.55,
    0.5,
    0.42,
    0.3,
    0.2,
)
# APIs serve machines too, so nights are less quiet.
_API = tuple(0.3 + 0.6 * v for v in _OFFICE)
# ETL: the nightly batch window 01:00-05:00 dominates, light hourly loads by day.
_NIGHTLY = (
    0.25,
    0.85,
    1.0,
    1.0,
    0.95,
    0.8,
    0.3,
    0.15,
    0.15,
    0.15,
    0.15,
    0.15,
    0.15,
    0.15,
    0.15,
    0.15,
    0.15,
    0.15,
    0.15,
    0.15,
    0.15,
    0.15,
    0.15,
    0.15,
)
# ML compute is driven by jobs, not the clock; the curve is only a mild bias.
_FLAT = tuple([0.5] * 24)

PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile(
            "web",
            "web",
            0.30,
            _OFFICE,
            0.55,
            (4, 8),
            (6.0, 52.0),
            0.22,
            (0.5, 2.0),
            (0.55, 0.8),
            (35.0, 50.0),
            8.0,
            40.0,
            3.0,
            (4.0, 3.0),
            (25.0, 40.0),
            (10.0, 20.0),
            (1.0, 3.0),
            (10.0, 30.0),
            True,
            ("cpu_runaway", "memory_leak", "io_storm"),
        ),
        Profile(
            "api",
            "api",
            0.20,
            _API,
            0.65,
            (8, 16),
            (8.0, 48.0),
            0.25,
            (0.5, 2.0),
            (0.6, 0.9),
            (40.0, 55.0),
            6.0,
            25.0,
            1.5,
            (6.0, 4.0),
            (25.0, 40.0),
            (10.0, 20.0),
            (1.0, 3.0),
            (10.0, 30.0),
            True,
            ("cpu_runaway", "memory_leak", "io_storm"),
        ),
        Profile(
            "database",
            "db",
            0.12,
            _API,
            0.6,
            (16, 32),
            (8.0, 40.0),
            0.3,
            (2.0, 8.0),
            (0.0, 0.02),
            (66.0, 74.0),
            3.0,
            20.0,
            2.0,
            (1.0, 8.0),
            (45.0, 60.0),
            (8.0, 15.0),
            (5.0, 12.0),
            (20.0, 45.0),
            False,
            ("io_storm", "db_outage"),
        ),
        Profile(
            "cache",
            "cache",
            0.08,
            _OFFICE,
            0.6,
            (4, 8),
            (3.0, 18.0),
            0.35,
            (0.2, 0.5),
            (0.0, 0.0),
            (62.0, 72.0),
            5.0,
            30.0,
            4.0,
            (2.0, 2.0),
            (15.0, 25.0),
            (3.0, 8.0),
            (3.0, 7.0),
            (15.0, 40.0),
            False,
            ("cpu_runaway", "memory_leak"),
        ),
        Profile(
            "ml_compute",
            "ml",
            0.12,
            _FLAT,
            0.9,
            (32, 64),
            (3.0, 86.0),
            0.08,
            (1.0, 6.0),
            (0.0, 0.1),
            (22.0, 32.0),
            40.0,
            15.0,
            0.3,
            (1.0, 1.0),
            (35.0, 50.0),
            (15.0, 25.0),
            (3.0, 7.0),
            (10.0, 30.0),
            False,
            ("memory_leak", "io_storm"),
        ),
        Profile(
            "batch_etl",
            "etl",
            0.18,
            _NIGHTLY,
            1.0,
            (8, 16),
            (4.0, 70.0),
            0.2,
            (2.0, 22.0),
            (0.4, 0.7),
            (28.0, 38.0),
            30.0,
            60.0,
            0.8,
            (3.0, 2.0),
            (30.0, 45.0),
            (10.0, 20.0),
            (1.0, 2.0),
            (10.0, 30.0),
            True,
            ("io_storm", "memory_leak", "cpu_runaway"),
        ),
    )
}

# When the fleet is smaller than the number of profiles, this is who gets in first.
_PRIORITY = ("web", "database", "api", "batch_etl", "ml_compute", "cache")


def compose(size: int, shares: dict[str, float] | None = None) -> list[tuple[str, str]]:
    """Names and profiles of a fleet of ``size`` servers, proportional to shares.

    Uses largest-remainder rounding, with at least one server of every profile
    once the fleet is big enough to have one of each.

    Args:
        size: number of servers (>= 1).
        shares: profile name -> weight; defaults to each profile's ``share``.

    Returns:
        ``(server_name, profile_name)`` pairs, grouped by profile.

    Raises:
        ValueError: size below 1, an unknown profile, or no positive weight.
    """
    if size < 1:
        raise ValueError(f"fleet size must be at least 1, got {size}")
    weights = shares if shares is not None else {n: p.share for n, p in PROFILES.items()}
    unknown = sorted(set(weights) - set(PROFILES))
    if unknown:
        raise ValueError(f"unknown profile(s) {', '.join(unknown)}; known: {', '.join(PROFILES)}")
    names = [n for n in _PRIORITY if weights.get(n, 0.0) > 0]
    if not names:
        raise ValueError("fleet composition needs at least one profile with a positive share")
    if size < len(names):
        counts = {n: int(n in names[:size]) for n in names}
    else:
        total = sum(weights[n] for n in names)
        exact = {n: size * weights[n] / total for n in names}
        counts = {n: int(exact[n]) for n in names}
        by_remainder = sorted(names, key=lambda n: (-(exact[n] - counts[n]), names.index(n)))
        for n in by_remainder[: size - sum(counts.values())]:
            counts[n] += 1
        # Every profile gets at least one server, lent by the biggest group.
        for n in names:
            if counts[n] == 0:
                counts[max(names, key=lambda k: counts[k])] -= 1
                counts[n] = 1
    return [
        (f"{PROFILES[n].prefix}-{i:03d}", n) for n in PROFILES if n in counts for i in range(1, counts[n] + 1)
    ]
