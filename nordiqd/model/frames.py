"""Buffer rows (an Arrow table) to the regular per-series frame the TFT trains on.

Samples arrive at any rate and with gaps. They are averaged into model-step buckets per
server, laid on a regular grid, short gaps are interpolated linearly (a few missed
samples should not break a day of history) and long gaps split a server's history into
separate series, because a window that bridges an outage would teach the model a jump
that never happened. Each contiguous piece becomes one series with its own group id.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from nordiqd.model.errors import InsufficientData
from nordiqd.model.params import ModelSpec

# Known future inputs: the daily and weekly cycles as points on a circle, so 23:55 and
# 00:00 are neighbours and an unseen weekday is not an unknown category.
TIME_FEATURES: tuple[str, ...] = ("hour_sin", "hour_cos", "dow_sin", "dow_cos")

_DAY = 86_400.0
_WEEK = 7 * _DAY
# 1970-01-01 was a Thursday; shifting by 3 days puts Monday 00:00 at phase 0.
_MONDAY_SHIFT = 3 * _DAY


def time_features(bucket_seconds: np.ndarray) -> np.ndarray:
    """Hour-of-day and day-of-week features of bucket start times.

    Args:
        bucket_seconds: Array [...] of UTC epoch seconds (bucket starts).

    Returns:
        Array [..., 4] float32, columns in ``TIME_FEATURES`` order.
    """
    t = np.asarray(bucket_seconds, dtype=np.float64)
    day = 2.0 * np.pi * np.mod(t, _DAY) / _DAY
    week = 2.0 * np.pi * np.mod(t + _MONDAY_SHIFT, _WEEK) / _WEEK
    return np.stack([np.sin(day), np.cos(day), np.sin(week), np.cos(week)], axis=-1).astype(np.float32)


def aggregate(table: pa.Table, spec: ModelSpec, metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """Average samples into model-step buckets per server.

    Args:
        table: Buffer rows: ``timestamp`` (timestamp[ms, UTC]), ``server_name``,
            ``profile`` and one nullable float column per metric.
        spec: Model spec (step length, targets).
        metrics: Metric columns to keep; defaults to ``spec.targets``.

    Returns:
        Frame with ``server_name``, ``profile`` (each server's latest), ``bucket`` (UTC
        epoch seconds of the bucket start, int64) and one mean column per metric,
        sorted by server then bucket. Nulls are skipped by the mean.

    Raises:
        InsufficientData: The table is empty or lacks a metric column.
    """
    metrics = list(metrics or spec.targets)
    missing = [m for m in ("timestamp", "server_name", "profile", *metrics) if m not in table.column_names]
    if missing:
        raise InsufficientData(f"the data has no column {', '.join(missing)}")
    if table.num_rows == 0:
        raise InsufficientData("the data has no rows")
    step_ms = spec.step_seconds * 1000
    ms = pc.cast(table["timestamp"], pa.int64())
    bucket = pc.multiply(pc.divide(ms, step_ms), step_ms // 1000)  # non-negative: floor
    slim = pa.table(
        {
            "server_name": table["server_name"],
            "bucket": bucket,
            **{m: pc.cast(table[m], pa.float64()) for m in metrics},
        }
    )
    grouped = slim.group_by(["server_name", "bucket"]).aggregate([(m, "mean") for m in metrics])
    frame = grouped.rename_columns([c.removesuffix("_mean") for c in grouped.column_names]).to_pandas()
    frame = frame.sort_values(["server_name", "bucket"], kind="stable").reset_index(drop=True)
    # A server's latest profile wins: a re-profiled server is forecast as what it is now.
    latest = pa.table({"server_name": table["server_name"], "ms": ms, "profile": table["profile"]})
    latest = latest.sort_by([("server_name", "ascending"), ("ms", "ascending")]).to_pandas()
    profiles = latest.groupby("server_name", sort=False)["profile"].last().fillna("")
    frame.insert(1, "profile", frame["server_name"].map(profiles).astype(str))
    frame["bucket"] = frame["bucket"].astype(np.int64)
    return frame


def fill_short_gaps(values: np.ndarray, max_gap: int) -> np.ndarray:
    """Interpolate linearly across NaN runs of at most ``max_gap`` steps.

    Runs at the start or end (no neighbour on one side) and longer runs stay NaN.

    Args:
        values: Array [T, M]; each column is filled on its own.
        max_gap: Longest run of NaN steps to fill.

    Returns:
        A filled copy.
    """
    out = np.array(values, dtype=np.float64, copy=True)
    if max_gap <= 0 or out.size == 0:
        return out
    idx = np.arange(out.shape[0])
    for col in range(out.shape[1]):
        x = out[:, col]
        nan = np.isnan(x)
        if not nan.any() or nan.all():
            continue
        # Label NaN runs, then measure each run and check it is bounded on both sides.
        starts = nan & ~np.concatenate(([False], nan[:-1]))
        run_id = np.cumsum(starts) * nan
        lengths = np.bincount(run_id)
        first_ok, last_ok = idx[~nan][0], idx[~nan][-1]
        fill = nan & (lengths[run_id] <= max_gap) & (idx > first_ok) & (idx < last_ok)
        if fill.any():
            x[fill] = np.interp(idx[fill], idx[~nan], x[~nan])
    return out


def to_frame(table: pa.Table, spec: ModelSpec, *, min_steps: int | None = None) -> pd.DataFrame:
    """Build the training frame: regular grid, filled short gaps, one series per segment.

    Args:
        table: Buffer rows as for ``aggregate``.
        spec: Model spec.
        min_steps: Shortest segment kept; defaults to ``encoder_steps + horizon_steps``
            (one full window).

    Returns:
        Frame with ``series`` ("<server>#<n>"), ``server_name``, ``profile``,
        ``time_idx`` (bucket / step, int64, comparable across frames), ``bucket``, the
        ``TIME_FEATURES`` and one column per target; sorted by series and time.

    Raises:
        InsufficientData: No server has a contiguous segment of ``min_steps``.
    """
    min_steps = spec.encoder_steps + spec.horizon_steps if min_steps is None else min_steps
    agg = aggregate(table, spec)
    targets = list(spec.targets)
    step = spec.step_seconds
    pieces: list[pd.DataFrame] = []
    for server, rows in agg.groupby("server_name", sort=True):
        ticks = rows["bucket"].to_numpy() // step
        grid = np.full((int(ticks[-1] - ticks[0]) + 1, len(targets)), np.nan)
        grid[ticks - ticks[0]] = rows[targets].to_numpy(np.float64)
        grid = fill_short_gaps(grid, spec.max_fill_steps)
        complete = np.isfinite(grid).all(axis=1)
        # Contiguous runs of complete steps are the segments.
        edges = np.flatnonzero(np.diff(np.concatenate(([0], complete.astype(np.int8), [0]))))
        for n, (lo, hi) in enumerate(zip(edges[::2], edges[1::2], strict=True)):
            if hi - lo < min_steps:
                continue
            time_idx = ticks[0] + np.arange(lo, hi, dtype=np.int64)
            piece = pd.DataFrame({t: grid[lo:hi, i] for i, t in enumerate(targets)})
            piece.insert(0, "series", f"{server}#{n}")
            piece.insert(1, "server_name", str(server))
            piece.insert(2, "profile", rows["profile"].iloc[-1])
            piece.insert(3, "time_idx", time_idx)
            piece.insert(4, "bucket", time_idx * step)
            pieces.append(piece)
    if not pieces:
        raise InsufficientData(
            f"no server has {min_steps} contiguous steps of {step} s "
            f"(gaps over {spec.max_fill_steps} steps split the history)"
        )
    frame = pd.concat(pieces, ignore_index=True)
    feats = time_features(frame["bucket"].to_numpy())
    for i, name in enumerate(TIME_FEATURES):
        frame.insert(5 + i, name, feats[:, i])
    for name in ("series", "server_name", "profile"):
        frame[name] = frame[name].astype(object)
    return frame
