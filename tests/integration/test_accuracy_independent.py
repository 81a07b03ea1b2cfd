"""Live accuracy recomputed by the test from what it sent and what the daemon kept as served.

A real daemon (the served baseline or a tiny trained model, hourly steps) gets 42 h of simulated
history in one batch, then a replay of 12 h more, one hour per batch, faster than real
time. After every batch the test reads the forecast issued at the hour it crossed from
the daemon's accuracy state file (the forecasts kept as served, read with plain msgpack,
before the ledger evicts them). From the records it sent (hourly step means) and those
forecasts it computes, per server and one target, the points, the p50 MAE, the
seasonal-naive MAE (the step mean one day earlier), skill and p10-p90 coverage, and
requires ``/admin/accuracy?server=&target=`` to agree.

Why the state file and not ``/predictions``: a forecast pass snapshots the windows at the
wall clock, so in a replay faster than real time it never serves the windows of an
issue point; the ledger's copy is the one forecast made from them.
"""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest

from nordiqd.agent import IngestClient
from nordiqd.simulate import SimulatedFleet
from tests.fleetdata import hourly_accuracy
from tests.harness import FAST_SUPERVISION, Daemon, wait_for

STEP = 3600
DAY = 86400
SERVERS = 3
INTERVAL_S = 600.0
HISTORY_H = 48  # a day for the reference; 36 steps before the gate's 6-hour holdout
REPLAY_H = 12
TARGET = "cpu_user_pct"
# The replay ends on an hour a little in the past; its last step is never final.
END = (int(time.time()) // STEP) * STEP - STEP
START = END - REPLAY_H * STEP
THROUGH = END - STEP  # the last hour's step is never final: nothing after it arrives

Record = dict[str, Any]
Issue = tuple[list[str], np.ndarray]  # servers, forecasts [S, targets, H, Q]


def fleet_records() -> list[Record]:
    fleet = SimulatedFleet(size=SERVERS, seed=3, interval_s=INTERVAL_S)
    return [r for b in fleet.batches(START - HISTORY_H * STEP, END, max_records=1000) for r in b.to_records()]


def hour_of(record: Record) -> int:
    return int(record["timestamp"] // STEP) * STEP


@pytest.fixture
def d(tmp_path: Path):  # type: ignore[no-untyped-def]
    daemon = Daemon(
        tmp_path,
        {
            "supervisor": dict(FAST_SUPERVISION),
            **hourly_accuracy(STEP),
        },
    )
    daemon.start()
    daemon.wait_ready()
    yield daemon
    daemon.kill_group()


def kept_issues(d: Daemon) -> tuple[list[str], dict[int, Issue]]:
    """The targets and the outstanding issues (by issue time) of the accuracy state file."""
    path = d.root / "data" / "state" / "accuracy.msgpack"
    if not path.exists():
        return [], {}
    saved = msgspec.msgpack.decode(path.read_bytes())
    targets, n_q, n_h = saved["targets"], len(saved["quantiles"]), saved["horizon_steps"]
    issues: dict[int, Issue] = {}
    for at, _version, _kind, servers, forecasts, *_ in saved["issues"]:
        shape = (len(servers), len(targets), n_h, n_q)
        issues[at] = (servers, np.frombuffer(forecasts, dtype="<f4").reshape(shape).astype(np.float64))
    return targets, issues


def replay(
    d: Daemon, batches: list[list[Record]], started: bool = False
) -> tuple[list[str], dict[int, Issue]]:
    """Send each batch, then wait for the hour it crossed to be issued; collect the issues.

    Unless ``started`` (history already sent), the first batch sets the data time and
    crosses no issue point.
    """
    collected: dict[int, Issue] = {}
    targets: list[str] = []
    with IngestClient(d.endpoint("ingest"), timeout_s=10) as client:
        for i, batch in enumerate(batches):
            assert client.send(batch).accepted == len(batch)
            if i == 0 and not started:
                continue
            crossed = max(hour_of(r) for r in batch)
            if crossed <= max(collected, default=0):
                continue  # a late batch crosses nothing
            found = wait_for(lambda at=crossed: at in (k := kept_issues(d))[1] and k, 20)
            assert found, f"no issue at {crossed} in the state file"
            targets = found[0]
            collected.update(found[1])
    return targets, collected


def step_means(records: list[Record]) -> dict[tuple[str, int], float]:
    values: dict[tuple[str, int], list[float]] = defaultdict(list)
    for r in records:
        values[(r["server_name"], hour_of(r))].append(float(r[TARGET]))
    return {k: float(np.mean(v)) for k, v in values.items()}


def recompute(
    targets: list[str],
    issues: dict[int, Issue],
    actual: dict[tuple[str, int], float],
    through: int,
    baseline: bool = True,
) -> dict[str, dict[str, float]]:
    """Per server: points, MAE, naive MAE, skill and coverage of ``TARGET``, as the test sees them."""
    t = targets.index(TARGET)
    sums: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0, 0.0])
    for at, (servers, forecasts) in issues.items():
        for row, server in enumerate(servers):
            for h in range(forecasts.shape[2]):
                step = at + h * STEP
                y, naive = actual.get((server, step)), actual.get((server, step - DAY))
                f = forecasts[row, t, h]
                if step + STEP > through or y is None or naive is None or not np.isfinite(f).all():
                    continue
                if baseline:  # the served baseline's median is seasonal naive: a day earlier
                    assert f[1] == pytest.approx(naive, rel=1e-5, abs=1e-4), (server, at, h)
                s = sums[server]
                s[0] += 1
                s[1] += abs(f[1] - y)
                s[2] += abs(naive - y)
                s[3] += f[0] <= y <= f[-1]
    return {
        server: {"points": n, "mae": ae / n, "skill": ae / nae, "coverage": inside / n}
        for server, (n, ae, nae, inside) in sums.items()
    }


def served_scores(d: Daemon, server: str, through: int, version: str = "baseline") -> dict[str, Any]:
    """The scores of ``version`` for ``server`` and ``TARGET`` once scored through ``through``."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(through))

    def ready() -> dict[str, Any] | None:
        body: dict[str, Any] = d.get("/admin/accuracy", params={"server": server, "target": TARGET}).json()
        return body if body["scored_through"] == stamp and body["versions"] else None

    body = wait_for(ready, 20, step=0.2)
    assert body, d.get("/admin/accuracy").json()
    time.sleep(1.0)  # the last observe may still be scoring: read again once it has settled
    body = d.get("/admin/accuracy", params={"server": server, "target": TARGET}).json()
    (scores,) = body["versions"]
    assert scores["version"] == version
    return scores  # type: ignore[no-any-return]


def assert_agree(
    d: Daemon, expected: dict[str, dict[str, float]], through: int, version: str = "baseline"
) -> None:
    assert len(expected) == SERVERS
    for server, mine in expected.items():
        theirs = served_scores(d, server, through, version)
        assert theirs["points"] == mine["points"], server
        for name in ("mae", "skill", "coverage"):
            assert theirs[name] == pytest.approx(mine[name], rel=1e-6, abs=1e-5), (server, name)


def replay_batches(records: list[Record], order: list[int]) -> list[list[Record]]:
    """The history in one batch, then the replay's hours in ``order`` (0: the first)."""
    hours: dict[int, list[Record]] = defaultdict(list)
    for r in records:
        hours[hour_of(r)].append(r)
    history = [r for r in records if r["timestamp"] < START]
    return [history, *(hours[START + k * STEP] for k in order)]


def test_scores_agree_with_a_recomputation_from_the_records_and_the_forecasts(d: Daemon) -> None:
    records = fleet_records()
    targets, issues = replay(d, replay_batches(records, list(range(REPLAY_H))))
    assert sorted(issues) == [START + k * STEP for k in range(REPLAY_H)]
    expected = recompute(targets, issues, step_means(records), THROUGH)
    assert all(e["points"] > 0 and e["skill"] == pytest.approx(1.0) for e in expected.values())
    assert_agree(d, expected, THROUGH)


def test_a_trained_models_scores_agree_with_a_recomputation(d: Daemon) -> None:
    records = fleet_records()
    history, *hours = replay_batches(records, list(range(REPLAY_H)))
    replay(d, [history])
    job_id = d.post("/admin/trigger-training?epochs=1&incremental=false").json()["job_id"]
    job = d.job_end(job_id, 60)
    assert job and job["status"] == "completed", job
    version = str(job["model_path"]).split("/")[-1]
    assert wait_for(lambda: d.get("/admin/model-info").json()["version"] == version, 30)
    targets, issues = replay(d, hours, started=True)
    assert sorted(issues) == [START + k * STEP for k in range(REPLAY_H)]
    expected = recompute(targets, issues, step_means(records), THROUGH, baseline=False)
    assert all(e["points"] > 0 and e["skill"] != pytest.approx(1.0) for e in expected.values())
    assert_agree(d, expected, THROUGH, version)


def test_a_server_silent_for_two_hours_scores_no_point_for_them(d: Daemon) -> None:
    silent = "db-001"
    quiet = {START + 4 * STEP, START + 5 * STEP}  # two hours in the middle of the replay
    records = [r for r in fleet_records() if not (r["server_name"] == silent and hour_of(r) in quiet)]
    targets, issues = replay(d, replay_batches(records, list(range(REPLAY_H))))
    assert sorted(issues) == [START + k * STEP for k in range(REPLAY_H)]
    actual = step_means(records)
    assert not any((silent, h) in actual for h in quiet)
    expected = recompute(targets, issues, actual, THROUGH)
    # The silent server scores one point less for every issue that covered a silent hour
    # (five covered the first, six the second) than a server that was never silent.
    covering = sum(len([at for at in issues if at <= h < at + 6 * STEP]) for h in quiet)
    assert covering == 11 and expected["web-001"]["points"] - expected[silent]["points"] == covering
    assert_agree(d, expected, THROUGH)


def test_a_batch_out_of_order_within_the_grace_is_scored_once(d: Daemon) -> None:
    records = fleet_records()
    order = list(range(REPLAY_H))
    order[7], order[8] = 8, 7  # hour 8 arrives first, hour 7 after it: within the hour's grace
    targets, issues = replay(d, replay_batches(records, order))
    assert sorted(issues) == [START + k * STEP for k in range(REPLAY_H)]
    late = START + 7 * STEP
    # Six issues covered the late hour, each kept an hour past its horizon: none was gone.
    assert len([at for at in issues if at <= late < at + 6 * STEP]) == 6
    assert_agree(d, recompute(targets, issues, step_means(records), THROUGH), THROUGH)
