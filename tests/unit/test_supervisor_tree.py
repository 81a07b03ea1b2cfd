"""The process tree's rules (start order, back-off, intensity, liveness, stop) on fakes."""

from __future__ import annotations

import signal

from ipc import codec
from ipc import messages as m
from supervisor import exitcodes
from supervisor.child import State
from supervisor.commands import CommandQueue
from tests.unit.supervisor_fakes import ROLES, Rig


def test_roles_start_in_order_each_once_the_one_before_is_ready() -> None:
    rig = Rig()
    rig.tree.start(rig.clock())
    for n, role in enumerate(ROLES, 1):
        assert [p.argv[-1] for p in rig.launch.started] == list(ROLES[:n])
        assert rig.notifier.sent == []
        rig.clock.advance(0.5)
        rig.ready(role)
    assert rig.notifier.sent == ["READY=1", "STATUS=all roles ready"]
    st = rig.tree.status(rig.clock())
    assert st.state == "running"
    assert [(r.name, r.state, r.restarts) for r in st.roles] == [(r, "ready", 0) for r in ROLES]
    assert [r.uptime_s for r in st.roles] == [2.0, 1.5, 1.0, 0.5]
    assert [(e.role, e.state) for e in rig.events] == [(r, s) for r in ROLES for s in ("spawned", "ready")]


def test_a_message_from_a_previous_incarnation_is_ignored() -> None:
    rig = Rig()
    rig.start_all()
    old = rig.launch.last("predictor")
    old.exit(1)
    rig.tick()
    rig.tick(0.1)
    assert rig.child("predictor").state == State.STARTING
    rig.tree.heard("predictor", m.Ready(role="predictor", pid=old.pid), rig.clock())
    assert rig.child("predictor").state == State.STARTING
    rig.ready("predictor")
    assert rig.child("predictor").state == State.READY


def test_backoff_grows_with_each_quick_crash_and_resets_after_a_healthy_run() -> None:
    rig = Rig(max_restarts=100)
    rig.start_all()
    trainer = rig.child("trainer")

    def crash_after(ran: float) -> float:
        rig.tick(ran)
        rig.launch.last("trainer").exit(1)
        rig.tick()
        assert trainer.state == State.BACKOFF
        delay = round(trainer.respawn_at - rig.clock(), 9)
        rig.tick(delay - 0.01)
        assert trainer.state == State.BACKOFF  # not a moment early
        rig.tick(0.01)
        assert trainer.state == State.STARTING
        rig.ready("trainer")
        return delay

    assert [crash_after(0.5) for _ in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert crash_after(61.0) == 0.1  # ran longer than backoff_reset_after
    assert crash_after(0.5) == 0.2
    assert trainer.restarts == 8
    assert [rig.child(r).restarts for r in ROLES if r != "trainer"] == [0, 0, 0]


def test_too_many_restarts_stop_the_tree_with_the_failure_code() -> None:
    rig = Rig(max_restarts=3, restart_period=60.0)
    rig.start_all()
    for _ in range(3):
        rig.launch.last("predictor").exit(1)
        rig.tick()
        rig.tick(1.0)
        assert rig.child("predictor").state == State.STARTING
        assert not rig.tree.stopping
    rig.launch.last("predictor").exit(1)
    rig.tick()
    assert rig.child("predictor").state == State.FAILED
    assert rig.tree.stopping and rig.tree.exit_code == exitcodes.FAILURE
    assert "STOPPING=1" in rig.notifier.sent
    rig.tick(100.0)
    assert len(rig.launch.of("predictor")) == 1 + 3
    assert rig.child("predictor").restarts == 3


def test_a_child_exiting_with_the_config_code_is_not_respawned_and_stops_the_tree_with_it() -> None:
    rig = Rig()
    rig.start_all()
    rig.launch.last("api").exit(exitcodes.CONFIG)
    rig.tick()
    api = rig.child("api")
    assert api.state == State.FAILED and api.restarts == 0
    assert "configuration error" in (api.last_exit or "")
    assert rig.tree.stopping and rig.tree.exit_code == exitcodes.CONFIG
    rig.tick(100.0)
    assert len(rig.launch.of("api")) == 1


def test_a_ready_child_silent_past_the_liveness_window_is_killed_for_missed_heartbeats() -> None:
    rig = Rig(heartbeat_interval=1.0, heartbeat_liveness=3)
    rig.start_all()
    frozen = rig.launch.last("trainer")
    frozen.frozen = True
    rig.tick(3.0)  # exactly heartbeat_interval * heartbeat_liveness: not yet
    assert frozen.signals == []
    rig.tick(0.01)
    assert frozen.signals == [signal.SIGKILL]
    rig.tick()
    trainer = rig.child("trainer")
    assert trainer.last_exit == "missed heartbeats; killed by SIGKILL"
    assert trainer.state == State.BACKOFF and trainer.restarts == 1
    assert rig.launch.journal == [("trainer", signal.SIGKILL)]  # the others kept beating


def test_a_starting_child_past_the_start_timeout_is_killed() -> None:
    rig = Rig(start_timeout=20.0)
    rig.tree.start(rig.clock())
    ingest = rig.launch.last("ingest")
    rig.tick(20.0)
    assert ingest.signals == []
    rig.tick(0.01)
    assert ingest.signals == [signal.SIGKILL]
    rig.tick()
    assert rig.child("ingest").last_exit == "start timeout; killed by SIGKILL"


def test_a_stopping_child_past_its_grace_is_killed() -> None:
    rig = Rig(stop_grace=5.0)
    rig.launch.ignores_term.add("trainer")
    rig.start_all()
    stubborn = rig.launch.last("trainer")
    queue = CommandQueue(rig.tree, lambda frames, msg: None)
    queue.receive([b"client", b"1", codec.control.encode(m.RestartRequest(role="trainer"))])
    queue.serve(rig.clock())
    assert rig.child("trainer").state == State.STOPPING
    rig.tick(5.0)
    assert stubborn.signals == [signal.SIGTERM]
    rig.tick(0.01)
    assert stubborn.signals == [signal.SIGTERM, signal.SIGKILL]
    rig.tick()
    assert rig.child("trainer").last_exit == "did not stop within the grace period; killed by SIGKILL"


def test_a_role_that_cannot_start_backs_off_like_a_crash() -> None:
    rig = Rig()
    rig.launch.refuse.add("ingest")
    rig.tree.start(rig.clock())
    ingest = rig.child("ingest")
    assert ingest.state == State.BACKOFF and ingest.restarts == 1
    assert (ingest.last_exit or "").startswith("could not start:")
    assert rig.tree.respawn_times() == [rig.clock() + 0.1]


def test_stop_all_stops_in_reverse_order_and_kills_what_ignores_term() -> None:
    rig = Rig(stop_grace=5.0)
    rig.launch.ignores_term.add("predictor")
    rig.start_all()
    rig.tree.stop(exitcodes.OK)
    t0 = rig.clock()
    beats: list[float] = []
    rig.tree.stop_all(rig.clock, rig.clock.sleep, beats.append)
    term, kill = signal.SIGTERM, signal.SIGKILL
    assert rig.launch.journal == [
        ("api", term),
        ("trainer", term),
        ("predictor", term),
        ("predictor", kill),
        ("ingest", term),
    ]
    assert 5.0 <= rig.clock() - t0 < 5.1  # one grace period, spent on the predictor alone
    assert beats and beats[-1] - beats[0] >= 4.9  # the others heard us all along
    assert all(rig.child(r).state == State.STOPPED for r in ROLES)
