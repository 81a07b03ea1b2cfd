"""Resources about the daemon itself: /health, /status, /openapi.json."""

from __future__ import annotations

from typing import Any

import falcon

from ipc import messages as m
from ipc.client import RequestTimeout
from nordiqd.api.backends import Backends
from nordiqd.api.bodies import HealthBody, StatusBody
from nordiqd.api.errors import ApiError
from nordiqd.diskspace import measure

HEALTH_TIMEOUT_S = 2.0


class Health:
    """GET /health: overall state, each role's state, free disk space; no key needed.

    Low disk space does not make the daemon unhealthy (it still serves): it shows as
    ``disk.low``, and a full disk as 507 answers to ingest.
    """

    def __init__(self, backends: Backends, data_dir: str | None = None, disk_warn_bytes: int = 0) -> None:
        self._backends = backends
        self._data_dir = data_dir
        self._disk_warn_bytes = disk_warn_bytes

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        disk = None
        if self._data_dir is not None:
            try:
                disk = measure(self._data_dir, self._disk_warn_bytes)
            except OSError:
                pass  # not there yet (first start), or unreadable: the roles' states still say much
        try:
            status = self._backends.control(m.StatusRequest(), timeout_s=HEALTH_TIMEOUT_S)
        except RequestTimeout:
            status = None
        if not isinstance(status, m.StatusReply):
            resp.status = falcon.HTTP_503
            resp.media = HealthBody(
                status="unavailable", error="the supervisor did not answer", roles={}, disk=disk
            )
            return
        roles = {r.name: r.state for r in status.roles}
        healthy = status.state == "running" and all(s == "ready" for s in roles.values())
        resp.status = falcon.HTTP_200 if healthy else falcon.HTTP_503
        resp.media = HealthBody(
            status="ok" if healthy else "degraded", supervisor=status.state, roles=roles, disk=disk
        )


class Status:
    """GET /status: the supervisor's status, per role (pid, state, uptime, restarts, last exit)."""

    def __init__(self, backends: Backends) -> None:
        self._backends = backends

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        reply = self._backends.control(m.StatusRequest())
        if isinstance(reply, m.ErrorReply):
            raise ApiError(503, reply.message)
        if not isinstance(reply, m.StatusReply):
            raise ApiError(502, f"the supervisor answered {type(reply).__name__} to status")
        resp.media = StatusBody(pid=reply.pid, state=reply.state, uptime_s=reply.uptime_s, roles=reply.roles)


class OpenApi:
    """GET /openapi.json: the description of every endpoint that exists."""

    def __init__(self, document: dict[str, Any]) -> None:
        self._document = document

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = self._document
