"""Why a simulation stopped early."""

from __future__ import annotations

from typing import Any

from nordiqd.simulate.summary import Summary


class SimulationError(Exception):
    """The simulation stopped early; ``summary`` holds what was sent until then."""

    summary: Summary | None = None


class BatchRefused(SimulationError):
    """The daemon rejected a batch; ``problems`` lists each (index, field, message)."""

    def __init__(self, message: str, problems: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.problems = list(problems or [])


class DaemonUnavailable(SimulationError):
    """The daemon did not answer a batch within the retries."""
