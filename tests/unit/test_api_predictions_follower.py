"""GET /predictions/current from the api's copy: fresh while the predictor confirms it, 503 after."""

from __future__ import annotations

import gzip
import threading
import time
from typing import Any

import falcon.testing
import msgspec
import pytest

from ipc import messages as m
from ipc.client import RequestTimeout
from nordiqd.api.app import Deps, create_app
from nordiqd.api.predictions import CurrentPredictions, PredictionsFollower
from tests.harness import wait_for

KEY = "k" * 43
HEADERS = {"X-API-Key": KEY}


class Predictor:
    """The predictor's side of PredictionsRequest, switchable between passes and outages."""

    def __init__(self) -> None:
        self.etag = "pass-1"
        self.down = False
        self.asked: list[str] = []
        self.threads: set[str] = set()
        self._lock = threading.Lock()

    def body(self) -> bytes:
        return gzip.compress(msgspec.json.encode({"generated_at": self.etag, "servers": {}}))

    def service(self, role: str, msg: m.Message, timeout_s: float | None = None) -> Any:
        assert role == "predictor" and isinstance(msg, m.PredictionsRequest)
        with self._lock:
            self.asked.append(msg.known)
            self.threads.add(threading.current_thread().name)
        if self.down:
            raise RequestTimeout("ipc:///x/predictor.sock", 0.01, 1)
        return m.JsonReply(
            body=b"" if msg.known == self.etag else self.body(), etag=self.etag, encoding="gzip"
        )


@pytest.fixture
def setup(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(PredictionsFollower, "POLL_S", 0.02)
    monkeypatch.setattr(PredictionsFollower, "STALE_S", 0.3)
    predictor = Predictor()
    app = create_app(Deps(api_key=KEY, backends=predictor))
    yield falcon.testing.TestClient(app), predictor
    resource = app._router.find("/predictions/current")[0]
    assert isinstance(resource, CurrentPredictions)
    resource.follower.close()


def test_requests_read_the_copy_the_follower_keeps_current(setup: Any) -> None:
    client, predictor = setup
    first = client.simulate_get("/predictions/current", headers=HEADERS)
    assert first.status_code == 200 and first.json["generated_at"] == "pass-1"
    assert first.headers["etag"] == '"pass-1"'
    wait_for(lambda: predictor.asked.count("pass-1") >= 3, 5)  # the follower revalidates
    asked = len(predictor.asked)
    for _ in range(20):
        assert client.simulate_get("/predictions/current", headers=HEADERS).json["generated_at"] == "pass-1"
    assert len(predictor.asked) - asked < 20  # requests did not each ask the predictor
    assert "predictions-follower" in predictor.threads
    predictor.etag = "pass-2"
    assert wait_for(
        lambda: client.simulate_get("/predictions/current", headers=HEADERS).json["generated_at"] == "pass-2",
        5,
    )


def test_gzip_plain_and_not_modified(setup: Any) -> None:
    client, _ = setup
    gz = client.simulate_get("/predictions/current", headers={**HEADERS, "Accept-Encoding": "gzip"})
    assert gz.headers["content-encoding"] == "gzip" and gzip.decompress(gz.content).startswith(b"{")
    plain = client.simulate_get("/predictions/current", headers=HEADERS)
    assert "content-encoding" not in plain.headers and plain.json["generated_at"] == "pass-1"
    again = client.simulate_get("/predictions/current", headers={**HEADERS, "If-None-Match": '"pass-1"'})
    assert again.status_code == 304 and again.content == b""


def test_a_copy_the_predictor_stopped_confirming_is_not_served(setup: Any) -> None:
    client, predictor = setup
    assert client.simulate_get("/predictions/current", headers=HEADERS).status_code == 200
    predictor.down = True
    assert client.simulate_get("/predictions/current", headers=HEADERS).status_code == 200  # within STALE_S
    time.sleep(PredictionsFollower.STALE_S + 0.1)
    r = client.simulate_get("/predictions/current", headers=HEADERS)
    assert r.status_code == 503 and "did not answer in time" in r.json["error"]
    predictor.down = False
    predictor.etag = "pass-3"
    assert wait_for(
        lambda: client.simulate_get("/predictions/current", headers=HEADERS).status_code == 200, 5
    )
    assert client.simulate_get("/predictions/current", headers=HEADERS).json["generated_at"] == "pass-3"
