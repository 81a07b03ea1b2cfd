"""Scripted incidents: the ``--scenario`` spec and its parser.

Syntax (no spaces)::

    KIND:SERVER[,SERVER...]@START+DURATION[*SEVERITY]

    memory_leak:web-003@2026-11-26T14:00Z+6h
    io_storm:db-001,db-002@2026-11-26T14:00:00+01:00+45m*0.6
    cpu_runaway:api-002@+30m+1h30m          (START relative to the fleet's start)

- KIND: one of ``SCENARIO_KINDS``.
- SERVER: a server name of the fleet (``web-003``); checked when the fleet is built.
- START: ISO-8601 with a UTC offset (``Z`` or ``+HH:MM``), or ``+DURATION`` meaning
  that long after the fleet's ``start``.
- DURATION: one or more ``<number><unit>`` with unit ``s``, ``m``, ``h`` or ``d``
  (``90m``, ``1h30m``, ``2d``).
- SEVERITY: a number in (0, 1], default 1 (full strength).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

SCENARIO_KINDS: dict[str, str] = {
    "memory_leak": "memory climbs steadily to ~97 % over the window, swap follows; "
    "the process is restarted at the end",
    "io_storm": "I/O wait surges, load follows, useful CPU work stalls",
    "cpu_runaway": "a runaway (JVM) thread drives cpu_user towards 100 %",
    "db_outage": "a database server stalls; the web/api/ETL servers that use it pile up "
    "CLOSE_WAIT connections, wait on I/O and serve less",
    "disk_fill": "disk usage climbs towards full over the window, then is cleaned up",
}

SYNTAX = "KIND:SERVER[,SERVER...]@START+DURATION[*SEVERITY]"
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?[smhd])+")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_ISO = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?")
_SERVER = re.compile(r"[a-z][a-z0-9_]*-\d+")
_SEVERITY = re.compile(r"\d+(?:\.\d+)?")


class ScenarioError(ValueError):
    """A scenario spec that cannot be parsed or does not fit the fleet."""


@dataclass(frozen=True)
class Scenario:
    """One scripted incident.

    Attributes:
        kind: one of ``SCENARIO_KINDS``.
        servers: names of the servers it hits.
        start: start in epoch seconds, or None when relative (see ``offset_s``).
        offset_s: start as seconds after the fleet's start, when relative.
        duration_s: length of the incident window in seconds.
        severity: strength in (0, 1].
        text: the spec it was parsed from (for error messages).
    """

    kind: str
    servers: tuple[str, ...]
    start: float | None
    offset_s: float | None
    duration_s: float
    severity: float = 1.0
    text: str = ""

    def start_at(self, fleet_start: float | None) -> float:
        """Absolute start in epoch seconds, resolving a relative start.

        Raises:
            ScenarioError: the start is relative and the fleet has no start.
        """
        if self.start is not None:
            return self.start
        if fleet_start is None:
            raise ScenarioError(
                f"scenario {self.text!r} has a relative start (@+...) but the fleet was "
                "given no start time to count from"
            )
        return fleet_start + (self.offset_s or 0.0)


def parse_duration(text: str) -> float:
    """Seconds in a duration like ``90s``, ``45m``, ``1h30m`` or ``2d``.

    Raises:
        ScenarioError: not a duration, or zero.
    """
    if not _DURATION.fullmatch(text):
        raise ScenarioError(f"bad duration {text!r}: expected e.g. 90s, 45m, 1h30m or 2d")
    seconds = sum(float(n) * _UNITS[u] for n, u in _DURATION_PART.findall(text))
    if seconds <= 0:
        raise ScenarioError(f"bad duration {text!r}: must be longer than zero")
    return seconds


def _fail(text: str, pos: int, what: str) -> ScenarioError:
    return ScenarioError(
        f"bad scenario {text!r} at column {pos + 1}: {what} (format: {SYNTAX}, "
        "e.g. memory_leak:web-003@2026-11-26T14:00Z+6h)"
    )


def _duration_at(text: str, pos: int, what: str) -> tuple[float, int]:
    m = _DURATION.match(text, pos)
    if not m:
        rest = text[pos : pos + 8] or "the end"
        raise _fail(text, pos, f"expected {what} such as 45m, 6h or 1h30m (units s, m, h, d), found {rest!r}")
    seconds = sum(float(n) * _UNITS[u] for n, u in _DURATION_PART.findall(m.group()))
    if seconds <= 0:
        raise _fail(text, pos, f"{what} must be longer than zero")
    return seconds, m.end()


def parse_scenario(text: str) -> Scenario:
    """Parses one scenario spec (see the module docstring for the syntax).

    Args:
        text: e.g. ``memory_leak:web-003@2026-11-26T14:00Z+6h``.

    Returns:
        The scenario; server names are checked later, against the fleet.

    Raises:
        ScenarioError: naming the column and what was expected there.
    """
    text = text.strip()
    colon = text.find(":")
    if colon < 0:
        raise _fail(text, 0, "missing ':' after the incident kind")
    kind = text[:colon]
    if kind not in SCENARIO_KINDS:
        raise _fail(text, 0, f"unknown kind {kind!r}; known kinds: {', '.join(SCENARIO_KINDS)}")
    at = text.find("@", colon)
    if at < 0:
        raise _fail(text, colon + 1, "missing '@START' after the server names")
    servers: list[str] = []
    pos = colon + 1
    for name in text[colon + 1 : at].split(","):
        if not _SERVER.fullmatch(name):
            raise _fail(text, pos, f"bad server name {name!r}; expected names like web-003")
        servers.append(name)
        pos += len(name) + 1
    pos = at + 1
    start: float | None = None
    offset: float | None = None
    if text.startswith("+", pos):
        offset, pos = _duration_at(text, pos + 1, "a start offset")
    else:
        m = _ISO.match(text, pos)
        if not m:
            raise _fail(
                text,
                pos,
                "expected a start time like 2026-11-26T14:00Z, or +30m "
                "for 30 minutes after the fleet's start",
            )
        if not re.search(r"(?:Z|[+-]\d{2}:?\d{2})$", m.group()):
            raise _fail(text, m.end(), "the start time needs a UTC offset: add Z or +HH:MM")
        try:
            start = datetime.fromisoformat(m.group()).timestamp()
        except ValueError as e:
            raise _fail(text, pos, f"invalid start time {m.group()!r}: {e}") from None
        pos = m.end()
    if not text.startswith("+", pos):
        raise _fail(text, pos, "expected '+DURATION' after the start time")
    duration, pos = _duration_at(text, pos + 1, "a duration")
    severity = 1.0
    if text.startswith("*", pos):
        m = _SEVERITY.match(text, pos + 1)
        if not m or not 0.0 < float(m.group()) <= 1.0:
            raise _fail(text, pos + 1, "severity after '*' must be a number in (0, 1]")
        severity, pos = float(m.group()), m.end()
    if pos != len(text):
        raise _fail(text, pos, f"unexpected {text[pos:]!r} after the end of the spec")
    return Scenario(kind, tuple(servers), start, offset, duration, severity, text)
