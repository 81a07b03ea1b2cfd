"""Training throughput of the TFT on a simulated fleet: samples/s, s/epoch, peak memory.

Usage::

    .venv/bin/python bench/train.py                       # 1,000 servers x 30 days, both sizes
    .venv/bin/python bench/train.py --servers 50 --days 3 --windows 1280 --repeats 1
    .venv/bin/python bench/train.py --device cuda --windows 0   # full epochs on a GPU

Each (model size, repeat) runs in a fresh interpreter (``--child``), so its peak
resident memory (``ru_maxrss`` read by the parent through ``os.wait4``) is that job's
alone, as a training job subprocess of the daemon would see it. The child goes through
the phases of ``nordiqd.model.fitting.fit`` one by one so each can be timed:

1. generate the fleet in-process to a buffer-shaped Arrow table (``SimulatedFleet.to_arrow``);
2. framing: ``frames.to_frame`` (bucket, grid, fill gaps, split into series);
3. dataset build: validation split, hidden-name copies, ``TimeSeriesDataSet``, network;
4. training with ``trainer.run_trainer`` once per entry of ``--threads`` (the side-by-side
   reference: the daemon's default of 1 CPU thread against 2), a fresh network each,
   timestamping every batch through ``on_progress``;
5. validation (``fitting.validate``) once, on the last horizon of every series.

An epoch is ``max_windows_per_epoch`` random training windows (ModelSpec default
100,000 = 782 batches of 128), not a pass over all windows (one starts at every step).
``--windows N`` draws N per epoch instead so a CPU run fits in minutes; the figure
"s/epoch (configured)" is then ``max_windows_per_epoch / samples_per_s``, extrapolated.
The first batch of a run (allocations, autotuning) is left out of samples/s.

The machine is shared; every figure is reported as min and median over ``--repeats``,
with the load average at the start and end of each child.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

_REPO = Path(__file__).resolve().parents[1]
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

# Model sizes under test. "default" is ModelSpec() unchanged; "small" is a model a
# modest box can retrain often (hidden 16, 8 h encoder, 2 h horizon).
SIZES: dict[str, dict[str, Any]] = {
    "default": {},
    "small": {"hidden_size": 16, "hidden_continuous_size": 8, "encoder_steps": 96, "horizon_steps": 24},
}
_DAY_S = 86_400
# A fixed, day-aligned start so every run sees the same fleet.
_T0 = 1_790_000_000 - 1_790_000_000 % _DAY_S


def _loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _note(size: str, text: str) -> None:
    print(f"#   {size}: {text} (loadavg {_loadavg()[0]})", file=sys.stderr, flush=True)


def run_child(args: argparse.Namespace) -> dict[str, Any]:
    """One job: generate, frame, build, train per thread count, validate; figures as a dict."""
    import torch

    from nordiqd.model.dataset import (
        build_dataset,
        hide_names,
        loss_weights,
        model_parameters,
        split_validation,
    )
    from nordiqd.model.fitting import validate
    from nordiqd.model.frames import to_frame
    from nordiqd.model.network import build_network
    from nordiqd.model.params import ModelSpec
    from nordiqd.model.trainer import run_trainer
    from nordiqd.simulate import SimulatedFleet

    load_start = _loadavg()
    spec = ModelSpec(**SIZES[args.size])
    if args.windows:
        spec = ModelSpec(**{**spec.to_dict(), "max_windows_per_epoch": args.windows})
    accelerator = "gpu" if args.device == "cuda" else "cpu"
    out: dict[str, Any] = {"size": args.size, "spec": spec.to_dict(), "device": args.device}

    t = time.perf_counter()
    table = (
        SimulatedFleet(size=args.servers, seed=args.seed, interval_s=spec.step_seconds)
        .generate(_T0, _T0 + int(args.days * _DAY_S))
        .to_arrow()
    )
    out["records"] = table.num_rows
    out["generate_s"] = time.perf_counter() - t
    _note(args.size, f"generated {table.num_rows:,} records in {out['generate_s']:.0f} s")

    t = time.perf_counter()
    frame = to_frame(table, spec)
    out["framing_s"] = time.perf_counter() - t
    _note(args.size, f"framed {len(frame):,} rows in {out['framing_s']:.0f} s")

    t = time.perf_counter()
    train_frame, val_frame = split_validation(frame, spec)
    train_frame = hide_names(train_frame, spec.unseen_share, args.seed)
    train_ds = build_dataset(train_frame, spec)
    weights = loss_weights(train_frame, spec)
    params_out = model_parameters(train_ds.get_parameters())
    out["dataset_build_s"] = time.perf_counter() - t
    out["training_windows_available"] = len(train_ds)
    out["rows_framed"] = len(frame)
    _note(args.size, f"built {len(train_ds):,} windows in {out['dataset_build_s']:.0f} s")

    runs = []
    network = None
    for threads in [th for th in args.threads for _ in range(args.train_repeats)]:
        torch.manual_seed(args.seed)
        network = build_network(train_ds, spec, weights)
        stamps: list[float] = []
        if args.device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        t = time.perf_counter()
        device = run_trainer(
            network,
            train_ds,
            spec,
            args.epochs,
            threads,
            accelerator,
            lambda _pct, stamps=stamps: stamps.append(time.perf_counter()),
            None,
            args.seed,
        )
        total = time.perf_counter() - t
        stamps = stamps[:-1]  # run_trainer reports 100 % once more after the last batch
        batches = len(stamps)
        windows_per_epoch = min(spec.max_windows_per_epoch or len(train_ds), len(train_ds))
        per_epoch = -(-windows_per_epoch // spec.batch_size)
        epoch_ends = [stamps[min(batches, (e + 1) * per_epoch) - 1] for e in range(args.epochs)]
        epoch_s = [b - a for a, b in zip([t, *epoch_ends], epoch_ends, strict=False)]
        # Samples/s over batches 2..n: the first includes one-off allocation and setup.
        steady = stamps[-1] - stamps[0]
        samples = windows_per_epoch * args.epochs - min(spec.batch_size, windows_per_epoch)
        sps = samples / steady if steady > 0 and batches > 1 else windows_per_epoch * args.epochs / total
        run = {
            "threads": threads,
            "device": device,
            "batches": batches,
            "windows_per_epoch": windows_per_epoch,
            "train_s": total,
            "first_batch_s": stamps[0] - t,
            "epoch_s": epoch_s,
            "samples_per_s": sps,
            "s_per_configured_epoch": ModelSpec().max_windows_per_epoch / sps,
        }
        if args.device == "cuda":
            run["gpu_peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
            run["gpu"] = torch.cuda.get_device_name()
        runs.append(run)
        _note(args.size, f"trained threads={threads}: {sps:.0f} windows/s")
    out["runs"] = runs

    t = time.perf_counter()
    assert network is not None
    val_ds = build_dataset(val_frame, spec, params_out, predict=True)
    validation = validate(network.cpu().eval(), val_ds, spec)
    out["validate_s"] = time.perf_counter() - t
    out["validation"] = {
        "mase_model": validation.mase_model,
        "mase_seasonal_naive": validation.mase_seasonal_naive,
    }
    out["loadavg_start"] = load_start
    out["loadavg_end"] = _loadavg()
    return out


def _spawn(args: argparse.Namespace, size: str, result: Path, threads: list[int]) -> tuple[int, float, int]:
    """Run one child; returns its exit status, wall seconds and peak RSS in KiB."""
    flags = {
        "--child": result,
        "--size": size,
        "--servers": args.servers,
        "--days": args.days,
        "--epochs": args.epochs,
        "--windows": args.windows,
        "--train-repeats": args.train_repeats,
        "--seed": args.seed,
        "--device": args.device,
        "--threads": ",".join(map(str, threads)),
    }
    cmd = [sys.executable, str(Path(__file__).resolve())]
    for flag, value in flags.items():
        cmd += [flag, str(value)]
    t = time.perf_counter()
    proc = subprocess.Popen(cmd)
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, time.perf_counter() - t, usage.ru_maxrss  # KiB on Linux


def _stat(values: list[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values), "n": len(values)}


def _fmt(label: str, values: list[float], unit: str, fmt: str = ".1f", rate: bool = False) -> str:
    s = _stat(values)
    best = f"max {s['max']:{fmt}}" if rate else f"min {s['min']:{fmt}}"
    return f"  {label:<34} {best}  median {s['median']:{fmt}} {unit}  (n={s['n']})"


def summarise(results: list[dict[str, Any]], threads: list[int]) -> tuple[list[str], dict[str, Any]]:
    """Figure lines (min and median over repeats) and the same as a dict."""
    lines: list[str] = []
    summary: dict[str, Any] = {}
    for size in dict.fromkeys(r["size"] for r in results):
        rs = [r for r in results if r["size"] == size]
        spec = rs[0]["spec"]
        lines.append(
            f"{size}: hidden {spec['hidden_size']}, encoder {spec['encoder_steps']}, horizon "
            f"{spec['horizon_steps']}, batch {spec['batch_size']}; {rs[0]['records']:,} records, "
            f"{rs[0]['training_windows_available']:,} training windows, "
            f"{rs[0]['runs'][0]['windows_per_epoch']:,} per epoch as run"
        )
        figs: dict[str, Any] = {}
        for key, label, unit in (
            ("generate_s", "simulate fleet to Arrow", "s"),
            ("framing_s", "framing (to_frame)", "s"),
            ("dataset_build_s", "dataset build (split+copies+TSDS)", "s"),
            ("validate_s", "validation (last horizon)", "s"),
        ):
            vals = [r[key] for r in rs]
            figs[key] = _stat(vals)
            lines.append(_fmt(label, vals, unit))
        rss = [r["peak_rss_mib"] for r in rs]
        figs["peak_rss_mib"] = _stat(rss)
        lines.append(_fmt("peak RSS of the job", rss, "MiB", ".0f"))
        per_threads: dict[str, Any] = {}
        for th in threads:
            runs = [x for r in rs for x in r["runs"] if x["threads"] == th]
            tag = runs[0]["device"] if runs[0]["device"] == "cuda" else f"cpu threads={th}"
            sps = [x["samples_per_s"] for x in runs]
            eps = [x["epoch_s"][0] for x in runs]
            cfg = [x["s_per_configured_epoch"] for x in runs]
            per_threads[tag] = {
                "samples_per_s": _stat(sps),
                "epoch_s_as_run": _stat(eps),
                "s_per_configured_epoch": _stat(cfg),
                "first_batch_s": _stat([x["first_batch_s"] for x in runs]),
            }
            if "gpu_peak_mib" in runs[0]:
                per_threads[tag]["gpu_peak_mib"] = _stat([x["gpu_peak_mib"] for x in runs])
            lines.append(_fmt(f"[{tag}] samples/s", sps, "windows/s", rate=True))
            lines.append(_fmt(f"[{tag}] s/epoch as run", eps, "s"))
            lines.append(_fmt(f"[{tag}] s/epoch at 100k windows", cfg, "s (extrapolated)"))
            if "gpu_peak_mib" in runs[0]:
                gpu = [x["gpu_peak_mib"] for x in runs]
                lines.append(_fmt(f"[{tag}] GPU memory peak", gpu, "MiB", ".0f"))
        if len(threads) > 1:
            tags = list(per_threads)
            base = per_threads[tags[0]]["samples_per_s"]["median"]
            for tag in tags[1:]:
                ratio = per_threads[tag]["samples_per_s"]["median"] / base
                per_threads[f"ratio {tag} / {tags[0]}"] = ratio
                lines.append(f"  ratio samples/s {tag} / {tags[0]}: {ratio:.2f}x (medians)")
        figs["training"] = per_threads
        figs["validation"] = [r["validation"] for r in rs]
        lines.append(
            "  loadavg start/end per repeat: "
            + "; ".join(f"{r['loadavg_start'][0]}/{r['loadavg_end'][0]}" for r in rs)
        )
        summary[size] = figs
    return lines, summary


def main(argv: list[str] | None = None) -> int:
    """Parse flags; run as the parent (spawn and summarise) or as one child job."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--servers", type=int, default=1000)
    p.add_argument("--days", type=float, default=30.0)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument(
        "--windows",
        type=int,
        default=2560,
        help="training windows per epoch (0 = ModelSpec's max_windows_per_epoch)",
    )
    p.add_argument("--sizes", default="default,small", help=f"comma list of {', '.join(SIZES)}")
    p.add_argument("--threads", default="1,2", help="CPU thread counts to compare (ignored on cuda)")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument(
        "--train-repeats",
        type=int,
        default=1,
        help="training runs per thread count inside each job (reuses its dataset)",
    )
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--json", type=Path, help="write all figures here")
    p.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--size", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.threads = [int(x) for x in args.threads.split(",")]
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            print(
                f"bench/train.py: --device cuda needs a CUDA device, and torch {torch.__version__} "
                f"(built for CUDA {torch.version.cuda or 'none'}) sees none here; use --device cpu",
                file=sys.stderr,
            )
            return 2
        args.threads = args.threads[:1]  # threads only bound the CPU; one GPU run per job
    if args.child:
        args.child.write_text(json.dumps(run_child(args)))
        return 0

    sizes = args.sizes.split(",")
    unknown = [s for s in sizes if s not in SIZES]
    if unknown:
        p.error(f"unknown size {', '.join(unknown)}")
    print(f"# bench/train.py on {platform.node()}, {os.cpu_count()} CPUs, loadavg {_loadavg()}")
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="nordiqd-bench-") as tmp:
        for rep in range(args.repeats):
            for size in sizes:
                path = Path(tmp) / f"{size}-{rep}.json"
                # Odd repeats run the thread counts in reverse, so neither always goes first.
                order = args.threads if rep % 2 == 0 else args.threads[::-1]
                rc, wall, rss_kib = _spawn(args, size, path, order)
                if rc != 0:
                    print(f"child {size} repeat {rep} failed with exit status {rc}", file=sys.stderr)
                    return 1
                res = json.loads(path.read_text())
                res["peak_rss_mib"] = rss_kib / 1024
                res["wall_s"] = wall
                results.append(res)
                print(f"# {size} repeat {rep + 1}/{args.repeats} done in {wall:.0f} s", flush=True)
    lines, summary = summarise(results, args.threads)
    print("\n".join(lines))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        meta = {k: v for k, v in vars(args).items() if k not in ("child", "json", "size")}
        report = {"args": meta, "summary": summary, "runs": results}
        args.json.write_text(json.dumps(report, indent=1, default=str))
        print(f"# wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
