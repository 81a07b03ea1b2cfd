"""A predictor restarted while the fleet has been silent for longer than a window refills
its windows from the newest data in the buffer (data time), not from the clock's last
hours: every server is listed again with its last values and when it was last seen,
without a new sample."""

from __future__ import annotations

import os
import signal
import time
from datetime import datetime
from typing import Any

import pytest

from tests.fleetdata import TINY_MODEL, backfill
from tests.harness import FAST_SUPERVISION, Daemon, wait_for

SERVERS = 4
SILENT_DAYS = 3  # more than the refill's two-day catch-up bound and far more than a window


@pytest.fixture(scope="module")
def d(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    daemon = Daemon(
        tmp_path_factory.mktemp("refill_silent"),
        {
            "supervisor": dict(FAST_SUPERVISION),
            "model": dict(TINY_MODEL),
            "predictor": {"refresh_s": 1.0, "min_history_steps": 6},
        },
    )
    daemon.start()
    daemon.wait_ready()
    yield daemon
    daemon.kill_group()


def listed(d: Daemon, since: float = 0.0) -> dict[str, Any]:
    """Each listed server's last values and last sighting, from a pass made at ``since`` or later."""
    body = d.get("/predictions/current").json()
    if datetime.fromisoformat(body["generated_at"]).timestamp() < since:
        return {}
    return {name: (s["last_seen"], s["current"]) for name, s in body["servers"].items()}


def test_restart_after_days_of_silence_lists_the_fleet_from_the_newest_data(d: Daemon) -> None:
    backfill(d.endpoint("ingest"), servers=SERVERS, days=1.0, end=time.time() - SILENT_DAYS * 86400)
    seen: list[dict[str, Any]] = []

    def settled() -> dict[str, Any] | None:
        """The listing once two passes seconds apart agree (every sample sent is applied)."""
        now = listed(d)
        agreed = len(now) == SERVERS and bool(seen) and seen[-1] == now
        seen.append(now)
        time.sleep(2.0)
        return now if agreed else None

    before = wait_for(settled, 60, step=0.0)
    assert before, d.get("/predictions/current").json()
    pid = d.role("predictor").pid
    killed_at = time.time() + 2  # generated_at has whole seconds: a pass of the old process is earlier
    os.kill(pid, signal.SIGKILL)
    assert wait_for(lambda: d.role("predictor").state == "ready" and d.role("predictor").pid != pid, 30)
    # No sample arrives after the restart: the windows can only come from the buffer.
    after = wait_for(lambda: (s := listed(d, killed_at)) == before and s, 60)
    assert after == before, (before, listed(d))
    body = d.get("/predictions/current").json()
    assert body["summary"]["insufficient_history"] == SERVERS  # days old: no forecast for now
