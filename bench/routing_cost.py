"""The cost of per-series routing and calibrated bands in a forecast pass (``bench/predict.py``).

A forecast pass with routing and calibration (``serving.routes``: each series' lead
buckets from the candidate the ledger's trailing errors choose, the edges and the
present cross-faded, every candidate's band moved by its conformal shift, the
statistical challenger sliced from a saved fit) against the same pass with routing off,
on the same windows and model, alternating so the machine's load falls on both alike.
The routes and bands come from the ledger ``live_cost.drive`` filled through the
fleet's day (the bands refreshed once, as the accuracy thread does after an issue point:
timed, and printed beside, since it is not part of a pass); the challenger's fit is the
pass's own quantiles saved as a fit (the same size as a real one: what is measured is the
serving side, not the fitting, which runs in its own process). Every run is printed, then
the medians against the budget (issue 18: within 20 % of the pass without routing).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from nordiqd.accuracy.live import LiveAccuracy
from nordiqd.accuracy.routing import CANDIDATES
from nordiqd.config import Config
from nordiqd.durable import write_atomic
from nordiqd.predict.windows import RollingWindows
from nordiqd.serving.challenger import FILE, Fit, StatisticalChallenger
from nordiqd.serving.cycle import ForecastCycle
from nordiqd.serving.routes import Router

TARGET = 0.20  # a routed pass within 20 % of a plain one


def routing_figures(
    cfg: Config,
    windows: RollingWindows,
    cycle: ForecastCycle,
    now: float,
    live: LiveAccuracy,
    runs: int,
    load: Callable[[], str],
    report: dict[str, Any],
) -> list[str]:
    """The routing line of the bench; its figures into ``report["routing"]``."""
    spec = cfg.model
    # What the accuracy thread does after each issue point: every series' band shifts.
    t = time.perf_counter()
    live.refresh_bands()
    refresh_s = time.perf_counter() - t
    plain = cycle.compute(now).outlook
    with tempfile.TemporaryDirectory(prefix="nordiqd-bench-routing-") as tmp:
        daemon = msgspec.structs.replace(cfg.daemon, data_dir=tmp)
        routed_cfg = msgspec.structs.replace(cfg, daemon=daemon)
        Path(routed_cfg.state_dir).mkdir(parents=True)
        start = float(plain.forecast_start or now)
        values = np.nan_to_num(plain.values, nan=0.0)
        fit = Fit(
            origin=int(start),
            step_seconds=spec.step_seconds,
            targets=list(spec.targets),
            quantiles=list(spec.quantiles),
            servers=list(plain.names),
            models=[["auto_ets"] * len(spec.targets) for _ in plain.names],
            values=values.astype("<f4").tobytes(),
            steps=spec.horizon_steps,
            cpu_s=0.0,
        )
        write_atomic(Path(routed_cfg.state_dir) / FILE, msgspec.msgpack.encode(fit))
        challenger = StatisticalChallenger(routed_cfg)
        router = Router(live.routes, cfg.routing.blend_steps, challenger.forecast, live.bands)
        routed = ForecastCycle(routed_cfg, windows, cycle.slot, router=router)
        plain_s, routed_s = [], []
        for run in range(runs):
            t = time.perf_counter()
            cycle.compute(now)
            plain_s.append(time.perf_counter() - t)
            t = time.perf_counter()
            made = routed.compute(now)
            routed_s.append(time.perf_counter() - t)
            print(
                f"  pass {run + 1}: routing off {plain_s[-1]:.2f} s, routing + calibration "
                f"{routed_s[-1]:.2f} s ({load()})",
                flush=True,
            )
    sources = made.outlook.sources[made.outlook.eligible]
    share = {name: float((sources == c).mean()) for c, name in enumerate(CANDIDATES)}
    off, on = statistics.median(plain_s), statistics.median(routed_s)
    ratio = on / off
    ok = ratio <= 1 + TARGET
    report["routing"] = {
        "plain_s": plain_s,
        "routed_s": routed_s,
        "plain_median_s": off,
        "routed_median_s": on,
        "ratio": ratio,
        "pass": ok,
        "source_share": share,
        "refresh_bands_s": refresh_s,
        "load": load(),
    }
    shares = ", ".join(f"{name} {v:.0%}" for name, v in share.items())
    return [
        f"{f'routed pass {len(plain.names):,} servers':<32} {on:>7.2f} s median "
        f"(routing + calibration + challenger; runs {', '.join(f'{x:.2f}' for x in routed_s)}; "
        f"buckets served from {shares}; the accuracy thread's band refresh {refresh_s:.2f} s an issue "
        f"point, off the pass) "
        f"| target <= x{1 + TARGET:.2f} of routing off: x{ratio:.2f} {'PASS' if ok else 'FAIL'} "
        f"| ref: routing off {off:.2f} s median (runs {', '.join(f'{x:.2f}' for x in plain_s)}) ({load()})"
    ]
