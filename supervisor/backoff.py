"""Restart policy: exponential back-off that resets after a healthy run, and intensity.

Both are pure and take the time as an argument, so they are tested with a fake clock.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Delay before the next respawn of one child.

    The delay starts at ``initial``, multiplies by ``factor`` after each failure up to
    ``maximum``, and falls back to ``initial`` once a run lasted ``reset_after`` seconds.
    """

    initial: float = 0.1
    factor: float = 2.0
    maximum: float = 30.0
    reset_after: float = 60.0
    _failures: int = 0

    def next_delay(self, ran_for: float) -> float:
        """Record an exit after ``ran_for`` seconds of running; return the delay to wait."""
        if ran_for >= self.reset_after:
            self._failures = 0
        delay = min(self.maximum, self.initial * self.factor**self._failures)
        self._failures += 1
        return delay

    def reset(self) -> None:
        """Forget past failures (a deliberate restart is not a failure)."""
        self._failures = 0


@dataclass
class RestartIntensity:
    """At most ``max_restarts`` restarts within any ``period`` seconds (Erlang's rule)."""

    max_restarts: int = 5
    period: float = 60.0
    _times: deque[float] = field(default_factory=deque)

    def allow(self, now: float) -> bool:
        """Record a restart at ``now``; False once the intensity is exceeded."""
        while self._times and now - self._times[0] > self.period:
            self._times.popleft()
        if len(self._times) >= self.max_restarts:
            return False
        self._times.append(now)
        return True
