"""What a simulation run reports: ``Progress`` during the backfill, ``Summary`` at the end.

``sender.run_simulation`` fills them in; the CLI prints them; a ``SimulationError``
carries the summary so far. Plain values only, so errors, sender and CLI all import
this module and none of them imports another for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, NamedTuple

# Why a run ended: everything sent, ``duration_s`` reached, or ``stop`` set.
Reason = Literal["done", "duration", "stopped"]


@dataclass
class Summary:
    """Counts of a run; ``line()`` is the closing line the CLI prints."""

    records: int = 0
    batches: int = 0
    accepted: int = 0
    backfill_records: int = 0
    live_records: int = 0
    retries: int = 0
    elapsed_s: float = 0.0
    start: float = 0.0
    end: float = 0.0
    reason: Reason = "done"
    dropped_metrics: tuple[str, ...] = field(default_factory=tuple)

    @property
    def rate(self) -> float:
        """Records per second over the run."""
        return self.records / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def line(self) -> str:
        """One line: records, batches, rate, retries, why it ended."""
        return (
            f"sent {self.records:,} records in {self.batches:,} batches over {self.elapsed_s:.1f} s "
            f"({self.rate:,.0f} records/s; {self.retries} retries; "
            f"{self.reason})"
        )


class Progress(NamedTuple):
    """Backfill progress, reported after every batch."""

    done: int
    total: int
    elapsed_s: float
