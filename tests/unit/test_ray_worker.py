"""A Ray worker's shard: framed in chunks of servers and joined; its batches per epoch."""

from __future__ import annotations

import weakref

import pytest
import torch

pytest.importorskip("ray", reason="needs the ray extra")

import numpy as np  # noqa: E402
import pyarrow.compute as pc  # noqa: E402

from nordiqd.model.params import ModelSpec  # noqa: E402
from nordiqd.model.series import fleet_series  # noqa: E402
from nordiqd.simulate import SimulatedFleet  # noqa: E402
from nordiqd.training.ray_worker import ShardBatches, joined  # noqa: E402


def test_a_shard_framed_in_chunks_of_servers_is_the_shard_framed_at_once() -> None:
    spec = ModelSpec.from_dict({**ModelSpec().to_dict(), "encoder_steps": 24, "horizon_steps": 6})
    t0 = 1_790_000_000 - 1_790_000_000 % 86_400
    table = SimulatedFleet(size=7, seed=3, interval_s=300).generate(t0, t0 + 86_400).to_arrow()
    whole = fleet_series(table, spec)
    names = whole.names
    chunks = [names[:3], names[3:5], names[5:]]
    pieces = [fleet_series(table.filter(pc.field("server_name").isin(c)), spec) for c in chunks]
    held = [weakref.ref(p.values) for p in pieces]
    got = joined(pieces)
    # The pieces' values are let go as they are copied: the peak is the shard's values once.
    assert [ref() for ref in held] == [None] * len(held)
    for field in ("values", "starts", "first_tick", "server", "segment"):
        np.testing.assert_array_equal(getattr(got, field), getattr(whole, field), err_msg=field)
    assert (got.names, got.profiles) == (whole.names, whole.profiles)
    one = [fleet_series(table, spec)]
    assert joined(one) is one[0]


def test_every_rank_runs_the_same_batches_a_small_shard_goes_round_again() -> None:
    small = list(ShardBatches(10, 4, 8, torch.Generator().manual_seed(0)))
    large = list(ShardBatches(1000, 4, 8, torch.Generator().manual_seed(1)))
    assert len(small) == len(large) == 4
    assert all(len(b) == 8 for b in small + large)
    drawn = [w for b in small for w in b]
    assert sorted(drawn[:10]) == list(range(10))  # one whole pass before any window repeats
    assert sorted(drawn[10:20]) == list(range(10))
    assert len({w for b in large for w in b}) == 32  # no repeats while the shard lasts
    assert list(ShardBatches(10, 4, 8, torch.Generator().manual_seed(0))) == small
    # An epoch draws only its own windows, never a permutation of the whole shard (this
    # one's would be 8 TB).
    huge = [w for b in ShardBatches(10**12, 4, 8, torch.Generator().manual_seed(1)) for w in b]
    assert len(set(huge)) == 32 and all(0 <= w < 10**12 for w in huge)
    half = [w for b in ShardBatches(60, 4, 8, torch.Generator().manual_seed(1)) for w in b]
    assert len(set(half)) == 32 and all(0 <= w < 60 for w in half)


def test_server_runs_cut_between_servers_near_the_row_count() -> None:
    import pyarrow as pa

    from nordiqd.training.ray_worker import server_runs

    table = pa.table({"server_name": ["a"] * 5 + ["b"] * 3 + ["c"] * 4 + ["d"], "x": list(range(13))})
    parts = server_runs(table, 6)
    assert [p["server_name"].to_pylist() for p in parts] == [
        ["a"] * 5 + ["b"] * 3,
        ["c"] * 4 + ["d"],
    ]
    assert [len(p) for p in server_runs(table, 1)] == [5, 3, 4, 1]
    assert server_runs(table.slice(0, 0), 6) == []


def test_a_batch_comes_in_micro_batches_the_same_on_every_rank() -> None:
    whole = list(ShardBatches(1000, 4, 8, torch.Generator().manual_seed(2)))
    cut = list(ShardBatches(1000, 4, 8, torch.Generator().manual_seed(2), parts=3))
    assert len(cut) == len(ShardBatches(1000, 4, 8, torch.Generator(), parts=3)) == 12
    assert [len(p) for p in cut[:3]] == [3, 3, 2]
    assert [sum(cut[k : k + 3], []) for k in range(0, 12, 3)] == whole
    assert len(list(ShardBatches(1000, 2, 2, torch.Generator(), parts=4))) == 4  # at most a part a window
