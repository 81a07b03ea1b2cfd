"""GET /metrics: Prometheus text from every role, plus the supervisor's view of them.

Each role renders its own lines (it owns the figures). A role that does not answer is
reported as ``nordiqd_role_scrape_ok{role=...} 0`` instead of failing the whole scrape.
"""

from __future__ import annotations

from typing import Any

import falcon

from ipc import messages as m
from ipc.client import RequestTimeout

SCRAPE_TIMEOUT_S = 3.0
ROLES = ("ingest", "predictor", "trainer")


class Metrics:
    """GET /metrics in the Prometheus text exposition format 0.0.4."""

    def __init__(self, backends: Any) -> None:
        self._backends = backends

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        parts: list[bytes] = []
        scrape: list[str] = []
        for role in ROLES:
            try:
                reply = self._backends.service(role, m.MetricsRequest(), timeout_s=SCRAPE_TIMEOUT_S)
                ok = isinstance(reply, m.TextReply)
            except RequestTimeout:
                ok = False
            if ok:
                parts.append(reply.body)
            scrape.append(f'nordiqd_role_scrape_ok{{role="{role}"}} {int(ok)}')
        lines = [
            "# HELP nordiqd_role_scrape_ok Whether the role answered this scrape.",
            "# TYPE nordiqd_role_scrape_ok gauge",
            *scrape,
        ]
        try:
            status = self._backends.control(m.StatusRequest(), timeout_s=SCRAPE_TIMEOUT_S)
            lines += [
                "# HELP nordiqd_role_up Whether the role is ready (supervisor's view).",
                "# TYPE nordiqd_role_up gauge",
                *[f'nordiqd_role_up{{role="{r.name}"}} {int(r.state == "ready")}' for r in status.roles],
                "# HELP nordiqd_role_restarts_total Restarts of the role since the supervisor started.",
                "# TYPE nordiqd_role_restarts_total counter",
                *[f'nordiqd_role_restarts_total{{role="{r.name}"}} {r.restarts}' for r in status.roles],
            ]
        except RequestTimeout:
            pass
        body = b"".join(parts) + ("\n".join(lines) + "\n").encode()
        resp.content_type = "text/plain; version=0.0.4; charset=utf-8"
        resp.data = body
