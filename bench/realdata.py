"""Convert the bundled real CPU traces into the wide buffer format, one Parquet file per set.

Usage::

    .venv/bin/python bench/realdata.py [SRC] [--out bench/out/real]

SRC is the folder of the recorded real-metrics set (``azure2017_vm_cpu_100/`` and
``nab/`` as published; the environment variable ``NORDIQD_REAL_DATA`` names it when SRC
is left out). The
output files have the buffer's columns: ``timestamp`` (timestamp[ms, UTC]),
``server_name``, ``profile`` and the metric ``cpu_user_pct`` (both sets hold one CPU
percentage per series, nothing else), sorted by server then time, like a buffer file:

``azure.parquet``
    Azure public VM trace 2017, 100 VMs x 8,004 steps of 300 s. The source has no
    absolute times, only step numbers, so the timestamps are synthetic: step x 300 s
    from 2017-01-01T00:00Z (a Sunday). Hour-of-day and weekday features therefore do
    not line up with the VMs' real local time; the daily period is still 288 steps.
    ``server_name`` is ``azure-<vm id>``, ``profile`` is ``azure-vm``.
``nab.parquet``
    NAB's CloudWatch CPU series: the EC2 (8) and RDS (2) CPU utilisation files of
    ``realAWSCloudwatch`` and the auto-scaling group's CPU of ``realKnownCause``
    (``cpu_utilization_asg_misconfiguration``). One server per file, named by the file
    stem; profile by kind (``ec2``, ``rds``, ``asg``). Timestamps as recorded (UTC,
    5-minute steps with per-series offsets; the trainer buckets them). Network, disk,
    ELB, latency and the unlabeled ``grok_asg_anomaly`` series are not CPU and are left
    out, as is ``machine_temperature_system_failure`` (not a server).
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

_REPO = Path(__file__).resolve().parents[1]
SRC_ENV = "NORDIQD_REAL_DATA"
DEFAULT_OUT = _REPO / "bench" / "out" / "real"
METRIC = "cpu_user_pct"
AZURE_CSV = Path("azure2017_vm_cpu_100") / "vm_cpu_avg_pct_100vms_300s.csv"
AZURE_EPOCH = datetime(2017, 1, 1, tzinfo=UTC)
AZURE_STEP_S = 300
# NAB files that are CPU percentages, and the profile each gets.
NAB_CPU = {
    "realAWSCloudwatch/ec2_cpu_utilization_*.csv": "ec2",
    "realAWSCloudwatch/rds_cpu_utilization_*.csv": "rds",
    "realKnownCause/cpu_utilization_asg_misconfiguration.csv": "asg",
}
SCHEMA = pa.schema(
    [
        ("timestamp", pa.timestamp("ms", tz="UTC")),
        ("server_name", pa.string()),
        ("profile", pa.string()),
        (METRIC, pa.float64()),
    ]
)


def _table(frame: pd.DataFrame) -> pa.Table:
    frame = frame.sort_values(["server_name", "timestamp"], kind="stable")
    frame = frame.drop_duplicates(["server_name", "timestamp"], keep="last")
    table = pa.Table.from_pandas(frame[SCHEMA.names], schema=SCHEMA, preserve_index=False)
    return table.replace_schema_metadata(None)


def azure(src: Path) -> pa.Table:
    """The 100 Azure VMs as buffer rows, with synthetic times from ``AZURE_EPOCH``."""
    wide = pd.read_csv(src / AZURE_CSV)
    wide = wide.loc[:, [c for c in wide.columns if c and not c.startswith("Unnamed")]]
    steps = wide.pop("step").to_numpy(np.int64)
    start_ms = int(AZURE_EPOCH.timestamp() * 1000)
    times = pd.to_datetime(start_ms + steps * AZURE_STEP_S * 1000, unit="ms", utc=True)
    long = (
        wide.set_axis(times)
        .rename_axis("timestamp")
        .melt(ignore_index=False, var_name="vm", value_name=METRIC)
    )
    long = long.reset_index().dropna(subset=[METRIC])
    long["server_name"] = "azure-" + long["vm"].astype(str)
    long["profile"] = "azure-vm"
    return _table(long)


def nab(src: Path) -> pa.Table:
    """NAB's CPU series as buffer rows, one server per file."""
    pieces = []
    for pattern, profile in NAB_CPU.items():
        files = sorted((src / "nab").glob(pattern))
        if not files:
            raise FileNotFoundError(f"no NAB file matches {src / 'nab' / pattern}")
        for path in files:
            frame = pd.read_csv(path)
            frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
            frame[METRIC] = frame.pop("value").astype(np.float64)
            frame["server_name"] = path.stem
            frame["profile"] = profile
            pieces.append(frame.dropna(subset=[METRIC]))
    return _table(pd.concat(pieces, ignore_index=True))


def describe(name: str, table: pa.Table) -> str:
    """One line: servers, rows, time span and value range of a converted set."""
    frame = table.select(["timestamp", "server_name", METRIC]).to_pandas()
    span = frame.groupby("server_name")["timestamp"].agg(["min", "max", "size"])
    days = (span["max"] - span["min"]).dt.total_seconds() / 86_400
    profiles = sorted(set(table["profile"].to_pylist()))
    return (
        f"{name}: {len(span)} servers ({', '.join(profiles)}), {table.num_rows:,} rows, "
        f"{days.min():.1f}-{days.max():.1f} days per server, "
        f"{frame['timestamp'].min():%Y-%m-%d} .. {frame['timestamp'].max():%Y-%m-%d}, "
        f"{METRIC} {frame[METRIC].min():.2f}..{frame[METRIC].max():.2f}"
    )


def main(argv: list[str] | None = None) -> int:
    """Convert both sets; print one line per set."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    env = os.environ.get(SRC_ENV)
    default = Path(env) if env else None
    p.add_argument("src", nargs="?", type=Path, default=default, help=f"default ${SRC_ENV}")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"default {DEFAULT_OUT}")
    args = p.parse_args(argv)
    if args.src is None:
        print(f"bench/realdata.py: name the real data folder as SRC or in ${SRC_ENV}", file=sys.stderr)
        return 2
    if not args.src.is_dir():
        print(f"bench/realdata.py: {args.src} is not a folder", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    for name, convert in (("azure", azure), ("nab", nab)):
        table = convert(args.src)
        path = args.out / f"{name}.parquet"
        pq.write_table(table, path, compression="zstd")
        print(f"{describe(name, table)} -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
