"""Rolling windows: step-bucket means per server in numpy ring buffers."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pytest

from nordiqd.buffer.batch import batch_schema
from nordiqd.predict import windows as windows_module
from nordiqd.predict.windows import RollingWindows

METRICS = ("cpu_user_pct", "mem_used_pct")
STEP = 300
T0 = 1_700_000_100  # epoch s; bucket-aligned below
BASE = (T0 // STEP) * STEP


def table(
    ts_s: Sequence[float],
    servers: Sequence[str],
    values: np.ndarray,
    profiles: Sequence[str] | None = None,
) -> pa.Table:
    """A batch-schema table; NaN values become nulls."""
    values = np.asarray(values, dtype=np.float64).reshape(len(ts_s), len(METRICS))
    ms = np.round(np.asarray(ts_s, dtype=np.float64) * 1000).astype("datetime64[ms]")
    cols: list[pa.Array] = [
        pa.array(ms, pa.timestamp("ms", tz="UTC")),
        pa.array(list(servers), pa.string()),
        pa.array(list(profiles) if profiles is not None else ["web"] * len(ts_s), pa.string()),
    ]
    for j in range(len(METRICS)):
        v = values[:, j]
        cols.append(pa.array(v.astype(np.float32), pa.float32(), mask=np.isnan(v)))
    return pa.Table.from_arrays(cols, schema=batch_schema(METRICS))


def reference(records: list[tuple[float, str, np.ndarray]], length: int, end: int) -> dict[str, np.ndarray]:
    """Brute force: per server, means of the buckets inside its ring, on the window ending at ``end``."""
    out: dict[str, np.ndarray] = {}
    heads: dict[str, int] = {}
    for ts, name, _ in records:
        heads[name] = max(heads.get(name, -(10**12)), int(ts // STEP))
    for name, head in heads.items():
        sums = np.zeros((length, len(METRICS)))
        counts = np.zeros((length, len(METRICS)))
        for ts, srv, vals in records:
            b = int(ts // STEP)
            if srv != name or not (head - length < b <= head) or not (end - length < b <= end):
                continue
            ok = ~np.isnan(vals)
            sums[b - (end - length + 1), ok] += np.float32(vals[ok])
            counts[b - (end - length + 1), ok] += 1
        with np.errstate(invalid="ignore"):
            out[name] = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return out


def test_five_second_samples_average_into_step_buckets() -> None:
    w = RollingWindows(METRICS, STEP, 12)
    ts = BASE + np.arange(0, 3 * STEP, 5)  # 3 buckets of 60 samples
    values = np.stack([np.arange(len(ts)) % 60, np.arange(len(ts)) // 60 * 10.0], axis=1)
    w.add(table(ts, ["web01"] * len(ts), values))
    snap = w.snapshot()
    assert snap.names == ["web01"] and snap.profiles == ["web"]
    assert snap.windows.shape == (1, 12, 2)
    np.testing.assert_allclose(snap.windows[0, -3:, 0], [29.5, 29.5, 29.5])
    np.testing.assert_allclose(snap.windows[0, -3:, 1], [0.0, 10.0, 20.0])
    assert np.isnan(snap.windows[0, :-3]).all()
    assert snap.filled_steps[0] == 3
    assert snap.last_bucket_start[0] == BASE + 2 * STEP
    assert snap.last_seen[0] == pytest.approx(ts[-1])
    np.testing.assert_allclose(snap.current[0], values[-1])


def test_gaps_and_null_values_read_as_nan_and_are_not_counted() -> None:
    w = RollingWindows(METRICS, STEP, 6)
    vals = np.array([[10.0, np.nan], [20.0, 5.0], [30.0, 7.0]])
    w.add(table([BASE, BASE + 1, BASE + 3 * STEP], ["a"] * 3, vals))
    snap = w.snapshot()
    win = snap.windows[0]
    np.testing.assert_allclose(win[-4], [15.0, 5.0])  # the null does not dilute the mean
    assert np.isnan(win[-3:-1]).all()  # two empty buckets: a gap
    np.testing.assert_allclose(win[-1], [30.0, 7.0])
    assert snap.filled_steps[0] == 2
    by_metric = w.snapshot(["mem_used_pct"])
    assert by_metric.windows.shape == (1, 6, 1) and by_metric.filled_steps[0] == 2
    with pytest.raises(KeyError, match="disk"):
        w.snapshot(["disk_usage_pct"])


def test_out_of_order_records_land_in_their_bucket_and_too_old_ones_are_ignored() -> None:
    w = RollingWindows(METRICS, STEP, 4)
    w.add(table([BASE + 5 * STEP], ["a"], [[50.0, 1.0]]))
    w.add(table([BASE + 3 * STEP + 10, BASE + 5 * STEP + 9], ["a", "a"], [[30.0, 1.0], [70.0, 3.0]]))
    w.add(table([BASE + 1 * STEP], ["a"], [[99.0, 99.0]]))  # older than the 4-bucket ring
    win = w.snapshot().windows[0]
    np.testing.assert_allclose(win[:, 0], [np.nan, 30.0, np.nan, 60.0])
    # An old record does not move "latest" or last_seen either.
    assert w.current("a") == {"cpu_user_pct": 70.0, "mem_used_pct": 3.0}
    assert w.last_seen("a") == pytest.approx(BASE + 5 * STEP + 9)


def test_a_newer_bucket_advances_the_ring_and_clears_what_it_skips() -> None:
    w = RollingWindows(METRICS, STEP, 4)
    w.add(table(BASE + STEP * np.arange(4), ["a"] * 4, [[1.0, 1.0], [2.0, 2.0], [3.0, 3.0], [4.0, 4.0]]))
    w.add(table([BASE + 6 * STEP], ["a"], [[7.0, 7.0]]))  # skips buckets 4 and 5
    np.testing.assert_allclose(w.snapshot().windows[0, :, 0], [4.0, np.nan, np.nan, 7.0])
    w.add(table([BASE + 20 * STEP], ["a"], [[21.0, 21.0]]))  # a jump past the whole ring
    np.testing.assert_allclose(w.snapshot().windows[0, :, 0], [np.nan, np.nan, np.nan, 21.0])
    starts, means = w.history("a")
    np.testing.assert_array_equal(starts, [BASE + 20 * STEP])
    np.testing.assert_allclose(means, [[21.0, 21.0]])


def test_snapshot_ends_at_the_bucket_of_now_for_every_server() -> None:
    w = RollingWindows(METRICS, STEP, 4)
    w.add(table([BASE, BASE + 3 * STEP, BASE + STEP], ["fresh", "fresh", "stale"], np.ones((3, 2))))
    snap = w.snapshot(now=BASE + 3 * STEP + 42)
    assert list(snap.last_bucket_start) == [BASE + 3 * STEP] * 2
    np.testing.assert_allclose(snap.windows[0, :, 0], [1.0, np.nan, np.nan, 1.0])
    np.testing.assert_allclose(snap.windows[1, :, 0], [np.nan, 1.0, np.nan, np.nan])  # silent since
    later = w.snapshot(now=BASE + 10 * STEP)  # the whole fleet went quiet
    assert (later.filled_steps == 0).all() and np.isnan(later.windows).all()
    earlier = w.snapshot(now=BASE + 2 * STEP)  # newer buckets wait until the clock reaches them
    np.testing.assert_allclose(earlier.windows[0, :, 0], [np.nan, 1.0, np.nan, np.nan])


def test_many_servers_grow_the_arrays_and_match_a_brute_force_reference() -> None:
    rng = np.random.default_rng(7)
    length = 8
    w = RollingWindows(METRICS, STEP, length)
    names = [f"srv{i:03d}" for i in range(150)]  # more than the initial capacity
    records: list[tuple[float, str, np.ndarray]] = []
    for k in range(40):
        n = 200
        ts = BASE + k * 60.0 + rng.uniform(-900, 300, n)  # jitter: out of order, some too old
        srv = [names[i] for i in rng.integers(0, len(names) if k > 5 else 20, n)]
        vals = rng.uniform(0, 100, (n, 2))
        vals[rng.random((n, 2)) < 0.1] = np.nan
        w.add(table(ts, srv, vals))
        records += [(float(t), s, v) for t, s, v in zip(ts, srv, vals, strict=True)]
    snap = w.snapshot()
    assert len(snap.names) == len(set(snap.names)) == len(w) == len({r[1] for r in records})
    end = int(snap.last_bucket_start[0] // STEP)
    expected = reference(records, length, end)
    for i, name in enumerate(snap.names):
        np.testing.assert_allclose(snap.windows[i], expected[name], rtol=1e-9, err_msg=name)
    starts, means = w.history(names[0])
    assert starts[-1] // STEP == max(int(r[0] // STEP) for r in records if r[1] == names[0])
    assert means.shape == (len(starts), 2)


def test_refill_of_one_big_table_equals_incremental_adds(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    ts = BASE + np.sort(rng.uniform(0, 30 * STEP, 3000))
    srv = [f"db{i}" for i in rng.integers(0, 30, len(ts))]
    vals = rng.uniform(0, 100, (len(ts), 2))
    profiles = ["database"] * len(ts)
    incremental = RollingWindows(METRICS, STEP, 12)
    for lo in range(0, len(ts), 97):
        incremental.add(
            table(ts[lo : lo + 97], srv[lo : lo + 97], vals[lo : lo + 97], profiles[lo : lo + 97])
        )
    monkeypatch.setattr(windows_module, "_REFILL_ROWS", 500)  # several chunks
    big = table(ts, srv, vals, profiles)
    # The buffer's reader may hand names over dictionary-encoded.
    big = big.set_column(
        1, "server_name", pa.chunked_array([big.column(1).combine_chunks().dictionary_encode()])
    )
    refilled = RollingWindows(METRICS, STEP, 12)
    refilled.refill(big)
    a, b = incremental.snapshot(), refilled.snapshot()
    order = [b.names.index(n) for n in a.names]
    np.testing.assert_allclose(b.windows[order], a.windows, rtol=1e-12)
    np.testing.assert_array_equal(b.filled_steps[order], a.filled_steps)
    np.testing.assert_array_equal(b.last_seen[order], a.last_seen)
    np.testing.assert_array_equal(b.current[order], a.current)
    assert set(b.profiles) == {"database"}


def test_current_values_keep_the_newest_non_null_sample_per_metric() -> None:
    w = RollingWindows(METRICS, STEP, 4)
    w.add(table([BASE + 2, BASE + 1, BASE + 3], ["a"] * 3, [[3.0, np.nan], [1.0, 1.0], [np.nan, np.nan]]))
    assert w.current("a") == {"cpu_user_pct": 3.0, "mem_used_pct": 1.0}
    w.add(table([BASE + 4], ["a"], [[np.nan, 4.0]], profiles=["api"]))
    assert w.current("a") == {"cpu_user_pct": 3.0, "mem_used_pct": 4.0}
    assert w.profile("a") == "api"  # the newest record's profile
    assert "a" in w and "b" not in w and w.names() == ["a"]
    with pytest.raises(KeyError):
        w.current("b")
    with pytest.raises(KeyError):
        w.history("b")


def test_a_reader_thread_sees_consistent_snapshots_while_the_writer_adds() -> None:
    w = RollingWindows(METRICS, STEP, 16)
    stop = threading.Event()
    errors: list[BaseException] = []

    def read() -> None:
        try:
            while not stop.is_set():
                snap = w.snapshot()
                assert snap.windows.shape[0] == len(snap.names) == len(snap.profiles)
                finite = snap.windows[np.isfinite(snap.windows)]
                assert ((finite >= 0) & (finite <= 100)).all()
        except BaseException as exc:  # reported to the main thread below
            errors.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    rng = np.random.default_rng(0)
    for k in range(100):
        srv = [f"s{i}" for i in rng.integers(0, 100 + k, 100)]
        w.add(table(BASE + k * 30 + rng.uniform(0, 30, 100), srv, rng.uniform(0, 100, (100, 2))))
    stop.set()
    reader.join(timeout=10)
    assert not errors, errors
