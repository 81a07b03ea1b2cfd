"""Every message round-trips through msgpack; each role's union refuses the others'; the
request client times out cleanly."""

from __future__ import annotations

import inspect
import time
import typing

import msgspec
import pytest
import zmq

from ipc import codec
from ipc import messages as m
from ipc.client import RequestClient, RequestTimeout, reply
from ipc.codec import ProtocolError
from ipc.sockets import make_socket

S = typing.TypeVar("S", bound=msgspec.Struct)

SAMPLES: dict[object, object] = {
    str: "x",
    int: 7,
    float: 1.5,
    bool: True,
    bytes: b"\x00\x01raw",
    typing.Any: {"a": [1, 2]},
    object: {"a": [1, 2]},
}


def _value(tp: object) -> object:
    if tp in SAMPLES:
        return SAMPLES[tp]
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Literal:
        return args[0]
    if origin is list:
        return [_value(args[0])]
    if origin is dict:
        return {_value(args[0]): _value(args[1])}
    if origin in (typing.Union, __import__("types").UnionType):
        return _value(next(a for a in args if a is not type(None)))
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        return _build(tp)
    raise AssertionError(f"no sample for {tp!r}")


def _build(cls: type[S]) -> S:
    hints = typing.get_type_hints(cls)
    return cls(**{f: _value(hints[f]) for f in cls.__struct_fields__ if f != "v"})


MESSAGES = [
    obj
    for _, obj in inspect.getmembers(m, inspect.isclass)
    if issubclass(obj, m.Message) and obj is not m.Message
]
CHANNELS: list[codec.Codec[m.Message]] = [
    codec.children,
    codec.control,
    codec.events,
    codec.publish,
    codec.job,
    codec.ingest_requests,
    codec.predictor_requests,
    codec.trainer_requests,
    codec.service_replies,
]
ROLE_UNIONS = {"ingest": m.IngestRequest, "predictor": m.PredictorRequest, "trainer": m.TrainerRequest}
ROLE_CODECS: dict[str, codec.Codec[m.Message]] = {
    "ingest": codec.ingest_requests,
    "predictor": codec.predictor_requests,
    "trainer": codec.trainer_requests,
}


def _channel_for(cls: type[m.Message]) -> codec.Codec[m.Message]:
    for ch in CHANNELS:
        try:
            ch.decode(ch.encode(_build(cls)))
            return ch
        except ProtocolError:
            continue
    raise AssertionError(f"{cls.__name__} belongs to no channel union")


def test_there_are_messages() -> None:
    assert len(MESSAGES) >= 12


@pytest.mark.parametrize("cls", MESSAGES, ids=lambda c: c.__name__)
def test_every_message_round_trips(cls: type[m.Message]) -> None:
    msg = _build(cls)
    ch = _channel_for(cls)
    assert ch.decode(ch.encode(msg)) == msg


@pytest.mark.parametrize("cls", MESSAGES, ids=lambda c: c.__name__)
def test_every_message_is_frozen_and_documented(cls: type[m.Message]) -> None:
    assert cls.__struct_config__.frozen
    assert cls.__doc__ and cls.__doc__.strip()


def _members(union: object) -> set[type]:
    return set(typing.get_args(union))


@pytest.mark.parametrize("role", sorted(ROLE_UNIONS))
def test_every_role_answers_ping_and_metrics(role: str) -> None:
    assert {m.Ping, m.MetricsRequest} <= _members(ROLE_UNIONS[role])


def test_every_service_message_is_in_exactly_one_role_union_or_the_replies() -> None:
    requests = [_members(u) - {m.Ping, m.MetricsRequest} for u in ROLE_UNIONS.values()]
    replies = _members(m.ServiceReply)
    every = [cls for group in [*requests, replies] for cls in group]
    assert len(every) == len(set(every))
    assert _members(m.ServiceRequest) == set().union(*requests, {m.Ping, m.MetricsRequest})


@pytest.mark.parametrize(
    ("role", "foreign"),
    [
        ("ingest", m.AlertsRequest()),
        ("predictor", m.IngestBatch(format="json", body=b"{}")),
        ("trainer", m.ModelsRequest()),
        ("ingest", m.Pong(role="x", pid=1)),
    ],
)
def test_a_role_refuses_another_roles_message_by_name(role: str, foreign: m.Message) -> None:
    channel = ROLE_CODECS[role]
    with pytest.raises(codec.UnexpectedMessage) as caught:
        channel.decode(codec.service_replies.encode(foreign))
    assert caught.value.name == type(foreign).__name__


def test_a_malformed_message_of_the_channel_is_not_called_foreign() -> None:
    data = msgspec.msgpack.encode({"t": "ingest", "v": m.PROTOCOL_VERSION, "format": "json"})  # no body
    with pytest.raises(ProtocolError) as caught:
        codec.ingest_requests.decode(data)
    assert not isinstance(caught.value, codec.UnexpectedMessage)
    assert "body" in str(caught.value)


def test_an_unknown_tag_is_a_protocol_error_not_a_foreign_message() -> None:
    data = msgspec.msgpack.encode({"t": "no_such_message", "v": m.PROTOCOL_VERSION})
    with pytest.raises(ProtocolError) as caught:
        codec.trainer_requests.decode(data)
    assert not isinstance(caught.value, codec.UnexpectedMessage)


def test_error_details_travel_as_a_map() -> None:
    msg = m.ErrorReply(
        kind="invalid_batch", message="x", details={"problems": [{"index": 0}], "problem_count": 1}
    )
    assert codec.service_replies.decode(codec.service_replies.encode(msg)) == msg


def test_other_protocol_version_is_refused() -> None:
    data = codec.children.encode(m.Heartbeat(role="x", pid=1, seq=1, v=99))
    with pytest.raises(ProtocolError, match="protocol version 99"):
        codec.children.decode(data)


def test_garbage_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        codec.control.decode(b"\xc1not msgpack")


def test_request_client_times_out_with_a_clear_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    endpoint = f"ipc://{tmp_path}/silent.sock"
    silent = make_socket(ctx, zmq.ROUTER, bind=endpoint)
    client = RequestClient(ctx, endpoint, codec.control, timeout_s=0.2, retries=1)
    t0 = time.monotonic()
    with pytest.raises(RequestTimeout, match=r"no reply from .*silent.sock within 0.2 s \(2 attempt"):
        client.request(m.StatusRequest())
    assert 0.35 < time.monotonic() - t0 < 2.0
    client.close()
    silent.close()
    ctx.term()


def test_request_client_drops_stale_replies(tmp_path) -> None:  # type: ignore[no-untyped-def]
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    endpoint = f"ipc://{tmp_path}/srv.sock"
    server = make_socket(ctx, zmq.ROUTER, bind=endpoint)
    client = RequestClient(ctx, endpoint, codec.control, timeout_s=2.0)
    import threading

    def serve() -> None:
        frames = server.recv_multipart()
        stale = [frames[0], b"old-rid", codec.control.encode(m.Ack(message="stale"))]
        server.send_multipart(stale)
        reply(server, frames, codec.control.encode(m.Ack(message="fresh")))

    t = threading.Thread(target=serve)
    t.start()
    assert client.request(m.StatusRequest()) == m.Ack(message="fresh")
    t.join()
    client.close()
    server.close()
    ctx.term()


def test_an_accuracy_request_round_trips_on_the_predictor_channel() -> None:
    msg = m.AccuracyRequest(since=1_800_000_000, until=1_800_086_400, target="cpu_user_pct", server="web-1")
    assert codec.predictor_requests.decode(codec.predictor_requests.encode(msg)) == msg
    assert codec.predictor_requests.decode(codec.predictor_requests.encode(m.AccuracyRequest())) == (
        m.AccuracyRequest(since=None, until=None, target=None, server=None)
    )
