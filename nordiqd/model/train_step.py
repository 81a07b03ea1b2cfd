"""The CPU training step: the batch's loss without the metric bookkeeping, Adam fused.

pytorch-forecasting's ``training_step`` computes the loss through its torchmetrics
objects (``MultiLoss`` of ``QuantileLoss``): each call saves, resets, updates, computes
and merges their running state, checks the result for NaN, then logs it through
Lightning. That bookkeeping is the same for a micro-batch of 16 windows as for a batch of
thousands, so on the CPU it is a share of every step (1.7 ms of the loss alone, against
about 110 ms for the step). Nothing of ours reads the running state or the logged
value: the fit is scored by ``fitting.validate`` after training.

``LeanStep`` computes the same loss with the same pytorch-forecasting arithmetic
(``QuantileLoss.loss``, ``mask_losses``, the mean over the windows' decoder steps, the
targets' weights), so its value and gradients equal the stock step's
(``tests/unit/test_model_train_step.py``). Adam runs as torch's fused kernel, one per
step instead of a dozen small operations per parameter tensor (the TFT has hundreds):
the same update, rounded differently.
"""

from __future__ import annotations

import functools
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from pytorch_forecasting import TemporalFusionTransformer
from pytorch_forecasting.metrics import MultiLoss, QuantileLoss
from pytorch_forecasting.utils import unsqueeze_like

from nordiqd.model.errors import ModelError

_log = logging.getLogger(__name__)


class LeanStep:
    """``training_step`` for a network with a quantile loss; see the module docstring.

    Args:
        network: The TFT, whose loss is a ``QuantileLoss`` or a ``MultiLoss`` of them.

    Raises:
        ModelError: Another loss, another reduction, or monotone constraints (whose
            extra loss term only the stock step computes).
    """

    def __init__(self, network: Any) -> None:
        if not isinstance(network, TemporalFusionTransformer):
            raise ModelError(f"the lean step needs a TFT, not a {type(network).__name__}")
        loss = network.loss
        self.metrics = list(loss.metrics) if isinstance(loss, MultiLoss) else [loss]
        self.weights = [float(w) for w in loss.weights] if isinstance(loss, MultiLoss) else [1.0]
        if not all(type(m) is QuantileLoss and m.reduction == "mean" for m in self.metrics):
            raise ModelError(f"the lean step knows mean quantile losses, not {loss!r}")
        if network.hparams.monotone_constraints:
            raise ModelError("the lean step does not add the monotone constraints' loss")
        self.net = network
        self.multi = isinstance(loss, MultiLoss)

    def training_step(self, batch: tuple[dict[str, Any], Any], batch_idx: int) -> dict[str, torch.Tensor]:
        """The step's output as Lightning reads it: the loss to back-propagate."""
        x, y = batch
        prediction = self.net(x)["prediction"]
        return {"loss": self.loss(prediction, y, x["decoder_lengths"])}

    def loss(self, prediction: Any, y: Any, lengths: torch.Tensor) -> torch.Tensor:
        """``network.loss(prediction, y)`` for windows of ``lengths`` decoder steps."""
        targets, weight = y
        if not self.multi:
            prediction, targets = [prediction], [targets]
        steps = lengths.sum()
        total: torch.Tensor | None = None
        for metric, share, pred, target in zip(self.metrics, self.weights, prediction, targets, strict=True):
            losses = metric.loss(pred, target)
            if weight is not None:
                losses = losses * unsqueeze_like(weight, losses)
            summed = metric.mask_losses(losses, lengths).sum()
            if not torch.isfinite(summed):
                # As the stock loss does: a non-finite target's term becomes 1e9, without gradient.
                warnings.warn("Loss is not finite. Resetting it to 1e9", stacklevel=2)
                summed = summed.new_tensor(1e9)
            term = summed / steps * share
            total = term if total is None else total + term
        assert total is not None  # one metric at least: MultiLoss asserts it
        return total


@contextmanager
def lean_training(network: Any) -> Iterator[None]:
    """Within the block the network trains through ``LeanStep`` and fused Adam (where it can).

    Both are instance attributes (``training_step``, and the ``optimizer`` callable that
    pytorch-forecasting's ``configure_optimizers`` prefers to its name), deleted or put
    back on leaving: the network's class, hyperparameters and artifacts stay its own.
    """
    try:
        step = LeanStep(network)
    except ModelError as exc:
        _log.info("training with the network's own step: %s", exc)
        yield
        return
    optimizer = network.optimizer
    # A bound method, not the object: Lightning reads the hook's ``__code__``.
    network.training_step = step.training_step
    if network.hparams.optimizer == "adam" and optimizer == "adam":
        network.optimizer = functools.partial(torch.optim.Adam, fused=True)
    try:
        yield
    finally:
        del network.training_step
        network.optimizer = optimizer
