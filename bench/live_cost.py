"""What live accuracy costs (issue 14, deliverable 8), for ``bench/predict.py``.

Drives the real ``LiveAccuracy`` as the predictor's accuracy thread does
(``serving/scoring.py``), in data time over the bench's simulated day of windows: at
every hourly issue point it scores the steps final by then (``observe``), keeps the
forecasts of the bench's last ``ForecastCycle`` pass (``issue``: the real model's
values, every server x target x step x quantile) and saves the file; then it scores
each 5-minute step of the hour as it becomes final. Once the ledger holds what a horizon
keeps outstanding (horizon + one hour's grace, at hourly issues), it measures:

- ledger memory: the outstanding issues' numpy arrays (``ForecastLedger.nbytes``), their
  peak, and RSS growth of this process as a second view;
- scoring per forecast pass: ``issue`` + ``observe`` of one step for the fleet, as a share
  of the forecast pass it rides on (the pass measured by the bench in the same run).

Beside it, what else live accuracy does: the hourly save; the data-time feed's snapshot
of the windows at each step boundary (what ``Observe`` carries) and at each issue point;
and the issue point's forecast. That forecast is a pass of the forecast cycle
(``serving.cycle``) over the windows as they stood at the issue point, which with live
data takes the place of the boundary's own pass: what it adds is its time over a
plain pass's (measured, both ways, in the same run), not a second forecast. All of it
is amortised over the passes of an issue interval.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nordiqd.accuracy.live import FILE_NAME, LiveAccuracy
from nordiqd.config import Config
from nordiqd.predict.windows import RollingWindows, WindowSnapshot
from nordiqd.serving.cycle import ForecastCycle
from nordiqd.serving.forecast_pass import snapshot_pass
from nordiqd.serving.outlook import Outlook

TARGETS = {"ledger_mb": 100.0, "scoring_share": 0.10}


def rss_bytes() -> int:
    """This process's resident set size (``VmRSS``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def drive(
    cfg: Config, snap: WindowSnapshot, outlook: Outlook, state: Path
) -> tuple[dict[str, Any], LiveAccuracy]:
    """Issue and score through the snapshot's day in data time; return what it measured.

    With ``[routing]`` on (the default) the ledger also keeps what routing and calibration
    need, and each issue carries a challenger p50 (the pass's own p50 stands in for the
    statistical model's: the same size), so the memory figure is routing's too.

    Args:
        cfg: The bench's configuration (``[model]``, ``[accuracy]``, ``[buffer]``).
        snap: Target windows of the fleet; their steps are the actuals.
        outlook: The forecast pass whose forecasts are issued at every issue point.
        state: Directory for the accuracy file.
    """
    spec, every = cfg.model, cfg.accuracy.issue_every_s
    step, length = spec.step_seconds, snap.windows.shape[1]
    last = int(snap.last_bucket_start[0])
    rows = outlook.eligible
    names = [snap.names[i] for i in rows]
    values, windows = outlook.values[rows], snap.windows[rows]
    # Issues outstanding at once: a horizon plus the ledger's grace (one issue interval).
    keep = -(-(spec.horizon_steps * step + every) // every)
    rss0 = rss_bytes()
    live = LiveAccuracy(state / FILE_NAME, spec, cfg.accuracy, cfg.buffer.retention_days, cfg.routing)
    routing = cfg.routing
    challenger = values[..., spec.median_index] if routing.enabled and routing.refit_hours > 0 else None
    first = last - (length - 1) * step
    points = live.due(first, last - every)  # each issue point with its hour of steps ahead
    issue_s, save_s, observe_s, held, peak, scored = [], [], [], [], 0, 0
    for at in points:
        scored += live.observe(snap.names, snap.windows, last, at)
        steady = len(live.ledger.issues) >= keep - 1  # this issue makes ``keep``
        t = time.perf_counter()
        live.issue(at, outlook.model.label, "tft", names, values, windows, challenger=challenger)
        t_issue = time.perf_counter() - t
        t = time.perf_counter()
        live.save()
        t_save = time.perf_counter() - t
        held.append(len(live.ledger.issues))
        peak = max(peak, live.ledger.nbytes)
        for through in range(at + step, at + every + 1, step):
            t = time.perf_counter()
            scored += live.observe(snap.names, snap.windows, last, through)
            if steady:
                observe_s.append(time.perf_counter() - t)
        if steady:
            issue_s.append(t_issue)
            save_s.append(t_save)
    return {
        "servers": len(names),
        "shape": list(values.shape),
        "issue_points": len(points),
        "steady_issue_points": len(issue_s),
        "outstanding_expected": keep,
        "outstanding_max": max(held),
        "ledger_peak_bytes": peak,
        "issue_bytes": live.ledger.issues[-1].nbytes,
        "book_bytes": sum(c.nbytes for c in live.ledger.book.per_server.values())
        + sum(c.nbytes for c in live.ledger.book.fleet.values()),
        "file_bytes": (state / FILE_NAME).stat().st_size,
        "rss_growth_bytes": rss_bytes() - rss0,
        "points_scored": scored,
        "issue_s": issue_s,
        "observe_s": observe_s,
        "save_s": save_s,
        "pass_forecast_bytes": values.nbytes,
        "routing_bytes": sum(x.nbytes for x in (live.ledger.routes, live.ledger.rings) if x is not None),
    }, live


def beside_the_pass(
    cfg: Config, windows: RollingWindows, cycle: ForecastCycle, now: float, runs: int
) -> dict[str, float]:
    """Median seconds of the feed's snapshots and of an issue point's pass against a plain one.

    The two passes alternate, so the machine's load falls on both alike.
    """
    targets, step = list(cfg.model.targets), cfg.model.step_seconds
    at = int(now // cfg.accuracy.issue_every_s) * cfg.accuracy.issue_every_s
    metrics = tuple(windows.metrics)
    served = cycle.slot.served
    snap_s, issue_s, plain_s = [], [], []
    for _ in range(runs):
        t = time.perf_counter()
        snap = windows.snapshot(targets, now=at - 1)
        keep = snap.windows[:, -2:].copy()  # what an Observe of one step carries
        snap_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        snapshot_pass(cfg, metrics, snap, served, at)
        issue_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        cycle.compute(float(at + step // 2))
        plain_s.append(time.perf_counter() - t)
        del keep
    return {
        "feed_snapshot_s": statistics.median(snap_s),
        "issue_pass_s": statistics.median(issue_s),
        "plain_pass_s": statistics.median(plain_s),
    }


def accuracy_figures(
    cfg: Config,
    windows: RollingWindows,
    cycle: ForecastCycle,
    now: float,
    snap: WindowSnapshot,
    outlook: Outlook,
    pass_s: float,
    runs: int,
    load: Callable[[], str],
    report: dict[str, Any],
) -> tuple[list[str], LiveAccuracy]:
    """The two live-accuracy lines of the bench, in its format; their figures into ``report``.

    Also returns the ledger it filled, whose routes and bands the routing figures use.

    Args:
        cfg: The bench's configuration.
        windows: The fleet's rolling windows.
        cycle: The bench's forecast cycle (with the real model served).
        now: The moment the bench forecast for.
        snap: The fleet's target windows (the snapshot the bench forecast).
        outlook: The bench's last forecast pass.
        pass_s: Median seconds of a whole forecast pass (``ForecastCycle.compute``).
        runs: Repetitions of the timed passes.
        load: The bench's load-average string.
        report: The bench's JSON report; gets ``accuracy``.
    """
    with tempfile.TemporaryDirectory(prefix="nordiqd-bench-accuracy-") as tmp:
        m, live = drive(cfg, snap, outlook, Path(tmp))
    n, every, step = m["servers"], cfg.accuracy.issue_every_s, cfg.model.step_seconds
    issue, observe = statistics.median(m["issue_s"]), statistics.median(m["observe_s"])
    save = statistics.median(m["save_s"])
    share = (issue + observe) / pass_s
    passes_per_issue = every // step
    amortised = (issue / passes_per_issue + observe) / pass_s
    side = beside_the_pass(cfg, windows, cycle, now, runs)
    extra_pass = side["issue_pass_s"] - side["plain_pass_s"]  # noise either way: kept signed
    # Everything live accuracy adds, spread over the passes of an issue interval: the feed
    # snapshots every step and once more at the issue point; the issue point's pass stands
    # in for the boundary's own.
    feed = (side["feed_snapshot_s"] * (1 + 1 / passes_per_issue)) / pass_s
    all_in = amortised + (save / passes_per_issue) / pass_s + feed + extra_pass / passes_per_issue / pass_s
    peak_mb, rss_mb = m["ledger_peak_bytes"] / 1e6, m["rss_growth_bytes"] / 1e6
    mem_ok, cost_ok = peak_mb <= TARGETS["ledger_mb"], all_in <= TARGETS["scoring_share"]
    report["accuracy"] = {
        **m,
        "ledger_peak_mb": peak_mb,
        "rss_growth_mb": rss_mb,
        "issue_median_s": issue,
        "observe_median_s": observe,
        "save_median_s": save,
        "pass_median_s": pass_s,
        "scoring_share": share,
        "scoring_share_amortised": amortised,
        **side,
        "feed_share": feed,
        "all_in_share_amortised": all_in,
        "pass_memory": mem_ok,
        "pass_cost": cost_ok,
        "targets": TARGETS,
        "load": load(),
    }
    s, t, h, q = m["shape"]
    lines = [
        f"{f'accuracy ledger {n:,} servers':<32} {peak_mb:>7.1f} MB peak numpy arrays, "
        f"{m['outstanding_max']} issues outstanding ({m['outstanding_expected']} expected: "
        f"horizon {h} steps + 1 h grace at {every} s issues; {s}x{t}x{h}x{q} forecasts + naive + "
        f"scale + mask + routing candidates, {m['issue_bytes'] / 1e6:.1f} MB each; routing and "
        f"calibration sums {m['routing_bytes'] / 1e6:.1f} MB); RSS growth {rss_mb:.1f} MB; scores "
        f"{m['book_bytes'] / 1e6:.2f} MB/day of data, file {m['file_bytes'] / 1e6:.1f} MB "
        f"| target <= {TARGETS['ledger_mb']:g} MB {'PASS' if mem_ok else 'FAIL'} "
        f"| ref: one pass's served forecasts {m['pass_forecast_bytes'] / 1e6:.1f} MB "
        f"(x{m['ledger_peak_bytes'] / m['pass_forecast_bytes']:.1f}) ({load()})",
        f"{f'scoring per pass {n:,} servers':<32} {(issue + observe) * 1e3:>7.0f} ms median "
        f"(issue {issue * 1e3:.0f} ms + observe of one step {observe * 1e3:.0f} ms, "
        f"{m['steady_issue_points']} issue points x {passes_per_issue} steps, "
        f"{m['points_scored']:,} points scored) = {share:.1%} of a pass; an issue every "
        f"{passes_per_issue} passes: {amortised:.1%}; beside it: hourly save {save:.2f} s, the "
        f"feed's snapshots {side['feed_snapshot_s'] * 1e3:.0f} ms a step ({feed:.1%}), the issue "
        f"point's pass {side['issue_pass_s']:.2f} s in place of a plain one {side['plain_pass_s']:.2f} s; "
        f"all of it amortised {all_in:.1%} "
        f"| target <= {TARGETS['scoring_share']:.0%} {'PASS' if cost_ok else 'FAIL'} "
        f"| ref: ForecastCycle.compute {pass_s:.2f} s median ({load()})",
    ]
    return lines, live
