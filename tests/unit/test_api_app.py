"""The Falcon app over fake backends: auth, errors, /health, /status, /feed/data, /metrics,
/openapi.json."""

from __future__ import annotations

from pathlib import Path

import falcon.testing
import pytest
import zmq

from ipc import messages as m
from ipc.client import RequestTimeout
from nordiqd import config
from nordiqd.api.app import Deps, build_routes, create_app
from nordiqd.api.backends import Backends, ZmqBackends
from nordiqd.names import DEFAULT_METRICS

KEY = "k" * 43


class FakeBackends:
    """The supervisor answers ``reply`` (None: it times out); each role answers ``services[role]``."""

    def __init__(self, status: m.ControlReply | None = None) -> None:
        names = ["ingest", "predictor", "trainer", "api"]
        roles = [m.RoleStatus(name=n, state="ready", pid=10 + i) for i, n in enumerate(names)]
        self.reply: m.ControlReply | None = status or m.StatusReply(
            pid=1, state="running", uptime_s=3.0, roles=roles
        )
        self.services: dict[str, m.ServiceReply | None] = {}
        self.asked: list[m.ServiceRequest] = []

    def control(self, msg: m.ControlRequest, timeout_s: float | None = None) -> m.ControlReply:
        if self.reply is None:
            raise RequestTimeout("ipc:///x/control.sock", 1.0, 1)
        return self.reply

    def service(self, role: str, msg: m.ServiceRequest, timeout_s: float | None = None) -> m.ServiceReply:
        self.asked.append(msg)
        reply = self.services.get(role)
        if reply is None:
            raise RequestTimeout(f"ipc:///x/{role}.sock", 1.0, 1)
        return reply


def _client(backends: Backends) -> falcon.testing.TestClient:
    return falcon.testing.TestClient(create_app(Deps(api_key=KEY, backends=backends)))


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
    b.reply = None
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


def test_health_without_the_supervisor_is_503_unavailable() -> None:
    b = FakeBackends()
    b.reply = None
    r = _client(b).simulate_get("/health")
    assert r.status_code == 503
    assert r.json == {"status": "unavailable", "error": "the supervisor did not answer", "roles": {}}


def test_health_body_names_the_supervisor_state(client: falcon.testing.TestClient) -> None:
    body = client.simulate_get("/health").json
    assert list(body) == ["status", "supervisor", "roles"] and body["supervisor"] == "running"


def test_status_body_is_the_reply_without_tag_or_version(client: falcon.testing.TestClient) -> None:
    body = client.simulate_get("/status", headers={"X-API-Key": KEY}).json
    assert list(body) == ["pid", "state", "uptime_s", "roles"]
    assert body["roles"][0] == {
        "name": "ingest",
        "state": "ready",
        "pid": 10,
        "uptime_s": None,
        "restarts": 0,
        "last_exit": None,
    }


def test_status_error_reply_is_503() -> None:
    b = FakeBackends(m.ErrorReply(kind="internal", message="supervisor broke"))
    r = _client(b).simulate_get("/status", headers={"X-API-Key": KEY})
    assert r.status_code == 503 and r.json == {"success": False, "error": "supervisor broke"}


def test_feed_ack_and_rejection_bodies() -> None:
    b = FakeBackends()
    b.services["ingest"] = m.IngestAck(accepted=2, seq=5)
    c = _client(b)
    r = c.simulate_post("/feed/data", body=b'{"records": []}', headers={"X-API-Key": KEY})
    assert r.status_code == 200 and r.json == {"success": True, "accepted": 2}
    assert b.asked == [m.IngestBatch(format="json", body=b'{"records": []}')]
    problems = [{"index": 0, "field": "cpu_user_pct", "message": "not a number"}]
    details: dict[str, object] = {"success": False, "error": "x", "problems": problems, "problem_count": 1}
    b.services["ingest"] = m.ErrorReply(kind="invalid_batch", message="1 problem", details=details)
    r = c.simulate_post("/feed/data", body=b"{}", headers={"X-API-Key": KEY})
    assert r.status_code == 400
    assert r.json == {"success": False, "error": "1 problem", "problems": problems, "problem_count": 1}
    b.services["ingest"] = m.ErrorReply(kind="batch_too_large", message="too many")
    assert c.simulate_post("/feed/data", body=b"{}", headers={"X-API-Key": KEY}).status_code == 413


def test_a_full_disk_is_507_naming_the_path_and_health_shows_the_free_space(tmp_path: Path) -> None:
    b = FakeBackends()
    message = f"the disk is full: no space left on device for the log in {tmp_path} (0 bytes free)"
    b.services["ingest"] = m.ErrorReply(kind="disk_full", message=message, details={"path": str(tmp_path)})
    c = falcon.testing.TestClient(
        create_app(Deps(api_key=KEY, backends=b, data_dir=str(tmp_path), disk_warn_bytes=1 << 60))
    )
    r = c.simulate_post("/feed/data", body=b"{}", headers={"X-API-Key": KEY})
    assert r.status_code == 507
    assert r.json == {"success": False, "error": message, "path": str(tmp_path)}
    health = c.simulate_get("/health")
    assert health.status_code == 200  # low space warns; it does not make the daemon unhealthy
    disk = health.json["disk"]
    assert disk["path"] == str(tmp_path) and disk["low"] is True
    assert 0 < disk["free_bytes"] <= disk["total_bytes"]


def test_a_reply_of_the_wrong_kind_is_502() -> None:
    b = FakeBackends()
    b.services["ingest"] = m.Pong(role="ingest", pid=1)
    r = _client(b).simulate_post("/feed/data", body=b"{}", headers={"X-API-Key": KEY})
    assert r.status_code == 502 and "Pong" in r.json["error"] and "IngestAck" in r.json["error"]


def test_metrics_keeps_roles_that_answer_and_marks_the_rest() -> None:
    b = FakeBackends()
    b.services["ingest"] = m.TextReply(body=b"ingest_line 1\n")
    b.services["trainer"] = m.ErrorReply(kind="internal", message="x")
    text = _client(b).simulate_get("/metrics", headers={"X-API-Key": KEY}).text
    assert text.startswith("ingest_line 1\n")
    assert 'nordiqd_role_scrape_ok{role="ingest"} 1' in text
    assert 'nordiqd_role_scrape_ok{role="predictor"} 0' in text
    assert 'nordiqd_role_scrape_ok{role="trainer"} 0' in text
    assert 'nordiqd_role_up{role="api"} 1' in text


def test_training_endpoints_map_the_trainer_replies() -> None:
    b = FakeBackends()
    c = _client(b)
    h = {"X-API-Key": KEY}
    b.services["trainer"] = m.TriggerReply(
        success=True, status="queued", job_id="j1", epochs=2, incremental=True
    )
    r = c.simulate_post("/admin/trigger-training", params={"epochs": "2"}, headers=h)
    assert r.status_code == 202
    assert r.json == {"success": True, "status": "queued", "job_id": "j1", "epochs": 2, "incremental": True}
    b.services["trainer"] = m.TriggerReply(success=False, status="rejected", error="a job is running")
    r = c.simulate_post("/admin/trigger-training", headers=h)
    assert r.status_code == 409
    assert r.json == {"success": False, "error": "a job is running", "status": "rejected"}
    b.services["trainer"] = m.JobStatusReply(job=None)
    assert c.simulate_get("/admin/training-status", headers=h).status_code == 404
    b.services["trainer"] = m.CancelReply(success=False, message="no job is running")
    r = c.simulate_post("/admin/cancel-training", headers=h)
    assert r.status_code == 409 and r.json == {"success": False, "error": "no job is running"}
    b.services["trainer"] = m.ErrorReply(kind="internal", message="trainer failed")
    r = c.simulate_get("/admin/training-stats", headers=h)
    assert r.status_code == 503 and r.json == {"success": False, "error": "trainer failed"}


def test_accuracy_passes_the_window_as_epoch_seconds_and_the_body_through() -> None:
    b = FakeBackends()
    c = _client(b)
    h = {"X-API-Key": KEY}
    b.services["predictor"] = m.JsonReply(body=b'{"scored_through":null,"versions":[],"worst_servers":[]}')
    params = {"since": "2027-01-15T08:00:00Z", "until": "2027-01-15T10:00:00+01:00", "target": "cpu_user_pct"}
    r = c.simulate_get("/admin/accuracy", params=params, headers=h)
    assert r.status_code == 200 and r.json == {"scored_through": None, "versions": [], "worst_servers": []}
    assert b.asked[-1] == m.AccuracyRequest(
        since=1_800_000_000, until=1_800_003_600, target="cpu_user_pct", server=None
    )
    c.simulate_get("/admin/accuracy", params={"until": "2027-01-15T08:00:00"}, headers=h)
    assert b.asked[-1] == m.AccuracyRequest(until=1_800_000_000)


@pytest.mark.parametrize("name", ["since", "until"])
def test_accuracy_refuses_a_bad_time_naming_the_parameter(name: str) -> None:
    b = FakeBackends()
    b.services["predictor"] = m.JsonReply(body=b"{}")
    r = _client(b).simulate_get("/admin/accuracy", params={name: "yesterday"}, headers={"X-API-Key": KEY})
    assert r.status_code == 400 and name in r.json["error"]
    assert b.asked == []


def test_accuracy_of_an_unknown_target_is_400() -> None:
    b = FakeBackends()
    b.services["predictor"] = m.ErrorReply(kind="bad_request", message="target: 'x' is not forecast")
    r = _client(b).simulate_get("/admin/accuracy", params={"target": "x"}, headers={"X-API-Key": KEY})
    assert r.status_code == 400 and r.json == {"success": False, "error": "target: 'x' is not forecast"}


def test_a_busy_ingest_is_503_with_retry_after() -> None:
    b = FakeBackends()
    b.services["ingest"] = m.ErrorReply(kind="busy", message="ingest is busy", details={"retry_after_s": 5})
    r = _client(b).simulate_post("/feed/data", body=b'{"records": []}', headers={"X-API-Key": KEY})
    assert r.status_code == 503 and r.headers["Retry-After"] == "5"
    assert r.json["success"] is False and r.json["error"] == "ingest is busy"


def test_a_request_in_flight_while_the_api_stops_is_503_not_500(tmp_path: Path) -> None:
    # The runner destroys the zmq context on the way out while waitress may still serve.
    cfg = config.from_dict({"daemon": {"data_dir": str(tmp_path), "run_dir": str(tmp_path / "run")}})
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    backends = ZmqBackends(ctx, cfg)
    ctx.destroy(0)
    r = _client(backends).simulate_post("/feed/data", body=b'{"records": []}', headers={"X-API-Key": KEY})
    assert r.status_code == 503, r.text
    assert "internal link failed" in r.json["error"]


def test_openapi_states_what_the_server_checks(client: falcon.testing.TestClient) -> None:
    spec = client.simulate_get("/openapi.json", headers={"X-API-Key": KEY}).json
    feed = spec["paths"]["/feed/data"]["post"]["requestBody"]
    assert feed["required"] is True
    body = feed["content"]["application/json"]["schema"]
    assert body["required"] == ["records"] and body["additionalProperties"] is False
    record = body["properties"]["records"]["items"]
    assert record["required"] == ["timestamp", "server_name"]
    assert set(record["properties"]) == {"timestamp", "server_name", "profile", *DEFAULT_METRICS}
    params = {p["name"]: p["schema"] for p in spec["paths"]["/admin/trigger-training"]["post"]["parameters"]}
    assert params["epochs"] == {"type": "integer", "minimum": 1, "maximum": 1000}
    flag = {"type": "string", "enum": ["true", "false", "True", "False"]}  # requests sends True
    assert params["blocking"] == params["incremental"] == flag


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/admin/trigger-training", {"epochs": ""}),  # the spec says integer: empty is refused
        ("/admin/trigger-training", {"blocking": "1"}),  # the spec says true or false
        ("/admin/trigger-training", {"incremental": ""}),
        ("/admin/accuracy", {"until": ""}),
        ("/admin/accuracy", {"target": ""}),
        ("/admin/accuracy", {"server": "web 01"}),
    ],
)
def test_what_the_spec_forbids_is_400_before_any_role_is_asked(path: str, params: dict[str, str]) -> None:
    b = FakeBackends()
    c = _client(b)
    method = c.simulate_post if path.endswith("training") else c.simulate_get
    r = method(path, params=params, headers={"X-API-Key": KEY}, params_csv=False)
    assert r.status_code == 400 and r.json["success"] is False, r.text
    assert b.asked == []
