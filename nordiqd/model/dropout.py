"""Dropout for CPU training with a cheaper draw: 16 random bits per element.

``F.dropout`` on the CPU draws a float per element (``bernoulli_``), divides the mask
by the keep probability and multiplies: about 1.3 ms forward and backward for one
[16, 384, 32] activation of the default TFT, of which the draw is most. Here a 64-bit
random integer gives four elements their 16 bits, an element is kept when its bits
clear a threshold, and the mask stays boolean (a byte per element kept for the
backward pass instead of a float): 0.75 ms for the same tensor.

The drop probability is ``round(p * 65536) / 65536`` (0.100006 for 0.1) and the kept
values are scaled by the inverse of the keep probability actually drawn, so the
output's expectation is the input, as with ``F.dropout``. The bits come from torch's
default generator, so ``torch.manual_seed`` makes a fit repeatable as before.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

_LEVELS = 1 << 16


def dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """``F.dropout(x, p, training)`` with the 16-bit draw of the module docstring."""
    if not training:
        return x
    dropped = round(p * _LEVELS)
    if dropped <= 0:
        return x
    if dropped >= _LEVELS:
        return x * 0.0
    n = x.numel()
    words = torch.randint(-(2**63), 2**63 - 1, ((n + 3) // 4,), dtype=torch.int64, device=x.device)
    keep = words.view(torch.int16)[:n].view(x.shape) >= dropped - _LEVELS // 2
    return x * keep * (_LEVELS / (_LEVELS - dropped))


class _ModuleDropout:
    """An ``nn.Dropout``'s forward through ``dropout``, with the module's own ``p``."""

    def __init__(self, module: nn.Dropout) -> None:
        self.module = module

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.module.p, self.module.training)


@contextmanager
def bit_dropout(network: nn.Module) -> Iterator[None]:
    """Within the block every ``nn.Dropout`` of ``network`` draws through ``dropout``.

    Each module's instance ``forward`` is set (``nn.Module.__call__`` looks there first)
    and deleted on leaving, so the network's modules and state are as they were.
    """
    modules = [m for m in network.modules() if type(m) is nn.Dropout and not m.inplace]
    for module in modules:
        module.forward = _ModuleDropout(module)  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        for module in modules:
            del module.forward
