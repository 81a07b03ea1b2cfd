"""Supervision parameters: heartbeats, start and stop limits, back-off and intensity."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    """Supervision parameters; every duration in seconds."""

    children_endpoint: str
    control_endpoint: str
    events_endpoint: str
    heartbeat_interval: float = 1.0
    heartbeat_liveness: int = 3
    start_timeout: float = 60.0
    stop_grace: float = 10.0
    backoff_initial: float = 0.1
    backoff_factor: float = 2.0
    backoff_max: float = 30.0
    backoff_reset_after: float = 60.0
    max_restarts: int = 5
    restart_period: float = 60.0

    @property
    def silence(self) -> float:
        """Seconds without a message after which a ready child counts as frozen."""
        return self.heartbeat_interval * self.heartbeat_liveness
