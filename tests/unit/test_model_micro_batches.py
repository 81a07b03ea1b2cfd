"""Micro-batches: a batch run in parts takes the same optimiser step as the batch whole.

The trainer runs a CPU batch as ``micro_batches`` parts whose gradients Lightning adds up
before one optimiser step. These tests train one step both ways through
``trainer.run_trainer`` itself and compare the gradient the optimiser receives.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from nordiqd.model.dataset import fitted_dataset, model_parameters
from nordiqd.model.network import build_network
from nordiqd.model.params import ModelSpec
from nordiqd.model.series import fleet_series
from nordiqd.model.trainer import EpochBatches, micro_batches, run_trainer
from nordiqd.model.windows import WindowBatches, training_windows
from tests.unit.test_model_windows import SINGLE, SPEC, fleet


class _Gradients(Callback):
    """Keeps every gradient the optimiser is about to apply (before clipping)."""

    def __init__(self) -> None:
        self.steps: list[dict[str, torch.Tensor]] = []

    def on_before_optimizer_step(self, trainer: Trainer, pl_module: LightningModule, optimizer: Any) -> None:
        self.steps.append(
            {n: p.grad.detach().clone() for n, p in pl_module.named_parameters() if p.grad is not None}
        )


def one_step(spec: ModelSpec) -> tuple[list[dict[str, torch.Tensor]], dict[str, torch.Tensor]]:
    """The gradients of one epoch of one batch, and the weights after it."""
    table = fleet(spec)
    series = fleet_series(table, spec)
    index = training_windows(series, spec, seed=5)
    prototype, weights = fitted_dataset(series, index, spec)
    torch.manual_seed(0)
    network = build_network(prototype, spec, weights)
    params = model_parameters(prototype.get_parameters())
    batches = WindowBatches(
        series, index, spec, params, network.hparams.x_reals, network.hparams.x_categoricals
    )
    grads = _Gradients()
    run_trainer(network, batches, spec, 1, 1, "cpu", None, None, 0, callbacks=[grads])
    return grads.steps, {n: p.detach().clone() for n, p in network.named_parameters()}


@pytest.mark.parametrize("base", [SPEC, SINGLE], ids=["five-targets", "one-target"])
def test_a_batch_in_parts_takes_the_whole_batch_step(base: ModelSpec) -> None:
    # No dropout, so both runs compute the same function; one batch of 32 per epoch.
    common = {**base.to_dict(), "dropout": 0.0, "batch_size": 32, "max_windows_per_epoch": 32}
    whole = ModelSpec(**{**common, "micro_batch_size": 32})
    parts = ModelSpec(**{**common, "micro_batch_size": 8})
    assert micro_batches(whole, 32, "cpu") == 1 and micro_batches(parts, 32, "cpu") == 4
    steps_whole, after_whole = one_step(whole)
    steps_parts, after_parts = one_step(parts)
    assert len(steps_whole) == len(steps_parts) == 1  # four parts, one optimiser step
    (g_whole,), (g_parts,) = steps_whole, steps_parts
    assert set(g_whole) == set(g_parts) and len(g_whole) > 10
    for name, grad in g_whole.items():
        torch.testing.assert_close(
            g_parts[name], grad, rtol=1e-4, atol=1e-7, msg=lambda m, n=name: f"{n}: {m}"
        )
    assert max(float(g.abs().max()) for g in g_whole.values()) > 1e-4  # a real gradient, not zeros
    for name, weight in after_whole.items():
        torch.testing.assert_close(
            after_parts[name], weight, rtol=1e-4, atol=1e-5, msg=lambda m, n=name: f"{n}: {m}"
        )


@pytest.mark.parametrize(
    ("count", "limit", "size", "parts"), [(1000, 300, 128, 8), (500, 500, 64, 3), (50, 37, 16, 4)]
)
def test_epoch_batches_in_parts_are_the_same_batches_cut_up(
    count: int, limit: int, size: int, parts: int
) -> None:
    whole = EpochBatches(count, limit, size, torch.Generator().manual_seed(3))
    cut = EpochBatches(count, limit, size, torch.Generator().manual_seed(3), parts)
    pieces = list(cut)
    assert len(pieces) == len(cut)
    rebuilt, at = [], 0
    for batch in whole:
        n = min(parts, len(batch))
        group = pieces[at : at + n]
        at += n
        assert max(map(len, group)) - min(map(len, group)) <= 1  # even parts
        rebuilt.append([w for piece in group for w in piece])
    assert at == len(pieces)
    assert rebuilt == list(EpochBatches(count, limit, size, torch.Generator().manual_seed(3)))


def test_gpu_runs_the_batch_whole() -> None:
    assert micro_batches(ModelSpec(micro_batch_size=16), 1024, "gpu") == 1
    assert micro_batches(ModelSpec(micro_batch_size=16), 128, "cpu") == 8
    assert micro_batches(ModelSpec(micro_batch_size=48), 128, "cpu") == 3
