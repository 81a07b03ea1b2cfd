"""GET /metrics: Prometheus text from every role, plus the supervisor's view of them.

Each role renders its own lines (it owns the figures). A role that does not answer is
reported as ``nordiqd_role_scrape_ok{role=...} 0`` instead of failing the whole scrape.
"""

from __future__ import annotations

import falcon

from ipc import messages as m
from ipc.client import RequestTimeout
from nordiqd.api.backends import Backends
from nordiqd.promtext import family
from nordiqd.roles import SERVICES

SCRAPE_TIMEOUT_S = 3.0


class Metrics:
    """GET /metrics in the Prometheus text exposition format 0.0.4."""

    def __init__(self, backends: Backends) -> None:
        self._backends = backends

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        parts: list[bytes] = []
        scrape: list[tuple[dict[str, str], float]] = []
        for role in SERVICES:
            try:
                reply = self._backends.service(role, m.MetricsRequest(), timeout_s=SCRAPE_TIMEOUT_S)
            except RequestTimeout:
                reply = None
            if isinstance(reply, m.TextReply):
                parts.append(reply.body)
            scrape.append(({"role": role}, int(isinstance(reply, m.TextReply))))
        text = family("nordiqd_role_scrape_ok", "gauge", "Whether the role answered this scrape.", scrape)
        try:
            status = self._backends.control(m.StatusRequest(), timeout_s=SCRAPE_TIMEOUT_S)
        except RequestTimeout:
            status = None
        if isinstance(status, m.StatusReply):
            text += family(
                "nordiqd_role_up",
                "gauge",
                "Whether the role is ready (supervisor's view).",
                [({"role": r.name}, int(r.state == "ready")) for r in status.roles],
            ) + family(
                "nordiqd_role_restarts_total",
                "counter",
                "Restarts of the role since the supervisor started.",
                [({"role": r.name}, r.restarts) for r in status.roles],
            )
        body = b"".join(parts) + text.encode()
        resp.content_type = "text/plain; version=0.0.4; charset=utf-8"
        resp.data = body
