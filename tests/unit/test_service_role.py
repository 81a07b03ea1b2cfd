"""A role's service socket: its own requests are answered, another role's are refused by name."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
import zmq

from ipc import codec
from ipc import messages as m
from ipc.client import RequestClient
from nordiqd.config import Config
from nordiqd.roles.base import ServiceRole
from nordiqd.roles.ingest import IngestRole
from nordiqd.roles.predictor import PredictorRole
from nordiqd.roles.trainer import TrainerRole


def test_each_role_decodes_its_own_union() -> None:
    assert IngestRole.requests is codec.ingest_requests
    assert PredictorRole.requests is codec.predictor_requests
    assert TrainerRole.requests is codec.trainer_requests


class Probe(ServiceRole[m.IngestRequest]):
    """The ingest role's service socket, without its buffer: the base handles Ping/Metrics."""

    name = "ingest"
    requests = IngestRole.requests

    def metrics_text(self) -> str:
        return "probe_up 1\n"


def _ask(role: Probe, ctx: zmq.Context[zmq.Socket[bytes]], payload: m.Message) -> m.ServiceReply:
    """Send ``payload`` from a client thread while this thread serves the role's socket."""
    client = RequestClient(ctx, role.config.endpoint(role.name), codec.service_replies, timeout_s=5.0)
    got: list[m.ServiceReply] = []
    asker = threading.Thread(target=lambda: got.append(client.request(payload)))
    asker.start()
    while asker.is_alive():
        if role.service.poll(50):
            role.on_readable(role.service)
    asker.join()
    client.close()
    return got[0]


@pytest.fixture
def probe(tmp_path: Path) -> Iterator[tuple[Probe, zmq.Context[zmq.Socket[bytes]]]]:
    cfg = Config()
    cfg = msgspec.structs.replace(cfg, daemon=msgspec.structs.replace(cfg.daemon, run_dir=str(tmp_path)))
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    role = Probe(cfg)
    role.init(ctx)
    yield role, ctx
    role.service.close(0)
    ctx.term()


def test_own_requests_are_answered(probe: tuple[Probe, zmq.Context[zmq.Socket[bytes]]]) -> None:
    role, ctx = probe
    pong = _ask(role, ctx, m.Ping())
    assert isinstance(pong, m.Pong) and pong.role == "ingest"
    assert _ask(role, ctx, m.MetricsRequest()) == m.TextReply(body=b"probe_up 1\n")


@pytest.mark.parametrize(
    "foreign",
    [m.AlertsRequest(), m.TriggerTraining(epochs=1), m.StatusRequest(), m.Ack(message="x")],
    ids=lambda msg: type(msg).__name__,
)
def test_another_roles_request_is_a_bad_request_naming_it(
    probe: tuple[Probe, zmq.Context[zmq.Socket[bytes]]], foreign: m.Message
) -> None:
    role, ctx = probe
    reply = _ask(role, ctx, foreign)
    assert reply == m.ErrorReply(
        kind="bad_request", message=f"ingest does not handle {type(foreign).__name__}"
    )
    assert isinstance(_ask(role, ctx, m.Ping()), m.Pong)  # and the role still serves
