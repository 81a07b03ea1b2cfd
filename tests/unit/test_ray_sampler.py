"""The batches a Ray worker draws: the same count on every rank, whatever its shard's size."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("ray", reason="needs the ray extra")

from nordiqd.training.ray_worker import ShardBatches  # noqa: E402


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
