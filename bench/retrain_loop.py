"""Retraining that runs itself, over simulated days (issue 15's closing note).

``python bench/retrain_loop.py [--minutes 28] [--replay-days 4] [--json OUT]``

A real ``nordiqd run`` (``tests/harness.py``) on the demo fleet (20 servers, one sample
every 5 minutes) with a small TFT at 15-minute steps, the loop on from the start: the
gate with the default tolerance, probation, and all four triggers (a cron schedule in UTC
wall time, ``min_new_records``, live skill, live coverage) with a cooldown. It sends
``--backfill-days`` of history in one batch, waits for the first job a trigger starts on
it, then replays ``--replay-days`` more days of data time in ``--minutes`` of wall time
(how the integration tests drive data time: records with past timestamps, sent in time
order), with the scripted incidents of ``incidents()``.

A monitor thread polls the REST API as an operator would (``/admin/training-status``,
``/admin/training-stats``) and notes which data time had been sent at each moment. At the
end it reads ``/admin/promotions`` and every job's status, and for each promotion at data
time T asks ``/admin/accuracy`` for the live skill of the predecessor over [T - W, T),
the new champion over [T, T + W) and the predecessor in shadow over that same window
(probation makes it forecast the same issue points), W = ``--skill-window-hours`` cut
short by the next change of champion. It writes the JSON and prints markdown tables.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

_REPO = Path(__file__).resolve().parents[1]
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))  # for tests.harness

from nordiqd.agent import IngestClient  # noqa: E402
from nordiqd.simulate import SimulatedFleet  # noqa: E402
from tests.harness import Daemon, wait_for  # noqa: E402

STEP = 900  # the model's step: 15 minutes
SAMPLE_S = 300.0  # one sample per server every 5 minutes, as an agent would send
SHIFT_H = 8.0  # the fleet-wide pattern change: business hours move this far

MODEL = {
    "step_seconds": STEP,
    "encoder_steps": 96,  # one day, so the windows hold seasonal naive's value
    "horizon_steps": 8,  # two hours
    "hidden_size": 16,
    "attention_heads": 2,
    "hidden_continuous_size": 8,
    "batch_size": 64,
    "max_windows_per_epoch": 4096,  # about every window of the history
}
SUPERVISION = {"heartbeat_interval_s": 1.0, "heartbeat_liveness": 5, "start_timeout_s": 120.0}


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def parse(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def loop_sections(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """The daemon's config with the loop on (``retrain`` off for the first phase)."""
    return {
        "supervisor": dict(SUPERVISION),
        "model": dict(MODEL),
        "training": {"min_records": 2000, "cpu_threads": 1, "cpu_priority": "nice"},
        "promotion": {
            "holdout_hours": args.holdout_hours,
            "tolerance": 0.02,
            "must_beat_baseline": args.must_beat_baseline,
            "probation_hours": args.probation_hours,
            "rollback_tolerance": 0.05,
        },
        "retrain": {
            "schedule": args.schedule,
            "min_new_records": args.min_new_records,
            "skill_threshold": args.skill_threshold,
            "skill_window_hours": 6.0,
            "coverage_range": [args.coverage_low, args.coverage_high],
            "cooldown_hours": args.cooldown_minutes / 60,
            "epochs": args.epochs,
            "incremental": True,
        },
    }


def incidents(fleet: SimulatedFleet, replay_start: float) -> tuple[list[str], list[str]]:
    """The scripted incidents (``--scenario`` specs) and a line for each, for the report.

    Replay hours 8-18: memory leaks on two web servers, and 11-15 a runaway on an ML
    server. Hours 38-41: a database outage, which the web, api and ETL servers that use
    it feel. From hour 48 on: a fleet-wide pattern change (``SHIFT_H``, in ``Replay``).
    """
    by_profile: dict[str, list[str]] = {}
    for server in fleet.servers:
        by_profile.setdefault(server.profile, []).append(server.name)
    web, ml, db = by_profile["web"][-2:], by_profile["ml_compute"][-1:], by_profile["database"][-1:]
    events = [("memory_leak", web, 8, 10), ("cpu_runaway", ml, 11, 4), ("db_outage", db, 38, 3)]
    specs = [f"{k}:{','.join(on)}@{iso(replay_start + h * 3600)}+{n}h" for k, on, h, n in events]
    lines = [f"{iso(replay_start + h * 3600)} +{n} h: {k} on {', '.join(on)}" for k, on, h, n in events]
    lines.append(
        f"{iso(replay_start + 2 * 86400)} on: fleet-wide pattern change, business hours {SHIFT_H:g} h later"
    )
    return specs, lines


class Replay:
    """The simulated fleet's records, before and after the pattern change."""

    def __init__(self, args: argparse.Namespace, replay_start: float) -> None:
        plain = SimulatedFleet(size=args.servers, seed=args.seed, interval_s=SAMPLE_S)
        self.specs, self.lines = incidents(plain, replay_start)
        self.change_at = replay_start + 2 * 86400
        self.before = SimulatedFleet(args.servers, args.seed, SAMPLE_S, scenarios=self.specs)
        self.after = SimulatedFleet(
            args.servers, args.seed, SAMPLE_S, scenarios=self.specs, utc_offset_h=SHIFT_H
        )

    def records(self, t0: float, t1: float) -> list[dict[str, Any]]:
        fleet = self.before if t1 <= self.change_at else self.after
        return [r for b in fleet.batches(t0, t1, max_records=10_000) for r in b.to_records()]


class Monitor(threading.Thread):
    """Polls the API every ``every`` s: jobs seen, the retrain block, data time sent, load."""

    def __init__(self, d: Daemon, every: float = 2.0) -> None:
        super().__init__(name="monitor", daemon=True)
        self.d, self.every = d, every
        self.stop = threading.Event()
        self.data_time: float | None = None  # the newest data time sent
        self.samples: list[tuple[float, float | None]] = []  # (wall, data time scored, else sent)
        self.jobs: dict[str, dict[str, Any]] = {}  # job id -> first seen
        self.waits: list[dict[str, Any]] = []  # each new ``waiting`` line of the retrain block
        self.load, self.errors = [], 0  # load averages seen, polls that failed

    def run(self) -> None:
        last_wait = None
        while not self.stop.wait(self.every):
            now = time.time()
            self.load.append(float(Path("/proc/loadavg").read_text().split()[0]))
            try:
                job = self.d.get("/admin/training-status")
                stats = self.d.get("/admin/training-stats").json()
            except Exception:
                self.errors += 1
                continue
            # The predictor's data time (its live scores' reach) places a change of model.
            retrain = stats.get("retrain") or {}
            through = retrain.get("triggers", {}).get("skill", {}).get("scored_through")
            self.samples.append((now, parse(through) if through else self.data_time))
            if job.status_code == 200 and (j := job.json())["job_id"] not in self.jobs:
                self.jobs[j["job_id"]] = {"trigger": j["trigger"], "data_time": self.data_time}
                print(
                    f"  job {j['job_id']} ({j['trigger']}) at data time {iso(self.data_time or 0)}",
                    flush=True,
                )
            waiting = retrain.get("waiting")
            if waiting and waiting != last_wait:
                self.waits.append(
                    {"wall": iso(now), "data_time": iso(self.data_time or 0), "waiting": waiting}
                )
            last_wait = waiting

    def data_time_at(self, wall: float) -> float | None:
        """The predictor's data time (else the newest sent) at wall time ``wall``."""
        sent = [d for w, d in self.samples if w <= wall and d is not None]
        return sent[-1] if sent else None


def send(d: Daemon, rows: list[dict[str, Any]], chunk_records: int = 2000) -> None:
    rows.sort(key=lambda r: r["timestamp"])
    with IngestClient(d.endpoint("ingest"), timeout_s=60) as client:
        for i in range(0, len(rows), chunk_records):
            chunk = rows[i : i + chunk_records]
            assert client.send(chunk).accepted == len(chunk)


def replay_days(d: Daemon, replay: Replay, monitor: Monitor, start: float, end: float, wall_s: float) -> None:
    """Send [start, end) one model step at a time, paced to take ``wall_s`` of wall time."""
    t0, speed = time.monotonic(), (end - start) / wall_s
    t = start
    while t < end:
        due = t0 + (t + STEP - start) / speed
        time.sleep(max(0.0, due - time.monotonic()))
        send(d, replay.records(t, t + STEP))
        t += STEP
        monitor.data_time = t
        if int(t - start) % 21600 == 0:
            print(f"  data time {iso(t)} at {time.monotonic() - t0:.0f} s", flush=True)


def mase_table(figures: dict[str, Any] | None) -> dict[str, Any] | None:
    """``{"mase": pooled, target: {bucket: MASE}}`` of one model's gate figures (target
    ``all``: the targets pooled)."""
    if not figures:
        return None
    out: dict[str, Any] = {"version": figures.get("version"), "mase": figures.get("mase")}
    for target, buckets in (figures.get("targets") or {}).items():
        out[target] = {b: v.get("mase") for b, v in buckets.items() if isinstance(v, dict)}
    return out


def live(
    d: Daemon, version: str | None, since: float, until: float, kind: str | None = None
) -> dict[str, Any] | None:
    """A version's live scores over [since, until) of data time (``kind="shadow"``: in shadow)."""
    if version is None or until <= since:
        return None
    body = d.get(f"/admin/accuracy?since={iso(since)}&until={iso(until)}").json()
    for v in body.get("versions", []):
        if v.get("version") == version and (v.get("kind") == "shadow") == (kind == "shadow"):
            keep = ("points", "skill", "mase", "coverage")
            return {"since": iso(since), "until": iso(until), **{k: v.get(k) for k in keep}}
    return None


def collect(d: Daemon, monitor: Monitor, window_h: float) -> dict[str, Any]:
    """Jobs, the promotion log and live skill around each change of champion."""
    jobs = []
    for job_id, seen in monitor.jobs.items():
        j = d.get(f"/admin/training-status?job_id={job_id}").json()
        gate = j.get("gate") or {}
        keep = ("trigger", "status", "epochs", "incremental", "records", "promoted", "error")
        jobs.append({
            "job_id": job_id, **{k: j.get(k) for k in keep}, "duration_s": j.get("duration_seconds"),
            "data_time": iso(seen["data_time"]) if seen["data_time"] else None,
            "version": (j.get("model_path") or "").rsplit("/", 1)[-1] or None,
            **{k: gate.get(k) for k in ("decision", "holdout")}, "reasons": gate.get("reasons", []),
            **{k: mase_table(gate.get(k)) for k in ("candidate", "champion", "baseline")},
        })  # fmt: skip
    log = list(reversed(d.get("/admin/promotions").json()["promotions"]))  # oldest first
    changes = [e for e in log if e["decision"] in ("promoted", "forced", "rolled_back")]
    end = monitor.data_time or 0.0
    for i, e in enumerate(changes):
        # A change before the replay (the first champion) took effect at its start.
        t = monitor.data_time_at(parse(e["at"])) or (monitor.samples[0][1] if monitor.samples else None)
        e["data_time"] = iso(t) if t else None
        if t is None:
            continue
        nxt = monitor.data_time_at(parse(changes[i + 1]["at"])) if i + 1 < len(changes) else None
        after_end = min(t + window_h * 3600, nxt or end, end)
        before_start = t - window_h * 3600
        if i > 0 and changes[i - 1].get("data_time"):
            before_start = max(before_start, parse(changes[i - 1]["data_time"]))
        e["live_before"] = live(d, e.get("previous"), before_start, t)
        e["live_after"] = live(d, e["version"], t, after_end)
        e["live_previous_in_shadow"] = live(d, e.get("previous"), t, after_end, kind="shadow")
    return {"jobs": jobs, "promotions": log, "changes": changes}


def fmt(x: Any, spec: str = ".3f") -> str:
    return "—" if x is None else format(x, spec)


def buckets(table: dict[str, Any]) -> str:
    """Pooled MASE by lead bucket, then overall: ``0-1h / 1-2h / all``."""
    pooled = table.get("all") or {}
    return " / ".join(fmt(v) for v in pooled.values()) if pooled else fmt(table.get("mase"))


def scores(live: dict[str, Any]) -> str:
    """``skill / MASE (points)`` of a live window."""
    return f"{fmt(live.get('skill'))} / {fmt(live.get('mase'))} ({live.get('points', 0)})"


def tables(result: dict[str, Any]) -> str:
    lines = [
        "| job | trigger | data time | epochs | s | decision | candidate MASE | champion MASE | naive MASE |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    details = []
    for j in result["jobs"]:
        c, ch, b = (j[k] or {} for k in ("candidate", "champion", "baseline"))
        lines.append(
            f"| {j['job_id']} | {j['trigger']} | {(j['data_time'] or '')[5:16]} | {j['epochs']} "
            f"| {fmt(j['duration_s'], '.0f')} | {j['decision'] or j['status']} | {buckets(c)} "
            f"| {buckets(ch)} | {buckets(b)} |"
        )
        per_target = [
            f"{t} {fmt((c.get(t) or {}).get('all'))}/{fmt((ch.get(t) or {}).get('all'))}/"
            f"{fmt((b.get(t) or {}).get('all'))}"
            for t in c
            if t not in ("version", "mase", "all")
        ]
        details.append(f"- {j['job_id']}: " + "; ".join(j["reasons"] + per_target))
    lines += ["", "Gate reasons, and MASE by target (candidate/champion/naive, all leads):", *details]
    lines += [
        "",
        "| at (data time) | decision | version | previous | before: previous, skill / MASE (points) "
        "| after: new | after: previous in shadow |",
        "|---|---|---|---|---|---|---|",
    ]
    for e in result["changes"]:
        before, after, shadow = (
            e.get(k) or {} for k in ("live_before", "live_after", "live_previous_in_shadow")
        )
        lines.append(
            f"| {(e.get('data_time') or '')[5:16]} | {e['decision']} | {e['version']} | {e.get('previous')} "
            f"| {scores(before)} | {scores(after)} | {scores(shadow)} |"
        )
    return "\n".join(lines)


def stop(d: Daemon) -> int | None:
    """SIGTERM, the daemon's ordered stop (SIGKILL to the group after 120 s); its exit code."""
    if d.proc is not None and d.proc.poll() is None:
        d.proc.send_signal(signal.SIGTERM)
        try:
            d.proc.wait(120)
        except Exception:
            os.killpg(d.proc.pid, signal.SIGKILL)
    return None if d.proc is None else d.proc.wait()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--minutes", type=float, default=28.0, help="wall minutes of the replay")
    p.add_argument(
        "--must-beat-baseline",
        action="store_true",
        help="the gate's baseline test (off by default, as in `nordiqd demo`: a small model "
        "trained for seconds does not beat seasonal naive on the simulated fleet)",
    )
    p.add_argument("--schedule", default="*/8 * * * *")
    p.add_argument("--dir", type=Path, default=None, help="keep the daemon's files here")
    p.add_argument("--json", type=Path, default=_REPO / "bench/results/retrain_loop.json")
    for flag, default in {  # "--skill-window-hours": of live skill before/after a change
        "--backfill-days": 3.0, "--replay-days": 4.0, "--servers": 20, "--seed": 1, "--epochs": 3,
        "--min-new-records": 6000, "--skill-threshold": 1.5, "--coverage-low": 0.55,
        "--coverage-high": 0.95, "--cooldown-minutes": 5.0, "--holdout-hours": 12.0,
        "--probation-hours": 4.0, "--skill-window-hours": 6.0,
    }.items():  # fmt: skip
        p.add_argument(flag, type=type(default), default=default)
    args = p.parse_args()
    root = args.dir or Path(tempfile.mkdtemp(prefix="retrain_loop_"))
    end = (int(time.time()) // 3600) * 3600 - 3600
    replay_start = end - args.replay_days * 86400
    history_start = replay_start - args.backfill_days * 86400
    replay = Replay(args, replay_start)
    sections = loop_sections(args)
    d = Daemon(root, sections)
    wall0 = time.monotonic()
    print(f"daemon in {root}; incidents:", *replay.lines, sep="\n  ", flush=True)
    d.start()
    monitor = Monitor(d)
    try:
        d.wait_ready(120)
        monitor.start()
        # The history in one batch (one append): the first job, whichever trigger starts
        # it, trains on all of it. The replay begins once that job has ended.
        monitor.data_time = replay_start
        send(d, replay.records(history_start, replay_start), chunk_records=100_000)
        first = wait_for(lambda: d.get("/admin/training-status").json().get("job_id"), 120, step=1.0)
        assert first, "no trigger started a job after the history arrived"
        job = d.job_end(first, 900, step=1.0)
        print(
            f"first job: {first} {job and job['trigger']}, {job and (job.get('gate') or {}).get('decision')}"
        )
        replay_days(d, replay, monitor, replay_start, end, args.minutes * 60)
        # The job the last data started, if any, ends before the figures are read (after
        # two trigger checks, so that a trigger the last step fired has started its job).
        time.sleep(6)
        wait_for(lambda: d.get("/admin/training-stats").json()["current_job"] is None, 600, step=2.0)
        time.sleep(5)  # the last issue points scored
        result = collect(d, monitor, args.skill_window_hours)
        retrain = d.get("/admin/training-stats").json()["retrain"]
    finally:
        monitor.stop.set()
        code = stop(d)
    result.update(
        settings={"model": MODEL, **{k: sections[k] for k in ("promotion", "retrain", "training")}},
        incidents={"specs": replay.specs, "lines": replay.lines},
        data_time={"history_start": iso(history_start), "replay_start": iso(replay_start), "end": iso(end)},
        wall_s=round(time.monotonic() - wall0, 1), replay_wall_s=args.minutes * 60,
        load={"min": min(monitor.load, default=None), "max": max(monitor.load, default=None),
              "mean": round(sum(monitor.load) / max(1, len(monitor.load)), 2)},
        waits=monitor.waits, retrain_at_end=retrain, monitor_errors=monitor.errors, exit_code=code,
        finished=iso(time.time()),
    )  # fmt: skip
    args.json.parent.mkdir(parents=True, exist_ok=True)
    runs = json.loads(args.json.read_text()) if args.json.exists() else []
    args.json.write_text(json.dumps([*runs, result], indent=1) + "\n")
    print(tables(result))
    print(f"\nwall {result['wall_s']} s, load {result['load']}, JSON appended to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
