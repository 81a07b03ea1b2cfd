"""``nordiqd backtest``: rolling-origin accuracy of the TFT against free baselines.

Wired into ``nordiqd/cli.py`` as::

    backtest_cli.add_arguments(sub.add_parser("backtest", help=...))
    ...
    if args.command == "backtest":
        return backtest_cli.run(args)

It runs synchronously in the calling process and stops when the report is written
(Ctrl-C aborts it). Exit codes: 0 done, 1 the model could not be loaded or trained, 2
bad arguments or data (missing file, no timestamp column, unknown metric, too little
history), 78 configuration error.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from supervisor import exitcodes

if TYPE_CHECKING:  # the parser is built on every ``nordiqd`` call: no numpy/pyarrow import here
    from nordiqd.backtest.runner import Options

DEFAULT_FOLDS = 3

EXAMPLES = """\
examples:
  nordiqd backtest --data fleet.parquet --targets cpu_user_pct --json out.json      no TFT
  nordiqd backtest --data /var/lib/nordiqd/buffer --model /var/lib/nordiqd/models/current --json out.json
  nordiqd backtest --data fleet.csv -c nordiqd.toml --train --folds 6 --epochs 3 --seed 1 --json out.json
  nordiqd backtest --data /mnt/shared/buffer --train --retrain --folds 8 --ray 10.0.0.5:6379 --json out.json
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the ``backtest`` options to ``p`` (its own ``-c/--config`` included)."""
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.description = (
        "Rolling-origin backtest over the last K horizons: every fold forecasts one horizon "
        "from what precedes it; scores MASE (1-day seasonal-naive scale), P50/P90 loss and "
        "p10-p90 coverage (as forecast, and calibrated on the earlier folds) per target and "
        "horizon bucket, for the TFT, the baselines (naive, seasonal naive 1 day and 1 week, "
        "linear trend), the statistical challengers (AutoETS, AutoTheta, MSTL) and `routed` "
        "(per server, target and bucket the candidate best on the earlier folds)."
    )
    p.epilog = EXAMPLES
    p.add_argument("--data", required=True, type=Path, help="CSV or Parquet file (wide) or a buffer folder")
    p.add_argument(
        "-c",
        "--config",
        default=None,
        help="TOML configuration for [model] and [training] (default: built-in)",
    )
    which = p.add_mutually_exclusive_group()
    which.add_argument("--model", type=Path, help="score this model directory (its spec wins)")
    which.add_argument(
        "--train", action="store_true", help="train a TFT on what precedes the earliest fold, then score it"
    )
    p.add_argument("--retrain", action="store_true", help="with --train: refit before every fold (K fits)")
    p.add_argument("--folds", type=int, default=DEFAULT_FOLDS, help=f"K, folds (default {DEFAULT_FOLDS})")
    p.add_argument("--epochs", type=int, help="training epochs (default [training] default_epochs)")
    p.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    p.add_argument("--threads", type=int, help="CPU threads for training (default [training] cpu_threads)")
    p.add_argument("--device", choices=("auto", "cpu", "gpu"), default="auto", help="training device")
    p.add_argument(
        "--ray",
        metavar="ADDRESS",
        help="run the folds and fits as tasks on this Ray cluster (HOST:PORT, ray://HOST:PORT or auto; "
        "pip install nordiqd[ray]); each task takes [training] ray_cpus_per_worker CPUs",
    )
    p.add_argument("--targets", help="comma list replacing [model] targets (not with --model)")
    p.add_argument("--buckets", default="1,4,8", help="horizon bucket edges in hours (default 1,4,8)")
    p.add_argument(
        "--no-statistical",
        action="store_true",
        help="leave out AutoETS, AutoTheta and MSTL (the slowest part without --train)",
    )
    p.add_argument("--no-routing", action="store_true", help="leave out the routed entry")
    p.add_argument("--json", required=True, type=Path, help="where to write the JSON report")
    p.add_argument("--plot", type=Path, help="PNG of one server's latest fold (needs matplotlib)")


def _fail(message: str, code: int) -> int:
    print(f"nordiqd backtest: {message}", file=sys.stderr)
    return code


def run(args: argparse.Namespace) -> int:
    """Run ``nordiqd backtest`` with parsed ``args``; return the exit code."""
    from nordiqd import config as config_mod
    from nordiqd.backtest.errors import BacktestError
    from nordiqd.backtest.runner import backtest
    from nordiqd.model.errors import ModelError

    try:
        cfg = config_mod.load(args.config)
    except config_mod.ConfigError as exc:
        return _fail(f"configuration error: {exc}", exitcodes.CONFIG)
    if args.retrain and not args.train:
        return _fail("--retrain needs --train", exitcodes.USAGE)
    if args.ray and importlib.util.find_spec("ray") is None:
        return _fail("--ray needs Ray, not installed here: pip install nordiqd[ray]", exitcodes.USAGE)
    if args.model and args.targets:
        return _fail(
            "--targets cannot change a trained model's targets; leave it out with --model", exitcodes.USAGE
        )
    try:
        report = backtest(options(args, cfg))
    except (BacktestError, ValueError) as exc:
        return _fail(str(exc), exitcodes.USAGE)
    except ModelError as exc:
        return _fail(f"model: {exc}", exitcodes.FAILURE)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1, allow_nan=False) + "\n")
    from nordiqd.backtest import report as report_mod

    print(report_mod.table(report), end="")
    print(f"wrote {args.json} ({report['timings']['total_s']:.0f} s)")
    return exitcodes.OK


def options(args: argparse.Namespace, cfg: Any) -> Options:
    """The run's ``Options`` from the command line and the configuration.

    Raises:
        ValueError: A bad option value (the message names the option).
    """
    import msgspec

    from nordiqd.backtest.runner import Options
    from nordiqd.model.params import ModelSpec

    spec = cfg.model
    if args.targets:
        names = [t.strip() for t in args.targets.split(",") if t.strip()]
        try:
            spec = ModelSpec.from_dict({**spec.to_dict(), "targets": names})
        except msgspec.ValidationError as exc:
            raise ValueError(f"--targets: {exc}") from None
    try:
        hours = tuple(float(h) for h in args.buckets.split(","))
    except ValueError:
        raise ValueError(f"--buckets: {args.buckets!r} is not a comma list of hours") from None
    return Options(
        data=args.data,
        spec=spec,
        model=args.model,
        train=args.train,
        retrain=args.retrain,
        folds=args.folds,
        epochs=args.epochs if args.epochs is not None else cfg.training.default_epochs,
        seed=args.seed,
        threads=args.threads or cfg.training.cpu_threads,
        device=args.device,
        bucket_hours=hours,
        plot=args.plot,
        statistical=not args.no_statistical,
        route=not args.no_routing,
        ray=args.ray,
        ray_cpus=cfg.training.ray_cpus_per_worker,
    )
