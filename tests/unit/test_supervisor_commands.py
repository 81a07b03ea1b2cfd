"""The control-command queue: arrival order, restarts that hold the queue, stop, errors."""

from __future__ import annotations

import signal

from ipc import codec
from ipc import messages as m
from supervisor import exitcodes
from supervisor.child import State
from supervisor.commands import CommandQueue
from tests.unit.supervisor_fakes import ROLES, Rig


class Client:
    """Requests into a ``CommandQueue`` and the answers out of it, by request id."""

    def __init__(self, rig: Rig) -> None:
        self.rig = rig
        self.answers: list[tuple[int, m.Message]] = []
        self.queue = CommandQueue(rig.tree, lambda frames, msg: self.answers.append((int(frames[1]), msg)))
        self._rid = 0

    def send(self, *msgs: m.Message) -> None:
        for msg in msgs:
            self._rid += 1
            self.queue.receive([b"client", str(self._rid).encode(), codec.control.encode(msg)])

    def serve(self) -> list[int]:
        """Serve now; the ids answered so far."""
        self.queue.serve(self.rig.clock())
        return [rid for rid, _ in self.answers]


def restarts(reply: m.Message) -> dict[str, int]:
    assert isinstance(reply, m.StatusReply)
    return {r.name: r.restarts for r in reply.roles}


def pids(reply: m.Message) -> dict[str, int | None]:
    assert isinstance(reply, m.StatusReply)
    return {r.name: r.pid for r in reply.roles}


def test_commands_are_answered_in_arrival_order() -> None:
    rig = Rig()
    rig.start_all()
    client = Client(rig)
    client.send(
        m.StatusRequest(),
        m.RestartRequest(role="nosuch"),
        m.Ack(message="not a request"),
        m.StatusRequest(),
    )
    assert client.serve() == [1, 2, 3, 4]
    kinds = [
        type(msg).__name__ if not isinstance(msg, m.ErrorReply) else msg.kind for _, msg in client.answers
    ]
    assert kinds == ["StatusReply", "unknown_role", "bad_request", "StatusReply"]
    unknown = client.answers[1][1]
    assert isinstance(unknown, m.ErrorReply)
    assert unknown.message == "no role named 'nosuch'; roles: " + ", ".join(ROLES)


def test_a_restart_holds_the_commands_behind_it_until_its_role_is_ready_again() -> None:
    rig = Rig()
    rig.start_all()
    old = {r: rig.launch.last(r).pid for r in ROLES}
    client = Client(rig)
    client.send(
        m.RestartRequest(role="trainer"),
        m.StatusRequest(),
        m.RestartRequest(role="ingest"),
        m.StatusRequest(),
    )
    assert client.serve() == []
    assert rig.launch.journal == [("trainer", signal.SIGTERM)]
    rig.tick()  # the trainer's exit is reaped: respawn after the initial back-off
    assert client.serve() == []
    rig.tick(0.1)
    assert rig.child("trainer").state == State.STARTING
    assert client.serve() == []
    rig.ready("trainer")
    assert client.serve() == [1, 2]  # the ingest restart has begun, and holds #4
    assert rig.launch.journal == [("trainer", signal.SIGTERM), ("ingest", signal.SIGTERM)]
    ack, first = client.answers[0][1], client.answers[1][1]
    new_trainer = rig.launch.last("trainer").pid
    assert ack == m.Ack(message=f"trainer restarted (pid {new_trainer})")
    assert restarts(first) == {"ingest": 0, "predictor": 0, "trainer": 1, "api": 0}
    assert pids(first) == {**old, "trainer": new_trainer}
    rig.tick()
    rig.tick(0.1)
    assert client.serve() == [1, 2]
    rig.ready("ingest")
    assert client.serve() == [1, 2, 3, 4]
    second = client.answers[3][1]
    assert restarts(second) == {"ingest": 1, "predictor": 0, "trainer": 1, "api": 0}
    assert pids(second) == {**old, "trainer": new_trainer, "ingest": rig.launch.last("ingest").pid}
    assert isinstance(second, m.StatusReply) and second.state == "running"


def test_a_restart_that_does_not_come_back_in_time_fails_and_releases_the_queue() -> None:
    rig = Rig(stop_grace=5.0, start_timeout=20.0)
    rig.start_all()
    client = Client(rig)
    client.send(m.RestartRequest(role="api"), m.StatusRequest())
    client.serve()
    rig.tick()
    rig.tick(0.1)  # respawned; it never says Ready
    rig.tick(24.9)  # stop_grace + start_timeout after the request
    assert client.serve() == []
    rig.tick(0.01)
    assert client.serve() == [1, 2]
    failed = client.answers[0][1]
    assert isinstance(failed, m.ErrorReply) and failed.kind == "restart_failed"
    assert failed.message.startswith("api did not come back: ")


def test_a_restart_of_a_failed_role_answers_with_the_failure() -> None:
    rig = Rig()
    rig.start_all()
    client = Client(rig)
    client.send(m.RestartRequest(role="predictor"))
    client.serve()
    rig.tick()
    rig.tick(0.1)
    rig.launch.last("predictor").exit(exitcodes.CONFIG)
    rig.tick()
    assert client.serve() == [1]
    failed = client.answers[0][1]
    assert isinstance(failed, m.ErrorReply) and failed.kind == "restart_failed"
    assert "configuration error" in failed.message


def test_a_restart_of_a_backed_off_role_starts_it_at_once() -> None:
    rig = Rig()
    rig.start_all()
    rig.launch.last("trainer").exit(1)
    rig.tick()
    assert rig.child("trainer").state == State.BACKOFF
    client = Client(rig)
    client.send(m.RestartRequest(role="trainer"))
    client.serve()
    assert rig.child("trainer").state == State.STARTING
    assert len(rig.launch.of("trainer")) == 2
    rig.clock.advance(0.5)
    rig.ready("trainer")
    assert client.serve() == [1]


def test_stop_is_acknowledged_then_the_rest_are_refused() -> None:
    rig = Rig()
    rig.start_all()
    client = Client(rig)
    client.send(m.StatusRequest(), m.StopRequest(), m.StatusRequest())
    assert client.serve() == [1, 2]
    assert client.answers[1][1] == m.Ack(message="stopping")
    assert rig.tree.stopping and rig.tree.exit_code == exitcodes.OK
    client.queue.refuse_all()
    assert client.serve() == [1, 2, 3]
    assert client.answers[2][1] == m.ErrorReply(kind="stopping", message="the supervisor is stopping")


def test_a_request_that_does_not_decode_is_answered_at_once() -> None:
    rig = Rig()
    client = Client(rig)
    client.queue.receive([b"client", b"7", b"\xc1 not msgpack"])
    client.queue.receive([b"client", b"8"])  # not a request at all: dropped
    assert [(rid, type(msg)) for rid, msg in client.answers] == [(7, m.ErrorReply)]
    assert isinstance(client.answers[0][1], m.ErrorReply) and client.answers[0][1].kind == "protocol"
    assert client.serve() == [7]
