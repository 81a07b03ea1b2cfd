"""Training on a Ray cluster: 1 worker against 2 on the same windows, and each worker's memory.

Usage (``bench/train.py --ray ADDRESS ...`` lands here)::

    ray start --head --num-cpus 2 --node-ip-address 127.0.0.1 --port 6390 --include-dashboard false
    .venv/bin/python bench/train.py --ray 127.0.0.1:6390 --servers 1000 --days 30 --workers 1,2
    .venv/bin/python bench/train.py --ray 127.0.0.1:6390 --servers 10000 --days 30 --workers 2 --repeats 1

The fleet is simulated day by day (``SimulatedFleet``) into a buffer-shaped folder of
daily Parquet files (the targets only), so the workers read their shards from Parquet
exactly as a job's do. The driver is this process: it reads the window, frames it and
fits the encoders once (``fitting.fit``), then trains through ``RayTraining`` with
``--workers`` workers of 1 CPU each, one run per entry, in turn, on the same windows:
the same fleet, the same windows per epoch in total (``--windows``, split across the
workers), the same seed. Reported per run: the Ray run's wall time (workers' start,
shard reads, framing and training), each rank's training seconds, windows per second,
and each rank's peak resident memory against its shard's arrays (series values and
window index), which the rank measures itself (``ru_maxrss``), at its start (Ray, torch,
Lightning and pytorch-forecasting imported: the worker's fixed cost) and at its end.

On this 2-core machine shared with other work, 2 workers can at best halve the
training time, and Ray's own processes (GCS, raylet, the Train controller) take CPU too;
the ratio is printed as measured.

``--driver-servers N`` lets the driver fit on N servers only (a job fits on all): at
10,000 servers x 30 days the driver's framing of the whole fleet does not fit this
machine's memory, while what is measured here, the workers, reads and trains every
server (the others are unknown names to the encoder, as hidden copies are).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

_DAY_S = 86_400
_T0 = 1_790_000_000 - 1_790_000_000 % _DAY_S
SMALL = {"hidden_size": 16, "hidden_continuous_size": 8, "encoder_steps": 96, "horizon_steps": 24}


def write_buffer(folder: Path, servers: int, days: int, seed: int, targets: tuple[str, ...]) -> int:
    """Simulate the fleet day by day into ``folder/metrics_YYYY-MM-DD.parquet``; rows written.

    Written as the buffer writes its merged days: sorted by server then time, row groups
    of ``4 * merge.ROW_GROUP_ROWS`` rows, with statistics.
    """

    from nordiqd.buffer.batch import order_and_dedup
    from nordiqd.buffer.layout import day_name, parquet_options
    from nordiqd.buffer.merge import ROW_GROUP_ROWS
    from nordiqd.simulate import SimulatedFleet

    fleet = SimulatedFleet(size=servers, seed=seed, interval_s=300)
    rows = 0
    for d in range(days):
        start = _T0 + d * _DAY_S
        table = fleet.generate(start, start + _DAY_S).to_arrow()
        table = order_and_dedup(table.select(["timestamp", "server_name", "profile", *targets]))
        # Row groups and encodings as the buffer's merged day files have them, so the
        # workers' reads skip what the buffer's reads would.
        path = folder / f"metrics_{day_name(start // _DAY_S)}.parquet"
        pq.write_table(table, path, row_group_size=4 * ROW_GROUP_ROWS, **parquet_options(table))
        rows += table.num_rows
        del table
    return rows


def fleet_names(folder: Path) -> list[str]:
    """Every server in the simulated buffer (the first day holds them all)."""

    first = sorted(folder.glob("metrics_*.parquet"))[0]
    return sorted(set(pq.read_table(first, columns=["server_name"])["server_name"].to_pylist()))


def run(args: argparse.Namespace) -> dict[str, Any]:
    from nordiqd.buffer.reader import read_window
    from nordiqd.config import TrainingConfig
    from nordiqd.model.fitting import fit
    from nordiqd.model.params import ModelSpec
    from nordiqd.training.ray_backend import RayTraining

    spec = ModelSpec.from_dict({**ModelSpec().to_dict(), **SMALL, "max_windows_per_epoch": args.windows})
    out: dict[str, Any] = {"runs": []}
    with contextlib.ExitStack() as stack:
        tmp = str(args.fleet) if args.fleet else stack.enter_context(_scratch(args.tmp))
        t = time.perf_counter()
        if args.fleet and sorted(args.fleet.glob("metrics_*.parquet")):
            out["records"] = sum(pq.read_metadata(f).num_rows for f in args.fleet.glob("metrics_*.parquet"))
            print(f"# reusing the fleet in {args.fleet}: {out['records']:,} records", flush=True)
        else:
            Path(tmp).mkdir(parents=True, exist_ok=True)
            out["records"] = write_buffer(Path(tmp), args.servers, args.days, args.seed, spec.targets)
            out["generate_s"] = time.perf_counter() - t
            print(f"# simulated {out['records']:,} records in {out['generate_s']:.0f} s", flush=True)
        t = time.perf_counter()
        names = fleet_names(Path(tmp))
        sample = names[: args.driver_servers] if args.driver_servers else None
        table = read_window(tmp, servers=sample)
        out["read_s"] = time.perf_counter() - t
        for rep in range(args.repeats):
            order = args.workers if rep % 2 == 0 else args.workers[::-1]
            for workers in order:
                settings = TrainingConfig(
                    backend="ray", ray_address=args.ray, ray_workers=workers, ray_cpus_per_worker=1.0
                )
                ray_run = RayTraining(
                    settings, spec, buffer_dir=tmp, window=(None, None), epochs=args.epochs,
                    job_id=f"bench-{workers}-{rep}", seed=args.seed, servers=names,
                )  # fmt: skip
                timed: dict[str, float] = {}

                def train(*a: Any, ray_run: Any = ray_run, timed: dict[str, float] = timed) -> str:
                    t = time.perf_counter()
                    device: str = ray_run(*a)
                    timed["ray_s"] = time.perf_counter() - t
                    return device

                t = time.perf_counter()
                trained = fit(table, spec, epochs=args.epochs, seed=args.seed, train=train)
                result = {
                    "workers": workers,
                    "repeat": rep,
                    "fit_s": time.perf_counter() - t,
                    "ray_s": timed["ray_s"],
                    "ranks": ray_run.ranks,
                    "validation_mase": trained.validation.mase_model,
                    "loadavg": os.getloadavg()[0],
                }
                out["runs"].append(result)
                print(_line(result, args), flush=True)
    out["driver_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def _scratch(parent: str | None) -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="nordiqd-ray-bench-", dir=parent)


def _line(r: dict[str, Any], args: argparse.Namespace) -> str:
    ranks = r["ranks"].values()
    train_s = max(f["train_s"] for f in ranks)
    windows = args.windows * args.epochs
    mem = ", ".join(
        f"rank {k}: peak {f['peak_rss_mb']:.0f} MB (at start {f['start_rss_mb']:.0f}, "
        f"shard read and framed {f.get('shard_peak_rss_mb', 0):.0f}) for "
        f"{f['shard_array_mb']:.0f} MB of shard arrays: {_ratio(f['peak_rss_mb'], f):.1f}x, "
        f"{_ratio(f['peak_rss_mb'] - f['start_rss_mb'], f):.1f}x above start"
        for k, f in sorted(r["ranks"].items())
    )
    return (
        f"{r['workers']} worker(s), repeat {r['repeat'] + 1}: Ray run {r['ray_s']:.1f} s, training "
        f"{train_s:.1f} s = {train_s / args.epochs:.1f} s/epoch, {windows / train_s:.0f} windows/s; "
        f"{mem}; loadavg {r['loadavg']:.1f}"
    )


def _ratio(mb: float, figures: dict[str, float]) -> float:
    return mb / max(figures["shard_array_mb"], 1e-9)


def summary(out: dict[str, Any], args: argparse.Namespace) -> list[str]:
    lines = [f"# driver peak RSS {out['driver_peak_rss_mb']:.0f} MB, read {out['read_s']:.1f} s"]
    by: dict[int, list[float]] = {}
    for r in out["runs"]:
        by.setdefault(r["workers"], []).append(max(f["train_s"] for f in r["ranks"].values()))
    for w, values in sorted(by.items()):
        per_epoch = ", ".join(f"{v / args.epochs:.1f}" for v in values)
        lines.append(f"# {w} worker(s): training s/epoch {per_epoch}")
    if 1 in by and 2 in by:
        ratio = min(by[1]) / min(by[2])
        lines.append(f"# 2 workers against 1 (best runs): {ratio:.2f}x the speed, on {os.cpu_count()} cores")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ray", required=True, metavar="ADDRESS")
    p.add_argument("--servers", type=int, default=1000)
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--windows", type=int, default=2560, help="training windows per epoch, all workers")
    p.add_argument("--workers", default="1,2", help="worker counts to compare, in turn")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--driver-servers",
        type=int,
        default=0,
        help="the driver fits encoders and scalers on the first N servers only (0: all); the "
        "workers still train on every server's shard. For fleets whose whole-fleet framing does "
        "not fit the driver's memory; the model is then not what a job would train",
    )
    p.add_argument("--tmp", help="folder for the simulated buffer (default: the system's)")
    p.add_argument(
        "--fleet",
        type=Path,
        help="keep the simulated buffer in this folder and reuse it when it holds day files "
        "(it is not checked against --servers/--days/--seed: name it after them)",
    )
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    args.workers = [int(x) for x in args.workers.split(",")]
    print(f"# bench/train.py --ray on {platform.node()}, {os.cpu_count()} CPUs, loadavg {os.getloadavg()}")
    out = run(args)
    print("\n".join(summary(out, args)))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"args": vars(args), **out}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
