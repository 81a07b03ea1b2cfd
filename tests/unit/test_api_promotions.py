"""``GET /admin/promotions`` and ``POST /admin/promote`` over fake backends: the trainer's
errors become 404 and 409, and a 200 means the predictor loaded the version."""

from __future__ import annotations

import json

from ipc import messages as m
from tests.unit.test_api_app import KEY, FakeBackends, _client

ENTRY = {"at": "2026-12-04T10:00:00Z", "version": "tft_model_20261204_100000", "decision": "forced"}


def promote(backends: FakeBackends, version: str = "tft_model_20261204_100000"):  # type: ignore[no-untyped-def]
    return _client(backends).simulate_post(
        "/admin/promote", params={"version": version}, headers={"X-API-Key": KEY}
    )


def test_promote_asks_the_trainer_then_the_predictor() -> None:
    backends = FakeBackends()
    backends.services["trainer"] = m.JsonReply(body=json.dumps(ENTRY).encode())
    backends.services["predictor"] = m.JsonReply(body=b'{"version": "tft_model_20261204_100000"}')
    r = promote(backends)
    assert r.status_code == 200 and r.json["promotion"] == ENTRY
    assert r.json["model"]["version"] == ENTRY["version"]
    assert backends.asked == [
        m.PromoteModel(version=ENTRY["version"]),
        m.ReloadModel(version=ENTRY["version"]),
    ]


def test_promote_errors() -> None:
    backends = FakeBackends()
    backends.services["trainer"] = m.ErrorReply(kind="not_found", message="no model version 'x'")
    assert promote(backends, "x").status_code == 404
    backends.services["trainer"] = m.ErrorReply(kind="conflict", message="the gate is judging job j")
    r = promote(backends)
    assert r.status_code == 409 and r.json == {"success": False, "error": "the gate is judging job j"}
    assert backends.asked[-1] == m.PromoteModel(version=ENTRY["version"])  # the predictor was not asked
    backends.services["trainer"] = m.JsonReply(body=json.dumps(ENTRY).encode())
    backends.services["predictor"] = m.ErrorReply(kind="reload_failed", message="checksum mismatch")
    r = promote(backends)
    assert r.status_code == 409 and "logged as forced" in r.json["error"] and "checksum" in r.json["error"]
    r = _client(backends).simulate_post("/admin/promote", headers={"X-API-Key": KEY})
    assert r.status_code == 400 and "version" in r.json["error"]


def test_promotions_pass_the_log_through() -> None:
    backends = FakeBackends()
    backends.services["trainer"] = m.JsonReply(body=json.dumps({"promotions": [ENTRY]}).encode())
    r = _client(backends).simulate_get("/admin/promotions", headers={"X-API-Key": KEY})
    assert r.status_code == 200 and r.json == {"promotions": [ENTRY]}
    assert backends.asked == [m.PromotionsRequest()]
