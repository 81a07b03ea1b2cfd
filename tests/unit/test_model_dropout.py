"""Dropout's 16-bit draw: the rate asked, unbiased, repeatable, and only in training.

``nordiqd.model.dropout`` replaces ``F.dropout`` while the CPU trains. It must drop each
element with the probability asked, in every one of the four 16-bit lanes a 64-bit word
gives (a generator that left a bit fixed would skew one lane), scale what it keeps so the
output's mean is the input's, pass the gradient through the same mask, draw from torch's
seeded generator, and leave a network's modules as they were when the block ends.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from nordiqd.model.dropout import bit_dropout, dropout


@pytest.mark.parametrize("p", [0.1, 0.3, 0.75])
def test_each_lane_drops_at_the_rate_asked(p: float) -> None:
    torch.manual_seed(0)
    n = 400_000
    out = dropout(torch.ones(n), p)
    dropped = (out == 0).float()
    # Four standard deviations of a binomial share, per lane and over all.
    for lane in range(4):
        share = float(dropped[lane::4].mean())
        assert abs(share - p) < 4 * math.sqrt(p * (1 - p) / (n / 4)), (lane, share)
    assert abs(float(dropped.mean()) - p) < 4 * math.sqrt(p * (1 - p) / n)


def test_kept_values_are_scaled_to_keep_the_mean() -> None:
    torch.manual_seed(1)
    x = torch.rand(64, 96, 32) + 0.5
    out = dropout(x, 0.1)
    kept = out != 0
    scale = out[kept] / x[kept]
    torch.testing.assert_close(scale, torch.full_like(scale, 65536 / (65536 - 6554)))
    # The expectation of the output is the input: the mean over many draws.
    means = torch.stack([dropout(x, 0.1).mean() for _ in range(200)])
    assert abs(float(means.mean()) / float(x.mean()) - 1) < 2e-3


def test_gradient_flows_through_the_same_mask() -> None:
    torch.manual_seed(2)
    x = torch.randn(16, 40, 8, requires_grad=True)
    out = dropout(x, 0.2)
    out.backward(torch.ones_like(out))
    assert x.grad is not None
    mask = (out != 0).float()
    torch.testing.assert_close(x.grad, mask * 65536 / (65536 - round(0.2 * 65536)))


def test_seeded_draws_repeat_and_eval_or_zero_p_is_the_identity() -> None:
    x = torch.randn(1000)
    torch.manual_seed(3)
    a = dropout(x, 0.5)
    torch.manual_seed(3)
    b = dropout(x, 0.5)
    assert torch.equal(a, b)
    assert not torch.equal(a, dropout(x, 0.5))  # the generator moved on
    assert dropout(x, 0.5, training=False) is x
    assert dropout(x, 0.0) is x
    assert torch.equal(dropout(x, 1.0 - 1e-9), torch.zeros_like(x))


def test_non_contiguous_inputs_keep_their_shape() -> None:
    x = torch.randn(8, 12, 6).transpose(0, 2)
    out = dropout(x, 0.3)
    assert out.shape == x.shape
    kept = out != 0
    torch.testing.assert_close(out[kept], x[kept] * 65536 / (65536 - round(0.3 * 65536)))


def test_bit_dropout_routes_the_modules_and_gives_them_back() -> None:
    net = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5), nn.Sequential(nn.Dropout(0.25)))
    drops = [m for m in net.modules() if isinstance(m, nn.Dropout)]
    x = torch.ones(2000, 4)
    with bit_dropout(net):
        assert all("forward" in vars(m) for m in drops)
        out = drops[0](x)
        # The 16-bit draw's scale, not F.dropout's 1 / (1 - p) = 2.0 (equal here: check the rate).
        assert 0.45 < float((out == 0).float().mean()) < 0.55
        drops[0].eval()
        assert drops[0](x) is x
        drops[0].train()
    assert all("forward" not in vars(m) for m in drops)
    assert type(drops[0]).forward is nn.Dropout.forward
