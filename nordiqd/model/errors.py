"""Errors raised by the model modules."""

from __future__ import annotations


class ModelError(Exception):
    """Base of every error the model modules raise on purpose."""


class InsufficientData(ModelError):
    """The data given to training cannot produce a single training window."""


class TrainingCancelled(ModelError):
    """Training stopped because its caller asked it to; nothing may be published."""


class ModelLoadError(ModelError):
    """A model directory is missing, corrupt or incompatible; the message names why."""


class IncompatibleModel(ModelLoadError):
    """A model does not match what its caller expects (targets, quantiles, sizes)."""


class ForecastCancelled(ModelError):
    """A forecast pass was abandoned part way (its model was replaced)."""
