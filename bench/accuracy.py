"""Regenerate bench/accuracy.md: the backtest of the TFT against the baselines on real data.

Usage (one command; converts the data first if bench/out/real is empty)::

    .venv/bin/python bench/accuracy.py

What it runs: ``nordiqd.backtest.runner.backtest`` (the code behind ``nordiqd
backtest``) on each bundled real set of ``bench/realdata.py`` (Azure 2017: 100 VMs x
27.8 days; NAB: 11 AWS CPU series of 14-62 days), target ``cpu_user_pct``, and on a
simulated fleet (``sim``: ``SimulatedFleet`` seed 0, ``SIM_SERVERS`` servers x
``SIM_DAYS`` days, the five default targets), 300 s steps, 24 h encoder, 8 h horizon,
quantiles 0.1/0.5/0.9. Beside the TFT and the baselines: the statistical challengers
(AutoETS, AutoTheta, MSTL; ``nordiqd.statistical``) and ``routed`` (per server, target
and bucket the candidate best on the earlier folds), with p10-p90 coverage before and
after conformal calibration on the earlier folds. Rolling origin over the last ``FOLDS``
horizons; the TFT is trained once on everything before the earliest origin with
``SPEC`` / ``EPOCHS`` / ``SEED`` on ``THREADS`` CPU thread(s), then forecasts every fold
through the served path. Same seed and thread count, same numbers.

Sized to finish within 30 minutes on two shared cores (the TFTs of the two real sets
took 4-10 min at load average 1.5-9; the statistical fits are most of the rest): the
TFT is small (hidden size 16) and sees ``max_windows_per_epoch`` x ``EPOCHS`` = 19,200
random training windows per set; two runs gave identical numbers.
Writes ``bench/accuracy.md`` and the full reports to ``bench/out/accuracy/<set>.json``;
``--sets``/``--folds``/``--epochs`` override for experiments (the .md shows the folds
and epochs used).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

_REPO = Path(__file__).resolve().parents[1]
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

DATA = _REPO / "bench" / "out" / "real"
OUT = _REPO / "bench" / "out" / "accuracy"
MD = _REPO / "bench" / "accuracy.md"
COMMAND = ".venv/bin/python bench/accuracy.py"
SETS = ("azure", "nab", "sim")
REAL = ("azure", "nab")
FOLDS = {"azure": 6, "nab": 12, "sim": 6}  # NAB has 11 series: more folds for more windows
SIM_SERVERS = 20
SIM_DAYS = 21
SIM_END = 1_764_547_200  # 2025-12-01T00:00Z: fixed, so every run backtests the same fleet
EPOCHS = 3
SEED = 0
THREADS = 1
SPEC: dict[str, Any] = {
    "targets": ["cpu_user_pct"],
    "quantiles": [0.1, 0.5, 0.9],
    "step_seconds": 300,
    "encoder_steps": 288,
    "horizon_steps": 96,
    "hidden_size": 16,
    "attention_heads": 4,
    "hidden_continuous_size": 8,
    "learning_rate": 3e-3,
    "max_windows_per_epoch": 6400,
}
TFT, SNAIVE, ROUTED = "tft", "seasonal_naive_1d", "routed"
COMBOS = (f"{TFT}+{SNAIVE}", f"{TFT}+naive")


def data_path(name: str) -> Path:
    """Where a set's Parquet file is: the real ones in ``DATA``, the simulated one beside it."""
    return (DATA.parent / "sim" if name == "sim" else DATA) / f"{name}.parquet"


def set_spec(name: str) -> dict[str, Any]:
    """The spec of a set: ``SPEC``; the simulated fleet forecasts all five default targets."""
    if name != "sim":
        return SPEC
    from nordiqd.model.params import DEFAULT_TARGETS

    return {**SPEC, "targets": list(DEFAULT_TARGETS)}


def simulated(path: Path) -> None:
    """Write ``SIM_DAYS`` of the simulated fleet to ``path`` in the buffer's wide format."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from nordiqd.model.params import DEFAULT_TARGETS
    from nordiqd.simulate import SimulatedFleet

    fleet = SimulatedFleet(size=SIM_SERVERS, seed=0, interval_s=float(SPEC["step_seconds"]))
    batch = fleet.generate(SIM_END - SIM_DAYS * 86400, SIM_END)
    table = pa.table(
        {
            "timestamp": pa.array((batch.timestamps * 1000).astype("int64")).cast(
                pa.timestamp("ms", tz="UTC")
            ),
            "server_name": [batch.names[i] for i in batch.server_index],
            "profile": [batch.profiles[i] for i in batch.server_index],
            **{m: batch.metrics[m] for m in DEFAULT_TARGETS},
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="zstd")


def ensure_data(src: Path | None) -> None:
    """Convert the real sets with bench/realdata.py, and simulate ``sim``, when missing."""
    if not data_path("sim").exists():
        simulated(data_path("sim"))
    if all((DATA / f"{name}.parquet").exists() for name in REAL):
        return
    from bench import realdata

    if realdata.main([str(src)] if src else []) != 0:
        raise SystemExit("bench/accuracy.py: bench/realdata.py failed")


def markdown(reports: dict[str, dict[str, Any]], meta: dict[str, Any]) -> str:
    """The whole bench/accuracy.md."""
    from nordiqd.backtest.scoring import ALL

    lines = [
        "# Forecast accuracy on the bundled real data",
        "",
        f"Generated by `{COMMAND}` (see its docstring; about {meta['total_s'] / 60:.0f} min here). "
        "Do not edit by hand.",
        "",
        "Rolling-origin backtest (`nordiqd backtest`): each fold forecasts one 8 h horizon from "
        "everything before it; folds step back one horizon at a time from the end of each series. "
        "The TFT is trained once on what precedes the earliest fold (so no fold sees its future) "
        "and forecasts every fold through the served `WindowForecaster`.",
        "",
        "- **MASE**: mean absolute error of the median, divided by each series' mean absolute "
        "1-day difference over its history before the origin (seasonal-naive scale). Lower is "
        "better; below 1 beats what yesterday's value did in the past.",
        "- **cov**: share of actual values inside the p10-p90 band; 80 % is ideal. **cal**: the "
        "same after conformal calibration (`nordiqd.calibration`: per server x target x bucket, "
        "each edge moved by the conformal quantile of its misses on the earlier folds only; the "
        "earliest fold, and a group with under 20 earlier points, keeps its band).",
        "- **P50 / P90**: pinball loss of the 0.5 / 0.9 quantile over the whole horizon, same scale.",
        f"- `{TFT}+{SNAIVE}`, `{TFT}+naive`: the TFT's quantiles averaged with the baseline's.",
        "- Baselines: `naive` = last value; `seasonal_naive_1d` = the predictor's served fallback "
        "(value 24 h earlier); `seasonal_naive_1w` = value a week earlier, only where a week of "
        "history exists; `linear_trend` = Prometheus `predict_linear` over the last 8 h.",
        "- Statistical challengers (`nordiqd.statistical`, statsmodels: statsforecast needs "
        "pandas<3): `auto_ets` (ETS A/N-Ad/N-A by AICc), `auto_theta` (Theta with its season test, "
        "variant by the last day), `mstl` (daily + weekly MSTL, ETS on the adjusted series), each "
        "fitted on hourly means of the last 15 days and mapped back to 5-minute steps.",
        "- `routed`: per server x target x bucket (0-1h, 1-4h, 4-8h), the forecast of the candidate "
        "(tft, naive, seasonal_naive_1d, auto_ets, auto_theta, mstl) with the smallest mean scaled "
        "error on the earlier folds only (at least 12 points; else the TFT), bucket edges blended "
        "over 5 steps. The earliest fold is therefore always the TFT's.",
        f"- The simulated fleet (`sim`): `SimulatedFleet` seed 0, {SIM_SERVERS} servers x {SIM_DAYS} "
        "days, all five default targets; its table pools the targets.",
        "",
        f"Settings: `{json.dumps(meta['spec'])}`, epochs {meta['epochs']}, seed {meta['seed']}, "
        f"{meta['threads']} torch thread(s).",
        f"Machine: {meta['machine']}; load average {meta['load_start']:.1f} at start, "
        f"{meta['load_end']:.1f} at the end (shared).",
        "",
    ]
    for name, rep in reports.items():
        buckets = [b["name"] for b in rep["buckets"]] + [ALL]
        targets = rep["spec"]["targets"]
        target = targets[0] if len(targets) == 1 else ALL
        d = rep["data"]
        fits = (rep.get("tft") or {}).get("fits", [])
        fit_s = sum(f["seconds"] for f in fits)
        lines += [
            f"## {name}",
            "",
            f"{d['servers']} servers, {d['steps_per_server']['min']}-{d['steps_per_server']['max']} "
            f"steps each, {d['start'][:10]} .. {d['end'][:10]}; {len(rep['folds'])} folds "
            f"(last {len(rep['folds']) * 8} h of every series). Run time "
            f"{rep['timings']['total_s']:.0f} s, of which TFT training {fit_s:.0f} s "
            f"({fits[0]['device'] if fits else '-'}); targets {', '.join(targets)}.",
            "",
            "| model | " + " | ".join(f"MASE {b}" for b in buckets) + " | "
            + " | ".join(f"cov {b}" for b in buckets) + " | "
            + " | ".join(f"cal {b}" for b in buckets) + " | P50 | P90 | windows |",
            "|---|" + "---:|" * (3 * len(buckets) + 3),
        ]  # fmt: skip
        scored = [m["targets"][target] for m in rep["models"].values()]
        best = {
            b: min((c[b]["mase"] for c in scored if c[b]["mase"] is not None), default=None) for b in buckets
        }
        for row in rep["ranking"]:
            cells = rep["models"][row["model"]]["targets"][target]
            mase = [_num(cells[b]["mase"], bold=cells[b]["mase"] == best[b]) for b in buckets]
            cov = [_pct(cells[b]["coverage"]) for b in buckets]
            cal = [_pct(cells[b].get("coverage_calibrated")) for b in buckets]
            whole = cells[ALL]
            lines.append(
                f"| {row['model']} | " + " | ".join(mase + cov + cal)
                + f" | {_num(whole['p50_loss'])} | {_num(whole['p90_loss'])} | {whole['windows']} |"
            )  # fmt: skip
        lines += ["", *verdict(rep, target, buckets), ""]
    return "\n".join(lines).rstrip() + "\n"


def verdict(rep: dict[str, Any], target: str, buckets: list[str]) -> list[str]:
    """Where the TFT (and the ensemble) beat seasonal naive, from the numbers."""
    models = rep["models"]
    if TFT not in models:
        return []
    out = []
    for model in [m for m in (TFT, f"{TFT}+{SNAIVE}", f"{TFT}+naive") if m in models]:
        ratios = []
        for b in buckets:
            mine, base = (
                models[model]["targets"][target][b]["mase"],
                models[SNAIVE]["targets"][target][b]["mase"],
            )
            ratios.append((b, mine / base if mine is not None and base else None))
        wins = [b for b, r in ratios if r is not None and r < 1]
        shown = ", ".join(f"{b} {r:.2f}" for b, r in ratios if r is not None)
        out.append(
            f"- `{model}` / `{SNAIVE}` MASE: {shown} — better in {len(wins)} of {len(ratios)} "
            f"({', '.join(wins) or 'none'})."
        )
    best = rep["ranking"][0]["model"]
    out.append(f"- Best whole-horizon MASE: `{best}`.")
    return out + routed_verdict(models, target, buckets)


def routed_verdict(models: dict[str, Any], target: str, buckets: list[str]) -> list[str]:
    """The issue-18 acceptance of ``routed``: MASE <= every single model's in the whole
    horizon and in >= 2 of 3 buckets; calibrated p10-p90 coverage within 75-85 %."""
    from nordiqd.backtest.scoring import ALL

    if ROUTED not in models:
        return []
    mine = models[ROUTED]["targets"][target]
    singles = [m for m in models if m not in (ROUTED, *COMBOS)]
    out = []
    for b in buckets:
        rivals = [(m, models[m]["targets"][target][b]["mase"]) for m in singles]
        rivals = [(m, v) for m, v in rivals if v is not None]
        best_m, best_v = min(rivals, key=lambda r: r[1])
        ok = mine[b]["mase"] is not None and mine[b]["mase"] <= best_v
        out.append((b, ok, best_m, best_v))
    whole_ok = out[-1][1]
    bucket_wins = sum(ok for _, ok, _, _ in out[:-1])
    shown = "; ".join(
        f"{b} {mine[b]['mase']:.3f} vs `{m}` {v:.3f} ({(mine[b]['mase'] / v - 1) * 100:+.1f} %)"
        for b, _, m, v in out
    )
    cal = mine[ALL].get("coverage_calibrated")
    cov_ok = cal is not None and 0.75 <= cal <= 0.85
    return [
        f"- `routed` vs the best single model: {shown}. MASE <= every single model's: whole horizon "
        f"{'yes' if whole_ok else 'NO'}, buckets {bucket_wins} of {len(out) - 1} "
        f"({'holds' if whole_ok and bucket_wins >= 2 else 'does not hold'}).",
        f"- `routed` p10-p90 coverage {_pct(mine[ALL]['coverage'])} as forecast, {_pct(cal)} calibrated on "
        f"the earlier folds ({'within' if cov_ok else 'OUTSIDE'} 75-85 %).",
    ]


def _num(value: float | None, bold: bool = False) -> str:
    if value is None:
        return "-"
    return f"**{value:.3f}**" if bold else f"{value:.3f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def main(argv: list[str] | None = None) -> int:
    """Backtest every set; write the JSON reports and bench/accuracy.md."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--src", type=Path, help="real data folder for bench/realdata.py (its default if omitted)")
    p.add_argument("--sets", default=",".join(SETS))
    p.add_argument("--folds", type=int, help="override FOLDS for every set")
    p.add_argument("--epochs", type=int, default=EPOCHS)
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument("--threads", type=int, default=THREADS)
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    p.add_argument("--md", type=Path, default=MD, help=f"default {MD.relative_to(_REPO)}")
    p.add_argument("--micro-batch", type=int, help="spec micro_batch_size (128: whole batches)")
    p.add_argument(
        "--tft-only", action="store_true", help="TFT and baselines only: no challengers, routing or .md"
    )
    p.add_argument("--out", type=Path, default=OUT, help=f"JSON folder, default {OUT.relative_to(_REPO)}")
    p.add_argument(
        "--windows", type=int, help=f"training windows per epoch (default {SPEC['max_windows_per_epoch']:,})"
    )
    p.add_argument(
        "--hidden",
        type=int,
        help=f"TFT hidden size, continuous inputs at half of it (default {SPEC['hidden_size']})",
    )
    args = p.parse_args(argv)
    extra = {} if args.micro_batch is None else {"micro_batch_size": args.micro_batch}
    if args.windows is not None:
        extra["max_windows_per_epoch"] = args.windows
    if args.hidden is not None:
        extra |= {"hidden_size": args.hidden, "hidden_continuous_size": max(1, args.hidden // 2)}
    import torch

    from nordiqd.backtest.report import table
    from nordiqd.backtest.runner import Options, backtest
    from nordiqd.model.params import ModelSpec

    ensure_data(args.src)
    started, load_start = time.perf_counter(), os.getloadavg()[0]
    args.out.mkdir(parents=True, exist_ok=True)
    reports: dict[str, dict[str, Any]] = {}
    for name in args.sets.split(","):
        options = Options(
            data=data_path(name),
            spec=ModelSpec.from_dict({**set_spec(name), **extra}),
            train=True,
            folds=args.folds or FOLDS[name],
            epochs=args.epochs,
            seed=args.seed,
            threads=args.threads,
            device=args.device,
            statistical=not args.tft_only,
            route=not args.tft_only,
        )
        set_load = os.getloadavg()[0]
        rep = backtest(options)
        rep["data"]["path"] = str(options.data.relative_to(_REPO))
        rep["load"] = {"start": set_load, "end": os.getloadavg()[0]}
        reports[name] = rep
        (args.out / f"{name}.json").write_text(json.dumps(rep, indent=1, allow_nan=False) + "\n")
        print(f"== {name} ({rep['timings']['total_s']:.0f} s)\n{table(rep)}", flush=True)
    if args.tft_only:
        print(f"wrote {args.out}/*.json (no .md: --tft-only) in {time.perf_counter() - started:.0f} s")
        return 0
    meta = {
        "spec": SPEC,
        "sim_targets": set_spec("sim")["targets"],
        "epochs": args.epochs,
        "seed": args.seed,
        "threads": args.threads,
        "machine": f"{os.cpu_count()} CPUs, {platform.machine()}, torch {torch.__version__}, {args.device}",
        "load_start": load_start,
        "load_end": os.getloadavg()[0],
        "total_s": time.perf_counter() - started,
    }
    args.md.write_text(markdown(reports, meta))
    print(f"wrote {args.md} and {args.out}/*.json in {meta['total_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
