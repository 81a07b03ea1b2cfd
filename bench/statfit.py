"""CPU cost of the statistical challengers for a fleet, against the issue-18 budget.

Usage::

    .venv/bin/python bench/statfit.py --runs 3           # 100 of 1,000 servers (500 series), scaled x10
    .venv/bin/python bench/statfit.py --sample 0         # all 1,000 servers (5,000 series; slow)
    .venv/bin/python bench/statfit.py --accuracy --servers 30 --sample 0 --refreshes 8

Budget (issue 18, line 4): fitting the statistical models for 1,000 servers x 5 targets
takes <= 60 s of one core per refresh, i.e. 12 ms per series.

What it measures is the scheme the daemon's refit child runs (``serving.refit`` calls the
same ``nordiqd.statistical.refresh``): a new fleet is fitted in full a share per refresh
(``ceil(series / reestimate_every)`` first fits each: AutoETS, AutoTheta and MSTL fitted
and scored on the series' last horizon, the best one's parameters kept), refreshes a
minute apart until no series waits; each later refresh, ``[routing] refit_hours`` of new data
on, fits in full only the series whose turn it is (about 1/``reestimate_every`` of the
fleet) and re-filters the others with their kept parameters. It simulates 1,000 servers
(``nordiqd.simulate.SimulatedFleet``, seed 0, 300 s steps) for ``DAYS`` + 1 days plus
the refreshes, takes the default ``[model]`` targets and, on a random ``--sample`` of the
servers, runs the first refresh and ``--refreshes`` steady ones, each on the
``statistical.DAYS`` days ending at its time, with the default horizon, path
(``serving.refit.path_steps``) and quantiles. Each refresh is timed with
``time.process_time`` (CPU of this process, so the figure does not depend on what else
the shared machine runs; numpy/scipy are limited to one thread) and scaled to the whole
fleet. Printed: every refresh of the new fleet and every steady one, with the series
each fitted in full, re-filtered and left waiting, the worst refresh against the budget,
and the reference: the served seasonal-naive forecast of the same fleet
(``predict.naive.naive_forecast``, the fleet in one call). ``--runs`` repeats it on other
samples; every run is printed. ``--accuracy`` times nothing: it runs the scheme and a
full fit of every series at every refresh (``reestimate_every = 1``) on the same sample,
scores each refresh's p50 on the horizon after it (MAE over the window's mean absolute
step change) and prints both, with their CPU.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one core, as the budget says

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

_REPO = Path(__file__).resolve().parents[1]
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from nordiqd import statistical  # noqa: E402
from nordiqd.config import Config  # noqa: E402
from nordiqd.model.params import ModelSpec  # noqa: E402
from nordiqd.predict.naive import naive_forecast  # noqa: E402
from nordiqd.serving.refit import path_steps  # noqa: E402
from nordiqd.simulate import SimulatedFleet  # noqa: E402

BUDGET_S = 60.0
START = 1_764_547_200.0  # 2025-12-01T00:00Z: fixed, so every run fits the same data


def fleet_series(servers: int, days: int, spec: ModelSpec) -> np.ndarray:
    """Simulated history [servers, T, targets] at the spec's step."""
    fleet = SimulatedFleet(size=servers, seed=0, interval_s=float(spec.step_seconds))
    batch = fleet.generate(START, START + days * 86400)
    steps = np.rint((batch.timestamps - START) / spec.step_seconds).astype(np.int64)
    out = np.full((servers, int(steps.max()) + 1, len(spec.targets)), np.nan)
    for k, target in enumerate(spec.targets):
        out[batch.server_index, steps, k] = batch.metrics[target]
    return out


def run_scheme(
    data: np.ndarray, picked: np.ndarray, first_end: int, refreshes: int, every: int, cfg: Config
) -> list[tuple[int, statistical.Refreshed]]:
    """The refreshes of a new fleet at step ``first_end``, then ``refreshes`` steady ones.

    A new fleet is fitted a share per refresh, the next refresh coming a minute later
    (``serving.challenger.BACKLOG_GAP_S``: less than a step, so on the same data) while
    series wait for their first fit; the steady refreshes follow one refit interval apart.
    """
    spec = cfg.model
    refit_steps = int(round(cfg.routing.refit_hours * 3600 / spec.step_seconds))
    length = statistical.DAYS * 86400 // spec.step_seconds
    previous: statistical.FleetParams | None = None
    out = []
    end, steady = first_end, 0
    while steady <= refreshes:
        done = statistical.refresh(
            data[picked, end - length : end],
            [f"server-{i:04d}" for i in picked],
            list(spec.targets),
            step_s=spec.step_seconds,
            end_s=START + end * spec.step_seconds,
            horizon_steps=spec.horizon_steps,
            steps=path_steps(cfg),
            quantiles=spec.quantiles,
            previous=previous,
            every=every,
        )
        previous = done.params
        out.append((end, done))
        if not done.waiting:
            steady += 1
            end += refit_steps
    return out


def main(argv: list[str] | None = None) -> int:
    """Refresh, time and print (module docstring)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--servers", type=int, default=1000)
    p.add_argument("--sample", type=int, default=100, help="servers refreshed per run (0: all)")
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--refreshes", type=int, default=4, help="steady refreshes after the first")
    cfg = Config()
    p.add_argument(
        "--every", type=int, default=cfg.routing.reestimate_every, help="[routing] reestimate_every"
    )
    p.add_argument(
        "--accuracy",
        action="store_true",
        help="instead: each refresh's p50 scored on the next horizon, the scheme vs a full fit every time",
    )
    args = p.parse_args(argv)
    spec = cfg.model
    refit_steps = int(round(cfg.routing.refit_hours * 3600 / spec.step_seconds))
    print(
        f"nordiqd statfit, {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}, {os.cpu_count()} CPUs, "
        f"load {' '.join(f'{x:.2f}' for x in os.getloadavg())}; refit every {cfg.routing.refit_hours:g} h, "
        f"full fit every {args.every} refreshes"
    )
    steps_per_day = 86400 / spec.step_seconds
    days = statistical.DAYS + 1 + (args.refreshes * refit_steps + spec.horizon_steps) / steps_per_day
    data = fleet_series(args.servers, int(np.ceil(days)), spec)
    n_series = args.servers * len(spec.targets)
    started = time.process_time()
    naive_forecast(data[:, -spec.encoder_steps :], spec)
    ref_s = time.process_time() - started
    first_end = data.shape[1] - args.refreshes * refit_steps - spec.horizon_steps
    for run in range(1, args.runs + 1):
        rng = np.random.default_rng(run)
        picked = (
            np.sort(rng.choice(args.servers, size=args.sample, replace=False))
            if args.sample
            else np.arange(args.servers)
        )
        if args.accuracy:
            print(
                f"run {run}: {picked.size * len(spec.targets):,} series, {args.refreshes + 1} refreshes: ",
                end="",
            )
            parts = []
            for every in (args.every, 1):
                done = run_scheme(data, picked, first_end, args.refreshes, every, cfg)
                served = [(end, r) for end, r in done if not r.waiting]  # once the fleet is fitted
                parts.append(f"every {every}: {_scores(data[picked], served, spec)}")
            print(" | ".join(parts), flush=True)
            continue
        scale = args.servers / picked.size
        lines = []
        cpu = []
        new_fleet = 0  # refreshes until no series waits for its first fit, the one that clears it too
        prev_waiting = 0
        ordered = True
        for _, done in run_scheme(data, picked, first_end, args.refreshes, args.every, cfg):
            finite = np.isfinite(done.values).all(axis=-1)
            ordered &= bool((np.diff(done.values, axis=-1)[finite] >= 0).all())
            cpu.append(scale * done.cpu_s)
            new_fleet += len(cpu) == new_fleet + 1 and (len(cpu) == 1 or prev_waiting > 0)
            prev_waiting = done.waiting
            lines.append(
                f"{cpu[-1]:.1f} s ({done.estimated} fitted, {done.filtered} filtered, "
                f"{done.waiting} waiting, {done.failed} failed, "
                f"{int((~finite).all(axis=-1).sum())} without forecast)"
            )
        worst = max(cpu)
        verdict = "PASS" if worst <= BUDGET_S else "FAIL"
        sampled = f"{picked.size * len(spec.targets):,} refreshed" + (f", x{scale:.0f}" if scale > 1 else "")
        print(
            f"run {run}: {n_series:,} series ({sampled}) | a new fleet, {new_fleet} refreshes "
            f"(first fits a share each, {sum(cpu[:new_fleet]):.1f} CPU-s in all): "
            f"{'; '.join(lines[:new_fleet])} "
            f"| steady refreshes: {'; '.join(lines[new_fleet:])} | worst refresh {worst:.1f} CPU-s, "
            f"budget <= {BUDGET_S:.0f} s {verdict} (x{worst / BUDGET_S:.2f}), steady mean "
            f"{np.mean(cpu[new_fleet:]):.1f} s | quantiles ordered: {ordered} | ref: served seasonal naive, "
            f"whole fleet {ref_s:.2f} CPU-s (load {os.getloadavg()[0]:.2f})",
            flush=True,
        )
    return 0


def _scores(data: np.ndarray, done: list[tuple[int, statistical.Refreshed]], spec: ModelSpec) -> str:
    """Each refresh's p50 on the next horizon: its MAE over the window's mean absolute step change."""
    errors = []
    cpu = 0.0
    for end, refreshed in done:
        horizon, length = spec.horizon_steps, statistical.DAYS * 86400 // spec.step_seconds
        truth = np.moveaxis(data[:, end : end + horizon], 1, 2)  # [servers, targets, horizon]
        step = np.nanmean(np.abs(np.diff(data[:, end - length : end], axis=1)), axis=1)
        p50 = refreshed.values[:, :, :horizon, spec.median_index]
        errors.append(np.nanmean(np.abs(p50 - truth), axis=-1) / np.maximum(step, 1e-9))
        cpu += refreshed.cpu_s
    e = np.array(errors)
    e = e[np.isfinite(e)]
    return f"scaled MAE mean {e.mean():.3f}, median {np.median(e):.3f}, {cpu:.1f} CPU-s"


if __name__ == "__main__":
    sys.exit(main())
