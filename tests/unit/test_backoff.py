"""Restart back-off and intensity with a fake clock."""

from __future__ import annotations

from supervisor.backoff import Backoff, RestartIntensity


def test_delays_grow_exponentially_up_to_the_maximum() -> None:
    b = Backoff(initial=0.1, factor=2.0, maximum=1.0, reset_after=60.0)
    assert [b.next_delay(ran_for=0.5) for _ in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]


def test_a_healthy_run_resets_the_delay() -> None:
    b = Backoff(initial=0.1, factor=2.0, maximum=10.0, reset_after=60.0)
    for _ in range(4):
        b.next_delay(ran_for=1.0)
    assert b.next_delay(ran_for=61.0) == 0.1
    assert b.next_delay(ran_for=1.0) == 0.2


def test_reset_forgets_failures() -> None:
    b = Backoff(initial=0.5, factor=3.0)
    b.next_delay(0)
    b.next_delay(0)
    b.reset()
    assert b.next_delay(0) == 0.5


def test_intensity_allows_max_restarts_within_the_period() -> None:
    r = RestartIntensity(max_restarts=3, period=10.0)
    assert [r.allow(t) for t in (0.0, 1.0, 2.0)] == [True, True, True]
    assert r.allow(3.0) is False


def test_intensity_window_slides() -> None:
    r = RestartIntensity(max_restarts=2, period=10.0)
    assert r.allow(0.0) and r.allow(5.0)
    assert not r.allow(9.0)
    assert r.allow(15.5)  # the restart at t=0 left the window
