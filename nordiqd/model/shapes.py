"""Target shapes: when a spec builds a single-target network, and one list form for both.

One target is not a list of one: pytorch-forecasting counts targets from the loss, and
a ``MultiLoss`` of one metric makes it build a one-target network with a list-valued
output size, which fails. A single-target spec therefore gets a plain target name, an
``EncoderNormalizer``, a ``QuantileLoss`` and an integer output size, and the network
returns bare tensors where a multi-target one returns lists; ``per_target`` gives every
consumer the list form.

Training (``dataset``, ``network``, ``validation``) and serving (``forecast``) both read
these two; this module imports nothing of either.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from nordiqd.model.params import ModelSpec


def single_target(spec: ModelSpec) -> bool:
    """Whether ``spec`` builds the single-target network (plain tensors, no lists)."""
    return len(spec.targets) == 1


def per_target(value: torch.Tensor | Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """A network output, target or target scale as one tensor per target.

    A single-target network and its dataset give a bare tensor; a multi-target one a
    list with one tensor per target.
    """
    return [value] if isinstance(value, torch.Tensor) else list(value)
