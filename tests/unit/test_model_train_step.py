"""The lean training step gives the stock step's loss and gradients; Adam runs fused.

``train_step.LeanStep`` replaces pytorch-forecasting's ``training_step`` while the CPU
trains. For the same batch its loss must equal the stock step's (which packs the targets
of windows with fewer decoder steps, weighs each target and runs torchmetrics' state
machinery) and so must every parameter's gradient, for five weighted targets and one,
full and shortened decoders, with and without window weights.
"""

from __future__ import annotations

import functools
from typing import Any

import pytest
import torch
from pytorch_forecasting.metrics import MAE, MultiLoss
from torch.nn.utils.rnn import pack_padded_sequence

from nordiqd.model.params import ModelSpec
from nordiqd.model.train_step import LeanStep, lean_training
from tests.unit.test_model_train_forward import SHAPES, network_and_batches


def stock_step(network: Any, x: dict[str, Any], y: Any) -> torch.Tensor:
    """The loss of pytorch-forecasting's ``BaseModel.step`` (which outside a ``Trainer``
    cannot run whole, for its ``self.log``): targets packed where decoders are shorter,
    then the network's torchmetrics loss."""
    lengths = x["decoder_lengths"]
    if bool((lengths < lengths.max()).any()):
        pack = functools.partial(
            pack_padded_sequence, lengths=lengths, batch_first=True, enforce_sorted=False
        )
        y = ([pack(t) for t in y[0]] if isinstance(y[0], list | tuple) else pack(y[0]), y[1])
    prediction = network(x)["prediction"]
    if isinstance(network.loss, MultiLoss):
        return network.loss(
            prediction, y, encoder_target=x["encoder_target"], encoder_lengths=x["encoder_lengths"]
        )
    return network.loss(prediction, y)


def gradients(network: Any, loss: torch.Tensor) -> dict[str, torch.Tensor]:
    network.zero_grad()
    loss.backward()
    return {n: p.grad.clone() for n, p in network.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("base", list(SHAPES.values()), ids=list(SHAPES))
@pytest.mark.parametrize("case", ["full", "short-decoders", "weighted"])
def test_lean_loss_and_gradients_equal_the_stock_step(base: dict[str, Any], case: str) -> None:
    network, batches = network_and_batches(ModelSpec(**{**base, "dropout": 0.0}))
    network.train()
    x, y = batches[list(range(0, 20, 2))]
    if case == "short-decoders":
        x["decoder_lengths"] = x["decoder_lengths"].clone()
        x["decoder_lengths"][[0, 3]] -= torch.tensor([2, 5])
    if case == "weighted":
        y = (y[0], torch.linspace(0.5, 2.0, len(x["decoder_lengths"])))
    want = stock_step(network, x, y)
    g_want = gradients(network, want)
    got = LeanStep(network).training_step((x, y), 0)["loss"]
    g_got = gradients(network, got)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=0.0)
    assert float(want.detach()) > 0 and set(g_got) == set(g_want) and len(g_want) > 50
    for name, grad in g_want.items():
        torch.testing.assert_close(g_got[name], grad, rtol=1e-5, atol=1e-8, msg=lambda m, n=name: f"{n}: {m}")
    if case == "short-decoders":  # the masked steps really left the loss
        x["decoder_lengths"][:] = x["decoder_lengths"].max()
        whole = LeanStep(network).training_step((x, y), 0)["loss"].detach()
        assert float(whole) != pytest.approx(float(got.detach()), rel=1e-6)


def test_lean_training_sets_the_step_and_fused_adam_and_gives_them_back() -> None:
    network, _ = network_and_batches(ModelSpec(**{**SHAPES["one-target-1-head"], "dropout": 0.0}))
    stock = type(network).training_step
    with lean_training(network):
        assert isinstance(network.training_step.__self__, LeanStep)
        config = network.configure_optimizers()
        optimizer = config["optimizer"] if isinstance(config, dict) else config[0][0]
        assert isinstance(optimizer, torch.optim.Adam) and optimizer.defaults["fused"] is True
        assert optimizer.defaults["lr"] == network.hparams.learning_rate
    assert "training_step" not in vars(network) and type(network).training_step is stock
    assert network.optimizer == "adam"
    config = network.configure_optimizers()
    optimizer = config["optimizer"] if isinstance(config, dict) else config[0][0]
    assert not optimizer.defaults.get("fused")


def test_another_loss_keeps_the_stock_step() -> None:
    network, _ = network_and_batches(ModelSpec(**{**SHAPES["one-target-1-head"], "dropout": 0.0}))
    network.loss = MAE()
    with lean_training(network):
        assert "training_step" not in vars(network)
        assert network.optimizer == "adam"
