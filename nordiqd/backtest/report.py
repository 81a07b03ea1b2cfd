"""The backtest's outputs: the JSON report, the stdout table and an optional PNG.

The JSON report (``FORMAT`` 1) holds ``data`` (what was read), ``spec``, ``folds``,
``buckets``, ``models`` (per model: per target and bucket ``mase``, ``p50_loss``,
``p90_loss``, ``coverage``, ``coverage_calibrated`` (the band calibrated on the earlier
folds), ``windows``; targets pooled under ``all`` when there are several), ``ranking``
(models by whole-horizon MASE, pooled over targets; ``routed`` among them), ``tft`` (how
the TFT was obtained, and each fit) and ``timings``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from nordiqd.backtest.data import Grid
from nordiqd.backtest.engine import Outcome
from nordiqd.backtest.folds import Bucket, Fold
from nordiqd.backtest.scoring import ALL
from nordiqd.model.params import ModelSpec

FORMAT = 1


def _iso(epoch_s: int) -> str:
    return datetime.fromtimestamp(int(epoch_s), UTC).isoformat().replace("+00:00", "Z")


def data_summary(grid: Grid, path: str, rows: int) -> dict[str, Any]:
    """Servers, steps per server and time range of the grid."""
    steps = grid.length - grid.first_index
    first = grid.last_bucket - steps * grid.step_seconds + grid.step_seconds
    return {
        "path": path,
        "rows": rows,
        "servers": len(grid.servers),
        "profiles": sorted(set(grid.profiles)),
        "targets": list(grid.targets),
        "step_seconds": grid.step_seconds,
        "steps_per_server": {
            "min": int(steps.min()),
            "median": float(np.median(steps)),
            "max": int(steps.max()),
        },
        "start": _iso(first.min()),
        "end": _iso(grid.last_bucket.max()),
        "missing_share": float(
            np.mean([np.isnan(grid.values[i, f:]).mean() for i, f in enumerate(grid.first_index)])
        ),
    }


def build(
    *,
    data: dict[str, Any],
    spec: ModelSpec,
    folds: Sequence[Fold],
    buckets: Sequence[Bucket],
    outcome: Outcome,
    tft: dict[str, Any] | None,
    timings: dict[str, float],
    seed: int,
) -> dict[str, Any]:
    """The JSON report (module docstring)."""
    models = {
        name: {
            "seconds": round(outcome.seconds.get(name, 0.0), 3),
            "targets": err.summary(spec.targets, buckets),
        }
        for name, err in outcome.errors.items()
    }
    interval = next(iter(outcome.errors.values())).interval if outcome.errors else (0.1, 0.9)
    return {
        "format": FORMAT,
        "created_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "seed": seed,
        "data": data,
        "spec": spec.to_dict(),
        "scale": f"mean absolute {spec.season_steps}-step (1 day) difference of each series' history",
        "coverage_interval": list(interval),
        "folds": [
            {
                "number": f.number,
                "origin_steps_before_end": f.number * spec.horizon_steps,
                "servers": int(f.servers.size),
            }
            for f in folds
        ],
        "buckets": [{"name": b.name, "first_step": b.start, "last_step": b.stop - 1} for b in buckets],
        "models": models,
        "ranking": ranking(models, spec.targets),
        "tft": tft,
        "timings": {k: round(v, 3) for k, v in timings.items()},
    }


def _pooled(models: dict[str, Any], name: str, targets: Sequence[str]) -> dict[str, Any]:
    per_target = models[name]["targets"]
    return per_target.get(ALL) if len(targets) > 1 else per_target.get(targets[0], {})  # type: ignore[no-any-return]


def ranking(models: dict[str, Any], targets: Sequence[str]) -> list[dict[str, Any]]:
    """Models by whole-horizon MASE (targets pooled), best first; unscored models last."""
    rows = []
    for name in models:
        cell = (_pooled(models, name, targets) or {}).get(ALL, {})
        rows.append({"model": name, "mase": cell.get("mase"), "windows": cell.get("windows", 0)})
    return sorted(rows, key=lambda r: (r["mase"] is None, r["mase"] if r["mase"] is not None else 0.0))


def _fmt(value: float | None, pct: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{100 * value:.0f}%" if pct else f"{value:.3f}"


def table(report: dict[str, Any]) -> str:
    """Per target: each model's MASE and coverage per bucket, best MASE first."""
    buckets = [b["name"] for b in report["buckets"]] + [ALL]
    lo, hi = report["coverage_interval"]
    order = [r["model"] for r in report["ranking"]]
    targets = list(report["spec"]["targets"]) + ([ALL] if len(report["spec"]["targets"]) > 1 else [])
    width = max(len(m) for m in order) + 2
    lines = []
    for target in targets:
        lines.append(
            f"{target}: MASE (1-day seasonal-naive scale; < 1 beats it in-sample) | "
            f"coverage of p{100 * lo:g}-p{100 * hi:g} (ideal {100 * (hi - lo):.0f}%) | "
            "the same after conformal calibration on the earlier folds"
        )
        head = "".join(f"{b:>8}" for b in buckets)
        cov_head = "".join(f"{b:>7}" for b in buckets)
        lines.append(
            f"{'model':<{width}}{head}  |{cov_head}  |{cov_head}  {'P50':>6} {'P90':>6} {'windows':>8}"
        )
        for name in order:
            cells = report["models"][name]["targets"].get(target, {})
            mase = "".join(f"{_fmt(cells.get(b, {}).get('mase')):>8}" for b in buckets)
            cov = "".join(f"{_fmt(cells.get(b, {}).get('coverage'), pct=True):>7}" for b in buckets)
            cal = "".join(
                f"{_fmt(cells.get(b, {}).get('coverage_calibrated'), pct=True):>7}" for b in buckets
            )
            whole = cells.get(ALL, {})
            lines.append(
                f"{name:<{width}}{mase}  |{cov}  |{cal}  {_fmt(whole.get('p50_loss')):>6} "
                f"{_fmt(whole.get('p90_loss')):>6} {whole.get('windows', 0):>8}"
            )
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def plot(outcome: Outcome, spec: ModelSpec, path: Path, server: int = 0) -> bool:
    """One server's most recent fold: a day of history, the actuals and each model's
    median (and the TFT's band) per target, as PNG. Returns False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    if outcome.last_history is None or outcome.last_actual is None:
        return False
    k = len(spec.targets)
    fig, axes = plt.subplots(k, 1, figsize=(10, 3 * k), squeeze=False)
    past = min(spec.season_steps, outcome.last_history.shape[1])
    hours_past = np.arange(-past, 0) * spec.step_seconds / 3600
    hours = np.arange(spec.horizon_steps) * spec.step_seconds / 3600
    for i, target in enumerate(spec.targets):
        ax = axes[i, 0]
        ax.plot(hours_past, outcome.last_history[server, -past:, i], color="0.4", label="history")
        ax.plot(hours, outcome.last_actual[server, i], color="black", label="actual")
        for name, values in outcome.last_fold.items():
            ax.plot(hours, values[server, i, :, spec.median_index], label=name)
            if name == "tft":
                ax.fill_between(hours, values[server, i, :, 0], values[server, i, :, -1], alpha=0.2)
        ax.set_title(f"{outcome.last_servers[server]}: {target}")
        ax.set_xlabel("hours from the origin")
    axes[0, 0].legend(fontsize="small", ncol=3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True
