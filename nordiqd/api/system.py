"""Resources about the daemon itself: /health, /status, /openapi.json."""

from __future__ import annotations

from typing import Any

import falcon
import msgspec

from ipc import messages as m
from ipc.client import RequestTimeout
from nordiqd.api.errors import ApiError

HEALTH_TIMEOUT_S = 2.0


class Health:
    """GET /health: overall state and each role's state; no key needed."""

    def __init__(self, backends: Any) -> None:
        self._backends = backends

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        try:
            status = self._backends.control(m.StatusRequest(), timeout_s=HEALTH_TIMEOUT_S)
        except RequestTimeout:
            resp.status = falcon.HTTP_503
            resp.media = {"status": "unavailable", "error": "the supervisor did not answer", "roles": {}}
            return
        roles = {r.name: r.state for r in status.roles}
        healthy = status.state == "running" and all(s == "ready" for s in roles.values())
        resp.status = falcon.HTTP_200 if healthy else falcon.HTTP_503
        resp.media = {"status": "ok" if healthy else "degraded", "supervisor": status.state, "roles": roles}


class Status:
    """GET /status: the supervisor's status, per role (pid, state, uptime, restarts, last exit)."""

    def __init__(self, backends: Any) -> None:
        self._backends = backends

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        reply = self._backends.control(m.StatusRequest())
        if isinstance(reply, m.ErrorReply):
            raise ApiError(503, reply.message)
        body = msgspec.to_builtins(reply)
        body.pop("t", None)
        body.pop("v", None)
        resp.media = body


class OpenApi:
    """GET /openapi.json: the description of every endpoint that exists."""

    def __init__(self, document: dict[str, Any]) -> None:
        self._document = document

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = self._document
