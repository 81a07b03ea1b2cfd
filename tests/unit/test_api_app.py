"""The Falcon app over fake backends: auth, errors, /health, /status, /openapi.json."""

from __future__ import annotations

from typing import Any

import falcon.testing
import pytest

from ipc import messages as m
from ipc.client import RequestTimeout
from nordiqd.api.app import Deps, build_routes, create_app

KEY = "k" * 43


class FakeBackends:
    def __init__(self, status: m.StatusReply | None = None) -> None:
        names = ["ingest", "predictor", "trainer", "api"]
        roles = [m.RoleStatus(name=n, state="ready", pid=10 + i) for i, n in enumerate(names)]
        self.reply = status or m.StatusReply(pid=1, state="running", uptime_s=3.0, roles=roles)

    def control(self, msg: m.Message, timeout_s: float | None = None) -> Any:
        if self.reply is None:
            raise RequestTimeout("ipc:///x/control.sock", 1.0, 1)
        return self.reply


@pytest.fixture
def client() -> falcon.testing.TestClient:
    return falcon.testing.TestClient(create_app(Deps(api_key=KEY, backends=FakeBackends())))


def test_health_needs_no_key(client: falcon.testing.TestClient) -> None:
    r = client.simulate_get("/health")
    assert r.status_code == 200
    assert r.json["status"] == "ok" and r.json["roles"]["trainer"] == "ready"


def test_health_is_503_when_a_role_is_not_ready() -> None:
    b = FakeBackends(
        m.StatusReply(
            pid=1, state="running", uptime_s=1, roles=[m.RoleStatus(name="ingest", state="backoff")]
        )
    )
    r = falcon.testing.TestClient(create_app(Deps(api_key=KEY, backends=b))).simulate_get("/health")
    assert r.status_code == 503 and r.json["status"] == "degraded"


@pytest.mark.parametrize("headers", [{}, {"X-API-Key": "wrong"}, {"X-API-Key": KEY[:-1]}])
def test_status_refuses_missing_or_wrong_key(
    client: falcon.testing.TestClient, headers: dict[str, str]
) -> None:
    r = client.simulate_get("/status", headers=headers)
    assert r.status_code == 401
    assert r.json["success"] is False and "X-API-Key" in r.json["error"]


def test_status_with_key(client: falcon.testing.TestClient) -> None:
    r = client.simulate_get("/status", headers={"X-API-Key": KEY})
    assert r.status_code == 200
    assert [x["name"] for x in r.json["roles"]] == ["ingest", "predictor", "trainer", "api"]


def test_internal_timeout_is_503_json() -> None:
    b = FakeBackends()
    b.reply = None  # type: ignore[assignment]
    c = falcon.testing.TestClient(create_app(Deps(api_key=KEY, backends=b)))
    r = c.simulate_get("/status", headers={"X-API-Key": KEY})
    assert r.status_code == 503
    assert r.json["success"] is False and "did not answer in time" in r.json["error"]


def test_unknown_path_is_json_404(client: falcon.testing.TestClient) -> None:
    r = client.simulate_get("/nope", headers={"X-API-Key": KEY})
    assert r.status_code == 404 and r.json == {"success": False, "error": "no such endpoint: GET /nope"}


def test_openapi_describes_every_route_and_method(client: falcon.testing.TestClient) -> None:
    spec = client.simulate_get("/openapi.json", headers={"X-API-Key": KEY}).json
    routes = build_routes(Deps(api_key=KEY, backends=FakeBackends()))
    for route in routes:
        for method in ("GET", "POST", "PUT", "DELETE"):
            served = hasattr(route.resource, f"on_{method.lower()}")
            described = method.lower() in spec["paths"].get(route.path, {})
            assert served == described, (route.path, method)
    assert spec["paths"]["/health"]["get"]["security"] == []
