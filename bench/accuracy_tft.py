"""Validation MASE of the TFT against seasonal naive on the bundled real CPU traces.

Usage::

    .venv/bin/python bench/realdata.py                  # once: writes bench/out/real/*.parquet
    .venv/bin/python bench/accuracy_tft.py              # the base setting on both sets
    .venv/bin/python bench/accuracy_tft.py --settings base,wide,fast_lr,long_encoder

For each set (``azure``, ``nab``) and each named setting it runs ``fitting.fit`` exactly as
the trainer does (targets ``[cpu_user_pct]``, quantiles 0.1/0.5/0.9, 300 s step,
288-step encoder, 96-step horizon unless the setting says otherwise) on the CPU and
reads ``trained.validation``: the MASE of the model's median and of seasonal naive (a
day back) on the last horizon of every series, scaled by the one-step naive error of
those windows' histories, pooled over the series (``nordiqd.model.baseline.mase``).
That is one window per series: 100 for Azure, 11 for NAB, so NAB's figures move a lot
with the seed. A ratio above 1 means the TFT loses. For context it also scores
last-value naive on the same windows ("MASE naive").

The spec has the one target ``cpu_user_pct`` and trains as it is (``fitting.fit`` builds a
single-output network for one target since commit 2af3071; before that this script
trained a copy of the series as a second target to get round a ``TypeError``).

Prints one table row per (set, setting) and writes everything, with run times and the
load average, to ``--json`` (default ``bench/out/accuracy_tft.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

_REPO = Path(__file__).resolve().parents[1]
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

import accuracy  # noqa: E402  (bench/accuracy.py, next to this script)

DATA = _REPO / "bench" / "out" / "real"
# Every setting starts from BASE, the accuracy bench's model and epochs; an entry
# overrides ModelSpec fields and "epochs". It is sized so both sets train in about 10
# minutes on 2 shared cores.
BASE: dict[str, Any] = {**accuracy.SPEC, "epochs": accuracy.EPOCHS}
SETTINGS: dict[str, dict[str, Any]] = {
    "base": {},
    "wide": {"hidden_size": 32, "hidden_continuous_size": 16},
    "fast_lr": {"learning_rate": 1e-2},
    "long_train": {"epochs": 6},
    "long_encoder": {"encoder_steps": 576},
    "short_encoder": {"encoder_steps": 96},
}


def baselines(table: Any, spec: Any) -> dict[str, float]:
    """MASE of last-value naive and seasonal naive on the windows ``fit`` validates on.

    Those are the last encoder + horizon steps of every series ``to_frame`` makes; the
    seasonal-naive figure should equal ``trained.validation.mase_seasonal_naive``.
    """
    import numpy as np

    from nordiqd.model.baseline import last_finite, mase, seasonal_naive
    from nordiqd.model.frames import to_frame

    frame = to_frame(table, spec)
    target = spec.targets[0]
    span = spec.encoder_steps + spec.horizon_steps
    windows = np.stack([g[target].to_numpy()[-span:] for _, g in frame.groupby("series", sort=False)])
    hist, truth = windows[:, : spec.encoder_steps], windows[:, spec.encoder_steps :]
    last = np.repeat(last_finite(hist)[:, None], spec.horizon_steps, axis=1)
    return {
        "mase_naive_last": mase(truth, last, hist),
        "mase_seasonal_naive_check": mase(
            truth, seasonal_naive(hist, spec.horizon_steps, spec.season_steps), hist
        ),
    }


def run_one(table: Any, setting: dict[str, Any], threads: int, seed: int, device: str) -> dict[str, Any]:
    """Fit once and return the validation figures."""
    from nordiqd.model import fitting
    from nordiqd.model.params import ModelSpec

    fields = {**BASE, **setting}
    epochs = int(fields.pop("epochs"))
    spec = ModelSpec.from_dict(fields)
    t = time.perf_counter()
    trained = fitting.fit(
        table,
        spec,
        epochs=epochs,
        threads=threads,
        accelerator="gpu" if device == "cuda" else "cpu",
        seed=seed,
    )
    v = trained.validation
    return {
        **baselines(table, spec),
        "spec": spec.to_dict(),
        "epochs": epochs,
        "mase_model": v.mase_model,
        "mase_seasonal_naive": v.mase_seasonal_naive,
        "ratio": v.mase_model / v.mase_seasonal_naive,
        "validation_loss": v.loss,
        "validation_windows": v.windows,
        "servers": trained.servers,
        "records": trained.records,
        "seconds": time.perf_counter() - t,
        "device": trained.device,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the settings on the sets; print the table and write the JSON report."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=DATA, help="folder of bench/realdata.py's output")
    p.add_argument("--sets", default="azure,nab")
    p.add_argument("--settings", default="base", help=f"comma list of {', '.join(SETTINGS)}")
    p.add_argument("--threads", type=int, default=1, help="CPU threads for torch")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--windows", type=int, help="override max_windows_per_epoch of every setting")
    p.add_argument("--epochs", type=int, help="override epochs of every setting")
    p.add_argument("--json", type=Path, default=_REPO / "bench" / "out" / "accuracy_tft.json")
    args = p.parse_args(argv)
    import pyarrow.parquet as pq

    settings = args.settings.split(",")
    unknown = [s for s in settings if s not in SETTINGS]
    if unknown:
        p.error(f"unknown setting {', '.join(unknown)}")
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            print("bench/accuracy_tft.py: --device cuda needs a CUDA device; none here", file=sys.stderr)
            return 2
    overrides = {k: v for k, v in (("max_windows_per_epoch", args.windows), ("epochs", args.epochs)) if v}
    started = time.perf_counter()
    load_start = os.getloadavg()
    rows: list[dict[str, Any]] = []
    print(
        f"{'set':<6} {'setting':<14} {'MASE tft':>9} {'MASE snaive':>11} {'ratio':>6} {'MASE naive':>10} "
        f"{'windows':>7} {'s':>6}"
    )
    for name in args.sets.split(","):
        path = args.data / f"{name}.parquet"
        if not path.exists():
            print(f"bench/accuracy_tft.py: {path} is missing; run bench/realdata.py first", file=sys.stderr)
            return 2
        table = pq.read_table(path)
        for setting in settings:
            row = run_one(
                table,
                {**SETTINGS[setting], **overrides},
                args.threads,
                args.seed,
                args.device,
            )
            row.update(set=name, setting=setting)
            rows.append(row)
            print(
                f"{name:<6} {setting:<14} {row['mase_model']:9.3f} {row['mase_seasonal_naive']:11.3f} "
                f"{row['ratio']:6.2f} {row['mase_naive_last']:10.3f} "
                f"{row['validation_windows']:7d} {row['seconds']:6.0f}",
                flush=True,
            )
    total = time.perf_counter() - started
    print(f"total {total:.0f} s; loadavg start {load_start[0]:.2f}, end {os.getloadavg()[0]:.2f}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "base": BASE,
        "settings": {s: SETTINGS[s] for s in settings},
        "overrides": overrides,
        "threads": args.threads,
        "seed": args.seed,
        "rows": rows,
        "total_s": total,
        "loadavg_start": load_start,
        "loadavg_end": os.getloadavg(),
    }
    args.json.write_text(json.dumps(report, indent=1))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
