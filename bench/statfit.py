"""CPU cost of fitting the statistical challengers for a fleet, against the issue-18 budget.

Usage::

    .venv/bin/python bench/statfit.py                      # 1,000 servers x 5 targets, a sample fitted
    .venv/bin/python bench/statfit.py --sample 0           # every one of the 5,000 series (slow)

Budget (issue 18, line 4): fitting the statistical models for 1,000 servers x 5 targets
takes <= 60 s of one core per refresh, i.e. 12 ms per series.

What it does: simulates 1,000 servers (``nordiqd.simulate.SimulatedFleet``, seed 0,
300 s steps) for ``DAYS`` + 1 days, takes the default ``[model]`` targets, and for each
series calls ``nordiqd.statistical.forecast`` once per model (AutoETS, AutoTheta, MSTL)
for the default 96-step horizon, as one refresh would. It times each call with
``time.process_time`` (CPU of this process, so the figure does not depend on what else
the shared machine runs; numpy/scipy are limited to one thread) and prints the CPU
seconds per model and in all, scaled to the whole fleet when only a random ``--sample``
of the series is fitted (default 500 of 5,000; ``--sample 0`` fits them all), next to
the budget and the reference: the served seasonal-naive forecast of the same series
(``predict.naive.naive_forecast``, the fleet in one call). ``--runs`` repeats the fits;
every run is printed.
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
from nordiqd.model.params import ModelSpec  # noqa: E402
from nordiqd.predict.naive import naive_forecast  # noqa: E402
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


def main(argv: list[str] | None = None) -> int:
    """Fit, time and print (module docstring)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--servers", type=int, default=1000)
    p.add_argument("--sample", type=int, default=500, help="series fitted per run (0: all)")
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--days", type=int, default=statistical.DAYS, help="days of history fitted on")
    args = p.parse_args(argv)
    spec = ModelSpec()
    print(
        f"nordiqd statfit, {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}, {os.cpu_count()} CPUs, "
        f"load {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    data = fleet_series(args.servers, args.days + 1, spec)
    n_series = args.servers * len(spec.targets)
    flat = np.moveaxis(data, 2, 1).reshape(n_series, -1)  # [series, T]
    started = time.process_time()
    naive_forecast(data[:, -spec.encoder_steps :], spec)
    ref_s = time.process_time() - started
    for run in range(1, args.runs + 1):
        rng = np.random.default_rng(run)
        picked = rng.choice(n_series, size=args.sample, replace=False) if args.sample else np.arange(n_series)
        scale = n_series / picked.size
        per_model: dict[str, list[float]] = {m: [] for m in statistical.MODELS}
        failed = dict.fromkeys(statistical.MODELS, 0)
        for i in picked:
            for model in statistical.MODELS:
                t0 = time.process_time()
                out = statistical.forecast(
                    model, flat[i], spec.step_seconds, spec.horizon_steps, spec.quantiles
                )
                per_model[model].append(time.process_time() - t0)
                failed[model] += int(not np.isfinite(out).all())
        parts = []
        for model, secs in per_model.items():
            ms = 1000 * np.array(secs)
            parts.append(
                f"{model} {scale * ms.sum() / 1000:.0f} s (median {np.median(ms):.0f} ms, p95 "
                f"{np.percentile(ms, 95):.0f} ms, no forecast {failed[model]})"
            )
        total = scale * sum(sum(s) for s in per_model.values())
        verdict = "PASS" if total <= BUDGET_S else "FAIL"
        fitted = f"{picked.size:,} fitted" + (f", x{scale:.0f}" if scale > 1 else "")
        print(
            f"run {run}: {n_series:,} series ({fitted}): all three models {total:.0f} CPU-s | "
            f"budget <= {BUDGET_S:.0f} s {verdict} (x{total / BUDGET_S:.1f}) | "
            f"{'; '.join(parts)} | ref: served seasonal naive, whole fleet {ref_s:.2f} CPU-s "
            f"(load {os.getloadavg()[0]:.2f})",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
