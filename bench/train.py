"""Training throughput of the TFT on a simulated fleet: samples/s, s/epoch, peak memory.

Usage::

    .venv/bin/python bench/train.py                       # 1,000 servers x 30 days, both sizes
    .venv/bin/python bench/train.py --servers 50 --days 3 --windows 1280 --repeats 1
    .venv/bin/python bench/train.py --device cuda --windows 0   # full epochs on a GPU
    .venv/bin/python bench/train.py --ray 127.0.0.1:6390 --workers 1,2  # on Ray (bench/train_ray.py)

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


def _peak_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _rss_mib() -> float:
    with open("/proc/self/status") as status:
        line = next(x for x in status if x.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def _note(size: str, text: str) -> None:
    print(f"#   {size}: {text} (loadavg {_loadavg()[0]}) rss {_rss_mib():.0f}", file=sys.stderr, flush=True)


def generate_table(args: argparse.Namespace) -> dict[str, Any]:
    """Simulate the fleet and write it as the buffer would hold it (Parquet), for the jobs.

    Block by block (``SimulatedFleet.batches``), so a 10,000-server month (86 M records)
    never sits in this process at once: the same records as one ``generate``.
    """
    import pyarrow.parquet as pq

    from nordiqd.simulate import SimulatedFleet

    t = time.perf_counter()
    fleet = SimulatedFleet(size=args.servers, seed=args.seed, interval_s=300)
    records = 0
    writer: pq.ParquetWriter | None = None
    for block in fleet.batches(_T0, _T0 + int(args.days * _DAY_S), max_records=4_000_000):
        part = block.to_arrow()
        writer = writer or pq.ParquetWriter(args.generate, part.schema)
        writer.write_table(part)
        records += part.num_rows
    if writer is not None:
        writer.close()
    return {"records": records, "generate_s": time.perf_counter() - t}


def _loader_rate(batches: Any, spec: Any, seed: int, windows: int) -> tuple[float, float]:
    """Windows per second and per CPU-second of the training loader alone (no network)."""
    from nordiqd.model.trainer import train_loader

    spec_n = type(spec)(**{**spec.to_dict(), "max_windows_per_epoch": min(windows, len(batches))})
    loader = train_loader(batches, spec_n, seed, spec.batch_size, "cpu")
    t, cpu = time.perf_counter(), time.process_time()
    count = sum(len(x["encoder_lengths"]) for x, _ in loader)
    return count / (time.perf_counter() - t), count / (time.process_time() - cpu)


def _prepare(args: argparse.Namespace, table: Any, spec: Any, out: dict[str, Any]) -> tuple[Any, ...]:
    """Framing and dataset build of one pipeline, timed into ``out``.

    Returns the training batches, the validation batches, the dataset a network is built
    from, the loss weights and the dataset parameters.
    """
    from nordiqd.model.dataset import (
        build_dataset,
        fitted_dataset,
        hide_names,
        loss_weights,
        model_parameters,
        split_validation,
    )
    from nordiqd.model.frames import to_frame
    from nordiqd.model.network import build_network
    from nordiqd.model.reference import DatasetBatches
    from nordiqd.model.series import fleet_series
    from nordiqd.model.windows import WindowBatches, training_windows, validation_windows

    t = time.perf_counter()
    if args.pipeline == "dataset":
        frame = to_frame(table, spec)
        out["rows_framed"] = len(frame)
    else:
        series = fleet_series(table, spec)
        out["rows_framed"] = len(series.values)
    out["framing_s"] = time.perf_counter() - t
    _note(args.size, f"framed {out['rows_framed']:,} rows in {out['framing_s']:.0f} s")

    t = time.perf_counter()
    if args.pipeline == "dataset":
        train_frame, val_frame = split_validation(frame, spec)
        train_frame = hide_names(train_frame, spec.unseen_share, args.seed)
        prototype = build_dataset(train_frame, spec)
        weights = loss_weights(train_frame, spec)
        params = model_parameters(prototype.get_parameters())
        train = DatasetBatches(prototype)
        val = DatasetBatches(build_dataset(val_frame, spec, params, predict=True))
    else:
        index = training_windows(series, spec, args.seed)
        prototype, weights = fitted_dataset(series, index, spec)
        params = model_parameters(prototype.get_parameters())
        hp = build_network(prototype, spec, weights).hparams
        train = WindowBatches(series, index, spec, params, hp["x_reals"], hp["x_categoricals"])
        val = WindowBatches(
            series, validation_windows(series, spec), spec, params, hp["x_reals"], hp["x_categoricals"]
        )
    out["dataset_build_s"] = time.perf_counter() - t
    out["training_windows_available"] = len(train)
    _note(args.size, f"built {len(train):,} windows in {out['dataset_build_s']:.1f} s")
    return train, val, prototype, weights


def run_child(args: argparse.Namespace) -> dict[str, Any]:
    """One job: read, frame, build, loader alone, train per thread count, validate; figures as a dict."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import torch

    from nordiqd.model.fitting import validate
    from nordiqd.model.network import build_network
    from nordiqd.model.params import ModelSpec
    from nordiqd.model.trainer import batch_size_for, micro_batches, run_trainer
    from nordiqd.training.memory import release_freed

    load_start = _loadavg()
    spec = ModelSpec(**SIZES[args.size])
    if args.windows:
        spec = ModelSpec(**{**spec.to_dict(), "max_windows_per_epoch": args.windows})
    if args.micro_batch:
        spec = ModelSpec(**{**spec.to_dict(), "micro_batch_size": args.micro_batch})
    accelerator = "gpu" if args.device == "cuda" else "cpu"
    out: dict[str, Any] = {"size": args.size, "spec": spec.to_dict(), "device": args.device}
    out["pipeline"] = args.pipeline

    t = time.perf_counter()
    # What a training job reads from the buffer: the time, names and targets.
    columns = ["timestamp", "server_name", "profile", *spec.targets]
    # Names dictionary-encoded, as the job reads them (``read_window(dictionary_names=True)``);
    # the dataset pipeline took them as strings.
    names = ["server_name", "profile"] if args.pipeline == "arrays" else None
    table = pq.read_table(args.table, columns=columns, read_dictionary=names)
    out["records"] = table.num_rows
    out["read_s"] = time.perf_counter() - t
    # The peak so far at the end of each phase: which phase sets the job's peak.
    out["peak_rss_mib_by_phase"] = peaks = {"read": _peak_mib()}
    train, val, prototype, weights = _prepare(args, table, spec, out)
    # Let go once framed, as a training job does (``training/job.py``): training needs
    # only the series, and the gate reads its rows again.
    del table
    release_freed()  # also the cycle through which the network's init still holds it
    pa.default_memory_pool().release_unused()
    peaks["framing and dataset build"] = _peak_mib()

    torch.set_num_threads(args.threads[0])
    out["loader_windows_per_s"], out["loader_windows_per_cpu_s"] = _loader_rate(
        train, spec, args.seed, args.loader_windows
    )
    peaks["loader alone"] = _peak_mib()
    out["rss_mib_before_training"] = _rss_mib()
    _note(
        args.size,
        f"loader alone: {out['loader_windows_per_s']:,.0f} windows/s "
        f"({out['loader_windows_per_cpu_s']:,.0f} per CPU-second)",
    )

    runs = []
    network = None
    for threads in [th for th in args.threads for _ in range(args.train_repeats)]:
        torch.manual_seed(args.seed)
        network = build_network(prototype, spec, weights)
        stamps: list[float] = []
        notes: list[str] = []
        if args.device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        batch = batch_size_for(spec, accelerator)
        parts = micro_batches(spec, batch, accelerator)
        t, cpu = time.perf_counter(), time.process_time()
        device = run_trainer(
            network,
            train,
            spec,
            args.epochs,
            threads,
            accelerator,
            lambda _pct, stamps=stamps: stamps.append(time.perf_counter()),
            None,
            args.seed,
            notes,
        )
        total = time.perf_counter() - t
        cpu = time.process_time() - cpu
        stamps = stamps[:-1]  # run_trainer reports 100 % once more after the last batch
        batches = len(stamps)  # micro-batches: progress comes after each
        windows_per_epoch = min(spec.max_windows_per_epoch or len(train), len(train))
        per_epoch = batches // args.epochs
        epoch_ends = [stamps[min(batches, (e + 1) * per_epoch) - 1] for e in range(args.epochs)]
        epoch_s = [b - a for a, b in zip([t, *epoch_ends], epoch_ends, strict=False)]
        # Samples/s over micro-batches 2..n: the first includes one-off allocation and setup.
        steady = stamps[-1] - stamps[0]
        samples = windows_per_epoch * args.epochs - min(-(-batch // parts), windows_per_epoch)
        sps = samples / steady if steady > 0 and batches > 1 else windows_per_epoch * args.epochs / total
        run = {
            "threads": threads,
            "device": device,
            "batches": batches,
            "batch_size": batch,
            "micro_batches": parts,
            "windows_per_epoch": windows_per_epoch,
            "train_s": total,
            "first_batch_s": stamps[0] - t,
            "epoch_s": epoch_s,
            "samples_per_s": sps,
            # Under CPU contention wall time says how much CPU the job got; this does not.
            "samples_per_cpu_s": windows_per_epoch * args.epochs / cpu,
            "s_per_configured_epoch": ModelSpec().max_windows_per_epoch / sps,
            "notes": notes,
        }
        if args.device == "cuda":
            run["gpu_peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
            run["gpu"] = torch.cuda.get_device_name()
        runs.append(run)
        _note(args.size, f"trained threads={threads}: {sps:.0f} windows/s {' '.join(notes)}")
    out["runs"] = runs
    peaks["training"] = _peak_mib()

    t = time.perf_counter()
    assert network is not None
    validation = validate(network.cpu().eval(), val, spec)
    out["validate_s"] = time.perf_counter() - t
    peaks["validation"] = _peak_mib()
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
        "--pipeline": args.pipeline,
        "--loader-windows": args.loader_windows,
        "--micro-batch": args.micro_batch,
        "--table": args.table,
    }
    cmd = [sys.executable, str(Path(__file__).resolve())]
    for flag, value in flags.items():
        cmd += [flag, str(value)]
    t = time.perf_counter()
    proc = subprocess.Popen(cmd)
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, time.perf_counter() - t, usage.ru_maxrss  # KiB on Linux


def _generate(args: argparse.Namespace) -> dict[str, Any]:
    """Simulate the fleet once, in its own interpreter, into ``args.table``."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--generate", str(args.table)]
    cmd += ["--servers", str(args.servers), "--days", str(args.days), "--seed", str(args.seed)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE)
    _pid, status, usage = os.wait4(proc.pid, 0)
    assert proc.stdout is not None
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit("simulating the fleet failed")
    made: dict[str, Any] = json.loads(proc.stdout.read())
    made["peak_rss_mib"] = usage.ru_maxrss / 1024
    return made


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
            ("generate_s", "simulate fleet (own process)", "s"),
            ("read_s", "read the table (Parquet)", "s"),
            ("framing_s", f"framing ({rs[0]['pipeline']})", "s"),
            ("dataset_build_s", "dataset build (split+copies+index)", "s"),
            ("validate_s", "validation (last horizon)", "s"),
        ):
            vals = [r[key] for r in rs]
            figs[key] = _stat(vals)
            lines.append(_fmt(label, vals, unit))
        loader = [r["loader_windows_per_s"] for r in rs]
        figs["loader_windows_per_s"] = _stat(loader)
        lines.append(_fmt("loader alone (no network)", loader, "windows/s", ".0f", rate=True))
        loader_cpu = [r["loader_windows_per_cpu_s"] for r in rs]
        figs["loader_windows_per_cpu_s"] = _stat(loader_cpu)
        lines.append(_fmt("loader alone, per CPU-second", loader_cpu, "windows/CPU-s", ".0f", rate=True))
        rss = [r["peak_rss_mib"] for r in rs]
        figs["peak_rss_mib"] = _stat(rss)
        lines.append(_fmt("peak RSS of the job", rss, "MiB", ".0f"))
        lines.append(
            f"  (simulating the fleet, its own process: peak RSS {rs[0]['generate_peak_rss_mib']:.0f} MiB)"
        )
        per_threads: dict[str, Any] = {}
        for th in threads:
            runs = [x for r in rs for x in r["runs"] if x["threads"] == th]
            tag = runs[0]["device"] if runs[0]["device"] == "cuda" else f"cpu threads={th}"
            sps = [x["samples_per_s"] for x in runs]
            sps_cpu = [x["samples_per_cpu_s"] for x in runs]
            eps = [x["epoch_s"][0] for x in runs]
            cfg = [x["s_per_configured_epoch"] for x in runs]
            per_threads[tag] = {
                "samples_per_s": _stat(sps),
                "samples_per_cpu_s": _stat(sps_cpu),
                "epoch_s_as_run": _stat(eps),
                "s_per_configured_epoch": _stat(cfg),
                "first_batch_s": _stat([x["first_batch_s"] for x in runs]),
            }
            if "gpu_peak_mib" in runs[0]:
                per_threads[tag]["gpu_peak_mib"] = _stat([x["gpu_peak_mib"] for x in runs])
            lines.append(_fmt(f"[{tag}] samples/s", sps, "windows/s", rate=True))
            lines.append(_fmt(f"[{tag}] samples per CPU-second", sps_cpu, "windows/CPU-s", rate=True))
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
    if "--ray" in (sys.argv[1:] if argv is None else argv):  # on a Ray cluster: bench/train_ray.py
        from bench.train_ray import main as ray_main

        return ray_main(argv)
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
    p.add_argument(
        "--pipeline",
        choices=("arrays", "dataset"),
        default="arrays",
        help="training batches: arrays (windows.WindowBatches, what fit uses) or dataset "
        "(TimeSeriesDataSet's __getitem__ and collate, the reference)",
    )
    p.add_argument(
        "--micro-batch", type=int, default=0, help="[model] micro_batch_size for the CPU (0: the default)"
    )
    p.add_argument("--loader-windows", type=int, default=2560, help="windows drawn to time the loader alone")
    p.add_argument(
        "--fleet", type=Path, help="keep the simulated fleet in this Parquet file; reuse it if it exists"
    )
    p.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--table", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--generate", type=Path, help=argparse.SUPPRESS)
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
    if args.generate:
        print(json.dumps(generate_table(args)))
        return 0
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
        args.table = args.fleet or Path(tmp) / "fleet.parquet"
        if args.fleet is not None and args.fleet.exists():
            import pyarrow.parquet as pq

            made = {"generate_s": 0.0, "peak_rss_mib": 0.0, "records": pq.read_metadata(args.fleet).num_rows}
        else:
            made = _generate(args)
        print(f"# simulated {made['records']:,} records in {made['generate_s']:.0f} s", flush=True)
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
                res["generate_s"] = made["generate_s"]
                res["generate_peak_rss_mib"] = made["peak_rss_mib"]
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
