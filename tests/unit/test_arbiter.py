"""The arbiter's own pieces (signals, wake-ups, wiring) without sockets."""

from __future__ import annotations

import signal
from collections.abc import Callable

import pytest

from supervisor import exitcodes
from supervisor.arbiter import Arbiter
from supervisor.child import ChildSpec, State
from tests.unit.supervisor_fakes import BASE, ROLES, FakeClock, FakeLauncher, RecordingNotifier


def arbiter(
    on_reload: Callable[[], None] | None = None,
) -> tuple[Arbiter, FakeClock, FakeLauncher, RecordingNotifier]:
    clock, launch, notifier = FakeClock(), FakeLauncher(), RecordingNotifier()
    arb = Arbiter(
        [ChildSpec(r, ("python", r)) for r in ROLES],
        BASE,
        on_reload=on_reload,
        notifier=notifier,
        clock=clock,
        sleep=clock.sleep,
        launch=launch,
    )
    return arb, clock, launch, notifier


def test_constructing_starts_nothing_and_the_injected_launch_starts_the_roles() -> None:
    arb, clock, launch, _ = arbiter()
    assert launch.started == []
    for child in arb.tree.children:
        child.spawn(clock())
    assert [p.argv for p in launch.started] == [["python", r] for r in ROLES]
    assert [c.pid for c in arb.tree.children] == [p.pid for p in launch.started]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_sigint_stop_the_tree_with_exit_0(sig: int) -> None:
    arb, _, _, notifier = arbiter()
    arb._enqueue_signal(sig, None)
    assert not arb.tree.stopping  # the handler only enqueues
    arb._dispatch_signals()
    assert arb.tree.stopping and arb.tree.exit_code == exitcodes.OK
    assert notifier.sent == ["STOPPING=1", "STATUS=stopping"]


def test_sighup_runs_the_reload_hook_and_survives_its_failure() -> None:
    calls: list[int] = []

    def reload() -> None:
        calls.append(1)
        raise RuntimeError("bad file")

    arb, _, _, _ = arbiter(on_reload=reload)
    arb._enqueue_signal(signal.SIGHUP, None)
    arb._enqueue_signal(signal.SIGCHLD, None)
    arb._dispatch_signals()
    assert calls == [1]
    assert not arb.tree.stopping


def test_the_loop_wakes_for_a_due_respawn() -> None:
    arb, clock, _, _ = arbiter()
    now = clock()
    arb._next_hb = arb._next_watchdog = now + 1.0
    assert arb._next_deadline(now) == 0.25  # nothing due: the longest poll
    ingest = arb.tree.children[0]
    ingest.state, ingest.respawn_at = State.BACKOFF, now + 0.1
    assert arb._next_deadline(now) == pytest.approx(0.1)
    assert arb._next_deadline(now + 0.2) == 0.0
