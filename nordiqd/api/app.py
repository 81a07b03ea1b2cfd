"""``create_app(deps)``: the Falcon application, its auth and its routes."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any

import falcon

from nordiqd import __version__
from nordiqd.api import errors, system
from nordiqd.api.routes import Operation, Route, openapi


@dataclass(frozen=True)
class Deps:
    """What the app needs from outside: the key, the backends, the configuration."""

    api_key: str
    backends: Any
    max_body_bytes: int = 16 * 1024 * 1024


PUBLIC_PATHS = frozenset({"/health"})


class ApiKeyAuth:
    """Falcon middleware: every path but the public ones needs the right ``X-API-Key``."""

    def __init__(self, key: str) -> None:
        self._key = key.encode()

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        if req.path in PUBLIC_PATHS:
            return
        given = (req.get_header("X-API-Key") or "").encode()
        # Constant-time comparison: the time taken says nothing about the key.
        if not hmac.compare_digest(given, self._key):
            why = "missing X-API-Key header" if not given else "wrong API key in X-API-Key header"
            raise errors.ApiError(401, why)


def build_routes(deps: Deps) -> list[Route]:
    """Every route of the API, with the docs /openapi.json serves."""
    routes = [
        Route(
            "/health",
            system.Health(deps.backends),
            {
                "GET": Operation(
                    "Overall state and each role's state",
                    {200: "all roles ready", 503: "starting, degraded or the supervisor is unreachable"},
                    auth=False,
                ),
            },
        ),
        Route(
            "/status",
            system.Status(deps.backends),
            {
                "GET": Operation(
                    "The supervisor's status per role: pid, state, uptime, restarts, last exit",
                    {200: "status", 401: "missing or wrong key", 503: "the supervisor did not answer"},
                ),
            },
        ),
    ]
    doc_route = Route(
        "/openapi.json",
        None,
        {
            "GET": Operation("This OpenAPI document", {200: "the document", 401: "missing or wrong key"}),
        },
    )
    document = openapi([*routes, doc_route], __version__)
    return [*routes, Route(doc_route.path, system.OpenApi(document), doc_route.operations)]


def create_app(deps: Deps) -> falcon.App:
    """Build the WSGI app over ``deps`` (real backends in the api role, fakes in tests)."""
    app = falcon.App(middleware=[ApiKeyAuth(deps.api_key)])
    app.req_options.strip_url_path_trailing_slash = True
    errors.install(app)
    for route in build_routes(deps):
        app.add_route(route.path, route.resource)
    return app
