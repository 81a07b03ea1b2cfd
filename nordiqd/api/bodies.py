"""The JSON bodies the api builds itself, one Struct each (the falcon + msgspec recipe).

Bodies the roles own arrive already encoded (forecasts, model info) and pass through as
bytes; the training bodies keep the seed manual's shape in ``api/training.py``. Errors
are built in one place, ``api/errors.py``.
"""

from __future__ import annotations

import msgspec

from ipc import messages as m


class HealthBody(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """GET /health: ``ok``/``degraded`` with the supervisor's state, or ``unavailable`` with
    the error; each role's state (empty when the supervisor did not answer); the free
    space of the data directory (``low`` below ``[daemon] disk_free_warn_mb``)."""

    status: str
    supervisor: str | None = None
    error: str | None = None
    roles: dict[str, str]
    disk: m.DiskSpace | None = None


class StatusBody(msgspec.Struct, frozen=True, kw_only=True):
    """GET /status: the supervisor's pid, state and uptime, then each role's status."""

    pid: int
    state: str
    uptime_s: float
    roles: list[m.RoleStatus]


class IngestAccepted(msgspec.Struct, frozen=True, kw_only=True):
    """POST /feed/data, 200: the records accepted (a record repeated in the batch counts once)."""

    success: bool = True
    accepted: int
